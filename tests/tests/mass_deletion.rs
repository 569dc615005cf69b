//! A mass deletion on the management cluster past the deletion budget (SPEC §5, "Deletion
//! budget"): the region is cleaned up only as fast as the budget allows, every object is
//! cleaned up in the end, and the management cluster hears about each held object once, not
//! once per look.
//!
//! The controller runs as a child process (`sync-test-controller`, or the build that
//! `SYNC_TEST_CONTROLLER` names), so its CPU time can be read from `/proc`. The size is
//! `SYNC_MASS_DELETION_OBJECTS` (default 200) and the budget `SYNC_MASS_DELETION_BUDGET`
//! (`MAX,WINDOW_SECONDS`, default `50,10`), so a bigger run is one variable away.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use sync_core::Syncable;
use sync_tests::controller::ControllerProcess;
use sync_tests::unique_name;

/// Namespaces the objects are spread over. The local ones exist beforehand, so they are not
/// the controller's, and under `on_remote_delete = "resource"` each copy is deleted on its
/// own: a namespace the controller made goes with all its copies in one deletion, which would
/// hide the budget.
const NAMESPACES: usize = 4;

fn controller() -> std::path::PathBuf {
    std::env::var_os("SYNC_TEST_CONTROLLER")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sync-test-controller").into())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User and system CPU time of a process so far, from `/proc/<pid>/stat` (in USER_HZ, which
/// Linux reports as 100 per second).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, so 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    (ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0)) as f64 / 100.0
}

async fn databases(c: &Client, prefix: &str) -> Vec<Database> {
    Api::<Database>::all(c.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.namespace().unwrap_or_default().starts_with(prefix))
        .collect()
}

/// How often each remote object was told its deletion is held: one event counts once, plus
/// once more for each repeat the recorder folded into its series.
async fn budget_warnings(r: &Client, namespaces: &[String]) -> BTreeMap<String, i32> {
    let mut per_object = BTreeMap::new();
    for ns in namespaces {
        let events: Api<KubeEvent> = Api::namespaced(r.clone(), ns);
        for e in events.list(&ListParams::default()).await.unwrap().items {
            if e.reason.as_deref() != Some("DeletionBudgetExceeded") {
                continue;
            }
            let name = e.regarding.and_then(|r| r.name).unwrap_or_default();
            let n = e.series.map_or(1, |s| s.count);
            *per_object.entry(format!("{ns}/{name}")).or_default() += n;
        }
    }
    per_object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_remote_deletion_drains_within_the_budget_with_one_warning_per_held_object() {
    let objects: usize = env_or("SYNC_MASS_DELETION_OBJECTS", 200);
    let budget = std::env::var("SYNC_MASS_DELETION_BUDGET").unwrap_or_else(|_| "50,10".into());
    let (max, window) = budget
        .split_once(',')
        .and_then(|(m, w)| Some((m.parse::<usize>().ok()?, w.parse::<u64>().ok()?)))
        .expect("SYNC_MASS_DELETION_BUDGET is MAX,WINDOW_SECONDS");
    let pair = setup().await;
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    let user = unique_name("mass");
    let prefix = format!("{user}-");
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("{prefix}n{i}")).collect();
    for ns in &namespaces {
        create_namespace(&r, ns).await;
        create_namespace(&l, ns).await;
    }
    let config = Database::defaults().controller_name(&user);
    grant_controller::<Database>(pair, &user, &config, false).await;
    let args = controller_args(
        pair,
        &user,
        &[
            "--namespace-prefix",
            &prefix,
            "--on-remote-delete",
            "resource",
            "--deletion-budget",
            &budget,
        ],
    );
    let mut ctl = ControllerProcess::spawn(&user, &controller(), &args);
    ctl.wait_ready(0, WAIT).await;
    let pid = ctl.pid().expect("the controller runs");

    let keys: Vec<(String, String)> = (0..objects)
        .map(|i| (namespaces[i % NAMESPACES].clone(), format!("db{i}")))
        .collect();
    futures::stream::iter(keys.clone())
        .for_each_concurrent(16, |(ns, name)| {
            let r = r.clone();
            async move {
                Api::<Database>::namespaced(r, &ns)
                    .create(&PostParams::default(), &db(&name, "small"))
                    .await
                    .unwrap();
            }
        })
        .await;
    let finalizer = format!("{D}/sync-local");
    eventually(
        &format!("{objects} objects claimed and copied"),
        Duration::from_secs(120),
        || async {
            let claimed = databases(&r, &prefix)
                .await
                .iter()
                .filter(|o| o.finalizers().contains(&finalizer))
                .count();
            let copies = databases(&l, &prefix).await.len();
            match (claimed, copies) {
                (c, n) if c == objects && n == objects => Ok(()),
                (c, n) => Err(format!("{c} claimed, {n} local copies")),
            }
        },
    )
    .await;

    let mark = pair.remote.audit_mark().unwrap();
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    futures::stream::iter(keys.clone())
        .for_each_concurrent(16, |(ns, name)| {
            let r = r.clone();
            async move {
                Api::<Database>::namespaced(r, &ns)
                    .delete(&name, &DeleteParams::default())
                    .await
                    .unwrap();
            }
        })
        .await;
    // One deletion per copy: the budget's windows, and a minute's slack.
    let windows = objects.div_ceil(max.max(1)) as u64;
    let timeout = Duration::from_secs(window * windows + 60);
    let (rc, lc) = (r.clone(), l.clone());
    eventually("every object cleaned up", timeout, || async {
        let remote = databases(&rc, &prefix).await.len();
        let local = databases(&lc, &prefix).await.len();
        match (remote, local) {
            (0, 0) => Ok(()),
            seen => Err(format!("(remote objects, local copies) = {seen:?}")),
        }
    })
    .await;
    let drained = started.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    // Let a late event land before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warnings = budget_warnings(&r, &namespaces).await;
    let audit = pair.remote.audit_events_since(&mark).unwrap();
    let event_writes = writes_by(&audit, &user)
        .iter()
        .filter(|e| e.resource == "events")
        .count();
    let held = warnings.len();
    let total: i32 = warnings.values().sum();
    let most = warnings.values().copied().max().unwrap_or(0);
    println!(
        "mass deletion: {objects} objects in {NAMESPACES} namespaces, budget {max} per {window} s: \
         drained in {:.1} s; controller CPU {cpu:.2} s; {held} objects held, {total} budget \
         warnings ({:.2} per held object, at most {most} for one) in {event_writes} event writes \
         to the remote cluster",
        drained.as_secs_f64(),
        f64::from(total) / held.max(1) as f64,
    );
    ctl.terminate(Duration::from_secs(10)).await;

    assert!(
        held > 0,
        "the budget never held a deletion back; was it configured?"
    );
    let repeated: Vec<_> = warnings.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} of {held} held objects were warned more than once in one trip, {total} warnings in all; e.g. {:?}",
        repeated.len(),
        repeated.iter().take(5).collect::<Vec<_>>()
    );
}
