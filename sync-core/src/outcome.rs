//! How each reconcile pass ended, for a program that watches the reconciler (as kube-runtime's
//! `Controller::run` yields a result per reconcile).

use std::sync::Arc;

use crate::mapping::ObjectKey;

/// One reconcile pass, as it ended. Handed to the callback of
/// [`SyncBuilder::on_reconciled`](crate::SyncBuilder::on_reconciled).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconciled {
    /// The remote object the pass was about.
    pub object: ObjectKey,
    /// How it ended: the `outcome` label of `sync_reconciles_total` (`in_sync`, `wrote`,
    /// `paused`, `waiting`, `skipped`, `conflict`, `not_leading`, `error` or `panic`).
    pub outcome: &'static str,
    /// What went wrong, for `error` and `panic`.
    pub error: Option<String>,
}

impl Reconciled {
    /// Whether the pass failed (`error` or `panic`); it is retried with backoff.
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, "error" | "panic")
    }
}

/// The callback, shared by every pass.
pub(crate) type OnReconciled = Arc<dyn Fn(&Reconciled) + Send + Sync>;
