//! The demo: the whole sync loop on two clusters, in one command.
//!
//! `cargo run -p sync-demo` starts two control planes (remote and local),
//! runs the agent and the local controller against them, changes objects on the remote
//! cluster and shows each object on both clusters as it happens. `--help` lists the flags.

mod clusters;
mod rows;
mod screen;
mod steps;
mod story;
mod summary;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use rand::distr::{Alphanumeric, SampleString};
use sync_examples::agent::Agent;
use sync_examples::controller::{self, Options};
use tokio_util::sync::CancellationToken;

use crate::clusters::Existing;
use crate::screen::Screen;
use crate::screen::ticking;
use crate::steps::Steps;

/// Shows the sync loop on two clusters: a management cluster (remote) where Database objects
/// are created, changed, paused and deleted, and a region (local) where the agent copies them
/// and a local controller provisions them.
///
/// Without cluster flags it starts two control planes of its own and removes them at the end.
#[derive(Parser, Debug)]
#[command(name = "demo")]
struct Args {
    /// Plain lines, no redraws and no pauses; exit 0 only when every step converged in time.
    #[arg(long)]
    once: bool,
    /// Seconds each step may take to converge.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Run the generic `sync-agent` (the `agent/` crate, told the kind by
    /// `--resource databases.v1.acme.dev:...`) instead of the example agent.
    #[arg(long)]
    generic: bool,
    #[command(flatten)]
    existing: Existing,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log = std::env::temp_dir().join(format!("sync-demo-{}.log", std::process::id()));
    let mut screen = Screen::new(!args.once && std::io::stdout().is_terminal());
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let started = Instant::now();
    let result = runtime.block_on(async {
        logging(&log)?;
        tokio::select! {
            r = demo(&args, &mut screen, &log) => r,
            _ = tokio::signal::ctrl_c() => {
                INTERRUPTED.store(true, Ordering::Relaxed);
                bail!("interrupted")
            }
        }
    });
    // Whatever still runs (after an interruption, say) stops here.
    runtime.shutdown_timeout(Duration::from_secs(5));
    screen.clear();
    let secs = started.elapsed().as_secs();
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&log);
            println!("\nDone in {secs}s. Nothing is left running.");
            ExitCode::SUCCESS
        }
        Err(_) if interrupted(&args) => {
            eprintln!("\nInterrupted after {secs}s; the demo's agent and planes are stopped.");
            let _ = std::fs::remove_file(&log);
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("\ndemo failed after {secs}s: {e:#}");
            if let Ok(text) = std::fs::read_to_string(&log) {
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("\nthe last lines of the log, {}:", log.display());
                for l in &lines[lines.len().saturating_sub(25)..] {
                    eprintln!("  {l}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether Ctrl-C ended the demo. On existing clusters, the demo's objects stay behind then:
/// their namespaces end in a random suffix, and an agent must run to release them.
fn interrupted(args: &Args) -> bool {
    let yes = INTERRUPTED.load(Ordering::Relaxed);
    let existing =
        args.existing.remote_kubeconfig.is_some() || args.existing.remote_context.is_some();
    if yes && existing {
        eprintln!("The demo's tenant-* namespaces stay on the existing clusters.");
    }
    yes
}

/// The agent's and the local controller's logs go to a file, so they do not break the table.
fn logging(path: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube_client::client::builder=off,kube_runtime=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}

async fn demo(args: &Args, s: &mut Screen, log: &Path) -> anyhow::Result<()> {
    s.say("sync demo: Database objects go from a management cluster (remote) to a region (local).");
    s.say("The region's names end in -eu. Status and credentials come back up.\n");
    let clusters = clusters::connect(&args.existing, args.generic, s).await?;
    let run = match clusters.own {
        true => String::new(),
        false => format!(
            "-{}",
            Alphanumeric
                .sample_string(&mut rand::rng(), 5)
                .to_lowercase()
        ),
    };
    let targets = story::targets(&run);
    story::prepare(&clusters.remote, &targets, s).await?;
    let timeout = Duration::from_secs(args.timeout);
    let linger = Duration::from_millis(if args.once { 0 } else { 1500 });
    let mut steps = Steps::new(
        clusters.remote.clone(),
        clusters.local.clone(),
        targets,
        timeout,
    )
    .linger(linger);

    s.say("• Starting the local controller (it knows nothing about syncing) and the agent");
    let stop = CancellationToken::new();
    let options = Options {
        provision_time: Duration::from_secs(2),
        rotate_every: Duration::from_secs(3600),
    };
    let local = clusters.local.clone();
    let local_controller = tokio::spawn(controller::run(
        local,
        options,
        stop.clone().cancelled_owned(),
    ));
    let (addr, mut ready, registry, mut agent) = if args.generic {
        s.say(format!(
            "  the agent is the generic sync-agent: --resource {}",
            clusters::GENERIC_RESOURCE
        ));
        let resources = clusters.generic.kinds.resources()?;
        let agent = sync_agent::agent::Agent::new(&clusters.generic, resources).await?;
        let (addr, ready, registry) = (agent.addr, agent.ready.clone(), agent.registry.clone());
        (addr, ready, registry, tokio::spawn(agent.run(stop.clone())))
    } else {
        let agent = Agent::new(&clusters.agent).await?;
        let (addr, ready, registry) = (agent.addr, agent.ready.clone(), agent.registry.clone());
        (addr, ready, registry, tokio::spawn(agent.run(stop.clone())))
    };
    s.say(format!(
        "  the agent serves http://{addr}/metrics, /healthz and /readyz"
    ));
    s.say(format!("  logs: {}", log.display()));
    let until_ready = async {
        tokio::select! {
            r = &mut agent => {
                let why = r.map_err(anyhow::Error::from).and_then(|r| r).err();
                Err(anyhow!("the agent stopped: {why:?}"))
            }
            r = ready.wait_for(|r| *r) => r.map(|_| ()).map_err(|_| anyhow!("the agent stopped")),
        }
    };
    let until_ready = tokio::time::timeout(timeout, until_ready);
    let waited = ticking(s, "waiting for the agent to be ready", until_ready).await;
    waited.context("the agent was not ready in time")??;
    s.say("  the agent is ready: its caches are filled");

    let told = story::tell(&mut steps, s).await;
    match &told {
        Ok(()) => summary::print(s, &steps, &registry, args.generic),
        Err(_) => summary::gave_up(s, &steps),
    }
    let cleaned = if clusters.own {
        Ok(())
    } else {
        story::clean_up(&mut steps, s).await
    };
    s.clear();
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(20), async {
        let _ = local_controller.await;
        agent.await
    });
    let agent_result = stopped.await.context("the agent did not stop within 20s")?;
    if clusters.pair.is_some() {
        println!("\nStopping the agent, the local controller and the control planes.");
    }
    drop(clusters);
    told?;
    cleaned?;
    agent_result?.context("the agent failed")
}
