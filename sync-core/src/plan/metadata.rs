//! What goes down as labels and annotations, and what is recorded on the remote object: the
//! claim, the generation annotations and the versions of the secrets sent up.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ObjectMeta;
use serde_json::{Value, json};

use super::{PlanContext, annotation, has_finalizer};
use crate::keys::Keys;
use crate::syncable::SyncObject;

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
    #[cfg(any(test, feature = "unstable-model"))]
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

fn copied(map: &Option<BTreeMap<String, String>>, keys: &Keys) -> BTreeMap<String, String> {
    map.iter()
        .flatten()
        .filter(|(k, _)| keys.is_copied(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The label and annotation keys the controller copied last time, from the local object.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Managed {
    #[serde(default)]
    pub(super) labels: Vec<String>,
    #[serde(default)]
    pub(super) annotations: Vec<String>,
}

impl Managed {
    /// The keys recorded on an object, or none.
    pub(super) fn of(meta: &ObjectMeta, keys: &Keys) -> Managed {
        annotation(meta, &keys.managed_keys)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
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

pub(super) fn none_if_empty(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
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

/// The metadata of a new local copy: the copied labels and annotations and the record of them.
pub(super) fn new_local_meta(remote: &ObjectMeta, cx: &PlanContext<'_>) -> ObjectMeta {
    let labels = copied(&remote.labels, cx.keys);
    let mut annotations = copied(&remote.annotations, cx.keys);
    let managed = managed_annotation(&labels, &annotations);
    annotations.insert(cx.keys.managed_keys.clone(), managed);
    ObjectMeta {
        name: Some(cx.local_key.name.clone()),
        namespace: Some(cx.local_key.namespace.clone()),
        labels: none_if_empty(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

/// The local labels and annotations as they should be, or `None` when they already are.
pub(super) fn desired_local_meta(
    remote: &ObjectMeta,
    local: &ObjectMeta,
    keys: &Keys,
) -> Option<LocalMeta> {
    let previous = Managed::of(local, keys);
    let remote_labels = copied(&remote.labels, keys);
    let remote_annotations = copied(&remote.annotations, keys);
    let labels = merge(&local.labels, &remote_labels, &previous.labels);
    let mut annotations = merge(
        &local.annotations,
        &remote_annotations,
        &previous.annotations,
    );
    annotations.insert(
        keys.managed_keys.clone(),
        managed_annotation(&remote_labels, &remote_annotations),
    );
    let unchanged = labels == local.labels.clone().unwrap_or_default()
        && annotations == local.annotations.clone().unwrap_or_default();
    (!unchanged).then_some(LocalMeta {
        labels,
        annotations,
    })
}

/// The labels and annotations of a local write.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(super) struct LocalMeta {
    pub(super) labels: BTreeMap<String, String>,
    pub(super) annotations: BTreeMap<String, String>,
}

impl LocalMeta {
    pub(super) fn of(meta: &ObjectMeta) -> LocalMeta {
        LocalMeta {
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
        }
    }

    /// A comparable record of what was sent, kept when the server did not keep it.
    pub(super) fn fingerprint(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Whether `answer` kept every key the controller copied in this write.
    pub(super) fn kept_by(&self, answer: &ObjectMeta, keys: &Keys) -> bool {
        let got = LocalMeta::of(answer);
        let managed: Managed = self
            .annotations
            .get(&keys.managed_keys)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let same = |sent: &BTreeMap<String, String>, got: &BTreeMap<String, String>, k: &str| {
            sent.get(k) == got.get(k)
        };
        managed
            .labels
            .iter()
            .all(|k| same(&self.labels, &got.labels, k))
            && managed
                .annotations
                .iter()
                .chain(std::iter::once(&keys.managed_keys))
                .all(|k| same(&self.annotations, &got.annotations, k))
    }
}

pub(super) fn generation_annotation(meta: &ObjectMeta, key: &str) -> Option<i64> {
    annotation(meta, key)?.parse().ok()
}

pub(super) fn recorded_secret_versions(meta: &ObjectMeta, keys: &Keys) -> BTreeMap<String, String> {
    annotation(meta, &keys.secret_versions)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The finalizer and claim annotation the remote object lacks. Objects claimed by the Go
/// original or an older version carry the finalizer alone: they get the claim.
pub(super) fn claim_patch(meta: &ObjectMeta, cx: &PlanContext<'_>) -> RemoteMetaPatch {
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
    if super::claimed_by(meta, keys) != Some(cx.config.controller_name.as_str()) {
        patch.annotations.insert(
            keys.claimed_by.clone(),
            Some(cx.config.controller_name.clone()),
        );
    }
    patch
}

/// The identity of a local copy that the record names: the id the claim recorded for it (a
/// copy made after an announcement carries it), or else its UID.
pub(super) fn copy_identity<'m>(local: &'m ObjectMeta, keys: &Keys) -> Option<&'m str> {
    annotation(local, &keys.copy_id).or(local.uid.as_deref())
}

/// The id the record announces for a local copy about to be made: the remote record says the
/// current remote generation is applied at local generation 1, by a copy of this identity.
/// Whichever copy is then made with this id at generation 1 holds that generation's spec, so
/// the record is true of it.
pub(super) fn announced_id<'m>(meta: &'m ObjectMeta, keys: &Keys) -> Option<&'m str> {
    let current = meta.generation.is_some()
        && generation_annotation(meta, &keys.remote_generation) == meta.generation
        && generation_annotation(meta, &keys.local_generation) == Some(1);
    current.then(|| annotation(meta, &keys.local_uid)).flatten()
}

/// Adds to `patch` the announcement of a local copy about to be made: the current remote
/// generation, local generation 1 (a new object's) and an id for the copy, unless the record
/// announces one already. The id is the remote object's UID and resource version before the
/// patch: a later announcement, made from a later version, never repeats it.
pub(super) fn announce_copy(patch: &mut RemoteMetaPatch, meta: &ObjectMeta, keys: &Keys) {
    let Some(generation) = meta.generation else {
        return;
    };
    if announced_id(meta, keys).is_some() {
        return;
    }
    let id = format!(
        "{}.{}",
        meta.uid.as_deref().unwrap_or_default(),
        meta.resource_version.as_deref().unwrap_or_default()
    );
    let mut set = |key: &str, value: String| {
        if annotation(meta, key) != Some(value.as_str()) {
            patch.annotations.insert(key.to_owned(), Some(value));
        }
    };
    set(&keys.remote_generation, generation.to_string());
    set(&keys.local_generation, "1".to_owned());
    set(&keys.local_uid, id);
}

/// Removes the record of a local copy (its generation and UID), once the copy is gone.
pub(super) fn forget_local(meta: &ObjectMeta, keys: &Keys) -> RemoteMetaPatch {
    let mut patch = RemoteMetaPatch {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        ..RemoteMetaPatch::default()
    };
    for key in [&keys.local_generation, &keys.local_uid] {
        if annotation(meta, key).is_some() {
            patch.annotations.insert(key.clone(), None);
        }
    }
    patch
}

/// What the remote object's annotations should record.
pub(super) struct Record<'a> {
    /// The remote generation whose spec the local copy holds.
    pub(super) applied: i64,
    /// The local generation right after that apply.
    pub(super) local_generation: Option<i64>,
    /// The identity ([`copy_identity`]) of the local object that generation counts.
    pub(super) local_uid: Option<&'a str>,
    /// The secret versions recorded so far.
    pub(super) recorded: &'a BTreeMap<String, String>,
    /// The secret versions this pass sent.
    pub(super) pushed: &'a BTreeMap<String, String>,
}

/// The generation annotations and sent-secret versions the remote object lacks.
pub(super) fn remote_meta_patch(
    meta: &ObjectMeta,
    record: &Record<'_>,
    keys: &Keys,
) -> RemoteMetaPatch {
    let mut patch = RemoteMetaPatch {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        ..RemoteMetaPatch::default()
    };
    let mut want = |key: &str, value: Option<String>| {
        if value.is_some() && annotation(meta, key) != value.as_deref() {
            patch.annotations.insert(key.to_owned(), value);
        }
    };
    want(&keys.remote_generation, Some(record.applied.to_string()));
    want(
        &keys.local_generation,
        record.local_generation.map(|g| g.to_string()),
    );
    want(&keys.local_uid, record.local_uid.map(str::to_owned));
    let mut versions = record.recorded.clone();
    versions.extend(record.pushed.iter().map(|(k, v)| (k.clone(), v.clone())));
    if versions != *record.recorded {
        want(&keys.secret_versions, serde_json::to_string(&versions).ok());
    }
    patch
}

/// The remote secret a local one becomes: data, type, labels and annotations copied, with the
/// remote object as its controller.
pub(super) fn remote_secret<K: SyncObject>(
    local: &Secret,
    remote: &K,
    cx: &PlanContext<'_>,
) -> Secret {
    let name = local.metadata.name.as_deref().unwrap_or_default();
    let owner = OwnerReference {
        api_version: remote.type_meta().api_version,
        kind: remote.type_meta().kind,
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
