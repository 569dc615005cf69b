//! How a write's answer changes what is known.
//!
//! The runtime turns a [`Step`] into one API call and hands the answer here; the simulation
//! does the same with its model clusters. Neither updates an [`Observed`] any other way, so
//! what the tests check is what runs.

use serde_json::Value;

use super::metadata::LocalMeta;
use super::{NamespaceState, NotKeptWrite, Observed, PlanContext, RemoteState, Step};
use crate::syncable::SyncObject;

/// What the API server answered to a step's write.
#[derive(Clone, Debug)]
pub enum Answer<K> {
    /// The object as the server stored it: after a create, update, patch or status patch of
    /// the object, or a delete that left it terminating.
    Object(K),
    /// The remote object as the server stored it, whose spec does not fit the kind: only its
    /// metadata (after a metadata patch of an [`RemoteState::Unreadable`] object).
    Unreadable(Box<kube::core::ObjectMeta>),
    /// The namespace as the server stored it (created, marked, or terminating).
    Namespace(NamespaceState),
    /// It is gone: deleted, or already absent (404).
    Gone,
    /// The write succeeded and its answer changes nothing the plan reads (a secret update).
    Done,
}

/// A write the server answered with something other than what was sent: reported once as a
/// Warning event on the remote object, and not sent again until its source changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotKept {
    /// The remote status patch was stored differently (the remote status schema prunes or
    /// defaults a field, the two clusters' CRDs differ).
    RemoteStatus,
    /// The local copy's labels or annotations were stored differently (local admission
    /// rewrote them).
    LocalMetadata,
}

impl NotKept {
    /// The reason of the Warning event.
    pub fn reason(self) -> &'static str {
        match self {
            NotKept::RemoteStatus => "RemoteStatusNotKept",
            NotKept::LocalMetadata => "LocalWriteNotKept",
        }
    }
}

/// Updates what is known after `step` was executed and the server answered `answer`.
///
/// Returns what the server did not keep, if anything; that is recorded in
/// [`Observed::unkept`], so the next plan does not send the same again.
///
/// # Guarantees
///
/// - [`Observed::spec_applied`] becomes the generation a step carried the spec of, never one
///   read from a later answer: a status patch's answer may carry a newer spec that no step
///   applied.
/// - An answer that does not fit the step (a bug, or a server that answers oddly) leaves what
///   is known as it was; the next pass observes afresh.
pub fn transition<K: SyncObject>(
    obs: &mut Observed<K>,
    step: &Step<K>,
    answer: Answer<K>,
    cx: &PlanContext<'_>,
) -> Option<NotKept> {
    match (step, answer) {
        (
            Step::CreateNamespace
            | Step::MarkNamespace
            | Step::UnmarkNamespace(_)
            | Step::DeleteNamespace { .. },
            Answer::Namespace(ns),
        ) => obs.namespace = Some(ns),
        (Step::DeleteNamespace { .. }, Answer::Gone) => {
            obs.namespace = None;
            obs.local = None;
        }
        (
            Step::CreateLocal { object, spec_of } | Step::UpdateLocal { object, spec_of },
            Answer::Object(stored),
        ) => return local_written(obs, object, *spec_of, stored, cx),
        (Step::PatchRemote(_) | Step::ReleaseFinalizer(_), Answer::Object(stored)) => {
            obs.remote = RemoteState::Present(stored);
        }
        (Step::PatchRemote(_) | Step::ReleaseFinalizer(_), Answer::Unreadable(meta)) => {
            obs.remote = RemoteState::Unreadable(meta);
        }
        // A 404 naming the object: released and deleted since the cache showed it.
        (Step::PatchRemote(_) | Step::ReleaseFinalizer(_), Answer::Gone) => {
            obs.remote = RemoteState::Gone;
        }
        (Step::PatchRemoteStatus(sent), Answer::Object(stored)) => {
            return status_written(obs, sent, stored);
        }
        (Step::PushSecret { name, version, .. }, Answer::Done) => {
            obs.pushed_secrets.insert(name.clone(), version.clone());
        }
        (Step::DeleteLocal(_), Answer::Object(stored)) => obs.local = Some(stored),
        (Step::DeleteLocal(_), Answer::Gone) => obs.local = None,
        _ => {}
    }
    None
}

/// A local create or update answered: the spec it carried is applied, and its copied labels
/// and annotations were kept or not.
fn local_written<K: SyncObject>(
    obs: &mut Observed<K>,
    sent: &K,
    spec_of: Option<i64>,
    stored: K,
    cx: &PlanContext<'_>,
) -> Option<NotKept> {
    if spec_of.is_some() {
        obs.spec_applied = spec_of;
    }
    let sent = LocalMeta::of(sent.meta());
    let kept = sent.kept_by(stored.meta(), cx.keys);
    let write = NotKeptWrite {
        sent: sent.fingerprint(),
        stored: LocalMeta::of(stored.meta()).fingerprint(),
    };
    obs.local = Some(stored);
    remember(
        &mut obs.unkept.local_meta,
        kept,
        write,
        NotKept::LocalMetadata,
    )
}

/// A remote status patch answered: the status was kept as sent, or not.
fn status_written<K: SyncObject>(
    obs: &mut Observed<K>,
    sent: &Value,
    stored: K,
) -> Option<NotKept> {
    let got = stored.status_value().unwrap_or(Value::Null);
    let kept = got == *sent;
    obs.remote = RemoteState::Present(stored);
    let write = NotKeptWrite {
        sent: sent.clone(),
        stored: got,
    };
    remember(&mut obs.unkept.status, kept, write, NotKept::RemoteStatus)
}

/// Records a write that was not kept (or forgets one that now was); reports it only when it
/// is new, so a source that does not change gets one report.
fn remember(
    slot: &mut Option<NotKeptWrite>,
    kept: bool,
    write: NotKeptWrite,
    what: NotKept,
) -> Option<NotKept> {
    if kept {
        *slot = None;
        return None;
    }
    let new = slot.as_ref() != Some(&write);
    *slot = Some(write);
    new.then_some(what)
}
