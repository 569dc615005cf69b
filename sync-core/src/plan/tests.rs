use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

use crate::OnRemoteDelete;
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
    Observed::new(
        RemoteState::Present(remote),
        local,
        Some(ns_state(true, false)),
    )
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

#[test]
fn a_new_remote_object_is_claimed_first_keeping_other_finalizers_then_gets_its_namespace() {
    let f = default_fixture();
    let mut r = remote(1);
    r.metadata.finalizers = Some(vec!["other/finalizer".into()]);
    let mut o = observed(r, None);
    o.namespace = None;
    let Step::PatchRemote(p) = plan(&o, &f.cx()) else {
        panic!("expected the claim")
    };
    assert_eq!(p.resource_version, "100");
    assert_eq!(
        p.finalizers,
        Some(vec![
            "other/finalizer".to_string(),
            format!("{D}/sync-local")
        ])
    );
    assert_eq!(
        p.annotations,
        [(format!("{D}/sync-controller"), Some("t".to_string()))].into()
    );
    let body = p.to_merge_patch();
    assert_eq!(body["metadata"]["resourceVersion"], "100");
    o.remote = RemoteState::Present(claim_only(remote(1)));
    assert!(matches!(plan(&o, &f.cx()), Step::CreateNamespace));
}

#[test]
fn an_object_the_go_original_claimed_gets_only_the_claim_annotation() {
    let f = default_fixture();
    let mut r = claimed(remote(3), 1);
    r.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(&format!("{D}/sync-controller"));
    let l = f.local_from(&r, 1);
    let Step::PatchRemote(p) = plan(&observed(r, Some(l)), &f.cx()) else {
        panic!()
    };
    assert_eq!(p.finalizers, None);
    assert_eq!(
        p.annotations,
        [(format!("{D}/sync-controller"), Some("t".to_string()))].into()
    );
}

#[test]
fn an_object_another_controller_claimed_gets_no_write_whatever_its_state() {
    let f = default_fixture();
    let other = |mut r: Thing| {
        r.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(format!("{D}/sync-controller"), "other-region".into());
        r
    };
    let live = observed(other(claimed(remote(3), 1)), None);
    let mut terminating = observed(other(claimed(remote(3), 1)), None);
    if let RemoteState::Present(r) = &mut terminating.remote {
        r.metadata.deletion_timestamp = Some(Time(Default::default()));
    }
    let mut unclaimed_yet = observed(other(remote(1)), None);
    unclaimed_yet.namespace = None;
    for o in [live, terminating, unclaimed_yet] {
        match plan(&o, &f.cx()) {
            Step::ClaimedElsewhere(owner) => assert_eq!(owner, "other-region"),
            step => panic!("{step:?}"),
        }
    }
}

#[test]
fn the_local_copy_carries_mapped_names_copied_metadata_and_defaulted_local_fields() {
    let f = default_fixture();
    let mut r = claim_only(remote(1));
    r.spec.note = Some("remote value for a local-only field".into());
    let Step::CreateLocal { object: l, .. } = plan(&observed(r, None), &f.cx()) else {
        panic!()
    };
    assert_eq!(l.metadata.name.as_deref(), Some("db"));
    assert_eq!(l.metadata.namespace.as_deref(), Some("tenant-a-l"));
    assert_eq!(l.spec.size, "small");
    assert_eq!(l.spec.note, None);
    assert_eq!(l.metadata.labels.as_ref().unwrap()["team"], "blue");
    let a = l.metadata.annotations.as_ref().unwrap();
    assert_eq!(a["note"], "hello");
    assert!(!a.contains_key(LAST_APPLIED_KEY));
    assert!(!a.contains_key(&format!("{D}/sync-remote-generation")));
    assert!(a.contains_key(&format!("{D}/sync-managed-keys")));
}

#[test]
fn after_the_create_both_generations_go_up_in_one_patch() {
    let f = default_fixture();
    let r = claim_only(remote(3));
    let l = f.local_from(&r, 1);
    let mut o = observed(r, Some(l));
    o.spec_applied = Some(3);
    let Step::PatchRemote(p) = plan(&o, &f.cx()) else {
        panic!()
    };
    assert_eq!(p.resource_version, "100");
    assert_eq!(p.finalizers, None);
    assert_eq!(
        p.annotations[&format!("{D}/sync-remote-generation")],
        Some("3".into())
    );
    assert_eq!(
        p.annotations[&format!("{D}/sync-local-generation")],
        Some("1".into())
    );
    let body = p.to_merge_patch();
    assert_eq!(body["metadata"]["resourceVersion"], "100");
}

