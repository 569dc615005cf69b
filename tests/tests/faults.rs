//! Faults (SPEC §4, §5, §6): API servers that go away, controllers that are killed, watches that
//! expire. Each test that stops or pauses an API server starts a pair of its own, since the
//! tests of one binary run concurrently. The controller runs as a child process
//! (`sync-test-controller`), as its own user bound only to the rules `sync_core::rbac` emits,
//! so a test can kill it, freeze it, and read its log.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use sync_core::{Local, Remote, Syncable};
use sync_tests::controller::{ControllerProcess, Line};
use sync_tests::{AuditEvent, Pair, unique_name};

/// The controller binary; `SYNC_TEST_CONTROLLER` points at another build of it, e.g. to show
/// that a test fails without a fix.
fn controller() -> std::path::PathBuf {
    std::env::var_os("SYNC_TEST_CONTROLLER")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sync-test-controller").into())
}

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
    ControllerProcess::spawn(user, &controller(), &controller_args(pair, user, extra))
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

/// A local controller, as the test's stand-in: sets the status of every local copy under
/// `prefix` that has none, and gives each copy named `db0` a controlled secret `creds`.
fn local_controller(l: Client, prefix: String) -> tokio::task::JoinHandle<()> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::Resource;
    tokio::spawn(async move {
        loop {
            for ((ns, name), o) in list_in(&l, &prefix).await {
                if o.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if o.status.is_none() {
                    let g = o.metadata.generation.unwrap_or_default();
                    let body =
                        serde_json::json!({"status": {"observedGeneration": g, "phase": "Ready"}});
                    let _ = Api::<Database>::namespaced(l.clone(), &ns)
                        .patch_status(
                            &name,
                            &kube::api::PatchParams::default(),
                            &kube::api::Patch::Merge(body),
                        )
                        .await;
                }
                if name == "db0" {
                    let secrets = Api::<Secret>::namespaced(l.clone(), &ns);
                    if let Ok(None) = secrets.get_opt("creds").await {
                        let owner = kube::api::ObjectMeta {
                            name: Some("creds".into()),
                            owner_references: Some(vec![
                                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                                    controller: Some(true),
                                    ..o.controller_owner_ref(&()).unwrap()
                                },
                            ]),
                            ..Default::default()
                        };
                        let s = Secret {
                            metadata: owner,
                            string_data: Some(
                                [("password".to_string(), format!("pw-{ns}"))].into(),
                            ),
                            ..Secret::default()
                        };
                        let _ = secrets.create(&PostParams::default(), &s).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// The controller process is killed with SIGKILL while it syncs a burst of 500 new objects,
/// then started again: every object ends up with exactly one local copy, its status and its
/// secret, every namespace the controller made is either in use or deleted, and nothing is
/// claimed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_burst_converges_after_restart_with_nothing_lost_or_leaked() {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    const NAMESPACES: usize = 50;
    const PER_NS: usize = 10;
    let pair = own_pair().await;
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    let user = unique_name("burst");
    let prefix = format!("{user}-");
    let config = Database::defaults()
        .controller_name(&user)
        .secrets(["creds"]);
    grant_controller::<Database>(&pair, &user, &config, false).await;
    let args = controller_args(
        &pair,
        &user,
        &["--namespace-prefix", &prefix, "--secrets", "creds"],
    );
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("{prefix}n{i}")).collect();
    for ns in &namespaces {
        create_namespace(&r, ns).await;
        // The remote secrets exist beforehand: the controller only ever updates them.
        let s = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("creds".into()),
                ..Default::default()
            },
            ..Secret::default()
        };
        Api::<Secret>::namespaced(r.clone(), ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }
    let stand_in = local_controller(l.clone(), prefix.clone());
    let mut ctl = ControllerProcess::spawn(&user, &controller(), &args);
    ctl.wait_ready(0, WAIT).await;

    // The burst, from 5 writers at once.
    let burst = {
        let (r, namespaces) = (r.clone(), namespaces.clone());
        tokio::spawn(async move {
            let writers = namespaces.chunks(NAMESPACES / 5).map(|chunk| {
                let (r, chunk) = (r.clone(), chunk.to_vec());
                async move {
                    for ns in chunk {
                        let api: Api<Database> = Api::namespaced(r.clone(), &ns);
                        for j in 0..PER_NS {
                            api.create(&PostParams::default(), &db(&format!("db{j}"), "small"))
                                .await
                                .unwrap();
                        }
                    }
                }
            });
            futures::future::join_all(writers).await;
        })
    };
    let local_count = || async { list_in(&l, &prefix).await.len() };
    eventually(
        "a good part of the burst synced",
        Duration::from_secs(120),
        || async {
            match local_count().await {
                n if n >= 100 => Ok(n),
                n => Err(format!("{n} local copies")),
            }
        },
    )
    .await;
    ctl.kill().await;
    let at_kill = local_count().await;
    burst.await.unwrap();
    // While it is dead, some remote objects are deleted: in two namespaces it had synced,
    // and in two at the end of the burst, which it may never have seen. In a fifth namespace
    // it had made, the local copies go too, as if it had died between making the namespace
    // and the copies, and the remote objects vanish without a trace (finalizers stripped):
    // nothing but the namespace's owner annotation remembers them.
    let mut owned_at_kill: Vec<String> = Api::<Namespace>::all(l.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|n| {
            n.name_any().starts_with(&prefix)
                && n.annotations().contains_key(&format!("{D}/sync-owner"))
        })
        .map(|n| n.name_any())
        .collect();
    owned_at_kill.sort();
    assert!(owned_at_kill.len() >= 3, "{owned_at_kill:?}");
    let orphaned = owned_at_kill[0].clone();
    let deleted: Vec<String> = [
        owned_at_kill[1].clone(),
        owned_at_kill[2].clone(),
        namespaces[NAMESPACES - 2].clone(),
        namespaces[NAMESPACES - 1].clone(),
    ]
    .into();
    for ns in &deleted {
        let api: Api<Database> = Api::namespaced(r.clone(), ns);
        for j in 0..PER_NS {
            api.delete(&format!("db{j}"), &Default::default())
                .await
                .unwrap();
        }
    }
    let strip = serde_json::json!({"metadata": {"finalizers": null}});
    let ra: Api<Database> = Api::namespaced(r.clone(), &orphaned);
    let la: Api<Database> = Api::namespaced(l.clone(), &orphaned);
    for j in 0..PER_NS {
        let name = format!("db{j}");
        ra.patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(strip.clone()),
        )
        .await
        .unwrap();
        ra.delete(&name, &Default::default()).await.unwrap();
        let _ = la.delete(&name, &Default::default()).await;
    }
    // The garbage collector would take the copies' secrets too; do it now.
    let _ = Api::<Secret>::namespaced(l.clone(), &orphaned)
        .delete("creds", &Default::default())
        .await;

    let restarted = Instant::now();
    let mut ctl = ControllerProcess::spawn(&user, &controller(), &args);
    ctl.wait_ready(0, WAIT).await;
    let live: Vec<&String> = namespaces
        .iter()
        .filter(|ns| **ns != orphaned && !deleted.contains(ns))
        .collect();
    let expected = live.len() * PER_NS;
    all_converged(&r, &l, &prefix, expected, Duration::from_secs(240)).await;
    all_statuses(&r, &prefix, "Ready", Duration::from_secs(120)).await;
    let converged = restarted.elapsed();
    let rs = |ns: &str| Api::<Secret>::namespaced(r.clone(), ns);
    for ns in &live {
        let api = rs(ns);
        eventually(&format!("the secret of {ns} sent up"), WAIT, || async {
            let s = api.get("creds").await.map_err(|e| e.to_string())?;
            let pw = s.data.and_then(|d| {
                d.get("password")
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            });
            if pw.as_deref() == Some(format!("pw-{ns}").as_str()) {
                Ok(())
            } else {
                Err(format!("{pw:?}"))
            }
        })
        .await;
    }
    let nss = Api::<Namespace>::all(l.clone());
    for ns in deleted.iter().chain([&orphaned]) {
        eventually(
            &format!("{ns} deleted locally"),
            Duration::from_secs(60),
            || async {
                match nss.get_opt(ns).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(n) if n.metadata.deletion_timestamp.is_some() => Ok(()),
                    Some(_) => Err("still there".to_string()),
                }
            },
        )
        .await;
        let left = Api::<Database>::namespaced(r.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        assert!(left.is_empty() || left.iter().all(|o| o.metadata.deletion_timestamp.is_some()));
    }
    eventually("every deleted remote object released", WAIT, || async {
        let mut left = 0;
        for ns in &deleted {
            left += Api::<Database>::namespaced(r.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
        }
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} remote objects left"))
        }
    })
    .await;
    // Nothing twice, nothing extra: one finalizer each, and no local copy without a remote.
    let remote = remote_objects(&r, &prefix).await;
    for (k, o) in &remote {
        let ours = o
            .finalizers()
            .iter()
            .filter(|f| **f == format!("{D}/sync-local"))
            .count();
        assert_eq!(ours, 1, "{k:?} finalizers {:?}", o.finalizers());
        assert_eq!(
            annotation(o, &format!("{D}/sync-controller")),
            Some(user.clone())
        );
    }
    let local = list_in(&l, &prefix).await;
    let extra: Vec<_> = local.keys().filter(|k| !remote.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "local copies without a remote object: {extra:?}"
    );
    let owned: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|n| {
            n.annotations().contains_key(&format!("{D}/sync-owner"))
                && n.metadata.deletion_timestamp.is_none()
        })
        .map(|n| n.name_any())
        .collect();
    let want: Vec<String> = live.iter().map(|s| (*s).clone()).collect();
    let mut owned_sorted = owned.clone();
    owned_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(
        owned_sorted, want_sorted,
        "namespaces made by the controller"
    );
    eprintln!(
        "SIGKILL with {at_kill} of 500 local copies made; after the restart, {expected} objects converged with status and {} secrets in {converged:?}",
        live.len()
    );
    stand_in.abort();
    assert!(ctl.terminate(Duration::from_secs(20)).await);
}

