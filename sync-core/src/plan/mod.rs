//! The pure decision: what one reconcile pass does next, from what it observed.
//!
//! **Unstable.** Outside the crate this module exists only with the `unstable-model` feature,
//! for simulations and property tests such as `sync-core/tests/simulation/`; it is exempt from
//! semver and may change in any release.
//!
//! - [`plan`] decides the next [`Step`] from an [`Observed`] world (this file: the live object,
//!   spec, status and secrets);
//! - `namespace.rs` decides whose a namespace is and what clean-up is due;
//! - `claims.rs` counts whose claims a shard's objects carry, for the start-up warning;
//! - `release.rs` says how to give up a shard's objects when a region is decommissioned;
//! - `metadata.rs` says what labels and annotations go down and what is recorded remotely;
//! - [`transition`] is how a write's answer changes what is known. The runtime and the
//!   simulation both call it, so the model the tests check is the model that runs.

mod claims;
mod live;
mod metadata;
mod namespace;
mod release;
mod transition;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::core::ObjectMeta;
use serde_json::Value;

use crate::config::{Propagation, SyncConfig};
use crate::keys::Keys;
use crate::mapping::{Mapping, ObjectKey};
use crate::syncable::SyncObject;

pub use claims::ClaimCensus;
pub use metadata::RemoteMetaPatch;
pub use namespace::{NamespaceState, Sibling, SiblingRemote};
pub use release::{Release, release};
pub use transition::{Answer, NotKept, transition};

/// A Secret whose `Debug` shows its name and data keys, never its data, so a debug log of an
/// observation or a step cannot leak it.
#[derive(Clone, Default, PartialEq)]
pub struct SecretPayload(pub Secret);

impl std::fmt::Debug for SecretPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.0.data.iter().flatten().map(|(k, _)| k).collect();
        f.debug_struct("Secret")
            .field("namespace", &self.0.metadata.namespace)
            .field("name", &self.0.metadata.name)
            .field("resource_version", &self.0.metadata.resource_version)
            .field("data_keys", &keys)
            .finish_non_exhaustive()
    }
}

/// What is known of the remote object.
#[derive(Clone, Debug)]
pub enum RemoteState<K> {
    /// It exists (perhaps terminating).
    Present(K),
    /// It is confirmed gone: an uncached read answered 404. A cache miss, an unreachable API
    /// or an unfinished initial list never produces this state.
    Gone,
    /// It exists, but its spec does not fit the kind, so only its metadata is known. Nothing
    /// is synced from it; once it is terminating, its clean-up (which needs only metadata)
    /// runs and it is released, so a spec that stopped parsing never holds up a deletion.
    Unreadable(Box<ObjectMeta>),
}

impl<K: SyncObject> RemoteState<K> {
    /// The remote object's metadata, unless it is gone.
    pub fn meta(&self) -> Option<&ObjectMeta> {
        match self {
            RemoteState::Present(r) => Some(r.meta()),
            RemoteState::Unreadable(meta) => Some(meta),
            RemoteState::Gone => None,
        }
    }

    /// The remote object, when it exists and fits the kind.
    pub fn object(&self) -> Option<&K> {
        match self {
            RemoteState::Present(r) => Some(r),
            RemoteState::Gone | RemoteState::Unreadable(_) => None,
        }
    }

    /// Whether the remote object is gone or terminating: what is left is clean-up.
    pub fn cleaning_up(&self) -> bool {
        self.meta().is_none_or(terminating)
    }
}