#[test]
fn an_object_in_sync_needs_nothing() {
    let f = default_fixture();
    let r = claimed(remote(3), 1);
    let l = f.local_from(&r, 1);
    assert!(matches!(plan(&observed(r, Some(l)), &f.cx()), Step::InSync));
}

#[test]
fn a_remote_spec_change_updates_the_local_spec_and_keeps_local_only_fields() {
    let f = default_fixture();
    let r0 = claimed(remote(3), 1);
    let mut l = f.local_from(&r0, 1);
    l.spec.note = Some("mine".into());
    let mut r = r0.clone();
    r.metadata.generation = Some(4);
    r.spec.size = "large".into();
    let Step::UpdateLocal { object: d, .. } = plan(&observed(r, Some(l)), &f.cx()) else {
        panic!()
    };
    assert_eq!(d.spec.size, "large");
    assert_eq!(d.spec.note.as_deref(), Some("mine"));
    assert_eq!(d.metadata.resource_version.as_deref(), Some("7"));
}

#[test]
fn a_local_spec_edit_is_reverted() {
    let f = default_fixture();
    let r = claimed(remote(3), 1);
    let mut l = f.local_from(&r, 1);
    l.spec.size = "edited".into();
    l.metadata.generation = Some(2);
    let Step::UpdateLocal { object: d, .. } = plan(&observed(r, Some(l)), &f.cx()) else {
        panic!()
    };
    assert_eq!(d.spec.size, "small");
}

#[test]
fn a_spec_that_local_defaulting_changes_is_not_written_again() {
    let f = default_fixture();
    // The local API server defaulted `replicas`; the remote spec has none.
    let r = claimed(remote(3), 2);
    let mut l = f.local_from(&r, 2);
    l.spec.replicas = Some(1);
    assert!(matches!(
        plan(&observed(r.clone(), Some(l.clone())), &f.cx()),
        Step::InSync
    ));
    // Right after this pass wrote it, the defaulted field does not trigger another write
    // either; the generations are recorded instead.
    let mut unrecorded = r;
    unrecorded.metadata.generation = Some(4);
    let mut o = observed(unrecorded, Some(l));
    o.spec_applied = Some(4);
    assert!(matches!(plan(&o, &f.cx()), Step::PatchRemote(_)));
}

#[test]
fn malformed_generation_annotations_trigger_a_comparison_not_a_loop() {
    let f = default_fixture();
    let mut r = claimed(remote(3), 1);
    r.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(format!("{D}/sync-remote-generation"), "three".into());
    let l = f.local_from(&r, 1);
    let Step::PatchRemote(p) = plan(&observed(r, Some(l)), &f.cx()) else {
        panic!()
    };
    assert_eq!(
        p.annotations[&format!("{D}/sync-remote-generation")],
        Some("3".into())
    );
}

