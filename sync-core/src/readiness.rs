//! Readiness: whether a reconciler can do its work, as a value a program can await or watch.
//!
//! It becomes true once every watch has listed its objects, turns false while a watch has been
//! failing for longer than a threshold, and true again once that watch recovers.
//!
//! Recovery is not always announced. A watch that resumes from its last resource version
//! reports nothing until an object changes, so an idle watch that answers again looks exactly
//! like one that is still failing and silent. But a failing watch retries at least once per its
//! backoff's cap (5 s), and each try fails again. So a watch counts as failing from its first
//! error until it yields an event, or until it has not failed for [`QUIET`] while its cluster
//! answers (the reachability probe says so: a watch whose cluster is marked unreachable keeps
//! failing however long it has been quiet). A watch whose requests hang (an API server frozen
//! with its connections open) reports no error at all, and so is not seen here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{info, warn};

/// See [`SyncBuilder::unready_after`](crate::SyncBuilder::unready_after).
pub(crate) const DEFAULT_UNREADY_AFTER: Duration = Duration::from_secs(60);

/// How long after its last error a watch counts as recovered, if its cluster answers: twice
/// the cap of the watch backoff, so a watch that still fails has failed again by then.
pub(crate) const QUIET: Duration = Duration::from_secs(10);

/// How often to look again while a cluster is unreachable, past [`QUIET`].
const RECHECK: Duration = Duration::from_secs(1);

/// The readiness of one running reconciler, published on a `watch` channel (and, for
/// compatibility, an optional flag).
pub(crate) struct Readiness {
    /// The controller's name, for logs.
    controller: String,
    tx: watch::Sender<bool>,
    flag: Option<Arc<AtomicBool>>,
    threshold: Duration,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    caches_filled: bool,
    stopped: bool,
    watches: Vec<Watch>,
}

struct Watch {
    /// Whether the watch's cluster is known to be unreachable.
    down: Box<dyn Fn() -> bool + Send + Sync>,
    failing: Option<Streak>,
}

/// A run of failures of one watch.
#[derive(Clone, Copy)]
struct Streak {
    since: Instant,
    last: Instant,
}

/// The health of one watch, which it reports to its [`Readiness`].
pub(crate) struct WatchHealth {
    readiness: Arc<Readiness>,
    id: usize,
}

impl Readiness {
    /// Publishes on `tx` and `flag`; a watch that fails for longer than `threshold` makes the
    /// reconciler unready.
    pub(crate) fn new(
        controller: &str,
        tx: watch::Sender<bool>,
        flag: Option<Arc<AtomicBool>>,
        threshold: Duration,
    ) -> Arc<Self> {
        Arc::new(Readiness {
            controller: controller.to_owned(),
            tx,
            flag,
            threshold,
            state: Mutex::default(),
            changed: Notify::new(),
        })
    }

    /// A watch to follow; `down` says whether its cluster is known to be unreachable.
    pub(crate) fn watch(
        self: &Arc<Self>,
        down: impl Fn() -> bool + Send + Sync + 'static,
    ) -> WatchHealth {
        let mut state = self.lock();
        state.watches.push(Watch {
            down: Box::new(down),
            failing: None,
        });
        WatchHealth {
            readiness: self.clone(),
            id: state.watches.len() - 1,
        }
    }

    /// Every watch has listed its objects once.
    pub(crate) fn caches_filled(&self) {
        self.lock().caches_filled = true;
        self.changed.notify_one();
    }

