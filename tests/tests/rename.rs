//! Renaming a controller: the new name adopts the claims of the former one when it is listed
//! as a predecessor, and leaves them alone (as another controller's) when it is not.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

/// How many objects the adoption test syncs under the former name (`RENAME_OBJECTS` to measure
/// with more).
fn object_count() -> usize {
    std::env::var("RENAME_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

fn claim(o: &Database) -> Option<String> {
    annotation(o, &format!("{D}/sync-controller"))
}

fn holds_finalizer(o: &Database) -> bool {
    o.finalizers().contains(&format!("{D}/sync-local"))
}

/// Syncs `names` in `ns` under the controller `t.name-old`, then stops it.
async fn synced_by_old(t: &T, objects: &[(&str, &str)]) -> String {
    let old = format!("{}-old", t.name);
    let ctl = start::<Database>(pair(), &old, |c| c.namespace_prefix(t.prefix())).await;
    for (ns, name) in objects {
        t.create(ns, &db(name, "small")).await;
    }
    for (ns, name) in objects {
        let (r, _) = t.converged(ns, name, ns, name).await;
        assert_eq!(claim(&r).as_deref(), Some(old.as_str()));
    }
    ctl.stop().await;
    old
}

/// Deletes a remote object that holds our finalizer: it stays, terminating.
async fn make_terminating(t: &T, ns: &str, name: &str) {
    let api = t.remote(ns);
    api.delete(name, &DeleteParams::default()).await.unwrap();
    let r = api.get(name).await.unwrap();
    assert!(
        r.metadata.deletion_timestamp.is_some() && holds_finalizer(&r),
        "terminating and held: {:?}",
        r.metadata
    );
}

async fn resize(t: &T, ns: &str, name: &str, size: &str) {
    let patch = serde_json::json!({"spec": {"size": size}});
    t.remote(ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_controller_adopts_its_predecessors_claims_and_releases_the_terminating_ones() {
    let t = test_env("rename").await;
    let ns_b = format!("{}-b", t.name);
    create_namespace(&t.r, &ns_b).await;
    let n = object_count();
    let names: Vec<String> = (0..n).map(|i| format!("db-{i}")).collect();
    let mut objects: Vec<(&str, &str)> =
        names.iter().map(|n| (t.ns.as_str(), n.as_str())).collect();
    // Alone in a namespace the former controller created: its release deletes that namespace.
    objects.push((ns_b.as_str(), "going"));
    let old = synced_by_old(&t, &objects).await;

    make_terminating(&t, &ns_b, "going").await;
    resize(&t, &t.ns, "db-0", "large").await;

    let new = format!("{}-new", t.name);
    let started = Instant::now();
    let ctl = start::<Database>(pair(), &new, |c| {
        c.namespace_prefix(t.prefix())
            .adopt_claims_from([old.as_str()])
    })
    .await;

    let api = t.remote(&t.ns);
    eventually("every claim rewritten to the new name", WAIT, || async {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let not_yet: Vec<_> = list
            .items
            .iter()
            .filter(|o| claim(o).as_deref() != Some(new.as_str()))
            .map(|o| format!("{}={:?}", o.name_any(), claim(o)))
            .collect();
        if not_yet.is_empty() && list.items.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{} of {}: {not_yet:?}",
                not_yet.len(),
                list.items.len()
            ))
        }
    })
    .await;
    let adopted = started.elapsed();

    // The terminating one is released: its namespace (created by the former name) goes, then
    // the finalizer, and the remote object with it.
    t.gone(&t.remote(&ns_b), "going").await;
    let released = started.elapsed();
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(t.l.clone());
    eventually(
        "the former controller's namespace deleted",
        WAIT,
        || async {
            match namespaces.get_opt(&ns_b).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(ns) if ns.metadata.deletion_timestamp.is_some() => Ok(()),
                Some(ns) => Err(format!("still there: {:?}", ns.metadata.annotations)),
            }
        },
    )
    .await;

    // Updates sync again, under the new name.
    let (r, l) = t.converged(&t.ns, "db-0", &t.ns, "db-0").await;
    assert_eq!(l.spec.size, "large");
    assert!(holds_finalizer(&r));
    resize(&t, &t.ns, "db-1", "medium").await;
    let (_, l) = t.converged(&t.ns, "db-1", &t.ns, "db-1").await;
    assert_eq!(l.spec.size, "medium");
    println!(
        "rename: {n} objects adopted in {adopted:?}; the terminating one released in {released:?} \
         (both from the start of the new controller, caches included)"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_renamed_without_listing_its_former_name_leaves_its_objects_alone() {
    let t = test_env("norename").await;
    let old = synced_by_old(&t, &[(&t.ns, "orders"), (&t.ns, "going")]).await;
    make_terminating(&t, &t.ns, "going").await;
    resize(&t, &t.ns, "orders", "large").await;

    let new = format!("{}-new", t.name);
    let ctl = start::<Database>(pair(), &new, |c| c.namespace_prefix(t.prefix())).await;
    // The new controller has looked at the terminating object once it reports the claim.
    eventually("the claim reported by the new controller", WAIT, || async {
        let events = events_for(&t.r, &t.ns, "going", "ClaimedByAnotherController").await;
        events
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.contains(&new)))
            .then_some(())
            .ok_or(format!("{} events", events.len()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let going = t.remote(&t.ns).get("going").await.unwrap();
    let orders = t.remote(&t.ns).get("orders").await.unwrap();
    let local = t.local(&t.ns).get("orders").await.unwrap();
    println!(
        "without adoption, after the new controller looked: `going` terminating since {:?} with \
         finalizers {:?} and claim {:?}; `orders` claim {:?}, local size {:?}",
        going.metadata.deletion_timestamp,
        going.finalizers(),
        claim(&going),
        claim(&orders),
        local.spec.size
    );
    assert!(holds_finalizer(&going), "the terminating object stays held");
    assert_eq!(claim(&going).as_deref(), Some(old.as_str()));
    assert_eq!(claim(&orders).as_deref(), Some(old.as_str()));
    assert_eq!(local.spec.size, "small", "no update reaches the local copy");
    ctl.stop().await;

    // Clean up: nobody will release it.
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    t.remote(&t.ns)
        .patch("going", &PatchParams::default(), &Patch::Merge(release))
        .await
        .unwrap();
}
