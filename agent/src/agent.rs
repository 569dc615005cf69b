//! The agent: connects to both clusters, checks every kind on both, then syncs them all in one
//! process, with metrics, health and readiness over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::Client;
use prometheus_client::registry::Registry;
use sync_core::{
    DynamicKind, LeaderElection, Local, Metrics, ReleaseReport, Remote, SyncConfig, SyncManager,
};
use sync_examples::agent::client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::discovery::{self, Cluster, Discovered};
use crate::flags::{Args, SyncFlags};
use crate::options::Options;
use crate::resource::Resource;

/// The client of the management cluster the flags name.
///
/// # Errors
///
/// When it is not named, or its kubeconfig cannot be loaded.
pub async fn remote_client(args: &Args) -> anyhow::Result<Client> {
    let c = &args.clusters;
    if c.remote_kubeconfig.is_none() && c.remote_context.is_none() {
        bail!(
            "say how to reach the management cluster: --remote-kubeconfig PATH or \
             --remote-context NAME (or SYNC_REMOTE_KUBECONFIG, SYNC_REMOTE_CONTEXT)"
        );
    }
    client(c.remote_kubeconfig.as_deref(), c.remote_context.as_deref())
        .await
        .context("remote cluster")
}

/// The clients of both clusters, as the flags name them.
///
/// # Errors
///
/// When the management cluster is not named, or a kubeconfig cannot be loaded.
pub async fn clients(args: &Args) -> anyhow::Result<(Client, Client)> {
    let remote = remote_client(args).await?;
    let c = &args.clusters;
    let local = client(c.local_kubeconfig.as_deref(), c.local_context.as_deref())
        .await
        .context("local cluster")?;
    Ok((remote, local))
}

/// `--release-all`: gives up the remote objects of this region's shard, kind by kind (see
/// [`sync_core::release_all_of`]), with the configuration each kind runs with. Only the
/// management cluster is contacted, and its discovery gives each kind's name.
///
/// # Errors
///
/// When the remote cluster cannot be reached, a kind is not served there, its objects cannot
/// be listed, or an object is left (failed or paused): the message says which, and running
/// again retries them.
pub async fn release_all(
    args: &Args,
    resources: Vec<Resource>,
) -> anyhow::Result<Vec<(Resource, ReleaseReport)>> {
    let remote = remote_client(args).await?;
    let mut reports = Vec::new();
    for r in resources {
        let answer = discovery::ask(&remote, &r.name).await;
        let served = discovery::judge(Cluster::Remote, &r.name, answer)?;
        // The configuration it runs with, so that its claims are recognised.
        let kind = DynamicKind::new(served.resource.clone());
        let config = kind_config(&args.sync, &r.options, kind.defaults());
        let report = sync_core::release_all_of(&served.resource, Remote(remote.clone()), &config)
            .await
            .with_context(|| format!("failed to release {}", r.name))?;
        info!(resource = %r.name, %report, "released; nothing was deleted");
        reports.push((r, report));
    }
    let left: Vec<String> = reports
        .iter()
        .filter(|(_, report)| !report.is_complete())
        .map(|(r, report)| {
            format!(
                "{}: {report}; paused (unpause, then run again): {:?}; failed (run again): {:?}",
                r.name, report.paused, report.failed
            )
        })
        .collect();
    if !left.is_empty() {
        bail!("objects are left:\n  {}", left.join("\n  "));
    }
    Ok(reports)
}

