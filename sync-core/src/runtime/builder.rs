//! The builder that configures a reconciler and runs it: the public face of the runtime.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use tokio::sync::watch;
use tracing::info;

use super::{Inner, forward};
use crate::clients::{Local, Remote};
use crate::config::SyncConfig;
use crate::error::RunError;
use crate::leader::Fence;
use crate::metrics::Metrics;
use crate::outcome::OnReconciled;
use crate::readiness::{DEFAULT_UNREADY_AFTER, Readiness};
use crate::scheduler::Backoff;
use crate::syncable::Syncable;

/// See [`SyncBuilder::request_timeout`].
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
#[must_use]
pub struct SyncBuilder<K> {
    remote: Client,
    local: Client,
    config: SyncConfig,
    metrics: Metrics,
    backoff: Backoff,
    shutdown_deadline: Duration,
    request_timeout: Duration,
    ready: Option<Arc<std::sync::atomic::AtomicBool>>,
    readiness: watch::Sender<bool>,
    unready_after: Duration,
    leader: Option<crate::leader::LeaderElection>,
    on_reconciled: Option<OnReconciled>,
    _kind: PhantomData<fn() -> K>,
}

impl<K: Syncable> SyncBuilder<K> {
    /// A builder with the kind's compile-time defaults, for the clients of the remote
    /// (management) and the local (regional) cluster.
    pub fn new(remote: Remote, local: Local) -> Self {
        SyncBuilder {
            remote: remote.0,
            local: local.0,
            config: K::defaults(),
            metrics: Metrics::default(),
            backoff: Backoff::default(),
            shutdown_deadline: Duration::from_secs(10),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ready: None,
            readiness: watch::Sender::new(false),
            unready_after: DEFAULT_UNREADY_AFTER,
            leader: None,
            on_reconciled: None,
            _kind: PhantomData,
        }
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
        self.on_reconciled = Some(std::sync::Arc::new(f));
        self
    }

    /// Overrides configuration values, starting from the current ones:
    /// `.configure(|c| c.remote_suffix("-eu").concurrency(4))`.
    pub fn configure(mut self, f: impl FnOnce(SyncConfig) -> SyncConfig) -> Self {
        self.config = f(self.config);
        self
    }

    /// The configuration the reconciler will run with.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Counts into these metrics (by default, metrics registered nowhere).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Backoff of failed keys (by default 0.5 s doubling up to 60 s, with jitter).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff { initial, max };
        self
    }

    /// How long one request to an API server may go unanswered before it counts as failed
    /// (default 30 s). A frozen or partitioned API server accepts connections and never
    /// answers; without a limit, each object waiting on it would hold a worker for good.
    /// An unanswered request fails its object's pass (retried with backoff); the cluster
    /// counts as unreachable only when a version request then goes unanswered too, so one
    /// slow request (a slow admission webhook on one object) does not stop the others.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long running reconciles may take to finish after shutdown is asked (default 10 s).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
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
        self.readiness.subscribe()
    }

    /// How long a watch may fail before [`readiness`](Self::readiness) turns false (default
    /// 60 s). A watch retries with backoff meanwhile, and the caches serve what they last saw;
    /// a short outage of an API server should not take a replica out of service.
    pub fn unready_after(mut self, threshold: Duration) -> Self {
        self.unready_after = threshold;
        self
    }

    /// A flag set once every watch has listed its objects, and cleared when the reconciler
    /// stops; for readiness probes. It follows [`readiness`](Self::readiness) exactly.
    #[deprecated(
        since = "0.1.0",
        note = "use `SyncBuilder::readiness`, a value that can be awaited and watched"
    )]
    pub fn ready_flag(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.ready = Some(flag);
        self
    }

    /// Only write while holding a Lease in the local cluster (see [`crate::LeaderElection`]).
    pub fn leader_election(mut self, leader: crate::leader::LeaderElection) -> Self {
        self.leader = Some(leader);
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
        let config = self.config.resolved();
        config.validate()?;
        // Under leader election nothing is written until the Lease is held.
        let fence = match &self.leader {
            Some(_) => Fence::closed(),
            None => Fence::open(),
        };
        let readiness = Readiness::new(
            &self.config.controller_name,
            self.readiness,
            self.ready,
            self.unready_after,
        );
        let (inner, writers) = Inner::<K>::new(
            (self.remote.clone(), self.local.clone()),
            config,
            &self.metrics,
            self.request_timeout,
            fence,
            readiness.clone(),
            self.on_reconciled.clone(),
        );
        let (rx, watch) = forward(inner.clone().triggers(writers));

        let shutdown = shutdown.boxed().shared();
        let backoff = self.backoff;
        let deadline = self.shutdown_deadline;
        let driver = tokio::spawn(readiness.clone().drive());
        let result = tokio::select! {
            () = shutdown.clone() => Ok(()),
            () = inner.wait_for_caches() => match inner.synced_onto_itself() {
                Some(object) => Err(RunError::SameCluster { object: object.to_string() }),
                None => {
                    // Ready means able to work: a standby with warm caches is ready too, so
                    // a rolling update of several replicas can proceed.
                    readiness.caches_filled();
                    inner
                        .clone()
                        .work_or_lead(self.leader, self.local.clone(), rx, backoff, deadline, shutdown.clone())
                        .await
                }
            }
        };
        driver.abort();
        readiness.stop();
        watch.abort();
        inner.remote_reach.stop();
        inner.local_reach.stop();
        info!(controller = %inner.config.controller_name, "reconciler stopped");
        result
    }
}
