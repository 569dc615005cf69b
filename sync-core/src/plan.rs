//! The pure decision: what one reconcile pass does next, from what it observed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ObjectMeta;
use serde_json::{Value, json};

use crate::config::{OnRemoteDelete, Propagation, SyncConfig};
use crate::keys::Keys;
use crate::mapping::{Mapping, ObjectKey};
use crate::syncable::Syncable;

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
}

/// What is known of the local namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceState {
    /// The controller created it (it carries the owner annotation, ours or the Go original's).
    pub owned: bool,
    /// It is being deleted.
    pub terminating: bool,
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
    /// Another synced object lives in the local namespace and its remote object still exists
    /// and is not terminating.
    pub live_sibling: bool,
    /// The configured local secrets that exist and whose controller is the local object, by
    /// name.
    pub secrets: BTreeMap<String, SecretPayload>,
    /// This pass already wrote the local spec: a spec that local defaulting or admission
    /// changes must not be written again.
    pub spec_applied: bool,
    /// Local secrets this pass sent up, by name, with the resource version sent.
    pub pushed_secrets: BTreeMap<String, String>,
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

/// A write to the remote object's metadata, guarded by its resource version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteMetaPatch {
    /// The resource version the patch was computed from. The API server rejects the patch
    /// with 409 if the object changed since, so a full finalizer list never clobbers a
    /// finalizer someone else added meanwhile.
    pub resource_version: String,
    /// The whole new finalizer list, when it changes.
    pub finalizers: Option<Vec<String>>,
    /// Annotations to set (`Some`) or remove (`None`).
    pub annotations: BTreeMap<String, Option<String>>,
}

