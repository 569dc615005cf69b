//! A kind whose status carries `observedGeneration` records a new copy's generations in the
//! claim ([`SyncConfig::status_observed_generation`]): one remote metadata write per new object.

use super::*;

fn announcing() -> Fixture {
    fixture(
        SyncConfig::new("t")
            .remote_suffix("-eu")
            .local_namespace_suffix("-l")
            .status_observed_generation(true),
    )
}

fn ann(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.annotations
        .as_ref()?
        .get(&format!("{D}/{key}"))
        .cloned()
}

/// What the API server does with a remote metadata patch: applies it and moves the version.
fn patched(mut r: Thing, p: &RemoteMetaPatch) -> Thing {
    p.apply_to(&mut r.metadata);
    let rv: u64 = r
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    r.metadata.resource_version = Some((rv + 1).to_string());
    r
}

/// What the local API server stores for a create: a new UID, generation 1.
fn created(mut l: Thing) -> Thing {
    l.metadata.uid = Some("new-local-uid".into());
    l.metadata.generation = Some(1);
    l.metadata.resource_version = Some("1".into());
    l
}

fn status(observed_generation: i64) -> ThingStatus {
    ThingStatus {
        ready: true,
        observed_generation,
    }
}

#[test]
fn a_new_object_is_claimed_and_recorded_in_one_write_before_its_copy_is_made() {
    let f = announcing();
    let mut o = observed(remote(4), None);
    let Step::PatchRemote(claim) = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    // The claim: guarded by the version read, other finalizers kept, and the record of the
    // copy about to be made.
    assert_eq!(claim.resource_version, "100");
    assert_eq!(claim.finalizers, Some(vec![format!("{D}/sync-local")]));
    let set = |k: &str| claim.annotations[&format!("{D}/{k}")].clone();
    assert_eq!(set("sync-controller").as_deref(), Some("t"));
    assert_eq!(set("sync-remote-generation").as_deref(), Some("4"));
    assert_eq!(set("sync-local-generation").as_deref(), Some("1"));
    assert_eq!(set("sync-local-uid").as_deref(), Some("remote-uid.100"));
    let RemoteState::Present(r) = o.remote.clone() else {
        panic!()
    };
    o.remote = RemoteState::Present(patched(r, &claim));

    // The copy carries the id recorded for it.
    let Step::CreateLocal { object, spec_of } = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    assert_eq!(spec_of, Some(4));
    assert_eq!(
        ann(&object.metadata, "sync-copy-id").as_deref(),
        Some("remote-uid.100")
    );
    o.local = Some(created(*object));
    o.spec_applied = spec_of;

    // The record is true of the copy as made: no second remote metadata write.
    assert!(
        matches!(plan(&o, &f.cx()), Step::InSync),
        "{:?}",
        plan(&o, &f.cx())
    );
    o.spec_applied = None;
    assert!(matches!(plan(&o, &f.cx()), Step::InSync));
    // The local controller reports on the copy: its status goes up.
    o.local.as_mut().unwrap().status = Some(status(1));
    assert!(matches!(plan(&o, &f.cx()), Step::PatchRemoteStatus(_)));
}

#[test]
fn without_the_setting_the_claim_records_nothing_and_the_copy_no_id() {
    let f = default_fixture();
    let o = observed(remote(4), None);
    let Step::PatchRemote(claim) = plan(&o, &f.cx()) else {
        panic!()
    };
    assert!(
        !claim
            .annotations
            .contains_key(&format!("{D}/sync-local-generation"))
    );
    let o = observed(claim_only(remote(4)), None);
    let Step::CreateLocal { object, .. } = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    assert_eq!(ann(&object.metadata, "sync-copy-id"), None);
}

/// A remote status that names local generation 1 (an earlier copy's) would read as current
/// for the announced record before the new copy reported: the record waits for the copy.
#[test]
fn a_remote_status_naming_local_generation_one_turns_the_announcement_off() {
    let f = announcing();
    let mut r = remote(4);
    r.status = Some(status(1));
    let o = observed(r, None);
    let Step::PatchRemote(claim) = plan(&o, &f.cx()) else {
        panic!()
    };
    assert!(claim.finalizers.is_some());
    assert!(
        !claim
            .annotations
            .contains_key(&format!("{D}/sync-local-generation"))
    );
    // Another generation in the remote status does not.
    let mut r = remote(4);
    r.status = Some(status(3));
    let Step::PatchRemote(claim) = plan(&observed(r, None), &f.cx()) else {
        panic!()
    };
    assert!(
        claim
            .annotations
            .contains_key(&format!("{D}/sync-local-generation"))
    );
}

/// A copy deleted by someone: the record of the old copy is replaced by the announcement of a
/// new one, with a new id, in one write (instead of forgetting it first and recording after).
#[test]
fn a_recreated_copy_is_announced_with_a_new_id() {
    let f = announcing();
    let r = claimed(remote(4), 3);
    let o = observed(r.clone(), None);
    let Step::PatchRemote(p) = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    assert_eq!(p.finalizers, None);
    let set = |k: &str| p.annotations.get(&format!("{D}/{k}")).cloned().flatten();
    assert_eq!(set("sync-local-generation").as_deref(), Some("1"));
    assert_eq!(set("sync-local-uid").as_deref(), Some("remote-uid.100"));
    assert_eq!(
        set("sync-remote-generation"),
        None,
        "already recorded: not sent"
    );
    // A record that announces a copy already (say, the create failed) is used as it is.
    let o = observed(patched(r, &p), None);
    let Step::CreateLocal { object, .. } = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    assert_eq!(
        ann(&object.metadata, "sync-copy-id").as_deref(),
        Some("remote-uid.100")
    );
    // While the remote cluster is down, the copy is made without an announcement.
    let mut o = observed(claimed(remote(4), 3), None);
    o.remote_down = true;
    let Step::CreateLocal { object, .. } = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()))
    };
    assert_eq!(ann(&object.metadata, "sync-copy-id"), None);
}

/// The record names a copy by the id it carries: a copy with another id (made by someone else,
/// or before the announcement) has its spec compared, and the record then names it.
#[test]
fn a_copy_is_known_by_its_id_and_another_copy_is_compared() {
    let f = announcing();
    let mut r = claimed(remote(4), 1);
    r.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(format!("{D}/sync-local-uid"), "remote-uid.90".into());
    let mut l = f.local_from(&r, 1);
    l.spec.size = "drifted".into();
    let copy = |id: &str| {
        let mut l = l.clone();
        l.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(format!("{D}/sync-copy-id"), id.into());
        l
    };
    // The copy announced, at the generation announced: the record holds, nothing compared.
    let o = observed(r.clone(), Some(copy("remote-uid.90")));
    assert!(
        matches!(plan(&o, &f.cx()), Step::InSync),
        "{:?}",
        plan(&o, &f.cx())
    );
    // Another copy at generation 1: compared, and the drift reverted.
    let o = observed(r.clone(), Some(copy("remote-uid.80")));
    assert!(matches!(plan(&o, &f.cx()), Step::UpdateLocal { .. }));
    // A copy in sync without the id: the record is rewritten to name it by its UID.
    let mut plain = f.local_from(&r, 1);
    plain.metadata.uid = Some("plain-uid".into());
    let Step::PatchRemote(p) = plan(&observed(r, Some(plain)), &f.cx()) else {
        panic!()
    };
    assert_eq!(
        p.annotations[&format!("{D}/sync-local-uid")].as_deref(),
        Some("plain-uid")
    );
}
