//! The agent's flags and environment variables, and the sync configuration they make.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, PossibleValuesParser};
use clap::{ArgAction, Parser};
use sync_core::{OnRemoteDelete, Propagation, SyncConfig, Syncable};

use crate::database::Database;

fn defaults() -> SyncConfig {
    Database::defaults()
}

/// The values of `--on-remote-delete` and `--propagation`, by name.
const ON_REMOTE_DELETE: [(&str, OnRemoteDelete); 3] = [
    ("namespace", OnRemoteDelete::Namespace),
    ("resource", OnRemoteDelete::NamespaceOrResource),
    ("orphan", OnRemoteDelete::Orphan),
];
const PROPAGATION: [(&str, Propagation); 3] = [
    ("foreground", Propagation::Foreground),
    ("background", Propagation::Background),
    ("orphan", Propagation::Orphan),
];

fn names<T>(table: &[(&'static str, T)]) -> PossibleValuesParser {
    PossibleValuesParser::new(table.iter().map(|(n, _)| *n))
}

fn name<T: PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table.iter().find(|(_, t)| *t == v).map_or("", |(n, _)| n)
}

/// The value named `n`; clap admits only listed names, so the first is never used.
fn value<T: Copy>(table: &[(&str, T)], n: &str) -> T {
    table
        .iter()
        .find(|(name, _)| *name == n)
        .unwrap_or(&table[0])
        .1
}

/// Command-line flags of the agent. Every flag can also be set by the environment variable
/// shown in `--help`; a flag wins over its variable.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "agent",
    version,
    about = "Syncs Database objects from a management (remote) cluster into this (local) cluster.",
    long_about = concat!(
        "Syncs Database objects (acme.dev/v1) from a management (remote) cluster into this ",
        "(local) cluster: spec, labels and annotations go down; status and the db-credentials ",
        "secret go up.\n\n",
        "Every flag can also be set by the environment variable shown; a flag wins over its ",
        "variable. Defaults come from the #[sync(...)] attribute on the Database type.",
    )
)]
pub struct Args {
    /// How to reach each cluster.
    #[command(flatten, next_help_heading = "Clusters")]
    pub clusters: Clusters,
    /// What is synced, and how: the `#[sync(...)]` values, overridable.
    #[command(flatten, next_help_heading = "Sync")]
    pub sync: SyncFlags,
    /// Leader election, for several replicas.
    #[command(flatten, next_help_heading = "Leader election")]
    pub leader: Leader,
    /// The process: HTTP address, shutdown, RBAC printing.
    #[command(flatten, next_help_heading = "Running")]
    pub running: Running,
}

/// How to reach each cluster.
#[derive(clap::Args, Clone, Debug)]
pub struct Clusters {
    /// Kubeconfig of the management cluster.
    #[arg(long, env = "SYNC_REMOTE_KUBECONFIG", value_name = "PATH")]
    pub remote_kubeconfig: Option<PathBuf>,
    /// Context in the remote kubeconfig (default: its current context). Without
    /// --remote-kubeconfig, a context of the local kubeconfig ($KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "SYNC_REMOTE_CONTEXT", value_name = "NAME")]
    pub remote_context: Option<String>,
    /// Kubeconfig of this cluster (default: the pod's service account in a cluster, else
    /// $KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "SYNC_LOCAL_KUBECONFIG", value_name = "PATH")]
    pub local_kubeconfig: Option<PathBuf>,
    /// Context in the local kubeconfig (default: its current context).
    #[arg(long, env = "SYNC_LOCAL_CONTEXT", value_name = "NAME")]
    pub local_context: Option<String>,
}

