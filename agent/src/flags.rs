//! The flags and environment variables of `sync-agent`: the example agent's, with the kinds
//! chosen by `--resource` or `--config` instead of compiled in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, PossibleValuesParser};
use clap::{ArgAction, Parser};
use sync_core::{DeletionBudget, SyncConfig};
use sync_examples::flags::{Clusters, key_value};
use sync_names::Part;

use crate::options::{self, ON_REMOTE_DELETE, OPTIONS, PROPAGATION};
use crate::resource::{self, Resource};

/// The library's defaults, which the shared flags start from.
fn defaults() -> SyncConfig {
    SyncConfig::new("sync-agent")
}

fn long_about() -> String {
    let options: String = OPTIONS
        .iter()
        .map(|(k, what)| format!("  {k:<24}{what}\n"))
        .collect();
    format!(
        "Syncs namespaced custom resources, of kinds chosen at start-up, from a management \
         (remote) cluster into this (local) cluster: spec, labels and annotations go down; \
         status (when the CRD has a status subresource) and the named secrets go up.\n\n\
         Each kind is `--resource PLURAL.VERSION.GROUP[:KEY=VALUE,...]`, repeatable, such as\n  \
         --resource databases.v1.acme.dev:secrets=db-credentials,local-only=/spec/storageClass\n\
         or an entry of `--config FILE`. At start-up the agent checks on both clusters that \
         each kind is served, namespaced and alike, and exits with an error before any write \
         otherwise. A kind's options override the shared flags below (list options join values \
         with '+', or repeat the key):\n\n{options}\n\
         Every flag can also be set by the environment variable shown; a flag wins over its \
         variable."
    )
}

/// Command-line flags of `sync-agent`. Every flag can also be set by the environment variable
/// shown in `--help`; a flag wins over its variable.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "sync-agent",
    version,
    about = "Syncs custom resources of the kinds you name from a management (remote) cluster \
             into this (local) cluster.",
    long_about = long_about(),
)]
pub struct Args {
    /// How to reach each cluster.
    #[command(flatten, next_help_heading = "Clusters")]
    pub clusters: Clusters,
    /// Which kinds are synced.
    #[command(flatten, next_help_heading = "Kinds")]
    pub kinds: Kinds,
    /// The sync values every kind starts from.
    #[command(flatten, next_help_heading = "Sync (shared by every kind)")]
    pub sync: SyncFlags,
    /// Leader election, for several replicas.
    #[command(flatten, next_help_heading = "Leader election")]
    pub leader: Leader,
    /// The process: HTTP address, shutdown, printing.
    #[command(flatten, next_help_heading = "Running")]
    pub running: Running,
}

/// Which kinds are synced.
#[derive(clap::Args, Clone, Debug)]
pub struct Kinds {
    /// A kind to sync, `PLURAL.VERSION.GROUP[:KEY=VALUE,...]` (see above); repeat it for more
    /// kinds. In the variable, separate kinds with spaces.
    #[arg(
        long = "resource",
        env = "SYNC_RESOURCES",
        value_name = "RESOURCE[:OPTIONS]",
        value_delimiter = ' '
    )]
    pub resources: Vec<Resource>,
    /// A YAML file listing kinds: `resources:`, a list of entries with `resource:
    /// PLURAL.VERSION.GROUP` and the same options as keys (lists as YAML lists). Its kinds come
    /// before those of --resource.
    #[arg(long, env = "SYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The sync values every kind starts from; a kind's options override them.
