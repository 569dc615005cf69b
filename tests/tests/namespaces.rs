//! SPEC §5, shared local namespaces: a namespace a sync controller created is deleted only when
//! nothing synced still needs it, whatever kind or controller the other objects belong to, and
//! a remote deletion in a namespace that is still needed deletes only that object's local copy
//! (with `propagation`). Two real control planes; every controller runs as its own user bound
//! only to the RBAC that `sync_core::rbac` emits.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use sync_core::{OnRemoteDelete, Syncable};
use sync_tests::controller::ControllerProcess;
use sync_tests::second_kind::{self, Cache};
use tokio::sync::OnceCell;

/// How long a kept namespace and a kept sibling are watched after the deleted object's
/// finalizer was released, to catch a deletion that comes a little later.
const HOLD: Duration = Duration::from_secs(2);

/// The shared pair with both test kinds' CRDs, and this test's clients and names.
async fn env(prefix: &str) -> T {
    static CACHE_CRDS: OnceCell<()> = OnceCell::const_new();
    let t = test_env(prefix).await;
    CACHE_CRDS
        .get_or_init(|| second_kind::install_crds(&t.r, &t.l))
        .await;
    t
}

fn caches(c: &Client, ns: &str) -> Api<Cache> {
    Api::namespaced(c.clone(), ns)
}

fn namespaces(c: &Client) -> Api<Namespace> {
    Api::all(c.clone())
}

fn paused() -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {format!("{D}/paused"): "true"}}})
}

/// The local namespace `ns` in a few words, for failure messages.
fn describe_ns(ns: Option<&Namespace>) -> String {
    match ns {
        None => "gone".to_owned(),
        Some(n) => format!(
            "uid {:?}, deletionTimestamp {:?}, phase {:?}, annotations {:?}",
            n.metadata.uid,
            n.metadata.deletion_timestamp,
            n.status.as_ref().and_then(|s| s.phase.clone()),
            n.metadata.annotations
        ),
    }
}

/// The local namespace, which must exist: it was created for the first object.
async fn created_namespace(t: &T, ns: &str) -> Namespace {
    let n = namespaces(&t.l).get(ns).await.unwrap();
    assert!(
        n.annotations().contains_key(&format!("{D}/sync-owner")),
        "the local namespace {ns} was not created by the controller: {}",
        describe_ns(Some(&n))
    );
    n
}

/// Waits until the local Cache copy of the remote Cache `name` in `ns` exists with its spec
/// and the remote is claimed; returns the local copy.
async fn cache_synced(t: &T, ns: &str, name: &str) -> Cache {
    let (ra, la) = (caches(&t.r, ns), caches(&t.l, ns));
    eventually(&format!("Cache {ns}/{name} synced"), WAIT, || async {
        let r = ra.get(name).await.map_err(|e| e.to_string())?;
        let l = la
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no local copy; remote finalizers {:?}", r.finalizers()))?;
        if r.finalizers().contains(&format!("{D}/sync-local")) && l.spec == r.spec {
            Ok(l)
        } else {
            Err(format!(
                "remote finalizers {:?} spec {:?}; local spec {:?}",
                r.finalizers(),
                r.spec,
                l.spec
            ))
        }
    })
    .await
}

