//! A renamed controller adopts the claims, namespaces and marks of its predecessors, and
//! leaves every other controller's alone.

use super::*;

/// The fixture's controller `t`, formerly `old`.
fn renamed() -> Fixture {
    fixture(
        SyncConfig::new("t")
            .remote_suffix("-eu")
            .local_namespace_suffix("-l")
            .adopt_claims_from(["old"]),
    )
}

/// Claimed by `owner` and synced at generation 3.
fn claimed_as(owner: &str) -> Thing {
    let mut r = claimed(remote(3), 1);
    r.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(format!("{D}/sync-controller"), owner.into());
    r
}

fn terminating(mut r: Thing) -> Thing {
    r.metadata.deletion_timestamp = Some(Time(Default::default()));
    r
}

/// The namespace `old` created for `db`.
fn ns_of_old() -> NamespaceState {
    NamespaceState {
        created_by: Some("old".into()),
        ..ns_state(true, false)
    }
}

#[test]
fn a_live_object_claimed_by_a_predecessor_gets_its_claim_rewritten_first() {
    let f = renamed();
    let r = claimed_as("old");
    let l = f.local_from(&r, 1);
    let mut o = observed(r, Some(l));
    o.namespace = Some(ns_of_old());
    let Step::PatchRemote(patch) = plan(&o, &f.cx()) else {
        panic!("expected the claim to be rewritten first");
    };
    assert_eq!(patch.finalizers, None, "the finalizer is shared: no change");
    assert_eq!(
        patch.annotations,
        BTreeMap::from([(format!("{D}/sync-controller"), Some("t".to_string()))])
    );
    // Once rewritten, the object is in sync like any of its own.
    let mut r = claimed_as("t");
    patch.apply_to(&mut r.metadata);
    o.remote = RemoteState::Present(r);
    assert!(
        matches!(plan(&o, &f.cx()), Step::InSync),
        "{:?}",
        plan(&o, &f.cx())
    );
}

#[test]
fn without_the_predecessor_listed_its_objects_are_another_controllers() {
    let f = default_fixture();
    let r = claimed_as("old");
    let l = f.local_from(&r, 1);
    let o = observed(r.clone(), Some(l.clone()));
    assert!(matches!(plan(&o, &f.cx()), Step::ClaimedElsewhere(c) if c == "old"));
    // A terminating one stays held: the hang the predecessors list resolves.
    let o = observed(terminating(r), Some(l));
    assert!(matches!(plan(&o, &f.cx()), Step::ClaimedElsewhere(c) if c == "old"));
}

#[test]
fn an_object_claimed_by_an_unlisted_controller_is_never_adopted() {
    let f = renamed();
    let r = claimed_as("other-region");
    let l = f.local_from(&r, 1);
    let o = observed(terminating(r), Some(l));
    assert!(matches!(plan(&o, &f.cx()), Step::ClaimedElsewhere(c) if c == "other-region"));
}

#[test]
fn a_terminating_object_claimed_by_a_predecessor_is_cleaned_up_and_released() {
    let f = renamed();
    let r = terminating(claimed_as("old"));
    let l = f.local_from(&r, 1);
    let mut o = observed(r.clone(), Some(l));
    // The predecessor created the namespace, and nothing else needs it: it goes.
    o.namespace = Some(ns_of_old());
    assert!(matches!(plan(&o, &f.cx()), Step::DeleteNamespace { .. }));
    // Once it is gone, the object is released: the shared finalizer goes, others stay.
    o.namespace = None;
    o.local = None;
    let Step::ReleaseFinalizer(patch) = plan(&o, &f.cx()) else {
        panic!("expected the release: {:?}", plan(&o, &f.cx()));
    };
    assert_eq!(patch.finalizers, Some(vec!["other/finalizer".to_string()]));
}

#[test]
fn a_namespace_a_predecessor_created_is_not_deleted_while_another_controller_needs_it() {
    let f = renamed();
    let r = terminating(claimed_as("old"));
    let l = f.local_from(&r, 1);
    let mut o = observed(r, Some(l));
    let mut ns = ns_of_old();
    ns.needed_by.insert("cache-sync".into());
    o.namespace = Some(ns);
    // The namespace stays for the other controller; the copy goes alone.
    assert!(matches!(plan(&o, &f.cx()), Step::DeleteLocal(_)));
}

