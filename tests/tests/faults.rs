//! Faults (SPEC §4, §5, §6): API servers that go away, controllers that are killed, watches that
//! expire. Each test that stops or pauses an API server starts a pair of its own, since the
//! tests of one binary run concurrently. The controller runs as a child process
//! (`sync-test-controller`), as its own user bound only to the rules `sync_core::rbac` emits,
//! so a test can kill it, freeze it, and read its log.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use sync_core::Syncable;
use sync_tests::controller::{ControllerProcess, Line};
use sync_tests::{AuditEvent, Pair, unique_name};

const CONTROLLER: &str = env!("CARGO_BIN_EXE_sync-test-controller");

/// A pair of this test's own, with the test CRDs.
async fn own_pair() -> Pair {
    let _ = setup_logging();
    let pair = Pair::start().await.unwrap();
    install_crds(&admin(&pair.remote).await, &admin(&pair.local).await).await;
    pair
}

fn setup_logging() -> Result<(), ()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into()),
        )
        .with_test_writer()
        .try_init()
        .map_err(|_| ())
}

/// Grants `user` the controller's rules and starts it as a child process.
async fn spawn_controller(pair: &Pair, user: &str, extra: &[&str]) -> ControllerProcess {
    let config = Database::defaults().controller_name(user);
    grant_controller::<Database>(pair, user, &config, false).await;
    ControllerProcess::spawn(
        user,
        Path::new(CONTROLLER),
        &controller_args(pair, user, extra),
    )
}

/// Every remote Database whose namespace starts with `prefix`, by key.
async fn remote_objects(r: &Client, prefix: &str) -> BTreeMap<(String, String), Database> {
    list_in(r, prefix).await
}

async fn list_in(c: &Client, prefix: &str) -> BTreeMap<(String, String), Database> {
    Api::<Database>::all(c.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.namespace().unwrap_or_default().starts_with(prefix))
        .map(|o| ((o.namespace().unwrap_or_default(), o.name_any()), o))
        .collect()
}

/// Waits until every remote object under `prefix` (`n` of them) is claimed, records the current
/// generations, and has a local copy with its spec.
async fn all_converged(r: &Client, l: &Client, prefix: &str, n: usize, timeout: Duration) {
    eventually(&format!("{n} objects converged"), timeout, || async {
        let remote = remote_objects(r, prefix).await;
        let local = list_in(l, prefix).await;
        let pending: Vec<String> = remote
            .iter()
            .filter(|((ns, name), o)| {
                let l = local.get(&(ns.clone(), name.clone()));
                !(annotation(*o, &format!("{D}/sync-remote-generation"))
                    == o.metadata.generation.map(|g| g.to_string())
                    && l.is_some_and(|l| {
                        annotation(*o, &format!("{D}/sync-local-generation"))
                            == l.metadata.generation.map(|g| g.to_string())
                            && l.spec.size == o.spec.size
                    }))
            })
            .map(|(k, _)| format!("{}/{}", k.0, k.1))
            .collect();
        if remote.len() == n && pending.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} remote objects, {} pending, e.g. {:?}",
                remote.len(),
                pending.len(),
                pending.iter().take(5).collect::<Vec<_>>()
            ))
        }
    })
    .await
}

/// Waits until every remote object under `prefix` carries status phase `phase`.
async fn all_statuses(r: &Client, prefix: &str, phase: &str, timeout: Duration) {
    eventually(
        &format!("every remote status to be {phase}"),
        timeout,
        || async {
            let remote = remote_objects(r, prefix).await;
            let behind: Vec<String> = remote
                .iter()
                .filter(|(_, o)| o.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(phase))
                .map(|(k, _)| format!("{}/{}", k.0, k.1))
                .collect();
            if !remote.is_empty() && behind.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} behind, e.g. {:?}",
                    behind.len(),
                    remote.len(),
                    behind.iter().take(5).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await
}

/// Sets the local status of every local object under `prefix`, as a local controller would.
async fn set_all_local_statuses(l: &Client, prefix: &str, phase: &str) {
    for (ns, name) in list_in(l, prefix).await.keys() {
        set_local_status(l, ns, name, phase).await;
    }
}

/// Creates `per_ns` objects in each of `namespaces` remote namespaces named `<prefix>n<i>`.
async fn create_objects(r: &Client, prefix: &str, namespaces: usize, per_ns: usize) {
    for i in 0..namespaces {
        let ns = format!("{prefix}n{i}");
        create_namespace(r, &ns).await;
        let api: Api<Database> = Api::namespaced(r.clone(), &ns);
        for j in 0..per_ns {
            api.create(&PostParams::default(), &db(&format!("db{j}"), "small"))
                .await
                .unwrap();
        }
    }
}

fn deletes<'a>(events: &'a [AuditEvent], user: &str) -> Vec<&'a AuditEvent> {
    writes_by(events, user)
        .into_iter()
        .filter(|e| e.verb == "delete" || e.verb == "deletecollection")
        .collect()
}

