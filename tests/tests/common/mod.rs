//! What the two-cluster behaviour tests share: a synced test kind, a controller runner that
//! works under the library's least-privilege RBAC, and bounded waits.
#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, CustomResource, CustomResourceExt, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::{SyncConfig, Syncable};
use sync_tests::{AuditEvent, ControlPlane, Pair, install_crd, shared_pair};
use tokio::sync::{OnceCell, oneshot};
use tokio::task::JoinHandle;

/// The synced test kind. Its local CRD defaults `replicas` to 1 while the remote CRD does
/// not, so every test also exercises "local defaulting causes no write loop".
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "acme.test",
    version = "v1",
    kind = "Database",
    namespaced,
    status = "DatabaseStatus"
)]
pub struct DatabaseSpec {
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Local-only: never copied from the remote object, never reverted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

// A hand-written implementation, as the `Syncable` docs describe.
impl Syncable for Database {
    type Spec = DatabaseSpec;
    type Status = DatabaseStatus;
    fn defaults() -> SyncConfig {
        SyncConfig::new("database-sync")
    }
    fn spec(&self) -> &DatabaseSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut DatabaseSpec {
        &mut self.spec
    }
    fn status(&self) -> Option<&DatabaseStatus> {
        self.status.as_ref()
    }
    fn from_parts(metadata: ObjectMeta, spec: DatabaseSpec) -> Self {
        Database {
            metadata,
            spec,
            status: None,
        }
    }
    fn copy_spec(remote: &DatabaseSpec, local: &mut DatabaseSpec) {
        local.size.clone_from(&remote.size);
        local.replicas.clone_from(&remote.replicas);
    }
    fn new_local_spec(remote: &DatabaseSpec) -> DatabaseSpec {
        DatabaseSpec {
            size: remote.size.clone(),
            replicas: remote.replicas,
            local_note: None,
        }
    }
}

/// The local CRD: the same as the remote one, plus a default for `replicas` and a limit on
/// `size` that the remote CRD does not have, so the local API can reject a remote spec.
pub fn local_crd() -> CustomResourceDefinition {
    let mut crd = Database::crd();
    let mut v = serde_json::to_value(&crd).unwrap();
    let spec = &mut v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    spec["replicas"]["default"] = serde_json::json!(1);
    spec["size"]["maxLength"] = serde_json::json!(20);
    crd = serde_json::from_value(v).unwrap();
    crd
}

/// The remote CRD: `size` may also be an integer there, which the typed spec cannot read, so a
/// test can make a remote spec that does not deserialise.
pub fn remote_crd() -> CustomResourceDefinition {
    let mut v = serde_json::to_value(Database::crd()).unwrap();
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] =
        serde_json::json!({"x-kubernetes-int-or-string": true});
    serde_json::from_value(v).unwrap()
}

pub fn pair() -> &'static Pair {
    shared_pair()
}

/// Installs the CRDs once per test binary.
pub async fn setup() -> &'static Pair {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off,sync_core=info".into()),
        )
        .with_test_writer()
        .try_init();
    let pair = pair();
    CRDS.get_or_init(|| async {
        let (r, l) = (
            pair.remote.client().await.unwrap(),
            pair.local.client().await.unwrap(),
        );
        install_crd(&r, remote_crd()).await.unwrap();
        install_crd(&l, local_crd()).await.unwrap();
    })
    .await;
    pair
}

pub async fn admin(p: &ControlPlane) -> Client {
    p.client().await.unwrap()
}

/// Binds `user` to `rules` through a ClusterRole of its own.
pub async fn grant(client: &Client, user: &str, rules: Vec<PolicyRule>) {
    let name = format!("test-{user}");
    let pp = PatchParams::apply("sync-tests").force();
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    roles
        .patch(
            &name,
            &pp,
            &Patch::Apply(sync_core::rbac::cluster_role(&name, rules)),
        )
        .await
        .unwrap();
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    bindings
        .patch(&format!("test-{user}"), &pp, &Patch::Apply(binding))
        .await
        .unwrap();
}

/// A reconciler running in the background as its own user, with only the RBAC that
/// `sync_core::rbac` says it needs on each cluster.
pub struct Running {
    pub user: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), sync_core::Error>>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

pub async fn start<K: Syncable>(
    pair: &Pair,
    user: &str,
    configure: impl FnOnce(SyncConfig) -> SyncConfig,
) -> Running {
    let config = configure(K::defaults().controller_name(user));
    grant(
        &admin(&pair.remote).await,
        user,
        sync_core::rbac::remote_rules::<K>(&config),
    )
    .await;
    grant(
        &admin(&pair.local).await,
        user,
        sync_core::rbac::local_rules::<K>(&config, false),
    )
    .await;
    let remote = pair.remote.client_as(user, &[]).await.unwrap();
    let local = pair.local.client_as(user, &[]).await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let builder = K::reconciler(remote, local)
        .configure(|_| config)
        .backoff(Duration::from_millis(200), Duration::from_secs(5))
        .shutdown_deadline(Duration::from_secs(5));
    let handle = tokio::spawn(builder.run(async move {
        let _ = rx.await;
    }));
    Running {
        user: user.to_owned(),
        stop: Some(tx),
        handle: Some(handle),
    }
}

/// Polls `check` until it returns `Ok`, for at most `timeout`; panics with the last
/// observation otherwise.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last observed: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub const WAIT: Duration = Duration::from_secs(30);

pub async fn create_namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

pub fn db(name: &str, size: &str) -> Database {
    Database::new(
        name,
        DatabaseSpec {
            size: size.into(),
            replicas: None,
            local_note: None,
        },
    )
}

pub async fn get_opt<
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
>(
    client: &Client,
    ns: &str,
    name: &str,
) -> Option<K> {
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

pub fn annotation<K: Resource>(o: &K, key: &str) -> Option<String> {
    o.meta().annotations.as_ref()?.get(key).cloned()
}

pub const D: &str = "cloud.teleport.dev";

/// Warning events on the remote object `name` in `ns` with this reason.
pub async fn events_for(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<KubeEvent> {
    let api: Api<KubeEvent> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

/// Writes by `user` in the audit events.
pub fn writes_by<'a>(events: &'a [AuditEvent], user: &str) -> Vec<&'a AuditEvent> {
    events.iter().filter(|e| e.user == user).collect()
}

pub fn describe(events: &[&AuditEvent]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "\n  {} {}/{} {}/{} -> {}",
                e.verb, e.resource, e.subresource, e.namespace, e.name, e.code
            )
        })
        .collect()
}

/// Sets the local status as a local controller would: observedGeneration = generation.
pub async fn set_local_status(client: &Client, ns: &str, name: &str, phase: &str) -> i64 {
    let api: Api<Database> = Api::namespaced(client.clone(), ns);
    let cur = api.get(name).await.unwrap();
    let g = cur.metadata.generation.unwrap();
    let body = serde_json::json!({"status": {"observedGeneration": g, "phase": phase}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap();
    g
}
