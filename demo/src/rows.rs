//! What the demo looks at: each remote `Database` and its local copy, read from both clusters.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use sync_core::Syncable;
use sync_examples::database::{CREDENTIALS, Database};

/// The label on every demo object; the agent copies it to the local copies.
pub const LABEL: &str = "app.kubernetes.io/part-of=sync-demo";
const REMOTE_GENERATION: &str = "cloud.teleport.dev/sync-remote-generation";
const LOCAL_GENERATION: &str = "cloud.teleport.dev/sync-local-generation";
const PAUSED: &str = "cloud.teleport.dev/paused";

/// A remote object of the demo, and the name of its local copy (`None`: another region's).
#[derive(Clone, Debug)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub local: Option<String>,
}

/// One object as both clusters see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// Remote `metadata.generation`; `None` once the remote object is gone.
    pub remote_gen: Option<i64>,
    pub paused: bool,
    pub deleting: bool,
    /// The `sync-remote-generation` annotation: the remote generation applied locally.
    pub applied: Option<i64>,
    /// The `sync-local-generation` annotation: the local generation right after that apply.
    pub applied_local: Option<i64>,
    pub local_gen: Option<i64>,
    pub local_ns: bool,
    /// The remote status's `Ready` condition: `Ready`, or the reason it is not.
    pub status: Option<String>,
    /// The remote status's `observedGeneration` (a local generation, copied up).
    pub observed: Option<i64>,
    /// Whether the local credentials reached the remote secret: `empty`, `stale` or `synced`.
    pub secret: Option<&'static str>,
}

impl Row {
    /// The generation contract of the README: the remote status describes the remote spec.
    pub fn current(&self) -> bool {
        self.remote_gen.is_some()
            && self.remote_gen == self.applied
            && self.observed.is_some()
            && self.observed == self.applied_local
    }
}

type Data = BTreeMap<String, ByteString>;

/// Reads every target from both clusters, with five list requests.
pub async fn observe(
    remote: &Client,
    local: &Client,
    targets: &[Target],
) -> kube::Result<Vec<Row>> {
    let remote_secret = format!("{CREDENTIALS}{}", Database::defaults().remote_suffix);
    let demo = ListParams::default().labels(LABEL);
    let named = |name: &str| ListParams::default().fields(&format!("metadata.name={name}"));
    let (remote_named, local_named) = (named(&remote_secret), named(CREDENTIALS));
    let (remote_dbs, local_dbs) = (
        Api::<Database>::all(remote.clone()),
        Api::all(local.clone()),
    );
    let (remote_secrets, local_secrets) =
        (Api::<Secret>::all(remote.clone()), Api::all(local.clone()));
    let (namespaces, all) = (Api::<Namespace>::all(local.clone()), ListParams::default());
    let (remote_dbs, local_dbs, namespaces, remote_secrets, local_secrets) = tokio::try_join!(
        remote_dbs.list(&demo),
        local_dbs.list(&demo),
        namespaces.list_metadata(&all),
        remote_secrets.list(&remote_named),
        local_secrets.list(&local_named),
    )?;
    let by_key = |list: Vec<Database>| -> BTreeMap<(String, String), Database> {
        let key = |o: &Database| (o.namespace().unwrap_or_default(), o.name_any());
        list.into_iter().map(|o| (key(&o), o)).collect()
    };
    let by_namespace = |list: Vec<Secret>| -> BTreeMap<String, Data> {
        let entry = |s: Secret| {
            (
                s.namespace().unwrap_or_default(),
                s.data.unwrap_or_default(),
            )
        };
        list.into_iter().map(entry).collect()
    };
    let (remote_dbs, local_dbs) = (by_key(remote_dbs.items), by_key(local_dbs.items));
    let remote_secrets = by_namespace(remote_secrets.items);
    let local_secrets = by_namespace(local_secrets.items);
    let namespaces: Vec<String> = namespaces.items.iter().map(|n| n.name_any()).collect();
    let row = |t: &Target| {
        let r = remote_dbs.get(&(t.namespace.clone(), t.name.clone()));
        let local_key = t.local.as_ref().map(|l| (t.namespace.clone(), l.clone()));
        let l = local_key.and_then(|k| local_dbs.get(&k));
        let annotation = |k: &str| r.and_then(|r| r.annotations().get(k)?.parse().ok());
        let status = r.and_then(|r| r.status.as_ref());
        let ready = status.and_then(|s| s.condition("Ready"));
        let secret = match (
            remote_secrets.get(&t.namespace),
            local_secrets.get(&t.namespace),
        ) {
            _ if l.is_none() => None,
            (None, _) => None,
            (Some(remote), _) if remote.is_empty() => Some("empty"),
            (Some(remote), Some(local)) if remote == local => Some("synced"),
            (Some(_), _) => Some("stale"),
        };
        Row {
            remote_gen: r.and_then(|r| r.metadata.generation),
            paused: r.is_some_and(|r| r.annotations().get(PAUSED).is_some_and(|v| v == "true")),
            deleting: r.is_some_and(|r| r.metadata.deletion_timestamp.is_some()),
            applied: annotation(REMOTE_GENERATION),
            applied_local: annotation(LOCAL_GENERATION),
            local_gen: l.and_then(|l| l.metadata.generation),
            local_ns: t.local.is_some() && namespaces.contains(&t.namespace),
            status: ready.map(|c| {
                if c.status == "True" {
                    "Ready".into()
                } else {
                    c.reason.clone()
                }
            }),
            observed: status.and_then(|s| s.observed_generation),
            secret,
        }
    };
    Ok(targets.iter().map(row).collect())
}
