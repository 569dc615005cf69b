//! `sync-agent` as a process, on two real control planes, as users bound only to the RBAC that
//! its own `--print-rbac` prints.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_tests::controller::ControllerProcess;
use sync_tests::crds::{Widget, WidgetSpec};
use sync_tests::second_kind::{self, Cache};
use sync_tests::{ControlPlane, Pair, install_crd, shared_pair, unique_name};
use tokio::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_sync-agent");
const NAMESPACE: &str = "sync-system";

/// A kind installed on the remote cluster only.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "missing.agent.sync.dev",
    version = "v1",
    kind = "Gadget",
    namespaced
)]
struct GadgetSpec {
    size: i32,
}

/// A kind without a status subresource, with a field the region owns.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "nostatus.agent.sync.dev",
    version = "v1",
    kind = "Gizmo",
    namespaced
)]
struct GizmoSpec {
    size: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
}

/// Runs `sync-agent` with `args` to its end, within `timeout`.
async fn run_to_end(args: &[String], timeout: Duration) -> Output {
    let child = Command::new(AGENT)
        .args(args)
        .env("RUST_LOG", "info")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(timeout, child)
        .await
        .unwrap_or_else(|_| panic!("sync-agent {args:?} still runs after {timeout:?}"))
        .expect("sync-agent starts")
}

/// Who the agent is on each cluster, and the kubeconfigs that authenticate it.
struct Identity {
    remote_user: String,
    lease_name: String,
    remote_kubeconfig: PathBuf,
    local_kubeconfig: PathBuf,
}

impl Identity {
    fn new(pair: &Pair, prefix: &str) -> Identity {
        let remote_user = unique_name(prefix);
        let lease_name = unique_name(prefix);
        let sa = format!("system:serviceaccount:{NAMESPACE}:{lease_name}");
        let ns_group = format!("system:serviceaccounts:{NAMESPACE}");
        let groups = ["system:serviceaccounts", ns_group.as_str()];
        Identity {
            remote_kubeconfig: pair.remote.kubeconfig_for_user(&remote_user, &[]).unwrap(),
            local_kubeconfig: pair.local.kubeconfig_for_user(&sa, &groups).unwrap(),
            remote_user,
            lease_name,
        }
    }

    /// The flags that name the agent: for `--print-rbac` and for running alike.
    fn flags(&self) -> Vec<String> {
        [
            "--remote-user",
            &self.remote_user,
            "--lease-name",
            &self.lease_name,
            "--lease-namespace",
            NAMESPACE,
        ]
        .map(String::from)
        .to_vec()
    }

    fn cluster_flags(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            "--remote-kubeconfig".into(),
            path(&self.remote_kubeconfig),
            "--local-kubeconfig".into(),
            path(&self.local_kubeconfig),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ]
    }

    /// Runs `sync-agent --print-rbac` with `kinds` and applies what it prints, each half on its
    /// cluster.
    async fn grant(&self, pair: &Pair, kinds: &[String]) {
        let mut args = self.flags();
        args.extend(kinds.iter().cloned());
        args.push("--print-rbac".into());
        let out = run_to_end(&args, Duration::from_secs(10)).await;
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "--print-rbac failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (remote, local) = text
            .split_once("# On this (local) cluster:\n")
            .unwrap_or_else(|| panic!("no local part in:\n{text}"));
        apply_rbac(&pair.remote, remote).await;
        apply_rbac(&pair.local, local).await;
    }
}

/// Applies the ClusterRoles and ClusterRoleBindings of `yaml` as the admin.
async fn apply_rbac(plane: &ControlPlane, yaml: &str) {
    let client = plane.client().await.unwrap();
    let pp = PatchParams::apply("agent-test").force();
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    assert_eq!(docs.len(), 2, "{yaml}");
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
        match doc["kind"].as_str() {
            Some("ClusterRole") => {
                let role: ClusterRole = serde_json::from_value(doc).unwrap();
                let api = Api::<ClusterRole>::all(client.clone());
                api.patch(&name, &pp, &Patch::Apply(&role)).await.unwrap();
            }
            Some("ClusterRoleBinding") => {
                let binding: ClusterRoleBinding = serde_json::from_value(doc).unwrap();
                let api = Api::<ClusterRoleBinding>::all(client.clone());
                api.patch(&name, &pp, &Patch::Apply(&binding))
                    .await
                    .unwrap();
            }
            other => panic!("unexpected {other:?} in --print-rbac"),
        }
    }
}