/// Everything one reconcile pass observed about one remote key.
#[derive(Clone, Debug)]
pub struct Observed<K> {
    /// The remote object.
    pub remote: RemoteState<K>,
    /// The local object, if it exists.
    pub local: Option<K>,
    /// The local namespace, if it exists.
    pub namespace: Option<NamespaceState>,
    /// The controller's other objects that map into the same local namespace, when observed:
    /// a pass reads them when it starts on a remote object that is gone or terminating. A
    /// clean-up that finds them unobserved (the remote object turned terminating during the
    /// pass) waits for a pass that reads them; it never takes "not looked at" for "none".
    pub siblings: Option<Vec<Sibling>>,
    /// The configured local secrets that exist and whose controller is the local object, by
    /// name.
    pub secrets: BTreeMap<String, SecretPayload>,
    /// The remote generation whose spec this pass wrote to the local object. A spec that
    /// local defaulting or admission changes is not written again for that generation, and a
    /// newer generation (a later answer may carry one) is still compared and applied.
    pub spec_applied: Option<i64>,
    /// Local secrets this pass sent up, by name, with the resource version sent.
    pub pushed_secrets: BTreeMap<String, String>,
    /// Writes whose answer did not keep what was sent; kept across passes, so the same
    /// write is sent again only when its source changes.
    pub unkept: Unkept,
    /// The remote cluster is known to be unreachable: writes that only record something on
    /// the remote object must not hold up what can be done locally.
    pub remote_down: bool,
}

impl<K> Observed<K> {
    /// What a pass knows before it looked at any sibling, secret or earlier write.
    pub fn new(
        remote: RemoteState<K>,
        local: Option<K>,
        namespace: Option<NamespaceState>,
    ) -> Self {
        Observed {
            remote,
            local,
            namespace,
            siblings: None,
            secrets: BTreeMap::new(),
            spec_applied: None,
            pushed_secrets: BTreeMap::new(),
            unkept: Unkept::default(),
            remote_down: false,
        }
    }
}

/// Writes the server answered with something other than what was sent: a remote CRD whose
/// status schema prunes a field (the two clusters' CRDs differ), a local admission policy
/// that rewrites a copied label. Sending the same again would loop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unkept {
    /// The remote status last sent and not kept.
    pub status: Option<NotKeptWrite>,
    /// The local labels and annotations last sent and not kept.
    pub local_meta: Option<NotKeptWrite>,
}

/// One write the server did not keep: what was sent, and what it stored instead. The same
/// write is held back only while both still hold: the source still asks for `sent`, and the
/// target still holds `stored` (an object re-created or edited since gets the write again).
#[derive(Clone, Debug, PartialEq)]
pub struct NotKeptWrite {
    /// What was sent.
    pub sent: Value,
    /// What the server stored instead.
    pub stored: Value,
}

impl NotKeptWrite {
    /// Whether sending `sent` to a target that holds `current` would repeat this write.
    pub fn repeats(held: Option<&NotKeptWrite>, sent: &Value, current: &Value) -> bool {
        held.is_some_and(|w| w.sent == *sent && w.stored == *current)
    }
}

/// The fixed inputs of planning for one key.
#[derive(Clone, Debug)]
pub struct PlanContext<'a> {
    /// The configuration.
    pub config: &'a SyncConfig,
    /// The keys of its domain.
    pub keys: &'a Keys,
    /// The name mapping.
    pub mapping: &'a Mapping,
    /// The remote key being reconciled.
    pub remote_key: &'a ObjectKey,
    /// Its local key.
    pub local_key: &'a ObjectKey,
}

/// What a pass that waits waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The local namespace to be deleted: the namespace watch announces its deletion.
    Namespace,
    /// The local object to be deleted: the local watch announces its deletion.
    LocalObject,
    /// Nothing a watch announces: the remote object turned terminating during the pass, and
    /// the next pass reads the objects that share its local namespace.
    NextPass,
}

impl Wait {
    /// Whether a watch event ends the wait (the runtime then looks again only as a safety net).
    pub fn ends_on_event(self) -> bool {
        !matches!(self, Wait::NextPass)
    }

