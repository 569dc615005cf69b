//! A kind that uses `#[derive(Syncable)]` syncs end to end between two real clusters, with a
//! local-only field and a run-time override of a compile-time value.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;
use sync_tests::{install_crd, unique_name};

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "derive.test",
    version = "v1",
    kind = "Cache",
    namespaced,
    status = "CacheStatus"
)]
#[sync(remote_suffix = "-compile-time", concurrency = 4)]
pub struct CacheSpec {
    pub size: String,
    #[sync(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
pub struct CacheStatus {
    pub ready: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_kind_syncs_end_to_end_and_run_time_overrides_win() {
    let pair = setup().await;
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    install_crd(&r, Cache::crd()).await.unwrap();
    install_crd(&l, Cache::crd()).await.unwrap();
    assert_eq!(Cache::defaults().remote_suffix, "-compile-time");
    assert_eq!(Cache::defaults().concurrency, 4);

    let name = unique_name("derive");
    let ns = format!("{name}-a");
    create_namespace(&r, &ns).await;
    let ctl = start::<Cache>(pair, &name, |c| {
        c.namespace_prefix(format!("{name}-")).remote_suffix("-eu")
    })
    .await;
    let (remote, local) = (
        Api::<Cache>::namespaced(r.clone(), &ns),
        Api::<Cache>::namespaced(l.clone(), &ns),
    );
    let mut c = Cache::new(
        "hot-eu",
        CacheSpec {
            size: "1Gi".into(),
            local_note: Some("from remote".into()),
        },
    );
    remote.create(&PostParams::default(), &c).await.unwrap();
    c.metadata.name = Some("cold-compile-time".into());
    remote.create(&PostParams::default(), &c).await.unwrap();

    let copy = eventually("the local copy of hot-eu", WAIT, || async {
        local
            .get_opt("hot")
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "absent".to_string())
    })
    .await;
    assert_eq!(copy.spec.size, "1Gi");
    assert_eq!(
        copy.spec.local_note, None,
        "a skipped field was copied from the remote"
    );

    // The local-only field survives a remote change and is never reverted.
    let note = serde_json::json!({"spec": {"local_note": "mine"}});
    local
        .patch("hot", &PatchParams::default(), &Patch::Merge(note))
        .await
        .unwrap();
    let grow = serde_json::json!({"spec": {"size": "2Gi"}});
    remote
        .patch("hot-eu", &PatchParams::default(), &Patch::Merge(grow))
        .await
        .unwrap();
    eventually(
        "the remote change, with the local note kept",
        WAIT,
        || async {
            let c = local.get("hot").await.map_err(|e| e.to_string())?;
            if c.spec.size == "2Gi" && c.spec.local_note.as_deref() == Some("mine") {
                Ok(())
            } else {
                Err(format!("{:?}", c.spec))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        local.get("hot").await.unwrap().spec.local_note.as_deref(),
        Some("mine")
    );
    // The compile-time suffix was overridden: its objects are someone else's now.
    assert!(local.get_opt("cold").await.unwrap().is_none());
    assert!(
        remote
            .get("cold-compile-time")
            .await
            .unwrap()
            .metadata
            .finalizers
            .is_none()
    );
    ctl.stop().await;
}
