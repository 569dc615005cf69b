//! Whose a local namespace is, who still needs it, and what clean-up is due when a remote
//! object goes.
//!
//! # The rule
//!
//! A controller deletes a local namespace only when all of these hold:
//! - it created the namespace: the namespace carries `sync-owner` and `sync-owner-controller`
//!   naming this controller, or (made by the Go original or an earlier version, which wrote
//!   `sync-owner` alone) `sync-owner` names the very object being cleaned up;
//! - none of its own synced objects still needs it (see [`Sibling::needs_namespace`]);
//! - no other controller marked it with `needed-by.<controller>`: a controller adds that mark
//!   to a namespace some sync controller created, but not itself, before it puts an object
//!   there, and removes it when none of its objects needs the namespace any more.
//!
//! Each controller knows its own objects from its caches; the marks carry what the others
//! know. Another kind in the same process has its own controller name, so it marks too.

use std::collections::BTreeSet;

use kube::core::ObjectMeta;

use super::{Observed, PlanContext, Step, Wait, annotation, terminating};
use crate::config::{OnRemoteDelete, SyncConfig};
use crate::keys::Keys;
use crate::syncable::SyncObject;

/// What is known of the local namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceState {
    /// The `sync-owner` annotation: the local object a sync controller created it for.
    pub owner: Option<String>,
    /// The `sync-owner-controller` annotation: the controller that created it.
    pub created_by: Option<String>,
    /// Controllers that marked it with `needed-by.<controller>`.
    pub needed_by: BTreeSet<String>,
    /// It is being deleted.
    pub terminating: bool,
    /// Its UID, a precondition of its deletion.
    pub uid: Option<String>,
    /// Its resource version, a precondition of its deletion: a mark added since the
    /// decision makes the deletion fail with a conflict instead of deleting a needed namespace.
    pub resource_version: Option<String>,
}

impl NamespaceState {
    /// Reads a namespace's metadata.
    pub fn from_meta(meta: &ObjectMeta, keys: &Keys) -> Self {
        let needed_by = meta
            .annotations
            .iter()
            .flatten()
            .filter_map(|(k, _)| k.strip_prefix(&keys.needed_by_prefix))
            .map(str::to_owned)
            .collect();
        NamespaceState {
            owner: annotation(meta, &keys.namespace_owner).map(str::to_owned),
            created_by: annotation(meta, &keys.namespace_creator).map(str::to_owned),
            needed_by,
            terminating: terminating(meta),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
        }
    }

    /// Whether the controller `me` created it for the object `local_name`'s clean-up to
    /// delete: it (or one of its predecessors) stamped itself as creator, or the Go original
    /// made it for this very object.
    pub fn is_ours(&self, me: &SyncConfig, local_name: &str) -> bool {
        match &self.created_by {
            Some(c) => me.is_own_name(c),
            None => self.owner.as_deref() == Some(local_name),
        }
    }

    /// Whether the controller `me` must mark it before using it: a sync controller other than
    /// `me` and its predecessors created it (or the Go original, whose namespaces have no
    /// creator stamp), and no mark of `me` or a predecessor is there yet.
    pub fn wants_mark(&self, me: &SyncConfig) -> bool {
        self.owner.is_some()
            && !self
                .created_by
                .as_deref()
                .is_some_and(|c| me.is_own_name(c))
            && self.own_marks(me).is_empty()
    }

    /// The marks of `me` and of its predecessors: a predecessor's objects are `me`'s now, so
    /// its mark says what `me`'s would, and goes when `me`'s would.
    pub fn own_marks(&self, me: &SyncConfig) -> Vec<String> {
        self.needed_by
            .iter()
            .filter(|c| me.is_own_name(c))
            .cloned()
            .collect()
    }

    /// The fresher of what the cache holds and what this controller's own last write to the
    /// namespace answered, by resource version. A controller's keys share their namespaces:
    /// one key's pass may have just removed the controller's mark while the cache still shows
    /// it, and another key's pass must not then believe the mark is there.
    pub fn fresher(cached: Option<NamespaceState>, own: Option<&NamespaceState>) -> Option<Self> {
        let rv = |n: &NamespaceState| n.resource_version.as_deref()?.parse::<u64>().ok();
        match (cached, own) {
            (Some(c), Some(o)) if c.uid == o.uid && rv(o) > rv(&c) => Some(o.clone()),
            (cached, _) => cached,
        }
    }

    /// Whether another kind of `me`'s manager created it: the namespace is the manager's, so
    /// `me`'s local copies in it go with their remote objects, as in a namespace of `me`'s own.
    /// Deleting the namespace itself stays with its creator, which knows its own objects.
    pub fn made_by_partner(&self, me: &SyncConfig) -> bool {
        self.created_by
            .as_deref()
            .is_some_and(|c| me.partners.iter().any(|p| p == c))
    }

