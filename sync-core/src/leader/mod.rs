//! Leader election on a `coordination.k8s.io/v1` Lease, and the fence every write passes.
//!
//! The elector is small and our own: kube-lease-manager (the crate used before) judged expiry
//! from the holder's `renewTime` against the reader's wall clock and kept reporting "leading"
//! while renewals failed, so a frozen or cut-off leader went on writing after a standby took
//! over. The rules here are client-go's:
//!
//! - **Standby.** A replica takes the Lease when it is free, names this replica, or has not
//!   changed (its `resourceVersion`) for its `leaseDurationSeconds` *as observed on the
//!   replica's own monotonic clock*, counted from when this replica first saw its current
//!   version. The holder's `renewTime` is written for people, never compared with a clock.
//! - **Holder.** It renews every retry period. Its hold counts until the renew deadline after
//!   the *sending* of its last successful renewal, on its own monotonic clock; then the
//!   [`Fence`] refuses writes and work stops, whether or not a standby took over.
//! - **Why that is safe.** A standby saw the last accepted renewal after it was sent, so it
//!   takes over at least a lease duration after that sending; the holder stopped writing a
//!   renew deadline after it. `lease_duration - renew_deadline` is the margin for a write
//!   already in flight and for clocks that tick at slightly different rates.
//!
//! Writes are optimistic: every create or update of the Lease carries the version it was
//! decided on, so two standbys racing for a lapsed Lease cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use rand::RngExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod elector;
mod fence;

pub(crate) use elector::{Decision, Elector};
pub(crate) use fence::{Fence, NotLeading};

/// Leader election through a `coordination.k8s.io` Lease in the local cluster, for running
/// several replicas of a controller: only the holder of the Lease writes.
///
/// Standby replicas keep their watches and caches warm, so a takeover starts reconciling at
/// once.
///
/// # Example
///
/// ```no_run
/// # use std::time::Duration;
/// # use sync_core::{LeaderElection, Local, Remote, Syncable};
/// # async fn demo<K: Syncable>(
/// #     remote: kube::Client,
/// #     local: kube::Client,
/// #     shutdown: impl std::future::Future<Output = ()> + Send + 'static,
/// # ) -> Result<(), sync_core::RunError> {
/// let pod = std::env::var("POD_NAME").unwrap_or_else(|_| "database-sync-0".into());
/// let election = LeaderElection::new("database-sync", "sync-system", pod)
///     .lease_duration(Duration::from_secs(15))
///     .renew_deadline(Duration::from_secs(10))
///     .retry_period(Duration::from_secs(2));
/// K::reconciler(Remote(remote), Local(local))
///     .leader_election(election)
///     .run(shutdown)
///     .await
/// # }
/// ```
///
/// The local role then needs the rules on Leases that
/// [`rbac::local_rules`](crate::rbac::local_rules) adds with `leader_election = true`.
///
/// # Guarantees
///
/// - A standby takes over only once it has seen the Lease go unrenewed for the lease duration
///   on its own monotonic clock (or the Lease was released, or is free). Wall clocks are never
///   compared, so clock skew between nodes does not matter.
/// - The holder sends no write (to either cluster) once its last successful renewal was *sent*
///   more than the renew deadline ago by its own monotonic clock: a leader frozen (SIGSTOP, a
///   GC pause, a stalled node) or cut off from the local API server stops writing before a
///   standby may take over, and its running reconciles are stopped at once.
/// - On shutdown, running reconciles get the shutdown deadline to finish while the Lease is
///   still renewed; then the Lease is released, so a standby takes over within a retry period.
///
/// # Caveats
///
/// - The fence is checked just before each request is sent. A request already sent may still
///   land after the deadline; the margin `lease_duration - renew_deadline` covers it as long
///   as requests are answered well within it.
/// - Each replica needs its own `identity`: two replicas with one identity both lead.
#[derive(Clone, Debug)]
#[must_use]
pub struct LeaderElection {
    lease_name: String,
    namespace: String,
    identity: String,
    duration: Duration,
    renew_deadline: Option<Duration>,
    retry_period: Option<Duration>,
    grace: Option<Duration>,
}