    /// What is waited for, for logs.
    pub fn why(self) -> &'static str {
        match self {
            Wait::Namespace => "waiting for the terminating local namespace to go",
            Wait::LocalObject => "waiting for the terminating local object to go",
            Wait::NextPass => {
                "the remote object turned terminating during the pass; the next pass reads its siblings"
            }
        }
    }
}

/// The next thing a reconcile pass does.
#[derive(Clone, Debug)]
pub enum Step<K> {
    /// Both sides agree: nothing to write.
    InSync,
    /// The object is paused on one side: no writes at all.
    Paused,
    /// Something is in progress on the API server (a terminating object or namespace), or the
    /// pass saw too little to decide: see [`Wait`].
    Wait(Wait),
    /// Another controller, named here, claimed the remote object: no writes at all. Its
    /// suffix or prefix overlaps this controller's; the reconciler reports it.
    ClaimedElsewhere(String),
    /// Create the local namespace, marked as created by the controller (`sync-owner` names
    /// the local object, `sync-owner-controller` the controller).
    CreateNamespace,
    /// Mark the local namespace, which another controller created, as needed by this one.
    MarkNamespace,
    /// Remove the marks of these controllers (this one, and its predecessors) from the local
    /// namespace: none of its objects needs it.
    UnmarkNamespace(Vec<String>),
    /// Create the local object, with the spec of the remote generation `spec_of`.
    CreateLocal {
        /// The object to create.
        object: Box<K>,
        /// The remote generation whose spec it carries.
        spec_of: Option<i64>,
    },
    /// Replace the local object (spec, labels, annotations), guarded by its resource version.
    UpdateLocal {
        /// The object as it should be.
        object: Box<K>,
        /// The remote generation whose spec it carries.
        spec_of: Option<i64>,
    },
    /// Send a local secret up: update the pre-existing remote secret.
    PushSecret {
        /// The local secret's name.
        name: String,
        /// Its resource version, recorded on the remote object afterwards.
        version: String,
        /// The remote secret to write.
        remote: Box<SecretPayload>,
    },
    /// Write the finalizer and controller annotations of the remote object. The first write
    /// to a new remote object is this claim, before anything is made locally.
    PatchRemote(RemoteMetaPatch),
    /// Write the remote status.
    PatchRemoteStatus(Value),
    /// Delete the local namespace (the controller created it and nothing needs it), on the
    /// condition that it is still the namespace observed: same UID and resource version.
    DeleteNamespace {
        /// The UID observed.
        uid: Option<String>,
        /// The resource version observed.
        resource_version: Option<String>,
    },
    /// Delete the local object.
    DeleteLocal(Propagation),
    /// Clean-up is done: release the remote object.
    ReleaseFinalizer(RemoteMetaPatch),
}

impl<K> Step<K> {
    /// Whether executing the step writes to a cluster.
    #[cfg(any(test, feature = "unstable-model"))]
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Step::InSync | Step::Paused | Step::Wait(_) | Step::ClaimedElsewhere(_)
        )
    }

    /// Whether executing the step deletes something locally.
    #[cfg(any(test, feature = "unstable-model"))]
    pub fn is_local_delete(&self) -> bool {
        matches!(self, Step::DeleteNamespace { .. } | Step::DeleteLocal(_))
    }
}

fn annotation<'m>(meta: &'m ObjectMeta, key: &str) -> Option<&'m str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Whether an object carries `<domain>/paused: "true"`.
pub fn is_paused(meta: &ObjectMeta, keys: &Keys) -> bool {
    annotation(meta, &keys.paused) == Some("true")
}

fn has_finalizer(meta: &ObjectMeta, keys: &Keys) -> bool {
    meta.finalizers
        .iter()
        .flatten()
        .any(|f| *f == keys.finalizer)
}

/// The controller that claimed an object, if any.
pub fn claimed_by<'m>(meta: &'m ObjectMeta, keys: &Keys) -> Option<&'m str> {
    annotation(meta, &keys.claimed_by)
}