    /// Whether a controller other than `me` and its predecessors marked it as needed.
    pub fn needed_by_another(&self, me: &SyncConfig) -> bool {
        self.needed_by.iter().any(|c| !me.is_own_name(c))
    }
}

/// Another object of this controller that maps into the same local namespace, as its caches
/// show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// Its local name.
    pub local_name: String,
    /// Its remote object.
    pub remote: SiblingRemote,
    /// Its local copy exists.
    pub has_local: bool,
}

/// What the cache shows of a sibling's remote object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiblingRemote {
    /// It exists and is not terminating.
    Live,
    /// It exists and is paused on either side: its clean-up waits, so it still needs the
    /// namespace even while terminating.
    Paused,
    /// It is terminating and not paused: its own clean-up is under way.
    Terminating,
    /// The cache does not hold it. A cache miss is not proof that it is gone: only an
    /// uncached read answering 404 proves it.
    NotCached,
    /// An uncached read answered 404: it is gone.
    Gone,
}

impl Sibling {
    /// Reads a sibling from what the caches hold of its remote object and local copy.
    pub fn from_meta(
        local_name: impl Into<String>,
        remote: Option<&ObjectMeta>,
        local: Option<&ObjectMeta>,
        keys: &Keys,
    ) -> Self {
        let paused = remote
            .into_iter()
            .chain(local)
            .any(|m| super::is_paused(m, keys));
        let remote = match remote {
            None => SiblingRemote::NotCached,
            Some(_) if paused => SiblingRemote::Paused,
            Some(m) if terminating(m) => SiblingRemote::Terminating,
            Some(_) => SiblingRemote::Live,
        };
        Sibling {
            local_name: local_name.into(),
            remote,
            has_local: local.is_some(),
        }
    }

    /// Whether this sibling still needs the namespace: its remote is live or paused, or its
    /// remote is not cached while its local copy exists (unproven, so kept).
    pub fn needs_namespace(&self) -> bool {
        match self.remote {
            SiblingRemote::Live | SiblingRemote::Paused => true,
            SiblingRemote::Terminating | SiblingRemote::Gone => false,
            SiblingRemote::NotCached => self.has_local,
        }
    }
}

/// The local clean-up still due after the remote object went, if any.
pub(super) fn plan_cleanup<K: SyncObject>(
    obs: &Observed<K>,
    cx: &PlanContext<'_>,
) -> Option<Step<K>> {
    let policy = cx.config.on_remote_delete;
    if policy == OnRemoteDelete::Orphan {
        return None;
    }
    let me = cx.config;
    let Some(siblings) = &obs.siblings else {
        return Some(Step::Wait(Wait::NextPass));
    };
    let sibling_needs = siblings.iter().any(Sibling::needs_namespace);
    let ns = obs.namespace.as_ref();
    let ours = ns.is_some_and(|n| n.is_ours(me, &cx.local_key.name));
    if let Some(ns) = ns
        && ours
        && !sibling_needs
        && !ns.needed_by_another(me)
    {
        return Some(if ns.terminating {
            Step::Wait(Wait::Namespace)
        } else {
            Step::DeleteNamespace {
                uid: ns.uid.clone(),
                resource_version: ns.resource_version.clone(),
            }
        });
    }
    // In a namespace of ours (or of another kind of our manager) that another object still
    // needs, the local copy goes alone, so nothing of the deleted object keeps running;
    // elsewhere only the resource policy deletes.
    let managers = ns.is_some_and(|n| n.made_by_partner(me));
    if (ours || managers || policy == OnRemoteDelete::NamespaceOrResource)
        && let Some(step) = delete_local(obs, cx)
    {
        return Some(step);
    }
    None
}

/// Takes this controller's mark (and its predecessors') off the namespace once the object is released (or gone) and
/// none of its siblings needs the namespace. The mark goes after the release, not before: a
/// pause that arrives between the two would otherwise leave a paused object that still holds
/// our finalizer in a namespace nothing protects. A crash between the two leaves the mark,
/// which keeps the namespace: the safe side.
pub(super) fn plan_unmark<K: SyncObject>(
    obs: &Observed<K>,
    cx: &PlanContext<'_>,
) -> Option<Step<K>> {
    let ns = obs.namespace.as_ref()?;
    let siblings = obs.siblings.as_ref()?;
    let needed = siblings.iter().any(Sibling::needs_namespace);
    let marks = ns.own_marks(cx.config);
    (!marks.is_empty() && !ns.terminating && !needed).then_some(Step::UnmarkNamespace(marks))
}

fn delete_local<K: SyncObject>(obs: &Observed<K>, cx: &PlanContext<'_>) -> Option<Step<K>> {
    let local = obs.local.as_ref()?;
    // Only objects the controller has synced carry the managed-keys annotation: an object
    // someone created by hand under a matching name is never deleted.
    annotation(local.meta(), &cx.keys.managed_keys)?;
    Some(if terminating(local.meta()) {
        Step::Wait(Wait::LocalObject)
    } else {
        Step::DeleteLocal(cx.config.propagation)
    })
}
