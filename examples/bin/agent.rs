//! The sync agent: `cargo run -p sync-examples --bin agent -- --help`.

use clap::Parser;
use sync_examples::agent::Agent;
use sync_examples::flags::Args;
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
    let shutdown = sync_examples::serve::shutdown_on_signal()?;
    agent.run(shutdown).await?;
    info!("stopped");
    Ok(())
}
