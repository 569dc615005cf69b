//! The builder that configures a reconciler and runs it: the public face of the runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::kind::KindBuilder;
use super::manager::{Settings, SyncManager};
use crate::clients::{Local, Remote};
use crate::config::SyncConfig;
use crate::dynamic::Dynamic;
use crate::error::{ConfigError, RunError};
use crate::metrics::Metrics;
use crate::syncable::{SyncObject, Syncable};

/// Configures and runs the reconciler of one kind. Start from [`Syncable::reconciler`].
///
/// # Example
///
/// ```no_run
/// # use sync_core::{Local, Metrics, Remote, Syncable};
/// # async fn demo<K: Syncable>(remote: kube::Client, local: kube::Client) -> Result<(), sync_core::RunError> {
/// let region = std::env::var("REGION_SUFFIX").unwrap_or_default();
/// let mut registry = prometheus_client::registry::Registry::default();
/// K::reconciler(Remote(remote), Local(local))
///     .configure(|c| c.remote_suffix(region).concurrency(8))
///     .metrics(Metrics::new(&mut registry))
///     .run(async { tokio::signal::ctrl_c().await.ok(); })
///     .await
/// # }
/// ```
///
/// A [`SyncManager`] runs several kinds in one process; this is a manager of one kind.
#[must_use]
pub struct SyncBuilder<K: SyncObject> {
    settings: Settings,
    kind: KindBuilder<K>,
    check: Result<(), ConfigError>,
}

impl<K: Syncable> SyncBuilder<K> {
    /// A builder with the kind's compile-time defaults, for the clients of the remote
    /// (management) and the local (regional) cluster.
    pub fn new(remote: Remote, local: Local) -> Self {
        SyncBuilder::with_kind((), remote, local)
    }

    /// Changes the remote spec on its way down, for this region only; see
    /// [`KindBuilder::transform_spec`].
    pub fn transform_spec(mut self, f: impl Fn(&mut K::Spec) + Send + Sync + 'static) -> Self {
        self.kind = self.kind.transform_spec(f);
        self
    }
}

impl SyncBuilder<Dynamic> {
    /// Changes the remote spec (as JSON) on its way down, for this region only; see
    /// [`KindBuilder::transform_json`].
    pub fn transform_json(
        mut self,
        f: impl Fn(&mut serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        self.kind = self.kind.transform_json(f);
        self
    }
}

impl<K: SyncObject> SyncBuilder<K> {
    /// A builder for the kind `kind` (`()` for a Rust type, an `Arc<DynamicKind>` for a
    /// runtime-chosen one), starting from its defaults.
    pub(crate) fn with_kind(kind: K::Kind, remote: Remote, local: Local) -> Self {
        let config = K::defaults(&kind);
        SyncBuilder {
            settings: Settings::new(remote, local),
            kind: KindBuilder::new(kind, config),
            check: Ok(()),
        }
    }

    pub(crate) fn checked(mut self, check: Result<(), ConfigError>) -> Self {
        self.check = check;
        self
    }

    /// Calls `f` with how each reconcile pass ended (the object and the outcome, with the error
    /// of a failed pass), as kube-runtime's `Controller::run` yields a result per reconcile.
    /// `f` runs on the pass's task: keep it short, or hand the value to a channel.
    ///
    /// ```no_run
    /// # use sync_core::{Local, Remote, Syncable};
    /// # async fn demo<K: Syncable>(remote: kube::Client, local: kube::Client) -> Result<(), sync_core::RunError> {
    /// let (tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    /// tokio::spawn(async move {
    ///     while let Some(r) = outcomes.recv().await {
    ///         let r: sync_core::Reconciled = r;
    ///         if r.is_failure() {
    ///             eprintln!("{} failed: {:?}", r.object, r.error);
    ///         }
    ///     }
    /// });
    /// K::reconciler(Remote(remote), Local(local))
    ///     .on_reconciled(move |r| {
    ///         let _ = tx.send(r.clone());
    ///     })
    ///     .run(std::future::pending())
    ///     .await
    /// # }
    /// ```
    pub fn on_reconciled(mut self, f: impl Fn(&crate::Reconciled) + Send + Sync + 'static) -> Self {
        self.kind = self.kind.on_reconciled(f);
        self
    }

    /// Overrides configuration values, starting from the current ones:
    /// `.configure(|c| c.remote_suffix("-eu").concurrency(4))`.
    pub fn configure(mut self, f: impl FnOnce(SyncConfig) -> SyncConfig) -> Self {
        self.kind = self.kind.configure(f);
        self
    }

    /// The configuration the reconciler will run with.
    pub fn config(&self) -> &SyncConfig {
        self.kind.config()
    }

    /// Counts into these metrics (by default, metrics registered nowhere).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.settings.metrics = metrics;
        self
    }

