//! A keyed work queue: each key is reconciled by at most one task at a time, up to
//! `concurrency` keys in parallel, with prompt retries for conflicts and capped exponential
//! backoff with jitter for failures.
//!
//! kube-runtime's `Controller` only reconciles objects present in its cache, but clean-up must
//! run for a remote object that is no longer there; hence this small queue of our own, built
//! on tokio's `JoinSet` and tokio-util's `DelayQueue`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use futures::StreamExt;
use rand::RngExt;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::time::{DelayQueue, delay_queue};

/// How a reconcile ended, as far as scheduling is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more to do until something changes.
    Done,
    /// Look again after this long (something is in progress on an API server).
    RequeueAfter(Duration),
    /// An optimistic-concurrency conflict: retry promptly.
    Conflict,
    /// A failure: retry with backoff.
    Failed,
}

/// Backoff of failed keys.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures, with jitter in [50%, 100%].
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let capped = exp.min(self.max);
        capped.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// How the queue runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueConfig {
    /// Keys reconciled in parallel.
    pub concurrency: usize,
    /// Backoff of failed keys.
    pub backoff: Backoff,
    /// How long running reconciles may finish after shutdown.
    pub deadline: Duration,
}

/// A conflict is retried after 50 ms, then after twice as long each time it repeats, up to
/// [`CONFLICT_MAX`]: a conflict that persists (an "already exists" while a cache catches up
/// with an API server that just came back) must not become a hot loop of requests.
const CONFLICT_DELAY: Duration = Duration::from_millis(50);
const CONFLICT_MAX: Duration = Duration::from_secs(5);

/// The lane a key waits in. A change to an object that exists on both sides (a status to
/// send up, a spec to apply) must not wait behind thousands of creations: the first lane goes
/// first, except that every [`FIRST_LANE_RUN`]th key comes from the second, so a steady stream
/// of changes cannot starve creations either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Changes to objects already synced.
    Changes,
    /// Everything else: new objects, clean-up.
    Rest,
}

/// At most this many keys of the first lane run in a row while the second lane waits.
const FIRST_LANE_RUN: u32 = 4;

struct Queue<Key> {
    ready: VecDeque<Key>,
    /// The first lane: keys of objects already synced (see [`Lane`]).
    changes: VecDeque<Key>,
    /// First-lane keys taken in a row while the second lane had keys.
    streak: u32,
    queued: HashSet<Key>,
    delayed: DelayQueue<Key>,
    delayed_keys: HashMap<Key, delay_queue::Key>,
    running: HashSet<Key>,
    dirty: HashSet<Key>,
    failures: HashMap<Key, u32>,
    conflicts: HashMap<Key, u32>,
}

impl<Key: Clone + Eq + Hash> Queue<Key> {
    fn new() -> Self {
        Queue {
            ready: VecDeque::new(),
            changes: VecDeque::new(),
            streak: 0,
            queued: HashSet::new(),
            delayed: DelayQueue::new(),
            delayed_keys: HashMap::new(),
            running: HashSet::new(),
            dirty: HashSet::new(),
            failures: HashMap::new(),
            conflicts: HashMap::new(),
        }
    }

    /// Files a key whose pass ended: again at once if it changed meanwhile (unless it failed),
    /// else after the delay its outcome asks for.
    fn finished(&mut self, key: Key, outcome: Outcome, backoff: &Backoff, lane: Lane) {
        self.running.remove(&key);
        let dirty = self.dirty.remove(&key);
        if outcome != Outcome::Failed {
            self.failures.remove(&key);
        }
        if outcome != Outcome::Conflict {
            self.conflicts.remove(&key);
        }
        match outcome {
            _ if dirty && outcome != Outcome::Failed => self.now(key, lane),
            Outcome::Done => {}
            Outcome::RequeueAfter(d) => self.later(key, d),
            Outcome::Conflict => {
                let n = self.conflicts.entry(key.clone()).or_default();
                *n += 1;
                let delay = CONFLICT_DELAY
                    .saturating_mul(1u32 << (*n - 1).min(16))
                    .min(CONFLICT_MAX);
                self.later(key, delay);
            }
            Outcome::Failed => {
                let n = self.failures.entry(key.clone()).or_default();
                *n += 1;
                let delay = backoff.delay(*n);
                self.later(key, delay);
            }
        }
    }

