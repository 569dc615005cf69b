//! Promises that hold under load or when a cluster does not keep what the controller writes:
//!
//! - the currency contract of SPEC §3.6 under continuous churn of 50 objects;
//! - a remote status field the remote API server prunes (its CRD lacks it) is reported once
//!   (`RemoteStatusNotKept`) instead of being written again and again;
//! - a local write that local admission rewrites is reported once (`LocalWriteNotKept`)
//!   instead of being written again and again.
//!
//! The churn lasts `SYNC_CHURN_SECS` seconds (default 8, as on CI), e.g.
//! `SYNC_CHURN_SECS=30 cargo test -p sync-tests --test promises` for a longer run by hand.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt, ResourceExt};
use sync_tests::skew::{
    Ledger, LedgerSpec, MUTATING_POLICY_APISERVER_ARGS, install_tier_silver_policy,
    ledger_local_crd, ledger_remote_crd,
};
use sync_tests::{AuditEvent, ControlPlane, Pair, install_crd, unique_name};

/// How long the remote specs churn: `SYNC_CHURN_SECS` (whole seconds), else 8 s, short enough
/// for CI. Set e.g. `SYNC_CHURN_SECS=30` for a longer run by hand.
fn churn_duration() -> Duration {
    let secs = std::env::var("SYNC_CHURN_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(8);
    Duration::from_secs(secs)
}

/// A small xorshift generator: the churn needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((t ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const OBJECTS: usize = 50;
const CHURN_TASKS: usize = 3;
const SAMPLERS: usize = 2;
const REMOTE_GEN: &str = "cloud.teleport.dev/sync-remote-generation";

fn object_name(i: usize) -> String {
    format!("db-{i:02}")
}

/// The spec fields the controller copies (`local_note` is local-only).
fn copied(spec: &DatabaseSpec) -> (String, Option<i32>) {
    (spec.size.clone(), spec.replicas)
}

fn remote_generation_annotation(o: &Database) -> Option<i64> {
    annotation(o, REMOTE_GEN).and_then(|v| v.parse().ok())
}

/// The objects that are not current: `sync-remote-generation != metadata.generation`, or the
/// local spec differs from the remote spec. Empty when all are current.
async fn not_current(remote: &Api<Database>, local: &Api<Database>) -> Result<Vec<String>, String> {
    let r = remote
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let l: BTreeMap<String, Database> = local
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .map(|o| (o.name_any(), o))
        .collect();
    let mut behind = Vec::new();
    for ro in &r.items {
        let name = ro.name_any();
        let rg = remote_generation_annotation(ro);
        let lspec = l.get(&name).map(|lo| copied(&lo.spec));
        if rg != ro.metadata.generation || lspec.as_ref() != Some(&copied(&ro.spec)) {
            behind.push(format!(
                "{name}: generation {:?}, sync-remote-generation {rg:?}, remote spec {:?}, local spec {lspec:?}",
                ro.metadata.generation,
                copied(&ro.spec)
            ));
        }
    }
    if r.items.len() != OBJECTS {
        behind.push(format!("{} remote objects, not {OBJECTS}", r.items.len()));
    }
    Ok(behind)
}

/// What the samplers saw: samples taken, samples marked current, and violations.
#[derive(Default)]
struct Tally {
    samples: u64,
    current: u64,
    violations: Vec<String>,
}

impl Tally {
    fn add(&mut self, sample: Sample) {
        match sample {
            Sample::Failed => {}
            Sample::NotMarkedCurrent => self.samples += 1,
            Sample::MarkedCurrent(violation) => {
                self.samples += 1;
                self.current += 1;
                self.violations.extend(violation);
            }
        }
    }
}

enum Sample {
    /// A read failed.
    Failed,
    /// R1 and R2 do not both have generation G and `sync-remote-generation == G`.
    NotMarkedCurrent,
    /// They do; with a violation when L does not have the spec of R1.
    MarkedCurrent(Option<String>),
}

/// One sample of `name`: reads remote (R1), local (L), remote (R2), in that order.
async fn sample(remote: &Api<Database>, local: &Api<Database>, name: &str) -> Sample {
    let (Ok(r1), Ok(l), Ok(r2)) = (
        remote.get(name).await,
        local.get(name).await,
        remote.get(name).await,
    ) else {
        return Sample::Failed;
    };
    let g = r1.metadata.generation;
    let marked_current = g.is_some()
        && r2.metadata.generation == g
        && remote_generation_annotation(&r1) == g
        && remote_generation_annotation(&r2) == g;
    if !marked_current {
        return Sample::NotMarkedCurrent;
    }
    Sample::MarkedCurrent((copied(&l.spec) != copied(&r1.spec)).then(|| {
        format!(
            "{name}: remote generation {g:?} marked current (sync-remote-generation {g:?}) with spec {:?}, but local spec {:?} (local generation {:?})",
            copied(&r1.spec),
            copied(&l.spec),
            l.metadata.generation
        )
    }))
}

/// Test logging from `RUST_LOG`, as `harness::setup` sets it up, without the shared pair.
fn logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off,sync_core=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// 1. The currency contract of SPEC §3.6 under churn.
///
/// For `SYNC_CHURN_SECS` (default 8 s): three churn tasks change the specs of 50 objects in
/// bursts of patches 5–20 ms apart, a chaser changes a spec again right after the controller
/// marks it current, a local controller reports status for every new local generation
/// (observedGeneration = it), and remote labels change now and then. Samplers read remote
/// (R1), local (L), remote (R2). Whenever R1 and R2 have the same generation G and both say
/// `sync-remote-generation == G`, the management plane may treat the object as current for G,
/// so L must have the spec of G (the copied fields; `local_note` is local-only). Once the
/// churn stops, every object becomes current within 30 s: `sync-remote-generation ==
/// generation` and the local spec equal to the remote spec.
///
/// The bug this catches: a status patch's answer carries a newer remote spec (G+1) that the
/// pass never applied, and the controller records `sync-remote-generation = G+1`, after which
/// nothing ever applies G+1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_currency_contract_holds_under_churn_and_every_object_ends_current() {
    let t = test_env("churn").await;
    let ctl = start::<Database>(pair(), &t.name, |c| c.namespace_prefix(t.prefix())).await;
    let (remote, local) = (t.remote(&t.ns), t.local(&t.ns));
    for i in 0..OBJECTS {
        let mut o = db(&object_name(i), "s0");
        o.spec.replicas = Some(1);
        t.create(&t.ns, &o).await;
    }
    eventually("all objects current before the churn", WAIT, || async {
        let behind = not_current(&remote, &local).await?;
        if behind.is_empty() {
            Ok(())
        } else {
            Err(behind.join("\n"))
        }
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let patches = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();

    // Churn: each task owns every CHURN_TASKS-th object and changes their specs in bursts: it
    // picks one of its objects and sends 5–25 spec patches, 5–20 ms apart without waiting for
    // the answers, each to a value never used before (so every patch is a new generation),
    // then waits for the answers and moves on. A burst lands remote changes while the
    // controller is mid-pass on that object; the quiet time after it leaves a wrongly recorded
    // generation in place long enough for the samplers and the final check to see it.
    for k in 0..CHURN_TASKS {
        let (remote, stop, patches) = (remote.clone(), stop.clone(), patches.clone());
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (k..OBJECTS).step_by(CHURN_TASKS).collect();
            let mut rng = Rng::new(k as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                let name = object_name(mine[rng.below(mine.len() as u64) as usize]);
                let mut sent = Vec::new();
                for _ in 0..5 + rng.below(21) {
                    let n = patches.fetch_add(1, Ordering::Relaxed) + 1;
                    let body = serde_json::json!({"spec": {"size": format!("s{n}"), "replicas": (n % 7) as i32 + 1}});
                    let (remote, name) = (remote.clone(), name.clone());
                    sent.push(tokio::spawn(async move {
                        if let Err(e) = remote
                            .patch(&name, &PatchParams::default(), &Patch::Merge(body))
                            .await
                        {
                            eprintln!("churn patch of {name} failed: {e}");
                        }
                    }));
                    tokio::time::sleep(Duration::from_millis(5 + rng.below(16))).await;
                }
                for patch in sent {
                    patch.await.unwrap();
                }
            }
        }));
    }

    // The chaser: when the watch shows the controller marking an object current
    // (`sync-remote-generation == generation`), it changes that spec again at once, half of
    // the time. That change lands while the controller is still in the same pass (its status
    // write comes right after the generation annotations), the moment a controller must not
    // take a spec it has not applied for one it has.
    {
        let (remote, stop, patches) = (remote.clone(), stop.clone(), patches.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(77);
            let mut stream = watcher(remote.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            let mut sent = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(Ok(o))) =
                    tokio::time::timeout(Duration::from_millis(200), stream.next()).await
                else {
                    continue;
                };
                if o.metadata.generation.is_none()
                    || remote_generation_annotation(&o) != o.metadata.generation
                    || rng.below(2) == 0
                {
                    continue;
                }
                let n = patches.fetch_add(1, Ordering::Relaxed) + 1;
                let body = serde_json::json!({"spec": {"size": format!("s{n}"), "replicas": (n % 7) as i32 + 1}});
                let (remote, name) = (remote.clone(), o.name_any());
                sent.push(tokio::spawn(async move {
                    let _ = remote
                        .patch(&name, &PatchParams::default(), &Patch::Merge(body))
                        .await;
                }));
            }
            for patch in sent {
                patch.await.unwrap();
            }
        }));
    }

    // Now and then a remote label changes (metadata only: no new generation).
    {
        let (remote, stop) = (remote.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(99);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let i = rng.below(OBJECTS as u64) as usize;
                let body = serde_json::json!({"metadata": {"labels": {"churn": n.to_string()}}});
                let _ = remote
                    .patch(
                        &object_name(i),
                        &PatchParams::default(),
                        &Patch::Merge(body),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(100 + rng.below(200))).await;
            }
        }));
    }

    // The local controller: status for every new local generation, observedGeneration = it.
    // It keeps running after the churn, as a real one would.
    let local_controller = {
        let local = local.clone();
        tokio::spawn(async move {
            let mut stream = watcher(local.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(item) = stream.next().await {
                let Ok(o) = item else { continue };
                let g = o.metadata.generation;
                if g.is_none() || o.status.as_ref().and_then(|s| s.observed_generation) == g {
                    continue;
                }
                let body = serde_json::json!({"status": {"observedGeneration": g, "phase": format!("Ready-{}", g.unwrap_or_default())}});
                let _ = local
                    .patch_status(&o.name_any(), &PatchParams::default(), &Patch::Merge(body))
                    .await;
            }
        })
    };

    // The samplers. Each sample reads R1, L, R2 (see `sample`). Round-robin samplers cover
    // every object; one more samples an object as soon as its watch shows the controller
    // marking it current, which is when a wrongly recorded generation is written.
    let mut samplers: Vec<_> = (0..SAMPLERS)
        .map(|k| {
            let (remote, local, stop) = (remote.clone(), local.clone(), stop.clone());
            tokio::spawn(async move {
                let mine: Vec<usize> = (k..OBJECTS).step_by(SAMPLERS).collect();
                let mut tally = Tally::default();
                for i in mine.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tally.add(sample(&remote, &local, &object_name(*i)).await);
                }
                tally
            })
        })
        .collect();
    samplers.push({
        let (remote, local, stop) = (remote.clone(), local.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut stream = watcher(remote.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(item)) =
                    tokio::time::timeout(Duration::from_millis(200), stream.next()).await
                else {
                    continue;
                };
                let Ok(o) = item else { continue };
                if o.metadata.generation.is_some()
                    && remote_generation_annotation(&o) == o.metadata.generation
                {
                    tally.add(sample(&remote, &local, &o.name_any()).await);
                }
            }
            tally
        })
    });

    tokio::time::sleep(churn_duration()).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let mut tally = Tally::default();
    for sampler in samplers {
        let t = sampler.await.unwrap();
        tally.samples += t.samples;
        tally.current += t.current;
        tally.violations.extend(t.violations);
    }
    let Tally {
        samples,
        current: current_samples,
        violations,
    } = tally;
    eprintln!(
        "churn: {} spec patches in {:?}; {samples} samples, {current_samples} marked current, {} violations",
        patches.load(Ordering::Relaxed),
        churn_duration(),
        violations.len()
    );

    // After the churn: every object current within a bound.
    let bound = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + bound;
    let behind = loop {
        let behind = not_current(&remote, &local)
            .await
            .unwrap_or_else(|e| vec![e]);
        if behind.is_empty() || tokio::time::Instant::now() >= deadline {
            break behind;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    local_controller.abort();
    ctl.stop().await;

    let shown = |v: &[String]| -> String {
        v.iter()
            .take(10)
            .map(|s| format!("\n  {s}"))
            .collect::<String>()
    };
    assert!(
        violations.is_empty() && behind.is_empty(),
        "currency contract broken: {} of {current_samples} samples marked current had a stale local spec:{}\n\
         {} of {OBJECTS} objects not current {bound:?} after the churn stopped:{}",
        violations.len(),
        shown(&violations),
        behind.len(),
        shown(&behind)
    );
}

/// The status writes and updates of `user` on `resource`/`name`, with `subresource`.
fn writes_to<'a>(
    events: &'a [AuditEvent],
    user: &str,
    resource: &str,
    subresource: &str,
    name: &str,
) -> Vec<&'a AuditEvent> {
    events
        .iter()
        .filter(|e| {
            e.user == user
                && e.resource == resource
                && e.subresource == subresource
                && e.name == name
                && matches!(e.verb.as_str(), "update" | "patch")
        })
        .collect()
}

