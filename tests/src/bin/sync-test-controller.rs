//! The test kind's reconciler as a process of its own, for the fault tests that kill, pause or
//! restart a controller (SIGKILL mid-burst, leader election, watch expiry).
//!
//! ```text
//! sync-test-controller --remote-kubeconfig R --local-kubeconfig L --name NAME
//!     [--namespace-prefix P] [--remote-suffix S] [--local-namespace-suffix S]
//!     [--secrets a,b] [--concurrency N] [--backoff-ms INITIAL,MAX] [--request-timeout-ms N]
//!     [--lease NAMESPACE/NAME --identity ID --lease-seconds N]
//!     [--deletion-budget MAX,WINDOW_SECONDS] [--on-remote-delete namespace|resource|orphan]
//! ```
//!
//! With `--lease-seconds N`, the renew deadline is two thirds of N and the retry period a
//! sixth. A flag given twice takes its last value. It runs `sync_tests::harness::Database` with the
//! given kubeconfigs (per-user ones from
//! `ControlPlane::kubeconfig_for_user`, so it has only the RBAC the test granted), logs to
//! stderr (`RUST_LOG`, default `info`), prints `READY` / `NOT_READY` on stdout as its ready
//! flag changes (with leader election: as it starts and stops leading), stops gracefully on
//! SIGTERM, and exits when its parent process goes, so a killed test leaves no controller
//! behind.
//!
//! `SYNC_TEST_SLOW_LOCAL_UPDATES_MS=N` holds every update (PUT) of a local `databases` object
//! for N ms before it is sent, printing `HOLDING_UPDATE` on stdout as it starts holding one: a
//! test can so keep a reconcile in flight while it asks the controller to stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;

use sync_core::{LeaderElection, Local, OnRemoteDelete, Remote, Syncable};
use sync_tests::client_from_kubeconfig;
use sync_tests::harness::Database;