/// What is synced, and how: the `#[sync(...)]` values, overridable.
#[derive(clap::Args, Clone, Debug)]
pub struct SyncFlags {
    /// Remote names must end with it; it is stripped to form the local name and appended to a
    /// secret's name to form the remote secret's name. Usually the region.
    #[arg(
        long,
        env = "SYNC_REMOTE_SUFFIX",
        allow_hyphen_values = true,
        default_value_t = defaults().remote_suffix,
    )]
    pub remote_suffix: String,
    /// Remote namespaces must end with it; it is stripped to form the local namespace.
    #[arg(
        long,
        env = "SYNC_REMOTE_NAMESPACE_SUFFIX",
        allow_hyphen_values = true,
        default_value_t = defaults().remote_namespace_suffix,
    )]
    pub remote_namespace_suffix: String,
    /// Appended to form the local namespace.
    #[arg(
        long,
        env = "SYNC_LOCAL_NAMESPACE_SUFFIX",
        allow_hyphen_values = true,
        default_value_t = defaults().local_namespace_suffix,
    )]
    pub local_namespace_suffix: String,
    /// Remote namespaces must start with it; it is kept in the local namespace.
    #[arg(long, env = "SYNC_NAMESPACE_PREFIX", default_value_t = defaults().namespace_prefix)]
    pub namespace_prefix: String,
    /// Local secrets, controlled by a synced object, to send up; comma-separated.
    #[arg(long, env = "SYNC_SECRETS", value_delimiter = ',', default_values_t = defaults().secrets)]
    pub secrets: Vec<String>,
    /// What is deleted locally when a remote object goes away: `namespace` (the local
    /// namespace, if the agent created it and no synced sibling lives there), `resource` (also
    /// the local object in a namespace the agent did not create) or `orphan` (nothing).
    #[arg(long, env = "SYNC_ON_REMOTE_DELETE", value_parser = names(&ON_REMOTE_DELETE),
          default_value = name(&ON_REMOTE_DELETE, defaults().on_remote_delete))]
    pub on_remote_delete: String,
    /// Propagation policy when the agent deletes a local object.
    #[arg(long, env = "SYNC_PROPAGATION", value_parser = names(&PROPAGATION),
          default_value = name(&PROPAGATION, defaults().propagation))]
    pub propagation: String,
    /// At most this many local deletions per --deletion-window-seconds; more wait, with a
    /// Warning event, so a mistake on the management cluster cannot wipe the region.
    #[arg(
        long,
        env = "SYNC_DELETION_BUDGET",
        default_value_t = defaults().deletion_budget.max_deletions,
    )]
    pub deletion_budget: u32,
    /// The window of --deletion-budget, in seconds.
    #[arg(
        long,
        env = "SYNC_DELETION_WINDOW_SECONDS",
        default_value_t = defaults().deletion_budget.window.as_secs(),
    )]
    pub deletion_window_seconds: u64,
    /// How many objects are reconciled in parallel (at least 1).
    #[arg(long, env = "SYNC_CONCURRENCY", default_value_t = defaults().concurrency)]
    pub concurrency: usize,
    /// Prefix of the annotations and finalizer the agent writes; keep the default to work
    /// with a management plane made for the Go sync-controller.
    #[arg(long, env = "SYNC_DOMAIN", default_value_t = defaults().domain)]
    pub domain: String,
    /// The agent's name in events, field managers, metrics and logs, and in the claim on each
    /// remote object (default: per region, `database-sync` followed by the suffixes, such as
    /// `database-sync-eu`, adopting the claims of plain `database-sync`).
    #[arg(long, env = "SYNC_CONTROLLER_NAME")]
    pub controller_name: Option<String>,
    /// Former names of the agent, whose claims it adopts after a rename, comma-separated.
    #[arg(long, env = "SYNC_ADOPT_CLAIMS_FROM", value_delimiter = ',')]
    pub adopt_claims_from: Vec<String>,
    /// A label `key=value` for each namespace the agent creates (such as
    /// `pod-security.kubernetes.io/enforce=restricted`); repeat it, or separate with commas.
    #[arg(long = "namespace-label", env = "SYNC_NAMESPACE_LABELS", value_delimiter = ',', value_parser = key_value)]
    pub namespace_labels: Vec<(String, String)>,
    /// An annotation `key=value` for each namespace the agent creates; repeat it, or separate
    /// with commas.
    #[arg(long = "namespace-annotation", env = "SYNC_NAMESPACE_ANNOTATIONS", value_delimiter = ',', value_parser = key_value)]
    pub namespace_annotations: Vec<(String, String)>,
}

