//! Kinds and cluster set-ups where the two clusters do not keep what the controller writes:
//! a remote status schema that prunes a field the local status has, and a local admission
//! policy that rewrites a copied label. Used by `tests/tests/promises.rs`.
#![allow(missing_docs)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

/// A synced kind in its own group, so that its CRDs can differ between the clusters without
/// touching the CRDs other tests share. Its REMOTE CRD's status has no `detail`: structural
/// pruning drops it there, while the local CRD keeps it (see [`ledger_remote_crd`]).
#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "skew.test",
    version = "v1",
    kind = "Ledger",
    namespaced,
    status = "LedgerStatus"
)]
pub struct LedgerSpec {
    pub size: String,
    #[sync(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Known only to the local CRD: the remote API server prunes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The local CRD of [`Ledger`]: the full schema.
pub fn ledger_local_crd() -> CustomResourceDefinition {
    Ledger::crd()
}

/// The remote CRD of [`Ledger`]: the status schema lacks `detail`, so the remote API server
/// drops it from every status write.
pub fn ledger_remote_crd() -> CustomResourceDefinition {
    let mut v = serde_json::to_value(Ledger::crd()).unwrap();
    let status = &mut v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"];
    status
        .as_object_mut()
        .expect("the status schema has properties")
        .remove("detail")
        .expect("the status schema has `detail`");
    serde_json::from_value(v).unwrap()
}

/// The kube-apiserver flags that serve `MutatingAdmissionPolicy` in Kubernetes 1.35, where it
/// is beta (`admissionregistration.k8s.io/v1beta1`) and off by default. Its admission plugin
/// is in the default set and acts once the feature gate is on.
pub const MUTATING_POLICY_APISERVER_ARGS: &[&str] = &[
    "--feature-gates=MutatingAdmissionPolicy=true",
    "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
];

fn admission_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "admissionregistration.k8s.io",
        "v1beta1",
        kind,
    ))
}

/// Installs a `MutatingAdmissionPolicy` and its binding named `name` that rewrite the label
/// `tier` of every `resource` in `group` to `silver` on create and update, whatever value was
/// sent. Returns once both objects exist; the policy may take a moment more to act.
pub async fn install_tier_silver_policy(client: &Client, name: &str, group: &str, resource: &str) {
    let pp = PatchParams::apply("sync-tests").force();
    let policy: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [group],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [resource],
            }]},
            "matchConditions": [{
                "name": "has-tier-not-silver",
                "expression": "has(object.metadata.labels) && 'tier' in object.metadata.labels && object.metadata.labels['tier'] != 'silver'",
            }],
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "mutations": [{
                "patchType": "JSONPatch",
                "jsonPatch": {"expression": "[JSONPatch{op: \"replace\", path: \"/metadata/labels/tier\", value: \"silver\"}]"},
            }],
        },
    }))
    .unwrap();
    let binding: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name},
    }))
    .unwrap();
    let policies: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &admission_resource("MutatingAdmissionPolicy"),
    );
    policies
        .patch(name, &pp, &Patch::Apply(policy))
        .await
        .unwrap_or_else(|e| panic!("cannot create MutatingAdmissionPolicy {name}: {e}"));
    let bindings: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &admission_resource("MutatingAdmissionPolicyBinding"),
    );
    bindings
        .patch(name, &pp, &Patch::Apply(binding))
        .await
        .unwrap_or_else(|e| panic!("cannot create MutatingAdmissionPolicyBinding {name}: {e}"));
}
