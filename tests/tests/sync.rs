//! Every behaviour of SPEC §1–§5, against two real control planes, with the reconciler running
//! as a user bound only to the RBAC that `sync_core::rbac` emits.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, ObjectMeta};
use kube::{Resource, ResourceExt};
use sync_core::OnRemoteDelete;
use sync_tests::unique_name;

fn pp() -> PostParams {
    PostParams::default()
}

fn prefix(t: &T) -> String {
    t.prefix()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_remote_object_gets_a_local_namespace_and_copy_and_the_remote_is_claimed() {
    let t = test_env("new").await;
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(prefix(&t)).remote_suffix("-eu")
    })
    .await;
    let mut o = db("orders-eu", "small");
    o.metadata.labels = Some([("team".to_string(), "blue".to_string())].into());
    o.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    t.create(&t.ns, &o).await;
    let (r, l) = t.converged(&t.ns, "orders-eu", &t.ns, "orders").await;
    assert_eq!(l.spec.replicas, Some(1), "the local CRD defaults replicas");
    assert_eq!(l.labels().get("team").map(String::as_str), Some("blue"));
    assert!(
        r.finalizers().contains(&"example.com/keep".to_string()),
        "other finalizers are kept: {:?}",
        r.finalizers()
    );
    let ns = Api::<Namespace>::all(t.l.clone()).get(&t.ns).await.unwrap();
    assert_eq!(
        ns.annotations()
            .get(&format!("{D}/sync-owner"))
            .map(String::as_str),
        Some("orders")
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_spec_change_reaches_the_local_copy_and_the_currency_contract_holds() {
    let t = test_env("change").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(&t.ns, &db("orders", "small")).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    let patch = serde_json::json!({"spec": {"size": "large"}});
    t.remote(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let (_, l) = t.converged(&t.ns, "orders", &t.ns, "orders").await;
    assert_eq!(l.spec.size, "large");
    // A local controller reports status for the local generation it saw.
    let g = set_local_status(&t.l, &t.ns, "orders", "Ready").await;
    let api = t.remote(&t.ns);
    eventually(
        "status current per the generation contract",
        WAIT,
        || async {
            let r = api.get("orders").await.map_err(|e| e.to_string())?;
            let s = r.status.clone().ok_or("no remote status")?;
            let current = r.metadata.generation.map(|g| g.to_string())
                == annotation(&r, &format!("{D}/sync-remote-generation"))
                && s.observed_generation.map(|g| g.to_string())
                    == annotation(&r, &format!("{D}/sync-local-generation"))
                && s.observed_generation == Some(g)
                && s.phase.as_deref() == Some("Ready");
            if current {
                Ok(())
            } else {
                Err(format!("{:?} {:?}", r.metadata.annotations, r.status))
            }
        },
    )
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_edits_are_reverted_local_labels_kept_and_remotely_removed_labels_removed() {
    let t = test_env("drift").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    let mut o = db("orders", "small");
    o.metadata.labels = Some(
        [
            ("team".to_string(), "blue".to_string()),
            ("tier".to_string(), "gold".to_string()),
        ]
        .into(),
    );
    t.create(&t.ns, &o).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    let edit = serde_json::json!({"metadata": {"labels": {"added-locally": "yes"}}, "spec": {"size": "hacked", "localNote": "kept", "local_note": "kept"}});
    t.local(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(edit))
        .await
        .unwrap();
    let drop_tier = serde_json::json!({"metadata": {"labels": {"tier": null}}});
    t.remote(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(drop_tier))
        .await
        .unwrap();
    let api = t.local(&t.ns);
    eventually("drift reverted, labels merged", WAIT, || async {
        let l = api.get("orders").await.map_err(|e| e.to_string())?;
        let labels = l.labels();
        let ok = l.spec.size == "small"
            && labels.get("added-locally").map(String::as_str) == Some("yes")
            && !labels.contains_key("tier")
            && labels.get("team").map(String::as_str) == Some("blue")
            && l.spec.local_note.as_deref() == Some("kept");
        if ok {
            Ok(())
        } else {
            Err(format!("spec {:?} labels {labels:?}", l.spec))
        }
    })
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_up_and_a_missing_local_status_leaves_the_remote_status_alone() {
    let t = test_env("status").await;
    t.create(&t.ns, &db("orders", "small")).await;
    let remote_status = serde_json::json!({"status": {"phase": "SetByManagementPlane"}});
    t.remote(&t.ns)
        .patch_status(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(remote_status),
        )
        .await
        .unwrap();
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    let (r, _) = t.converged(&t.ns, "orders", &t.ns, "orders").await;
    assert_eq!(
        r.status.and_then(|s| s.phase).as_deref(),
        Some("SetByManagementPlane")
    );
    set_local_status(&t.l, &t.ns, "orders", "Ready").await;
    let api = t.remote(&t.ns);
    eventually("remote status equals local status", WAIT, || async {
        let r = api.get("orders").await.map_err(|e| e.to_string())?;
        let phase = r.status.as_ref().and_then(|s| s.phase.clone());
        if phase.as_deref() == Some("Ready") {
            Ok(())
        } else {
            Err(format!("{:?}", r.status))
        }
    })
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_without_the_suffix_or_outside_the_prefix_are_untouched_on_both_clusters() {
    let t = test_env("foreign").await;
    let outside = format!("x{}", t.name);
    create_namespace(&t.r, &outside).await;
    t.create(&t.ns, &db("plain", "small")).await;
    t.create(&outside, &db("orders-eu", "small")).await;
    let mark = pair().remote.audit_mark().unwrap();
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(prefix(&t)).remote_suffix("-eu")
    })
    .await;
    t.create(&t.ns, &db("canary-eu", "small")).await;
    t.converged(&t.ns, "canary-eu", &t.ns, "canary").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (ns, name) in [(&t.ns, "plain"), (&outside, "orders-eu")] {
        let r = t.remote(ns).get(name).await.unwrap();
        assert!(r.finalizers().is_empty(), "{ns}/{name} was claimed");
        assert!(
            r.annotations().is_empty(),
            "{ns}/{name} was annotated: {:?}",
            r.annotations()
        );
    }
    assert!(t.local(&t.ns).get_opt("plain").await.unwrap().is_none());
    assert!(
        Api::<Namespace>::all(t.l.clone())
            .get_opt(&outside)
            .await
            .unwrap()
            .is_none()
    );
    let events = pair().remote.audit_events_since(&mark).unwrap();
    let foreign: Vec<_> = writes_by(&events, &ctl.user)
        .into_iter()
        .filter(|e| e.name == "plain" || e.namespace == outside)
        .collect();
    assert!(
        foreign.is_empty(),
        "writes to foreign objects:{}",
        describe(&foreign)
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_with_different_suffixes_each_sync_only_their_own() {
    let t = test_env("shard").await;
    let eu = start::<Database>(pair(), &format!("{}-eu", t.name), |c| {
        c.namespace_prefix(prefix(&t))
            .remote_suffix("-eu")
            .local_namespace_suffix("-eu")
    })
    .await;
    let us = start::<Database>(pair(), &format!("{}-us", t.name), |c| {
        c.namespace_prefix(prefix(&t))
            .remote_suffix("-us")
            .local_namespace_suffix("-us")
    })
    .await;
    t.create(&t.ns, &db("orders-eu", "eu-size")).await;
    t.create(&t.ns, &db("orders-us", "us-size")).await;
    let (eu_ns, us_ns) = (format!("{}-eu", t.ns), format!("{}-us", t.ns));
    let (_, l_eu) = t.converged(&t.ns, "orders-eu", &eu_ns, "orders").await;
    let (_, l_us) = t.converged(&t.ns, "orders-us", &us_ns, "orders").await;
    assert_eq!(
        (l_eu.spec.size.as_str(), l_us.spec.size.as_str()),
        ("eu-size", "us-size")
    );
    let names = |api: Api<Database>| async move {
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| o.name_any())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(t.local(&eu_ns)).await, vec!["orders"]);
    assert_eq!(names(t.local(&us_ns)).await, vec!["orders"]);
    eu.stop().await;
    us.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_delete_deletes_the_owned_namespace_and_releases_the_remote_object() {
    let t = test_env("delete").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(&t.ns, &db("orders", "small")).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    t.remote(&t.ns)
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    t.gone(&Api::<Namespace>::all(t.l.clone()), &t.ns).await;
    t.gone(&t.remote(&t.ns), "orders").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_delete_keeps_namespace_shared_with_live_sibling() {
    let t = test_env("sibling").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(&t.ns, &db("orders", "small")).await;
    t.create(&t.ns, &db("billing", "small")).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    t.converged(&t.ns, "billing", &t.ns, "billing").await;
    t.remote(&t.ns)
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    t.gone(&t.remote(&t.ns), "orders").await;
    let ns = Api::<Namespace>::all(t.l.clone()).get(&t.ns).await.unwrap();
    assert!(
        ns.metadata.deletion_timestamp.is_none(),
        "the shared namespace is being deleted"
    );
    t.converged(&t.ns, "billing", &t.ns, "billing").await;
    ctl.stop().await;
}

async fn delete_in_a_namespace_the_controller_did_not_create(
    policy: OnRemoteDelete,
) -> (T, Option<Database>, bool) {
    let t = test_env("policy").await;
    create_namespace(&t.l, &t.ns).await;
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(prefix(&t)).on_remote_delete(policy)
    })
    .await;
    t.create(&t.ns, &db("orders", "small")).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    let ns = Api::<Namespace>::all(t.l.clone()).get(&t.ns).await.unwrap();
    assert!(
        !ns.annotations().contains_key(&format!("{D}/sync-owner")),
        "an existing namespace was adopted"
    );
    t.remote(&t.ns)
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    t.gone(&t.remote(&t.ns), "orders").await;
    if policy == OnRemoteDelete::NamespaceOrResource {
        t.gone(&t.local(&t.ns), "orders").await;
    }
    let local = t.local(&t.ns).get_opt("orders").await.unwrap();
    let ns_alive = Api::<Namespace>::all(t.l.clone())
        .get(&t.ns)
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none();
    ctl.stop().await;
    (t, local, ns_alive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_delete_under_the_namespace_policy_deletes_nothing_in_a_foreign_namespace() {
    let (_, local, ns_alive) =
        delete_in_a_namespace_the_controller_did_not_create(OnRemoteDelete::Namespace).await;
    assert!(local.is_some() && ns_alive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_delete_under_the_resource_policy_deletes_only_the_local_object() {
    let (_, local, ns_alive) =
        delete_in_a_namespace_the_controller_did_not_create(OnRemoteDelete::NamespaceOrResource)
            .await;
    assert!(local.is_none() && ns_alive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_delete_under_the_orphan_policy_deletes_nothing_even_in_an_owned_namespace() {
    let t = test_env("orphan").await;
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(prefix(&t))
            .on_remote_delete(OnRemoteDelete::Orphan)
    })
    .await;
    t.create(&t.ns, &db("orders", "small")).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    t.remote(&t.ns)
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    t.gone(&t.remote(&t.ns), "orders").await;
    assert!(t.local(&t.ns).get_opt("orders").await.unwrap().is_some());
    let ns = Api::<Namespace>::all(t.l.clone()).get(&t.ns).await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none());
    ctl.stop().await;
}

fn paused() -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {format!("{D}/paused"): "true"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_object_gets_no_writes_and_its_deletion_waits_until_unpaused() {
    let t = test_env("pause").await;
    let mut held = db("held", "small");
    held.metadata.annotations = Some([(format!("{D}/paused"), "true".to_string())].into());
    t.create(&t.ns, &held).await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(&t.ns, &db("orders", "small")).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    // Paused locally: a remote change and then a remote deletion wait.
    t.local(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(paused()))
        .await
        .unwrap();
    let since = marks();
    let change = serde_json::json!({"spec": {"size": "large"}});
    t.remote(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    t.remote(&t.ns)
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = writes_on_both_since(&since, &ctl.user);
    assert!(
        writes.is_empty(),
        "writes while paused:{}",
        describe(&writes.iter().collect::<Vec<_>>())
    );
    assert!(
        t.local(&t.ns).get_opt("held").await.unwrap().is_none(),
        "a remotely paused object was synced"
    );
    assert_eq!(
        t.local(&t.ns).get("orders").await.unwrap().spec.size,
        "small"
    );
    assert!(
        t.remote(&t.ns).get_opt("orders").await.unwrap().is_some(),
        "deletion did not wait"
    );
    // Unpaused: the clean-up happens.
    let unpause = serde_json::json!({"metadata": {"annotations": {format!("{D}/paused"): null}}});
    t.local(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(unpause))
        .await
        .unwrap();
    t.gone(&t.remote(&t.ns), "orders").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_object_deleted_by_someone_is_recreated() {
    let t = test_env("heal").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(&t.ns, &db("orders", "small")).await;
    let (_, first) = t.converged(&t.ns, "orders", &t.ns, "orders").await;
    t.local(&t.ns)
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    let api = t.local(&t.ns);
    let uid = first.uid();
    eventually("a new local copy", WAIT, || async {
        match api.get_opt("orders").await.map_err(|e| e.to_string())? {
            Some(o) if o.uid() != uid => Ok(()),
            o => Err(format!("{:?}", o.map(|o| o.uid()))),
        }
    })
    .await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    ctl.stop().await;
}

fn secret(name: &str, ns: &str, value: &str, owner: Option<&Database>) -> Secret {
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
            "password".to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn password(s: &Secret) -> String {
    String::from_utf8(s.data.as_ref().unwrap()["password"].0.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_go_up_only_when_listed_and_controlled_and_a_missing_remote_secret_is_reported() {
    let t = test_env("secrets").await;
    let (a, b, c) = (
        t.ns.clone(),
        format!("{}-b", t.name),
        format!("{}-c", t.name),
    );
    create_namespace(&t.r, &b).await;
    create_namespace(&t.r, &c).await;
    let rs = |ns: &str| Api::<Secret>::namespaced(t.r.clone(), ns);
    let ls = |ns: &str| Api::<Secret>::namespaced(t.l.clone(), ns);
    rs(&a)
        .create(&pp(), &secret("creds-eu", &a, "old", None))
        .await
        .unwrap();
    rs(&a)
        .create(&pp(), &secret("other-eu", &a, "old", None))
        .await
        .unwrap();
    rs(&b)
        .create(&pp(), &secret("creds-eu", &b, "old", None))
        .await
        .unwrap();
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(prefix(&t))
            .remote_suffix("-eu")
            .local_namespace_suffix("-l")
            .secrets(["creds"])
    })
    .await;
    for ns in [&a, &b, &c] {
        t.create(ns, &db("orders-eu", "small")).await;
    }
    let mut locals = Vec::new();
    for ns in [&a, &b, &c] {
        locals.push(
            t.converged(ns, "orders-eu", &format!("{ns}-l"), "orders")
                .await
                .1,
        );
    }
    ls(&format!("{a}-l"))
        .create(
            &pp(),
            &secret("creds", &format!("{a}-l"), "new", Some(&locals[0])),
        )
        .await
        .unwrap();
    ls(&format!("{a}-l"))
        .create(
            &pp(),
            &secret("other", &format!("{a}-l"), "new", Some(&locals[0])),
        )
        .await
        .unwrap();
    ls(&format!("{b}-l"))
        .create(&pp(), &secret("creds", &format!("{b}-l"), "new", None))
        .await
        .unwrap();
    ls(&format!("{c}-l"))
        .create(
            &pp(),
            &secret("creds", &format!("{c}-l"), "new", Some(&locals[2])),
        )
        .await
        .unwrap();

    let remote_a = t.remote(&a).get("orders-eu").await.unwrap();
    let api = rs(&a);
    let sent = eventually("controlled, listed secret sent up", WAIT, || async {
        let s = api.get("creds-eu").await.map_err(|e| e.to_string())?;
        if password(&s) == "new" {
            Ok(s)
        } else {
            Err(password(&s))
        }
    })
    .await;
    let owner = &sent.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (remote_a.uid().unwrap().as_str(), Some(true))
    );
    let rc = t.r.clone();
    eventually(
        "a Warning event for the missing remote secret",
        WAIT,
        || async {
            let ev = events_for(&rc, &c, "orders-eu", "RemoteSecretMissing").await;
            if ev.is_empty() {
                Err("no event".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    assert_eq!(
        password(&rs(&a).get("other-eu").await.unwrap()),
        "old",
        "an unlisted secret was sent"
    );
    assert_eq!(
        password(&rs(&b).get("creds-eu").await.unwrap()),
        "old",
        "an uncontrolled secret was sent"
    );
    // Once the remote secret exists, the retries succeed.
    rs(&c)
        .create(&pp(), &secret("creds-eu", &c, "old", None))
        .await
        .unwrap();
    let api = rs(&c);
    eventually("the retried secret", WAIT, || async {
        let s = api.get("creds-eu").await.map_err(|e| e.to_string())?;
        if password(&s) == "new" {
            Ok(())
        } else {
            Err(password(&s))
        }
    })
    .await;
    // A change to the local secret arrives, with a local namespace suffix in play.
    let change = serde_json::json!({"stringData": {"password": "newer"}});
    ls(&format!("{a}-l"))
        .patch("creds", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    let api = rs(&a);
    eventually("the changed secret", WAIT, || async {
        let s = api.get("creds-eu").await.map_err(|e| e.to_string())?;
        if password(&s) == "newer" {
            Ok(())
        } else {
            Err(password(&s))
        }
    })
    .await;
    ctl.stop().await;
}

/// Converges `n` objects with local status, then returns the running controller.
async fn converge_with_status(t: &T, n: usize, config_user: &str) -> Running {
    let ctl = start::<Database>(pair(), config_user, |c| c.namespace_prefix(prefix(t))).await;
    for i in 0..n {
        t.create(&t.ns, &db(&format!("db{i}"), "small")).await;
    }
    for i in 0..n {
        let name = format!("db{i}");
        t.converged(&t.ns, &name, &t.ns, &name).await;
        set_local_status(&t.l, &t.ns, &name, "Ready").await;
    }
    for i in 0..n {
        let api = t.remote(&t.ns);
        let name = format!("db{i}");
        eventually("status up", WAIT, || async {
            let r = api.get(&name).await.map_err(|e| e.to_string())?;
            if r.status.is_some() {
                Ok(())
            } else {
                Err("no status".into())
            }
        })
        .await;
    }
    ctl
}

async fn writes_during(user: &str, idle: Duration) -> Vec<sync_tests::AuditEvent> {
    let since = marks();
    tokio::time::sleep(idle).await;
    writes_on_both_since(&since, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_convergence_the_controller_writes_nothing_while_idle() {
    let t = test_env("idle").await;
    let ctl = converge_with_status(&t, 5, &unique_name("idle")).await;
    let writes = writes_during(&ctl.user, Duration::from_secs(10)).await;
    assert!(
        writes.is_empty(),
        "writes while idle:{}",
        describe(&writes.iter().collect::<Vec<_>>())
    );
    // Still alive: a change is synced.
    let change = serde_json::json!({"spec": {"size": "large"}});
    t.remote(&t.ns)
        .patch("db0", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    t.converged(&t.ns, "db0", &t.ns, "db0").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_writes_nothing_for_objects_already_in_sync() {
    let t = test_env("restart").await;
    let user = unique_name("restart");
    converge_with_status(&t, 5, &user).await.stop().await;
    let since = marks();
    let ctl = start::<Database>(pair(), &user, |c| c.namespace_prefix(prefix(&t))).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let w = writes_on_both_since(&since, &user);
    assert!(
        w.is_empty(),
        "writes after restart:{}",
        describe(&w.iter().collect::<Vec<_>>())
    );
    let change = serde_json::json!({"spec": {"size": "large"}});
    t.remote(&t.ns)
        .patch("db1", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    t.converged(&t.ns, "db1", &t.ns, "db1").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_the_local_api_rejects_becomes_a_warning_event_and_others_keep_syncing() {
    let t = test_env("reject").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(
        &t.ns,
        &db(
            "toolong",
            "this-size-is-far-longer-than-the-local-schema-allows",
        ),
    )
    .await;
    t.create(&t.ns, &db("fine", "small")).await;
    t.converged(&t.ns, "fine", &t.ns, "fine").await;
    let r = t.r.clone();
    let ns = t.ns.clone();
    let ev = eventually("LocalWriteRejected event", WAIT, || async {
        let ev = events_for(&r, &ns, "toolong", "LocalWriteRejected").await;
        ev.into_iter().next().ok_or_else(|| "no event".to_string())
    })
    .await;
    let note = ev.note.unwrap_or_default();
    assert!(
        note.contains("Invalid") && note.contains("spec.size"),
        "event note: {note}"
    );
    assert!(t.local(&t.ns).get_opt("toolong").await.unwrap().is_none());
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_spec_that_does_not_deserialise_becomes_a_warning_event_and_touches_nothing() {
    let t = test_env("badspec").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    let ar = ApiResource::erase::<Database>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(t.r.clone(), &t.ns, &ar);
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "acme.test/v1", "kind": "Database",
        "metadata": {"name": "numeric"}, "spec": {"size": 5}
    }))
    .unwrap();
    api.create(&pp(), &bad).await.unwrap();
    t.create(&t.ns, &db("fine", "small")).await;
    t.converged(&t.ns, "fine", &t.ns, "fine").await;
    let (r, ns) = (t.r.clone(), t.ns.clone());
    eventually("InvalidSpec event", WAIT, || async {
        let ev = events_for(&r, &ns, "numeric", "InvalidSpec").await;
        if ev.is_empty() {
            Err("no event".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    assert!(t.local(&t.ns).get_opt("numeric").await.unwrap().is_none());
    let remote = api.get("numeric").await.unwrap();
    assert!(
        remote.metadata.finalizers.is_none(),
        "an unreadable object was claimed"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_remote_deletion_beyond_the_deletion_budget_stops_and_says_why() {
    let t = test_env("budget").await;
    let ctl = start::<Database>(pair(), &t.name, |c| {
        c.namespace_prefix(prefix(&t))
            .deletion_budget(2, Duration::from_secs(600))
    })
    .await;
    let namespaces: Vec<String> = (0..5).map(|i| format!("{}-n{i}", t.name)).collect();
    for ns in &namespaces {
        create_namespace(&t.r, ns).await;
        t.create(ns, &db("orders", "small")).await;
    }
    for ns in &namespaces {
        t.converged(ns, "orders", ns, "orders").await;
    }
    for ns in &namespaces {
        t.remote(ns)
            .delete("orders", &DeleteParams::default())
            .await
            .unwrap();
    }
    let (r, l, nss) = (t.r.clone(), t.l.clone(), namespaces.clone());
    eventually(
        "two namespaces deleted, a DeletionBudgetExceeded event for the rest",
        WAIT,
        || async {
            let mut deleted = 0;
            let mut events = 0;
            for ns in &nss {
                let n = Api::<Namespace>::all(l.clone())
                    .get_opt(ns)
                    .await
                    .map_err(|e| e.to_string())?;
                if n.is_none_or(|n| n.metadata.deletion_timestamp.is_some()) {
                    deleted += 1;
                }
                events += events_for(&r, ns, "orders", "DeletionBudgetExceeded")
                    .await
                    .len();
            }
            if deleted == 2 && events >= 1 {
                Ok(())
            } else {
                Err(format!("{deleted} deleted, {events} events"))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut held = 0;
    for ns in &namespaces {
        let n = Api::<Namespace>::all(t.l.clone())
            .get_opt(ns)
            .await
            .unwrap();
        if n.is_some_and(|n| n.metadata.deletion_timestamp.is_none()) {
            held += 1;
            assert!(
                t.remote(ns).get_opt("orders").await.unwrap().is_some(),
                "released before its clean-up"
            );
        }
    }
    assert_eq!(held, 3);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_local_object_is_waited_for_then_recreated() {
    let t = test_env("term").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(&t.ns, &db("orders", "small")).await;
    let (_, first) = t.converged(&t.ns, "orders", &t.ns, "orders").await;
    let hold = serde_json::json!({"metadata": {"finalizers": ["example.com/hold"]}});
    t.local(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(hold))
        .await
        .unwrap();
    t.local(&t.ns)
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = t.local(&t.ns).get("orders").await.unwrap();
    assert_eq!(
        held.uid(),
        first.uid(),
        "the terminating object was replaced"
    );
    assert!(held.metadata.deletion_timestamp.is_some());
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    t.local(&t.ns)
        .patch("orders", &PatchParams::default(), &Patch::Merge(release))
        .await
        .unwrap();
    let api = t.local(&t.ns);
    eventually("a new local copy", WAIT, || async {
        match api.get_opt("orders").await.map_err(|e| e.to_string())? {
            Some(o) if o.uid() != first.uid() && o.metadata.deletion_timestamp.is_none() => Ok(()),
            o => Err(format!(
                "{:?}",
                o.map(|o| (o.uid(), o.metadata.deletion_timestamp))
            )),
        }
    })
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_object_that_vanished_while_the_controller_was_down_is_cleaned_up_after_restart() {
    let t = test_env("vanish").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.create(&t.ns, &db("orders", "small")).await;
    t.create(&t.ns, &db("billing", "small")).await;
    t.converged(&t.ns, "orders", &t.ns, "orders").await;
    t.converged(&t.ns, "billing", &t.ns, "billing").await;
    ctl.stop().await;
    // Someone strips the finalizers and deletes both while no controller runs: no watch will
    // ever report these deletions to the next controller.
    for name in ["orders", "billing"] {
        let strip = serde_json::json!({"metadata": {"finalizers": null}});
        t.remote(&t.ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(strip))
            .await
            .unwrap();
        t.remote(&t.ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        t.gone(&t.remote(&t.ns), name).await;
    }
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(prefix(&t))).await;
    t.gone(&Api::<Namespace>::all(t.l.clone()), &t.ns).await;
    ctl.stop().await;
}
