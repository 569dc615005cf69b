//! The synced kind of the simulation, and what each cluster's API server does to it on a
//! write: the remote CRD prunes a status field the local CRD has (the clusters' CRDs differ),
//! and the local cluster defaults a spec field and rewrites a copied label by admission.
#![allow(missing_docs)]

use kube::CustomResource;
use kube::core::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::{SyncConfig, Syncable};

/// One Rust type serves both simulated kinds: each kind has its own store in each cluster and
/// its own controller, as two CRDs would.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sim.dev",
    version = "v1",
    kind = "Thing",
    namespaced,
    status = "ThingStatus"
)]
pub struct ThingSpec {
    pub size: String,
    /// Defaulted to 1 by the local API server when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Local-only, as `#[sync(skip)]` would make it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ThingStatus {
    pub ready: bool,
    #[serde(rename = "observedGeneration")]
    pub observed_generation: i64,
    /// Pruned by the remote CRD, which lacks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Syncable for Thing {
    type Spec = ThingSpec;
    type Status = ThingStatus;
    fn defaults() -> SyncConfig {
        SyncConfig::new("thing-sync")
    }
    fn spec(&self) -> &ThingSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut ThingSpec {
        &mut self.spec
    }
    fn status(&self) -> Option<&ThingStatus> {
        self.status.as_ref()
    }
    fn from_parts(metadata: ObjectMeta, spec: ThingSpec) -> Self {
        Thing {
            metadata,
            spec,
            status: None,
        }
    }
    fn copy_spec(remote: &ThingSpec, local: &mut ThingSpec) {
        local.size.clone_from(&remote.size);
        local.replicas = remote.replicas;
    }
    fn new_local_spec(remote: &ThingSpec) -> ThingSpec {
        ThingSpec {
            size: remote.size.clone(),
            replicas: remote.replicas,
            note: None,
        }
    }
}

/// The label whose value local admission rewrites.
pub const REWRITTEN_LABEL: &str = "tier";

/// The synced part of a spec as the local API server stores it: what a local copy of
/// `remote` holds once applied.
pub fn synced_local(spec: &ThingSpec) -> (String, Option<i32>) {
    (spec.size.clone(), Some(spec.replicas.unwrap_or(1)))
}

/// Local defaulting and admission, applied to every local create and update.
pub fn admit_local(obj: &mut Thing) {
    obj.spec.replicas.get_or_insert(1);
    if let Some(v) = obj
        .metadata
        .labels
        .as_mut()
        .and_then(|l| l.get_mut(REWRITTEN_LABEL))
        && !v.starts_with("admitted-")
    {
        *v = format!("admitted-{v}");
    }
}

/// The remote CRD's schema applied to a status: it has no `detail`.
pub fn prune_remote(status: Option<ThingStatus>) -> Option<ThingStatus> {
    status.map(|s| ThingStatus { detail: None, ..s })
}

/// Whether an object carries a finalizer.
pub fn has_finalizer(meta: &ObjectMeta, f: &str) -> bool {
    meta.finalizers.iter().flatten().any(|x| x == f)
}

/// An annotation's value.
pub fn annotation<'m>(meta: &'m ObjectMeta, key: &str) -> Option<&'m str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// A resource version as the number the simulated API server counts it with.
pub fn rv_of(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
