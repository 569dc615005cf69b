//! A live object: claim, namespace, copy, spec, labels, status and secrets.

use super::*;

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

/// A local copy deleted by someone: its record goes before a new copy is made, so the new
/// copy's generation (from 1 again) can never meet the old record.
#[test]
fn a_recreated_local_copy_first_forgets_the_old_record() {
    let f = default_fixture();
    let r = claimed(remote(3), 2);
    let o = observed(r, None);
    let Step::PatchRemote(p) = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    assert_eq!(p.annotations[&format!("{D}/sync-local-generation")], None);
    assert_eq!(p.annotations[&format!("{D}/sync-local-uid")], None);
    assert!(
        !p.annotations
            .contains_key(&format!("{D}/sync-remote-generation"))
    );
    // While the remote cluster is down, the copy is re-created first: healing the region
    // does not wait for the management cluster.
    let mut o = o;
    o.remote_down = true;
    assert!(matches!(plan(&o, &f.cx()), Step::CreateLocal { .. }));
}