#[derive(clap::Args, Clone, Debug)]
pub struct SyncFlags {
    /// Remote names must end with it; it is stripped to form the local name and appended to a
    /// secret's name to form the remote secret's name. Usually the region.
    #[arg(long, env = "SYNC_REMOTE_SUFFIX", allow_hyphen_values = true, default_value = "",
          value_parser = |s: &str| part(Part::RemoteSuffix, s))]
    pub remote_suffix: String,
    /// Remote namespaces must end with it; it is stripped to form the local namespace.
    #[arg(long, env = "SYNC_REMOTE_NAMESPACE_SUFFIX", allow_hyphen_values = true, default_value = "",
          value_parser = |s: &str| part(Part::RemoteNamespaceSuffix, s))]
    pub remote_namespace_suffix: String,
    /// Appended to form the local namespace.
    #[arg(long, env = "SYNC_LOCAL_NAMESPACE_SUFFIX", allow_hyphen_values = true, default_value = "",
          value_parser = |s: &str| part(Part::LocalNamespaceSuffix, s))]
    pub local_namespace_suffix: String,
    /// Remote namespaces must start with it; it is kept in the local namespace.
    #[arg(long, env = "SYNC_NAMESPACE_PREFIX", default_value = "",
          value_parser = |s: &str| part(Part::NamespacePrefix, s))]
    pub namespace_prefix: String,
    /// What is deleted locally when a remote object goes away: `namespace` (the local
    /// namespace, if the agent created it and no synced sibling lives there), `resource` (also
    /// the local object in a namespace the agent did not create) or `orphan` (nothing).
    #[arg(long, env = "SYNC_ON_REMOTE_DELETE", default_value = "namespace",
          value_parser = PossibleValuesParser::new(ON_REMOTE_DELETE.map(|(n, _)| n)))]
    pub on_remote_delete: String,
    /// Propagation policy when the agent deletes a local object.
    #[arg(long, env = "SYNC_PROPAGATION", default_value = "foreground",
          value_parser = PossibleValuesParser::new(PROPAGATION.map(|(n, _)| n)))]
    pub propagation: String,
    /// At most this many local deletions per --deletion-window-seconds, per kind; more wait,
    /// with a Warning event, so a mistake on the management cluster cannot wipe the region.
    #[arg(long, env = "SYNC_DELETION_BUDGET", default_value_t = DeletionBudget::default().max_deletions)]
    pub deletion_budget: u32,
    /// The window of --deletion-budget, in seconds.
    #[arg(long, env = "SYNC_DELETION_WINDOW_SECONDS",
          default_value_t = DeletionBudget::default().window.as_secs())]
    pub deletion_window_seconds: u64,
    /// How many objects of each kind are reconciled in parallel (at least 1).
    #[arg(long, env = "SYNC_CONCURRENCY", default_value_t = defaults().concurrency,
          value_parser = at_least_one)]
    pub concurrency: usize,
    /// Prefix of the annotations and finalizer the agent writes; keep the default to work
    /// with a management plane made for the Go sync-controller.
    #[arg(long, env = "SYNC_DOMAIN", default_value_t = defaults().domain)]
    pub domain: String,
    /// A label `key=value` for each namespace the agent creates; repeat it, or separate with
    /// commas.
    #[arg(long = "namespace-label", env = "SYNC_NAMESPACE_LABELS", value_delimiter = ',', value_parser = key_value)]
    pub namespace_labels: Vec<(String, String)>,
    /// An annotation `key=value` for each namespace the agent creates; repeat it, or separate
    /// with commas.
    #[arg(long = "namespace-annotation", env = "SYNC_NAMESPACE_ANNOTATIONS", value_delimiter = ',', value_parser = key_value)]
    pub namespace_annotations: Vec<(String, String)>,
}

fn part(part: Part, s: &str) -> Result<String, String> {
    sync_names::check_part(part, s)
        .map(|()| s.to_owned())
        .map_err(|p| p.to_string())
}

fn at_least_one(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a whole number of at least 1"))
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
    /// Name of the Lease, one for every kind of this agent.
    #[arg(long, env = "SYNC_LEASE_NAME", default_value = "sync-agent")]
    pub lease_name: String,
    /// Namespace of the Lease; it must exist. Also where --print-manifests puts the agent.
    #[arg(long, env = "SYNC_LEASE_NAMESPACE", default_value = "sync-system")]
    pub lease_namespace: String,
    /// This replica's name in the Lease, unique per replica (default: $HOSTNAME, the pod name
    /// in a cluster).
    #[arg(long, env = "SYNC_IDENTITY")]
    pub identity: Option<String>,
}

/// The process: HTTP address, shutdown, printing.
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
    /// Print the RBAC these kinds need on each cluster, as YAML, and exit. Contacts no
    /// cluster: RBAC needs only each kind's plural and group.
    #[arg(long)]
    pub print_rbac: bool,
    /// Print everything to run the agent in the local cluster (RBAC of both clusters,
    /// Namespace, ServiceAccount, a Deployment with leader election and these kinds), as YAML,
    /// and exit. Contacts no cluster.
    #[arg(long, conflicts_with = "print_rbac")]
    pub print_manifests: bool,
    /// Uninstall this region: for every kind, remove the agent's finalizer, claim and
    /// bookkeeping annotations from the remote objects of its shard, delete nothing, and exit
    /// (non-zero if any object is left). Stop the running agent first. Takes the same kinds and
    /// sync flags as the agent; contacts only the management cluster.
    #[arg(long, conflicts_with_all = ["print_rbac", "print_manifests"])]
    pub release_all: bool,
    /// The agent's user on the management cluster, as its remote kubeconfig authenticates it:
    /// the subject of the remote ClusterRoleBinding that --print-rbac prints.
    #[arg(long, env = "SYNC_REMOTE_USER", default_value = "sync-agent")]
    pub remote_user: String,
    /// The image of the Deployment that --print-manifests prints.
    #[arg(long, default_value = concat!("sync-agent:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
}

