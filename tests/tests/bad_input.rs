//! Bad input (SPEC §1, §4): each case gets a clear Warning event on the remote object, touches
//! nothing else, and loses nothing. The controller runs as a user bound only to the RBAC that
//! `sync_core::rbac` emits. A remote spec that does not deserialise is covered in `sync.rs`
//! (`a_remote_spec_that_does_not_deserialise_becomes_a_warning_event_and_touches_nothing`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource, ResourceExt};
use sync_core::{Local, Remote, RunError, Syncable};
use sync_tests::unique_name;

impl T {
    /// Waits for the local copy of `rns/rname` at `lns/lname` with the remote spec and the
    /// generations recorded.
    async fn synced(&self, rns: &str, rname: &str, lns: &str, lname: &str) -> (Database, Database) {
        let (ra, la) = (self.remote(rns), self.local(lns));
        eventually(&format!("{rns}/{rname} synced"), WAIT, || async {
            let r = ra.get(rname).await.map_err(|e| e.to_string())?;
            let l = la
                .get_opt(lname)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no local copy")?;
            let ok = annotation(&r, &format!("{D}/sync-remote-generation"))
                == r.metadata.generation.map(|g| g.to_string())
                && annotation(&r, &format!("{D}/sync-local-generation"))
                    == l.metadata.generation.map(|g| g.to_string())
                && l.spec.size == r.spec.size;
            if ok {
                Ok((r, l))
            } else {
                Err(format!("{:?}", r.metadata.annotations))
            }
        })
        .await
    }
    /// Waits for a Warning event with `reason` on the remote object `ns/name`.
    async fn event(&self, ns: &str, name: &str, reason: &str) -> KubeEvent {
        eventually(
            &format!("a {reason} event on {ns}/{name}"),
            WAIT,
            || async {
                let ev = events_for(&self.r, ns, name, reason).await;
                ev.into_iter().next().ok_or_else(|| "no event".to_string())
            },
        )
        .await
    }
    /// The remote object is untouched: not claimed, no controller keys, and no local copy.
    async fn untouched(&self, ns: &str, name: &str, local_ns: &str, local_name: &str) {
        let r = self.remote(ns).get(name).await.unwrap();
        assert!(r.finalizers().is_empty(), "{ns}/{name} was claimed");
        assert!(
            !r.annotations().keys().any(|k| k.starts_with(D)),
            "{ns}/{name} was annotated: {:?}",
            r.annotations()
        );
        if !local_name.is_empty() && !local_ns.is_empty() && local_ns.len() <= 63 {
            assert!(
                self.local(local_ns)
                    .get_opt(local_name)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }
}

fn note(e: &KubeEvent) -> String {
    e.note.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_names_that_map_to_invalid_local_names_or_equal_the_suffix_are_reported_and_left_alone()
 {
    let t = test_env("names").await;
    // A suffix that is itself a valid name, so a remote object can be named exactly that.
    let long_ns = format!("{}{}", t.prefix(), "n".repeat(63 - t.prefix().len()));
    create_namespace(&t.r, &long_ns).await;
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(t.prefix())
            .remote_suffix("eu")
            .local_namespace_suffix("-l")
    })
    .await;
    t.create(&t.ns, &db("eu", "small")).await; // equal to the suffix: empty local name
    t.create(&t.ns, &db("orders-eu", "small")).await; // "orders-": ends with '-'
    t.create(&long_ns, &db("fineeu", "small")).await; // 63 + "-l": too long a namespace
    t.create(&t.ns, &db("fineeu", "small")).await;
    let lns = format!("{}-l", t.ns);
    t.synced(&t.ns, "fineeu", &lns, "fine").await;

    let e = t.event(&t.ns, "eu", "InvalidName").await;
    assert!(note(&e).contains("local name \"\""), "{}", note(&e));
    let e = t.event(&t.ns, "orders-eu", "InvalidName").await;
    assert!(note(&e).contains("\"orders-\""), "{}", note(&e));
    let e = t.event(&long_ns, "fineeu", "InvalidName").await;
    assert!(note(&e).contains("namespace"), "{}", note(&e));
    t.untouched(&t.ns, "eu", &lns, "").await;
    t.untouched(&t.ns, "orders-eu", &lns, "orders-").await;
    t.untouched(&long_ns, "fineeu", &format!("{long_ns}-l"), "fine")
        .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_generation_and_bookkeeping_annotations_are_rewritten_once_without_a_loop() {
    let t = test_env("malformed").await;
    let mut o = db("orders", "small");
    o.metadata.annotations = Some(
        [
            (format!("{D}/sync-remote-generation"), "three".to_string()),
            (
                format!("{D}/sync-local-generation"),
                "99999999999999999999".to_string(),
            ),
            (format!("{D}/sync-secret-versions"), "{not json".to_string()),
        ]
        .into(),
    );
    t.create(&t.ns, &o).await;
    let user = unique_name("malformed");
    let ctl = start::<Database>(pair(), &user, |c| c.namespace_prefix(t.prefix())).await;
    t.synced(&t.ns, "orders", &t.ns, "orders").await;
    // Someone writes junk again, on both sides, after the controller fixed it.
    let junk = serde_json::json!({"metadata": {"annotations": {
        format!("{D}/sync-remote-generation"): "-1",
        format!("{D}/sync-local-generation"): "",
    }}});
    t.remote(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(junk))
        .await
        .unwrap();
    let junk = serde_json::json!({"metadata": {"annotations": {format!("{D}/sync-managed-keys"): "[oops"}}});
    t.local(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(junk))
        .await
        .unwrap();
    let (r, _) = t.synced(&t.ns, "orders", &t.ns, "orders").await;
    assert_eq!(
        annotation(&r, &format!("{D}/sync-remote-generation")),
        Some("1".into())
    );
    // Then nothing more: no write loop on either cluster.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let since = marks();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes = writes_on_both_since(&since, &user);
    assert!(
        writes.is_empty(),
        "writes after convergence:{}",
        describe(&writes.iter().collect::<Vec<_>>())
    );
    ctl.stop().await;
}

/// Annotations whose keys and values add up to `bytes` (keys 60 characters, values 60).
fn many_annotations(bytes: usize) -> BTreeMap<String, String> {
    (0..bytes / 120)
        .map(|i| (format!("example.com/k{i:057}"), "v".repeat(60)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_annotations_that_do_not_fit_with_the_controllers_keys_are_reported_and_kept() {
    let t = test_env("huge").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(t.prefix())).await;
    // Just under the 256 KiB limit on annotations: nothing more fits on the remote object,
    // so its claim and generations cannot be written there.
    let mut full = db("full", "small");
    let limit = 256 * 1024;
    full.metadata.annotations =
        Some([("example.com/big".to_string(), "x".repeat(limit - 15 - 8))].into());
    t.create(&t.ns, &full).await;
    // Well under the limit remotely, but over it locally once the controller records which
    // keys it copied (2,000 keys of 60 characters).
    let mut many = db("many", "small");
    many.metadata.annotations = Some(many_annotations(240_000));
    t.create(&t.ns, &many).await;
    t.create(&t.ns, &db("fine", "small")).await;
    t.synced(&t.ns, "fine", &t.ns, "fine").await;

    let e = t.event(&t.ns, "many", "LocalWriteRejected").await;
    assert!(note(&e).contains("Too long"), "{}", note(&e));
    // Its claim is the first write, and the remote API refuses it: nothing is made locally.
    let full_event = t.event(&t.ns, "full", "RemoteWriteRejected").await;
    assert!(
        note(&full_event).contains("Too long"),
        "{}",
        note(&full_event)
    );
    // Nothing lost: the remote annotations are whole, and no local copy was half made.
    let r = t.remote(&t.ns).get("full").await.unwrap();
    assert_eq!(r.annotations()["example.com/big"].len(), limit - 15 - 8);
    let r = t.remote(&t.ns).get("many").await.unwrap();
    assert_eq!(
        r.annotations()
            .keys()
            .filter(|k| k.starts_with("example.com/"))
            .count(),
        2000
    );
    assert!(t.local(&t.ns).get_opt("many").await.unwrap().is_none());
    assert!(t.local(&t.ns).get_opt("full").await.unwrap().is_none());
    t.synced(&t.ns, "fine", &t.ns, "fine").await;
    ctl.stop().await;
}

/// A write the local API keeps refusing is retried with backoff (here 0.2 s doubling to 5 s),
/// and each refusal is counted on one Event (its series), not stored as a new Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_again_and_again_is_one_event_that_counts_the_repeats() {
    let t = test_env("repeat").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(t.prefix())).await;
    let mut many = db("many", "small");
    many.metadata.annotations = Some(many_annotations(240_000));
    t.create(&t.ns, &many).await;
    let e = eventually("a series of three refusals", WAIT, || async {
        let ev = events_for(&t.r, &t.ns, "many", "LocalWriteRejected").await;
        match ev.as_slice() {
            [e] if e.series.as_ref().is_some_and(|s| s.count >= 3) => Ok(e.clone()),
            _ => Err(format!(
                "{} events, counts {:?}",
                ev.len(),
                ev.iter()
                    .map(|e| e.series.as_ref().map(|s| s.count))
                    .collect::<Vec<_>>()
            )),
        }
    })
    .await;
    assert!(note(&e).contains("Too long"), "{}", note(&e));
    assert_eq!(e.reporting_controller.as_deref(), Some(t.name.as_str()));
    assert!(t.local(&t.ns).get_opt("many").await.unwrap().is_none());
    ctl.stop().await;
}

fn secret(name: &str, ns: &str, bytes: usize, owner: Option<&Database>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    controller: Some(true),
                    ..o.controller_owner_ref(&()).unwrap()
                }]
            }),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "blob".to_string(),
            ByteString(vec![b'x'; bytes]),
        )])),
        ..Secret::default()
    }
}

