//! What keeps the controller's cost bounded by its own shard, on real clusters:
//!
//! - objects of other shards (another region's suffix) never reach its caches, so its memory
//!   follows its own shard, not the whole management cluster;
//! - many objects arriving together in a new namespace make one namespace create, not one
//!   create per object with all but one refused (409);
//! - with streaming lists, the caches fill from the watch itself (no list response held whole).

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use kube::Client;
use kube::api::{Api, PostParams};
use prometheus_client::registry::Registry;
use sync_core::{Local, Metrics, Remote, SyncConfig, Syncable};
use sync_tests::unique_name;
use tokio::sync::oneshot;

/// Longer than the common 30 s: these tests make tens of objects on shared planes.
const SLOW: Duration = Duration::from_secs(60);

/// A running reconciler: what its `run` returns when it stops.
type Run = tokio::task::JoinHandle<Result<(), sync_core::RunError>>;

/// Starts a reconciler as `user` with `config` (granted exactly its RBAC), counting into
/// `metrics`; it stops when the returned sender is dropped or sent to.
async fn start_with_metrics(
    user: &str,
    config: SyncConfig,
    metrics: Metrics,
) -> (oneshot::Sender<()>, Run) {
    let (stop, handle, _ready) = start_with_readiness(user, config, metrics).await;
    (stop, handle)
}

/// [`start_with_metrics`], with the controller's readiness.
async fn start_with_readiness(
    user: &str,
    config: SyncConfig,
    metrics: Metrics,
) -> (oneshot::Sender<()>, Run, tokio::sync::watch::Receiver<bool>) {
    let pair = pair();
    grant_controller::<Database>(pair, user, &config, false).await;
    let remote = pair.remote.client_as(user, &[]).await.unwrap();
    let local = pair.local.client_as(user, &[]).await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let builder = Database::reconciler(Remote(remote), Local(local))
        .configure(|_| config)
        .metrics(metrics)
        .backoff(Duration::from_millis(200), Duration::from_secs(5))
        .shutdown_deadline(Duration::from_secs(5));
    let ready = builder.readiness();
    let handle = tokio::spawn(builder.run(async move {
        let _ = rx.await;
    }));
    (tx, handle, ready)
}

/// A controller of the namespaces of `t` with the suffix "-eu", as a new user named after
/// `name`, counting into a registry of its own; returns once it is ready.
async fn start_on_env(t: &T, name: &str) -> (String, Registry, oneshot::Sender<()>, Run) {
    let user = unique_name(name);
    let config = Database::defaults()
        .controller_name(&user)
        .namespace_prefix(t.prefix())
        .remote_suffix("-eu");
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let (stop, handle, mut ready) = start_with_readiness(&user, config, metrics).await;
    // Ready once its caches are filled: an object created before then would come with the
    // first list, and the pass every key gets after it would count as one with nothing to do.
    tokio::time::timeout(SLOW, ready.wait_for(|r| *r))
        .await
        .expect("the controller is not ready within a minute")
        .expect("the controller stopped before it was ready");
    (user, registry, stop, handle)
}