impl SyncFlags {
    /// `config` with these shared values over it.
    #[must_use]
    pub fn apply(&self, config: SyncConfig) -> SyncConfig {
        let config = config
            .remote_suffix(&self.remote_suffix)
            .remote_namespace_suffix(&self.remote_namespace_suffix)
            .local_namespace_suffix(&self.local_namespace_suffix)
            .namespace_prefix(&self.namespace_prefix)
            .on_remote_delete(options::named_value(
                &ON_REMOTE_DELETE,
                &self.on_remote_delete,
            ))
            .propagation(options::named_value(&PROPAGATION, &self.propagation))
            .deletion_budget(
                self.deletion_budget,
                Duration::from_secs(self.deletion_window_seconds),
            )
            .concurrency(self.concurrency)
            .domain(&self.domain);
        let config = self
            .namespace_labels
            .iter()
            .fold(config, |c, (k, v)| c.namespace_label(k, v));
        self.namespace_annotations
            .iter()
            .fold(config, |c, (k, v)| c.namespace_annotation(k, v))
    }

    /// The flags that differ from their defaults, to reproduce this configuration elsewhere
    /// (the Deployment of `--print-manifests`).
    pub fn to_args(&self) -> Vec<String> {
        let d = SyncFlags::default_values();
        let mut args = Vec::new();
        let mut differ = |flag: &str, v: String, default: String| {
            if v != default {
                args.push(format!("--{flag}={v}"));
            }
        };
        differ("remote-suffix", self.remote_suffix.clone(), d.remote_suffix);
        differ(
            "remote-namespace-suffix",
            self.remote_namespace_suffix.clone(),
            d.remote_namespace_suffix,
        );
        differ(
            "local-namespace-suffix",
            self.local_namespace_suffix.clone(),
            d.local_namespace_suffix,
        );
        differ(
            "namespace-prefix",
            self.namespace_prefix.clone(),
            d.namespace_prefix,
        );
        differ(
            "on-remote-delete",
            self.on_remote_delete.clone(),
            d.on_remote_delete,
        );
        differ("propagation", self.propagation.clone(), d.propagation);
        differ(
            "deletion-budget",
            self.deletion_budget.to_string(),
            d.deletion_budget.to_string(),
        );
        differ(
            "deletion-window-seconds",
            self.deletion_window_seconds.to_string(),
            d.deletion_window_seconds.to_string(),
        );
        differ(
            "concurrency",
            self.concurrency.to_string(),
            d.concurrency.to_string(),
        );
        differ("domain", self.domain.clone(), d.domain);
        for (k, v) in &self.namespace_labels {
            args.push(format!("--namespace-label={k}={v}"));
        }
        for (k, v) in &self.namespace_annotations {
            args.push(format!("--namespace-annotation={k}={v}"));
        }
        args
    }

    fn default_values() -> SyncFlags {
        Args::try_parse_from(["sync-agent"])
            .expect("the defaults parse")
            .sync
    }
}

/// Why the kinds cannot be known.
#[derive(Debug, thiserror::Error)]
pub enum KindsError {
    /// Neither `--resource` nor `--config`.
    #[error(
        "no kind to sync: give --resource PLURAL.VERSION.GROUP (repeatable, such as \
         --resource databases.v1.acme.dev) or --config FILE"
    )]
    None,
    /// A bad `--config`.
    #[error(transparent)]
    File(#[from] crate::file::FileError),
    /// A kind listed twice.
    #[error(transparent)]
    Resource(#[from] crate::resource::ResourceError),
}

impl Kinds {
    /// The kinds of `--config`, then those of `--resource`.
    ///
    /// # Errors
    ///
    /// When there is none, the file is refused, or a kind is listed twice.
    pub fn resources(&self) -> Result<Vec<Resource>, KindsError> {
        let mut all = match &self.config {
            Some(path) => crate::file::read(path)?,
            None => Vec::new(),
        };
        all.extend(self.resources.iter().cloned());
        if all.is_empty() {
            return Err(KindsError::None);
        }
        resource::check_distinct(&all)?;
        Ok(all)
    }
}
