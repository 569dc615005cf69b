//! Which objects each local namespace holds, kept from the watches, so a clean-up decision
//! looks at the objects of its namespace rather than at every cached object. kube-runtime's
//! reflector store has no secondary index, hence this one.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::runtime::watcher;

use super::Inner;
use super::cache::ObjectCache;
use super::state::{key_of, lock};
use crate::mapping::ObjectKey;
use crate::syncable::SyncObject;

/// The local names in each local namespace: of the local copies (the local watch's index), or
/// of the remote objects whose copies belong there (the remote watch's).
///
/// # Guarantees
///
/// It holds every object its cache holds, and maybe a few the cache no longer does: names are
/// added before the cache takes an object, and removed only after the cache let it go. A
/// reader looks each name up in the cache, so a stale name costs a look-up and nothing more,
/// while a missing one could let a namespace go that a sibling still needs.
#[derive(Debug, Default)]
pub(super) struct NamespaceIndex(Mutex<HashMap<String, HashSet<String>>>);

impl NamespaceIndex {
    pub(super) fn insert(&self, key: ObjectKey) {
        lock(&self.0)
            .entry(key.namespace)
            .or_default()
            .insert(key.name);
    }

    pub(super) fn remove(&self, key: &ObjectKey) {
        let mut index = lock(&self.0);
        if let Some(names) = index.get_mut(&key.namespace) {
            names.remove(&key.name);
            if names.is_empty() {
                index.remove(&key.namespace);
            }
        }
    }

    /// Replaces the whole index, after a (re)list replaced the cache.
    pub(super) fn replace(&self, keys: impl IntoIterator<Item = ObjectKey>) {
        let mut index: HashMap<String, HashSet<String>> = HashMap::new();
        for key in keys {
            index.entry(key.namespace).or_default().insert(key.name);
        }
        *lock(&self.0) = index;
    }

    /// The names indexed in `namespace`.
    pub(super) fn names(&self, namespace: &str) -> Vec<String> {
        lock(&self.0)
            .get(namespace)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Which watch an index follows.
#[derive(Clone, Copy, Debug)]
pub(super) enum Side {
    Remote,
    Local,
}

impl<K: SyncObject> Inner<K> {
    fn index_of(&self, side: Side) -> (&NamespaceIndex, &ObjectCache<K::Cached>) {
        match side {
            Side::Remote => (&self.remote_index, &self.remote_store),
            Side::Local => (&self.local_index, &self.local_store),
        }
    }

    /// Where an object's local copy is, or would be.
    fn indexed_key(&self, side: Side, o: &K::Cached) -> Option<ObjectKey> {
        self.indexed_key_of(side, key_of(o))
    }

    /// Where the local copy of the object under `key` on `side` is, or would be.
    fn indexed_key_of(&self, side: Side, key: ObjectKey) -> Option<ObjectKey> {
        match side {
            Side::Remote => self.mapping.to_local(&key).ok(),
            Side::Local => Some(key),
        }
    }

    /// Indexes an object a watch is about to hand its cache.
    pub(super) fn index_before_cache(
        &self,
        side: Side,
        event: &Result<watcher::Event<K::Cached>, watcher::Error>,
    ) {
        if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = event
            && let Some(key) = self.indexed_key(side, o)
        {
            self.index_of(side).0.insert(key);
        }
    }

    /// Drops an object its cache let go of (`Some`), or rebuilds the index from the cache after
    /// a (re)list (`None`): objects that went while the watch was down sent no event.
    pub(super) fn index_after_cache(&self, side: Side, touched: Option<&K::Cached>) {
        let (index, store) = self.index_of(side);
        match touched {
            Some(o) => {
                if store.get(&key_of(o)).is_none()
                    && let Some(key) = self.indexed_key(side, o)
                {
                    index.remove(&key);
                }
            }
            None => index.replace(
                store
                    .state()
                    .iter()
                    .filter_map(|o| self.indexed_key_of(side, o.key())),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_lists_the_names_of_one_namespace() {
        let index = NamespaceIndex::default();
        index.insert(ObjectKey::new("a", "x"));
        index.insert(ObjectKey::new("a", "y"));
        index.insert(ObjectKey::new("b", "x"));
        index.remove(&ObjectKey::new("a", "x"));
        assert_eq!(index.names("a"), vec!["y".to_owned()]);
        index.replace([ObjectKey::new("c", "z")]);
        assert!(index.names("a").is_empty());
        assert_eq!(index.names("c"), vec!["z".to_owned()]);
    }
}