/// The value of the series `name` in `registry` whose labels include every one of `labels`.
fn metric<T: std::str::FromStr>(
    registry: &Registry,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<T> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The value of the gauge `sync_cached_objects` for `controller` and `cluster`.
fn cached(registry: &Registry, controller: &str, cluster: &str) -> Option<i64> {
    metric(
        registry,
        "sync_cached_objects",
        &[("controller", controller), ("cluster", cluster)],
    )
}

/// How many objects `api` lists.
async fn count(api: &Api<Database>) -> Result<usize, String> {
    let list = api
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(list.items.len())
}

async fn create_all(api: &Api<Database>, names: impl IntoIterator<Item = String>) {
    join_all(names.into_iter().map(|n| async move {
        api.create(&PostParams::default(), &db(&n, "1Gi"))
            .await
            .unwrap();
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_other_shards_never_reach_the_cache() {
    let pair = setup().await;
    let remote = admin(&pair.remote).await;
    let local = admin(&pair.local).await;
    let ns = unique_name("shard");
    create_namespace(&remote, &ns).await;
    // A suffix of this test's own: every other object of the kind on the shared management
    // cluster (other tests', other "regions'") is another shard's.
    let region = format!("-{}", unique_name("r"));
    let other = format!("-{}", unique_name("o"));
    let api: Api<Database> = Api::namespaced(remote.clone(), &ns);
    create_all(&api, (0..30).map(|i| format!("db{i}{other}"))).await;
    create_all(&api, (0..3).map(|i| format!("db{i}{region}"))).await;

    let user = unique_name("shard-ctl");
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let config = Database::defaults()
        .controller_name(&user)
        .remote_suffix(&region);
    let (stop, handle) = start_with_metrics(&user, config, metrics).await;

    let locals: Api<Database> = Api::namespaced(local.clone(), &ns);
    eventually("the shard's 3 objects synced", SLOW, || async {
        let n = count(&locals).await?;
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} local copies"))
        }
    })
    .await;
    // Every object the controller touched has passed through its cache by now.
    let remote_cached = cached(&registry, &user, "Remote");
    assert_eq!(
        remote_cached,
        Some(3),
        "the remote cache should hold the 3 objects of this shard only, not the 30 of the \
         other shard nor any other test's"
    );
    // The local cluster holds only this region's copies in a real deployment; here it is
    // shared with other tests, whose copies map (no namespace suffix), so only the remote
    // side, the management cluster ten times the shard, is checked.
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_objects_of_a_new_namespace_make_one_namespace_create() {
    let pair = setup().await;
    let remote = admin(&pair.remote).await;
    let local: Client = admin(&pair.local).await;
    let ns = unique_name("one-create");
    create_namespace(&remote, &ns).await;
    let region = format!("-{}", unique_name("r"));
    let api: Api<Database> = Api::namespaced(remote.clone(), &ns);
    // All present before the controller starts: its first passes all find the local
    // namespace missing at once, 16 at a time.
    create_all(&api, (0..40).map(|i| format!("db{i}{region}"))).await;

    let user = unique_name("one-create-ctl");
    let mark = pair.local.audit_mark().unwrap();
    let config = Database::defaults()
        .controller_name(&user)
        .remote_suffix(&region)
        .concurrency(16);
    let (stop, handle) = start_with_metrics(&user, config, Metrics::default()).await;

    let locals: Api<Database> = Api::namespaced(local.clone(), &ns);
    eventually("all 40 local copies", SLOW, || async {
        let n = count(&locals).await?;
        if n == 40 {
            Ok(())
        } else {
            Err(format!("{n} local copies"))
        }
    })
    .await;
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();

    let creates: Vec<_> = pair
        .local
        .audit_events_since(&mark)
        .unwrap()
        .into_iter()
        .filter(|e| e.user == user && e.verb == "create" && e.resource == "namespaces")
        .collect();
    let refused = creates.iter().filter(|e| e.code == 409).count();
    assert_eq!(
        creates.len(),
        1,
        "expected one namespace create for 40 objects of one new namespace; got {} ({} refused with 409)",
        creates.len(),
        refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_does_not_wait_behind_a_burst_of_creations() {
    const BURST: usize = 300;
    let pair = setup().await;
    let remote = admin(&pair.remote).await;
    let local: Client = admin(&pair.local).await;
    let ns = unique_name("lanes");
    create_namespace(&remote, &ns).await;
    let region = format!("-{}", unique_name("r"));
    let user = unique_name("lanes-ctl");
    // Two workers, so that the burst makes a long backlog.
    let config = Database::defaults()
        .controller_name(&user)
        .remote_suffix(&region)
        .concurrency(2);
    let remotes: Api<Database> = Api::namespaced(remote.clone(), &ns);
    let locals: Api<Database> = Api::namespaced(local.clone(), &ns);
    let old = format!("old{region}");
    create_all(&remotes, [old.clone()]).await;
    let (stop, handle) = start_with_metrics(&user, config, Metrics::default()).await;
    eventually("the old object's local copy", SLOW, || async {
        get_opt::<Database>(&local, &ns, "old")
            .await
            .map(|_| ())
            .ok_or_else(|| "no local copy".to_owned())
    })
    .await;

    create_all(&remotes, (0..BURST).map(|i| format!("db{i}{region}"))).await;
    // The controller is now working through the burst, two at a time.
    set_local_status(&local, &ns, "old", "Ready").await;
    let copies = eventually("the old object's status sent up", SLOW, || async {
        let r = remotes.get(&old).await.map_err(|e| e.to_string())?;
        let phase = r.status.and_then(|s| s.phase);
        if phase.as_deref() != Some("Ready") {
            return Err(format!("remote status phase {phase:?}"));
        }
        let n = count(&locals).await?;
        Ok(n - 1)
    })
    .await;
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
    eprintln!("the status went up when {copies} of {BURST} new objects had local copies");
    assert!(
        copies < BURST * 2 / 3,
        "the status went up only after {copies} of the {BURST} new objects were created: it \
         waited behind the burst"
    );
}

/// The value of `sync_reconciles_total` for `controller` and `outcome`.
fn reconciles(registry: &Registry, controller: &str, outcome: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with("sync_reconciles_total{"))
        .filter(|l| l.contains(&format!("controller=\"{controller}\"")))
        .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_ends_on_the_namespace_event_without_polling() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{DeleteParams, Patch, PatchParams};

    const HOLD: Duration = Duration::from_secs(16);
    let pair = setup().await;
    let remote = admin(&pair.remote).await;
    let local: Client = admin(&pair.local).await;
    let ns = unique_name("waits");
    create_namespace(&remote, &ns).await;
    let region = format!("-{}", unique_name("r"));
    let user = unique_name("waits-ctl");
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let config = Database::defaults()
        .controller_name(&user)
        .remote_suffix(&region);
    let remotes: Api<Database> = Api::namespaced(remote.clone(), &ns);
    let name = format!("db{region}");
    create_all(&remotes, [name.clone()]).await;
    let (stop, handle) = start_with_metrics(&user, config, metrics).await;
    eventually("the local copy", SLOW, || async {
        get_opt::<Database>(&local, &ns, "db")
            .await
            .map(|_| ())
            .ok_or_else(|| "no local copy".to_owned())
    })
    .await;

    // Something else in the local namespace holds its deletion until the test lets go.
    let cms: Api<ConfigMap> = Api::namespaced(local.clone(), &ns);
    let mut hold = ConfigMap::default();
    hold.metadata.name = Some("hold".into());
    hold.metadata.finalizers = Some(vec!["sync.test/hold".into()]);
    cms.create(&PostParams::default(), &hold).await.unwrap();

    remotes
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(local.clone());
    eventually("the local namespace terminating", SLOW, || async {
        let n = namespaces.get(&ns).await.map_err(|e| e.to_string())?;
        n.metadata
            .deletion_timestamp
            .map(|_| ())
            .ok_or_else(|| "not terminating".to_owned())
    })
    .await;
    let before = reconciles(&registry, &user, "waiting");
    tokio::time::sleep(HOLD).await;
    let waits = reconciles(&registry, &user, "waiting") - before;

    // A change to the namespace that does not end the wait (here a label; in a mass deletion,
    // the namespace controller's progress conditions) does not wake the waiting key.
    const TOUCHES: u64 = 10;
    let before = reconciles(&registry, &user, "waiting");
    for i in 0..TOUCHES {
        let label = serde_json::json!({"metadata": {"labels": {"sync.test/touch": i.to_string()}}});
        namespaces
            .patch(&ns, &PatchParams::default(), &Patch::Merge(label))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let woken = reconciles(&registry, &user, "waiting") - before;

    let released = tokio::time::Instant::now();
    let unhold = serde_json::json!({"metadata": {"finalizers": null}});
    cms.patch("hold", &PatchParams::default(), &Patch::Merge(unhold))
        .await
        .unwrap();
    eventually("the remote object released and gone", SLOW, || async {
        match get_opt::<Database>(&remote, &ns, &name).await {
            None => Ok(()),
            Some(r) => Err(format!(
                "still there, finalizers {:?}",
                r.metadata.finalizers
            )),
        }
    })
    .await;
    let took = released.elapsed();
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
    eprintln!(
        "{waits} waiting passes in {HOLD:?}; {woken} during {TOUCHES} namespace changes; \
         released {took:?} after the namespace could go"
    );
    assert!(
        woken <= 2,
        "{woken} waiting passes during {TOUCHES} changes to the terminating namespace: each \
         change woke the key, though none could end its wait"
    );
    // The wait ends on the namespace's event; the controller looks again on its own only as a
    // safety net, first after a minute. Two passes at most: one for the local copy's
    // deletion, which the namespace controller may still be carrying out.
    assert!(
        waits <= 2,
        "{waits} waiting passes while the namespace deletion was held for {HOLD:?}: the wait \
         polls instead of waiting for the event"
    );
    assert!(
        took < Duration::from_secs(6),
        "the remote object was released {took:?} after the namespace could go: the wait did \
         not end on the namespace's event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_label_selector_keeps_unlabelled_objects_out_of_the_cache() {
    let pair = setup().await;
    let remote = admin(&pair.remote).await;
    let local: Client = admin(&pair.local).await;
    let ns = unique_name("selector");
    create_namespace(&remote, &ns).await;
    let region = format!("-{}", unique_name("r"));
    let remotes: Api<Database> = Api::namespaced(remote.clone(), &ns);
    // Five objects of the shard without the region's label, then three with it.
    create_all(&remotes, (0..5).map(|i| format!("plain{i}{region}"))).await;
    join_all((0..3).map(|i| {
        let remotes = remotes.clone();
        let region = region.clone();
        async move {
            let mut o = db(&format!("labelled{i}{region}"), "1Gi");
            o.metadata.labels = Some([("region".to_owned(), "eu".to_owned())].into());
            remotes.create(&PostParams::default(), &o).await.unwrap();
        }
    }))
    .await;

    let user = unique_name("selector-ctl");
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let config = Database::defaults()
        .controller_name(&user)
        .remote_suffix(&region)
        .remote_label_selector("region=eu");
    let (stop, handle) = start_with_metrics(&user, config, metrics).await;
    let locals: Api<Database> = Api::namespaced(local.clone(), &ns);
    eventually("the 3 labelled objects synced", SLOW, || async {
        let list = locals
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let mut names: Vec<String> = list
            .items
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        names.sort();
        if names == ["labelled0", "labelled1", "labelled2"] {
            Ok(())
        } else {
            Err(format!("local copies {names:?}"))
        }
    })
    .await;
    assert_eq!(cached(&registry, &user, "Remote"), Some(3));
    // The unlabelled ones stay untouched: no claim, no finalizer.
    for i in 0..5 {
        let o = remotes.get(&format!("plain{i}{region}")).await.unwrap();
        assert!(
            o.metadata.finalizers.as_ref().is_none_or(Vec::is_empty),
            "an unselected object got a finalizer: {:?}",
            o.metadata
        );
    }
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_selector_the_server_refuses_stops_the_start_with_a_clear_error() {
    let pair = setup().await;
    let user = unique_name("bad-selector-ctl");
    let config = Database::defaults()
        .controller_name(&user)
        .remote_label_selector("region in (eu");
    let (_stop, handle) = start_with_metrics(&user, config, Metrics::default()).await;
    let result = tokio::time::timeout(SLOW, handle)
        .await
        .expect("run did not return")
        .unwrap();
    let err = result.expect_err("a selector the API server refuses was accepted");
    let text = err.to_string();
    assert!(
        matches!(err, sync_core::RunError::InvalidConfig(_)) && text.contains("region in (eu"),
        "unclear error: {text}"
    );
    let _ = pair;
}

/// The writes `user` made on Database objects, by object: remote metadata patches, remote
/// status patches and local creates that the API servers carried out.
fn database_writes(
    marks: &(sync_tests::AuditMark, sync_tests::AuditMark),
    user: &str,
    name: &str,
) -> (usize, usize, usize) {
    let ok =
        |e: &&sync_tests::AuditEvent| e.resource == "databases" && e.name == name && e.code < 400;
    let remote = pair().remote.audit_events_since(&marks.0).unwrap();
    let local = pair().local.audit_events_since(&marks.1).unwrap();
    let remote: Vec<_> = writes_by(&remote, user).into_iter().filter(ok).collect();
    let local: Vec<_> = writes_by(&local, user).into_iter().filter(ok).collect();
    let meta = remote
        .iter()
        .filter(|e| e.verb == "patch" && e.subresource.is_empty())
        .count();
    let status = remote
        .iter()
        .filter(|e| e.verb == "patch" && e.subresource == "status")
        .count();
    let created = local.iter().filter(|e| e.verb == "create").count();
    (meta, status, created)
}

/// With `status_observed_generation`, a new object's claim also records the generations of
/// the copy about to be made: per new object one remote metadata write, one local create and
/// one remote status write, where the claim and the record were two metadata writes before
/// (the first round, without the setting, shows that). The record names the copy by the id
/// the copy carries, and the currency contract holds once the local controller reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_object_costs_one_remote_metadata_write_when_its_status_reports_generations() {
    let t = test_env("fewest").await;
    for (round, announce) in [false, true].into_iter().enumerate() {
        let prefix = format!("{}r{round}-", t.prefix());
        let ns = format!("{prefix}a");
        create_namespace(&t.r, &ns).await;
        let user = unique_name("fewest");
        let since = marks();
        let ctl = start::<Database>(pair(), &user, |c| {
            c.namespace_prefix(&prefix)
                .remote_suffix("-eu")
                .status_observed_generation(announce)
        })
        .await;
        let names: Vec<String> = (0..4).map(|i| format!("db{i}")).collect();
        create_all(&t.remote(&ns), names.iter().map(|n| format!("{n}-eu"))).await;
        for name in &names {
            t.converged(&ns, &format!("{name}-eu"), &ns, name).await;
            set_local_status(&t.l, &ns, name, "Ready").await;
        }
        for name in &names {
            let api = t.remote(&ns);
            let rname = format!("{name}-eu");
            let r = eventually("the status up", SLOW, || async {
                let r = api.get(&rname).await.map_err(|e| e.to_string())?;
                match r.status.as_ref().and_then(|s| s.phase.as_deref()) {
                    Some("Ready") => Ok(r),
                    other => Err(format!("phase {other:?}")),
                }
            })
            .await;
            let l = t.local(&ns).get(name).await.unwrap();
            let id = annotation(&r, &format!("{D}/sync-local-uid"));
            let copy = match announce {
                true => annotation(&l, &format!("{D}/sync-copy-id")),
                false => l.metadata.uid.clone(),
            };
            assert_eq!(
                id, copy,
                "the record names the copy ({name}, round {round})"
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let want_meta = if announce { 1 } else { 2 };
        for name in &names {
            let got = database_writes(&since, &user, &format!("{name}-eu"));
            let local = database_writes(&since, &user, name);
            assert_eq!(
                (got.0, got.1, local.2),
                (want_meta, 1, 1),
                "{name} (status_observed_generation {announce}): remote metadata writes, \
                 remote status writes, local creates"
            );
        }
        ctl.stop().await;
    }
}

/// A remote object that an uncached read proved gone (404) is not read again on every pass of
/// a long clean-up: here a local copy `b` whose remote object does not exist, held by someone
/// else's finalizer, keeps the namespace terminating while the remote object `a-eu` that
/// needs the namespace waits for it to go, pass after pass (and `b` changes, waking its own
/// passes). Each of those passes asks about `b-eu`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_object_proven_gone_is_not_read_again_on_every_pass() {
    let t = test_env("proven").await;
    let (user, registry, stop, handle) = start_on_env(&t, "proven").await;
    t.create(&t.ns, &db("a-eu", "s")).await;
    t.converged(&t.ns, "a-eu", &t.ns, "a").await;
    let hold = "example.com/hold".to_string();
    let mut b = db("b", "s");
    b.metadata.finalizers = Some(vec![hold.clone()]);
    let local = t.local(&t.ns);
    local.create(&PostParams::default(), &b).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    t.remote(&t.ns)
        .delete("a-eu", &Default::default())
        .await
        .unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(t.l.clone());
    eventually("the local namespace terminating", SLOW, || async {
        let ns = namespaces.get(&t.ns).await.map_err(|e| e.to_string())?;
        match ns.metadata.deletion_timestamp {
            Some(_) => Ok(()),
            None => Err("not terminating".into()),
        }
    })
    .await;
    // `a-eu` waits for the namespace (after 1, 2, 4 and 8 s, and on its events).
    tokio::time::sleep(Duration::from_secs(16)).await;
    let reads: u64 = metric(
        &registry,
        "sync_uncached_remote_reads_total",
        &[("controller", &user)],
    )
    .unwrap_or(0);
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    local
        .patch("b", &Default::default(), &kube::api::Patch::Merge(patch))
        .await
        .unwrap();
    t.gone(&t.remote(&t.ns), "a-eu").await;
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
    assert!(
        (1..=2).contains(&reads),
        "{reads} uncached reads of the remote API while one object waited 16 s beside one proven gone"
    );
}

/// The watch event of the controller's own write (its claim, the local create, the status
/// sent up) comes after the pass that made the write has folded the API server's answer in:
/// it must not queue a pass that finds nothing to do. Here 50 new objects are synced and
/// their statuses sent up; the passes that found nothing to do (`in_sync`) or stopped because
/// a cache was behind the controller's own write (`skipped`) are counted per object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_of_the_controllers_own_write_queues_no_pass() {
    const OBJECTS: usize = 50;
    let t = test_env("echo").await;
    let (user, registry, stop, handle) = start_on_env(&t, "echo").await;
    let names: Vec<String> = (0..OBJECTS).map(|i| format!("db{i}")).collect();
    create_all(&t.remote(&t.ns), names.iter().map(|n| format!("{n}-eu"))).await;
    for name in &names {
        t.converged(&t.ns, &format!("{name}-eu"), &t.ns, name).await;
    }
    join_all(
        names
            .iter()
            .map(|name| set_local_status(&t.l, &t.ns, name, "Ready")),
    )
    .await;
    let remotes = t.remote(&t.ns);
    eventually("every status sent up", SLOW, || async {
        let list = remotes
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list
            .items
            .iter()
            .filter(|r| r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready"))
            .count();
        match ready {
            OBJECTS => Ok(()),
            n => Err(format!("{n} of {OBJECTS} remote statuses Ready")),
        }
    })
    .await;
    // The echoes of the last writes arrive after the objects look synced from outside.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let count = |outcome| reconciles(&registry, &user, outcome);
    let (wrote, in_sync, skipped) = (count("wrote"), count("in_sync"), count("skipped"));
    let errors = count("error");
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
    for name in &names {
        t.converged(&t.ns, &format!("{name}-eu"), &t.ns, name).await;
    }
    let per_object = |n: u64| n as f64 / OBJECTS as f64;
    eprintln!(
        "per object: wrote {:.2}, in_sync {:.2}, skipped {:.2}, error {:.2}",
        per_object(wrote),
        per_object(in_sync),
        per_object(skipped),
        per_object(errors)
    );
    assert!(
        wrote >= OBJECTS as u64,
        "{wrote} passes wrote for {OBJECTS} new objects"
    );
    let idle = per_object(in_sync + skipped);
    assert!(
        idle <= 0.5,
        "{idle:.2} passes per object found nothing to do or a cache behind the controller's \
         own write (in_sync {in_sync}, skipped {skipped}, wrote {wrote}, for {OBJECTS} objects)"
    );
}

/// The namespace a new object needs is created by the controller; its watch event echoes
/// that create and queues no pass either. One object in each of 20 new namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_of_the_controllers_own_namespace_create_queues_no_pass() {
    const OBJECTS: usize = 20;
    let t = test_env("nsecho").await;
    let namespaces: Vec<String> = (0..OBJECTS)
        .map(|i| format!("{}n{i}", t.prefix()))
        .collect();
    join_all(namespaces.iter().map(|ns| create_namespace(&t.r, ns))).await;
    let (user, registry, stop, handle) = start_on_env(&t, "nsecho").await;
    join_all(namespaces.iter().map(|ns| {
        let t = &t;
        async move { create_all(&t.remote(ns), ["db-eu".to_owned()]).await }
    }))
    .await;
    for ns in &namespaces {
        t.converged(ns, "db-eu", ns, "db").await;
    }
    // The echoes of the last writes arrive after the objects look synced from outside.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let count = |outcome| reconciles(&registry, &user, outcome);
    let (wrote, in_sync, skipped) = (count("wrote"), count("in_sync"), count("skipped"));
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
    let idle = (in_sync + skipped) as f64 / OBJECTS as f64;
    eprintln!(
        "per object: {idle:.2} passes in sync or skipped ({in_sync} in sync, {skipped} skipped, {wrote} wrote)"
    );
    assert!(
        wrote >= OBJECTS as u64,
        "{wrote} passes wrote for {OBJECTS} new objects"
    );
    assert!(
        idle <= 0.25,
        "{idle:.2} passes per object found nothing to do or a cache behind the controller's own \
         write (in_sync {in_sync}, skipped {skipped}): the namespace create's echo queued a pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_streaming_lists_the_caches_fill_from_the_watch_and_objects_sync() {
    let pair = setup().await;
    let remote = admin(&pair.remote).await;
    let local: Client = admin(&pair.local).await;
    let ns = unique_name("stream");
    create_namespace(&remote, &ns).await;
    let region = format!("-{}", unique_name("r"));
    let remotes: Api<Database> = Api::namespaced(remote.clone(), &ns);
    // Five objects before the controller starts: they come in its initial list.
    create_all(&remotes, (0..5).map(|i| format!("before{i}{region}"))).await;

    let user = unique_name("stream-ctl");
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let config = Database::defaults()
        .controller_name(&user)
        .remote_suffix(&region)
        .secrets(["db-credentials"])
        .streaming_lists(true);
    let (stop, handle, mut ready) = start_with_readiness(&user, config, metrics).await;
    // Ready only once every watch (objects on both sides, the secret) has had its initial
    // events and the bookmark that ends them.
    tokio::time::timeout(SLOW, ready.wait_for(|r| *r))
        .await
        .expect("the controller with streaming lists is not ready within a minute")
        .expect("the controller stopped before it was ready");
    assert_eq!(cached(&registry, &user, "Remote"), Some(5));
    create_all(&remotes, (0..2).map(|i| format!("after{i}{region}"))).await;
    let locals: Api<Database> = Api::namespaced(local.clone(), &ns);
    eventually("the 7 objects synced", SLOW, || async {
        match count(&locals).await? {
            7 => Ok(()),
            n => Err(format!("{n} local copies")),
        }
    })
    .await;
    assert_eq!(cached(&registry, &user, "Remote"), Some(7));
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