/// The local API server restarts: the controller notices once, reconnects, and applies the
/// remote changes made meanwhile; nothing is deleted and no local copy is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_local_api_is_reconnected_and_everything_converges() {
    let pair = own_pair().await;
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    let user = unique_name("localrestart");
    let prefix = format!("{user}-");
    let mut ctl = spawn_controller(&pair, &user, &["--namespace-prefix", &prefix]).await;
    ctl.wait_ready(0, WAIT).await;
    create_objects(&r, &prefix, 4, 5).await;
    all_converged(&r, &l, &prefix, 20, Duration::from_secs(60)).await;
    let uids: BTreeMap<_, _> = list_in(&l, &prefix)
        .await
        .into_iter()
        .map(|(k, o)| (k, o.uid()))
        .collect();
    let log_mark = ctl.mark();
    pair.local.stop_apiserver().unwrap();
    // Meanwhile the management plane changes some specs and adds objects, some in a new
    // namespace.
    let n0: Api<Database> = Api::namespaced(r.clone(), &format!("{prefix}n0"));
    for j in 0..3 {
        n0.patch(
            &format!("db{j}"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"size": "large"}})),
        )
        .await
        .unwrap();
    }
    let fresh = format!("{prefix}fresh");
    create_namespace(&r, &fresh).await;
    for j in 0..3 {
        Api::<Database>::namespaced(r.clone(), &fresh)
            .create(&PostParams::default(), &db(&format!("db{j}"), "small"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!ctl.exited(), "the controller died:{}", ctl.tail(40));
    let local_mark = {
        pair.local.start_apiserver().await.unwrap();
        pair.local.audit_mark().unwrap()
    };
    let up = Instant::now();
    all_converged(&r, &l, &prefix, 23, Duration::from_secs(60)).await;
    let caught_up = up.elapsed();
    for j in 0..3 {
        synced_size(&r, &l, &format!("{prefix}n0"), &format!("db{j}"), "large").await;
    }
    let now = list_in(&l, &prefix).await;
    for (k, uid) in &uids {
        assert_eq!(&now[k].uid(), uid, "{k:?} was replaced");
    }
    let dels = deletes(&pair.local.audit_events_since(&local_mark).unwrap(), &user).len();
    assert_eq!(dels, 0, "local deletions after the restart");
    let lines = ctl.lines_since(log_mark);
    let warns = warnings(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.text.contains("cluster answers again") && l.text.contains("local")),
        "no reconnection logged:{}",
        ctl.tail(30)
    );
    assert!(
        warns.len() <= 10,
        "{} warnings:{}",
        warns.len(),
        show(&warns, 40)
    );
    eprintln!(
        "local API down 10 s: {} warnings; converged {caught_up:?} after it was back",
        warns.len()
    );
    assert!(ctl.terminate(Duration::from_secs(20)).await);
}

