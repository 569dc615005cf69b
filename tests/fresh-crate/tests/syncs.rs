//! The crate's kind runs on the sync workspace's two-cluster test environment, the way a user
//! would test their operator: the reconciler runs in-process as its own user, bound only to the
//! rules `sync_core::rbac` emits for it.

use std::time::{Duration, Instant};

use fresh_operator::{Bucket, BucketSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use sync_core::{Local, Remote, Syncable};
use sync_tests::harness::grant_controller;
use sync_tests::{install_crd, shared_pair, unique_name};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_derived_outside_the_workspace_syncs_its_remote_object_down() {
    let pair = shared_pair();
    let (admin_remote, admin_local) = (
        pair.remote.client().await.unwrap(),
        pair.local.client().await.unwrap(),
    );
    install_crd(&admin_remote, Bucket::crd()).await.unwrap();
    install_crd(&admin_local, Bucket::crd()).await.unwrap();

    let user = unique_name("fresh");
    let ns = format!("{user}-team");
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    Api::<Namespace>::all(admin_remote.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();

    let config = Bucket::defaults()
        .controller_name(user.as_str())
        .namespace_prefix(format!("{user}-"));
    grant_controller::<Bucket>(pair, &user, &config, false).await;
    let remote = pair.remote.client_as(&user, &[]).await.unwrap();
    let local = pair.local.client_as(&user, &[]).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        Bucket::reconciler(Remote(remote), Local(local))
            .configure(|_| config)
            .run(async move {
                let _ = stopped.await;
            }),
    );

    let bucket = Bucket::new(
        "photos-eu",
        BucketSpec {
            size: "10Gi".into(),
        },
    );
    Api::<Bucket>::namespaced(admin_remote, &ns)
        .create(&PostParams::default(), &bucket)
        .await
        .unwrap();

    let copies = Api::<Bucket>::namespaced(admin_local, &ns);
    let started = Instant::now();
    let copy = loop {
        let seen = copies.get_opt("photos").await;
        match &seen {
            Ok(Some(copy)) if copy.spec.size == "10Gi" => break copy.clone(),
            _ if started.elapsed() > WAIT => panic!(
                "no local copy of {ns}/photos-eu within {WAIT:?}; last seen: {:?}",
                seen.map(|c| c.map(|c| (c.name_any(), c.spec)))
            ),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    assert_eq!(copy.namespace().as_deref(), Some(ns.as_str()));

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the reconciler stops within 30 s of its shutdown signal")
        .unwrap()
        .expect("the reconciler stops without an error");
}