#[derive(Default)]
struct Args {
    remote: Option<PathBuf>,
    local: Option<PathBuf>,
    name: Option<String>,
    namespace_prefix: String,
    remote_suffix: String,
    local_namespace_suffix: String,
    secrets: Vec<String>,
    concurrency: Option<usize>,
    backoff: Option<(u64, u64)>,
    request_timeout: Option<u64>,
    lease: Option<(String, String)>,
    identity: Option<String>,
    lease_seconds: u64,
    deletion_budget: Option<(u32, u64)>,
    on_remote_delete: Option<OnRemoteDelete>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        lease_seconds: 15,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--remote-kubeconfig" => a.remote = Some(value()?.into()),
            "--local-kubeconfig" => a.local = Some(value()?.into()),
            "--name" => a.name = Some(value()?),
            "--namespace-prefix" => a.namespace_prefix = value()?,
            "--remote-suffix" => a.remote_suffix = value()?,
            "--local-namespace-suffix" => a.local_namespace_suffix = value()?,
            "--secrets" => a.secrets = value()?.split(',').map(str::to_owned).collect(),
            "--concurrency" => a.concurrency = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--backoff-ms" => {
                let v = value()?;
                let (i, m) = v.split_once(',').ok_or("--backoff-ms INITIAL,MAX")?;
                let n = |s: &str| s.parse::<u64>().map_err(|e| format!("{e}"));
                a.backoff = Some((n(i)?, n(m)?));
            }
            "--request-timeout-ms" => {
                a.request_timeout = Some(value()?.parse().map_err(|e| format!("{e}"))?);
            }
            "--lease" => {
                let v = value()?;
                let (ns, name) = v.split_once('/').ok_or("--lease NAMESPACE/NAME")?;
                a.lease = Some((ns.to_owned(), name.to_owned()));
            }
            "--identity" => a.identity = Some(value()?),
            "--lease-seconds" => a.lease_seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--on-remote-delete" => {
                a.on_remote_delete = Some(match value()?.as_str() {
                    "namespace" => OnRemoteDelete::Namespace,
                    "resource" => OnRemoteDelete::NamespaceOrResource,
                    "orphan" => OnRemoteDelete::Orphan,
                    v => {
                        return Err(format!(
                            "--on-remote-delete {v}: namespace, resource or orphan"
                        ));
                    }
                });
            }
            "--deletion-budget" => {
                let v = value()?;
                let (m, w) = v
                    .split_once(',')
                    .ok_or("--deletion-budget MAX,WINDOW_SECONDS")?;
                let max = m.parse().map_err(|e| format!("{e}"))?;
                a.deletion_budget = Some((max, w.parse().map_err(|e| format!("{e}"))?));
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let args = parse().unwrap_or_else(|e| {
        eprintln!("sync-test-controller: {e}");
        std::process::exit(2)
    });
    let (Some(remote), Some(local), Some(name)) = (&args.remote, &args.local, &args.name) else {
        eprintln!(
            "sync-test-controller: --remote-kubeconfig, --local-kubeconfig and --name are required"
        );
        std::process::exit(2)
    };
    let remote = client_from_kubeconfig(remote).await.expect("remote client");
    let local = match std::env::var("SYNC_TEST_SLOW_LOCAL_UPDATES_MS") {
        Ok(ms) => {
            let delay = Duration::from_millis(ms.parse().expect("SYNC_TEST_SLOW_LOCAL_UPDATES_MS"));
            slow_updates_client(local, delay).await
        }
        Err(_) => client_from_kubeconfig(local).await.expect("local client"),
    };

    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if std::os::unix::process::parent_id() != parent {
                eprintln!("sync-test-controller: parent process gone; exiting");
                std::process::exit(3);
            }
        }
    });

    let mut builder = Database::reconciler(Remote(remote), Local(local))
        .configure(|c| {
            let c = c
                .controller_name(name.clone())
                .namespace_prefix(args.namespace_prefix.clone())
                .remote_suffix(args.remote_suffix.clone())
                .local_namespace_suffix(args.local_namespace_suffix.clone())
                .secrets(args.secrets.clone());
            let c = match args.on_remote_delete {
                Some(v) => c.on_remote_delete(v),
                None => c,
            };
            let c = match args.deletion_budget {
                Some((max, secs)) => c.deletion_budget(max, Duration::from_secs(secs)),
                None => c,
            };
            match args.concurrency {
                Some(n) => c.concurrency(n),
                None => c,
            }
        })
        .shutdown_deadline(Duration::from_secs(5));
    if let Some((initial, max)) = args.backoff {
        builder = builder.backoff(Duration::from_millis(initial), Duration::from_millis(max));
    }
    if let Some(ms) = args.request_timeout {
        builder = builder.request_timeout(Duration::from_millis(ms));
    }
    if let Some((ns, lease)) = &args.lease {
        let identity = args.identity.clone().unwrap_or_else(|| name.clone());
        builder = builder.leader_election(
            LeaderElection::new(lease.clone(), ns.clone(), identity)
                .lease_duration(Duration::from_secs(args.lease_seconds))
                .renew_deadline(Duration::from_secs(args.lease_seconds) * 2 / 3)
                .retry_period(Duration::from_secs(args.lease_seconds) / 6),
        );
    }
    let mut ready = builder.readiness();
    tokio::spawn(async move {
        while ready.changed().await.is_ok() {
            let now = *ready.borrow_and_update();
            println!("{}", if now { "READY" } else { "NOT_READY" });
        }
    });
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    if let Err(e) = builder.run(shutdown).await {
        eprintln!("sync-test-controller: {e}");
        std::process::exit(1);
    }
    eprintln!("sync-test-controller: stopped");
}

/// A client of `kubeconfig` that holds each update of a `databases` object for `delay` before
/// sending it.
async fn slow_updates_client(kubeconfig: &std::path::Path, delay: Duration) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("local kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("local config");
    kube::client::ClientBuilder::try_from(config)
        .expect("local client")
        .with_layer(&SlowUpdates(delay))
        .build()
}

struct SlowUpdates(Duration);

impl<S> tower::Layer<S> for SlowUpdates {
    type Service = Slow<S>;
    fn layer(&self, inner: S) -> Slow<S> {
        Slow {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            delay: self.0,
        }
    }
}

/// The request is held before the inner service sees it, so it is not sent either.
struct Slow<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    delay: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for Slow<S>
where
    S: tower::Service<http::Request<B>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is awaited under the lock in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let slow = req.method() == http::Method::PUT && req.uri().path().contains("/databases/");
        let (inner, delay) = (self.inner.clone(), self.delay);
        Box::pin(async move {
            if slow {
                println!("HOLDING_UPDATE");
                tokio::time::sleep(delay).await;
            }
            let sent = {
                let mut s = inner.lock().await;
                std::future::poll_fn(|cx| s.poll_ready(cx)).await?;
                s.call(req)
            };
            sent.await
        })
    }
}