/// `key=value`, for the namespace label and annotation flags (the generic agent's too).
///
/// # Errors
///
/// When there is no `=`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

/// Leader election, for several replicas.
#[derive(clap::Args, Clone, Debug)]
pub struct Leader {
    /// Only write while holding a Lease in this cluster, so several replicas can run. The
    /// variable takes true/false, yes/no, on/off or 1/0.
    #[arg(
        long,
        env = "SYNC_LEADER_ELECTION",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new(),
    )]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "SYNC_LEASE_NAME", default_value = "database-sync")]
    pub lease_name: String,
    /// Namespace of the Lease; it must exist.
    #[arg(long, env = "SYNC_LEASE_NAMESPACE", default_value = "sync-system")]
    pub lease_namespace: String,
    /// This replica's name in the Lease, unique per replica (default: $HOSTNAME, the pod name
    /// in a cluster).
    #[arg(long, env = "SYNC_IDENTITY")]
    pub identity: Option<String>,
}

/// The process: HTTP address, shutdown, RBAC printing, uninstalling.
#[derive(clap::Args, Clone, Debug)]
pub struct Running {
    /// Address of the HTTP server: /metrics (Prometheus), /healthz, /readyz.
    #[arg(long, env = "SYNC_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// After SIGTERM, how long running reconciles may take to finish, in seconds.
    #[arg(long, env = "SYNC_SHUTDOWN_SECONDS", default_value_t = 10)]
    pub shutdown_seconds: u64,
    /// How long a watch may fail before /readyz answers 503, in seconds.
    #[arg(long, env = "SYNC_UNREADY_AFTER_SECONDS", default_value_t = 60)]
    pub unready_after_seconds: u64,
    /// Print the RBAC this configuration needs on each cluster, as YAML, and exit.
    #[arg(long)]
    pub print_rbac: bool,
    /// Uninstall this region: remove the agent's finalizer, claim and bookkeeping annotations
    /// from the remote objects of its shard, delete nothing, and exit (non-zero if any object
    /// is left). Stop the running agent first. Takes the same sync flags as the agent.
    #[arg(long, conflicts_with = "print_rbac")]
    pub release_all: bool,
}

impl Args {
    /// The sync configuration these flags describe.
    pub fn config(&self) -> SyncConfig {
        self.sync.config()
    }
}

impl SyncFlags {
    /// The sync configuration these flags describe.
    pub fn config(&self) -> SyncConfig {
        let config = match &self.controller_name {
            Some(name) => defaults().controller_name(name),
            None => defaults(),
        };
        let config = config
            .remote_suffix(&self.remote_suffix)
            .remote_namespace_suffix(&self.remote_namespace_suffix)
            .local_namespace_suffix(&self.local_namespace_suffix)
            .namespace_prefix(&self.namespace_prefix)
            .secrets(self.secrets.iter().filter(|s| !s.is_empty()))
            .on_remote_delete(value(&ON_REMOTE_DELETE, &self.on_remote_delete))
            .propagation(value(&PROPAGATION, &self.propagation))
            .deletion_budget(
                self.deletion_budget,
                Duration::from_secs(self.deletion_window_seconds),
            )
            .concurrency(self.concurrency)
            .domain(&self.domain)
            .adopt_claims_from(self.adopt_claims_from.iter().filter(|s| !s.is_empty()));
        let config = self
            .namespace_labels
            .iter()
            .fold(config, |c, (k, v)| c.namespace_label(k, v));
        self.namespace_annotations
            .iter()
            .fold(config, |c, (k, v)| c.namespace_annotation(k, v))
    }
}