/// A remote admission policy that refuses secrets with a value over 64 KiB, in namespaces
/// labelled for this test: the management cluster accepts less than the regional one.
async fn limit_remote_secrets(r: &Client, label: &str) {
    let policy: serde_json::Value = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": label},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["secrets"],
            }]},
            "validations": [{
                "expression": "!has(object.data) || object.data.all(k, size(object.data[k]) <= 65536)",
                "message": "the management cluster keeps secrets of at most 64 KiB per key",
            }],
        },
    });
    let binding: serde_json::Value = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": label},
        "spec": {
            "policyName": label,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"sync-test-limit": label}}},
        },
    });
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    Api::<ValidatingAdmissionPolicy>::all(r.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(policy).unwrap(),
        )
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(r.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(binding).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_secret_larger_than_the_remote_accepts_is_reported_and_the_rest_still_syncs() {
    let t = test_env("bigsecret").await;
    limit_remote_secrets(&t.r, &t.name).await;
    let other = format!("{}-b", t.name);
    create_namespace(&t.r, &other).await;
    let label = serde_json::json!({"metadata": {"labels": {"sync-test-limit": t.name}}});
    for ns in [&t.ns, &other] {
        Api::<Namespace>::all(t.r.clone())
            .patch(ns, &PatchParams::default(), &Patch::Merge(label.clone()))
            .await
            .unwrap();
        Api::<Secret>::namespaced(t.r.clone(), ns)
            .create(&PostParams::default(), &secret("creds-eu", ns, 10, None))
            .await
            .unwrap();
    }
    let rs: Api<Secret> = Api::namespaced(t.r.clone(), &t.ns);
    // The policy takes a moment to apply: wait until the admin is refused a big secret too.
    eventually("the remote policy to refuse big secrets", WAIT, || async {
        let probe = secret("probe", &t.ns, 100_000, None);
        match rs.create(&PostParams::default(), &probe).await {
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 403 => Ok(()),
            other => {
                let _ = rs.delete("probe", &Default::default()).await;
                Err(format!("{:?}", other.map(|_| "accepted")))
            }
        }
    })
    .await;
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(t.prefix())
            .remote_suffix("-eu")
            .secrets(["creds"])
    })
    .await;
    t.create(&t.ns, &db("orders-eu", "small")).await;
    t.create(&other, &db("orders-eu", "small")).await;
    let (_, big) = t.synced(&t.ns, "orders-eu", &t.ns, "orders").await;
    let (_, small) = t.synced(&other, "orders-eu", &other, "orders").await;
    // The local cluster takes it (Kubernetes allows 1 MiB); the remote one does not.
    Api::<Secret>::namespaced(t.l.clone(), &t.ns)
        .create(
            &PostParams::default(),
            &secret("creds", &t.ns, 200_000, Some(&big)),
        )
        .await
        .unwrap();
    Api::<Secret>::namespaced(t.l.clone(), &other)
        .create(
            &PostParams::default(),
            &secret("creds", &other, 20_000, Some(&small)),
        )
        .await
        .unwrap();
    set_local_status(&t.l, &t.ns, "orders", "Ready").await;
    let e = t.event(&t.ns, "orders-eu", "SecretRejected").await;
    assert!(note(&e).contains("64 KiB"), "{}", note(&e));
    // The other object's secret goes up; the same object's status too.
    let other_rs: Api<Secret> = Api::namespaced(t.r.clone(), &other);
    eventually("the other object's secret up", WAIT, || async {
        let s = other_rs.get("creds-eu").await.map_err(|e| e.to_string())?;
        match s.data.map(|d| d["blob"].0.len()) {
            Some(20_000) => Ok(()),
            n => Err(format!("{n:?} bytes")),
        }
    })
    .await;
    let ra = t.remote(&t.ns);
    eventually("the status up despite the secret", WAIT, || async {
        let r = ra.get("orders-eu").await.map_err(|e| e.to_string())?;
        match r.status.and_then(|s| s.phase) {
            Some(p) if p == "Ready" => Ok(()),
            p => Err(format!("{p:?}")),
        }
    })
    .await;
    // Nothing lost: the remote secret keeps what it had.
    let kept = rs.get("creds-eu").await.unwrap();
    assert_eq!(kept.data.unwrap()["blob"].0.len(), 10);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_whose_suffixes_overlap_report_the_object_instead_of_fighting_over_it() {
    overlapping_controllers(false).await;
}

