//! What the two-cluster behaviour tests share beyond `sync_tests::harness`: bounded waits and
//! small helpers.
#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource};
pub use sync_tests::harness::*;
use sync_tests::{AuditEvent, Pair, shared_pair};

pub fn pair() -> &'static Pair {
    shared_pair()
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