async fn namespace(client: &Client, name: &str) {
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_crd_missing_on_the_local_cluster_stops_the_agent_at_start_up_before_any_write() {
    let pair = shared_pair();
    let remote = pair.remote.client().await.unwrap();
    install_crd(&remote, Gadget::crd()).await.unwrap();
    // A remote object it would otherwise sync.
    let ns = unique_name("tenant");
    namespace(&remote, &ns).await;
    Api::<Gadget>::namespaced(remote.clone(), &ns)
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    let agent = Identity::new(pair, "agent-missing");
    let kinds = [
        "--resource".to_owned(),
        "gadgets.v1.missing.agent.sync.dev".to_owned(),
    ];
    agent.grant(pair, &kinds).await;
    let marks = [
        pair.remote.audit_mark().unwrap(),
        pair.local.audit_mark().unwrap(),
    ];

    let started = Instant::now();
    let mut args = agent.flags();
    args.extend(agent.cluster_flags());
    args.extend(kinds);
    let out = run_to_end(&args, Duration::from_secs(30)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "sync-agent ended in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        out.status
    );

    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = "error: the local cluster does not serve gadgets.v1.missing.agent.sync.dev: \
                    it serves no API group missing.agent.sync.dev/v1 (is the CRD installed \
                    there, with version v1 served?)";
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    // Nothing was written, on either cluster.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (plane, mark) in pair.both().into_iter().zip(&marks) {
        let writes: Vec<_> = plane
            .audit_events_since(mark)
            .unwrap()
            .into_iter()
            .filter(|e| e.user == agent.remote_user || e.user.contains(&agent.lease_name))
            .collect();
        assert!(writes.is_empty(), "{} saw writes: {writes:?}", plane.name());
    }
}

