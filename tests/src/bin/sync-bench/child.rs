//! The reconciler under test, in a child process of its own (`sync-bench --controller-child`),
//! so that the CPU time and memory the bench reports are the controller's alone.
//!
//! Protocol: the child prints `READY` on stdout once every watch has listed and reconciling
//! started. It stops gracefully on SIGTERM, or when its stdin closes (the bench died), and
//! then writes its Prometheus metrics to `--metrics-out`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use std::io::Read;
use sync_core::{DeletionBudget, Local, Metrics, Remote, SyncConfig, Syncable};
use sync_tests::harness::Database;

use crate::layout::REMOTE_SUFFIX;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The name of the local secret that a share of the objects send up.
pub const SECRET: &str = "db-credentials";

/// The configuration the controller runs with: the test kind's defaults, the region suffix
/// [`REMOTE_SUFFIX`] (so that objects of other regions are really foreign), one secret, the
/// bench's concurrency and deletion budget, and `status_observed_generation` (the test kind's
/// status carries `observedGeneration`, which the bench's local controller writes), so a new
/// object's claim records its generations too.
pub fn config(user: &str, concurrency: usize, budget: DeletionBudget) -> SyncConfig {
    Database::defaults()
        .controller_name(user)
        .remote_suffix(REMOTE_SUFFIX)
        .secrets([SECRET])
        .concurrency(concurrency)
        .deletion_budget(budget.max_deletions, budget.window)
        .status_observed_generation(true)
}

/// An environment variable naming a program the child's command is handed to, for profiling:
/// `SYNC_BENCH_CHILD_WRAPPER=/path/to/wrapper` runs `wrapper sync-bench --controller-child …`.
/// The wrapper must end by `exec`ing its arguments, so that the process the bench measures
/// (and signals) is the controller itself; e.g. one that sets `LD_PRELOAD` for heaptrack, or
/// that starts `perf record -p $$` in the background before the `exec`.
pub const CHILD_WRAPPER: &str = "SYNC_BENCH_CHILD_WRAPPER";

/// What the child is given on its command line.
#[derive(Clone, Copy)]
pub struct ChildArgs<'a> {
    /// The controller's user (and controller name).
    pub user: &'a str,
    /// Kubeconfig of that user on the remote cluster.
    pub remote_kubeconfig: &'a Path,
    /// Kubeconfig of that user on the local cluster.
    pub local_kubeconfig: &'a Path,
    /// Keys reconciled in parallel.
    pub concurrency: usize,
    /// The controller's deletion budget.
    pub deletion_budget: DeletionBudget,
    /// Where the child writes its metrics when it stops.
    pub metrics_out: &'a Path,
    /// Whether the watches fill their caches with streaming lists
    /// ([`SyncConfig::streaming_lists`]).
    pub streaming_lists: bool,
}

/// Runs the controller in this process until SIGTERM or the end of stdin: the body of
/// `sync-bench --controller-child`.
pub async fn run(args: ChildArgs<'_>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let remote = sync_tests::client_from_kubeconfig(args.remote_kubeconfig).await?;
    let local = sync_tests::client_from_kubeconfig(args.local_kubeconfig).await?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let config = config(args.user, args.concurrency, args.deletion_budget)
        .streaming_lists(args.streaming_lists);
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install a SIGTERM handler");
        // A thread, as tokio's stdin is a blocking read on a thread too.
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while !matches!(stdin.read(&mut buf), Ok(0) | Err(_)) {}
            let _ = closed_tx.send(());
        });
        tokio::select! {
            _ = term.recv() => {}
            _ = closed_rx => {}
        }
    };
    let builder = Database::reconciler(Remote(remote), Local(local))
        .configure(|_| config)
        .metrics(metrics);
    let mut ready = builder.readiness();
    let reconciler = builder.run(stop);
    let announce = async {
        let _ = ready.wait_for(|r| *r).await;
        println!("READY");
        futures::future::pending::<()>().await;
    };
    tokio::select! {
        r = reconciler => r.context("the reconciler failed")?,
        () = announce => unreachable!("announcing never ends"),
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    std::fs::write(args.metrics_out, text)
        .with_context(|| format!("write {}", args.metrics_out.display()))?;
    Ok(())
}

/// The controller child, seen from the bench.
pub struct Controller {
    child: Child,
    /// Its process id, for `/proc`.
    pub pid: u32,
    metrics_out: PathBuf,
}

