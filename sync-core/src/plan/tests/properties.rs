//! Properties over arbitrary observations, and convergence of a pass through `transition`.

use super::*;

// Arbitrary observations, for the invariants that must hold whatever the clusters say.
fn arb_observed() -> impl Strategy<Value = (Observed<Thing>, SyncConfig)> {
    (
        (0u8..5, any::<bool>(), any::<bool>(), any::<bool>()),
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
            // 3 and 4: a spec that does not fit the kind, live or terminating.
            if r_state == 1 || r_state == 4 {
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
                        OnRemoteDelete::NamespaceOrResource,
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
                match r_state {
                    2 => RemoteState::Gone,
                    3 | 4 => RemoteState::Unreadable(Box::new(r.metadata)),
                    _ => RemoteState::Present(r),
                },
                (l_state != 2).then_some(l),
                (ns_kind != 2).then_some(ns_state(ns_owned, ns_kind == 1)),
            );
            o.siblings = Some(Vec::new());
            if sibling {
                o.siblings.get_or_insert_with(Vec::new).push(live_sibling());
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
            prop_assert!(ns.is_ours(&f.config, "db") && o.siblings.as_ref().is_some_and(Vec::is_empty) && !ns.terminating);
            prop_assert!(f.config.on_remote_delete != OnRemoteDelete::Orphan);
        }
    }

    #[test]
    fn no_plan_writes_while_paused((o, config) in arb_observed()) {
        let f = fixture(config);
        let keys = Keys::new(D);
        let paused = o.local.as_ref().is_some_and(|l| is_paused(&l.metadata, &keys))
            || o.remote.meta().is_some_and(|m| is_paused(m, &keys));
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
            let going = o.remote.cleaning_up();
            prop_assert!(going, "{step:?}");
        }
        if matches!(step, Step::DeleteLocal(_)) {
            let ours = o.namespace.as_ref().is_some_and(|n| n.is_ours(&f.config, "db"));
            prop_assert!(ours || f.config.on_remote_delete == OnRemoteDelete::NamespaceOrResource, "{step:?}");
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
        RemoteState::Unreadable(_) => {
            panic!("a remote write other than a metadata patch to an unreadable object")
        }
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
        Step::PatchRemote(p) | Step::ReleaseFinalizer(p)
            if let RemoteState::Unreadable(meta) = &o.remote =>
        {
            let mut meta = meta.clone();
            p.apply_to(&mut meta);
            bump(&mut meta);
            Answer::Unreadable(meta)
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
            || o.remote.meta().is_some_and(|m| is_paused(m, &keys));
        prop_assert!(!(paused && step.is_write()), "{step:?}");
        let foreign = o.remote.meta()
            .and_then(|m| claimed_by(m, &keys)).is_some_and(|c| c != "t");
        prop_assert!(!(foreign && step.is_write()), "{step:?} on an object another controller claimed");
        let going = o.remote.cleaning_up();
        if matches!(step, Step::DeleteNamespace { .. }) {
            let ns = o.namespace.unwrap();
            prop_assert!(going && ns.is_ours(&f.config, "db") && !ns.terminating && o.siblings.as_ref().is_some_and(Vec::is_empty));
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
