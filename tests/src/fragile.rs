//! `Fragile`, a synced test kind whose hand-written copy functions panic on one spec value
//! (`"boom"`), standing for a bug in an operator author's code.
#![allow(missing_docs)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::ObjectMeta;
use kube::{Client, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::{SyncConfig, Syncable};

use crate::install_crd;

/// The spec value whose copy panics.
pub const BOOM: &str = "boom";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.sync.dev",
    version = "v1",
    kind = "Fragile",
    namespaced,
    status = "FragileStatus"
)]
pub struct FragileSpec {
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct FragileStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

fn copy(remote: &FragileSpec) -> FragileSpec {
    assert!(remote.value != BOOM, "a bug in the copy function");
    remote.clone()
}

impl Syncable for Fragile {
    type Spec = FragileSpec;
    type Status = FragileStatus;

    fn defaults() -> SyncConfig {
        SyncConfig::new("fragile-sync")
    }
    fn spec(&self) -> &FragileSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut FragileSpec {
        &mut self.spec
    }
    fn status(&self) -> Option<&FragileStatus> {
        self.status.as_ref()
    }
    fn from_parts(metadata: ObjectMeta, spec: FragileSpec) -> Self {
        Fragile {
            metadata,
            spec,
            status: None,
        }
    }
    fn copy_spec(remote: &FragileSpec, local: &mut FragileSpec) {
        *local = copy(remote);
    }
    fn new_local_spec(remote: &FragileSpec) -> FragileSpec {
        copy(remote)
    }
}

/// A `Fragile` named `name` with `value`.
pub fn fragile(name: &str, value: &str) -> Fragile {
    Fragile::new(
        name,
        FragileSpec {
            value: value.into(),
        },
    )
}

/// The CRD of [`Fragile`], the same on both planes.
pub fn crd() -> CustomResourceDefinition {
    Fragile::crd()
}

/// Installs the `Fragile` CRD on `remote` and on `local`.
///
/// # Panics
///
/// When either install fails.
pub async fn install_crds(remote: &Client, local: &Client) {
    install_crd(remote, crd()).await.unwrap();
    install_crd(local, crd()).await.unwrap();
}