async fn warning_events(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<String> {
    events_for(client, ns, name, reason)
        .await
        .into_iter()
        .map(|e| {
            format!(
                "{:?} {:?} x{:?}: {}",
                e.type_,
                e.reason,
                e.series.as_ref().map(|s| s.count),
                e.note.unwrap_or_default()
            )
        })
        .collect()
}

/// The 30-second window of the "not kept" promises.
const WINDOW: Duration = Duration::from_secs(30);

/// 2. A remote status the server does not keep.
///
/// The remote CRD of `Ledger` lacks `status.detail`, which the local status has: every status
/// patch that carries it is answered with a status without it. The controller patches the
/// remote status at most twice for that in 30 s and reports it once, with a Warning event
/// `RemoteStatusNotKept` on the remote object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_status_field_the_remote_crd_prunes_is_reported_once_not_written_forever() {
    let pair = setup().await;
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    install_crd(&r, ledger_remote_crd()).await.unwrap();
    install_crd(&l, ledger_local_crd()).await.unwrap();
    assert_eq!(Ledger::crd().spec.group, "skew.test");

    let name = unique_name("skew");
    let ns = format!("{name}-a");
    create_namespace(&r, &ns).await;
    let ctl = start::<Ledger>(pair, &name, |c| c.namespace_prefix(format!("{name}-"))).await;
    let (remote, local) = (
        Api::<Ledger>::namespaced(r.clone(), &ns),
        Api::<Ledger>::namespaced(l.clone(), &ns),
    );
    let ledger = Ledger::new(
        "books",
        LedgerSpec {
            size: "small".into(),
            local_note: None,
        },
    );
    remote
        .create(&PostParams::default(), &ledger)
        .await
        .unwrap();
    let copy = eventually("the local copy, synced", WAIT, || async {
        let ro = remote.get("books").await.map_err(|e| e.to_string())?;
        let lo = local
            .get_opt("books")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no local copy")?;
        if annotation(&ro, REMOTE_GEN) == ro.metadata.generation.map(|g| g.to_string()) {
            Ok(lo)
        } else {
            Err(format!("{:?}", ro.metadata.annotations))
        }
    })
    .await;

    // The local controller writes its status once, with the field the remote CRD lacks.
    let since = marks();
    let g = copy.metadata.generation.unwrap();
    let status = serde_json::json!({"status": {"observedGeneration": g, "phase": "Ready", "detail": "only-the-local-crd-has-this"}});
    local
        .patch_status("books", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    tokio::time::sleep(WINDOW).await;

    let remote_events = pair.remote.audit_events_since(&since.0).unwrap();
    let status_patches = writes_to(&remote_events, &ctl.user, "ledgers", "status", "books");
    let all_writes = writes_on_both_since(&since, &ctl.user);
    let warnings = warning_events(&r, &ns, "books", "RemoteStatusNotKept").await;
    let remote_status = remote.get("books").await.unwrap().status;
    ctl.stop().await;

    eprintln!(
        "remote status not kept: {} status patches, {} writes in all, in {WINDOW:?}; RemoteStatusNotKept events: {warnings:?}; remote status {remote_status:?}",
        status_patches.len(),
        all_writes.len()
    );
    assert!(
        status_patches.len() <= 2 && warnings.len() == 1,
        "in {WINDOW:?}: {} remote status patches of books (at most 2 allowed), {} writes by the controller in all; \
         {} RemoteStatusNotKept events (exactly 1 expected): {warnings:?}; the first writes:{}",
        status_patches.len(),
        all_writes.len(),
        warnings.len(),
        describe(&status_patches.iter().take(5).copied().collect::<Vec<_>>())
    );
    assert_eq!(
        remote_status.and_then(|s| s.phase).as_deref(),
        Some("Ready"),
        "the status fields the remote keeps still go up"
    );
}

/// 3. A local write the server does not keep.
///
/// A dedicated pair whose local API server runs `MutatingAdmissionPolicy` (beta in 1.35, off by
/// default: [`MUTATING_POLICY_APISERVER_ARGS`]) with a policy that turns the label
/// `tier: gold` into `tier: silver` on every Database. The remote object has `tier: gold`, so
/// every local update that copies it is rewritten. The controller updates the local object at
/// most twice for that in 30 s and reports it once, with a Warning event `LocalWriteNotKept`
/// on the remote object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_write_that_admission_rewrites_is_reported_once_not_written_forever() {
    logging();
    let (remote_plane, local_plane) = tokio::try_join!(
        ControlPlane::start("remote"),
        ControlPlane::start_with_apiserver_args("local", MUTATING_POLICY_APISERVER_ARGS),
    )
    .unwrap();
    let pair = Pair {
        remote: remote_plane,
        local: local_plane,
    };
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    install_crds(&r, &l).await;
    install_tier_silver_policy(&l, "tier-silver", "acme.test", "databases").await;

    // The policy acts once the API server has loaded it: probe with dry-run creates.
    let probe_ns = unique_name("probe");
    create_namespace(&l, &probe_ns).await;
    let probe_api = Api::<Database>::namespaced(l.clone(), &probe_ns);
    eventually("the admission policy to rewrite tier", WAIT, || async {
        let mut o = db("probe", "small");
        o.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
        let pp = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let made = probe_api.create(&pp, &o).await.map_err(|e| e.to_string())?;
        match made.labels().get("tier").map(String::as_str) {
            Some("silver") => Ok(()),
            other => Err(format!("tier {other:?}")),
        }
    })
    .await;

    let name = unique_name("rewrite");
    let ns = format!("{name}-a");
    create_namespace(&r, &ns).await;
    let ctl = start::<Database>(&pair, &name, |c| c.namespace_prefix(format!("{name}-"))).await;
    let since = (
        pair.remote.audit_mark().unwrap(),
        pair.local.audit_mark().unwrap(),
    );
    let mut o = db("orders", "small");
    o.metadata.labels = Some(
        [
            ("tier".to_string(), "gold".to_string()),
            ("team".to_string(), "blue".to_string()),
        ]
        .into(),
    );
    Api::<Database>::namespaced(r.clone(), &ns)
        .create(&PostParams::default(), &o)
        .await
        .unwrap();
    let local = Api::<Database>::namespaced(l.clone(), &ns);
    let copy = eventually("the local copy", WAIT, || async {
        local
            .get_opt("orders")
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no local copy".to_string())
    })
    .await;
    assert_eq!(
        copy.labels().get("tier").map(String::as_str),
        Some("silver"),
        "the local admission policy rewrites tier"
    );
    tokio::time::sleep(WINDOW).await;

    let local_events = pair.local.audit_events_since(&since.1).unwrap();
    let updates = writes_to(&local_events, &ctl.user, "databases", "", "orders");
    let writes = local_events.iter().filter(|e| e.user == ctl.user).count()
        + pair
            .remote
            .audit_events_since(&since.0)
            .unwrap()
            .iter()
            .filter(|e| e.user == ctl.user)
            .count();
    let warnings = warning_events(&r, &ns, "orders", "LocalWriteNotKept").await;
    let local_copy = local.get("orders").await.unwrap();
    ctl.stop().await;

    eprintln!(
        "local write not kept: {} local updates, {writes} writes in all, in {WINDOW:?}; LocalWriteNotKept events: {warnings:?}; local labels {:?}",
        updates.len(),
        local_copy.labels()
    );
    assert!(
        updates.len() <= 2 && warnings.len() == 1,
        "in {WINDOW:?}: {} updates of the local object orders (at most 2 allowed), {writes} writes by the controller in all; \
         {} LocalWriteNotKept events (exactly 1 expected): {warnings:?}; the first updates:{}",
        updates.len(),
        warnings.len(),
        describe(&updates.iter().take(5).copied().collect::<Vec<_>>())
    );
}