/// The same with claims that also record the new copy's generations
/// (`status_observed_generation`): still only one of the two makes anything locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_controllers_whose_claims_record_generations_still_make_one_copy() {
    overlapping_controllers(true).await;
}

async fn overlapping_controllers(announce: bool) {
    let t = test_env("overlap").await;
    let (eu, weu) = (format!("{}-eu", t.name), format!("{}-weu", t.name));
    let (eu_ns, weu_ns) = (format!("{}-eu", t.ns), format!("{}-weu", t.ns));
    let a = start::<Database>(pair(), &eu, |c| {
        c.namespace_prefix(t.prefix())
            .remote_suffix("-eu")
            .local_namespace_suffix("-eu")
            .status_observed_generation(announce)
    })
    .await;
    t.create(&t.ns, &db("orders-west-eu", "small")).await;
    t.synced(&t.ns, "orders-west-eu", &eu_ns, "orders-west")
        .await;
    // "-west-eu" ends with "-eu": every object of the second controller matches the first.
    let mark = pair().remote.audit_mark().unwrap();
    let b = start::<Database>(pair(), &weu, |c| {
        c.namespace_prefix(t.prefix())
            .remote_suffix("-west-eu")
            .local_namespace_suffix("-weu")
            .status_observed_generation(announce)
    })
    .await;
    let e = t
        .event(&t.ns, "orders-west-eu", "ClaimedByAnotherController")
        .await;
    assert!(
        note(&e).contains(&format!("claimed by controller \"{eu}\"")),
        "{}",
        note(&e)
    );
    // A new object that both match, while both run: one claims it, the other reports it.
    t.create(&t.ns, &db("stock-west-eu", "small")).await;
    let ra = t.remote(&t.ns);
    let winner = eventually("the new object claimed and reported", WAIT, || async {
        let r = ra.get("stock-west-eu").await.map_err(|e| e.to_string())?;
        let claim = annotation(&r, &format!("{D}/sync-controller")).ok_or("unclaimed")?;
        let reported = events_for(&t.r, &t.ns, "stock-west-eu", "ClaimedByAnotherController").await;
        if reported.is_empty() {
            Err(format!("claimed by {claim}, not reported yet"))
        } else {
            Ok(claim)
        }
    })
    .await;
    let (loser, loser_ns, winner_ns, winner_name) = if winner == eu {
        (&weu, &weu_ns, &eu_ns, "stock-west")
    } else {
        (&eu, &eu_ns, &weu_ns, "stock")
    };
    t.synced(&t.ns, "stock-west-eu", winner_ns, winner_name)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // No fight: after the claims, the loser of each object wrote nothing to it, and made no
    // local copy.
    let events = pair().remote.audit_events_since(&mark).unwrap();
    let by_b: Vec<_> = writes_by(&events, &weu)
        .into_iter()
        .filter(|e| e.name == "orders-west-eu" && e.code < 400)
        .collect();
    assert!(
        by_b.is_empty(),
        "the second controller wrote:{}",
        describe(&by_b)
    );
    let by_loser: Vec<_> = writes_by(&events, loser)
        .into_iter()
        .filter(|e| e.name == "stock-west-eu" && e.code < 400)
        .collect();
    assert!(
        by_loser.is_empty(),
        "the loser wrote:{}",
        describe(&by_loser)
    );
    let (loser_name, mine) = if winner == eu {
        ("stock", "orders")
    } else {
        ("stock-west", "orders")
    };
    for (ns, name) in [(loser_ns, loser_name), (&weu_ns, mine)] {
        assert!(
            Api::<Database>::namespaced(t.l.clone(), ns)
                .get_opt(name)
                .await
                .unwrap()
                .is_none(),
            "a local copy {ns}/{name} by a controller that did not claim its remote object"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// A panic in the operator author's code (here the kind's copy function, on one object) is a
/// failed pass for that object alone: logged, counted, retried with backoff, and synced once
/// its input is fixed; the other objects sync meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_user_code_fails_one_object_which_retries_and_syncs_once_fixed() {
    use sync_tests::fragile::{self, BOOM, Fragile, fragile};
    let pair = setup().await;
    let t = test_env("panic").await;
    fragile::install_crds(&t.r, &t.l).await;
    let user = t.name.clone();
    let config = Fragile::defaults()
        .controller_name(&user)
        .namespace_prefix(t.prefix());
    grant_controller::<Fragile>(pair, &user, &config, false).await;
    let mut registry = prometheus_client::registry::Registry::default();
    let builder = Fragile::reconciler(
        Remote(pair.remote.client_as(&user, &[]).await.unwrap()),
        Local(pair.local.client_as(&user, &[]).await.unwrap()),
    )
    .configure(|_| config)
    .metrics(sync_core::Metrics::new(&mut registry))
    .backoff(Duration::from_millis(200), Duration::from_secs(2));
    // The program is told how each pass ended, the panicking ones too.
    let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::<sync_core::Reconciled>::new()));
    let builder = builder.on_reconciled({
        let told = told.clone();
        move |r| told.lock().unwrap().push(r.clone())
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(builder.run(async move {
        let _ = stopped.await;
    }));

    let remote: Api<Fragile> = Api::namespaced(t.r.clone(), &t.ns);
    let local: Api<Fragile> = Api::namespaced(t.l.clone(), &t.ns);
    let pp = PostParams::default();
    remote.create(&pp, &fragile("bad", BOOM)).await.unwrap();
    remote.create(&pp, &fragile("good", "fine")).await.unwrap();
    let panics = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .find(|l| l.starts_with("sync_reconciles_total") && l.contains("outcome=\"panic\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    eventually("the good object synced", WAIT, || async {
        local
            .get_opt("good")
            .await
            .map_err(|e| e.to_string())?
            .map(|_| ())
            .ok_or_else(|| "no copy of good".to_string())
    })
    .await;
    // Retried with backoff: more than one panic counted, and far fewer than a hot loop makes.
    eventually("the bad object's pass to panic again", WAIT, || async {
        let n = panics();
        if n >= 2.0 {
            Ok(n)
        } else {
            Err(format!("{n} panics counted"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = panics();
    eprintln!("{n} panics counted before the input was fixed");
    assert!(
        n < 30.0,
        "{n} panics in a few seconds: retried without backoff"
    );

    // Fixed input: the object syncs.
    remote
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "value": "fixed" } })),
        )
        .await
        .unwrap();
    eventually("the fixed object synced", WAIT, || async {
        let l = local.get_opt("bad").await.map_err(|e| e.to_string())?;
        match l {
            Some(l) if l.spec.value == "fixed" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let _ = stop.send(());
    run.await.unwrap().unwrap();
    let told = told.lock().unwrap();
    let of = |name: &str, outcome: &str| {
        told.iter()
            .filter(|r| r.object.name == name && r.outcome == outcome)
            .count()
    };
    assert!(of("bad", "panic") as f64 >= n, "{told:?}");
    assert!(
        told.iter()
            .filter(|r| r.outcome == "panic")
            .all(|r| r.is_failure() && r.error.is_some())
    );
    assert!(
        of("good", "wrote") >= 1 && of("bad", "wrote") >= 1,
        "{told:?}"
    );
}

/// A remote spec that stopped fitting the kind (the CRD's schema is laxer than the Rust type)
/// does not hold up a deletion: clean-up needs only metadata, so the terminating object's copy
/// and namespace go and the object is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_remote_object_whose_spec_no_longer_parses_is_released() {
    use sync_tests::loose::{self, Loose, loose};
    let pair = setup().await;
    let t = test_env("unparsed").await;
    loose::install_crds(&t.r, &t.l).await;
    let c = start::<Loose>(pair, &t.name, |c| c.namespace_prefix(t.prefix())).await;
    let remote: Api<Loose> = Api::namespaced(t.r.clone(), &t.ns);
    let local: Api<Loose> = Api::namespaced(t.l.clone(), &t.ns);
    remote
        .create(&PostParams::default(), &loose("a", 1))
        .await
        .unwrap();
    eventually("a local copy and our finalizer", WAIT, || async {
        let r = remote.get("a").await.map_err(|e| e.to_string())?;
        let l = local.get_opt("a").await.map_err(|e| e.to_string())?;
        if l.is_some() && !r.finalizers().is_empty() {
            Ok(())
        } else {
            Err(format!(
                "finalizers {:?}, copy {}",
                r.finalizers(),
                l.is_some()
            ))
        }
    })
    .await;

    // The answers no longer parse either: a serde error means the server took the write.
    let parsed_or_taken = |r: kube::Result<()>| match r {
        Ok(()) | Err(kube::Error::SerdeError(_)) => {}
        Err(e) => panic!("{e}"),
    };
    parsed_or_taken(
        remote
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": { "size": "not a number" } })),
            )
            .await
            .map(drop),
    );
    parsed_or_taken(remote.delete("a", &Default::default()).await.map(drop));
    t.gone(&remote, "a").await;
    t.gone(&local, "a").await;
    c.stop().await;
}

/// A 404 that does not name the object ("the server could not find the requested resource":
/// here the local CRD stops serving the version the controller uses) is not "gone": the
/// remote object keeps its finalizer until its local copy is really deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_no_longer_served_is_not_taken_for_a_deleted_object() {
    use sync_tests::loose::{self, Fickle, fickle};
    let pair = setup().await;
    let t = test_env("unserved").await;
    loose::install_crds(&t.r, &t.l).await;
    let c = start::<Fickle>(pair, &t.name, |c| c.namespace_prefix(t.prefix())).await;
    let remote: Api<Fickle> = Api::namespaced(t.r.clone(), &t.ns);
    let local: Api<Fickle> = Api::namespaced(t.l.clone(), &t.ns);
    // Two objects, so the namespace stays and the copy of the deleted one is deleted alone.
    for name in ["a", "b"] {
        remote
            .create(&PostParams::default(), &fickle(name, 1))
            .await
            .unwrap();
    }
    for name in ["a", "b"] {
        eventually(&format!("a local copy of {name}"), WAIT, || async {
            let l = local.get_opt(name).await.map_err(|e| e.to_string())?;
            l.map(|_| ()).ok_or_else(|| "no copy".to_string())
        })
        .await;
    }

    loose::serve_v1::<Fickle>(&t.l, false).await;
    eventually("local v1 no longer served", WAIT, || async {
        match local.get_opt("a").await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(s.message),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    remote.delete("a", &Default::default()).await.unwrap();
    // The delete of the copy answers 404 for the resource; the object must stay held.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let r = remote.get_opt("a").await.unwrap();
    assert!(
        r.as_ref().is_some_and(|r| !r.finalizers().is_empty()),
        "released while its local copy could not be deleted: {r:?}"
    );

    loose::serve_v1::<Fickle>(&t.l, true).await;
    t.gone(&remote, "a").await;
    let left = Api::<Fickle>::namespaced(t.l.clone(), &t.ns)
        .get_opt("a")
        .await
        .unwrap();
    assert!(
        left.is_none(),
        "the local copy outlived its remote object: {left:?}"
    );
    c.stop().await;
}

/// One slow request (a slow admission webhook on one object, slower than the controller's
/// request timeout) fails that object alone: the local cluster is not marked unreachable, and
/// the other objects sync meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_on_one_object_does_not_mark_the_cluster_unreachable() {
    use sync_tests::webhook::SlowWebhook;
    let pair = setup().await;
    let t = test_env("slowhook").await;
    let user = t.name.clone();
    let config = Database::defaults()
        .controller_name(&user)
        .namespace_prefix(t.prefix());
    grant_controller::<Database>(pair, &user, &config, false).await;
    // The local namespace, so the webhook's namespace selector matches before the first write.
    create_namespace(&t.l, &t.ns).await;
    let hook = SlowWebhook::start(
        &pair.local,
        &user,
        ("acme.test", "databases"),
        &t.ns,
        "slow",
        Duration::from_secs(4),
    )
    .await;
    let mut registry = prometheus_client::registry::Registry::default();
    let builder = Database::reconciler(
        Remote(pair.remote.client_as(&user, &[]).await.unwrap()),
        Local(pair.local.client_as(&user, &[]).await.unwrap()),
    )
    .configure(|_| config)
    .metrics(sync_core::Metrics::new(&mut registry))
    .request_timeout(Duration::from_millis(1500))
    .backoff(Duration::from_millis(200), Duration::from_secs(2));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(builder.run(async move {
        let _ = stopped.await;
    }));
    let counter = |name: &str, label: &str| {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };

    t.create(&t.ns, &db("slow-a", "small")).await;
    // The slow object's passes time out and are retried; the others sync meanwhile.
    eventually("the slow object's pass to time out twice", WAIT, || async {
        match counter("sync_reconciles_total", "outcome=\"error\"") {
            n if n >= 2.0 => Ok(()),
            n => Err(format!("{n} failed passes")),
        }
    })
    .await;
    for i in 0..4 {
        let name = format!("fast-{i}");
        t.create(&t.ns, &db(&name, "small")).await;
        t.converged(&t.ns, &name, &t.ns, &name).await;
    }
    let unreachable = counter("sync_cluster_unreachable_total", "cluster=\"Local\"");
    assert_eq!(
        unreachable, 0.0,
        "one slow request marked the local cluster unreachable {unreachable} times"
    );

    // Once the webhook goes, the slow object syncs too.
    hook.unregister().await;
    t.converged(&t.ns, "slow-a", &t.ns, "slow-a").await;
    let _ = stop.send(());
    run.await.unwrap().unwrap();
}

/// A local policy requires a label on every namespace (here a ValidatingAdmissionPolicy for
/// the test's namespaces): without `namespace_labels` every namespace create is refused and
/// reported; with it the namespace is made with the label and the object syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_labels_satisfy_a_local_policy_that_requires_them() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let pair = setup().await;
    let t = test_env("nslabel").await;
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": t.name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["namespaces"],
            }]},
            "matchConditions": [{
                "name": "this-test",
                "expression": format!("object.metadata.name.startsWith('{}')", t.prefix()),
            }],
            "validations": [{
                "expression": "has(object.metadata.labels) && 'tenant' in object.metadata.labels && object.metadata.labels['tenant'] == 'acme'",
                "message": "every namespace needs the label tenant=acme",
            }],
        },
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": t.name},
        "spec": {"policyName": t.name, "validationActions": ["Deny"]},
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<ValidatingAdmissionPolicy>::all(t.l.clone())
        .create(&pp, &policy)
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(t.l.clone())
        .create(&pp, &binding)
        .await
        .unwrap();
    // The policy takes a moment to apply: wait until a namespace without the label is refused.
    let namespaces: Api<Namespace> = Api::all(t.l.clone());
    let probe = format!("{}probe", t.prefix());
    eventually(
        "the policy to refuse an unlabelled namespace",
        WAIT,
        || async {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(probe.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            match namespaces.create(&PostParams::default(), &ns).await {
                Err(kube::Error::Api(s)) if s.message.contains("tenant=acme") => Ok(()),
                other => {
                    let _ = namespaces.delete(&probe, &Default::default()).await;
                    Err(format!("{other:?}"))
                }
            }
        },
    )
    .await;

    // Without the hook: refused, and reported on the remote object.
    let plain = start::<Database>(pair, &t.name, |c| c.namespace_prefix(t.prefix())).await;
    t.create(&t.ns, &db("a", "small")).await;
    let e = t.event(&t.ns, "a", "LocalWriteRejected").await;
    assert!(note(&e).contains("tenant=acme"), "{}", note(&e));
    assert!(namespaces.get_opt(&t.ns).await.unwrap().is_none());
    plain.stop().await;

    // With it: the namespace carries the label, and the object syncs.
    let labelled = start::<Database>(pair, &t.name, |c| {
        c.namespace_prefix(t.prefix())
            .namespace_label("tenant", "acme")
    })
    .await;
    t.converged(&t.ns, "a", &t.ns, "a").await;
    let ns = namespaces.get(&t.ns).await.unwrap();
    assert_eq!(
        ns.metadata
            .labels
            .unwrap_or_default()
            .get("tenant")
            .map(String::as_str),
        Some("acme")
    );
    labelled.stop().await;
    for client in [&t.l] {
        let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .delete(&t.name, &Default::default())
            .await;
        let _ = Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .delete(&t.name, &Default::default())
            .await;
    }
}

