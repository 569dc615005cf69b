//! `sync-agent`: syncs custom resources of the kinds named on its command line. `--help` lists
//! every flag.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use sync_agent::agent::Agent;
use sync_agent::flags::Args;
use sync_agent::resource::Resource;
use sync_agent::{agent, manifests};
use tracing::info;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // A mistake in the kinds is a usage error, as a malformed --resource is.
    let resources = args
        .kinds
        .resources()
        .unwrap_or_else(|e| Args::command().error(ErrorKind::ValueValidation, e).exit());
    if args.running.print_rbac {
        print!("{}", manifests::rbac_yaml(&args, &resources));
        return ExitCode::SUCCESS;
    }
    if args.running.print_manifests {
        print!("{}", manifests::manifests_yaml(&args, &resources));
        return ExitCode::SUCCESS;
    }
    // The log goes to stderr: stdout is for what the printing flags print.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .init();
    match run(&args, resources).await {
        Ok(()) => ExitCode::SUCCESS,
        // One clear line, with its causes, and no backtrace whatever RUST_BACKTRACE says.
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, resources: Vec<Resource>) -> anyhow::Result<()> {
    if args.running.release_all {
        agent::release_all(args, resources).await?;
        info!("released this region's remote objects of every kind; nothing was deleted");
        return Ok(());
    }
    let agent = Agent::new(args, resources).await?;
    info!(addr = %agent.addr, "serving /metrics, /healthz and /readyz");
    let shutdown = sync_examples::serve::shutdown_on_signal()?;
    agent.run(shutdown).await?;
    info!("stopped");
    Ok(())
}