/// Waits until `f` returns something, printing what was last seen and the agent's output on
/// timeout.
async fn eventually<T, F: Future<Output = Result<T, String>>>(
    what: &str,
    agent: &ControllerProcess,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => panic!(
                "timed out after {timeout:?} waiting for {what}; last seen: {seen}; the agent's \
                 output ended with:{}",
                agent.tail(30)
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn two_resource_flags_sync_both_kinds_as_users_bound_to_the_printed_rbac() {
    let pair = shared_pair();
    let (remote, local) = (
        pair.remote.client().await.unwrap(),
        pair.local.client().await.unwrap(),
    );
    for c in [&remote, &local] {
        install_crd(c, Widget::crd()).await.unwrap();
        install_crd(c, Cache::crd()).await.unwrap();
    }
    let ns = unique_name("tenant");
    namespace(&remote, &ns).await;
    let pp = PostParams::default();
    let widgets = |c: &Client| Api::<Widget>::namespaced(c.clone(), &ns);
    let caches = |c: &Client| Api::<Cache>::namespaced(c.clone(), &ns);
    let spec = WidgetSpec {
        size: 3,
        color: Some("red".into()),
    };
    widgets(&remote)
        .create(&pp, &Widget::new("w-eu", spec.clone()))
        .await
        .unwrap();
    caches(&remote)
        .create(&pp, &second_kind::cache("c-eu", "1Gi"))
        .await
        .unwrap();

    let agent = Identity::new(pair, "agent-two");
    let kinds: Vec<String> = [
        "--resource",
        "widgets.v1.test.sync.dev",
        "--resource",
        "caches.v1.test.sync.dev:controller-name=cache-agent",
        "--remote-suffix=-eu",
    ]
    .map(String::from)
    .to_vec();
    agent.grant(pair, &kinds).await;
    let mut args = agent.flags();
    args.extend(agent.cluster_flags());
    args.extend(kinds);
    let started = Instant::now();
    let mut process = ControllerProcess::spawn("sync-agent", Path::new(AGENT), &args);

    // Both kinds come down, spec and all.
    let got = eventually(
        "the local Widget",
        &process,
        Duration::from_secs(40),
        || async {
            match widgets(&local).get_opt("w").await {
                Ok(Some(w)) => Ok(w),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(got.spec, spec);
    let cache = eventually(
        "the local Cache",
        &process,
        Duration::from_secs(20),
        || async {
            match caches(&local).get_opt("c").await {
                Ok(Some(c)) => Ok(c),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(cache.spec.size, "1Gi");
    eprintln!("both kinds down in {:.1}s", started.elapsed().as_secs_f64());

    // Both statuses go up.
    let status = |v: Value| Patch::Merge(serde_json::json!({ "status": v }));
    let patch = PatchParams::default();
    widgets(&local)
        .patch_status(
            "w",
            &patch,
            &status(serde_json::json!({ "phase": "Ready", "observedGeneration": 1 })),
        )
        .await
        .unwrap();
    caches(&local)
        .patch_status(
            "c",
            &patch,
            &status(serde_json::json!({ "ready": true, "observedGeneration": 1 })),
        )
        .await
        .unwrap();
    eventually(
        "the Widget's status up",
        &process,
        Duration::from_secs(20),
        || async {
            let w = widgets(&remote)
                .get("w-eu")
                .await
                .map_err(|e| e.to_string())?;
            let phase = w.status.as_ref().and_then(|s| s.phase.clone());
            (phase.as_deref() == Some("Ready"))
                .then_some(())
                .ok_or(format!("{:?}", w.status))
        },
    )
    .await;
    eventually(
        "the Cache's status up",
        &process,
        Duration::from_secs(20),
        || async {
            let c = caches(&remote)
                .get("c-eu")
                .await
                .map_err(|e| e.to_string())?;
            let ready = c.status.as_ref().and_then(|s| s.ready);
            (ready == Some(true))
                .then_some(())
                .ok_or(format!("{:?}", c.status))
        },
    )
    .await;
    eprintln!(
        "both statuses up in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    assert!(
        process.terminate(Duration::from_secs(15)).await,
        "sync-agent did not stop cleanly on SIGTERM:{}",
        process.tail(30)
    );
    let warnings: Vec<_> = process
        .lines()
        .into_iter()
        .filter(|l| l.is_warning())
        .collect();
    assert!(warnings.is_empty(), "warnings: {warnings:?}");

    // Uninstalling the region releases both kinds' objects, with the same flags and RBAC.
    let mut release = args.clone();
    release.push("--release-all".into());
    let out = run_to_end(&release, Duration::from_secs(30)).await;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "--release-all failed:\n{log}");
    assert_eq!(
        log.matches("released; nothing was deleted").count(),
        2,
        "{log}"
    );
    let ours = |meta: &kube::core::ObjectMeta| {
        let finalizers = meta.finalizers.iter().flatten().cloned();
        let annotations = meta.annotations.iter().flatten().map(|(k, _)| k.clone());
        finalizers
            .chain(annotations)
            .filter(|k| k.starts_with("cloud.teleport.dev/"))
            .collect::<Vec<_>>()
    };
    let w = widgets(&remote).get("w-eu").await.unwrap();
    assert_eq!(ours(&w.metadata), Vec::<String>::new(), "{:?}", w.metadata);
    let c = caches(&remote).get("c-eu").await.unwrap();
    assert_eq!(ours(&c.metadata), Vec::<String>::new(), "{:?}", c.metadata);
}

#[tokio::test]
async fn a_kind_without_status_is_synced_down_with_a_warning_and_keeps_its_local_only_field() {
    let pair = shared_pair();
    let (remote, local) = (
        pair.remote.client().await.unwrap(),
        pair.local.client().await.unwrap(),
    );
    for c in [&remote, &local] {
        install_crd(c, Gizmo::crd()).await.unwrap();
    }
    let ns = unique_name("tenant");
    namespace(&remote, &ns).await;
    let gizmos = |c: &Client| Api::<Gizmo>::namespaced(c.clone(), &ns);
    let spec = GizmoSpec {
        size: 1,
        zone: Some("from-remote".into()),
    };
    gizmos(&remote)
        .create(&PostParams::default(), &Gizmo::new("g", spec))
        .await
        .unwrap();
    let agent = Identity::new(pair, "agent-nostatus");
    let kinds: Vec<String> = [
        "--resource",
        "gizmos.v1.nostatus.agent.sync.dev:local-only=/spec/zone",
    ]
    .map(String::from)
    .to_vec();
    agent.grant(pair, &kinds).await;
    let mut args = agent.flags();
    args.extend(agent.cluster_flags());
    args.extend(kinds);
    let mut process = ControllerProcess::spawn("sync-agent", Path::new(AGENT), &args);
    process
        .wait_for_line("the no-status warning", 0, Duration::from_secs(20), |l| {
            l.is_warning()
                && l.text.contains(
                    "no status subresource on the remote (management) and local cluster: \
                     syncing the spec down, and no status up",
                )
        })
        .await;

    // The spec comes down without the local-only field.
    let copy = eventually(
        "the local Gizmo",
        &process,
        Duration::from_secs(30),
        || async {
            match gizmos(&local).get_opt("g").await {
                Ok(Some(g)) => Ok(g),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(copy.spec.size, 1);
    assert_eq!(copy.spec.zone, None);
    // The region sets it; a remote change comes down and leaves it as the region set it.
    let merge = |v: Value| Patch::Merge(v);
    let pp = PatchParams::default();
    let zone = serde_json::json!({ "spec": { "zone": "eu-west-1a" } });
    gizmos(&local).patch("g", &pp, &merge(zone)).await.unwrap();
    let size = serde_json::json!({ "spec": { "size": 2 } });
    gizmos(&remote).patch("g", &pp, &merge(size)).await.unwrap();
    let copy = eventually(
        "size 2 on the local Gizmo",
        &process,
        Duration::from_secs(20),
        || async {
            let g = gizmos(&local).get("g").await.map_err(|e| e.to_string())?;
            (g.spec.size == 2)
                .then_some(g.clone())
                .ok_or(format!("{:?}", g.spec))
        },
    )
    .await;
    assert_eq!(copy.spec.zone.as_deref(), Some("eu-west-1a"));
    assert!(
        process.terminate(Duration::from_secs(15)).await,
        "{}",
        process.tail(30)
    );
}