/// The remote client passed as both (`Remote(x), Local(x)`) with no suffix: every object maps
/// onto itself. `run` returns `RunError::SameCluster` as soon as the caches are filled and
/// writes nothing; without the check the controller claims the object as the management
/// plane's and records generations on it as if it were its own local copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_client_passed_as_local_too_is_refused_promptly_and_writes_nothing() {
    let t = test_env("onecluster").await;
    let user = t.name.clone();
    let config = Database::defaults()
        .controller_name(&user)
        .namespace_prefix(t.prefix());
    // The user may do on the remote cluster what either side needs, as an operator who passed
    // one kubeconfig twice could.
    let mut rules = sync_core::rbac::remote_rules::<Database>(&config);
    rules.extend(sync_core::rbac::local_rules::<Database>(&config, false));
    grant(&t.r, &user, rules).await;
    t.create(&t.ns, &db("solo", "small")).await;
    let marks = marks();

    let x = pair().remote.client_as(&user, &[]).await.unwrap();
    let started = tokio::time::Instant::now();
    let run = Database::reconciler(Remote(x.clone()), Local(x))
        .configure(|_| config)
        .run(std::future::pending());
    let limit = Duration::from_secs(10);
    let result = tokio::time::timeout(limit, run).await;
    let took = started.elapsed();
    let wrote = || {
        let writes = writes_on_both_since(&marks, &user);
        describe(&writes.iter().collect::<Vec<_>>())
    };
    match result {
        Ok(Err(RunError::SameCluster { object })) => {
            assert_eq!(object, format!("{}/solo", t.ns));
        }
        Ok(other) => panic!("expected RunError::SameCluster, got {other:?}"),
        Err(_) => panic!(
            "run did not return within {limit:?}; meanwhile it wrote:{}",
            wrote()
        ),
    }
    println!("refused after {took:?}");

    // Any write would have reached the audit log by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = wrote();
    assert!(writes.is_empty(), "writes:{writes}");
    t.untouched(&t.ns, "solo", "", "").await;
}