impl RemoteMetaPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.finalizers.is_none() && self.annotations.is_empty()
    }

    /// The JSON merge patch body.
    pub fn to_merge_patch(&self) -> Value {
        let mut meta = serde_json::Map::new();
        meta.insert("resourceVersion".into(), json!(self.resource_version));
        if let Some(f) = &self.finalizers {
            meta.insert("finalizers".into(), json!(f));
        }
        if !self.annotations.is_empty() {
            meta.insert("annotations".into(), json!(self.annotations));
        }
        json!({ "metadata": meta })
    }

    /// Applies the patch to metadata, as the API server would.
    pub fn apply_to(&self, meta: &mut ObjectMeta) {
        if let Some(f) = &self.finalizers {
            meta.finalizers = (!f.is_empty()).then(|| f.clone());
        }
        let annotations = meta.annotations.get_or_insert_with(Default::default);
        for (k, v) in &self.annotations {
            match v {
                Some(v) => annotations.insert(k.clone(), v.clone()),
                None => annotations.remove(k),
            };
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
    /// Something is in progress on the API server (a terminating object or namespace); look
    /// again shortly.
    Wait(&'static str),
    /// Another controller, named here, claimed the remote object: no writes at all. Its
    /// suffix or prefix overlaps this controller's; the reconciler reports it.
    ClaimedElsewhere(String),
    /// Create the local namespace, marked as created by the controller.
    CreateNamespace,
    /// Create the local object.
    CreateLocal(Box<K>),
    /// Replace the local object (spec, labels, annotations), guarded by its resource version.
    UpdateLocal(Box<K>),
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
    /// Delete the local namespace (the controller created it and no live sibling uses it).
    DeleteNamespace,
    /// Delete the local object.
    DeleteLocal(Propagation),
    /// Clean-up is done: release the remote object.
    ReleaseFinalizer(RemoteMetaPatch),
}

impl<K> Step<K> {
    /// Whether executing the step writes to a cluster.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Step::InSync | Step::Paused | Step::Wait(_) | Step::ClaimedElsewhere(_)
        )
    }

    /// Whether executing the step deletes something locally.
    pub fn is_local_delete(&self) -> bool {
        matches!(self, Step::DeleteNamespace | Step::DeleteLocal(_))
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
    annotation(meta, &keys.claim)
}

fn terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// Decides the next step for one key.
///
/// # Guarantees
///
/// - A remote object claimed by another controller gets no write.
/// - A new remote object is claimed (finalizer and claim annotation, guarded by its resource
///   version) before anything is made locally, so of two controllers that both match it, the
///   one that loses the race has made nothing.
/// - A paused object (on either side) gets no write.
/// - A namespace is deleted only when the controller created it and no live sibling uses it.
/// - A local object is deleted only under [`OnRemoteDelete::Resource`], when the remote object
///   is gone or terminating, and when the controller has synced it before.
/// - The local spec is written at most once per remote change or local drift: the generation
///   annotations gate the comparison, so a spec that local defaulting changes does not loop.
pub fn plan<K: Syncable>(obs: &Observed<K>, cx: &PlanContext<'_>) -> Step<K> {
    let keys = cx.keys;
    let local_paused = obs
        .local
        .as_ref()
        .is_some_and(|l| is_paused(l.meta(), keys));
    if let RemoteState::Present(remote) = &obs.remote
        && let Some(owner) = claimed_by(remote.meta(), keys)
        && owner != cx.config.controller_name
    {
        return Step::ClaimedElsewhere(owner.to_owned());
    }
    match &obs.remote {
        RemoteState::Present(remote) if !terminating(remote.meta()) => {
            if local_paused || is_paused(remote.meta(), keys) {
                return Step::Paused;
            }
            plan_live(remote, obs, cx)
        }
        RemoteState::Present(remote) => {
            // Without our finalizer the object is not ours to hold up; once it is gone the
            // `Gone` arm cleans up.
            if !has_finalizer(remote.meta(), keys) {
                return Step::InSync;
            }
            if local_paused || is_paused(remote.meta(), keys) {
                return Step::Paused;
            }
            plan_cleanup(obs, cx).unwrap_or_else(|| {
                let mut finalizers = remote.meta().finalizers.clone().unwrap_or_default();
                finalizers.retain(|f| *f != keys.finalizer);
                Step::ReleaseFinalizer(RemoteMetaPatch {
                    resource_version: remote.meta().resource_version.clone().unwrap_or_default(),
                    finalizers: Some(finalizers),
                    annotations: BTreeMap::new(),
                })
            })
        }
        RemoteState::Gone => {
            if local_paused {
                return Step::Paused;
            }
            plan_cleanup(obs, cx).unwrap_or(Step::InSync)
        }
    }
}

/// The local clean-up still due after the remote object went, if any.
fn plan_cleanup<K: Syncable>(obs: &Observed<K>, cx: &PlanContext<'_>) -> Option<Step<K>> {
    let policy = cx.config.on_remote_delete;
    if policy == OnRemoteDelete::Orphan {
        return None;
    }
    if let Some(ns) = obs.namespace
        && ns.owned
        && !obs.live_sibling
    {
        return Some(if ns.terminating {
            Step::Wait("waiting for the local namespace to be deleted")
        } else {
            Step::DeleteNamespace
        });
    }
    if policy == OnRemoteDelete::Resource
        && let Some(local) = &obs.local
        // Only objects the controller has synced carry the managed-keys annotation: an object
        // someone created by hand under a matching name is never deleted.
        && annotation(local.meta(), &cx.keys.managed).is_some()
    {
        return Some(if terminating(local.meta()) {
            Step::Wait("waiting for the local object to be deleted")
        } else {
            Step::DeleteLocal(cx.config.propagation)
        });
    }
    None
}

fn plan_live<K: Syncable>(remote: &K, obs: &Observed<K>, cx: &PlanContext<'_>) -> Step<K> {
    let claim = claim_patch(remote.meta(), cx);
    if !claim.is_empty() {
        return Step::PatchRemote(claim);
    }
    match obs.namespace {
        None => return Step::CreateNamespace,
        Some(ns) if ns.terminating => {
            return Step::Wait("waiting for the terminating local namespace to go");
        }
        Some(_) => {}
    }
    let Some(local) = &obs.local else {
        return Step::CreateLocal(Box::new(new_local(remote, cx)));
    };
    if terminating(local.meta()) {
        return Step::Wait("waiting for the terminating local object to go");
    }
    if let Some(desired) = desired_local(remote, local, obs.spec_applied, cx) {
        return Step::UpdateLocal(Box::new(desired));
    }
    let recorded = recorded_secret_versions(remote.meta(), cx.keys);
    let patch = remote_meta_patch(remote, local, &recorded, &obs.pushed_secrets, cx.keys);
    if !patch.is_empty() {
        return Step::PatchRemote(patch);
    }
    if let Some(status) = local.status() {
        let local_status = serde_json::to_value(status).unwrap_or(Value::Null);
        let remote_status = remote.status().and_then(|s| serde_json::to_value(s).ok());
        // `()` is the status of a kind without one: nothing to send.
        if !local_status.is_null() && remote_status.as_ref() != Some(&local_status) {
            return Step::PatchRemoteStatus(local_status);
        }
    }
    // Secrets go last: a remote secret that does not exist yet must not hold up the spec,
    // the generation annotations or the status.
    for (name, SecretPayload(secret)) in &obs.secrets {
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let sent = obs.pushed_secrets.get(name).or_else(|| recorded.get(name));
        if sent != Some(&version) {
            return Step::PushSecret {
                name: name.clone(),
                version,
                remote: Box::new(SecretPayload(remote_secret(secret, remote, cx))),
            };
        }
    }
    Step::InSync
}

fn copied(map: &Option<BTreeMap<String, String>>, keys: &Keys) -> BTreeMap<String, String> {
    map.iter()
        .flatten()
        .filter(|(k, _)| keys.is_copied(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The label and annotation keys the controller copied last time, from the local object.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Managed {
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    annotations: Vec<String>,
}

/// Merges remote keys into local ones: remote keys win, keys the controller copied before
/// and the remote dropped are removed, other local keys are kept.
fn merge(
    local: &Option<BTreeMap<String, String>>,
    remote: &BTreeMap<String, String>,
    previously: &[String],
) -> BTreeMap<String, String> {
    let mut out = local.clone().unwrap_or_default();
    for k in previously {
        if !remote.contains_key(k) {
            out.remove(k);
        }
    }
    out.extend(remote.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

fn none_if_empty(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

fn managed_annotation(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> String {
    let m = Managed {
        labels: labels.keys().cloned().collect(),
        annotations: annotations.keys().cloned().collect(),
    };
    serde_json::to_string(&m).unwrap_or_default()
}

fn new_local<K: Syncable>(remote: &K, cx: &PlanContext<'_>) -> K {
    let labels = copied(&remote.meta().labels, cx.keys);
    let mut annotations = copied(&remote.meta().annotations, cx.keys);
    let managed = managed_annotation(&labels, &annotations);
    annotations.insert(cx.keys.managed.clone(), managed);
    let meta = ObjectMeta {
        name: Some(cx.local_key.name.clone()),
        namespace: Some(cx.local_key.namespace.clone()),
        labels: none_if_empty(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    };
    K::from_parts(meta, K::new_local_spec(remote.spec()))
}

/// The local object as it should be, or `None` when it already is.
fn desired_local<K: Syncable>(
    remote: &K,
    local: &K,
    spec_applied: bool,
    cx: &PlanContext<'_>,
) -> Option<K> {
    let keys = cx.keys;
    let previous: Managed = annotation(local.meta(), &keys.managed)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let remote_labels = copied(&remote.meta().labels, keys);
    let remote_annotations = copied(&remote.meta().annotations, keys);
    let labels = merge(&local.meta().labels, &remote_labels, &previous.labels);
    let mut annotations = merge(
        &local.meta().annotations,
        &remote_annotations,
        &previous.annotations,
    );
    annotations.insert(
        keys.managed.clone(),
        managed_annotation(&remote_labels, &remote_annotations),
    );

    let mut desired = local.clone();
    let mut changed = false;
    if labels != local.meta().labels.clone().unwrap_or_default() {
        desired.meta_mut().labels = none_if_empty(labels);
        changed = true;
    }
    if annotations != local.meta().annotations.clone().unwrap_or_default() {
        desired.meta_mut().annotations = Some(annotations);
        changed = true;
    }
    if !spec_applied && spec_check_due(remote, local, keys) {
        K::copy_spec(remote.spec(), desired.spec_mut());
        if serde_json::to_value(desired.spec()).ok() != serde_json::to_value(local.spec()).ok() {
            changed = true;
        }
    }
    changed.then_some(desired)
}

fn generation_annotation(meta: &ObjectMeta, key: &str) -> Option<i64> {
    annotation(meta, key)?.parse().ok()
}

/// The spec is compared only when the remote generation moved (a remote change) or the local
/// generation moved (a local edit) since the last recorded apply. Malformed annotations count
/// as moved.
fn spec_check_due<K: Syncable>(remote: &K, local: &K, keys: &Keys) -> bool {
    generation_annotation(remote.meta(), &keys.remote_generation) != remote.meta().generation
        || generation_annotation(remote.meta(), &keys.local_generation) != local.meta().generation
}

fn recorded_secret_versions(meta: &ObjectMeta, keys: &Keys) -> BTreeMap<String, String> {
    annotation(meta, &keys.secret_versions)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The finalizer and claim annotation the remote object lacks. Objects claimed by the Go
/// original or an older version carry the finalizer alone: they get the claim.
fn claim_patch(meta: &ObjectMeta, cx: &PlanContext<'_>) -> RemoteMetaPatch {
    let keys = cx.keys;
    let mut patch = RemoteMetaPatch {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        ..RemoteMetaPatch::default()
    };
    if !has_finalizer(meta, keys) {
        let mut finalizers = meta.finalizers.clone().unwrap_or_default();
        finalizers.push(keys.finalizer.clone());
        patch.finalizers = Some(finalizers);
    }
    if claimed_by(meta, keys) != Some(cx.config.controller_name.as_str()) {
        patch
            .annotations
            .insert(keys.claim.clone(), Some(cx.config.controller_name.clone()));
    }
    patch
}

/// The generation annotations and sent-secret versions the remote object lacks.
fn remote_meta_patch<K: Syncable>(
    remote: &K,
    local: &K,
    recorded: &BTreeMap<String, String>,
    pushed: &BTreeMap<String, String>,
    keys: &Keys,
) -> RemoteMetaPatch {
    let meta = remote.meta();
    let mut patch = RemoteMetaPatch {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        ..RemoteMetaPatch::default()
    };
    let mut want = |key: &str, value: Option<String>| {
        if value.is_some() && annotation(meta, key) != value.as_deref() {
            patch.annotations.insert(key.to_owned(), value);
        }
    };
    want(
        &keys.remote_generation,
        meta.generation.map(|g| g.to_string()),
    );
    want(
        &keys.local_generation,
        local.meta().generation.map(|g| g.to_string()),
    );
    let mut versions = recorded.clone();
    versions.extend(pushed.iter().map(|(k, v)| (k.clone(), v.clone())));
    if versions != *recorded {
        want(&keys.secret_versions, serde_json::to_string(&versions).ok());
    }
    patch
}

/// The remote secret a local one becomes: data, type, labels and annotations copied, with the
/// remote object as its controller.
fn remote_secret<K: Syncable>(local: &Secret, remote: &K, cx: &PlanContext<'_>) -> Secret {
    let name = local.metadata.name.as_deref().unwrap_or_default();
    let owner = OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: cx.remote_key.name.clone(),
        uid: remote.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        // Blocking the owner's deletion would need `update` on its finalizers subresource;
        // the controller's remote role stays without it.
        block_owner_deletion: None,
    };
    let mut annotations = local.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(crate::keys::LAST_APPLIED);
    Secret {
        metadata: ObjectMeta {
            name: Some(cx.mapping.remote_secret_name(name)),
            namespace: Some(cx.remote_key.namespace.clone()),
            labels: local.metadata.labels.clone(),
            annotations: none_if_empty(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: local.data.clone(),
        type_: local.type_.clone(),
        ..Secret::default()
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
