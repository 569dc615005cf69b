//! How answers change what is known: the findings of the "one source of truth" review.

use super::*;

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

/// A remote metadata patch answered 404 (the object was released and deleted since the
/// cache showed it): the object is gone, so the pass goes on with what is left of clean-up,
/// never the same patch again.
#[test]
fn a_release_answered_not_found_leaves_the_object_gone() {
    let f = default_fixture();
    let mut r = claimed(remote(3), 1);
    r.metadata.deletion_timestamp = Some(Time(Default::default()));
    let mut o = observed(r, None);
    o.namespace = None;
    let step = plan(&o, &f.cx());
    assert!(matches!(step, Step::ReleaseFinalizer(_)), "{step:?}");
    assert_eq!(transition(&mut o, &step, Answer::Gone, &f.cx()), None);
    assert!(matches!(o.remote, RemoteState::Gone), "{:?}", o.remote);
    let next = plan(&o, &f.cx());
    assert!(!next.is_write(), "{next:?}");
}