/// The lease duration, renew deadline and retry period, resolved and consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timings {
    /// How long a Lease unrenewed (as a standby observes it) holds up a takeover.
    pub duration: Duration,
    /// How long after sending its last successful renewal the holder may write.
    pub renew_deadline: Duration,
    /// How often the holder renews and a standby looks.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Election on the Lease `lease_name` in `namespace`, as `identity` (unique per replica,
    /// typically the pod name). By default, client-go's timings: the Lease lasts 15 s, the
    /// holder stops writing 10 s after its last successful renewal, and renews every 2 s.
    pub fn new(
        lease_name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaderElection {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: None,
            retry_period: None,
            grace: None,
        }
    }

    /// How long a standby waits, after it last saw the Lease change, before it takes the Lease
    /// over (whole seconds, at least 2): the longest a dead leader holds up a takeover.
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.duration = Duration::from_secs(d.as_secs().max(2));
        self
    }

    /// How long after sending its last successful renewal the holder keeps writing (default:
    /// two thirds of the lease duration). Kept below nine tenths of the lease duration: the
    /// rest is the margin for a write already in flight.
    pub fn renew_deadline(mut self, d: Duration) -> Self {
        self.renew_deadline = Some(d);
        self
    }

    /// How often the holder renews the Lease and a standby looks at it (default: a quarter of
    /// the renew deadline, at most 2 s). Kept at most half the renew deadline, so one failed
    /// renewal never costs the Lease.
    pub fn retry_period(mut self, d: Duration) -> Self {
        self.retry_period = Some(d);
        self
    }

    /// How long before the lease duration runs out the holder must have renewed: sets the
    /// renew deadline to `lease_duration - d` unless [`renew_deadline`](Self::renew_deadline)
    /// is set.
    #[deprecated(
        since = "0.1.0",
        note = "use `renew_deadline` (and `retry_period`); `renew_grace(g)` means `renew_deadline(lease_duration - g)`"
    )]
    pub fn renew_grace(mut self, d: Duration) -> Self {
        self.grace = Some(d);
        self
    }

    /// The timings this election runs with.
    pub(crate) fn timings(&self) -> Timings {
        let duration = self.duration;
        let deadline = self
            .renew_deadline
            .or_else(|| self.grace.map(|g| duration.saturating_sub(g)))
            .unwrap_or(duration * 2 / 3)
            .min(duration.mul_f64(0.9))
            .max(Duration::from_millis(200));
        let retry = self
            .retry_period
            .unwrap_or_else(|| (deadline / 4).min(Duration::from_secs(2)))
            .min(deadline / 2)
            .max(Duration::from_millis(50));
        Timings {
            duration,
            renew_deadline: deadline,
            retry_period: retry,
        }
    }

    /// This replica's identity.
    pub(crate) fn identity(&self) -> &str {
        &self.identity
    }

    /// The Lease, as `namespace/name`.
    pub(crate) fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.lease_name)
    }

    /// Starts electing in the background; `fence` follows this replica's hold on the Lease.
    pub(crate) fn spawn(self, client: Client, fence: Fence) -> ElectionHandle {
        let (stop, stopped) = oneshot::channel();
        let lease = self.lease();
        let task = tokio::spawn(self.elect(client, fence, stopped));
        ElectionHandle {
            lease,
            stop: Some(stop),
            task,
        }
    }

    /// Looks at the Lease and takes or renews it every retry period until `stop`; then closes
    /// the fence and releases the Lease if it is still ours.
    async fn elect(self, client: Client, fence: Fence, mut stop: oneshot::Receiver<()>) {
        let api = Api::<Lease>::namespaced(client, &self.namespace);
        let timings = self.timings();
        let mut elector = Elector::new(&self.identity, timings);
        let mut failing = false;
        loop {
            let attempt =
                tokio::time::timeout(timings.renew_deadline, self.look(&api, &mut elector))
                    .await
                    .unwrap_or_else(|_| Err(LeaseError::NoAnswer(timings.renew_deadline)));
            match attempt {
                Ok(_) => failing = false,
                Err(e) if !failing && elector.leading_until().is_some() => {
                    failing = true;
                    warn!(lease = %self.lease(), error = %e, "failed to renew the lease; writes stop at the renew deadline unless a renewal succeeds");
                }
                Err(e) => debug!(lease = %self.lease(), error = %e, "failed to look at the lease"),
            }
            fence.hold_until(elector.leading_until());
            // A standby's looks are spread a little, as client-go's, so standbys do not race.
            let pause = match elector.leading_until() {
                Some(_) => timings.retry_period,
                None => timings
                    .retry_period
                    .mul_f64(rand::rng().random_range(1.0..1.2)),
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = &mut stop => break,
            }
        }
        fence.close();
        if elector.leading_until().is_some() {
            match tokio::time::timeout(timings.renew_deadline, self.release(&api, &elector)).await {
                Ok(Ok(())) => info!(lease = %self.lease(), "released the lease"),
                Ok(Err(e)) => {
                    warn!(lease = %self.lease(), error = %e, "failed to release the lease; a standby takes over when it lapses")
                }
                Err(_) => {
                    warn!(lease = %self.lease(), "no answer releasing the lease; a standby takes over when it lapses")
                }
            }
        }
    }

    /// One look at the Lease and the write it calls for.
    async fn look(&self, api: &Api<Lease>, elector: &mut Elector) -> Result<(), LeaseError> {
        let current = api.get_opt(&self.lease_name).await?;
        let decision = elector.decide(current.as_ref(), Instant::now());
        let body = match decision {
            Decision::Wait => return Ok(()),
            Decision::Create | Decision::Take => {
                elector.claim(current.as_ref(), &self.lease_name, Timestamp::now())
            }
        };
        let was_leading = elector.leading_until() > Some(Instant::now());
        let pp = PostParams::default();
        let sent = Instant::now();
        let written = match (decision, current) {
            (Decision::Create, _) | (_, None) => api.create(&pp, &body).await,
            (_, Some(_)) => api.replace(&self.lease_name, &pp, &body).await,
        };
        match written {
            Ok(lease) => {
                elector.took(sent, &lease, Instant::now());
                if !was_leading {
                    info!(lease = %self.lease(), identity = %self.identity, "acquired the lease");
                }
                Ok(())
            }
            // Another replica wrote first: the next look sees what it wrote.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Empties the holder, so a standby takes the Lease at its next look.
    async fn release(&self, api: &Api<Lease>, elector: &Elector) -> Result<(), LeaseError> {
        let Some(current) = api.get_opt(&self.lease_name).await? else {
            return Ok(());
        };
        let Some(body) = elector.released(&current, Timestamp::now()) else {
            return Ok(());
        };
        api.replace(&self.lease_name, &PostParams::default(), &body)
            .await?;
        Ok(())
    }
}

/// Why one look at the Lease failed; the next look tries again.
#[derive(Debug, thiserror::Error)]
enum LeaseError {
    /// The API server refused or failed the request.
    #[error("failed to read or write the lease: {0}")]
    Api(#[from] kube::Error),
    /// The API server did not answer in time.
    #[error("failed to read or write the lease: no answer within {0:?}")]
    NoAnswer(Duration),
}

/// The running election of one replica.
pub(crate) struct ElectionHandle {
    lease: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ElectionHandle {
    /// The Lease, as `namespace/name`.
    pub(crate) fn lease(&self) -> &str {
        &self.lease
    }

    /// Stops electing, closes the fence and releases the Lease if this replica holds it.
    ///
    /// # Errors
    ///
    /// When the election task panicked.
    pub(crate) async fn release(mut self) -> Result<(), tokio::task::JoinError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await
    }

    /// Resolves when the election task ended by itself (it panicked).
    pub(crate) async fn stopped(&mut self) -> tokio::task::JoinError {
        match (&mut self.task).await {
            Err(e) => e,
            Ok(()) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests;
