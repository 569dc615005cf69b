//! The demo's two clusters: two control planes of its own (the test environment), or existing
//! clusters named by flags.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_core::Syncable;
use sync_examples::agent::client;
use sync_examples::database::Database;
use sync_examples::flags::Args;
use sync_examples::manifests::{self, NAMESPACE, REMOTE_USER, SERVICE_ACCOUNT};
use sync_tests::{Binaries, Pair, install_crd};

use crate::screen::{Screen, ticking};

/// Flags that point the demo at existing clusters instead of starting its own.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Existing {
    /// Run on an existing management cluster: its kubeconfig.
    #[arg(long, value_name = "PATH")]
    pub remote_kubeconfig: Option<PathBuf>,
    /// Run on an existing management cluster: its context (in --remote-kubeconfig, or in the
    /// default kubeconfig).
    #[arg(long, value_name = "NAME")]
    pub remote_context: Option<String>,
    /// The existing regional cluster's kubeconfig (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub local_kubeconfig: Option<PathBuf>,
    /// The existing regional cluster's context (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub local_context: Option<String>,
}

/// What `--generic` runs: the demo's Database kind named by its resource, with the options
/// that the `#[sync(...)]` attribute gives the example agent.
pub const GENERIC_RESOURCE: &str =
    "databases.v1.acme.dev:secrets=db-credentials,local-only=/spec/storageClass";

/// Admin clients of both clusters, and the flags the agent runs with.
pub struct Clusters {
    pub remote: Client,
    pub local: Client,
    pub agent: Args,
    /// The same clusters and leader election for the generic `sync-agent`, with the Database
    /// kind and the example's values as its flags.
    pub generic: sync_agent::flags::Args,
    /// Whether the demo started the clusters, and so may leave its objects to go with them.
    pub own: bool,
    /// The planes, when the demo started them; dropping them stops them.
    pub pair: Option<Pair>,
}

/// The clusters that `e` names, or two planes of the demo's own.
pub async fn connect(e: &Existing, generic: bool, s: &mut Screen) -> anyhow::Result<Clusters> {
    let remote = [
        path_flag("--remote-kubeconfig", &e.remote_kubeconfig),
        flag("--remote-context", &e.remote_context),
    ];
    let local = [
        path_flag("--local-kubeconfig", &e.local_kubeconfig),
        flag("--local-context", &e.local_context),
    ];
    let given: Vec<String> = remote
        .iter()
        .chain(&local)
        .flatten()
        .flatten()
        .cloned()
        .collect();
    if given.is_empty() {
        return start(s, generic).await;
    }
    if remote.iter().all(Option::is_none) {
        bail!("name the management cluster too: --remote-kubeconfig or --remote-context");
    }
    s.say("• Connecting to the existing clusters");
    let remote = client(e.remote_kubeconfig.as_deref(), e.remote_context.as_deref()).await;
    let local = client(e.local_kubeconfig.as_deref(), e.local_context.as_deref()).await;
    let (remote, local) = (
        remote.context("remote cluster")?,
        local.context("local cluster")?,
    );
    install(s, &remote, &local).await?;
    s.say(
        "  The agent runs with your credentials here; examples/yaml has its least-privilege RBAC.",
    );
    Ok(Clusters {
        remote,
        local,
        agent: agent_args(given.clone()),
        generic: generic_args(given),
        own: false,
        pair: None,
    })
}

