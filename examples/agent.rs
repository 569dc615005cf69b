//! The agent: syncs `Database` objects from a management (remote) cluster into this (local)
//! cluster, with metrics, health and readiness over HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use prometheus_client::registry::Registry;
use sync_core::{LeaderElection, Local, Metrics, ReleaseReport, Remote, SyncBuilder, Syncable};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::database::Database;
use crate::flags::Args;

/// A client for the cluster of `kubeconfig` (or the default kubeconfig) and `context`; with
/// neither, the in-cluster configuration or the default kubeconfig.
///
/// # Errors
///
/// When the kubeconfig cannot be read or names no usable cluster.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> anyhow::Result<Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// The client of the management cluster the flags name.
async fn remote_client(args: &Args) -> anyhow::Result<Client> {
    if args.clusters.remote_kubeconfig.is_none() && args.clusters.remote_context.is_none() {
        bail!(
            "say how to reach the management cluster: --remote-kubeconfig PATH or \
             --remote-context NAME (or SYNC_REMOTE_KUBECONFIG, SYNC_REMOTE_CONTEXT)"
        );
    }
    client(
        args.clusters.remote_kubeconfig.as_deref(),
        args.clusters.remote_context.as_deref(),
    )
    .await
    .context("remote cluster")
}

/// `--release-all`: gives up the remote objects of this region's shard (see
/// [`sync_core::release_all`]); only the management cluster is contacted.
///
/// # Errors
///
/// When the remote cluster cannot be reached or listed, or an object is left (failed or
/// paused): the report says which, and running again retries them.
pub async fn release_all(args: &Args) -> anyhow::Result<ReleaseReport> {
    let remote = remote_client(args).await?;
    let report = sync_core::release_all::<Database>(Remote(remote), &args.config()).await?;
    if !report.is_complete() {
        bail!(
            "{report}; paused (unpause, then run again): {:?}; failed (run again): {:?}",
            report.paused,
            report.failed
        );
    }
    Ok(report)
}

/// The agent, connected and listening, before it runs.
pub struct Agent {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// Whether the reconciler can work: true once every watch has listed, false while a watch
    /// has been failing for longer than `--unready-after-seconds` (see
    /// [`SyncBuilder::readiness`]).
    pub ready: watch::Receiver<bool>,
    /// The Prometheus registry that `/metrics` serves.
    pub registry: Arc<Registry>,
    listener: TcpListener,
    reconciler: SyncBuilder<Database>,
}

impl Agent {
    /// Connects to both clusters and binds the HTTP address.
    ///
    /// # Errors
    ///
    /// When a kubeconfig cannot be loaded or the address cannot be bound.
    pub async fn new(args: &Args) -> anyhow::Result<Agent> {
        let remote = remote_client(args).await?;
        let local = client(
            args.clusters.local_kubeconfig.as_deref(),
            args.clusters.local_context.as_deref(),
        )
        .await
        .context("local cluster")?;
        let mut registry = Registry::default();
        let config = args.config();
        let mut reconciler = Database::reconciler(Remote(remote), Local(local))
            .configure(|_| config)
            .metrics(Metrics::new(&mut registry))
            .unready_after(Duration::from_secs(args.running.unready_after_seconds))
            .shutdown_deadline(Duration::from_secs(args.running.shutdown_seconds));
        let ready = reconciler.readiness();
        let leader = &args.leader;
        if leader.leader_election {
            let identity = leader
                .identity
                .clone()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| format!("agent-{}", std::process::id()));
            reconciler = reconciler.leader_election(LeaderElection::new(
                &leader.lease_name,
                &leader.lease_namespace,
                identity,
            ));
        }
        let listener = TcpListener::bind(args.running.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.running.listen))?;
        Ok(Agent {
            addr: listener.local_addr()?,
            ready,
            registry: Arc::new(registry),
            listener,
            reconciler,
        })
    }

    /// Serves HTTP and syncs until `shutdown` is cancelled, then stops both gracefully.
    ///
    /// # Errors
    ///
    /// When the configuration is refused, leader election cannot run, or the server fails.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let server = tokio::spawn(crate::serve::serve(
            self.listener,
            self.registry,
            self.ready,
            shutdown.clone().cancelled_owned(),
        ));
        let synced = self
            .reconciler
            .run(shutdown.clone().cancelled_owned())
            .await;
        // A reconciler that stops on its own (bad configuration) takes the server with it.
        shutdown.cancel();
        let served = server.await?;
        synced.context("sync")?;
        served.context("HTTP server")
    }
}
