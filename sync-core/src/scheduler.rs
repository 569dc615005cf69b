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
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        assert!(b.delay(1) <= Duration::from_millis(100));
        assert!(b.delay(1) >= Duration::from_millis(50));
        assert!(b.delay(4) >= Duration::from_millis(400));
        assert!(b.delay(40) <= Duration::from_secs(2));
        assert!(b.delay(40) >= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_never_reconciled_twice_at_once_and_reruns_when_dirty() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let active = Arc::new(Mutex::new(HashSet::new()));
        let runs = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (a, r) = (active.clone(), runs.clone());
        let handle = tokio::spawn(async move {
            run(
                &mut rx,
                [],
                QueueConfig {
                    concurrency: 4,
                    backoff: Backoff::default(),
                    deadline: Duration::from_secs(1),
                },
                &Notify::new(),
                move |key: u32| {
                    let (a, r) = (a.clone(), r.clone());
                    async move {
                        assert!(a.lock().unwrap().insert(key), "key {key} ran twice at once");
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        a.lock().unwrap().remove(&key);
                        r.lock().unwrap().push(key);
                        Outcome::Done
                    }
                },
                |_| {},
                async {
                    stop_rx.await.ok();
                },
            )
            .await
        });
        for _ in 0..5 {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop_tx.send(()).unwrap();
        handle.await.unwrap();
        let runs = runs.lock().unwrap();
        let ones = runs.iter().filter(|k| **k == 1).count();
        // Five triggers within one run coalesce: the first run, then one rerun for the rest.
        assert!((2..=3).contains(&ones), "key 1 ran {ones} times: {runs:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_with_backoff() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runs = Arc::new(Mutex::new(Vec::new()));
        let r = runs.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            run(
                &mut rx,
                [],
                QueueConfig {
                    concurrency: 1,
                    backoff: Backoff {
                        initial: Duration::from_millis(20),
                        max: Duration::from_millis(80),
                    },
                    deadline: Duration::from_secs(1),
                },
                &Notify::new(),
                move |_: u32| {
                    let r = r.clone();
                    async move {
                        r.lock().unwrap().push(tokio::time::Instant::now());
                        Outcome::Failed
                    }
                },
                |_| {},
                async {
                    stop_rx.await.ok();
                },
            )
            .await
        });
        tx.send(7).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        stop_tx.send(()).unwrap();
        handle.await.unwrap();
        let runs = runs.lock().unwrap();
        assert!(runs.len() >= 4, "only {} retries", runs.len());
        // Exact on the paused clock: each gap is a jittered backoff, capped at 80 ms.
        for w in runs.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap >= Duration::from_millis(10), "retried after {gap:?}");
            assert!(gap <= Duration::from_millis(80), "retried after {gap:?}");
        }
        assert!(
            runs.len() < 40,
            "{} retries in 600 ms is a hot loop",
            runs.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_notification_runs_every_failed_key_at_once_despite_its_backoff() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runs = Arc::new(Mutex::new(Vec::new()));
        let r = runs.clone();
        let retry = Arc::new(Notify::new());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let notify = retry.clone();
        let handle = tokio::spawn(async move {
            run(
                &mut rx,
                [],
                QueueConfig {
                    concurrency: 4,
                    // Far longer than the test: only the notification can rerun a key.
                    backoff: Backoff {
                        initial: Duration::from_secs(600),
                        max: Duration::from_secs(600),
                    },
                    deadline: Duration::from_secs(1),
                },
                &notify,
                move |key: u32| {
                    let r = r.clone();
                    async move {
                        r.lock().unwrap().push(key);
                        if key == 0 {
                            Outcome::Done
                        } else {
                            Outcome::Failed
                        }
                    }
                },
                |_| {},
                async {
                    stop_rx.await.ok();
                },
            )
            .await
        });
        for key in 0..3 {
            tx.send(key).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs.lock().unwrap().len(), 3);
        retry.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop_tx.send(()).unwrap();
        handle.await.unwrap();
        let mut runs = runs.lock().unwrap().clone();
        runs.sort_unstable();
        // The failed keys ran again; the one that succeeded did not.
        assert_eq!(runs, vec![0, 1, 1, 2, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_that_repeats_is_retried_less_and_less_often() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runs = Arc::new(Mutex::new(0u32));
        let r = runs.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            run(
                &mut rx,
                [],
                QueueConfig {
                    concurrency: 1,
                    backoff: Backoff::default(),
                    deadline: Duration::from_secs(1),
                },
                &Notify::new(),
                move |_: u32| {
                    let r = r.clone();
                    async move {
                        *r.lock().unwrap() += 1;
                        Outcome::Conflict
                    }
                },
                |_| {},
                async {
                    stop_rx.await.ok();
                },
            )
            .await
        });
        tx.send(1).unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop_tx.send(()).unwrap();
        handle.await.unwrap();
        // Runs at 0, 50, 150, 350 and 750 ms: five in 1 s, where a fixed 50 ms made 20.
        let runs = *runs.lock().unwrap();
        assert_eq!(runs, 5, "{runs} runs in 1 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_to_a_synced_object_overtakes_a_backlog_of_new_ones() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runs = Arc::new(Mutex::new(Vec::new()));
        let r = runs.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // Keys below 1000 are new objects; 1000 and above are changes to synced ones.
        let lane = |k: &u32| {
            if *k >= 1000 {
                Lane::Changes
            } else {
                Lane::Rest
            }
        };
        let handle = tokio::spawn(async move {
            run_lanes(
                &mut rx,
                0..200u32,
                QueueConfig {
                    concurrency: 2,
                    backoff: Backoff::default(),
                    deadline: Duration::from_secs(1),
                },
                &Notify::new(),
                lane,
                move |key: u32| {
                    let r = r.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        r.lock().unwrap().push(key);
                        Outcome::Done
                    }
                },
                |_| {},
                async {
                    stop_rx.await.ok();
                },
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(55)).await;
        for k in 1000..1010u32 {
            tx.send(k).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop_tx.send(()).unwrap();
        handle.await.unwrap();
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), 210, "every key ran once: {runs:?}");
        let last_change = runs.iter().rposition(|k| *k >= 1000).unwrap();
        // Ten changes, at most four in a row before one new key: done within about 13 runs
        // of their arrival (after about 10 of the 200 new keys had run), not after all 200.
        assert!(
            last_change < 30,
            "the last change ran as run {last_change} of 210: {runs:?}"
        );
        // The new keys were not starved: some ran between the changes.
        let first_change = runs.iter().position(|k| *k >= 1000).unwrap();
        let new_between = runs[first_change..last_change]
            .iter()
            .filter(|k| **k < 1000)
            .count();
        assert!(
            new_between >= 2,
            "no new key ran among the changes: {runs:?}"
        );
    }
}