/// Waits until the remote Database `name` in `ns` is gone (its finalizer released), then
/// checks for [`HOLD`] that the local namespace is still the same, live one and that every
/// `kept` local object (kind, name, uid) is still the same object.
async fn released_and_namespace_kept(t: &T, ns: &str, name: &str, ns_uid: &str, kept: &[Kept]) {
    let ra = t.remote(ns);
    eventually(
        &format!("remote Database {ns}/{name} to be released and gone"),
        WAIT,
        || async {
            match ra.get_opt(name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(o) => Err(format!(
                    "still there: deletionTimestamp {:?}, finalizers {:?}",
                    o.metadata.deletion_timestamp,
                    o.finalizers()
                )),
            }
        },
    )
    .await;
    let until = tokio::time::Instant::now() + HOLD;
    loop {
        let n = namespaces(&t.l).get_opt(ns).await.unwrap();
        assert!(
            n.as_ref()
                .is_some_and(|n| n.metadata.deletion_timestamp.is_none()
                    && n.metadata.uid.as_deref() == Some(ns_uid)),
            "the shared local namespace {ns} (uid {ns_uid}) was not kept after {name}'s remote \
             was deleted; now: {}",
            describe_ns(n.as_ref())
        );
        for k in kept {
            let uid = k.current_uid(t, ns).await;
            assert_eq!(
                uid.as_deref(),
                Some(k.uid.as_str()),
                "the sibling's local {} {ns}/{} was not kept (None = gone)",
                k.kind,
                k.name
            );
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A local object that must survive, by kind, name and uid.
struct Kept {
    kind: &'static str,
    name: String,
    uid: String,
}

impl Kept {
    fn database(l: &Database) -> Kept {
        Kept {
            kind: "Database",
            name: l.name_any(),
            uid: l.uid().unwrap(),
        }
    }
    fn cache(l: &Cache) -> Kept {
        Kept {
            kind: "Cache",
            name: l.name_any(),
            uid: l.uid().unwrap(),
        }
    }
    async fn current_uid(&self, t: &T, ns: &str) -> Option<String> {
        match self.kind {
            "Cache" => caches(&t.l, ns)
                .get_opt(&self.name)
                .await
                .unwrap()
                .and_then(|o| o.uid()),
            _ => t
                .local(ns)
                .get_opt(&self.name)
                .await
                .unwrap()
                .and_then(|o| o.uid()),
        }
    }
}

/// Waits until the local Database `name` in `ns` is gone, or terminating and then gone.
async fn local_copy_deleted(t: &T, ns: &str, name: &str) {
    let la = t.local(ns);
    eventually(
        &format!("the local Database {ns}/{name} to be deleted"),
        WAIT,
        || async {
            match la.get_opt(name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(o) => Err(format!(
                    "still there: uid {:?}, deletionTimestamp {:?}",
                    o.uid(),
                    o.metadata.deletion_timestamp
                )),
            }
        },
    )
    .await;
}

async fn delete_remote(t: &T, ns: &str, name: &str) {
    t.remote(ns)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

/// The flow of promises 1 and 2, with a Database controller and a Cache controller already
/// running under different names: the Database's controller creates the local namespace, a
/// Cache joins it, the Database's remote is deleted, and the namespace and the Cache's local
/// copy stay while the Database's local copy goes.
async fn second_kind_keeps_the_namespace(t: &T) {
    let ns = &t.ns;
    t.create(ns, &db("orders", "small")).await;
    t.converged(ns, "orders", ns, "orders").await;
    let created = created_namespace(t, ns).await;
    let ns_uid = created.uid().unwrap();

    caches(&t.r, ns)
        .create(&PostParams::default(), &second_kind::cache("hot", "1Gi"))
        .await
        .unwrap();
    let hot = cache_synced(t, ns, "hot").await;

    delete_remote(t, ns, "orders").await;
    released_and_namespace_kept(t, ns, "orders", &ns_uid, &[Kept::cache(&hot)]).await;
    local_copy_deleted(t, ns, "orders").await;
    let now = caches(&t.l, ns).get("hot").await.unwrap();
    assert_eq!(now.uid(), hot.uid(), "the Cache's local copy was replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_shared_by_two_kinds_in_one_process_outlives_the_first_kinds_deletion() {
    let t = env("twokinds").await;
    let db_ctl = start::<Database>(pair(), &format!("{}-db", t.name), |c| {
        c.namespace_prefix(t.prefix())
    })
    .await;
    let cache_ctl = start::<Cache>(pair(), &format!("{}-ca", t.name), |c| {
        c.namespace_prefix(t.prefix())
    })
    .await;
    second_kind_keeps_the_namespace(&t).await;
    db_ctl.stop().await;
    cache_ctl.stop().await;
}

/// Runs the Database controller as `sync-test-controller` (a process of its own: no shared
/// cache with the in-process Cache controller), as `user` with only its RBAC.
async fn database_controller_process(t: &T, user: &str) -> ControllerProcess {
    let config = Database::defaults()
        .controller_name(user)
        .namespace_prefix(t.prefix());
    grant_controller::<Database>(pair(), user, &config, false).await;
    let prefix = t.prefix();
    let args = controller_args(pair(), user, &["--namespace-prefix", &prefix]);
    let mut p = ControllerProcess::spawn(
        user,
        std::path::Path::new(env!("CARGO_BIN_EXE_sync-test-controller")),
        &args,
    );
    p.wait_ready(0, WAIT).await;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_shared_by_two_separate_controllers_outlives_the_first_controllers_deletion() {
    let t = env("twoprocs").await;
    let mut db_ctl = database_controller_process(&t, &format!("{}-db", t.name)).await;
    let cache_ctl = start::<Cache>(pair(), &format!("{}-ca", t.name), |c| {
        c.namespace_prefix(t.prefix())
    })
    .await;
    second_kind_keeps_the_namespace(&t).await;
    cache_ctl.stop().await;
    assert!(
        db_ctl.terminate(Duration::from_secs(10)).await,
        "the controller process did not stop: {}",
        db_ctl.tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_terminating_sibling_keeps_the_namespace_and_its_local_copy() {
    let t = env("pausedsib").await;
    let ns = &t.ns;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(t.prefix())).await;
    t.create(ns, &db("orders", "small")).await;
    t.converged(ns, "orders", ns, "orders").await;
    let ns_uid = created_namespace(&t, ns).await.uid().unwrap();
    t.create(ns, &db("billing", "small")).await;
    let (_, billing) = t.converged(ns, "billing", ns, "billing").await;

    t.remote(ns)
        .patch("billing", &PatchParams::default(), &Patch::Merge(paused()))
        .await
        .unwrap();
    delete_remote(&t, ns, "billing").await;
    delete_remote(&t, ns, "orders").await;
    released_and_namespace_kept(&t, ns, "orders", &ns_uid, &[Kept::database(&billing)]).await;
    let b = t.remote(ns).get("billing").await.unwrap();
    assert!(
        b.metadata.deletion_timestamp.is_some()
            && b.finalizers().contains(&format!("{D}/sync-local")),
        "the paused remote billing is not held terminating: {:?} {:?}",
        b.metadata.deletion_timestamp,
        b.finalizers()
    );
    local_copy_deleted(&t, ns, "orders").await;

    // Unpaused, the last object's clean-up takes the namespace with it.
    let unpause = serde_json::json!({"metadata": {"annotations": {format!("{D}/paused"): null}}});
    t.remote(ns)
        .patch("billing", &PatchParams::default(), &Patch::Merge(unpause))
        .await
        .unwrap();
    t.gone(&t.remote(ns), "billing").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_whose_remote_lives_without_a_local_copy_keeps_the_namespace() {
    let t = env("nocopysib").await;
    let ns = &t.ns;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(t.prefix())).await;
    t.create(ns, &db("orders", "small")).await;
    t.converged(ns, "orders", ns, "orders").await;
    let ns_uid = created_namespace(&t, ns).await.uid().unwrap();
    // The local CRD limits `size` to 20 characters and the remote one does not: this
    // sibling's remote lives, but no local copy of it can be created.
    t.create(
        ns,
        &db(
            "toolong",
            "this-size-is-far-longer-than-the-local-schema-allows",
        ),
    )
    .await;
    let (r, rns) = (t.r.clone(), ns.clone());
    eventually("a LocalWriteRejected event for toolong", WAIT, || async {
        let ev = events_for(&r, &rns, "toolong", "LocalWriteRejected").await;
        ev.into_iter()
            .next()
            .map(|_| ())
            .ok_or_else(|| "no event".to_string())
    })
    .await;
    assert!(t.local(ns).get_opt("toolong").await.unwrap().is_none());

    delete_remote(&t, ns, "orders").await;
    released_and_namespace_kept(&t, ns, "orders", &ns_uid, &[]).await;
    local_copy_deleted(&t, ns, "orders").await;
    let toolong = t.remote(ns).get("toolong").await.unwrap();
    assert!(toolong.metadata.deletion_timestamp.is_none());
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_namespace_policy_a_deleted_sibling_loses_its_copy_and_the_last_one_takes_the_namespace()
 {
    assert_eq!(
        Database::defaults().on_remote_delete,
        OnRemoteDelete::Namespace
    );
    let t = env("defaultpol").await;
    let ns = &t.ns;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(t.prefix())).await;
    t.create(ns, &db("orders", "small")).await;
    t.converged(ns, "orders", ns, "orders").await;
    let ns_uid = created_namespace(&t, ns).await.uid().unwrap();
    t.create(ns, &db("billing", "small")).await;
    let (_, billing) = t.converged(ns, "billing", ns, "billing").await;

    delete_remote(&t, ns, "orders").await;
    released_and_namespace_kept(&t, ns, "orders", &ns_uid, &[Kept::database(&billing)]).await;
    local_copy_deleted(&t, ns, "orders").await;

    delete_remote(&t, ns, "billing").await;
    let nsa = namespaces(&t.l);
    eventually(
        &format!("the local namespace {ns} to be gone or terminating"),
        WAIT,
        || async {
            let n = nsa.get_opt(ns).await.map_err(|e| e.to_string())?;
            match &n {
                Some(n) if n.metadata.deletion_timestamp.is_none() => Err(describe_ns(Some(n))),
                _ => Ok(()),
            }
        },
    )
    .await;
    t.gone(&t.remote(ns), "billing").await;
    ctl.stop().await;
}
