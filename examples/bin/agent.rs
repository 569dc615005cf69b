//! The sync agent: `cargo run -p sync-examples --bin agent -- --help`.

use clap::Parser;
use sync_examples::agent::Agent;
use sync_examples::flags::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.running.print_rbac {
        print!(
            "{}",
            sync_examples::manifests::rbac_yaml(&args.config(), args.leader.leader_election)
        );
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .init();
    if args.running.release_all {
        let report = sync_examples::agent::release_all(&args).await?;
        info!(%report, "released this region's remote objects; nothing was deleted");
        return Ok(());
    }
    let agent = Agent::new(&args).await?;
    info!(addr = %agent.addr, "serving /metrics, /healthz and /readyz");
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => info!("Ctrl-C: shutting down"),
        }
        on_signal.cancel();
    });
    agent.run(shutdown).await?;
    info!("stopped");
    Ok(())
}
