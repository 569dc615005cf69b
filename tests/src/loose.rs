//! `Loose` and `Fickle`, synced test kinds whose CRDs are laxer than their Rust types, for
//! what the API servers accept but the controller cannot read (two kinds, so a test that
//! stops serving one does not disturb a test of the other):
//!
//! - its schema keeps any `spec`, so a spec the Rust type cannot parse (`size` not a number)
//!   is stored;
//! - it serves two versions, `v1` (stored, and the one the controller uses) and `v2`, so `v1`
//!   can stop being served while its objects stay: every request for `v1` then answers 404
//!   "the server could not find the requested resource", which must not read as "gone".
#![allow(missing_docs)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_core::Syncable;

use crate::install_crd;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.sync.dev",
    version = "v1",
    kind = "Loose",
    namespaced,
    status = "LooseStatus"
)]
#[sync(controller_name = "loose-sync")]
pub struct LooseSpec {
    pub size: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LooseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.sync.dev",
    version = "v1",
    kind = "Fickle",
    namespaced,
    status = "LooseStatus"
)]
#[sync(controller_name = "fickle-sync")]
pub struct FickleSpec {
    pub size: i64,
}

/// A `Fickle` named `name` of size `size`.
pub fn fickle(name: &str, size: i64) -> Fickle {
    Fickle::new(name, FickleSpec { size })
}

/// A `Loose` named `name` of size `size`.
pub fn loose(name: &str, size: i64) -> Loose {
    Loose::new(name, LooseSpec { size })
}

/// The CRD of `K` ([`Loose`] or [`Fickle`]): `v1` (stored) and `v2`, both served, each
/// keeping any spec and status.
pub fn crd<K: CustomResourceExt>() -> CustomResourceDefinition {
    let mut crd = K::crd();
    let lax: JSONSchemaProps = serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "spec": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
        }
    }))
    .expect("a valid schema");
    let v1 = &mut crd.spec.versions[0];
    v1.schema.as_mut().expect("a schema").open_api_v3_schema = Some(lax);
    let mut v2 = v1.clone();
    v2.name = "v2".into();
    v2.storage = false;
    crd.spec.versions.push(v2);
    crd
}

/// Installs the CRDs of [`Loose`] and [`Fickle`] on `remote` and on `local`.
///
/// # Panics
///
/// When an install fails.
pub async fn install_crds(remote: &Client, local: &Client) {
    for c in [remote, local] {
        install_crd(c, crd::<Loose>()).await.unwrap();
        install_crd(c, crd::<Fickle>()).await.unwrap();
    }
}

/// Serves `v1` of `K` on the cluster of `client`, or stops serving it (its objects stay, and
/// `v2` still serves them).
///
/// # Panics
///
/// When the patch fails.
pub async fn serve_v1<K: CustomResourceExt>(client: &Client, served: bool) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd::<K>().metadata.name.expect("a name");
    let mut current = crds.get(&name).await.unwrap();
    current.spec.versions[0].served = served;
    current.metadata.managed_fields = None;
    crds.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "versions": current.spec.versions } })),
    )
    .await
    .unwrap();
}