    /// The reconciler stopped: not ready, for good.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.publish(false);
    }

    /// Publishes the readiness, and again at each deadline or change, until dropped.
    pub(crate) async fn drive(self: Arc<Self>) {
        loop {
            let (ready, next) = self.evaluate(Instant::now());
            self.publish(ready);
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    /// Whether the reconciler is ready at `now`, and when to look again (if a deadline can
    /// change it without any report).
    fn evaluate(&self, now: Instant) -> (bool, Option<Instant>) {
        let mut state = self.lock();
        let mut healthy = true;
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for w in &mut state.watches {
            let Some(s) = w.failing else { continue };
            let quiet_from = s.last + QUIET;
            let down = (w.down)();
            if now >= quiet_from && !down {
                w.failing = None;
                continue;
            }
            at(if now >= quiet_from {
                now + RECHECK
            } else {
                quiet_from
            });
            let unready_from = s.since + self.threshold;
            if now >= unready_from {
                healthy = false;
            } else {
                at(unready_from);
            }
        }
        (state.caches_filled && !state.stopped && healthy, next)
    }

    /// Publishes `ready` (false once stopped), under the lock so that a stop is never
    /// overwritten by an evaluation made before it.
    fn publish(&self, ready: bool) {
        let state = self.lock();
        let ready = ready && !state.stopped;
        if let Some(f) = &self.flag {
            f.store(ready, Ordering::Relaxed);
        }
        let flipped = self
            .tx
            .send_if_modified(|v| std::mem::replace(v, ready) != ready);
        match (flipped, ready) {
            (true, true) => info!(controller = %self.controller, "ready"),
            (true, false) if !state.stopped => warn!(
                controller = %self.controller,
                threshold = ?self.threshold,
                "not ready: a watch has been failing for longer than the threshold"
            ),
            _ => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WatchHealth {
    /// The watch failed (it retries with backoff).
    pub(crate) fn failed(&self) {
        let now = Instant::now();
        let mut state = self.readiness.lock();
        let w = &mut state.watches[self.id];
        match &mut w.failing {
            Some(s) => s.last = now,
            None => {
                w.failing = Some(Streak {
                    since: now,
                    last: now,
                });
                drop(state);
                self.readiness.changed.notify_one();
            }
        }
    }

    /// The watch yielded an event: it works.
    pub(crate) fn ok(&self) {
        let mut state = self.readiness.lock();
        if state.watches[self.id].failing.take().is_some() {
            drop(state);
            self.readiness.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use tokio::time::sleep;

    use super::*;

    const THRESHOLD: Duration = Duration::from_secs(30);

    struct World {
        rx: watch::Receiver<bool>,
        readiness: Arc<Readiness>,
        health: WatchHealth,
        down: Arc<AtomicBool>,
        flag: Arc<AtomicBool>,
    }

    fn world() -> World {
        let (tx, rx) = watch::channel(false);
        let flag = Arc::new(AtomicBool::new(false));
        let readiness = Readiness::new("test", tx, Some(flag.clone()), THRESHOLD);
        let down = Arc::new(AtomicBool::new(false));
        let d = down.clone();
        let health = readiness.watch(move || d.load(Ordering::SeqCst));
        // A second, healthy watch: it must not hide the first one's failure.
        let _other = readiness.watch(|| false);
        tokio::spawn(readiness.clone().drive());
        World {
            rx,
            readiness,
            health,
            down,
            flag,
        }
    }

    impl World {
        fn ready(&mut self) -> bool {
            let v = *self.rx.borrow_and_update();
            assert_eq!(
                v,
                self.flag.load(Ordering::Relaxed),
                "the flag follows the channel"
            );
            v
        }
        /// Fails every 5 s (the watch backoff's cap) for `d`.
        async fn fail_for(&self, d: Duration) {
            let end = Instant::now() + d;
            while Instant::now() < end {
                self.health.failed();
                sleep(Duration::from_secs(5).min(end - Instant::now())).await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn not_ready_until_the_caches_are_filled() {
        let mut w = world();
        sleep(Duration::from_secs(120)).await;
        assert!(!w.ready());
        w.readiness.caches_filled();
        sleep(Duration::from_millis(1)).await;
        assert!(w.ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_failing_past_the_threshold_makes_it_unready_until_it_has_been_quiet() {
        let mut w = world();
        w.readiness.caches_filled();
        sleep(Duration::from_millis(1)).await;
        assert!(w.ready());
        let start = Instant::now();
        // Failing, but not yet for the threshold: still ready.
        w.fail_for(THRESHOLD - Duration::from_secs(1)).await;
        assert!(w.ready());
        // Past it: unready within a moment of the threshold, not at the next error.
        w.health.failed();
        w.rx.changed().await.unwrap();
        assert!(!w.ready());
        assert_eq!(Instant::now() - start, THRESHOLD);
        w.fail_for(Duration::from_secs(20)).await;
        assert!(!w.ready());
        // The last error; the watch resumes silently. Ready again once quiet.
        let last = Instant::now();
        w.health.failed();
        w.rx.changed().await.unwrap();
        assert!(w.ready());
        assert_eq!(Instant::now() - last, QUIET);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_cluster_keeps_a_quiet_watch_failing() {
        let mut w = world();
        w.readiness.caches_filled();
        w.down.store(true, Ordering::SeqCst);
        w.health.failed();
        sleep(THRESHOLD + Duration::from_secs(60)).await;
        assert!(!w.ready());
        // The probe sees it answer: ready within a recheck.
        w.down.store(false, Ordering::SeqCst);
        let back = Instant::now();
        w.rx.changed().await.unwrap();
        assert!(w.ready());
        assert!(Instant::now() - back <= RECHECK);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_proves_the_watch_works_at_once() {
        let mut w = world();
        w.readiness.caches_filled();
        w.fail_for(THRESHOLD + Duration::from_secs(5)).await;
        assert!(!w.ready());
        w.health.ok();
        w.rx.changed().await.unwrap();
        assert!(w.ready());
        // A new failure starts a new streak: the threshold counts from it.
        w.fail_for(THRESHOLD - Duration::from_secs(1)).await;
        assert!(w.ready());
    }

    #[tokio::test(start_paused = true)]
    async fn short_failures_never_make_it_unready() {
        let mut w = world();
        w.readiness.caches_filled();
        for _ in 0..10 {
            w.fail_for(Duration::from_secs(20)).await;
            sleep(QUIET + Duration::from_secs(1)).await;
            assert!(w.ready());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stopped_is_unready_for_good() {
        let mut w = world();
        w.readiness.caches_filled();
        sleep(Duration::from_millis(1)).await;
        assert!(w.ready());
        w.readiness.stop();
        assert!(!w.ready());
        w.health.ok();
        sleep(Duration::from_secs(1)).await;
        assert!(!w.ready());
    }
}
