//! Tests of the pure model, by subject; the fixtures are here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

use crate::{OnRemoteDelete, Syncable};
use kube::CustomResource;
use proptest::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.dev",
    version = "v1",
    kind = "Thing",
    namespaced,
    status = "ThingStatus"
)]
struct ThingSpec {
    size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replicas: Option<i32>,
    /// Local-only, as `#[sync(skip)]` would make it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
struct ThingStatus {
    ready: bool,
    #[serde(rename = "observedGeneration")]
    observed_generation: i64,
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
        local.replicas.clone_from(&remote.replicas);
    }
    fn new_local_spec(remote: &ThingSpec) -> ThingSpec {
        ThingSpec {
            size: remote.size.clone(),
            replicas: remote.replicas,
            note: None,
        }
    }
}

const D: &str = crate::DEFAULT_DOMAIN;

fn spec(size: &str) -> ThingSpec {
    ThingSpec {
        size: size.into(),
        replicas: None,
        note: None,
    }
}

fn remote(generation: i64) -> Thing {
    let mut t = Thing::new("db-eu", spec("small"));
    t.metadata.namespace = Some("tenant-a".into());
    t.metadata.generation = Some(generation);
    t.metadata.resource_version = Some("100".into());
    t.metadata.uid = Some("remote-uid".into());
    t.metadata.labels = Some([("team".to_string(), "blue".to_string())].into());
    t.metadata.annotations = Some(
        [
            ("note".to_string(), "hello".to_string()),
            (format!("{D}/sync-remote-generation"), "0".to_string()),
            (LAST_APPLIED_KEY.to_string(), "{}".to_string()),
        ]
        .into(),
    );
    t
}

const LAST_APPLIED_KEY: &str = crate::keys::LAST_APPLIED;

/// Claimed by the fixture's controller `t`, nothing synced yet.
fn claim_only(mut r: Thing) -> Thing {
    r.metadata.finalizers = Some(vec!["other/finalizer".into(), format!("{D}/sync-local")]);
    r.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(format!("{D}/sync-controller"), "t".into());
    r
}

fn claimed(r: Thing, local_gen: i64) -> Thing {
    let mut r = claim_only(r);
    let g = r.metadata.generation.unwrap();
    let a = r.metadata.annotations.get_or_insert_with(Default::default);
    a.insert(format!("{D}/sync-remote-generation"), g.to_string());
    a.insert(format!("{D}/sync-local-generation"), local_gen.to_string());
    a.insert(format!("{D}/sync-local-uid"), "local-uid".into());
    r
}

struct Fixture {
    config: SyncConfig,
    keys: Keys,
    mapping: Mapping,
    rk: ObjectKey,
    lk: ObjectKey,
}

fn fixture(config: SyncConfig) -> Fixture {
    let mapping = Mapping::new(&config);
    let rk = ObjectKey::new("tenant-a", "db-eu");
    let lk = mapping.to_local(&rk).unwrap();
    Fixture {
        keys: Keys::new(&config.domain),
        mapping,
        rk,
        lk,
        config,
    }
}

fn default_fixture() -> Fixture {
    fixture(
        SyncConfig::new("t")
            .remote_suffix("-eu")
            .local_namespace_suffix("-l"),
    )
}

impl Fixture {
    fn cx(&self) -> PlanContext<'_> {
        PlanContext {
            config: &self.config,
            keys: &self.keys,
            mapping: &self.mapping,
            remote_key: &self.rk,
            local_key: &self.lk,
        }
    }

    fn local_from(&self, r: &Thing, generation: i64) -> Thing {
        let mut l = new_local(r, &self.cx());
        l.metadata.generation = Some(generation);
        l.metadata.uid = Some("local-uid".into());
        l.metadata.resource_version = Some("7".into());
        l
    }
}

fn observed(remote: Thing, local: Option<Thing>) -> Observed<Thing> {
    let mut o = Observed::new(
        RemoteState::Present(remote),
        local,
        Some(ns_state(true, false)),
    );
    o.siblings = Some(Vec::new());
    o
}

/// A local namespace as this controller created it for `db` (`owned`), or one it did not.
fn ns_state(owned: bool, terminating: bool) -> NamespaceState {
    NamespaceState {
        owner: owned.then(|| "db".to_string()),
        created_by: owned.then(|| "t".to_string()),
        terminating,
        uid: Some("ns-uid".into()),
        resource_version: Some("40".into()),
        ..NamespaceState::default()
    }
}

fn live_sibling() -> Sibling {
    Sibling {
        local_name: "other".into(),
        remote: SiblingRemote::Live,
        has_local: true,
    }
}

fn new_local(r: &Thing, cx: &PlanContext<'_>) -> Thing {
    Thing::from_parts(
        metadata::new_local_meta(&r.metadata, cx),
        Thing::new_local_spec(&r.spec),
    )
}

fn owned_secret(owner: &Thing, rv: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            namespace: owner.metadata.namespace.clone(),
            resource_version: Some(rv.into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "test.dev/v1".into(),
                kind: "Thing".into(),
                name: owner.metadata.name.clone().unwrap_or_default(),
                uid: owner.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        data: Some([("k".to_string(), k8s_openapi::ByteString(b"v".to_vec()))].into()),
        ..Secret::default()
    }
}

mod adoption;
mod announce;
mod cleanup;
mod live;
mod properties;
mod transition;
