//! The story the demo tells on the management cluster: create, change, pause, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use sync_core::Syncable;
use sync_examples::database::{CREDENTIALS, Database, DatabaseSpec, Engine};

use crate::rows::{LABEL, Target};
use crate::screen::Screen;
use crate::steps::{Expect::*, Steps};

/// The databases: (tenant, name, engine, version, storage). `reports-us` is another region's.
const DATABASES: [(&str, &str, Engine, &str, &str); 4] = [
    ("acme", "orders-eu", Engine::Postgres, "17", "10Gi"),
    ("globex", "billing-eu", Engine::Mysql, "8.4", "10Gi"),
    ("initech", "analytics-eu", Engine::Postgres, "16", "50Gi"),
    ("acme", "reports-us", Engine::Postgres, "17", "5Gi"),
];

/// The demo's objects; `run` ("" or a random "-xxxxx") keeps namespaces apart on clusters
/// that others use.
pub fn targets(run: &str) -> Vec<Target> {
    let suffix = Database::defaults().remote_suffix;
    let target = |(tenant, name, ..): &(&str, &str, Engine, &str, &str)| Target {
        namespace: format!("tenant-{tenant}{run}"),
        name: (*name).to_owned(),
        local: name.strip_suffix(suffix.as_str()).map(str::to_owned),
    };
    DATABASES.iter().map(target).collect()
}

fn label() -> BTreeMap<String, String> {
    let (k, v) = LABEL.split_once('=').unwrap_or_default();
    BTreeMap::from([(k.to_owned(), v.to_owned())])
}

/// What the management plane prepares: the tenant namespaces and, in each, the empty secret
/// that the region fills.
pub async fn prepare(remote: &Client, targets: &[Target], s: &mut Screen) -> anyhow::Result<()> {
    let secret_name = format!("{CREDENTIALS}{}", Database::defaults().remote_suffix);
    s.say(format!(
        "• Management plane: tenant namespaces, each with an empty secret {secret_name}"
    ));
    let pp = PostParams::default();
    let mut namespaces: Vec<&str> = targets.iter().map(|t| t.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    for ns in namespaces {
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.to_owned());
        n.metadata.labels = Some(label());
        let created = Api::<Namespace>::all(remote.clone()).create(&pp, &n).await;
        created.with_context(|| format!("cannot create namespace {ns}"))?;
        let mut secret = Secret::default();
        secret.metadata.name = Some(secret_name.clone());
        let created = Api::<Secret>::namespaced(remote.clone(), ns)
            .create(&pp, &secret)
            .await;
        created.with_context(|| format!("cannot create secret {ns}/{secret_name}"))?;
    }
    Ok(())
}

/// Every step, in order, each awaited on both clusters.
pub async fn tell(steps: &mut Steps, s: &mut Screen) -> anyhow::Result<()> {
    let (remote, targets) = (steps.remote.clone(), steps.targets.clone());
    let api = |i: usize| Api::<Database>::namespaced(remote.clone(), &targets[i].namespace);
    let name = |i: usize| targets[i].name.clone();
    let patch = |i: usize, body| async move {
        let (api, name) = (api(i), name(i));
        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(body))
            .await;
        patched
            .with_context(|| format!("cannot change {name}"))
            .map(drop)
    };
    for (i, (_, name, engine, version, storage)) in DATABASES.iter().enumerate() {
        let (version, storage) = ((*version).into(), (*storage).into());
        let spec = DatabaseSpec {
            engine: *engine,
            version,
            storage,
            replicas: 1,
            storage_class: None,
        };
        let mut db = Database::new(name, spec);
        db.metadata.labels = Some(label());
        let created = api(i).create(&PostParams::default(), &db).await;
        created.with_context(|| format!("cannot create {name}"))?;
    }
    let title =
        "Create orders-eu, billing-eu, analytics-eu here, and reports-us for another region";
    steps
        .step(s, title, &[Synced(1), Synced(1), Synced(1), Ignored])
        .await?;

    patch(1, json!({ "spec": { "storage": "20Gi" } })).await?;
    let title = "Resize billing-eu to 20Gi";
    steps
        .step(s, title, &[Synced(1), Synced(2), Synced(1), Ignored])
        .await?;

    let paused = json!({ "annotations": { "cloud.teleport.dev/paused": "true" } });
    patch(2, json!({ "metadata": paused, "spec": { "replicas": 3 } })).await?;
    let title = "Pause analytics-eu (cloud.teleport.dev/paused: \"true\"), then scale it to 3";
    let held = [Synced(1), Synced(2), Held(2, 1), Ignored];
    steps.step(s, title, &held).await?;
    let title = "While analytics-eu is paused, nothing syncs";
    steps.hold(s, title, Duration::from_secs(5), &held).await?;

    patch(
        2,
        json!({ "metadata": { "annotations": { "cloud.teleport.dev/paused": null } } }),
    )
    .await?;
    let title = "Unpause analytics-eu";
    steps
        .step(s, title, &[Synced(1), Synced(2), Synced(2), Ignored])
        .await?;

    let deleted = api(0).delete(&name(0), &DeleteParams::default()).await;
    deleted.context("cannot delete orders-eu")?;
    let title = "Delete orders-eu";
    steps
        .step(s, title, &[Gone, Synced(2), Synced(2), Ignored])
        .await
}

/// On clusters the demo did not start: deletes what it made, once the agent has released the
/// remote objects and removed the local namespaces it created.
pub async fn clean_up(steps: &mut Steps, s: &mut Screen) -> anyhow::Result<()> {
    let remote = steps.remote.clone();
    let demo = ListParams::default().labels(LABEL);
    for db in Api::<Database>::all(remote.clone()).list(&demo).await? {
        let api = Api::<Database>::namespaced(remote.clone(), &db.namespace().unwrap_or_default());
        api.delete(&db.name_any(), &DeleteParams::default()).await?;
    }
    let gone = vec![Gone; steps.targets.len()];
    let released = steps
        .step(s, "Clean up: delete the remaining databases", &gone)
        .await;
    let namespaces = Api::<Namespace>::all(remote);
    for ns in namespaces.list(&demo).await? {
        namespaces
            .delete(&ns.name_any(), &DeleteParams::default())
            .await?;
    }
    released
}
