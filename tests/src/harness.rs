//! What two-cluster tests, the fault tests and the benchmark share: a synced test kind with
//! CRDs that differ between the clusters as real ones do, and a runner that starts a reconciler
//! as its own user, bound only to the RBAC rules `sync_core::rbac` emits.
#![allow(missing_docs)]

use std::time::Duration;

use crate::{ControlPlane, Pair, install_crd, shared_pair};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::core::ObjectMeta;
use kube::{Client, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::{Local, Remote, SyncConfig, Syncable};
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

/// The shared pair of this test binary with the test CRDs installed (once), and test logging
/// set up from `RUST_LOG`.
pub async fn setup() -> &'static Pair {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off,sync_core=info".into()),
        )
        .with_test_writer()
        .try_init();
    let pair = shared_pair();
    CRDS.get_or_init(|| async {
        let (r, l) = (
            pair.remote.client().await.unwrap(),
            pair.local.client().await.unwrap(),
        );
        install_crds(&r, &l).await;
    })
    .await;
    pair
}

/// Installs the remote CRD on `remote` and the local one on `local`.
pub async fn install_crds(remote: &Client, local: &Client) {
    install_crd(remote, remote_crd()).await.unwrap();
    install_crd(local, local_crd()).await.unwrap();
}

/// A new admin client of a plane.
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
    handle: Option<JoinHandle<Result<(), sync_core::RunError>>>,
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

/// Binds `user` on each cluster to exactly the rules `sync_core::rbac` emits for `config`.
pub async fn grant_controller<K: Syncable>(
    pair: &Pair,
    user: &str,
    config: &SyncConfig,
    leader_election: bool,
) {
    grant(
        &admin(&pair.remote).await,
        user,
        sync_core::rbac::remote_rules::<K>(config),
    )
    .await;
    grant(
        &admin(&pair.local).await,
        user,
        sync_core::rbac::local_rules::<K>(config, leader_election),
    )
    .await;
}

pub async fn start<K: Syncable>(
    pair: &Pair,
    user: &str,
    configure: impl FnOnce(SyncConfig) -> SyncConfig,
) -> Running {
    let config = configure(K::defaults().controller_name(user));
    grant_controller::<K>(pair, user, &config, false).await;
    let remote = pair.remote.client_as(user, &[]).await.unwrap();
    let local = pair.local.client_as(user, &[]).await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let builder = K::reconciler(Remote(remote), Local(local))
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

/// The arguments of `sync-test-controller` for `user`: its own kubeconfigs on each cluster
/// (bound only to what the test grants), the controller name `user`, then `extra`.
pub fn controller_args(pair: &Pair, user: &str, extra: &[&str]) -> Vec<String> {
    let kubeconfig = |p: &ControlPlane| {
        p.kubeconfig_for_user(user, &[])
            .unwrap()
            .display()
            .to_string()
    };
    let mut args = vec![
        "--remote-kubeconfig".to_owned(),
        kubeconfig(&pair.remote),
        "--local-kubeconfig".to_owned(),
        kubeconfig(&pair.local),
        "--name".to_owned(),
        user.to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}
