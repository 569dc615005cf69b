use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::mpsc;
use tracing::info;

use crate::error::RunError;
use crate::mapping::ObjectKey;

/// Leader election through a `coordination.k8s.io` Lease in the local cluster, for running
/// several replicas of a controller: only the holder of the Lease writes.
///
/// Built on [kube-lease-manager](https://docs.rs/kube-lease-manager). Standby replicas keep
/// their watches and caches warm, so a takeover starts reconciling at once.
///
/// # Example
///
/// ```no_run
/// # use std::time::Duration;
/// # use sync_core::{LeaderElection, Syncable};
/// # async fn demo<K: Syncable>(
/// #     remote: kube::Client,
/// #     local: kube::Client,
/// #     shutdown: impl std::future::Future<Output = ()> + Send + 'static,
/// # ) -> Result<(), sync_core::RunError> {
/// let pod = std::env::var("POD_NAME").unwrap_or_else(|_| "database-sync-0".into());
/// let election = LeaderElection::new("database-sync", "sync-system", pod)
///     .lease_duration(Duration::from_secs(15))
///     .renew_grace(Duration::from_secs(5));
/// K::reconciler(remote, local)
///     .leader_election(election)
///     .run(shutdown)
///     .await
/// # }
/// ```
///
/// The local role then needs the rules on Leases that
/// [`rbac::local_rules`](crate::rbac::local_rules) adds with `leader_election = true`.
///
/// # Caveats
///
/// A replica that loses the Lease stops its running reconciles at once, but a write already
/// sent may still land: the Lease bounds who starts writes, not when the last one arrives.
#[derive(Clone, Debug)]
#[must_use]
pub struct LeaderElection {
    lease_name: String,
    namespace: String,
    identity: String,
    duration: Duration,
    grace: Duration,
}

impl LeaderElection {
    /// Election on the Lease `lease_name` in `namespace`, as `identity` (unique per replica,
    /// typically the pod name). The Lease lasts 15 s and is renewed 5 s before it expires.
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
            grace: Duration::from_secs(5),
        }
    }

    /// How long a Lease lasts without renewal (whole seconds, at least 2): the longest a dead
    /// leader holds up a takeover.
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.duration = d.max(Duration::from_secs(2));
        self
    }

    /// How long before expiry the holder renews (whole seconds, less than the duration).
    pub fn renew_grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }

    /// Runs `work` whenever this replica holds the Lease, stopping it as soon as the Lease is
    /// lost, until `shutdown` resolves; then releases the Lease.
    pub(crate) async fn run_while_leading<F, Fut>(
        self,
        client: Client,
        mut keys: mpsc::UnboundedReceiver<ObjectKey>,
        shutdown: Shared<BoxFuture<'static, ()>>,
        mut work: F,
    ) -> Result<(), RunError>
    where
        F: FnMut(mpsc::UnboundedReceiver<ObjectKey>, BoxFuture<'static, ()>) -> Fut,
        Fut: Future<Output = mpsc::UnboundedReceiver<ObjectKey>>,
    {
        let lease = format!("{}/{}", self.namespace, self.lease_name);
        let grace = self
            .grace
            .as_secs()
            .min(self.duration.as_secs().saturating_sub(1))
            .max(1);
        let manager = LeaseManagerBuilder::new(client, &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.duration.as_secs())
            .with_grace(grace)
            .build()
            .await
            .map_err(|e| RunError::LeaderElection {
                lease: lease.clone(),
                source: Box::new(e),
            })?;
        let (mut leading, handle) = manager.watch().await;
        let mut shutdown_seen = shutdown.clone();
        loop {
            // Standby: keep the caches warm, drop the keys (the new leader requeues everything).
            while !*leading.borrow_and_update() {
                tokio::select! {
                    () = &mut shutdown_seen => { drop(leading); let _ = handle.await; return Ok(()); }
                    changed = leading.changed() => changed.map_err(|e| RunError::LeaseManagerStopped {
                        lease: lease.clone(),
                        source: Box::new(e),
                    })?,
                    Some(_) = keys.recv() => {}
                }
            }
            info!(lease = %self.lease_name, identity = %self.identity, "leading");
            keys = work(keys, lost_or_shutdown(leading.clone(), shutdown.clone())).await;
            if shutdown_seen.peek().is_some() {
                // Dropping the receiver makes the manager release the Lease. A standby still
                // wakes only at the expiry it last read (kube-lease-manager sleeps until
                // then), so a graceful stop is taken over within the lease duration, as a
                // crash is, but without the wait for a stale holder to be forced out.
                drop(leading);
                let _ = handle.await;
                return Ok(());
            }
            info!(lease = %self.lease_name, identity = %self.identity, "lost the lease; standing by");
        }
    }
}

/// Resolves when the Lease is lost or shutdown is asked, whichever comes first.
fn lost_or_shutdown(
    mut leading: tokio::sync::watch::Receiver<bool>,
    shutdown: Shared<BoxFuture<'static, ()>>,
) -> BoxFuture<'static, ()> {
    async move {
        let lost = async move {
            while *leading.borrow_and_update() {
                if leading.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::select! { () = shutdown => {}, () = lost => {} }
    }
    .boxed()
}