#[test]
fn a_predecessors_mark_counts_as_ours_and_goes_with_ours() {
    let f = renamed();
    let r = claim_only(remote(3));
    let mut o = observed(r, None);
    let mut ns = NamespaceState {
        owner: Some("someone".into()),
        created_by: Some("other-kind-sync".into()),
        ..NamespaceState::default()
    };
    ns.needed_by.insert("old".into());
    o.namespace = Some(ns);
    // The predecessor's mark already protects the namespace: no second mark.
    assert!(matches!(plan(&o, &f.cx()), Step::CreateLocal { .. }));
    // Gone: both its mark and ours go, and the namespace is never deleted.
    o.namespace.as_mut().unwrap().needed_by.insert("t".into());
    o.remote = RemoteState::Gone;
    let step = plan(&o, &f.cx());
    assert!(
        matches!(&step, Step::UnmarkNamespace(m) if m == &["old".to_string(), "t".to_string()]),
        "{step:?}"
    );
    // Another controller's mark is never taken away, and keeps our namespace.
    let mut ours = NamespaceState {
        created_by: Some("old".into()),
        ..ns_state(true, false)
    };
    ours.needed_by.insert("cache-sync".into());
    assert!(ours.needed_by_another(&f.config));
    assert!(ours.own_marks(&f.config).is_empty());
    ours.needed_by = ["old".to_string()].into();
    assert!(!ours.needed_by_another(&f.config));
}

#[test]
fn the_census_counts_claims_by_whose_they_are() {
    let f = renamed();
    let metas: Vec<ObjectMeta> = ["t", "old", "other-region", "other-region", "x"]
        .iter()
        .map(|c| claimed_as(c).metadata)
        .chain(std::iter::once(remote(1).metadata))
        .collect();
    let census = ClaimCensus::count(&metas, &f.config, &f.keys);
    assert_eq!((census.ours, census.adopted, census.unclaimed), (1, 1, 1));
    assert_eq!(census.foreign_total(), 3);
    assert_eq!(census.main_foreign(), Some(("other-region", 2)));
    assert!(!census.mostly_foreign(), "3 of 6 is not most");
    let renamed_without_listing = ClaimCensus::count(&metas, &SyncConfig::new("new"), &f.keys);
    assert!(renamed_without_listing.mostly_foreign());
    assert!(!ClaimCensus::default().mostly_foreign());
}

/// An object's metadata that counts how many of its kind are alive at once.
struct Counted {
    meta: ObjectMeta,
    live: std::rc::Rc<std::cell::Cell<(usize, usize)>>,
}

impl Counted {
    fn new(meta: ObjectMeta, live: &std::rc::Rc<std::cell::Cell<(usize, usize)>>) -> Self {
        let (now, most) = live.get();
        live.set((now + 1, most.max(now + 1)));
        Counted {
            meta,
            live: live.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let (now, most) = self.live.get();
        self.live.set((now - 1, most));
    }
}

impl std::borrow::Borrow<ObjectMeta> for Counted {
    fn borrow(&self) -> &ObjectMeta {
        &self.meta
    }
}

#[test]
fn the_census_can_count_metadata_made_one_at_a_time() {
    // The runtime makes each cached object's metadata as the count goes: at no point do the
    // whole shard's exist together (13 MB at 10,000 objects when they did).
    let f = renamed();
    let live = std::rc::Rc::new(std::cell::Cell::new((0, 0)));
    let owners = ["t", "old", "other-region", "x", "t"];
    let census = ClaimCensus::count(
        owners
            .iter()
            .map(|c| Counted::new(claimed_as(c).metadata, &live)),
        &f.config,
        &f.keys,
    );
    assert_eq!((census.ours, census.adopted), (2, 1));
    assert_eq!(census.foreign_total(), 2);
    assert_eq!(live.get(), (0, 1), "(alive now, most alive at once)");
}