/// Readiness follows the watches: true once the caches are filled, false once the remote API
/// server has been stopped for longer than the threshold, true again once it is back, and
/// false when the reconciler stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_false_while_the_remote_api_is_down_past_the_threshold_and_true_once_back()
{
    let pair = own_pair().await;
    let user = "readiness";
    let config = Database::defaults().controller_name(user);
    grant_controller::<Database>(&pair, user, &config, false).await;
    let threshold = Duration::from_secs(5);
    let builder = Database::reconciler(
        Remote(pair.remote.client_as(user, &[]).await.unwrap()),
        Local(pair.local.client_as(user, &[]).await.unwrap()),
    )
    .configure(|_| config)
    .unready_after(threshold);
    let ready = builder.readiness();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let run = tokio::spawn(builder.run(async move {
        let _ = stopped.await;
    }));
    readiness_is(&ready, true, WAIT, "after start").await;
    println!("ready {:?} after start", started.elapsed());
    // Nothing fails: it stays ready.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(*ready.borrow(), "unready with nothing failing");

    // Taken before the stop: the watch can fail no earlier than this, but may fail before
    // `stop_apiserver` returns.
    let down = Instant::now();
    pair.remote.stop_apiserver().unwrap();
    readiness_is(
        &ready,
        false,
        threshold + WAIT,
        "with the remote API stopped",
    )
    .await;
    let unready = down.elapsed();
    println!("unready {unready:?} after the remote API server stopped (threshold {threshold:?})");
    assert!(unready >= threshold, "unready after only {unready:?}");

    pair.remote.start_apiserver().await.unwrap();
    let up = Instant::now();
    readiness_is(&ready, true, WAIT, "once the remote API is back").await;
    println!(
        "ready {:?} after the remote API server answered again",
        up.elapsed()
    );

    let _ = stop.send(());
    run.await.unwrap().unwrap();
    assert!(!*ready.borrow(), "still ready after the reconciler stopped");
}

/// Waits at most `limit` for `ready` to hold `want`.
async fn readiness_is(
    ready: &tokio::sync::watch::Receiver<bool>,
    want: bool,
    limit: Duration,
    when: &str,
) {
    let mut ready = ready.clone();
    tokio::time::timeout(limit, ready.wait_for(|r| *r == want))
        .await
        .unwrap_or_else(|_| panic!("readiness not {want} {when} within {limit:?}"))
        .expect("the reconciler dropped its readiness");
}
