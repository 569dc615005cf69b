//! Smoke tests of the test environment itself: each plane is a real, independent Kubernetes
//! control plane, with working controllers, audit log, fault injection and clean-up.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::json;
use sync_tests::crds::{Widget, WidgetSpec};
use sync_tests::{ControlPlane, KEEP_DIRS, install_crd, is_running, shared_pair, unique_name};

/// Bound for waits on controllers, which share 2 cores with several planes.
const WAIT: Duration = Duration::from_secs(90);

/// Polls `probe` until it returns `Ok`, or panics after `timeout` with what it saw last.
async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(observed) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last observed: {observed}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn named<K: kube::Resource<DynamicType = ()> + Default>(name: &str) -> K {
    let mut object = K::default();
    object.meta_mut().name = Some(name.to_owned());
    object
}

fn config_map(name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    let mut cm: ConfigMap = named(name);
    cm.data = Some([("key".to_owned(), name.to_owned())].into());
    if let Some(owner) = owner {
        cm.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "ConfigMap".to_owned(),
            name: owner.name_any(),
            uid: owner.uid().expect("a created object has a uid"),
            block_owner_deletion: Some(true),
            controller: Some(true),
        }]);
    }
    cm
}

async fn create_namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &named(name))
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

#[tokio::test]
async fn widget_crd_with_status_subresource_installs_and_serves_on_both_planes() {
    for plane in shared_pair().both() {
        let client = plane.client().await.unwrap();
        install_crd(&client, Widget::crd()).await.unwrap();
        let ns = unique_name("widget");
        create_namespace(&client, &ns).await;
        let api: Api<Widget> = Api::namespaced(client, &ns);

        let spec = WidgetSpec {
            size: 1,
            color: Some("blue".to_owned()),
        };
        let created = api
            .create(&PostParams::default(), &Widget::new("w", spec.clone()))
            .await
            .unwrap();
        let status = json!({
            "spec": {"size": 5},
            "status": {"phase": "Ready", "observedGeneration": 1},
        });
        let patched = api
            .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();

        let phase = patched.status.as_ref().and_then(|s| s.phase.as_deref());
        assert_eq!(phase, Some("Ready"), "on {}", plane.name());
        assert_eq!(
            patched.spec,
            spec,
            "the status subresource ignores spec on {}",
            plane.name()
        );
        assert_eq!(patched.metadata.generation, created.metadata.generation);
    }
}

