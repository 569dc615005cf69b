//! The ceiling: the same writes issued directly by a plain client, without watching, at the
//! controller's concurrency. Both runs use fresh namespaces and no controller is running.
//!
//! - [`controller_writes`] issues the controller's minimal writes only (namespace creates,
//!   local creates, remote metadata patches, remote status patches); the remote objects exist
//!   beforehand, outside the clock. This is the brief's `ceiling_objects_per_second`.
//! - [`pipeline`] issues every write a convergence run makes, by anyone: the management
//!   plane's remote creates, the controller's writes, the local controller's status writes and
//!   secrets. The convergence run's clock covers all of those too, so this is the like-for-like
//!   comparison.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use sync_core::Keys;
use sync_tests::harness::Database;
use tokio::time::Instant;

use crate::child::SECRET;
use crate::layout::{Layout, REMOTE_SUFFIX};
use crate::local_controller::PHASE;
use crate::procstat::CpuMeter;

/// Runs `f` for `0..n`, `concurrency` at a time, stopping at the first error.
pub async fn for_each<F, Fut>(n: usize, concurrency: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    stream::iter(0..n)
        .map(f)
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn keys() -> Keys {
    Keys::new(sync_core::DEFAULT_DOMAIN)
}

/// The local copy of a remote object, shaped as the controller creates it (the remote name
/// without the controller's suffix).
fn local_copy(remote: &Database) -> Database {
    let name = remote.name_any();
    let name = name.strip_suffix(REMOTE_SUFFIX).unwrap_or(&name);
    let mut local = Database::new(name, remote.spec.clone());
    let labels = remote.metadata.labels.clone().unwrap_or_default();
    let managed = json!({"labels": labels.keys().collect::<Vec<_>>(), "annotations": []});
    local.metadata.namespace = remote.metadata.namespace.clone();
    local.metadata.labels = Some(labels);
    local.metadata.annotations = Some([(keys().managed_keys, managed.to_string())].into());
    local
}

async fn create_local_namespaces(
    local: &Client,
    layout: &Layout,
    concurrency: usize,
) -> Result<()> {
    let api = Api::<Namespace>::all(local.clone());
    for_each(layout.namespaces, concurrency, |i| {
        let api = api.clone();
        let mut ns = layout.namespace_object(i);
        ns.metadata.annotations = Some([(keys().namespace_owner, layout.name(i))].into());
        async move {
            api.create(&PostParams::default(), &ns)
                .await
                .context("create a local namespace")?;
            Ok(())
        }
    })
    .await
}

/// Creates the remote namespaces and the remote secrets of a layout: what the management
/// plane has in place before the objects come.
pub async fn prepare_remote(remote: &Client, layout: &Layout, concurrency: usize) -> Result<()> {
    let namespaces = Api::<Namespace>::all(remote.clone());
    for_each(layout.namespaces, concurrency, |i| {
        let api = namespaces.clone();
        let ns = layout.namespace_object(i);
        async move {
            api.create(&PostParams::default(), &ns)
                .await
                .context("create a remote namespace")?;
            Ok(())
        }
    })
    .await?;
    for_each(layout.secrets, concurrency, |i| {
        let api = Api::<Secret>::namespaced(remote.clone(), &layout.namespace(i));
        let s = layout.remote_secret(i);
        async move {
            api.create(&PostParams::default(), &s)
                .await
                .context("create a remote secret")?;
            Ok(())
        }
    })
    .await
}

fn meta_patch(resource_version: &str, local_generation: i64) -> Patch<serde_json::Value> {
    let k = keys();
    Patch::Merge(json!({"metadata": {
        "resourceVersion": resource_version,
        "finalizers": [k.finalizer],
        "annotations": {
            k.remote_generation: "1",
            k.local_generation: local_generation.to_string(),
        },
    }}))
}

fn status_patch(generation: i64) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"status": {"observedGeneration": generation, "phase": PHASE}}))
}