fn warnings(lines: &[Line]) -> Vec<&Line> {
    lines.iter().filter(|l| l.is_warning()).collect()
}

fn show(lines: &[&Line], n: usize) -> String {
    lines
        .iter()
        .take(n)
        .map(|l| format!("\n  {}", l.text))
        .collect()
}

const OUTAGE: Duration = Duration::from_secs(30);

/// How the remote API goes away in [`remote_outage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outage {
    /// The process is stopped: connections are refused.
    Stopped,
    /// The process is frozen (SIGSTOP): connections are accepted and never answered.
    Paused,
}

/// 100 synced objects; the remote API goes away for 30 s while the local status of every object
/// changes and one local copy is deleted by someone; then it comes back.
async fn remote_outage(kind: Outage) {
    let pair = own_pair().await;
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    let user = unique_name("outage");
    let prefix = format!("{user}-");
    // A frozen server never answers: a short request timeout makes the test see it sooner.
    let mut args = vec!["--namespace-prefix", prefix.as_str()];
    if kind == Outage::Paused {
        args.extend(["--request-timeout-ms", "5000"]);
    }
    let mut ctl = spawn_controller(&pair, &user, &args).await;
    ctl.wait_ready(0, WAIT).await;
    create_objects(&r, &prefix, 10, 10).await;
    all_converged(&r, &l, &prefix, 100, Duration::from_secs(120)).await;
    set_all_local_statuses(&l, &prefix, "Before").await;
    all_statuses(&r, &prefix, "Before", Duration::from_secs(60)).await;
    let uids: BTreeMap<_, _> = list_in(&l, &prefix)
        .await
        .into_iter()
        .map(|(k, o)| (k, o.uid()))
        .collect();

    let local_mark = pair.local.audit_mark().unwrap();
    let log_mark = ctl.mark();
    let down = Instant::now();
    match kind {
        Outage::Stopped => pair.remote.stop_apiserver().unwrap(),
        Outage::Paused => pair.remote.pause_apiserver().unwrap(),
    }
    // A local controller keeps working meanwhile, and someone deletes a local copy.
    set_all_local_statuses(&l, &prefix, "DuringOutage").await;
    let healed = (format!("{prefix}n0"), "db0".to_string());
    Api::<Database>::namespaced(l.clone(), &healed.0)
        .delete(&healed.1, &Default::default())
        .await
        .unwrap();
    let la = Api::<Database>::namespaced(l.clone(), &healed.0);
    eventually(
        "the deleted local copy re-created from the cache while the remote is down",
        WAIT,
        || async {
            match la.get_opt(&healed.1).await.map_err(|e| e.to_string())? {
                Some(o) if o.uid() != uids[&healed] => Ok(()),
                o => Err(format!("{:?}", o.map(|o| o.uid()))),
            }
        },
    )
    .await;
    // The local controller reports on the new copy too.
    set_local_status(&l, &healed.0, &healed.1, "DuringOutage").await;
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    assert!(!ctl.exited(), "the controller died:{}", ctl.tail(40));
    let during = ctl.lines_since(log_mark);
    match kind {
        Outage::Stopped => pair.remote.start_apiserver().await.unwrap(),
        Outage::Paused => pair.remote.resume_apiserver().unwrap(),
    }
    let up = Instant::now();
    all_statuses(&r, &prefix, "DuringOutage", Duration::from_secs(60)).await;
    let caught_up = up.elapsed();

    let after = list_in(&l, &prefix).await;
    assert_eq!(after.len(), 100, "local objects lost");
    for (k, uid) in &uids {
        if *k != healed {
            assert_eq!(&after[k].uid(), uid, "{k:?} was replaced");
        }
    }
    let local_events = pair.local.audit_events_since(&local_mark).unwrap();
    let dels = deletes(&local_events, &user);
    assert!(dels.is_empty(), "local deletions:{}", describe(&dels));
    let warns = warnings(&during);
    eprintln!(
        "{kind:?} remote outage of {:?}: {} log lines, {} warnings; statuses caught up {caught_up:?} after recovery; first warnings:{}",
        OUTAGE,
        during.len(),
        warns.len(),
        show(&warns, 20)
    );
    // One line when the cluster goes, none per object: the objects still back off, at debug
    // level. (kube's client adds a line per connection it loses.)
    assert!(
        warns.len() <= 10,
        "{} warnings during the outage:{}",
        warns.len(),
        show(&warns, 40)
    );
    assert!(!ctl.exited(), "the controller died:{}", ctl.tail(40));
    assert!(ctl.terminate(Duration::from_secs(20)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_remote_api_deletes_nothing_logs_little_and_what_changed_syncs_once_it_is_back() {
    remote_outage(Outage::Stopped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_remote_api_deletes_nothing_hangs_nothing_and_what_changed_syncs_once_it_is_back()
{
    remote_outage(Outage::Paused).await;
}

/// Waits until the remote object `ns/name` is synced to a local copy with its size.
async fn synced_size(r: &Client, l: &Client, ns: &str, name: &str, size: &str) -> Database {
    let (ra, la) = (
        Api::<Database>::namespaced(r.clone(), ns),
        Api::<Database>::namespaced(l.clone(), ns),
    );
    eventually(&format!("{ns}/{name} synced at {size}"), WAIT, || async {
        let r = ra.get(name).await.map_err(|e| e.to_string())?;
        let l = la
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no local copy")?;
        let done = l.spec.size == size
            && annotation(&r, &format!("{D}/sync-remote-generation"))
                == r.metadata.generation.map(|g| g.to_string());
        if done {
            Ok(l)
        } else {
            Err(format!(
                "local {:?}, remote {:?}",
                l.spec, r.metadata.annotations
            ))
        }
    })
    .await
}

/// A watch that expires while the controller cannot see (410 Gone: its resource version was
/// compacted away) is followed by a relist. What changed meanwhile syncs, an object that
/// vanished meanwhile (no delete event will ever come) gets cleaned up, and nothing else is
/// deleted.
///
/// How the watch is made to expire, without etcdctl: the remote API server runs without a
/// watch cache (`--watch-cache=false`, so watches go to etcd) and compacts etcd every 2 s
/// (`--etcd-compaction-interval=2s`). The controller is frozen (SIGSTOP) while the remote
/// objects change and the API server restarts, which ends its watch; once the compactions have
/// passed its last resource version, it is resumed, and its watch restarts from a compacted
/// revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_relists_syncs_what_changed_and_deletes_only_what_vanished() {
    let _ = setup_logging();
    let (remote, local) = tokio::try_join!(
        sync_tests::ControlPlane::start_with_apiserver_args(
            "remote",
            &["--watch-cache=false", "--etcd-compaction-interval=2s"],
        ),
        sync_tests::ControlPlane::start("local"),
    )
    .unwrap();
    let pair = Pair { remote, local };
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    install_crds(&r, &l).await;
    let user = unique_name("expiry");
    let prefix = format!("{user}-");
    let (kept, vanished) = (format!("{prefix}kept"), format!("{prefix}vanished"));
    for ns in [&kept, &vanished] {
        create_namespace(&r, ns).await;
    }
    let api = |ns: &str| Api::<Database>::namespaced(r.clone(), ns);
    for name in ["same", "changed"] {
        api(&kept)
            .create(&PostParams::default(), &db(name, "small"))
            .await
            .unwrap();
    }
    api(&vanished)
        .create(&PostParams::default(), &db("gone", "small"))
        .await
        .unwrap();
    let mut ctl = spawn_controller(&pair, &user, &["--namespace-prefix", &prefix]).await;
    ctl.wait_ready(0, WAIT).await;
    let same = synced_size(&r, &l, &kept, "same", "small").await;
    synced_size(&r, &l, &kept, "changed", "small").await;
    synced_size(&r, &l, &vanished, "gone", "small").await;

    ctl.pause();
    let local_mark = pair.local.audit_mark().unwrap();
    let log_mark = ctl.mark();
    // First the restart, which ends the frozen controller's watch: events sent on the old
    // connection before it ended would still reach it.
    pair.remote.stop_apiserver().unwrap();
    pair.remote.start_apiserver().await.unwrap();
    let patch = serde_json::json!({"spec": {"size": "large"}});
    api(&kept)
        .patch(
            "changed",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .unwrap();
    api(&kept)
        .create(&PostParams::default(), &db("new", "medium"))
        .await
        .unwrap();
    // Gone without a trace for a controller that is not watching: finalizer stripped, deleted.
    let strip = serde_json::json!({"metadata": {"finalizers": null}});
    api(&vanished)
        .patch(
            "gone",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(strip),
        )
        .await
        .unwrap();
    api(&vanished)
        .delete("gone", &Default::default())
        .await
        .unwrap();
    // Two compaction intervals after the changes, the controller's resource version is gone.
    tokio::time::sleep(Duration::from_secs(7)).await;
    ctl.resume();

    ctl.wait_for_line("the remote watch to expire", log_mark, WAIT, |l| {
        l.text.contains("410 Gone") && l.text.contains("remote")
    })
    .await;
    synced_size(&r, &l, &kept, "changed", "large").await;
    synced_size(&r, &l, &kept, "new", "medium").await;
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(l.clone());
    eventually("the vanished object's namespace deleted", WAIT, || async {
        match namespaces
            .get_opt(&vanished)
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(n) if n.metadata.deletion_timestamp.is_some() => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    let now = Api::<Database>::namespaced(l.clone(), &kept)
        .get("same")
        .await
        .unwrap();
    assert_eq!(
        now.uid(),
        same.uid(),
        "an unchanged local copy was replaced"
    );
    let events = pair.local.audit_events_since(&local_mark).unwrap();
    let dels = deletes(&events, &user);
    assert!(
        dels.iter()
            .all(|e| e.resource == "namespaces" && e.name == vanished),
        "deletions beyond the vanished object's namespace:{}",
        describe(&dels)
    );
    assert!(ctl.terminate(Duration::from_secs(20)).await);
}
