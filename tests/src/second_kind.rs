//! A second synced kind, `Cache` in group `test.sync.dev`, for tests that run two kinds (and
//! two controllers) against the same local namespaces. Unlike [`crate::harness::Database`] it
//! uses `#[derive(Syncable)]`, and its CRD is the same on both planes.
#![allow(missing_docs)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Client, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

use crate::install_crd;

/// The second synced test kind: namespaced, with a status subresource.
#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.sync.dev",
    version = "v1",
    kind = "Cache",
    namespaced,
    status = "CacheStatus"
)]
#[sync(controller_name = "cache-sync")]
pub struct CacheSpec {
    pub size: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// A `Cache` named `name` of size `size`.
pub fn cache(name: &str, size: &str) -> Cache {
    Cache::new(name, CacheSpec { size: size.into() })
}

/// The CRD of [`Cache`], the same on both planes.
pub fn crd() -> CustomResourceDefinition {
    Cache::crd()
}

/// Installs the `Cache` CRD on `remote` and on `local` (create-or-replace, until Established).
///
/// # Panics
///
/// When either install fails.
pub async fn install_crds(remote: &Client, local: &Client) {
    install_crd(remote, crd()).await.unwrap();
    install_crd(local, crd()).await.unwrap();
}
