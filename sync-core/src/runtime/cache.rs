//! The caches of one kind's objects, one per cluster, each filled by its watch.
//!
//! Not kube's reflector store, for memory: at 100,000 objects per cluster the caches are most
//! of the controller's heap. Here an object is found by its namespace and name alone (a
//! reflector key also carries its own copy of the kind's `ApiResource`, the resource version
//! and the UID); its labels and annotations are kept as one string each rather than as B-tree
//! maps (a map of even one entry costs an 11-slot node of about 540 bytes, and two allocations
//! per entry); and a relist updates the cache in place, removing what the list no longer shows
//! at its end, rather than building a second full cache beside the first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::api::ApiResource;
use kube::core::ObjectMeta;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::state::key_of;
use crate::mapping::ObjectKey;

/// Labels or annotations in two allocations: every key and value one after the other in one
/// string, and where each ends. `None` is no map at all, as distinct from an empty one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fields(Option<Packed>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Packed {
    text: Box<str>,
    /// The end of each key and of each value in `text`, in the map's order (sorted by key).
    ends: Box<[u32]>,
}

impl Fields {
    fn take(map: &mut Option<BTreeMap<String, String>>) -> Self {
        let Some(map) = map.take() else {
            return Fields(None);
        };
        let mut text = String::with_capacity(map.iter().map(|(k, v)| k.len() + v.len()).sum());
        let mut ends = Vec::with_capacity(map.len() * 2);
        for (k, v) in &map {
            for part in [k, v] {
                text.push_str(part);
                // An object's metadata is far below 4 GiB: the API server limits a whole
                // object to a few MiB.
                ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            }
        }
        Fields(Some(Packed {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }))
    }

    fn to_map(&self) -> Option<BTreeMap<String, String>> {
        let Packed { text, ends } = self.0.as_ref()?;
        let mut start = 0;
        let mut parts = ends.iter().map(|&end| {
            let part = text.get(start..end as usize).unwrap_or_default().to_owned();
            start = end as usize;
            part
        });
        let mut map = BTreeMap::new();
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            map.insert(k, v);
        }
        Some(map)
    }
}

/// One cached object. Its labels and annotations are kept apart from it, so it is read
/// through the methods here, which put them back, never through its own metadata.
#[derive(Debug)]
pub(super) struct Entry<C> {
    /// The object, with neither labels nor annotations.
    bare: C,
    labels: Fields,
    annotations: Fields,
}

impl<C: Resource + Clone> Entry<C> {
    fn new(object: &C) -> Self {
        let mut bare = object.clone();
        let meta = bare.meta_mut();
        let labels = Fields::take(&mut meta.labels);
        let annotations = Fields::take(&mut meta.annotations);
        Entry {
            bare,
            labels,
            annotations,
        }
    }

    /// The object, whole.
    pub(super) fn object(&self) -> C {
        let mut o = self.bare.clone();
        let meta = o.meta_mut();
        meta.labels = self.labels.to_map();
        meta.annotations = self.annotations.to_map();
        o
    }

    /// The object's metadata, whole.
    pub(super) fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            labels: self.labels.to_map(),
            annotations: self.annotations.to_map(),
            ..self.bare.meta().clone()
        }
    }

    /// The namespace and name of the object.
    pub(super) fn key(&self) -> ObjectKey {
        key_of(&self.bare)
    }

    /// A reference to the object, for events about it.
    pub(super) fn object_ref(&self, ar: &ApiResource) -> ObjectReference
    where
        C: Resource<DynamicType = ApiResource>,
    {
        self.bare.object_ref(ar)
    }

    /// The object's resource version.
    pub(super) fn resource_version(&self) -> Option<&str> {
        self.bare.meta().resource_version.as_deref()
    }

    /// The object's UID.
    pub(super) fn uid(&self) -> Option<&str> {
        self.bare.meta().uid.as_deref()
    }

    /// Whether the object is being deleted.
    pub(super) fn terminating(&self) -> bool {
        self.bare.meta().deletion_timestamp.is_some()
    }
}

/// What a cache holds: each object with the list it was last confirmed by.
struct Objects<C> {
    map: HashMap<ObjectKey, (u64, Arc<Entry<C>>)>,
    /// Counts the lists begun; an object last confirmed by an earlier list than the one
    /// that just completed is gone.
    list: u64,
}

struct Shared<C> {
    objects: RwLock<Objects<C>>,
    /// Whether a first list completed.
    ready: watch::Sender<bool>,
}

/// The read half of a cache.
pub(super) struct ObjectCache<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for ObjectCache<C> {
    fn clone(&self) -> Self {
        ObjectCache {
            shared: self.shared.clone(),
        }
    }
}