#[test]
fn labels_removed_remotely_go_and_labels_added_locally_stay() {
    let f = default_fixture();
    let r = claimed(remote(3), 1);
    let mut l = f.local_from(&r, 1);
    l.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("local-actor".into(), "x".into());
    let mut r2 = r.clone();
    r2.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
    let Step::UpdateLocal { object: d, .. } = plan(&observed(r2, Some(l)), &f.cx()) else {
        panic!()
    };
    let labels = d.metadata.labels.unwrap();
    assert_eq!(labels.get("local-actor").map(String::as_str), Some("x"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("gold"));
    assert!(!labels.contains_key("team"), "{labels:?}");
}

#[test]
fn status_goes_up_only_when_there_is_one_and_it_differs() {
    let f = default_fixture();
    let mut r = claimed(remote(3), 1);
    r.status = Some(ThingStatus {
        ready: false,
        observed_generation: 0,
    });
    let mut l = f.local_from(&r, 1);
    assert!(matches!(
        plan(&observed(r.clone(), Some(l.clone())), &f.cx()),
        Step::InSync
    ));
    l.status = Some(ThingStatus {
        ready: true,
        observed_generation: 1,
    });
    let Step::PatchRemoteStatus(s) = plan(&observed(r.clone(), Some(l.clone())), &f.cx()) else {
        panic!()
    };
    assert_eq!(
        s,
        serde_json::json!({"ready": true, "observedGeneration": 1})
    );
    r.status = l.status.clone();
    assert!(matches!(plan(&observed(r, Some(l)), &f.cx()), Step::InSync));
}

#[test]
fn a_paused_object_gets_no_write_on_either_side() {
    let f = default_fixture();
    let mut r = remote(1);
    r.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(format!("{D}/paused"), "true".into());
    assert!(matches!(plan(&observed(r, None), &f.cx()), Step::Paused));
    let r = claimed(remote(3), 1);
    let mut l = f.local_from(&r, 1);
    l.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(format!("{D}/paused"), "true".into());
    let mut o = observed(r, Some(l));
    o.remote = RemoteState::Gone;
    assert!(matches!(plan(&o, &f.cx()), Step::Paused));
}

fn gone(f: &Fixture, owned: bool, sibling: bool) -> Observed<Thing> {
    let r = claimed(remote(3), 1);
    let l = f.local_from(&r, 1);
    let mut o = observed(r, Some(l));
    o.remote = RemoteState::Gone;
    o.namespace = Some(ns_state(owned, false));
    if sibling {
        o.siblings.push(live_sibling());
    }
    o
}

#[test]
fn remote_delete_deletes_an_owned_namespace_without_live_siblings() {
    let f = default_fixture();
    assert!(matches!(
        plan(&gone(&f, true, false), &f.cx()),
        Step::DeleteNamespace { .. }
    ));
}

#[test]
fn remote_delete_keeps_namespace_shared_with_live_sibling_and_deletes_only_the_local_copy() {
    let f = default_fixture();
    assert!(matches!(
        plan(&gone(&f, true, true), &f.cx()),
        Step::DeleteLocal(Propagation::Foreground)
    ));
    let mut o = gone(&f, true, true);
    o.local = None;
    assert!(matches!(plan(&o, &f.cx()), Step::InSync));
}

#[test]
fn remote_delete_deletes_nothing_in_a_namespace_the_controller_did_not_create() {
    let f = default_fixture();
    assert!(matches!(
        plan(&gone(&f, false, false), &f.cx()),
        Step::InSync
    ));
    let f = fixture(
        default_fixture()
            .config
            .on_remote_delete(OnRemoteDelete::Resource)
            .propagation(Propagation::Background),
    );
    assert!(matches!(
        plan(&gone(&f, false, false), &f.cx()),
        Step::DeleteLocal(Propagation::Background)
    ));
    let f = fixture(
        default_fixture()
            .config
            .on_remote_delete(OnRemoteDelete::Orphan),
    );
    assert!(matches!(
        plan(&gone(&f, true, false), &f.cx()),
        Step::InSync
    ));
}

#[test]
fn the_resource_policy_never_deletes_a_local_object_the_controller_did_not_sync() {
    let f = fixture(
        default_fixture()
            .config
            .on_remote_delete(OnRemoteDelete::Resource),
    );
    let mut o = gone(&f, false, false);
    o.local.as_mut().unwrap().metadata.annotations = None;
    assert!(matches!(plan(&o, &f.cx()), Step::InSync));
}

#[test]
fn a_terminating_remote_waits_for_the_namespace_then_releases_only_its_finalizer() {
    let f = default_fixture();
    let mut r = claimed(remote(3), 1);
    r.metadata.deletion_timestamp = Some(Time(Default::default()));
    let mut o = observed(r, None);
    o.namespace = Some(ns_state(true, true));
    assert!(matches!(plan(&o, &f.cx()), Step::Wait(_)));
    o.namespace = None;
    let Step::ReleaseFinalizer(p) = plan(&o, &f.cx()) else {
        panic!()
    };
    assert_eq!(p.finalizers, Some(vec!["other/finalizer".to_string()]));
    assert_eq!(p.resource_version, "100");
}

#[test]
fn a_controlled_secret_goes_up_with_the_remote_object_as_controller_then_its_version_is_recorded() {
    let f = default_fixture();
    let r = claimed(remote(3), 1);
    let l = f.local_from(&r, 1);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            namespace: Some("tenant-a-l".into()),
            resource_version: Some("55".into()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [(
                "password".to_string(),
                k8s_openapi::ByteString(b"hunter2".to_vec()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    let mut o = observed(r, Some(l));
    o.secrets.insert("creds".into(), SecretPayload(secret));
    let step = plan(&o, &f.cx());
    let shown = format!("{o:?}{step:?}");
    let as_bytes = format!("{:?}", b"hunter2".to_vec()).replace(['[', ']'], "");
    assert!(
        !shown.contains("hunter2") && !shown.contains(&as_bytes),
        "secret data in Debug output: {shown}"
    );
    let Step::PushSecret {
        name,
        version,
        remote,
    } = plan(&o, &f.cx())
    else {
        panic!()
    };
    let SecretPayload(remote) = *remote;
    assert_eq!((name.as_str(), version.as_str()), ("creds", "55"));
    assert_eq!(remote.metadata.name.as_deref(), Some("creds-eu"));
    assert_eq!(remote.metadata.namespace.as_deref(), Some("tenant-a"));
    let owner = &remote.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        ("remote-uid", Some(true))
    );
    o.pushed_secrets.insert("creds".into(), "55".into());
    let Step::PatchRemote(p) = plan(&o, &f.cx()) else {
        panic!()
    };
    assert_eq!(
        p.annotations[&format!("{D}/sync-secret-versions")],
        Some(r#"{"creds":"55"}"#.into())
    );
}

// Arbitrary observations, for the invariants that must hold whatever the clusters say.
fn arb_observed() -> impl Strategy<Value = (Observed<Thing>, SyncConfig)> {
    (
        (0u8..3, any::<bool>(), any::<bool>(), any::<bool>()),
        (0u8..3, any::<bool>(), any::<bool>(), any::<bool>()),
        (0u8..3, any::<bool>(), any::<bool>()),
        (0u8..3, 0u8..3, 1i64..4, 1i64..4),
    )
        .prop_map(|(rem, loc, ns, (policy, prop, rg, lg))| {
            let (r_state, r_fin, r_paused, r_status) = rem;
            let (l_state, l_paused, l_managed, l_status) = loc;
            let (ns_kind, ns_owned, sibling) = ns;
            let f = default_fixture();
            let mut r = claimed(remote(rg), lg);
            let mut l = f.local_from(&r, lg);
            if !r_fin {
                r.metadata.finalizers = None;
            }
            if r_paused {
                r.metadata
                    .annotations
                    .as_mut()
                    .unwrap()
                    .insert(format!("{D}/paused"), "true".into());
            }
            if r_status {
                r.status = Some(ThingStatus {
                    ready: true,
                    observed_generation: 1,
                });
            }
            if r_state == 1 {
                r.metadata.deletion_timestamp = Some(Time(Default::default()));
            }
            if l_paused {
                l.metadata
                    .annotations
                    .as_mut()
                    .unwrap()
                    .insert(format!("{D}/paused"), "true".into());
            }
            if !l_managed {
                l.metadata.annotations = None;
            }
            if l_status {
                l.status = Some(ThingStatus {
                    ready: false,
                    observed_generation: 2,
                });
            }
            if l_state == 1 {
                l.metadata.deletion_timestamp = Some(Time(Default::default()));
            }
            let config = f
                .config
                .on_remote_delete(
                    [
                        OnRemoteDelete::Namespace,
                        OnRemoteDelete::Resource,
                        OnRemoteDelete::Orphan,
                    ][policy as usize],
                )
                .propagation(
                    [
                        Propagation::Foreground,
                        Propagation::Background,
                        Propagation::Orphan,
                    ][prop as usize],
                );
            let mut o = Observed::new(
                if r_state == 2 {
                    RemoteState::Gone
                } else {
                    RemoteState::Present(r)
                },
                (l_state != 2).then_some(l),
                (ns_kind != 2).then_some(ns_state(ns_owned, ns_kind == 1)),
            );
            if sibling {
                o.siblings.push(live_sibling());
            }
            (o, config)
        })
}

proptest! {
    #[test]
    fn no_plan_deletes_a_namespace_the_controller_did_not_create_or_one_with_a_live_sibling((o, config) in arb_observed()) {
        let f = fixture(config);
        if matches!(plan(&o, &f.cx()), Step::DeleteNamespace { .. }) {
            let ns = o.namespace.unwrap();
            prop_assert!(ns.is_ours("t", "db") && o.siblings.is_empty() && !ns.terminating);
            prop_assert!(f.config.on_remote_delete != OnRemoteDelete::Orphan);
        }
    }

    #[test]
    fn no_plan_writes_while_paused((o, config) in arb_observed()) {
        let f = fixture(config);
        let keys = Keys::new(D);
        let paused = o.local.as_ref().is_some_and(|l| is_paused(&l.metadata, &keys))
            || matches!(&o.remote, RemoteState::Present(r) if is_paused(&r.metadata, &keys));
        let step = plan(&o, &f.cx());
        if paused {
            prop_assert!(!step.is_write(), "{step:?}");
        }
    }

    #[test]
    fn local_deletions_happen_only_after_the_remote_went((o, config) in arb_observed()) {
        let f = fixture(config);
        let step = plan(&o, &f.cx());
        if step.is_local_delete() {
            let going = match &o.remote {
                RemoteState::Gone => true,
                RemoteState::Present(r) => r.metadata.deletion_timestamp.is_some(),
            };
            prop_assert!(going, "{step:?}");
        }
        if matches!(step, Step::DeleteLocal(_)) {
            let ours = o.namespace.as_ref().is_some_and(|n| n.is_ours("t", "db"));
            prop_assert!(ours || f.config.on_remote_delete == OnRemoteDelete::Resource, "{step:?}");
            prop_assert!(f.config.on_remote_delete != OnRemoteDelete::Orphan);
        }
    }
}

/// Junk where people or other tools can write: generation and bookkeeping annotations that do
/// not parse, paused values other than "true", secrets, a pass that already wrote.
fn arb_any() -> impl Strategy<Value = (Observed<Thing>, SyncConfig)> {
    let junk = prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("three".to_string())),
        Just(Some("-1".to_string())),
        Just(Some("99999999999999999999".to_string())),
        Just(Some("{not json".to_string())),
        Just(Some("3".to_string())),
    ];
    let pause = prop_oneof![
        Just(None),
        Just(Some("true")),
        Just(Some("false")),
        Just(Some("True")),
    ];
    (
        arb_observed(),
        (junk.clone(), junk.clone(), junk),
        (pause.clone(), pause),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop_oneof![Just(None), Just(Some("t")), Just(Some("other-region"))],
    )
        .prop_map(
            |((mut o, config), (rg, lg, sv), (rp, lp), (secret, pushed, applied), claim)| {
                if let RemoteState::Present(r) = &mut o.remote {
                    let a = r.metadata.annotations.get_or_insert_with(Default::default);
                    match claim {
                        Some(c) => a.insert(format!("{D}/sync-controller"), c.to_string()),
                        None => a.remove(&format!("{D}/sync-controller")),
                    };
                    for (k, v) in [
                        ("sync-remote-generation", rg),
                        ("sync-local-generation", lg),
                        ("sync-secret-versions", sv),
                    ] {
                        if let Some(v) = v {
                            a.insert(format!("{D}/{k}"), v);
                        }
                    }
                    if let Some(p) = rp {
                        a.insert(format!("{D}/paused"), p.to_string());
                    }
                }
                if let (Some(l), Some(p)) = (&mut o.local, lp) {
                    l.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(format!("{D}/paused"), p.to_string());
                }
                if secret && let Some(l) = &o.local {
                    o.secrets
                        .insert("creds".into(), SecretPayload(owned_secret(l, "9")));
                }
                if pushed {
                    o.pushed_secrets.insert("creds".into(), "9".into());
                }
                o.spec_applied = applied.then_some(3);
                (o, config.secrets(["creds"]))
            },
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

/// What the API servers do with a step, enough to follow a pass to its end. The local API server
/// defaults `replicas` to 1, as the test CRD does, and bumps the generation on a spec change.
fn server_answer(step: &Step<Thing>, o: &Observed<Thing>) -> Answer<Thing> {
    fn bump(meta: &mut ObjectMeta) {
        let rv: u64 = meta
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        meta.resource_version = Some((rv + 1).to_string());
    }
    let remote = || match &o.remote {
        RemoteState::Present(r) => r.clone(),
        RemoteState::Gone => panic!("a remote write with no remote object"),
    };
    match step {
        Step::CreateNamespace => Answer::Namespace(ns_state(true, false)),
        Step::CreateLocal { object, .. } => {
            let mut l = (**object).clone();
            l.spec.replicas.get_or_insert(1);
            l.metadata.generation = Some(1);
            l.metadata.uid = Some("new-local-uid".into());
            l.metadata.resource_version = Some("1".into());
            Answer::Object(l)
        }
        Step::UpdateLocal { object, .. } => {
            let old = o.local.as_ref().expect("an update has a local object");
            let mut d = (**object).clone();
            d.spec.replicas.get_or_insert(1);
            if d.spec != old.spec {
                d.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
            }
            bump(&mut d.metadata);
            Answer::Object(d)
        }
        Step::PatchRemote(p) | Step::ReleaseFinalizer(p) => {
            let mut r = remote();
            assert_eq!(
                Some(&p.resource_version),
                r.metadata.resource_version.as_ref(),
                "a remote patch is guarded by the version it was computed from"
            );
            p.apply_to(&mut r.metadata);
            bump(&mut r.metadata);
            Answer::Object(r)
        }
        Step::PatchRemoteStatus(v) => {
            let mut r = remote();
            r.status = serde_json::from_value(v.clone()).ok();
            bump(&mut r.metadata);
            Answer::Object(r)
        }
        Step::PushSecret { .. } => Answer::Done,
        _ => Answer::Gone,
    }
}

/// A live, unpaused remote object with every kind of difference from its local copy.
fn arb_live() -> impl Strategy<Value = Observed<Thing>> {
    let labels = prop::collection::btree_map("[a-c]", "[x-z]", 0..3);
    (
        (prop_oneof![Just("small"), Just("large")], 1i64..5, 1i64..5),
        (
            0u8..3,
            prop_oneof![Just("small"), Just("edited")],
            labels.clone(),
        ),
        (0u8..3, any::<bool>(), any::<bool>(), any::<bool>()),
        (labels, any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (size, rg, lg),
                (l_state, l_size, l_labels),
                (ns, ns_owned, fin, claimed_before),
                (r_labels, status, secret),
            )| {
                let f = default_fixture();
                let mut r = remote(rg);
                r.spec.size = size.into();
                if claimed_before {
                    r = claimed(r, lg);
                }
                if !fin {
                    r.metadata.finalizers = None;
                }
                r.metadata.labels = Some(r_labels);
                let local = (l_state != 0).then(|| {
                    let mut l = f.local_from(&r, lg);
                    if l_state == 2 {
                        // Someone edits the local copy: a spec edit moves its generation.
                        if l.spec.size != l_size {
                            l.spec.size = l_size.into();
                            l.metadata.generation = Some(lg + 1);
                        }
                        l.metadata.labels = Some(l_labels);
                    }
                    if status {
                        l.status = Some(ThingStatus {
                            ready: true,
                            observed_generation: lg,
                        });
                    }
                    l
                });
                let mut o = observed(r, local);
                o.namespace = (ns != 0).then_some(ns_state(ns_owned, false));
                if secret && let Some(l) = &o.local {
                    o.secrets
                        .insert("creds".into(), SecretPayload(owned_secret(l, "5")));
                }
                o
            },
        )
}

proptest! {
    #[test]
    fn junk_and_foreign_claims_never_make_a_plan_delete_or_write_wrongly((o, config) in arb_any()) {
        let f = fixture(config);
        let step = plan(&o, &f.cx());
        let keys = Keys::new(D);
        let paused = o.local.as_ref().is_some_and(|l| is_paused(&l.metadata, &keys))
            || matches!(&o.remote, RemoteState::Present(r) if is_paused(&r.metadata, &keys));
        prop_assert!(!(paused && step.is_write()), "{step:?}");
        let foreign = matches!(&o.remote, RemoteState::Present(r)
            if claimed_by(&r.metadata, &keys).is_some_and(|c| c != "t"));
        prop_assert!(!(foreign && step.is_write()), "{step:?} on an object another controller claimed");
        let going = match &o.remote {
            RemoteState::Gone => true,
            RemoteState::Present(r) => r.metadata.deletion_timestamp.is_some(),
        };
        if matches!(step, Step::DeleteNamespace { .. }) {
            let ns = o.namespace.unwrap();
            prop_assert!(going && ns.is_ours("t", "db") && !ns.terminating && o.siblings.is_empty());
        }
        if step.is_local_delete() {
            prop_assert!(going, "{step:?}");
        }
    }

    #[test]
    fn a_live_object_converges_in_a_few_writes_and_the_next_pass_writes_nothing(o in arb_live()) {
        let f = fixture(default_fixture().config.secrets(["creds"]));
        let mut o = o;
        let mut steps = Vec::new();
        loop {
            let step = plan(&o, &f.cx());
            if !step.is_write() {
                prop_assert!(matches!(step, Step::InSync), "ended with {step:?} after {steps:?}");
                break;
            }
            prop_assert!(!step.is_local_delete(), "{step:?} for a live object");
            prop_assert!(steps.len() < 10, "no end in sight: {steps:?}");
            let answer = server_answer(&step, &o);
            transition(&mut o, &step, answer, &f.cx());
            steps.push(format!("{step:?}").chars().take(60).collect::<String>());
        }
        let local_spec_writes = steps.iter().filter(|s| s.starts_with("UpdateLocal") || s.starts_with("CreateLocal")).count();
        prop_assert!(local_spec_writes <= 1, "{steps:?}");
        // A new pass, as after a restart: what was recorded on the remote object is enough.
        o.spec_applied = None;
        o.pushed_secrets.clear();
        let again = plan(&o, &f.cx());
        prop_assert!(matches!(again, Step::InSync), "a second pass wants {again:?} after {steps:?}");
        let (RemoteState::Present(r), Some(l)) = (&o.remote, &o.local) else { unreachable!() };
        prop_assert_eq!(&r.spec.size, &l.spec.size);
        prop_assert_eq!(r.status.as_ref(), l.status.as_ref().or(r.status.as_ref()));
    }
}

/// Finding 1: a status patch's answer can carry a newer spec; the generation annotations must
/// not claim it before it is applied.
#[test]
fn a_newer_spec_in_a_status_answer_is_applied_before_its_generation_is_recorded() {
    let f = default_fixture();
    let r = claimed(remote(3), 1);
    let mut l = f.local_from(&r, 1);
    l.status = Some(ThingStatus {
        ready: true,
        observed_generation: 1,
    });
    let mut o = observed(r, Some(l));
    o.spec_applied = Some(3);
    let Step::PatchRemoteStatus(sent) = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    // The management plane changed the spec meanwhile: the answer carries generation 4.
    let RemoteState::Present(mut answer) = o.remote.clone() else {
        unreachable!()
    };
    answer.spec.size = "large".into();
    answer.metadata.generation = Some(4);
    answer.status = serde_json::from_value(sent.clone()).ok();
    let step = Step::PatchRemoteStatus(sent);
    assert_eq!(
        transition(&mut o, &step, Answer::Object(answer), &f.cx()),
        None
    );
    let Step::UpdateLocal { object, spec_of } = plan(&o, &f.cx()) else {
        panic!(
            "generation 4 must be applied first, not recorded: {:?}",
            plan(&o, &f.cx())
        )
    };
    assert_eq!(object.spec.size, "large");
    assert_eq!(spec_of, Some(4));
}

/// Finding 3: a status the remote server prunes is sent once, reported once, and not again
/// until the local status changes.
#[test]
fn a_status_the_remote_does_not_keep_is_sent_once_until_it_changes() {
    let f = default_fixture();
    let r = claimed(remote(3), 1);
    let mut l = f.local_from(&r, 1);
    l.status = Some(ThingStatus {
        ready: true,
        observed_generation: 1,
    });
    let mut o = observed(r, Some(l));
    let step = plan(&o, &f.cx());
    assert!(matches!(step, Step::PatchRemoteStatus(_)));
    // The remote schema drops `ready`: the answer has a different status.
    let RemoteState::Present(mut answer) = o.remote.clone() else {
        unreachable!()
    };
    answer.status = Some(ThingStatus {
        ready: false,
        observed_generation: 1,
    });
    assert_eq!(
        transition(&mut o, &step, Answer::Object(answer.clone()), &f.cx()),
        Some(NotKept::RemoteStatus)
    );
    assert!(matches!(plan(&o, &f.cx()), Step::InSync));
    // A new local status is a new source: sent again.
    o.local.as_mut().unwrap().status = Some(ThingStatus {
        ready: true,
        observed_generation: 2,
    });
    assert!(matches!(plan(&o, &f.cx()), Step::PatchRemoteStatus(_)));
}

/// Finding 3: a copied label that local admission rewrites is written once, not in a loop.
#[test]
fn a_label_local_admission_rewrites_is_not_written_again() {
    let f = default_fixture();
    let mut r = claimed(remote(3), 1);
    r.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("tier".into(), "gold".into());
    let l = f.local_from(&claimed(remote(3), 1), 1);
    let mut o = observed(r, Some(l));
    let step = plan(&o, &f.cx());
    let Step::UpdateLocal { object, .. } = &step else {
        panic!("{step:?}")
    };
    let mut stored = (**object).clone();
    stored
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("tier".into(), "silver".into());
    assert_eq!(
        transition(&mut o, &step, Answer::Object(stored), &f.cx()),
        Some(NotKept::LocalMetadata)
    );
    let next = plan(&o, &f.cx());
    assert!(!matches!(next, Step::UpdateLocal { .. }), "{next:?}");
}

/// Finding 2: what protects a namespace the controller created.
#[test]
fn a_namespace_is_kept_for_a_paused_uncached_or_marked_sibling_and_the_copy_goes_alone() {
    let f = default_fixture();
    let keys = Keys::new(D);
    let paused_meta = ObjectMeta {
        annotations: Some([(format!("{D}/paused"), "true".to_string())].into()),
        deletion_timestamp: Some(Time(Default::default())),
        ..ObjectMeta::default()
    };
    let local_meta = ObjectMeta::default();
    let cases = [
        Sibling::from_meta("p", Some(&paused_meta), None, &keys),
        Sibling::from_meta("u", None, Some(&local_meta), &keys),
        Sibling::from_meta("n", Some(&local_meta), None, &keys),
    ];
    for sibling in cases {
        let mut o = gone(&f, true, false);
        o.siblings.push(sibling.clone());
        assert!(
            matches!(
                plan(&o, &f.cx()),
                Step::DeleteLocal(Propagation::Foreground)
            ),
            "{sibling:?}"
        );
    }
    let mut o = gone(&f, true, false);
    o.namespace
        .as_mut()
        .unwrap()
        .needed_by
        .insert("other-kind-sync".into());
    assert!(matches!(plan(&o, &f.cx()), Step::DeleteLocal(_)));
    // A terminating, unpaused sibling is on its way out: it does not hold the namespace.
    let going = ObjectMeta {
        deletion_timestamp: Some(Time(Default::default())),
        ..ObjectMeta::default()
    };
    let mut o = gone(&f, true, false);
    o.siblings.push(Sibling::from_meta(
        "g",
        Some(&going),
        Some(&local_meta),
        &keys,
    ));
    assert!(matches!(plan(&o, &f.cx()), Step::DeleteNamespace { .. }));
}

#[test]
fn a_namespace_another_controller_or_the_go_original_made_is_marked_and_unmarked() {
    let f = default_fixture();
    let r = claimed(remote(3), 1);
    let mut o = observed(r, None);
    o.namespace = Some(NamespaceState {
        owner: Some("someone".into()),
        created_by: Some("other-kind-sync".into()),
        ..NamespaceState::default()
    });
    assert!(matches!(plan(&o, &f.cx()), Step::MarkNamespace));
    o.namespace.as_mut().unwrap().needed_by.insert("t".into());
    assert!(matches!(plan(&o, &f.cx()), Step::CreateLocal { .. }));
    // Gone: never deletes another controller's namespace, and takes its mark away.
    o.remote = RemoteState::Gone;
    assert!(matches!(plan(&o, &f.cx()), Step::UnmarkNamespace));
    // The Go original's namespace for this very object (no creator stamp) is ours to delete.
    o.namespace = Some(NamespaceState {
        owner: Some("db".into()),
        ..NamespaceState::default()
    });
    assert!(matches!(plan(&o, &f.cx()), Step::DeleteNamespace { .. }));
}
