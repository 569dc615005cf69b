//! Per-key bookkeeping: what this controller wrote last, when a change was first seen, and
//! which keys are paused.

use std::sync::{Arc, Mutex};

use kube::core::ObjectMeta;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use super::Inner;
use super::cache::Entry;
use crate::mapping::ObjectKey;
use crate::syncable::SyncObject;

/// Resource versions of the controller's last writes for one key.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LastWritten {
    remote: Option<u64>,
    local: Option<u64>,
}

/// When a change not yet synced was first seen on each side.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FirstSeen {
    pub(super) spec: Option<Instant>,
    pub(super) status: Option<Instant>,
}

pub(super) fn key_of<R: Resource>(o: &R) -> ObjectKey {
    ObjectKey::new(o.namespace().unwrap_or_default(), o.name_any())
}

fn rv(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: SyncObject> Inner<K> {
    /// Whether a cache is older than this controller's own last write for `key`; once both
    /// caches have caught up, the last write is forgotten.
    pub(super) fn behind_own_write(
        &self,
        key: &ObjectKey,
        remote_dyn: Option<&Arc<Entry<K::Cached>>>,
        local_dyn: Option<&Arc<Entry<K::Cached>>>,
    ) -> bool {
        // Copied out first: the guard must not live into the body, which locks again.
        let last_written = lock(&self.written).get(key).copied();
        if let Some(LastWritten {
            remote: remote_rv,
            local: local_rv,
        }) = last_written
        {
            let behind = |seen: Option<&Arc<Entry<K::Cached>>>, wrote: Option<u64>| {
                let seen = seen.and_then(|o| o.resource_version()?.parse::<u64>().ok());
                matches!((seen, wrote), (Some(s), Some(w)) if s < w)
            };
            if behind(remote_dyn, remote_rv) || behind(local_dyn, local_rv) {
                return true;
            }
            lock(&self.written).remove(key);
        }
        false
    }

    pub(super) fn remember(
        &self,
        key: &ObjectKey,
        remote: Option<&ObjectMeta>,
        local: Option<&ObjectMeta>,
    ) {
        let mut w = lock(&self.written);
        let e = w.entry(key.clone()).or_default();
        if let Some(m) = remote {
            e.remote = rv(m).or(e.remote);
        }
        if let Some(m) = local {
            e.local = rv(m).or(e.local);
        }
    }

    pub(super) fn note_paused(&self, key: &ObjectKey, paused: bool) {
        let mut set = lock(&self.paused);
        let changed = if paused {
            set.insert(key.clone())
        } else {
            set.remove(key)
        };
        if changed {
            self.metrics.paused(set.len());
        }
    }

    pub(super) fn spec_written(&self, key: &ObjectKey) {
        if let Some(t) = lock(&self.seen).get_mut(key).and_then(|s| s.spec.take()) {
            self.metrics.spec_lag(t.elapsed().as_secs_f64());
        }
    }
}