/// Seconds to issue the controller's minimal writes for `layout` on remote objects that
/// already exist.
pub async fn controller_writes(
    remote: &Client,
    local: &Client,
    layout: &Layout,
    concurrency: usize,
) -> Result<Duration> {
    prepare_remote(remote, layout, concurrency).await?;
    let remote_objects: Vec<Database> = stream::iter(0..layout.objects)
        .map(|j| {
            let api = Api::<Database>::namespaced(remote.clone(), &layout.namespace_of(j));
            let o = layout.remote_object(j);
            async move { api.create(&PostParams::default(), &o).await }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
        .context("create the ceiling's remote objects")?;
    let started = Instant::now();
    create_local_namespaces(local, layout, concurrency).await?;
    let pp = PatchParams::default();
    for_each(layout.objects, concurrency, |j| {
        let r = &remote_objects[j];
        let ns = layout.namespace_of(j);
        let local_api = Api::<Database>::namespaced(local.clone(), &ns);
        let remote_api = Api::<Database>::namespaced(remote.clone(), &ns);
        let body = local_copy(r);
        let pp = &pp;
        async move {
            let l = local_api.create(&PostParams::default(), &body).await?;
            let rv = r.resource_version().unwrap_or_default();
            let generation = l.metadata.generation.unwrap_or(1);
            remote_api
                .patch(&r.name_any(), pp, &meta_patch(&rv, generation))
                .await?;
            remote_api
                .patch_status(&r.name_any(), pp, &status_patch(generation))
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(started.elapsed())
}

/// Seconds to issue every write of a convergence run for `layout`, by one plain client, and
/// the CPU time `meter` splits them into.
pub async fn pipeline(
    remote: &Client,
    local: &Client,
    layout: &Layout,
    concurrency: usize,
    meter: &CpuMeter,
) -> Result<(Duration, serde_json::Value)> {
    prepare_remote(remote, layout, concurrency).await?;
    let cpu = meter.snapshot();
    let started = Instant::now();
    create_local_namespaces(local, layout, concurrency).await?;
    let pp = PatchParams::default();
    for_each(layout.objects, concurrency, |j| {
        let ns = layout.namespace_of(j);
        let local_api = Api::<Database>::namespaced(local.clone(), &ns);
        let remote_api = Api::<Database>::namespaced(remote.clone(), &ns);
        let local_secrets = Api::<Secret>::namespaced(local.clone(), &ns);
        let remote_secrets = Api::<Secret>::namespaced(remote.clone(), &ns);
        let pp = &pp;
        async move {
            let r = remote_api
                .create(&PostParams::default(), &layout.remote_object(j))
                .await?;
            let l = local_api
                .create(&PostParams::default(), &local_copy(&r))
                .await?;
            let generation = l.metadata.generation.unwrap_or(1);
            local_api
                .patch_status(&l.name_any(), pp, &status_patch(generation))
                .await?;
            let rv = r.resource_version().unwrap_or_default();
            remote_api
                .patch(&r.name_any(), pp, &meta_patch(&rv, generation))
                .await?;
            let patched = remote_api
                .patch_status(&r.name_any(), pp, &status_patch(generation))
                .await?;
            if layout.has_secret(j) {
                let data: std::collections::BTreeMap<String, ByteString> =
                    [("password".to_owned(), ByteString(b"pw".to_vec()))].into();
                let owner = |o: &Database| OwnerReference {
                    api_version: Database::api_version(&()).into_owned(),
                    kind: Database::kind(&()).into_owned(),
                    name: o.name_any(),
                    uid: o.uid().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: None,
                };
                let secret = |o: &Database| Secret {
                    metadata: ObjectMeta {
                        name: Some(SECRET.to_owned()),
                        namespace: Some(ns.clone()),
                        owner_references: Some(vec![owner(o)]),
                        ..ObjectMeta::default()
                    },
                    data: Some(data.clone()),
                    ..Secret::default()
                };
                let created = local_secrets
                    .create(&PostParams::default(), &secret(&l))
                    .await?;
                let mut remote_secret = secret(&patched);
                remote_secret.metadata.name = Some(Layout::remote_secret_name());
                remote_secrets
                    .replace(
                        &Layout::remote_secret_name(),
                        &PostParams::default(),
                        &remote_secret,
                    )
                    .await?;
                let versions = json!({ SECRET: created.resource_version() }).to_string();
                remote_api
                    .patch(
                        &r.name_any(),
                        pp,
                        &Patch::Merge(json!({"metadata": {
                            "resourceVersion": patched.resource_version(),
                            "annotations": { keys().secret_versions: versions },
                        }})),
                    )
                    .await?;
            }
            Ok(())
        }
    })
    .await?;
    let seconds = started.elapsed();
    Ok((seconds, cpu.split_until(&meter.snapshot())))
}