impl Controller {
    /// Starts `sync-bench --controller-child` and waits until it says it is reconciling.
    pub async fn spawn(args: ChildArgs<'_>) -> Result<Controller> {
        let exe = std::env::current_exe().context("find the sync-bench binary")?;
        let mut command = match std::env::var_os(CHILD_WRAPPER) {
            Some(wrapper) => {
                let mut c = Command::new(wrapper);
                c.arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .arg("--controller-child")
            .arg("--controller-user")
            .arg(args.user)
            .arg("--remote-kubeconfig")
            .arg(args.remote_kubeconfig)
            .arg("--local-kubeconfig")
            .arg(args.local_kubeconfig)
            .arg("--concurrency")
            .arg(args.concurrency.to_string())
            .arg("--deletion-budget")
            .arg(crate::deletion::budget_arg(&args.deletion_budget))
            .arg("--metrics-out")
            .arg(args.metrics_out)
            .args(args.streaming_lists.then_some("--streaming-lists"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start the controller child")?;
        let pid = child.id().context("the controller child has a pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if line.trim() == "READY" {
                    return Ok::<bool, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        match ready {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => bail!("the controller child exited before it was ready"),
            Ok(Err(e)) => bail!("reading the controller child's output failed: {e}"),
            Err(_) => bail!("the controller child was not ready within 120 s"),
        }
        Ok(Controller {
            child,
            pid,
            metrics_out: args.metrics_out.to_owned(),
        })
    }

    /// Stops the child with SIGTERM and returns its metrics text.
    pub async fn stop(mut self) -> Result<String> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM).context("signal the child")?;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the controller child did not stop within 30 s")??;
        if !status.success() {
            bail!("the controller child exited with {status}");
        }
        std::fs::read_to_string(&self.metrics_out)
            .with_context(|| format!("read {}", self.metrics_out.display()))
    }
}

/// The `sync_cached_objects` gauges of a metrics text, by cluster.
pub fn cached_objects(metrics: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = metrics
        .lines()
        .filter(|l| l.starts_with("sync_cached_objects{"))
        .filter_map(|l| {
            let cluster = l.split("cluster=\"").nth(1)?.split('"').next()?.to_owned();
            let n = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((cluster, n))
        })
        .collect();
    out.sort();
    out
}

/// The sum of the counter `name` (e.g. `sync_deletion_budget_trips_total`) over its labels.
pub fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The `sync_reconciles_total` counters of a metrics text, by outcome.
pub fn reconciles_by_outcome(metrics: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = metrics
        .lines()
        .filter(|l| l.starts_with("sync_reconciles_total{"))
        .filter_map(|l| {
            let outcome = l.split("outcome=\"").nth(1)?.split('"').next()?.to_owned();
            let n = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((outcome, n))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn reconcile_counters_are_read_by_outcome() {
        let text = "# HELP sync_reconciles Reconciles by outcome\n\
            sync_reconciles_total{controller=\"c\",outcome=\"wrote\"} 12\n\
            sync_reconciles_total{controller=\"c\",outcome=\"in_sync\"} 3\n\
            sync_writes_total{controller=\"c\",cluster=\"Remote\",verb=\"patch\",resource=\"objects\"} 5\n";
        assert_eq!(
            super::reconciles_by_outcome(text),
            [("in_sync".to_owned(), 3), ("wrote".to_owned(), 12)]
        );
    }

    #[test]
    fn a_counter_is_summed_over_its_labels() {
        let text = "# HELP sync_deletion_budget_trips Objects held back\n\
            sync_deletion_budget_trips_total{controller=\"c\"} 7\n\
            sync_deletion_budget_trips_total{controller=\"d\"} 2\n\
            sync_deletion_budget_trips_created{controller=\"c\"} 1.7e9\n";
        assert_eq!(super::counter(text, "sync_deletion_budget_trips_total"), 9);
        assert_eq!(super::counter(text, "sync_missing_total"), 0);
    }

    #[test]
    fn cached_objects_are_read_by_cluster() {
        let text = "sync_cached_objects{controller=\"c\",cluster=\"remote\"} 1000\n\
            sync_cached_objects{controller=\"c\",cluster=\"local\"} 999\n\
            sync_reconciles_total{controller=\"c\",outcome=\"wrote\"} 12\n";
        assert_eq!(
            super::cached_objects(text),
            [("local".to_owned(), 999), ("remote".to_owned(), 1000)]
        );
    }
}
