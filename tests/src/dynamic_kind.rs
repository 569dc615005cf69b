//! `Gadget` in group `test.sync.dev`: a kind with no Rust type at all, for tests of kinds chosen
//! at run time (`sync_core::DynamicKind`). Its CRD is written as JSON, and its objects are
//! [`DynamicObject`]s, so nothing can implement `Syncable` for it by accident.
#![allow(missing_docs)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::{Value, json};

use crate::install_crd;

pub const GROUP: &str = "test.sync.dev";
pub const VERSION: &str = "v1";
pub const KIND: &str = "Gadget";
pub const PLURAL: &str = "gadgets";

/// The kind as discovery would report it.
pub fn api_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.into(),
        plural: PLURAL.into(),
    }
}

/// The CRD, the same on both planes: a namespaced kind with a status subresource, whose spec
/// has an `image`, a `replicas` count, a `region` and `limits` (`cpu`, `memory`).
pub fn crd() -> CustomResourceDefinition {
    crd_of(&api_resource())
}

/// A CRD with the schema of Gadget for the kind `ar` (another group, kind or plural), for a
/// test that needs a kind of its own.
pub fn crd_of(ar: &ApiResource) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", ar.plural, ar.group)},
        "spec": {
            "group": ar.group,
            "scope": "Namespaced",
            "names": {
                "kind": ar.kind,
                "plural": ar.plural,
                "singular": ar.kind.to_lowercase(),
                "listKind": format!("{}List", ar.kind)
            },
            "versions": [{
                "name": ar.version,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["image"],
                            "properties": {
                                "image": {"type": "string"},
                                "replicas": {"type": "integer"},
                                "region": {"type": "string"},
                                "limits": {
                                    "type": "object",
                                    "properties": {
                                        "cpu": {"type": "string"},
                                        "memory": {"type": "string"}
                                    }
                                }
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": {"type": "string"},
                                "observedGeneration": {"type": "integer"}
                            }
                        }
                    }
                }}
            }]
        }
    }))
    .expect("a valid CRD")
}

/// Installs the CRD on `remote` and on `local`.
///
/// # Panics
///
/// When an install fails.
pub async fn install_crds(remote: &Client, local: &Client) {
    install_crd(remote, crd()).await.unwrap();
    install_crd(local, crd()).await.unwrap();
}

/// The Gadgets in `ns` of the cluster of `client`.
pub fn api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &api_resource())
}

/// A Gadget named `name` with this `spec`.
pub fn gadget(name: &str, spec: Value) -> DynamicObject {
    let mut o = DynamicObject::new(name, &api_resource());
    o.data = json!({ "spec": spec });
    o
}
