//! Whether each cluster answers at all.
//!
//! When an API server goes away, every object whose pass needs it fails. Logging each failure
//! would flood the log with hundreds of identical lines, and waiting out each object's backoff
//! once the server is back would delay the catch-up by up to the backoff's cap. So the first
//! transport failure marks the cluster unreachable and logs once. While it is unreachable,
//! requests to it fail at once without being sent, failures are logged at debug level, and the
//! failed objects keep their capped backoff; a single probe asks the server for its version (at
//! most every 5 s), and when it answers the failed objects are retried at once.
//!
//! A request unanswered within the request timeout is not proof on its own: one slow request
//! (a slow admission webhook on one object) says nothing of the others. A version request
//! checks the cluster first (one at a time; passes that fail meanwhile share its result), and
//! only when that goes unanswered too is the cluster marked unreachable. Otherwise the failure
//! is the object's own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use kube::Client;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::info;

use crate::metrics::{Cluster, ControllerMetrics};

/// A request that got no answer within the request timeout. It is wrapped as
/// [`kube::Error::Service`], the variant of every other transport failure.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
pub(crate) struct NoAnswer(pub(crate) Duration);

/// A request not sent because its cluster is known to be unreachable; wrapped as
/// [`kube::Error::Service`] too.
#[derive(Debug, thiserror::Error)]
#[error("not sent: the cluster is unreachable, and a probe retries it")]
pub(crate) struct Unreachable;

/// Whether a failure says the API server could not be reached, as opposed to an answer.
pub(crate) fn is_transport(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// Whether a failure is a request that got no answer within the request timeout.
fn is_no_answer(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Service(s) if s.is::<NoAnswer>())
}

/// What a failure means for the cluster's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The API server answered, or one request was slow: the failure is the object's own.
    Answered,
    /// The first sign that the cluster is unreachable: log it.
    NowUnreachable,
    /// The cluster is already known to be unreachable: already logged.
    StillUnreachable,
}

/// The reachability of one cluster.
pub(crate) struct Reachability(Arc<Shared>);

struct Shared {
    cluster: Cluster,
    client: Client,
    timeout: Duration,
    down: AtomicBool,
    /// Moves on each outage and each failed watch: what was proven before may have changed
    /// unseen since.
    epoch: AtomicU64,
    /// When the last check after an unanswered request ended, and whether the server
    /// answered it. Held while a check runs, so concurrent failures share one.
    checked: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// Per reconciler that uses the cluster: its metrics, counting each outage, and its
    /// queue's wake-up, woken when the cluster answers again to retry its failed keys.
    listeners: Mutex<Vec<(Arc<ControllerMetrics>, Arc<Notify>)>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

const PROBE_FIRST: Duration = Duration::from_millis(500);
const PROBE_MAX: Duration = Duration::from_secs(5);

impl Reachability {
    pub(crate) fn new(cluster: Cluster, client: Client, timeout: Duration) -> Self {
        Reachability(Arc::new(Shared {
            cluster,
            client,
            timeout,
            down: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            checked: tokio::sync::Mutex::new(None),
            listeners: Mutex::default(),
            tasks: Mutex::default(),
        }))
    }

    /// Counts each outage into `metrics`, and wakes `retry` when the cluster answers again.
    pub(crate) fn listen(&self, metrics: Arc<ControllerMetrics>, retry: Arc<Notify>) {
        self.0.listeners().push((metrics, retry));
    }

    /// `"remote"` or `"local"`, for logs.
    pub(crate) fn cluster(&self) -> &'static str {
        self.0.name()
    }

    /// Whether the cluster is known to be unreachable (a probe runs).
    pub(crate) fn is_down(&self) -> bool {
        self.0.down.load(Ordering::SeqCst)
    }

    /// A number that moves whenever the watches of this cluster may have missed something:
    /// on each outage and each failed watch. A fact read from the API server (an object
    /// proven gone) still stands while it has not moved and the cluster is up.
    pub(crate) fn epoch(&self) -> u64 {
        self.0.epoch.load(Ordering::SeqCst)
    }

    /// Notes that a watch of this cluster failed (it lists again): see [`Reachability::epoch`].
    pub(crate) fn disturbed(&self) {
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Notes a failed request to this cluster. The first transport failure marks it
    /// unreachable and starts the probe. A request that went unanswered does so only when a
    /// version request, sent now (or by a concurrent failure since the request was sent),
    /// goes unanswered too.
    pub(crate) async fn failed_request(&self, e: &kube::Error) -> Failure {
        // An unanswered request was sent one request timeout ago.
        let sent = Instant::now()
            .checked_sub(self.0.timeout)
            .unwrap_or_else(Instant::now);
        if is_no_answer(e) && !self.is_down() && self.0.answers_since(sent).await {
            return Failure::Answered;
        }
        self.failed(e)
    }

    /// Notes a failed watch or request to this cluster: a transport failure marks it
    /// unreachable and starts the probe.
    pub(crate) fn failed(&self, e: &kube::Error) -> Failure {
        if !is_transport(e) {
            return Failure::Answered;
        }
        if self.is_down() {
            return Failure::StillUnreachable;
        }
        match self.0.mark_down() {
            true => Failure::NowUnreachable,
            false => Failure::StillUnreachable,
        }
    }

    /// Stops the probe and the check, if they run.
    pub(crate) fn stop(&self) {
        for t in self
            .0
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl Shared {
    fn listeners(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<ControllerMetrics>, Arc<Notify>)>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn name(&self) -> &'static str {
        match self.cluster {
            Cluster::Remote => "remote",
            Cluster::Local => "local",
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Whether the server answers a version request within the timeout (at most 5 s).
    async fn answers(&self) -> bool {
        let timeout = self.timeout.min(PROBE_MAX);
        matches!(
            tokio::time::timeout(timeout, self.client.apiserver_version()).await,
            Ok(Ok(_))
        )
    }

    /// Whether the server answered a version request sent after `sent`: the one a concurrent
    /// failure sent, or one sent now.
    async fn answers_since(&self, sent: Instant) -> bool {
        let mut checked = self.checked.lock().await;
        if let Some((at, answered)) = *checked
            && at >= sent
        {
            return answered;
        }
        let answered = self.answers().await;
        *checked = Some((Instant::now(), answered));
        answered
    }

    /// Marks the cluster unreachable and starts the probe; false when it already was.
    fn mark_down(self: &Arc<Self>) -> bool {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.down.swap(true, Ordering::SeqCst) {
            return false;
        }
        for (metrics, _) in self.listeners().iter() {
            metrics.unreachable(self.cluster);
        }
        let me = self.clone();
        self.spawn(async move {
            let mut delay = PROBE_FIRST;
            loop {
                tokio::time::sleep(delay).await;
                if me.answers().await {
                    break;
                }
                delay = (delay * 2).min(PROBE_MAX);
            }
            me.down.store(false, Ordering::SeqCst);
            info!(
                cluster = me.name(),
                "cluster answers again; retrying what failed meanwhile"
            );
            for (_, retry) in me.listeners().iter() {
                retry.notify_one();
            }
        });
        true
    }
}

impl Drop for Reachability {
    fn drop(&mut self) {
        self.stop();
    }
}