#[tokio::test]
async fn objects_created_on_one_plane_are_absent_from_the_other_and_watched_separately() {
    let pair = shared_pair();
    let ns = unique_name("apart");
    let remote = pair.remote.client().await.unwrap();
    let local = pair.local.client().await.unwrap();
    create_namespace(&remote, &ns).await;
    create_namespace(&local, &ns).await;
    let remote_cms: Api<ConfigMap> = Api::namespaced(remote, &ns);
    let local_cms: Api<ConfigMap> = Api::namespaced(local, &ns);
    let mut remote_watch = remote_cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut local_watch = local_cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();

    // Remote's object first: if the planes shared anything, local's watch would see it
    // before its own.
    remote_cms
        .create(&PostParams::default(), &config_map("on-remote", None))
        .await
        .unwrap();
    local_cms
        .create(&PostParams::default(), &config_map("on-local", None))
        .await
        .unwrap();

    for (plane, watch, own) in [
        ("remote", &mut remote_watch, "on-remote"),
        ("local", &mut local_watch, "on-local"),
    ] {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = watch.try_next().await.unwrap() {
                let name = match &event {
                    WatchEvent::Added(cm) | WatchEvent::Modified(cm) | WatchEvent::Deleted(cm) => {
                        cm.name_any()
                    }
                    WatchEvent::Bookmark(_) => continue,
                    WatchEvent::Error(e) => format!("error: {e}"),
                };
                seen.push(name.clone());
                if name == own {
                    return;
                }
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "the {plane} watch did not see {own} in 30s; saw {seen:?}"
        );
        assert_eq!(
            seen,
            [own],
            "the {plane} watch saw objects of the other plane"
        );
    }
    assert!(remote_cms.get_opt("on-local").await.unwrap().is_none());
    assert!(local_cms.get_opt("on-remote").await.unwrap().is_none());
    assert_eq!(
        remote_cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        local_cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn deleting_a_namespace_with_content_completes_on_both_planes() {
    for plane in shared_pair().both() {
        let client = plane.client().await.unwrap();
        let ns = unique_name("doomed");
        create_namespace(&client, &ns).await;
        Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &config_map("content", None))
            .await
            .unwrap();

        let namespaces: Api<Namespace> = Api::all(client);
        namespaces
            .delete(&ns, &DeleteParams::default())
            .await
            .unwrap();

        let what = format!("namespace {ns} to be deleted on {}", plane.name());
        wait_until(&what, WAIT, || async {
            match namespaces.get_opt(&ns).await {
                Ok(None) => Ok(()),
                Ok(Some(n)) => Err(format!("{:?}", n.status)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    }
}

#[tokio::test]
async fn foreground_delete_of_an_owner_removes_its_blocking_dependent_first() {
    for plane in shared_pair().both() {
        let client = plane.client().await.unwrap();
        let ns = unique_name("gc");
        create_namespace(&client, &ns).await;
        let api: Api<ConfigMap> = Api::namespaced(client, &ns);
        let owner = api
            .create(&PostParams::default(), &config_map("owner", None))
            .await
            .unwrap();
        api.create(
            &PostParams::default(),
            &config_map("dependent", Some(&owner)),
        )
        .await
        .unwrap();

        api.delete("owner", &DeleteParams::foreground())
            .await
            .unwrap();

        let what = format!("owner and dependent to be deleted on {}", plane.name());
        wait_until(&what, WAIT, || async {
            let owner = api.get_opt("owner").await.map_err(|e| e.to_string())?;
            let dependent = api.get_opt("dependent").await.map_err(|e| e.to_string())?;
            match (&owner, &dependent) {
                (None, None) => Ok(()),
                (Some(_), None) | (None, Some(_)) | (Some(_), Some(_)) => Err(format!(
                    "owner finalizers: {:?}; dependent present: {}",
                    owner.map(|o| o.finalizers().to_vec()),
                    dependent.is_some()
                )),
            }
        })
        .await;
    }
}

#[tokio::test]
async fn audit_log_records_exactly_the_writes_of_a_least_privileged_user() {
    for plane in shared_pair().both() {
        let admin = plane.client().await.unwrap();
        let ns = unique_name("audit");
        let user = unique_name("probe-user");
        create_namespace(&admin, &ns).await;
        let mut role: Role = named("configmaps");
        role.rules = Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["create".to_owned(), "get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]);
        Api::<Role>::namespaced(admin.clone(), &ns)
            .create(&PostParams::default(), &role)
            .await
            .unwrap();
        let binding = RoleBinding {
            metadata: ObjectMeta {
                name: Some("configmaps".to_owned()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "Role".to_owned(),
                name: "configmaps".to_owned(),
            },
            subjects: Some(vec![Subject {
                kind: "User".to_owned(),
                name: user.clone(),
                ..Subject::default()
            }]),
        };
        Api::<RoleBinding>::namespaced(admin, &ns)
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();

        let as_user = plane.client_as(&user, &["probe-group"]).await.unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(as_user.clone(), &ns);
        // The authorizer sees the new binding through a cache; reads are not audited, so
        // wait with them.
        let what = format!("the binding of {user} to take effect on {}", plane.name());
        wait_until(&what, Duration::from_secs(30), || async {
            cms.list(&ListParams::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;

        let mark = plane.audit_mark().unwrap();
        cms.create(&PostParams::default(), &config_map("written", None))
            .await
            .unwrap();
        cms.get("written").await.unwrap();
        let denied = Api::<Secret>::namespaced(as_user, &ns)
            .create(&PostParams::default(), &named("not-allowed"))
            .await;
        assert!(
            matches!(&denied, Err(kube::Error::Api(s)) if s.is_forbidden()),
            "{denied:?}"
        );

        let events = plane
            .wait_for_audit(&mark, Duration::from_secs(10), |events| {
                events.iter().filter(|e| e.user == user).count() >= 2
            })
            .await
            .unwrap();
        let writes: Vec<_> = events
            .iter()
            .filter(|e| e.user == user)
            .map(|e| {
                (
                    e.verb.as_str(),
                    e.resource.as_str(),
                    e.namespace.as_str(),
                    e.name.as_str(),
                    e.code,
                )
            })
            .collect();
        assert_eq!(
            writes,
            [
                ("create", "configmaps", ns.as_str(), "written", 201),
                // Denied before its body was read, so without a name.
                ("create", "secrets", ns.as_str(), "", 403),
            ],
            "on {}",
            plane.name()
        );
        let probe = events.iter().find(|e| e.user == user).unwrap();
        assert!(probe.groups.iter().any(|g| g == "probe-group"));
    }
}

#[tokio::test]
async fn a_dedicated_plane_keeps_its_objects_across_apiserver_restart_and_pause_and_cleans_up_on_drop()
 {
    let plane = ControlPlane::start("restart").await.unwrap();
    let client = plane.client().await.unwrap();
    let ns = unique_name("restart");
    create_namespace(&client, &ns).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let before = cms
        .create(&PostParams::default(), &config_map("kept", None))
        .await
        .unwrap();

    plane.stop_apiserver().unwrap();
    let fresh: Api<ConfigMap> = Api::namespaced(plane.client().await.unwrap(), &ns);
    let down = tokio::time::timeout(Duration::from_secs(10), fresh.get("kept")).await;
    assert!(
        matches!(down, Ok(Err(_))),
        "a stopped API server must refuse connections; got {down:?}"
    );

    plane.start_apiserver().await.unwrap();
    // The old client's connection died with the server; it must reconnect by itself.
    let after = wait_until("the old client to read after restart", WAIT, || async {
        cms.get("kept").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(after.uid(), before.uid());
    assert_eq!(after.data, before.data);

    plane.pause_apiserver().unwrap();
    let paused = tokio::time::timeout(Duration::from_secs(3), cms.get("kept")).await;
    assert!(
        paused.is_err(),
        "a paused API server must not answer; got {paused:?}"
    );
    plane.resume_apiserver().unwrap();
    wait_until("a read after resume", WAIT, || async {
        cms.get("kept").await.map_err(|e| e.to_string())
    })
    .await;
    plane.check_running().unwrap();

    let pids: Vec<u32> = plane.pids().unwrap().into_iter().map(|(_, p)| p).collect();
    let dir = plane.dir().unwrap().to_owned();
    assert_eq!(pids.len(), 3);
    drop(plane);
    let alive: Vec<_> = pids.iter().filter(|p| is_running(**p)).collect();
    assert!(alive.is_empty(), "still running after drop: {alive:?}");
    let kept = std::env::var_os(KEEP_DIRS).is_some_and(|v| !v.is_empty() && v != "0");
    assert!(
        kept || !dir.exists(),
        "{} remains after drop",
        dir.display()
    );
}

#[tokio::test]
async fn a_killed_test_process_leaves_no_plane_process_or_folder_behind() {
    // The child starts a plane, prints its folder and pids, and waits to be killed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sync-testenv-child"))
        .env_remove(KEEP_DIRS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut output = Vec::new();
    let plane_line = loop {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(line) if line.starts_with("PLANE ") => break line,
            Ok(line) => output.push(line),
            Err(e) => panic!("the child printed no PLANE line ({e}); it printed: {output:#?}"),
        }
    };
    let mut words = plane_line.split(' ').skip(1);
    let dir = PathBuf::from(words.next().unwrap());
    let pids: Vec<u32> = words.map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 3, "{plane_line}");
    assert!(pids.iter().all(|p| is_running(*p)), "{plane_line}");

    child.kill().unwrap();
    child.wait().unwrap();

    wait_until(
        "the watchdog to kill the plane and remove its folder",
        Duration::from_secs(30),
        || async {
            let alive: Vec<_> = pids.iter().filter(|p| is_running(**p)).collect();
            if alive.is_empty() && !dir.exists() {
                Ok(())
            } else {
                Err(format!(
                    "running: {alive:?}; folder exists: {}",
                    dir.exists()
                ))
            }
        },
    )
    .await;
}