async fn start(s: &mut Screen, generic: bool) -> anyhow::Result<Clusters> {
    s.say("• Starting two control planes, remote and local: etcd, kube-apiserver and");
    s.say("  kube-controller-manager each. The first run builds them from source (about 5 minutes");
    s.say("  on 2 cores, progress below); later runs take seconds.");
    let located = tokio::task::spawn_blocking(Binaries::locate);
    ticking(s, "building the control-plane binaries", located).await??;
    let started = Instant::now();
    let pair = ticking(s, "starting the control planes", Pair::start()).await;
    let pair = pair.context("cannot start the control planes")?;
    s.say(format!(
        "  both planes ready in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let (remote, local) = (pair.remote.client().await?, pair.local.client().await?);
    install(s, &remote, &local).await?;

    // With SYNC_TEST_*_KUBECONFIG set, the pair is existing clusters: no users to make there.
    let own = pair.remote.dir().is_some() && pair.local.dir().is_some();
    let mut flags = match own {
        true => grant(s, &pair, &remote, &local, generic).await?,
        false => vec![
            path(pair.remote.kubeconfig()),
            path(pair.local.kubeconfig()),
        ],
    };
    flags = [
        "--remote-kubeconfig",
        &flags[0],
        "--local-kubeconfig",
        &flags[1],
    ]
    .map(String::from)
    .to_vec();
    if own {
        let leader = [
            "--leader-election",
            "--lease-namespace",
            NAMESPACE,
            "--identity",
            "demo-agent",
        ];
        flags.extend(leader.map(String::from));
    }
    Ok(Clusters {
        remote,
        local,
        agent: agent_args(flags.clone()),
        generic: generic_args(flags),
        own,
        pair: Some(pair),
    })
}

/// Applies the agent's RBAC from `examples/yaml` and returns kubeconfigs of the identities
/// it binds: the agent then runs with least privilege, as it would in a real deployment.
async fn grant(
    s: &mut Screen,
    pair: &Pair,
    remote: &Client,
    local: &Client,
    generic: bool,
) -> anyhow::Result<Vec<String>> {
    let source = match generic {
        true => "sync-agent --print-rbac",
        false => "examples/yaml",
    };
    s.say(format!(
        "• Granting the agent its RBAC from {source}: user {REMOTE_USER} on remote,"
    ));
    s.say(format!(
        "  service account {NAMESPACE}/{SERVICE_ACCOUNT} on local; nothing more"
    ));
    let config = Database::defaults();
    let (namespace, _, _) = manifests::agent();
    apply(local, &namespace).await?;
    if generic {
        // The same identities, bound to what the generic agent prints for the same kind.
        let args = generic_args(Vec::new());
        let resources = args.kinds.resources()?;
        let (role, binding) = sync_agent::manifests::remote_rbac(&args, &resources);
        apply(remote, &role).await?;
        apply(remote, &binding).await?;
        let (role, binding) = sync_agent::manifests::local_rbac(&args, &resources, true);
        apply(local, &role).await?;
        apply(local, &binding).await?;
    } else {
        let (role, binding) = manifests::remote_rbac(&config);
        apply(remote, &role).await?;
        apply(remote, &binding).await?;
        let (role, binding) = manifests::local_rbac(&config, true);
        apply(local, &role).await?;
        apply(local, &binding).await?;
    }
    let user = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
    let ns_group = format!("system:serviceaccounts:{NAMESPACE}");
    let groups = ["system:serviceaccounts", &ns_group];
    let remote = pair.remote.kubeconfig_for_user(REMOTE_USER, &[])?;
    Ok(vec![
        path(&remote),
        path(&pair.local.kubeconfig_for_user(&user, &groups)?),
    ])
}

fn flag(name: &str, value: &Option<String>) -> Option<[String; 2]> {
    value.as_ref().map(|v| [name.to_owned(), v.clone()])
}

fn path_flag(name: &str, value: &Option<PathBuf>) -> Option<[String; 2]> {
    value.as_deref().map(|v| [name.to_owned(), path(v)])
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The agent's flags: the demo's clusters, a free port, a short shutdown.
fn agent_args(flags: Vec<String>) -> Args {
    let fixed = [
        "agent",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-seconds",
        "5",
    ]
    .map(String::from);
    Args::parse_from(fixed.into_iter().chain(flags))
}

/// The generic agent's flags: the example agent's `flags`, the Database kind by resource, the
/// example's `#[sync(...)]` values as shared flags, and the identities the demo grants.
fn generic_args(flags: Vec<String>) -> sync_agent::flags::Args {
    use clap::Parser as _;
    let fixed = [
        "sync-agent",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-seconds",
        "5",
        "--resource",
        GENERIC_RESOURCE,
        "--remote-suffix=-eu",
        "--namespace-prefix=tenant-",
        "--propagation=background",
        "--remote-user",
        REMOTE_USER,
        // The Lease's name also names the service account the local RBAC binds.
        "--lease-name",
        SERVICE_ACCOUNT,
    ]
    .map(String::from);
    sync_agent::flags::Args::parse_from(fixed.into_iter().chain(flags))
}

async fn install(s: &mut Screen, remote: &Client, local: &Client) -> anyhow::Result<()> {
    s.say("• Installing the Database CRD (examples/yaml/crd.yaml) on both clusters");
    let crds = tokio::join!(
        install_crd(remote, Database::crd()),
        install_crd(local, Database::crd())
    );
    crds.0.context("remote CRD")?;
    crds.1.context("local CRD")
}

async fn apply<K>(client: &Client, object: &K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let pp = PatchParams::apply("sync-demo").force();
    let applied = Api::<K>::all(client.clone())
        .patch(&name, &pp, &Patch::Apply(object))
        .await;
    applied.with_context(|| format!("cannot apply {} {name}", K::kind(&())))?;
    Ok(())
}