/// Checks every kind on both clusters (see [`discovery`]) and logs the kinds whose status
/// will not be synced.
///
/// # Errors
///
/// Every kind that cannot be synced, one per line, so a user fixes them all at once.
pub async fn check(
    remote: &Client,
    local: &Client,
    resources: Vec<Resource>,
) -> anyhow::Result<Vec<(Resource, Discovered)>> {
    let asked = resources
        .iter()
        .map(|r| discovery::discover(remote, local, &r.name));
    let answers = futures::future::join_all(asked).await;
    let mut kinds = Vec::new();
    let mut problems = Vec::new();
    for (r, answer) in resources.into_iter().zip(answers) {
        match answer {
            Ok(found) => kinds.push((r, found)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    match problems.len() {
        0 => {}
        1 => bail!("{}", problems[0]),
        _ => bail!(
            "{} kinds cannot be synced:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ),
    }
    for (r, found) in &kinds {
        let kind = &found.resource.kind;
        if found.status {
            info!(resource = %r.name, kind, "syncing spec down and status up");
        } else {
            let on: Vec<String> = found.no_status_on.iter().map(ToString::to_string).collect();
            warn!(
                resource = %r.name,
                kind,
                "no status subresource on the {} cluster: syncing the spec down, and no status up",
                on.join(" and ")
            );
        }
    }
    Ok(kinds)
}

/// The agent, connected, checked and listening, before it runs.
pub struct Agent {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// Whether every kind can work: true once every watch of every kind has listed, false
    /// while a watch has been failing for longer than `--unready-after-seconds` (see
    /// [`SyncManager::readiness`]).
    pub ready: watch::Receiver<bool>,
    /// The Prometheus registry that `/metrics` serves.
    pub registry: Arc<Registry>,
    listener: TcpListener,
    manager: SyncManager,
}

/// The configuration a kind runs with, from `defaults` ([`DynamicKind::defaults`]): its name
/// per region, as `#[derive(Syncable)]` gives a typed kind (`<kind>-sync` followed by the
/// region's suffixes, such as `database-sync-eu`, adopting the claims of plain
/// `database-sync`), then the shared flags, then the kind's options.
pub fn kind_config(shared: &SyncFlags, options: &Options, defaults: SyncConfig) -> SyncConfig {
    // Regions sharing a management cluster need names of their own, so that overlapping
    // suffixes are detected; the kind's options may still name it outright.
    let mut per_region = defaults;
    per_region.name_per_region = true;
    options.apply(shared.apply(per_region))
}

/// The manager of every checked kind, each configured by [`kind_config`].
fn manager(
    args: &Args,
    remote: Client,
    local: Client,
    kinds: Vec<(Resource, Discovered)>,
) -> SyncManager {
    let mut manager = SyncManager::new(Remote(remote), Local(local));
    for (r, found) in kinds {
        let kind = r
            .options
            .local_only
            .iter()
            .fold(DynamicKind::new(found.resource), |k, p| k.local_only(p))
            .status(found.status);
        let shared = &args.sync;
        let options = &r.options;
        manager = manager.add_dynamic(kind, |k| k.configure(|c| kind_config(shared, options, c)));
    }
    let leader = &args.leader;
    if leader.leader_election {
        let identity = leader
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("sync-agent-{}", std::process::id()));
        manager = manager.leader_election(LeaderElection::new(
            &leader.lease_name,
            &leader.lease_namespace,
            identity,
        ));
    }
    manager
        .unready_after(Duration::from_secs(args.running.unready_after_seconds))
        .shutdown_deadline(Duration::from_secs(args.running.shutdown_seconds))
}

impl Agent {
    /// Connects to both clusters, checks every kind on both (see [`check`]), and binds the
    /// HTTP address. Nothing is written.
    ///
    /// # Errors
    ///
    /// When a kubeconfig cannot be loaded, a kind cannot be synced, or the address cannot be
    /// bound.
    pub async fn new(args: &Args, resources: Vec<Resource>) -> anyhow::Result<Agent> {
        let (remote, local) = clients(args).await?;
        let kinds = check(&remote, &local, resources).await?;
        let mut registry = Registry::default();
        let manager = manager(args, remote, local, kinds).metrics(Metrics::new(&mut registry));
        for config in manager.configs() {
            info!(controller = %config.effective_controller_name(), "configured");
        }
        let ready = manager.readiness();
        let listener = TcpListener::bind(args.running.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.running.listen))?;
        Ok(Agent {
            addr: listener.local_addr()?,
            ready,
            registry: Arc::new(registry),
            listener,
            manager,
        })
    }

    /// Serves HTTP and syncs until `shutdown` is cancelled, then stops both gracefully.
    ///
    /// # Errors
    ///
    /// When the configuration is refused, leader election cannot run, or the server fails.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let server = tokio::spawn(sync_examples::serve::serve(
            self.listener,
            self.registry,
            self.ready,
            shutdown.clone().cancelled_owned(),
        ));
        let synced = self.manager.run(shutdown.clone().cancelled_owned()).await;
        // A manager that stops on its own (bad configuration) takes the server with it.
        shutdown.cancel();
        let served = server.await?;
        synced.context("sync")?;
        served.context("HTTP server")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use kube::discovery::ApiResource;

    use super::*;

    fn database() -> DynamicKind {
        DynamicKind::new(ApiResource {
            group: "acme.dev".into(),
            version: "v1".into(),
            api_version: "acme.dev/v1".into(),
            kind: "Database".into(),
            plural: "databases".into(),
        })
    }

    fn config(flags: &[&str]) -> SyncConfig {
        let args = Args::try_parse_from([&["sync-agent"], flags].concat()).unwrap();
        let r = &args.kinds.resources().unwrap()[0];
        kind_config(&args.sync, &r.options, database().defaults()).resolved()
    }

    #[test]
    fn a_kind_is_named_per_region_as_the_derive_names_it() {
        let eu = config(&["--resource", "databases.v1.acme.dev", "--remote-suffix=-eu"]);
        assert_eq!(eu.controller_name, "database-sync-eu");
        assert_eq!(eu.predecessors, ["database-sync"]);
        let plain = config(&["--resource", "databases.v1.acme.dev"]);
        assert_eq!(plain.controller_name, "database-sync");
        // A kind's own suffix names its region too.
        let own = config(&["--resource", "databases.v1.acme.dev:remote-suffix=-us"]);
        assert_eq!(own.controller_name, "database-sync-us");
        // An explicit name is taken as it is.
        let named = config(&[
            "--resource",
            "databases.v1.acme.dev:controller-name=db",
            "--remote-suffix=-eu",
        ]);
        assert_eq!(named.controller_name, "db");
        assert!(named.predecessors.is_empty());
    }
}