    /// Backoff of failed keys (by default 0.5 s doubling up to 60 s, with jitter).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.kind = self.kind.backoff(initial, max);
        self
    }

    /// How long one request to an API server may go unanswered before it counts as failed
    /// (default 30 s). A frozen or partitioned API server accepts connections and never
    /// answers; without a limit, each object waiting on it would hold a worker for good.
    /// An unanswered request fails its object's pass (retried with backoff); the cluster
    /// counts as unreachable only when a version request then goes unanswered too, so one
    /// slow request (a slow admission webhook on one object) does not stop the others.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// How long running reconciles may take to finish after shutdown is asked (default 10 s).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.settings.shutdown_deadline = deadline;
        self
    }

    /// Whether the reconciler can do its work, as a value to await or watch (a readiness
    /// probe, a start-up gate). It becomes true once every watch has listed its objects, turns
    /// false while a watch has been failing for longer than
    /// [`unready_after`](Self::unready_after) (60 s by default), true again once the watch
    /// recovers, and false for good when [`run`](Self::run) returns. Take it before `run`; any
    /// number of receivers may be taken.
    ///
    /// A standby replica under leader election is ready too: its caches are warm and it takes
    /// over as soon as it holds the Lease.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use sync_core::{Local, Remote, Syncable};
    /// # async fn demo<K: Syncable>(remote: kube::Client, local: kube::Client) {
    /// let builder = K::reconciler(Remote(remote), Local(local));
    /// let mut ready = builder.readiness();
    /// tokio::spawn(builder.run(std::future::pending()));
    /// // Wait until the caches are filled...
    /// ready.wait_for(|r| *r).await.ok();
    /// // ...then follow each change.
    /// while ready.changed().await.is_ok() {
    ///     println!("ready: {}", *ready.borrow_and_update());
    /// }
    /// # }
    /// ```
    ///
    /// # Caveats
    ///
    /// A watch that resumes after an outage says nothing until an object changes, so recovery
    /// is seen when the watch has not failed for 10 s (twice its retry cap) and its cluster
    /// answers: readiness returns 5 to 15 s after an API server does. A watch whose requests
    /// hang reports no failure, so an API server that freezes without dropping its watch
    /// connections leaves readiness true (its passes fail after
    /// [`request_timeout`](Self::request_timeout) meanwhile).
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.settings.readiness.subscribe()
    }

    /// How long a watch may fail before [`readiness`](Self::readiness) turns false (default
    /// 60 s). A watch retries with backoff meanwhile, and the caches serve what they last saw;
    /// a short outage of an API server should not take a replica out of service.
    pub fn unready_after(mut self, threshold: Duration) -> Self {
        self.settings.unready_after = threshold;
        self
    }

    /// A flag set once every watch has listed its objects, and cleared when the reconciler
    /// stops; for readiness probes. It follows [`readiness`](Self::readiness) exactly.
    #[deprecated(
        since = "0.1.0",
        note = "use `SyncBuilder::readiness`, a value that can be awaited and watched"
    )]
    pub fn ready_flag(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.settings.ready = Some(flag);
        self
    }

    /// Only write while holding a Lease in the local cluster (see [`crate::LeaderElection`]).
    pub fn leader_election(mut self, leader: crate::leader::LeaderElection) -> Self {
        self.settings.leader = Some(leader);
        self
    }

    /// Runs until `shutdown` resolves.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use sync_core::{Local, Remote, RunError, Syncable};
    /// # async fn demo<K: Syncable>(remote: kube::Client, local: kube::Client) {
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let reconciler = tokio::spawn(K::reconciler(Remote(remote), Local(local)).run(async {
    ///     stopped.await.ok();
    /// }));
    /// // ... until the binary is asked to stop:
    /// stop.send(()).ok();
    /// match reconciler.await.expect("the reconciler panicked") {
    ///     Ok(()) => {}
    ///     Err(RunError::InvalidConfig(e)) => eprintln!("refused: {e}"),
    ///     Err(e) => eprintln!("stopped: {e}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RunError::InvalidConfig`] when the configuration can never work (an invalid suffix or
    /// secret name, zero concurrency); [`RunError::SameCluster`] when the two clients reach
    /// the same cluster and the mapping would sync objects onto themselves (found once the
    /// caches are filled, before anything is written); [`RunError::LeaseManagerStopped`] when
    /// the leader election task stopped unexpectedly. Failures of single objects, and of single looks at
    /// the Lease, are retried, never returned.
    ///
    /// # Guarantees
    ///
    /// Nothing is written before the initial lists of every watch have completed, so a cache
    /// that is still filling never makes an object look deleted. After `shutdown` resolves no
    /// new reconcile starts; running ones get the shutdown deadline to finish. Under leader
    /// election that holds too (the Lease is renewed meanwhile, then released), except that
    /// losing the Lease stops running reconciles at once: see [`crate::LeaderElection`].
    ///
    /// # Caveats
    ///
    /// Without [`SyncBuilder::leader_election`] every replica writes: run one replica per
    /// controller name, or enable leader election. Two clients of one cluster are recognised
    /// by an object both caches hold (UIDs are unique per cluster): with no object of the kind
    /// at start-up there is nothing to recognise them by.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        SyncManager::with(self.settings)
            .push(self.kind, self.check)
            .run(shutdown)
            .await
    }
}
