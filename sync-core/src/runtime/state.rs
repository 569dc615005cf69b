//! Per-key bookkeeping: what this controller wrote last, when a change was first seen, and
//! which keys are paused.

use std::sync::{Arc, Mutex};

use kube::core::ObjectMeta;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use super::Inner;
use super::cache::Entry;
use super::index::Side;
use crate::mapping::ObjectKey;
use crate::syncable::SyncObject;

mod written;

pub(super) use written::LastWritten;

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

/// A pass over a key, until it ends (see [`LastWritten::pass_starts`]).
pub(super) struct Pass<'a, K: SyncObject> {
    inner: &'a Inner<K>,
    key: &'a ObjectKey,
}

impl<K: SyncObject> Drop for Pass<'_, K> {
    fn drop(&mut self) {
        self.inner.update(self.key, LastWritten::pass_ends);
    }
}

/// A write of a pass in flight, until answered or failed (see [`LastWritten::write_ends`]).
pub(super) struct Writing<'a, K: SyncObject> {
    inner: &'a Inner<K>,
    key: &'a ObjectKey,
}

impl<K: SyncObject> Drop for Writing<'_, K> {
    fn drop(&mut self) {
        let queued = self.inner.update(self.key, LastWritten::write_ends);
        if queued.is_empty() {
            return;
        }
        for held in &queued {
            self.inner.first_seen(self.key, held.side, held.at);
        }
        let _ = self.inner.queue.send(self.key.clone());
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: SyncObject> Inner<K> {
    /// Changes the writes recorded for `key`, if any, and forgets them when nothing is left.
    fn update<T: Default>(&self, key: &ObjectKey, f: impl FnOnce(&mut LastWritten) -> T) -> T {
        let mut written = lock(&self.written);
        let Some(w) = written.get_mut(key) else {
            return T::default();
        };
        let out = f(w);
        if w.is_empty() {
            written.remove(key);
        }
        out
    }

    /// Marks the start of a pass over `key`, before it reads the caches; the mark ends with
    /// the returned guard.
    pub(super) fn pass_starts<'a>(&'a self, key: &'a ObjectKey) -> Pass<'a, K> {
        self.update(key, LastWritten::pass_starts);
        Pass { inner: self, key }
    }

    /// Marks a write for `key` in flight until the returned guard drops: the watch events of
    /// the key wait for its answer, then queue the key unless they echo the write.
    pub(super) fn write_starts<'a>(&'a self, key: &'a ObjectKey) -> Writing<'a, K> {
        lock(&self.written)
            .entry(key.clone())
            .or_default()
            .write_starts();
        Writing { inner: self, key }
    }

    /// Whether a cache is older than this controller's own last write for `key`; if so, the
    /// echo of that write will queue the key again. Once both caches have caught up, the
    /// writes are forgotten.
    pub(super) fn behind_own_write(
        &self,
        key: &ObjectKey,
        remote_dyn: Option<&Arc<Entry<K::Cached>>>,
        local_dyn: Option<&Arc<Entry<K::Cached>>>,
    ) -> bool {
        let mut written = lock(&self.written);
        let Some(w) = written.get_mut(key) else {
            return false;
        };
        let seen = |o: Option<&Arc<Entry<K::Cached>>>| {
            o.and_then(|o| o.resource_version()?.parse::<u64>().ok())
        };
        if w.cache_behind(seen(remote_dyn), seen(local_dyn)) {
            return true;
        }
        written.remove(key);
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
        e.wrote(Side::Remote, remote.and_then(rv));
        e.wrote(Side::Local, local.and_then(rv));
        if e.is_empty() {
            w.remove(key);
        }
    }

    /// Whether a watch event of `key` on `side`, whose object is `meta` (already in the
    /// cache), queues the key: not when it only echoes this controller's own write (see
    /// [`LastWritten`]), nor while a write of the key is in flight (it is judged when the
    /// write is answered).
    pub(super) fn event_queues(&self, key: &ObjectKey, side: Side, meta: &ObjectMeta) -> bool {
        let mut written = lock(&self.written);
        let Some(w) = written.get_mut(key) else {
            return true;
        };
        let queues = w.event(side, rv(meta), Instant::now());
        if w.is_empty() {
            written.remove(key);
        }
        queues
    }

    /// Marks when a change of `key` on `side` not yet synced was first seen: its spec on the
    /// remote side, its status on the local side.
    pub(super) fn first_seen(&self, key: &ObjectKey, side: Side, at: Instant) {
        let mut seen = lock(&self.seen);
        let first = seen.entry(key.clone()).or_default();
        match side {
            Side::Remote => first.spec.get_or_insert(at),
            Side::Local => first.status.get_or_insert(at),
        };
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
