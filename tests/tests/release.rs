//! Uninstalling a region: `sync_core::release_all` takes the controller's finalizer, claim and
//! bookkeeping off the remote objects of its shard, under the controller's own RBAC, and
//! deletes nothing anywhere.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use sync_core::{Remote, SyncConfig, Syncable};

const FIN: &str = "cloud.teleport.dev/sync-local";

/// The controller's keys that a released object must not carry.
fn ours(o: &Database) -> Vec<String> {
    let mut left: Vec<String> = o
        .finalizers()
        .iter()
        .filter(|f| *f == FIN)
        .cloned()
        .collect();
    left.extend(o.annotations().keys().filter(|k| k.starts_with(D)).cloned());
    left
}

/// A remote object claimed by hand: the finalizer and the claim annotation of `claimant`.
fn claimed(name: &str, claimant: &str) -> Database {
    let mut o = db(name, "small");
    o.metadata.finalizers = Some(vec![FIN.to_owned()]);
    o.metadata.annotations = Some(
        [(format!("{D}/sync-controller"), claimant.to_owned())]
            .into_iter()
            .collect(),
    );
    o
}

async fn unhold(t: &T, ns: &str, name: &str) {
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    t.remote(ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(release))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_all_frees_the_regions_remote_objects_and_deletes_nothing() {
    let t = test_env("release").await;
    let user = t.name.clone();
    let ns_b = format!("{}-b", t.name);
    // Outside the shard: its namespace lacks the prefix `<name>-`.
    let ns_out = format!("x{}", t.name);
    create_namespace(&t.r, &ns_b).await;
    create_namespace(&t.r, &ns_out).await;
    let own = [
        (t.ns.as_str(), "db-0"),
        (t.ns.as_str(), "db-1"),
        (t.ns.as_str(), "db-2"),
        (ns_b.as_str(), "db-3"),
    ];
    // Claimed by another controller (overlapping suffixes), and one outside the shard that
    // carries this controller's very claim: neither may be touched.
    let foreign = t.create(&t.ns, &claimed("foreign", "someone-else")).await;
    let outside = t.create(&ns_out, &claimed("outside", &user)).await;

    let configure = |c: SyncConfig| c.namespace_prefix(t.prefix());
    let ctl = start::<Database>(pair(), &user, configure).await;
    for (ns, name) in own {
        t.create(ns, &db(name, "small")).await;
    }
    for (ns, name) in own {
        t.converged(ns, name, ns, name).await;
    }
    ctl.stop().await;
    // A claim under a former name, which the configuration lists as a predecessor.
    let old = format!("{user}-old");
    let rename =
        serde_json::json!({"metadata": {"annotations": {format!("{D}/sync-controller"): old}}});
    t.remote(&t.ns)
        .patch("db-2", &PatchParams::default(), &Patch::Merge(rename))
        .await
        .unwrap();

    // As the controller's own user, bound to exactly `rbac::remote_rules` by `start`.
    let config = configure(Database::defaults().controller_name(&user)).adopt_claims_from([&old]);
    let remote = pair().remote.client_as(&user, &[]).await.unwrap();
    let since = marks();
    let started = Instant::now();
    let report = sync_core::release_all::<Database>(Remote(remote.clone()), &config)
        .await
        .unwrap();
    let took = started.elapsed();

    let mut held = Vec::new();
    for (ns, name) in own {
        let r = t.remote(ns).get(name).await.unwrap();
        if !ours(&r).is_empty() {
            held.push(format!("{ns}/{name}: {:?}", ours(&r)));
        }
    }
    assert!(
        held.is_empty(),
        "still carrying our keys after release: {held:?}"
    );
    let foreign_now = t.remote(&t.ns).get("foreign").await.unwrap();
    assert_eq!(
        foreign_now.resource_version(),
        foreign.resource_version(),
        "the foreign object is untouched"
    );
    let outside_now = t.remote(&ns_out).get("outside").await.unwrap();
    assert_eq!(
        outside_now.resource_version(),
        outside.resource_version(),
        "the object outside the shard is untouched"
    );
    println!("release: {report} in {took:?}");
    assert_eq!(
        (report.released, report.foreign, report.already_clean),
        (4, 1, 0),
        "{report:?}"
    );
    assert!(report.is_complete() && report.gone == 0, "{report:?}");

    // Nothing deleted: the local copies and their namespaces are all there.
    let namespaces = Api::<Namespace>::all(t.l.clone());
    for (ns, name) in own {
        assert!(
            namespaces.get_opt(ns).await.unwrap().is_some(),
            "local namespace {ns}"
        );
        let l = t.local(ns).get(name).await.unwrap();
        assert!(
            l.metadata.deletion_timestamp.is_none(),
            "{ns}/{name} terminating"
        );
    }
    // The audit logs: exactly one patch per released object, and no delete by anyone in the
    // test's namespaces.
    let writes = pair()
        .remote
        .wait_for_audit(&since.0, WAIT, |e| writes_by(e, &user).len() >= 4)
        .await
        .unwrap();
    let by_user = writes_by(&writes, &user);
    assert!(
        by_user.len() == 4
            && by_user
                .iter()
                .all(|e| e.verb == "patch" && e.resource == "databases" && e.code == 200),
        "writes by the controller's user:{}",
        describe(&by_user)
    );
    let mut all = writes.clone();
    all.extend(pair().local.audit_events_since(&since.1).unwrap());
    let deletes: Vec<_> = all
        .iter()
        .filter(|e| e.verb.starts_with("delete"))
        .filter(|e| e.namespace.contains(&t.name) || e.name.contains(&t.name))
        .collect();
    assert!(deletes.is_empty(), "deletes:{}", describe(&deletes));

    // Again: nothing left to do, nothing written.
    let since = marks();
    let again = sync_core::release_all::<Database>(Remote(remote), &config)
        .await
        .unwrap();
    assert_eq!(
        (again.released, again.foreign, again.already_clean),
        (0, 1, 4),
        "{again:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rewrites = writes_on_both_since(&since, &user);
    assert!(
        rewrites.is_empty(),
        "second run wrote:{}",
        describe(&rewrites.iter().collect::<Vec<_>>())
    );

    // A released object is deleted at once: no finalizer holds it, and no controller runs.
    let started = Instant::now();
    t.remote(&t.ns)
        .delete("db-0", &DeleteParams::default())
        .await
        .unwrap();
    eventually("db-0 gone", Duration::from_secs(5), || async {
        match t
            .remote(&t.ns)
            .get_opt("db-0")
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(o) => Err(format!(
                "still there: {:?} {:?}",
                o.metadata.deletion_timestamp,
                o.finalizers()
            )),
        }
    })
    .await;
    println!(
        "release: a released object deleted in {:?}",
        started.elapsed()
    );
    assert!(
        t.local(&t.ns).get_opt("db-0").await.unwrap().is_some(),
        "its local copy stays"
    );

    unhold(&t, &t.ns, "foreign").await;
    unhold(&t, &ns_out, "outside").await;
}