/// The write half of a cache, which its watch fills.
pub(super) struct CacheWriter<C> {
    shared: Arc<Shared<C>>,
}

/// An empty cache: its read half and its write half.
pub(super) fn cache<C>() -> (ObjectCache<C>, CacheWriter<C>) {
    let shared = Arc::new(Shared {
        objects: RwLock::new(Objects {
            map: HashMap::new(),
            list: 0,
        }),
        ready: watch::Sender::new(false),
    });
    (
        ObjectCache {
            shared: shared.clone(),
        },
        CacheWriter { shared },
    )
}

impl<C> Shared<C> {
    fn read(&self) -> RwLockReadGuard<'_, Objects<C>> {
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Objects<C>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C> ObjectCache<C> {
    /// The object under `key`, if the cache holds one.
    pub(super) fn get(&self, key: &ObjectKey) -> Option<Arc<Entry<C>>> {
        self.shared.read().map.get(key).map(|(_, e)| e.clone())
    }

    /// Every object the cache holds.
    pub(super) fn state(&self) -> Vec<Arc<Entry<C>>> {
        self.shared
            .read()
            .map
            .values()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// How many objects the cache holds.
    pub(super) fn len(&self) -> usize {
        self.shared.read().map.len()
    }

    /// Waits until the watch has listed its objects once.
    pub(super) async fn wait_until_ready(&self) {
        let mut ready = self.shared.ready.subscribe();
        // Fails only when the writer is gone, which then never fills the cache: the manager's
        // run stops first.
        let _ = ready.wait_for(|r| *r).await;
    }
}

impl<C: Resource + Clone> CacheWriter<C> {
    /// Takes in one event of the watch.
    pub(super) fn apply(&mut self, event: &watcher::Event<C>) {
        let mut objects = self.shared.write();
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let list = objects.list;
                objects
                    .map
                    .insert(key_of(o), (list, Arc::new(Entry::new(o))));
            }
            watcher::Event::Delete(o) => {
                objects.map.remove(&key_of(o));
            }
            watcher::Event::Init => objects.list += 1,
            watcher::Event::InitDone => {
                let list = objects.list;
                objects.map.retain(|_, (seen, _)| *seen == list);
                drop(objects);
                self.shared.ready.send_replace(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn object(name: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("ns".to_owned()),
                resource_version: Some(rv.to_owned()),
                labels: Some(
                    [
                        ("b".to_owned(), "2".to_owned()),
                        ("a".to_owned(), "1".to_owned()),
                    ]
                    .into(),
                ),
                annotations: Some(BTreeMap::new()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn an_object_reads_back_whole() {
        let (cache, mut writer) = cache::<ConfigMap>();
        let o = object("x", "1");
        writer.apply(&watcher::Event::Apply(o.clone()));
        let entry = cache.get(&ObjectKey::new("ns", "x")).expect("cached");
        assert_eq!(entry.object(), o);
        assert_eq!(entry.meta(), o.metadata);
        assert_eq!(entry.resource_version(), Some("1"));
        assert_eq!(entry.key(), ObjectKey::new("ns", "x"));
        writer.apply(&watcher::Event::Delete(o));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_relist_keeps_the_cache_until_it_ends_then_drops_what_it_did_not_show() {
        let (cache, mut writer) = cache::<ConfigMap>();
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(object("x", "1")),
            watcher::Event::InitApply(object("y", "1")),
            watcher::Event::InitDone,
        ] {
            writer.apply(&e);
        }
        assert_eq!(cache.len(), 2);
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(object("y", "2")));
        // Until the list ends, what it has not shown yet is still there.
        assert!(cache.get(&ObjectKey::new("ns", "x")).is_some());
        assert_eq!(
            cache
                .get(&ObjectKey::new("ns", "y"))
                .and_then(|e| e.resource_version().map(str::to_owned)),
            Some("2".to_owned())
        );
        writer.apply(&watcher::Event::InitDone);
        assert!(cache.get(&ObjectKey::new("ns", "x")).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn labels_and_annotations_read_back_as_they_were() {
        let maps = [
            None,
            Some(BTreeMap::new()),
            Some(
                [
                    ("a".to_owned(), String::new()),
                    (String::new(), "x".to_owned()),
                    ("é/ü".to_owned(), "ß\0ok".to_owned()),
                ]
                .into(),
            ),
        ];
        for map in maps {
            assert_eq!(Fields::take(&mut map.clone()).to_map(), map);
        }
    }

    #[tokio::test]
    async fn the_cache_is_ready_once_a_first_list_ends() {
        let (cache, mut writer) = cache::<ConfigMap>();
        writer.apply(&watcher::Event::Init);
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        writer.apply(&watcher::Event::InitDone);
        waiting.await.expect("ready");
    }
}
