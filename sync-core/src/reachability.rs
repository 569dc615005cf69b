//! Whether each cluster answers at all.
//!
//! When an API server goes away, every object whose pass needs it fails. Logging each failure
//! would flood the log with hundreds of identical lines, and waiting out each object's backoff
//! once the server is back would delay the catch-up by up to the backoff's cap. So the first
//! transport failure (or a request unanswered within the request timeout) marks the cluster
//! unreachable and logs once. While it is unreachable, requests to it fail at once without
//! being sent, failures are logged at debug level, and the failed objects keep their capped
//! backoff; a single probe asks the server for its version (at most every 5 s), and when it
//! answers the failed objects are retried at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::info;

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

/// What a failure means for the cluster's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The API server answered: the failure is the object's own.
    Answered,
    /// The first sign that the cluster is unreachable: log it.
    NowUnreachable,
    /// The cluster is already known to be unreachable: already logged.
    StillUnreachable,
}

/// The reachability of one cluster.
pub(crate) struct Reachability {
    cluster: &'static str,
    client: Client,
    timeout: Duration,
    down: Arc<AtomicBool>,
    /// Woken when the cluster answers again: the queue then retries its failed keys.
    retry: Arc<Notify>,
    probe: Mutex<Option<AbortHandle>>,
}

const PROBE_FIRST: Duration = Duration::from_millis(500);
const PROBE_MAX: Duration = Duration::from_secs(5);

impl Reachability {
    pub(crate) fn new(
        cluster: &'static str,
        client: Client,
        timeout: Duration,
        retry: Arc<Notify>,
    ) -> Self {
        Reachability {
            cluster,
            client,
            timeout,
            down: Arc::default(),
            retry,
            probe: Mutex::default(),
        }
    }

    /// `"remote"` or `"local"`, for logs.
    pub(crate) fn cluster(&self) -> &'static str {
        self.cluster
    }

    /// Whether the cluster is known to be unreachable (a probe runs).
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Notes a failed request to this cluster; the first transport failure starts the probe.
    pub(crate) fn failed(&self, e: &kube::Error) -> Failure {
        if !is_transport(e) {
            return Failure::Answered;
        }
        if self.down.swap(true, Ordering::SeqCst) {
            return Failure::StillUnreachable;
        }
        let (client, down, retry, cluster) = (
            self.client.clone(),
            self.down.clone(),
            self.retry.clone(),
            self.cluster,
        );
        let timeout = self.timeout.min(PROBE_MAX);
        let task = tokio::spawn(async move {
            let mut delay = PROBE_FIRST;
            loop {
                tokio::time::sleep(delay).await;
                if let Ok(Ok(_)) = tokio::time::timeout(timeout, client.apiserver_version()).await {
                    break;
                }
                delay = (delay * 2).min(PROBE_MAX);
            }
            down.store(false, Ordering::SeqCst);
            info!(
                cluster,
                "cluster answers again; retrying what failed meanwhile"
            );
            retry.notify_one();
        });
        *self.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        Failure::NowUnreachable
    }

    /// Stops the probe, if one runs.
    pub(crate) fn stop(&self) {
        if let Some(p) = self.probe.lock().unwrap_or_else(|e| e.into_inner()).take() {
            p.abort();
        }
    }
}

impl Drop for Reachability {
    fn drop(&mut self) {
        self.stop();
    }
}