fn terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// Decides the next step for one key.
///
/// # Guarantees
///
/// - A remote object claimed by another controller gets no write. One claimed by a
///   predecessor ([`SyncConfig::predecessors`]) is this controller's: a live one's claim is
///   rewritten to this name before any other write, a terminating one is cleaned up and
///   released.
/// - A new remote object is claimed (finalizer and claim annotation, guarded by its resource
///   version) before anything is made locally, so of two controllers that both match it, the
///   one that loses the race has made nothing. The claim may carry the record of the copy
///   about to be made (below); it is one write all the same.
/// - A paused object (on either side) gets no write.
/// - A namespace is deleted only when the controller created it and nothing needs it: no
///   object of this controller whose remote is live, paused or unproven gone, and no mark of
///   another controller (see `namespace.rs` for the whole rule).
/// - A local object is deleted only when the remote object is gone or terminating, when the
///   controller has synced it before, and either its namespace is the controller's (and
///   another object still needs it) or the policy is [`crate::OnRemoteDelete::NamespaceOrResource`].
/// - The local spec is written at most once per remote change or local drift: the generation
///   annotations gate the comparison, so a spec that local defaulting changes does not loop.
/// - `sync-remote-generation` names only a generation whose spec the local copy holds, with
///   one exception that the currency contract allows: with
///   [`SyncConfig::status_observed_generation`], the claim of a new object (or the record of
///   a copy about to be re-created) announces generation 1 of a copy before it is made, when
///   the remote status does not name local generation 1 already. The status goes up only once
///   the record names the copy read (by the id it carries), so the contract cannot read as
///   current before the local controller reported on that copy.
/// - A write the server did not keep is not sent again until its source changes.
pub fn plan<K: SyncObject>(obs: &Observed<K>, cx: &PlanContext<'_>) -> Step<K> {
    let keys = cx.keys;
    let local_paused = obs
        .local
        .as_ref()
        .is_some_and(|l| is_paused(l.meta(), keys));
    if let Some(owner) = obs.remote.meta().and_then(|m| claimed_by(m, keys))
        && !cx.config.is_own_name(owner)
    {
        return Step::ClaimedElsewhere(owner.to_owned());
    }
    match &obs.remote {
        RemoteState::Present(remote) if !terminating(remote.meta()) => {
            if local_paused || is_paused(remote.meta(), keys) {
                return Step::Paused;
            }
            live::plan_live(remote, obs, cx)
        }
        // A live object whose spec does not fit the kind: reported by the runtime, and
        // nothing is written until it is fixed.
        RemoteState::Unreadable(meta) if !terminating(meta) => Step::InSync,
        RemoteState::Present(_) | RemoteState::Unreadable(_) => {
            let Some(meta) = obs.remote.meta() else {
                return Step::InSync;
            };
            if local_paused || is_paused(meta, keys) {
                return Step::Paused;
            }
            // Without our finalizer the object is not ours to hold up: released, or never
            // claimed. What is left is taking our mark off a namespace we used.
            if !has_finalizer(meta, keys) {
                return namespace::plan_unmark(obs, cx).unwrap_or(Step::InSync);
            }
            namespace::plan_cleanup(obs, cx).unwrap_or_else(|| {
                let mut finalizers = meta.finalizers.clone().unwrap_or_default();
                finalizers.retain(|f| *f != keys.finalizer);
                Step::ReleaseFinalizer(RemoteMetaPatch {
                    resource_version: meta.resource_version.clone().unwrap_or_default(),
                    finalizers: Some(finalizers),
                    annotations: BTreeMap::new(),
                })
            })
        }
        RemoteState::Gone => {
            if local_paused {
                return Step::Paused;
            }
            namespace::plan_cleanup(obs, cx)
                .or_else(|| namespace::plan_unmark(obs, cx))
                .unwrap_or(Step::InSync)
        }
    }
}

#[cfg(test)]
mod tests;
