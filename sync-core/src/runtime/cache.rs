//! The caches of one kind's objects, one per cluster, each filled by its watch.
//!
//! Not kube's reflector store, for memory: at 100,000 objects per cluster the caches are most
//! of the controller's heap. Here an object is found through a table keyed by its own
//! namespace and name (a reflector key is a second copy of them, with its own copy of the
//! kind's `ApiResource`, the resource version and the UID); its labels and annotations are
//! kept in one allocation each, the controller's own annotation keys as one byte (B-tree maps
//! cost an 11-slot node each, and two allocations per entry); and a relist updates the cache
//! in place, removing what the list no longer shows at its end, rather than building a second
//! full cache beside the first.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::hash_table::{self, HashTable};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::api::ApiResource;
use kube::core::ObjectMeta;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::state::key_of;
use crate::mapping::ObjectKey;

mod fields;

use fields::Fields;
pub(super) use fields::Known;

/// One cached object. Its labels and annotations are kept apart from it, so it is read
/// through the methods here, which put them back, never through its own metadata.
#[derive(Debug)]
pub(super) struct Entry<C> {
    /// The object, with neither labels nor annotations.
    bare: C,
    labels: Fields,
    annotations: Fields,
    known: Arc<Known>,
}

impl<C: Resource + Clone> Entry<C> {
    fn new(object: &C, known: &Arc<Known>) -> Self {
        let mut bare = object.clone();
        let meta = bare.meta_mut();
        let labels = Fields::take(&mut meta.labels, known);
        let annotations = Fields::take(&mut meta.annotations, known);
        Entry {
            bare,
            labels,
            annotations,
            known: known.clone(),
        }
    }

    /// The object, whole.
    pub(super) fn object(&self) -> C {
        let mut o = self.bare.clone();
        let meta = o.meta_mut();
        meta.labels = self.labels.to_map(&self.known);
        meta.annotations = self.annotations.to_map(&self.known);
        o
    }

    /// The object's metadata, whole.
    pub(super) fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            labels: self.labels.to_map(&self.known),
            annotations: self.annotations.to_map(&self.known),
            ..self.bare.meta().clone()
        }
    }

    /// The namespace and name of the object.
    pub(super) fn key(&self) -> ObjectKey {
        key_of(&self.bare)
    }

    /// The namespace and name of the object, without a copy.
    fn key_ref(&self) -> (&str, &str) {
        key_ref(self.bare.meta())
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

/// The namespace and name of an object, as [`key_of`] reads them.
fn key_ref(meta: &ObjectMeta) -> (&str, &str) {
    let name = meta.name.as_deref().or(meta.generate_name.as_deref());
    (
        meta.namespace.as_deref().unwrap_or_default(),
        name.unwrap_or_default(),
    )
}

/// What a cache holds: each object with the list it was last confirmed by, in a table keyed
/// by the object's own namespace and name (no copy of them beside it).
struct Objects<C> {
    table: HashTable<(u64, Arc<Entry<C>>)>,
    hasher: RandomState,
    /// Counts the lists begun; an object last confirmed by an earlier list than the one
    /// that just completed is gone.
    list: u64,
}

impl<C: Resource + Clone> Objects<C> {
    fn hash(&self, (namespace, name): (&str, &str)) -> u64 {
        self.hasher.hash_one((namespace, name))
    }

    fn get(&self, key: &ObjectKey) -> Option<&Arc<Entry<C>>> {
        let key = (key.namespace.as_str(), key.name.as_str());
        self.table
            .find(self.hash(key), |(_, e)| e.key_ref() == key)
            .map(|(_, e)| e)
    }

    fn insert(&mut self, entry: Entry<C>) {
        let key = entry.key_ref();
        let hash = self.hash(key);
        let value = (self.list, Arc::new(entry));
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |(_, e)| e.key_ref() == value.1.key_ref(),
            |(_, e)| hasher.hash_one(e.key_ref()),
        ) {
            hash_table::Entry::Occupied(mut o) => *o.get_mut() = value,
            hash_table::Entry::Vacant(v) => {
                v.insert(value);
            }
        }
    }

    fn remove(&mut self, meta: &ObjectMeta) {
        let key = key_ref(meta);
        if let Ok(o) = self
            .table
            .find_entry(self.hash(key), |(_, e)| e.key_ref() == key)
        {
            o.remove();
        }
    }
}

struct Shared<C> {
    objects: RwLock<Objects<C>>,
    known: Arc<Known>,
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

/// An empty cache, which keeps `known` keys of labels and annotations as one byte: its read
/// half and its write half.
pub(super) fn cache<C>(known: Known) -> (ObjectCache<C>, CacheWriter<C>) {
    let shared = Arc::new(Shared {
        objects: RwLock::new(Objects {
            table: HashTable::new(),
            hasher: RandomState::new(),
            list: 0,
        }),
        known: Arc::new(known),
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

impl<C: Resource + Clone> ObjectCache<C> {
    /// The object under `key`, if the cache holds one.
    pub(super) fn get(&self, key: &ObjectKey) -> Option<Arc<Entry<C>>> {
        self.shared.read().get(key).cloned()
    }

    /// Every object the cache holds.
    pub(super) fn state(&self) -> Vec<Arc<Entry<C>>> {
        self.shared
            .read()
            .table
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// How many objects the cache holds.
    pub(super) fn len(&self) -> usize {
        self.shared.read().table.len()
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
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                // Packed before the lock is taken: readers wait only for the insert.
                let entry = Entry::new(o, &self.shared.known);
                self.shared.write().insert(entry);
            }
            watcher::Event::Delete(o) => self.shared.write().remove(o.meta()),
            watcher::Event::Init => self.shared.write().list += 1,
            watcher::Event::InitDone => {
                {
                    let mut objects = self.shared.write();
                    let list = objects.list;
                    objects.table.retain(|(seen, _)| *seen == list);
                }
                self.shared.ready.send_replace(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        let (cache, mut writer) = cache::<ConfigMap>(Known::new(["a"]));
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
        let (cache, mut writer) = cache::<ConfigMap>(Known::new(["a"]));
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

    #[tokio::test]
    async fn the_cache_is_ready_once_a_first_list_ends() {
        let (cache, mut writer) = cache::<ConfigMap>(Known::new(["a"]));
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
