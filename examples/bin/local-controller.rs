//! The region's controller for `Database`, which knows nothing about syncing:
//! `cargo run -p sync-examples --bin local-controller -- --help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sync_examples::controller::{self, Options};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

/// Reconciles the Database objects of a cluster: sets their status and keeps a
/// db-credentials Secret next to each.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Kubeconfig of the cluster (default: in-cluster, else $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Seconds that provisioning a new generation takes.
    #[arg(long, env = "PROVISION_SECONDS", default_value_t = 2)]
    provision_seconds: u64,
    /// Seconds between password rotations.
    #[arg(long, env = "ROTATE_SECONDS", default_value_t = 3600)]
    rotate_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .init();
    let client =
        sync_examples::agent::client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let options = Options {
        provision_time: Duration::from_secs(args.provision_seconds),
        rotate_every: Duration::from_secs(args.rotate_seconds.max(1)),
    };
    let mut term = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        info!("shutting down");
    };
    info!("reconciling Database objects");
    controller::run(client, options, shutdown).await;
    Ok(())
}
