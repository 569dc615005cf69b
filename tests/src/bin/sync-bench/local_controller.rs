//! A minimal local controller, as a region's own operator would be: it knows nothing about
//! syncing. For every local `Database` it sets `status.observedGeneration` and a phase, and for
//! objects labelled [`SECRET_LABEL`] it creates the controlled secret that the sync controller
//! sends up. It runs as a user of its own, so its writes are not counted as the controller's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sync_tests::harness::Database;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::child::SECRET;

/// The label (copied down from the remote object) that asks for a controlled secret.
pub const SECRET_LABEL: &str = "bench.sync.dev/secret";

/// The phase the local controller writes.
pub const PHASE: &str = "Ready";

/// Writes in parallel at most.
const CONCURRENCY: usize = 16;

/// The running local controller; it stops when dropped.
pub struct LocalController(JoinHandle<()>);

impl Drop for LocalController {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the local controller.
pub fn start(client: Client) -> LocalController {
    LocalController(tokio::spawn(async move {
        let api = Api::<Database>::all(client.clone());
        // Generations already handled, and secrets already created, per object.
        let done: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let secrets: Arc<Mutex<HashSet<String>>> = Arc::default();
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut events = std::pin::pin!(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
        );
        while let Some(o) = events.next().await {
            let Ok(db) = o else { continue };
            let key = format!("{}/{}", db.namespace().unwrap_or_default(), db.name_any());
            let generation = db.metadata.generation.unwrap_or_default();
            let status_due = db.status.as_ref().and_then(|s| s.observed_generation)
                != Some(generation)
                && done.lock().unwrap().get(&key) != Some(&generation);
            let secret_due = db.labels().get(SECRET_LABEL).is_some_and(|v| v == "true")
                && !secrets.lock().unwrap().contains(&key);
            if !status_due && !secret_due {
                continue;
            }
            if status_due {
                done.lock().unwrap().insert(key.clone(), generation);
            }
            if secret_due {
                secrets.lock().unwrap().insert(key.clone());
            }
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let client = client.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if status_due {
                    write_status(&client, &db, generation).await;
                }
                if secret_due {
                    create_secret(&client, &db).await;
                }
            });
        }
    }))
}

async fn write_status(client: &Client, db: &Database, generation: i64) {
    let api = Api::<Database>::namespaced(client.clone(), &db.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "status": { "observedGeneration": generation, "phase": PHASE }
    });
    if let Err(e) = api
        .patch_status(&db.name_any(), &PatchParams::default(), &Patch::Merge(body))
        .await
    {
        eprintln!("local controller: status of {} failed: {e}", db.name_any());
    }
}

async fn create_secret(client: &Client, db: &Database) {
    let ns = db.namespace().unwrap_or_default();
    let owner = OwnerReference {
        api_version: Database::api_version(&()).into_owned(),
        kind: Database::kind(&()).into_owned(),
        name: db.name_any(),
        uid: db.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.to_owned()),
            namespace: Some(ns.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                "password".to_owned(),
                ByteString(format!("pw-{}", db.name_any()).into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    let api = Api::<Secret>::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => eprintln!("local controller: secret in {ns} failed: {e}"),
    }
}
