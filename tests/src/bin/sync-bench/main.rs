//! `sync-bench`: how fast the reconciler converges on real control planes, how many writes it
//! makes, and what it costs. See BENCHMARKS.md at the repository root for figures.
//!
//! ```sh
//! cargo run --release -p sync-tests --bin sync-bench -- --objects 1000 --json bench.json
//! cargo run --release -p sync-tests --bin sync-bench -- --quick
//! ```
//!
//! It starts two control planes (or uses `--remote-kubeconfig`/`--local-kubeconfig`), runs the
//! reconciler in a child process of its own as a user of its own, a minimal local controller
//! in-process as another user, and then measures, in order:
//! 1. convergence of N new remote objects over M namespaces (a share of them sending a secret);
//! 2. the controller's writes in that time, from the API servers' audit logs;
//! 3. an idle window: writes and CPU with nothing changing;
//! 4. propagation latency of K single-object spec updates;
//! 5. the ceiling: the same writes by a plain client, without watching.
//!
//! With `--delete-all`, between 4 and 5 the management plane deletes every object of the run
//! at once, and the bench times the controller's clean-up within its deletion budget
//! (`--deletion-budget`), with its CPU, writes and Warning events.
//!
//! During 1, K objects synced beforehand have their local status changed a few times a second
//! (the status stage during the burst), and with `--foreign-factor F` the management cluster
//! also holds F × N objects of another region, created before the clock.
//!
//! It exits non-zero when convergence fails or a step errs; the figures never fail it.

// The figures are one `json!` literal, deeper than the default limit.
#![recursion_limit = "256"]

mod ceiling;
mod child;
mod deletion;
mod layout;
mod local_controller;
mod observer;
mod probes;
mod procstat;
mod writes;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sync_core::DeletionBudget;
use sync_tests::harness::{Database, grant, install_crds};
use sync_tests::{AuditMark, ControlPlane, Pair};
use tokio::time::Instant;

use crate::layout::Layout;
use crate::observer::{Observer, key};
use crate::procstat::{CpuMeter, Sample};
use crate::writes::Writes;

/// Benchmark of the sync reconciler against real control planes.
#[derive(Parser, Debug)]
#[command(name = "sync-bench", version)]
struct Args {
    /// Number of remote objects N (default 1000; 200 with --quick).
    #[arg(long)]
    objects: Option<usize>,
    /// Number of namespaces M the objects are spread over (default N/10).
    #[arg(long)]
    namespaces: Option<usize>,
    /// Keys the controller reconciles in parallel; also the ceiling client's concurrency.
    #[arg(long, default_value_t = sync_core::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// A short run: N = 200 unless given, a 15 s idle window, 20 latency samples.
    #[arg(long)]
    quick: bool,
    /// Write the figures to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Use this cluster as the remote one instead of starting a control plane (with
    /// --local-kubeconfig). Audit logs are then unavailable, so writes are not counted.
    #[arg(long, requires = "local_kubeconfig")]
    remote_kubeconfig: Option<PathBuf>,
    /// Use this cluster as the local one (with --remote-kubeconfig).
    #[arg(long, requires = "remote_kubeconfig")]
    local_kubeconfig: Option<PathBuf>,
    /// Share of the objects that send a secret up (at most one per namespace).
    #[arg(long, default_value_t = 0.1)]
    secret_share: f64,
    /// Spec updates K for the propagation latency (default 100; 20 with --quick).
    #[arg(long)]
    updates: Option<usize>,
    /// Length of the idle window in seconds (default 60; 15 with --quick).
    #[arg(long)]
    idle_seconds: Option<u64>,
    /// Concurrency of the bench's own remote creates (the management plane's).
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Skip the two ceiling runs (their figures are then `null`), e.g. for a memory experiment.
    #[arg(long)]
    skip_ceiling: bool,
    /// Before the clock, also create F × N remote objects of another region (names ending in
    /// another suffix than the controller's), spread over the same namespaces; not timed.
    #[arg(long, default_value_t = 0)]
    foreign_factor: usize,
    /// Objects K synced before the clock whose local status is changed during the burst, to
    /// time the status stage under load (default 20; 10 with --quick; 0 turns it off).
    #[arg(long)]
    status_probes: Option<usize>,
    /// Interval between two status changes of the probes, all probes together.
    #[arg(long, default_value_t = 250)]
    status_interval_ms: u64,
    /// Give up on convergence after this many seconds (default 120 + N/10).
    #[arg(long)]
    timeout_seconds: Option<u64>,
    /// After the spec updates, delete every remote object of the run at once and time the
    /// controller's clean-up within its deletion budget (see --deletion-budget).
    #[arg(long)]
    delete_all: bool,
    /// The controller's deletion budget, MAX/WINDOW_SECONDS: at most MAX local deletions in
    /// any WINDOW_SECONDS (default: the library's, 20/60).
    #[arg(long, value_name = "MAX/WINDOW_SECONDS", value_parser = deletion::parse_budget)]
    deletion_budget: Option<DeletionBudget>,
    /// Rotate the API servers' audit logs at this many megabytes (default 100), e.g. 1 to check
    /// that rotated logs are counted.
    #[arg(long, value_name = "MB")]
    audit_log_maxsize_mb: Option<u32>,
    /// The controller's watches fill their caches with streaming lists (Kubernetes' WatchList)
    /// instead of paginated lists.
    #[arg(long)]
    streaming_lists: bool,
    /// After the controller has stopped (before the ceilings), start a fresh one on every
    /// object of the run and measure its first list: time to ready, CPU, peak RSS and RSS once
    /// settled (not with --delete-all, which leaves nothing to list).
    #[arg(long, conflicts_with = "delete_all")]
    restart_controller: bool,
    /// Internal: run as the controller child.
    #[arg(long, hide = true)]
    controller_child: bool,
    /// Internal: the controller child's user.
    #[arg(long, hide = true, default_value = CONTROLLER_USER)]
    controller_user: String,
    /// Internal: where the controller child writes its metrics.
    #[arg(long, hide = true)]
    metrics_out: Option<PathBuf>,
}