    fn now(&mut self, key: Key, lane: Lane) {
        if self.running.contains(&key) {
            self.dirty.insert(key);
            return;
        }
        if let Some(dk) = self.delayed_keys.remove(&key) {
            self.delayed.remove(&dk);
        }
        if self.queued.insert(key.clone()) {
            match lane {
                Lane::Changes => self.changes.push_back(key),
                Lane::Rest => self.ready.push_back(key),
            }
        }
    }

    /// The next key to run: from the first lane, unless it has had its run of
    /// [`FIRST_LANE_RUN`] while the second lane waits.
    fn next(&mut self) -> Option<Key> {
        let second_waits = !self.ready.is_empty();
        let second_turn = second_waits && self.streak >= FIRST_LANE_RUN;
        let key = if self.changes.is_empty() || second_turn {
            self.streak = 0;
            self.ready.pop_front()
        } else {
            self.streak = if second_waits { self.streak + 1 } else { 0 };
            self.changes.pop_front()
        }?;
        self.queued.remove(&key);
        Some(key)
    }

    fn later(&mut self, key: Key, delay: Duration) {
        if self.queued.contains(&key) {
            return;
        }
        match self.delayed_keys.get(&key) {
            Some(dk) => self.delayed.reset(
                dk,
                delay.min(
                    self.delayed
                        .deadline(dk)
                        .duration_since(tokio::time::Instant::now()),
                ),
            ),
            None => {
                let dk = self.delayed.insert(key.clone(), delay);
                self.delayed_keys.insert(key, dk);
            }
        }
    }

    fn depth(&self) -> usize {
        self.ready.len() + self.changes.len() + self.delayed_keys.len()
    }
}

/// [`run_lanes`] with every key in the second lane.
#[cfg(test)]
pub(crate) async fn run<Key, F, Fut>(
    keys: &mut mpsc::UnboundedReceiver<Key>,
    initial: impl IntoIterator<Item = Key>,
    config: QueueConfig,
    retry_failed: &Notify,
    reconcile: F,
    on_depth: impl FnMut(usize),
    shutdown: impl Future<Output = ()>,
) where
    Key: Clone + Eq + Hash + Send + 'static,
    F: Fn(Key) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let lanes = |_: &Key| Lane::Rest;
    run_lanes(
        keys,
        initial,
        config,
        retry_failed,
        lanes,
        reconcile,
        on_depth,
        shutdown,
    )
    .await;
}

/// Runs the queue until `shutdown` resolves, then lets running reconciles finish for up to
/// `deadline` and aborts the rest. A notification on `retry_failed` retries every key that is
/// waiting out a failure's backoff at once (a cluster that was unreachable answers again).
/// `lane` says which lane a key waits in when it becomes ready (see [`Lane`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_lanes<Key, F, Fut>(
    keys: &mut mpsc::UnboundedReceiver<Key>,
    initial: impl IntoIterator<Item = Key>,
    config: QueueConfig,
    retry_failed: &Notify,
    lane: impl Fn(&Key) -> Lane,
    reconcile: F,
    mut on_depth: impl FnMut(usize),
    shutdown: impl Future<Output = ()>,
) where
    Key: Clone + Eq + Hash + Send + 'static,
    F: Fn(Key) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let mut q = Queue::new();
    for key in initial {
        let l = lane(&key);
        q.now(key, l);
    }
    let mut tasks: JoinSet<(Key, Outcome)> = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.len() < config.concurrency.max(1) {
            let Some(key) = q.next() else {
                break;
            };
            q.running.insert(key.clone());
            let fut = reconcile(key.clone());
            tasks.spawn(async move { (key, fut.await) });
        }
        on_depth(q.depth());
        tokio::select! {
            () = &mut shutdown => break,
            Some(key) = keys.recv() => {
                let l = lane(&key);
                q.now(key, l);
            }
            () = retry_failed.notified() => {
                // Their failure counts stay: if they fail again, the backoff goes on growing.
                let failed: Vec<Key> = q.failures.keys().cloned().collect();
                for key in failed {
                    let l = lane(&key);
                    q.now(key, l);
                }
            }
            Some(expired) = q.delayed.next(), if !q.delayed.is_empty() => {
                let key = expired.into_inner();
                q.delayed_keys.remove(&key);
                let l = lane(&key);
                q.now(key, l);
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((key, outcome)) = joined else { continue };
                let l = lane(&key);
                q.finished(key, outcome, &config.backoff, l);
            }
        }
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(config.deadline, drain).await.is_err() {
        tracing::warn!(
            running = tasks.len(),
            "shutdown deadline passed; aborting running reconciles"
        );
        tasks.abort_all();
    }
}

#[cfg(test)]
mod tests;
