//! Remote objects that an uncached read proved gone (404), remembered for a while, so that the
//! passes of a long clean-up do not ask the remote API about the same siblings every time.
//!
//! A proof stands only while nothing could have brought the object back unseen: the remote
//! cluster stayed reachable and every remote watch kept working since the read (the
//! [epoch](crate::reachability::Reachability::epoch) did not move), the cache still lacks the
//! key (a watch event for it drops the proof; the runtime reads the cache first), and for at
//! most [`PROOF_LIFETIME`]. Otherwise the next pass reads again, as SPEC §5 asks: a cache miss
//! alone, or an unreachable API, never counts as gone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::state::lock;
use crate::mapping::ObjectKey;

/// How long a 404 stands as proof.
pub(super) const PROOF_LIFETIME: Duration = Duration::from_secs(60);

/// The remote keys proven gone, each with the epoch and time of its proof.
#[derive(Debug, Default)]
pub(super) struct ProvenGone {
    proofs: Mutex<Proofs>,
}

#[derive(Debug, Default)]
struct Proofs {
    by_key: HashMap<ObjectKey, (u64, Instant)>,
    /// Past this size, stale proofs are swept; then it doubles the size left, so sweeping
    /// stays linear in the proofs recorded.
    sweep_at: usize,
}

impl ProvenGone {
    /// Whether `key` was proven gone in the reachability `epoch` that is still current, less
    /// than [`PROOF_LIFETIME`] ago.
    pub(super) fn holds(&self, key: &ObjectKey, epoch: u64) -> bool {
        let proofs = lock(&self.proofs);
        proofs
            .by_key
            .get(key)
            .is_some_and(|p| valid(*p, epoch, Instant::now()))
    }

    /// Records that an uncached read of `key` answered 404 in `epoch`.
    pub(super) fn record(&self, key: &ObjectKey, epoch: u64) {
        let now = Instant::now();
        let mut proofs = lock(&self.proofs);
        proofs.by_key.insert(key.clone(), (epoch, now));
        if proofs.by_key.len() > proofs.sweep_at.max(1024) {
            proofs.by_key.retain(|_, p| valid(*p, epoch, now));
            proofs.sweep_at = 2 * proofs.by_key.len();
        }
    }

    /// Drops the proof of `key`: the remote watch shows an object under it.
    pub(super) fn forget(&self, key: &ObjectKey) {
        let mut proofs = lock(&self.proofs);
        if !proofs.by_key.is_empty() {
            proofs.by_key.remove(key);
        }
    }
}

fn valid((epoch, at): (u64, Instant), current: u64, now: Instant) -> bool {
    epoch == current && now.duration_since(at) < PROOF_LIFETIME
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> ObjectKey {
        ObjectKey::new("ns", n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_proof_stands_in_its_epoch_for_its_lifetime_and_until_forgotten() {
        let gone = ProvenGone::default();
        gone.record(&key("a"), 3);
        assert!(gone.holds(&key("a"), 3));
        assert!(!gone.holds(&key("b"), 3), "another key is not proven");
        assert!(
            !gone.holds(&key("a"), 4),
            "an outage or a watch failure since"
        );
        tokio::time::advance(PROOF_LIFETIME - Duration::from_millis(1)).await;
        assert!(gone.holds(&key("a"), 3));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!gone.holds(&key("a"), 3), "too old");
        gone.record(&key("a"), 3);
        gone.forget(&key("a"));
        assert!(!gone.holds(&key("a"), 3), "the watch shows it again");
    }

    #[tokio::test(start_paused = true)]
    async fn stale_proofs_are_swept_as_new_ones_come() {
        let gone = ProvenGone::default();
        for i in 0..1000 {
            gone.record(&key(&format!("old-{i}")), 1);
        }
        tokio::time::advance(PROOF_LIFETIME).await;
        for i in 0..100 {
            gone.record(&key(&format!("new-{i}")), 1);
        }
        let left = lock(&gone.proofs).by_key.len();
        assert!(left <= 100, "{left} proofs kept");
        assert!(gone.holds(&key("new-99"), 1));
    }
}