/// The controller's user: its writes are the ones counted.
const CONTROLLER_USER: &str = "sync-bench-controller";
/// The local controller's user: its writes are not counted.
const LOCAL_CONTROLLER_USER: &str = "sync-bench-local-controller";

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("start a tokio runtime");
    if args.controller_child {
        let (Some(remote), Some(local), Some(metrics_out)) = (
            args.remote_kubeconfig.as_deref(),
            args.local_kubeconfig.as_deref(),
            args.metrics_out.as_deref(),
        ) else {
            eprintln!("--controller-child needs both kubeconfigs and --metrics-out");
            return ExitCode::FAILURE;
        };
        let run = child::run(child::ChildArgs {
            user: &args.controller_user,
            remote_kubeconfig: remote,
            local_kubeconfig: local,
            concurrency: args.concurrency,
            deletion_budget: args.deletion_budget.unwrap_or_default(),
            metrics_out,
            streaming_lists: args.streaming_lists,
        });
        return match runtime.block_on(run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("controller child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sync-bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the run measures, resolved from the flags.
struct Plan {
    layout: Layout,
    concurrency: usize,
    updates: usize,
    probes: usize,
    idle: Duration,
    timeout: Duration,
}

fn plan(args: &Args, prefix: &str) -> Plan {
    let objects = args
        .objects
        .unwrap_or(if args.quick { 200 } else { 1000 })
        .max(1);
    let namespaces = args.namespaces.unwrap_or(objects.div_ceil(10));
    Plan {
        layout: Layout::new(prefix, objects, namespaces, args.secret_share),
        concurrency: args.concurrency.max(1),
        updates: args.updates.unwrap_or(if args.quick { 20 } else { 100 }),
        probes: args
            .status_probes
            .unwrap_or(if args.quick { 10 } else { 20 }),
        idle: Duration::from_secs(
            args.idle_seconds
                .unwrap_or(if args.quick { 15 } else { 60 }),
        ),
        timeout: Duration::from_secs(args.timeout_seconds.unwrap_or(120 + objects as u64 / 10)),
    }
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("[sync-bench] {msg}");
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The `p` quantile (0..=1) of `v`, nearest rank.
fn quantile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// A point in both audit logs (remote, local), when they can be read.
type Marks = Option<(AuditMark, AuditMark)>;

/// Both planes' audit logs, where they can be read.
struct Audit<'a> {
    pair: &'a Pair,
    available: bool,
}

impl Audit<'_> {
    fn mark(&self) -> Marks {
        if !self.available {
            return None;
        }
        Some((
            self.pair.remote.audit_mark().ok()?,
            self.pair.local.audit_mark().ok()?,
        ))
    }

    /// The controller's writes since `from`, and a mark after them. Writes on the status
    /// probes are left out: [`Audit::probe_writes`] counts them.
    fn since(&self, from: Marks) -> Result<(Option<Writes>, Marks)> {
        let (w, _, next) = self.since_split(from)?;
        Ok((w, next))
    }

    /// The controller's writes since `from` on the run's objects, those on the status probes,
    /// and a mark after them.
    fn since_split(&self, from: Marks) -> Result<(Option<Writes>, Option<Writes>, Marks)> {
        let Some((r, l)) = from else {
            return Ok((None, None, None));
        };
        let mut remote = self.pair.remote.audit_events_since(&r)?;
        let mut local = self.pair.local.audit_events_since(&l)?;
        let next = self.mark();
        let is_probe = |e: &sync_tests::AuditEvent| e.name.starts_with(layout::PROBE_PREFIX);
        let probes = Writes::of(
            CONTROLLER_USER,
            &remote
                .iter()
                .filter(|e| is_probe(e))
                .cloned()
                .collect::<Vec<_>>(),
            &local
                .iter()
                .filter(|e| is_probe(e))
                .cloned()
                .collect::<Vec<_>>(),
        );
        remote.retain(|e| !is_probe(e));
        local.retain(|e| !is_probe(e));
        Ok((
            Some(Writes::of(CONTROLLER_USER, &remote, &local)),
            Some(probes),
            next,
        ))
    }
}

/// The rules of the minimal local controller.
fn local_controller_rules() -> Vec<PolicyRule> {
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    };
    vec![
        rule("acme.test", &["databases"], &["get", "list", "watch"]),
        rule("acme.test", &["databases/status"], &["patch"]),
        rule("", &["secrets"], &["create"]),
    ]
}

async fn bench(args: Args) -> Result<()> {
    let started = Instant::now();
    let loadavg_start = loadavg();
    let pair = match (&args.remote_kubeconfig, &args.local_kubeconfig) {
        (Some(r), Some(l)) => Pair {
            remote: ControlPlane::external("remote", r),
            local: ControlPlane::external("local", l),
        },
        _ => {
            log("starting two control planes");
            let maxsize = args
                .audit_log_maxsize_mb
                .map(|mb| format!("--audit-log-maxsize={mb}"));
            Pair::start_with_apiserver_args(&maxsize.iter().map(String::as_str).collect::<Vec<_>>())
                .await
                .context("start the control planes")?
        }
    };
    let managed = pair.remote.dir().is_some() && pair.local.dir().is_some();
    let prefix = |p: &str| {
        if managed {
            p.to_owned()
        } else {
            sync_tests::unique_name(p)
        }
    };
    let plan = plan(&args, &prefix("bench"));
    let layout = &plan.layout;
    log(format!(
        "{} objects in {} namespaces ({} with a secret), concurrency {}",
        layout.objects, layout.namespaces, layout.secrets, plan.concurrency
    ));
    let admin_remote = pair.remote.client().await?;
    let admin_local = pair.local.client().await?;
    install_crds(&admin_remote, &admin_local).await;

    // The controller's and the local controller's identities.
    let work = tempfile::tempdir()?;
    let budget = args.deletion_budget.unwrap_or_default();
    let config = child::config(CONTROLLER_USER, plan.concurrency, budget);
    let (child_remote, child_local, local_controller_client) = if managed {
        grant(
            &admin_remote,
            CONTROLLER_USER,
            sync_core::rbac::remote_rules::<Database>(&config),
        )
        .await;
        grant(
            &admin_local,
            CONTROLLER_USER,
            sync_core::rbac::local_rules::<Database>(&config, false),
        )
        .await;
        grant(
            &admin_local,
            LOCAL_CONTROLLER_USER,
            local_controller_rules(),
        )
        .await;
        (
            pair.remote.kubeconfig_for_user(CONTROLLER_USER, &[])?,
            pair.local.kubeconfig_for_user(CONTROLLER_USER, &[])?,
            pair.local.client_as(LOCAL_CONTROLLER_USER, &[]).await?,
        )
    } else {
        (
            pair.remote.kubeconfig().to_owned(),
            pair.local.kubeconfig().to_owned(),
            admin_local.clone(),
        )
    };

    log("creating remote namespaces and remote secrets (before the clock)");
    ceiling::prepare_remote(&admin_remote, layout, args.create_concurrency).await?;
    if plan.probes > 0 {
        Api::<k8s_openapi::api::core::v1::Namespace>::all(admin_remote.clone())
            .create(
                &PostParams::default(),
                &k8s_openapi::api::core::v1::Namespace {
                    metadata: kube::core::ObjectMeta {
                        name: Some(layout.probe_namespace()),
                        ..kube::core::ObjectMeta::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .context("create the probes' remote namespace")?;
    }
    let foreign = args.foreign_factor * layout.objects;
    let mut foreign_create_seconds = 0.0;
    if foreign > 0 {
        log(format!(
            "creating {foreign} remote objects of another region (before the clock)"
        ));
        let t = Instant::now();
        ceiling::for_each(foreign, args.create_concurrency.max(64), |j| {
            let api = Api::<Database>::namespaced(admin_remote.clone(), &layout.namespace_of(j));
            let o = layout.foreign_object(j);
            async move {
                api.create(&PostParams::default(), &o)
                    .await
                    .context("create a foreign remote object")?;
                Ok(())
            }
        })
        .await?;
        foreign_create_seconds = t.elapsed().as_secs_f64();
        log(format!("created in {foreign_create_seconds:.1}s"));
    }
    let observer = Observer::start(admin_remote.clone(), admin_local.clone()).await?;
    let local_controller = local_controller::start(local_controller_client.clone());
    let metrics_out = work.path().join("controller-metrics.txt");
    let child_args = child::ChildArgs {
        user: CONTROLLER_USER,
        remote_kubeconfig: &child_remote,
        local_kubeconfig: &child_local,
        concurrency: plan.concurrency,
        deletion_budget: budget,
        metrics_out: &metrics_out,
        streaming_lists: args.streaming_lists,
    };
    let controller = child::Controller::spawn(child_args).await?;
    let sample = || procstat::sample(controller.pid).unwrap_or_default();
    // Where the machine's CPU goes while converging and in the pipeline ceiling.
    let mut meter = CpuMeter::default();
    if managed {
        for (side, plane) in [("remote", &pair.remote), ("local", &pair.local)] {
            for (component, pid) in plane.pids()? {
                meter.add(format!("{side} {component}"), pid);
            }
        }
    }
    meter.add("controller", controller.pid);
    meter.add("bench", std::process::id());
    let cpu_s = |a: Sample, b: Sample| b.cpu.saturating_sub(a.cpu).as_secs_f64();
    let at_ready = sample();
    let audit = Audit {
        pair: &pair,
        available: managed,
    };

    // The status probes: synced before the clock, then no longer tracked.
    let probe_names: Vec<String> = (0..plan.probes).map(Layout::probe_name).collect();
    if plan.probes > 0 {
        log(format!("{} status probes (before the clock)", plan.probes));
        let ns = layout.probe_namespace();
        let api = Api::<Database>::namespaced(admin_remote.clone(), &ns);
        let keys: Vec<String> = probe_names.iter().map(|n| key(&ns, n)).collect();
        observer.track(keys.iter().map(|k| (k.clone(), false)).collect());
        for k in 0..plan.probes {
            api.create(&PostParams::default(), &layout.probe_object(k))
                .await
                .context("create a status probe")?;
        }
        for k in &keys {
            tokio::time::timeout(
                Duration::from_secs(120),
                observer.when_converged(Some(k.clone())),
            )
            .await
            .with_context(|| format!("status probe {k} not synced within 120 s"))??;
        }
        observer.untrack(keys);
    }

    // 1. Convergence.
    observer.track(
        (0..layout.objects)
            .map(|j| {
                (
                    key(&layout.namespace_of(j), &layout.name(j)),
                    layout.has_secret(j),
                )
            })
            .collect(),
    );
    let all_converged = observer.when_converged(None);
    let mark = audit.mark();
    let cpu_before = sample();
    log(format!("creating {} remote objects", layout.objects));
    let (stop_probes, probes_stopped) = tokio::sync::watch::channel(false);
    let probing = tokio::spawn(probes::run(
        local_controller_client.clone(),
        observer.clone(),
        layout.probe_namespace(),
        probe_names.clone(),
        Duration::from_millis(args.status_interval_ms.max(1)),
        probes_stopped,
    ));
    let cpu_at_t0 = meter.snapshot();
    let t0 = Instant::now();
    ceiling::for_each(layout.objects, args.create_concurrency, |j| {
        let api = Api::<Database>::namespaced(admin_remote.clone(), &layout.namespace_of(j));
        let o = layout.remote_object(j);
        let observer = observer.clone();
        let k = key(&layout.namespace_of(j), &layout.name(j));
        async move {
            api.create(&PostParams::default(), &o)
                .await
                .context("create a remote object")?;
            observer.created(k, Instant::now());
            Ok(())
        }
    })
    .await?;
    let create_seconds = t0.elapsed().as_secs_f64();
    log(format!(
        "created in {create_seconds:.1}s; waiting for convergence"
    ));
    let converged_at = match tokio::time::timeout(
        plan.timeout.saturating_sub(t0.elapsed()),
        all_converged,
    )
    .await
    {
        Ok(Ok(at)) => at,
        _ => {
            let pending = observer.pending().await;
            let (writes, _) = audit.since(mark)?;
            bail!(
                "not converged within {:?}: {} of {} objects pending, e.g. {:?}; controller writes so far: {}",
                plan.timeout,
                pending.len(),
                layout.objects,
                &pending[..pending.len().min(10)],
                writes.map_or("unknown".to_owned(), |w| w.total().to_string()),
            );
        }
    };
    let converge_seconds = converged_at.saturating_duration_since(t0).as_secs_f64();
    let cpu_converged = sample();
    let converge_cpu_split = cpu_at_t0.split_until(&meter.snapshot());
    log(format!("converged in {converge_seconds:.2}s"));
    let stages = observer.stages().await;
    let _ = stop_probes.send(true);
    let probed = probing.await.context("the status probes panicked")??;
    // Writes a pass makes right after the last object converged still count as convergence's.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (converge_writes, probe_writes, mark) = audit.since_split(mark)?;

    // 2. Idle.
    log(format!("idle window of {}s", plan.idle.as_secs()));
    let idle_before = sample();
    tokio::time::sleep(plan.idle).await;
    let idle_after = sample();
    let (idle_writes, mark) = audit.since(mark)?;

    // 3. Propagation latency of single-object spec updates.
    log(format!("{} single-object spec updates", plan.updates));
    let mut latencies = Vec::new();
    let mut round_trips = Vec::new();
    for i in 0..plan.updates {
        let j = (i * 7919) % layout.objects;
        let (ns, name) = (layout.namespace_of(j), layout.name(j));
        let k = key(&ns, &name);
        let size = format!("u{i}");
        let seen = observer.expect_local_size(k.clone(), size.clone());
        let api = Api::<Database>::namespaced(admin_remote.clone(), &ns);
        api.patch(
            &layout.remote_name(j),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": size}})),
        )
        .await
        .context("update a remote spec")?;
        let ack = Instant::now();
        let seen = tokio::time::timeout(Duration::from_secs(30), seen)
            .await
            .with_context(|| format!("update {i} of {k} not seen locally within 30 s"))??;
        latencies.push(seen.saturating_duration_since(ack).as_secs_f64() * 1000.0);
        let done = tokio::time::timeout(
            Duration::from_secs(30),
            observer.when_converged(Some(k.clone())),
        )
        .await
        .with_context(|| format!("update {i} of {k} did not converge within 30 s"))??;
        round_trips.push(done.saturating_duration_since(ack).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (update_writes, _) = audit.since(mark)?;

    // 4. Cost (before the deletion phase), the deletion phase, then stop the controllers.
    let at_end = sample();
    let deletion = match args.delete_all {
        false => None,
        true => {
            let windows = (layout.objects + layout.namespaces)
                .div_ceil(budget.max_deletions.max(1) as usize) as u32;
            let timeout = budget.window * (windows + 1)
                + Duration::from_secs(120 + layout.objects as u64 / 10);
            log(format!(
                "deleting the {} remote objects at once (budget {} deletions per {:?})",
                layout.objects, budget.max_deletions, budget.window
            ));
            let events_before = deletion::EventCounts::list(&admin_remote, layout).await?;
            let mark = audit.mark();
            let before = sample();
            let phase = deletion::run(
                &admin_remote,
                &admin_local,
                layout,
                &observer,
                args.create_concurrency,
                timeout,
            )
            .await?;
            let after = sample();
            log(format!("cleaned up in {:.1}s", phase.seconds));
            // Late writes of the last passes, and Events sent after the last release.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (writes, _) = audit.since(mark)?;
            let events_after = deletion::EventCounts::list(&admin_remote, layout).await?;
            Some((
                phase,
                writes,
                cpu_s(before, after),
                after,
                events_before,
                events_after,
            ))
        }
    };
    let metrics = controller.stop().await?;
    let restart = if args.restart_controller {
        log("restart: a fresh controller lists every object of the run");
        Some(restart(child_args).await?)
    } else {
        None
    };
    drop(local_controller);
    // The ceilings run without the bench's watches, as a plain client would.
    drop(observer);
    let reconciles = child::reconciles_by_outcome(&metrics);
    let cached = child::cached_objects(&metrics);

    // 5. The ceilings, on fresh namespaces, with no controller running.
    let (mut ceiling_seconds, mut pipeline_seconds) = (f64::NAN, f64::NAN);
    let mut pipeline_cpu_split = Value::Null;
    if !args.skip_ceiling {
        log("ceiling: the controller's minimal writes by a plain client");
        let ceiling_layout = layout.with_prefix(&prefix("ceil"));
        ceiling_seconds = ceiling::controller_writes(
            &admin_remote,
            &admin_local,
            &ceiling_layout,
            plan.concurrency,
        )
        .await?
        .as_secs_f64();
        log("ceiling: every write of the pipeline by a plain client");
        let pipeline_layout = layout.with_prefix(&prefix("pipe"));
        let (seconds, split) = ceiling::pipeline(
            &admin_remote,
            &admin_local,
            &pipeline_layout,
            plan.concurrency,
            &meter,
        )
        .await?;
        pipeline_seconds = seconds.as_secs_f64();
        pipeline_cpu_split = split;
    }

    let n = layout.objects as f64;
    let objects_per_second = n / converge_seconds;
    let ceiling_ops = n / ceiling_seconds;
    let pipeline_ops = n / pipeline_seconds;
    // 1 local create and 1 remote metadata patch and 1 remote status patch per object, 1
    // namespace create per namespace, and per secret 1 remote secret update and 1 remote
    // metadata patch recording its version.
    let minimum = 3 * layout.objects + layout.namespaces + 2 * layout.secrets;
    let converge_cpu = cpu_s(cpu_before, cpu_converged);
    let mut report = json!({
        "objects": layout.objects,
        "namespaces": layout.namespaces,
        "objects_with_secret": layout.secrets,
        "concurrency": plan.concurrency,
        "create_concurrency": args.create_concurrency,
        "quick": args.quick,
        "remote_suffix": layout::REMOTE_SUFFIX,
        "foreign_factor": args.foreign_factor,
        "foreign_objects": foreign,
        "foreign_create_seconds": foreign_create_seconds,
        "controller_cached_objects_at_stop": cached.iter().map(|(c, n)| (c.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "status_probes": plan.probes,
        "status_probe_interval_ms": args.status_interval_ms,
        "status_probe_writes": probed.writes,
        "status_probe_samples": probed.latencies_ms.len(),
        "status_probe_lost": probed.lost,
        "status_burst_p50_ms": quantile(&probed.latencies_ms, 0.5),
        "status_burst_p99_ms": quantile(&probed.latencies_ms, 0.99),
        "status_burst_max_ms": quantile(&probed.latencies_ms, 1.0),
        "status_probe_controller_writes": probe_writes.as_ref().map(Writes::to_json),
        "create_seconds": create_seconds,
        "converge_seconds": converge_seconds,
        "objects_per_second": objects_per_second,
        "writes": converge_writes.as_ref().map(Writes::to_json),
        "writes_total": converge_writes.as_ref().map(Writes::total),
        "writes_failed": converge_writes.as_ref().map(Writes::failed),
        "writes_minimum": minimum,
        "writes_per_object_total": converge_writes.as_ref().map(|w| w.total() as f64 / n),
        "writes_per_object_minimum": minimum as f64 / n,
        "ceiling_seconds": ceiling_seconds,
        "ceiling_objects_per_second": ceiling_ops,
        "ratio_to_ceiling": objects_per_second / ceiling_ops,
        "pipeline_ceiling_seconds": pipeline_seconds,
        "pipeline_ceiling_objects_per_second": pipeline_ops,
        "ratio_to_pipeline_ceiling": objects_per_second / pipeline_ops,
        "streaming_lists": args.streaming_lists,
        "restart": restart,
        "converge_cpu_split_seconds": converge_cpu_split,
        "pipeline_cpu_split_seconds": pipeline_cpu_split,
        "propagation_samples": latencies.len(),
        "propagation_p50_ms": quantile(&latencies, 0.5),
        "propagation_p99_ms": quantile(&latencies, 0.99),
        "propagation_max_ms": quantile(&latencies, 1.0),
        "round_trip_p50_ms": quantile(&round_trips, 0.5),
        "round_trip_p99_ms": quantile(&round_trips, 0.99),
        "update_writes": update_writes.as_ref().map(Writes::to_json),
        "update_writes_per_update": update_writes.as_ref().map(|w| w.total() as f64 / latencies.len().max(1) as f64),
        "idle_seconds": plan.idle.as_secs(),
        "idle_writes": idle_writes.as_ref().map(Writes::total),
        "idle_cpu_seconds": cpu_s(idle_before, idle_after),
        "converge_cpu_seconds": converge_cpu,
        "controller_cpu_ms_per_object": converge_cpu * 1000.0 / n,
        "controller_cpu_seconds": at_end.cpu.as_secs_f64(),
        "controller_startup_cpu_seconds": at_ready.cpu.as_secs_f64(),
        "controller_peak_rss_bytes": at_end.peak_rss_bytes,
        "controller_rss_bytes_at_start": at_ready.rss_bytes,
        "controller_rss_bytes_at_end": at_end.rss_bytes,
        "controller_reconciles": reconciles.iter().map(|(o, c)| (o.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "stage_create_to_local_p50_ms": quantile(&stages.create_to_local, 0.5),
        "stage_create_to_local_p99_ms": quantile(&stages.create_to_local, 0.99),
        "stage_local_to_annotated_p50_ms": quantile(&stages.local_to_annotated, 0.5),
        "stage_local_to_annotated_p99_ms": quantile(&stages.local_to_annotated, 0.99),
        "stage_status_up_p50_ms": quantile(&stages.status_up, 0.5),
        "stage_status_up_p99_ms": quantile(&stages.status_up, 0.99),
        "stage_create_to_converged_p50_ms": quantile(&stages.create_to_converged, 0.5),
        "stage_create_to_converged_p99_ms": quantile(&stages.create_to_converged, 0.99),
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg(),
        "run_seconds": started.elapsed().as_secs_f64(),
        "audit_available": managed,
        "delete_all": false,
    });
    if let (Some((phase, writes, cpu, after, before_ev, after_ev)), Value::Object(r)) =
        (&deletion, &mut report)
    {
        r.extend(
            deletion::Figures {
                layout,
                budget,
                phase,
                writes: writes.as_ref(),
                cpu_seconds: *cpu,
                peak_rss_bytes: after.peak_rss_bytes,
                events_before: before_ev,
                events_after: after_ev,
                trips: child::counter(&metrics, "sync_deletion_budget_trips_total"),
            }
            .to_json(),
        );
    }
    print_table(&report, converge_writes.as_ref());
    if let Some((_, writes, ..)) = &deletion {
        print_deletion(&report, writes.as_ref());
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
        log(format!("figures written to {}", path.display()));
    }
    Ok(())
}

/// Starts a fresh controller on everything the run left and measures its first list: the
/// time until it is ready, its CPU then, its peak RSS and its RSS after 10 s more (its first
/// passes over every key).
async fn restart(args: child::ChildArgs<'_>) -> Result<Value> {
    let started = Instant::now();
    let fresh = child::Controller::spawn(args).await?;
    let ready_seconds = started.elapsed().as_secs_f64();
    let at_ready = procstat::sample(fresh.pid).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled = procstat::sample(fresh.pid).unwrap_or_default();
    let metrics = fresh.stop().await?;
    Ok(json!({
        "ready_seconds": ready_seconds,
        "cpu_seconds_at_ready": at_ready.cpu.as_secs_f64(),
        "cpu_seconds_settled": settled.cpu.as_secs_f64(),
        "rss_bytes_at_ready": at_ready.rss_bytes,
        "peak_rss_bytes_at_ready": at_ready.peak_rss_bytes,
        "rss_bytes_settled": settled.rss_bytes,
        "peak_rss_bytes": settled.peak_rss_bytes,
        "cached_objects": child::cached_objects(&metrics).iter().map(|(c, n)| (c.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "reconciles": child::reconciles_by_outcome(&metrics).iter().map(|(o, c)| (o.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
    }))
}

/// A CPU split (`procstat::CpuSnapshot::split_until`) on one line, largest first.
fn split(v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return "n/a".to_owned();
    };
    let mut parts: Vec<(&String, f64)> = m
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    parts
        .iter()
        .map(|(k, s)| format!("{k} {s:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_json(path: &Path, report: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("write {}", path.display()))
}

fn print_table(r: &Value, writes: Option<&Writes>) {
    let num = |k: &str, unit: &str| match &r[k] {
        Value::Null => "n/a".to_owned(),
        Value::Number(n) if n.is_f64() => format!("{:.2}{unit}", n.as_f64().unwrap_or_default()),
        v => format!("{v}{unit}"),
    };
    let mib = |k: &str| format!("{:.1} MiB", r[k].as_f64().unwrap_or_default() / 1048576.0);
    let rows = [
        (
            "objects / namespaces / with secret",
            format!(
                "{} / {} / {}",
                r["objects"], r["namespaces"], r["objects_with_secret"]
            ),
        ),
        ("concurrency", num("concurrency", "")),
        ("remote creates acknowledged", num("create_seconds", " s")),
        ("converge_seconds", num("converge_seconds", " s")),
        ("objects_per_second", num("objects_per_second", "")),
        (
            "writes_per_object_total",
            num("writes_per_object_total", ""),
        ),
        (
            "writes_per_object_minimum",
            num("writes_per_object_minimum", ""),
        ),
        ("failed writes (of the total)", num("writes_failed", "")),
        (
            "ceiling_objects_per_second",
            num("ceiling_objects_per_second", ""),
        ),
        ("ratio_to_ceiling", num("ratio_to_ceiling", "")),
        (
            "pipeline_ceiling_objects_per_second",
            num("pipeline_ceiling_objects_per_second", ""),
        ),
        (
            "ratio_to_pipeline_ceiling",
            num("ratio_to_pipeline_ceiling", ""),
        ),
        (
            "foreign objects (other region, before clock)",
            format!(
                "{} (factor {}, created in {})",
                r["foreign_objects"],
                r["foreign_factor"],
                num("foreign_create_seconds", " s")
            ),
        ),
        (
            "controller cached objects at stop",
            r["controller_cached_objects_at_stop"].to_string(),
        ),
        (
            "status during burst p50 / p99 / max",
            format!(
                "{} / {} / {} ({} samples, {} lost, {} probes)",
                num("status_burst_p50_ms", " ms"),
                num("status_burst_p99_ms", " ms"),
                num("status_burst_max_ms", " ms"),
                r["status_probe_samples"],
                r["status_probe_lost"],
                r["status_probes"]
            ),
        ),
        ("propagation_p50_ms", num("propagation_p50_ms", " ms")),
        ("propagation_p99_ms", num("propagation_p99_ms", " ms")),
        (
            "round trip p50 / p99 (remote status current)",
            format!(
                "{} / {}",
                num("round_trip_p50_ms", " ms"),
                num("round_trip_p99_ms", " ms")
            ),
        ),
        (
            "writes per spec update",
            num("update_writes_per_update", ""),
        ),
        (
            "idle_writes",
            format!("{} in {} s", num("idle_writes", ""), r["idle_seconds"]),
        ),
        ("idle CPU", num("idle_cpu_seconds", " s")),
        (
            "controller CPU while converging",
            format!(
                "{} ({} ms/object)",
                num("converge_cpu_seconds", " s"),
                num("controller_cpu_ms_per_object", "")
            ),
        ),
        (
            "controller_cpu_seconds (whole run)",
            num("controller_cpu_seconds", " s"),
        ),
        (
            "controller_peak_rss_bytes",
            format!(
                "{} ({})",
                r["controller_peak_rss_bytes"],
                mib("controller_peak_rss_bytes")
            ),
        ),
        (
            "stage create → local copy p50 / p99",
            format!(
                "{} / {}",
                num("stage_create_to_local_p50_ms", " ms"),
                num("stage_create_to_local_p99_ms", " ms")
            ),
        ),
        (
            "stage local copy → annotated p50 / p99",
            format!(
                "{} / {}",
                num("stage_local_to_annotated_p50_ms", " ms"),
                num("stage_local_to_annotated_p99_ms", " ms")
            ),
        ),
        (
            "stage local status → remote p50 / p99",
            format!(
                "{} / {}",
                num("stage_status_up_p50_ms", " ms"),
                num("stage_status_up_p99_ms", " ms")
            ),
        ),
        (
            "reconciles by outcome",
            r["controller_reconciles"].to_string(),
        ),
        (
            "restart: ready s / peak RSS / RSS settled",
            match r["restart"].as_object() {
                Some(x) => format!(
                    "{:.2} s / {} / {} (CPU at ready {:.2} s)",
                    x["ready_seconds"].as_f64().unwrap_or(f64::NAN),
                    x["peak_rss_bytes"],
                    x["rss_bytes_settled"],
                    x["cpu_seconds_at_ready"].as_f64().unwrap_or(f64::NAN)
                ),
                None => "n/a".to_owned(),
            },
        ),
        (
            "CPU s while converging, by process",
            split(&r["converge_cpu_split_seconds"]),
        ),
        (
            "CPU s in the pipeline ceiling, by process",
            split(&r["pipeline_cpu_split_seconds"]),
        ),
        (
            "load average start / end",
            format!("{} / {}", r["loadavg_start"], r["loadavg_end"]),
        ),
    ];
    println!();
    for (k, v) in rows {
        println!("{k:<46} {v}");
    }
    if let Some(w) = writes {
        println!("\ncontroller writes while converging (from the audit logs):");
        print_writes(w);
    }
}

/// The controller's writes, a line per cluster, verb and resource.
fn print_writes(w: &Writes) {
    println!(
        "{:<8} {:<8} {:<20} {:>8} {:>8}",
        "cluster", "verb", "resource", "ok", "failed"
    );
    for (k, c) in &w.0 {
        println!(
            "{:<8} {:<8} {:<20} {:>8} {:>8}",
            k.cluster, k.verb, k.resource, c.ok, c.failed
        );
    }
}

fn print_deletion(r: &Value, writes: Option<&Writes>) {
    let f = |k: &str| match &r[k] {
        Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or_default()),
        v => v.to_string(),
    };
    println!(
        "\ndeletion phase (budget {} per {} s):",
        r["deletion_budget_max"], r["deletion_budget_window_seconds"]
    );
    let rows = [
        (
            "remote deletes acknowledged (s)",
            f("delete_requests_seconds"),
        ),
        (
            "objects gone on both clusters (s)",
            f("delete_objects_gone_seconds"),
        ),
        ("and the run's local namespaces (s)", f("delete_seconds")),
        (
            "budget floor for these deletions (s)",
            f("delete_budget_floor_seconds"),
        ),
        (
            "local copy gone p50 / p99 (ms)",
            format!(
                "{} / {}",
                f("delete_local_gone_p50_ms"),
                f("delete_local_gone_p99_ms")
            ),
        ),
        (
            "remote gone p50 / p99 (ms)",
            format!(
                "{} / {}",
                f("delete_remote_gone_p50_ms"),
                f("delete_remote_gone_p99_ms")
            ),
        ),
        (
            "controller CPU (s) / per object (ms)",
            format!(
                "{} / {}",
                f("delete_cpu_seconds"),
                f("delete_cpu_ms_per_object")
            ),
        ),
        (
            "local deletions: copies / namespaces",
            format!(
                "{} / {}",
                f("delete_local_copy_deletions"),
                f("delete_local_namespace_deletions")
            ),
        ),
        (
            "writes (per object)",
            format!(
                "{} ({})",
                f("delete_writes_total"),
                f("delete_writes_per_object")
            ),
        ),
        ("event writes", f("delete_event_writes")),
        ("events by reason", r["delete_events_by_reason"].to_string()),
        (
            "budget trips / held objects",
            format!(
                "{} / {}",
                f("delete_budget_trips"),
                f("delete_held_objects")
            ),
        ),
        (
            "budget events per held object per trip (max)",
            format!(
                "{} ({})",
                f("delete_budget_events_per_held_object_trip"),
                f("delete_budget_events_max_per_object")
            ),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<46} {v}");
    }
    if let Some(w) = writes {
        print_writes(w);
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
