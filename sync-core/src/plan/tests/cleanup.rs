//! A remote object that went: which namespace and copy go, and which stay.

use super::*;

fn gone(f: &Fixture, owned: bool, sibling: bool) -> Observed<Thing> {
    let r = claimed(remote(3), 1);
    let l = f.local_from(&r, 1);
    let mut o = observed(r, Some(l));
    o.remote = RemoteState::Gone;
    o.namespace = Some(ns_state(owned, false));
    if sibling {
        o.siblings.get_or_insert_with(Vec::new).push(live_sibling());
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
            .on_remote_delete(OnRemoteDelete::NamespaceOrResource)
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
            .on_remote_delete(OnRemoteDelete::NamespaceOrResource),
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
        o.siblings
            .get_or_insert_with(Vec::new)
            .push(sibling.clone());
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
    o.siblings
        .get_or_insert_with(Vec::new)
        .push(Sibling::from_meta(
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
    let r = claim_only(remote(3));
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
    assert!(matches!(plan(&o, &f.cx()), Step::UnmarkNamespace(m) if m == ["t"]));
    // The Go original's namespace for this very object (no creator stamp) is ours to delete.
    o.namespace = Some(NamespaceState {
        owner: Some("db".into()),
        ..NamespaceState::default()
    });
    assert!(matches!(plan(&o, &f.cx()), Step::DeleteNamespace { .. }));
}

/// The keys of a namespace share its marks: a pass must see this controller's own last write
/// to the namespace even when the cache does not show it yet.
#[test]
fn the_controllers_own_namespace_write_wins_over_an_older_cache() {
    let cached = NamespaceState {
        owner: Some("x".into()),
        created_by: Some("other".into()),
        needed_by: ["t".to_string()].into(),
        uid: Some("u".into()),
        resource_version: Some("9".into()),
        ..NamespaceState::default()
    };
    let own = NamespaceState {
        needed_by: Default::default(),
        resource_version: Some("10".into()),
        ..cached.clone()
    };
    let seen = NamespaceState::fresher(Some(cached.clone()), Some(&own)).unwrap();
    assert!(
        seen.wants_mark(&SyncConfig::new("t")),
        "the unmark is seen: {seen:?}"
    );
    // A cache that caught up, or a namespace re-created under the name, wins.
    let newer = NamespaceState {
        resource_version: Some("11".into()),
        ..cached.clone()
    };
    assert_eq!(
        NamespaceState::fresher(Some(newer.clone()), Some(&own)),
        Some(newer)
    );
    let recreated = NamespaceState {
        uid: Some("v".into()),
        resource_version: Some("2".into()),
        ..cached
    };
    assert_eq!(
        NamespaceState::fresher(Some(recreated.clone()), Some(&own)),
        Some(recreated)
    );
}

/// A spec that stopped fitting the kind: a live object is left alone, and a terminating one
/// is cleaned up and released from its metadata alone, so its deletion does not hang.
#[test]
fn a_terminating_remote_object_whose_spec_does_not_parse_is_cleaned_up_and_released() {
    let f = default_fixture();
    let mut r = claimed(remote(3), 1);
    let l = f.local_from(&r, 1);
    let unreadable = |r: &Thing| RemoteState::Unreadable(Box::new(r.metadata.clone()));

    let mut live = observed(r.clone(), Some(l.clone()));
    live.remote = unreadable(&r);
    assert!(matches!(plan(&live, &f.cx()), Step::InSync));

    r.metadata.deletion_timestamp = Some(Time(Default::default()));
    let mut o = observed(r.clone(), Some(l));
    o.remote = unreadable(&r);
    o.namespace = Some(ns_state(true, false));
    o.siblings = Some(Vec::new());
    assert!(matches!(plan(&o, &f.cx()), Step::DeleteNamespace { .. }));

    o.local = None;
    o.namespace = None;
    let Step::ReleaseFinalizer(p) = plan(&o, &f.cx()) else {
        panic!("{:?}", plan(&o, &f.cx()));
    };
    let mut released = r.metadata.clone();
    p.apply_to(&mut released);
    transition(
        &mut o,
        &Step::ReleaseFinalizer(p),
        Answer::Unreadable(Box::new(released)),
        &f.cx(),
    );
    assert!(matches!(plan(&o, &f.cx()), Step::InSync));
}

#[test]
fn in_a_namespace_another_kind_of_the_manager_made_the_copy_goes_but_not_the_namespace() {
    let mut config = default_fixture().config;
    config.partners = vec!["cache-sync".into()];
    let f = fixture(config);
    let mut o = gone(&f, false, false);
    o.namespace = Some(NamespaceState {
        owner: Some("c1".into()),
        created_by: Some("cache-sync".into()),
        ..ns_state(false, false)
    });
    assert!(matches!(
        plan(&o, &f.cx()),
        Step::DeleteLocal(Propagation::Foreground)
    ));
    o.local = None;
    assert!(
        !matches!(plan(&o, &f.cx()), Step::DeleteNamespace { .. }),
        "the namespace is its creator's to delete"
    );
    // Without the manager (separate processes), the copy is not this controller's to delete.
    let f = default_fixture();
    let mut o = gone(&f, false, false);
    o.namespace = Some(NamespaceState {
        owner: Some("c1".into()),
        created_by: Some("cache-sync".into()),
        ..ns_state(false, false)
    });
    assert!(!matches!(plan(&o, &f.cx()), Step::DeleteLocal(_)));
}
