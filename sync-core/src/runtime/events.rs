//! What the management plane is told: Warning events on the remote object for rejected
//! writes, refused objects and held-back deletions.

use std::future::Future;

use tracing::{debug, warn};

use super::Inner;
use super::cache::Entry;
use super::state::lock;
use crate::error::{Error, api_status};
use crate::leader::NotLeading;
use crate::mapping::{ObjectKey, Unmapped};
use crate::metrics::Cluster;
use crate::plan::{NotKept, Observed};
use crate::reachability::Unreachable;
use crate::syncable::SyncObject;

impl<K: SyncObject> Inner<K> {
    /// Sends a deletion for `key` if the deletion budget allows it, and counts it only if the
    /// server may have carried it out: an answer refusing it (a failed precondition, say) or
    /// finding nothing to delete (404), or a request never sent (its cluster known
    /// unreachable, or the leader fence closed), gives the token back. No answer (a timeout)
    /// keeps it spent, so the budget is never exceeded.
    ///
    /// Past the budget, the first hold of the key's trip says why on the remote object and in
    /// a metric, and the key waits for its turn ([`Error::BudgetExhausted`]).
    pub(super) async fn delete_within_budget<T>(
        &self,
        key: &ObjectKey,
        remote: Option<&K>,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, Error> {
        let held = match self.budget.try_take(key) {
            Ok(token) => {
                let answer = request.await;
                if answer.as_ref().is_err_and(deleted_nothing) {
                    self.budget.refund(token);
                }
                return Ok(answer);
            }
            Err(held) => held,
        };
        if held.first {
            self.metrics.budget_trip();
            warn!(wait = ?held.wait, "deletion budget exhausted; this deletion waits its turn");
            // The same text on every hold, so the API server and kube's recorder can count
            // repeats of one event rather than store new ones.
            let b = self.config.deletion_budget;
            let note = format!(
                "more than {} local deletions are due within {:?}; this one waits its turn, so a mass deletion on the management cluster cannot wipe the region",
                b.max_deletions, b.window
            );
            self.warn_remote_typed(remote, "DeletionBudgetExceeded", "Delete", note)
                .await;
        } else {
            debug!(wait = ?held.wait, "deletion still held by the budget");
        }
        Err(Error::BudgetExhausted(held.wait))
    }

    /// The result of a write to either cluster. A rejection (admission, schema, quota, size
    /// limits) is reported as a Warning event on the remote object, so the management plane
    /// sees why without reading logs.
    pub(super) async fn write_result<T>(
        &self,
        cluster: Cluster,
        r: Result<T, kube::Error>,
        action: String,
        remote: Option<&K>,
    ) -> Result<T, Error> {
        let source = match r {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        if let Some((reason, message, code)) = api_status(&source)
            && matches!(code, 400 | 403 | 422)
        {
            let (metric, event, event_action, side) = match cluster {
                Cluster::Local => (
                    "local_write_rejected",
                    "LocalWriteRejected",
                    "SyncSpec",
                    "local",
                ),
                Cluster::Remote => (
                    "remote_write_rejected",
                    "RemoteWriteRejected",
                    "Sync",
                    "remote",
                ),
            };
            self.metrics.rejected(metric);
            let note = format!("{side} cluster rejected the {action}: {reason}: {message}");
            self.warn_remote_typed(remote, event, event_action, note)
                .await;
        }
        Err(match cluster {
            Cluster::Local => Error::Local { action, source },
            Cluster::Remote => Error::Remote { action, source },
        })
    }

    /// Reports a write the server stored differently from what was sent. It is not sent
    /// again until its source changes, so this is said once per change of the source.
    pub(super) async fn report_not_kept(&self, what: NotKept, obs: &Observed<K>) {
        let note = match what {
            NotKept::RemoteStatus => {
                "the remote cluster stored the status differently from what was sent (its CRD's status schema likely prunes or defaults a field the local CRD has); it is sent again only when the local status changes"
            }
            NotKept::LocalMetadata => {
                "the local cluster stored the copied labels or annotations differently from what was sent (local admission likely rewrites them); they are sent again only when the remote ones change"
            }
        };
        warn!(reason = what.reason(), "{note}");
        self.metrics.rejected(match what {
            NotKept::RemoteStatus => "remote_status_not_kept",
            NotKept::LocalMetadata => "local_write_not_kept",
        });
        let remote = obs.remote.object();
        self.warn_remote_typed(remote, what.reason(), "Sync", note.to_owned())
            .await;
    }

    /// Reports, once per key while this process runs, a remote object that another controller
    /// claimed: both controllers match it, so their configurations overlap.
    pub(super) async fn report_claimed(&self, key: &ObjectKey, owner: &str, remote: Option<&K>) {
        if !lock(&self.claimed_elsewhere).insert(key.clone()) {
            return;
        }
        warn!(
            claimed_by = owner,
            "remote object claimed by another controller; not synced"
        );
        self.metrics.rejected("claimed_elsewhere");
        let note = format!(
            "claimed by controller {owner:?} (annotation {}), so controller {:?} leaves it alone; both match it, so their suffixes or prefixes overlap",
            self.keys.claimed_by, self.config.controller_name
        );
        self.warn_remote_typed(remote, "ClaimedByAnotherController", "Claim", note)
            .await;
    }

    pub(super) async fn report_unmapped(&self, key: &ObjectKey, why: &Unmapped) {
        let remote = self.remote_store.get(key);
        warn!(reason = %why, "remote object not synced");
        self.metrics.rejected("invalid_name");
        self.warn_remote(
            remote.as_deref(),
            "InvalidName",
            "Map",
            format!("not synced: {why}"),
        )
        .await;
    }

    pub(super) async fn warn_remote_typed(
        &self,
        remote: Option<&K>,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if let Some(r) = remote {
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(self.ar.api_version.clone()),
                kind: Some(self.ar.kind.clone()),
                name: r.meta().name.clone(),
                namespace: r.meta().namespace.clone(),
                uid: r.meta().uid.clone(),
                ..Default::default()
            };
            self.publish(reference, reason, action, note).await;
        }
    }

    pub(super) async fn warn_remote(
        &self,
        remote: Option<&Entry<K::Cached>>,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if let Some(r) = remote {
            self.publish(r.object_ref(&self.ar), reason, action, note)
                .await;
        }
    }

    async fn publish(
        &self,
        reference: k8s_openapi::api::core::v1::ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let warned = self.recorder.warn(reference, reason, action, note);
        match self.remote_call(warned).await {
            Ok(verb) => self.metrics.wrote(Cluster::Remote, verb, "events"),
            Err(e) => debug!(error = %e, "failed to publish event"),
        }
    }
}

/// Whether a failed deletion certainly deleted nothing: the server answered with an error, or
/// the request was never sent.
fn deleted_nothing(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(_) => true,
        kube::Error::Service(e) => e.is::<Unreachable>() || e.is::<NotLeading>(),
        _ => false,
    }
}
