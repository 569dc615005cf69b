//! What the two-cluster behaviour tests share beyond `sync_tests::harness`: bounded waits and
//! small helpers.
#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource};
pub use sync_tests::harness::*;
use sync_tests::unique_name;
use sync_tests::{AuditEvent, AuditMark, Pair, shared_pair};

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

/// The current end of both planes' audit logs (remote, local).
pub fn marks() -> (AuditMark, AuditMark) {
    (
        pair().remote.audit_mark().unwrap(),
        pair().local.audit_mark().unwrap(),
    )
}

/// Writes by `user` on both planes since `marks`, remote first.
pub fn writes_on_both_since(marks: &(AuditMark, AuditMark), user: &str) -> Vec<AuditEvent> {
    let mut w: Vec<AuditEvent> =
        writes_by(&pair().remote.audit_events_since(&marks.0).unwrap(), user)
            .into_iter()
            .cloned()
            .collect();
    w.extend(
        writes_by(&pair().local.audit_events_since(&marks.1).unwrap(), user)
            .into_iter()
            .cloned(),
    );
    w
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

/// One test's clients and names on the shared pair.
pub struct T {
    pub r: Client,
    pub l: Client,
    pub name: String,
    pub ns: String,
}

/// A test's own namespace prefix (`<name>-`) and a first remote namespace in it.
pub async fn test_env(prefix: &str) -> T {
    let pair = setup().await;
    let name = unique_name(prefix);
    let ns = format!("{name}-a");
    let r = admin(&pair.remote).await;
    create_namespace(&r, &ns).await;
    T {
        r,
        l: admin(&pair.local).await,
        ns,
        name,
    }
}

impl T {
    /// The test's namespace prefix, `<name>-`.
    pub fn prefix(&self) -> String {
        format!("{}-", self.name)
    }
    pub fn remote(&self, ns: &str) -> Api<Database> {
        Api::namespaced(self.r.clone(), ns)
    }
    pub fn local(&self, ns: &str) -> Api<Database> {
        Api::namespaced(self.l.clone(), ns)
    }
    pub async fn create(&self, ns: &str, o: &Database) -> Database {
        self.remote(ns)
            .create(&PostParams::default(), o)
            .await
            .unwrap()
    }
    /// Waits until the remote object records the current remote and local generations.
    pub async fn converged(
        &self,
        rns: &str,
        rname: &str,
        lns: &str,
        lname: &str,
    ) -> (Database, Database) {
        let (ra, la) = (self.remote(rns), self.local(lns));
        eventually(
            &format!("{rns}/{rname} synced to {lns}/{lname}"),
            WAIT,
            || async {
                let r = ra.get(rname).await.map_err(|e| e.to_string())?;
                let l = la
                    .get_opt(lname)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no local copy")?;
                let ok = annotation(&r, &format!("{D}/sync-remote-generation"))
                    == r.metadata.generation.map(|g| g.to_string())
                    && annotation(&r, &format!("{D}/sync-local-generation"))
                        == l.metadata.generation.map(|g| g.to_string())
                    && r.finalizers().contains(&format!("{D}/sync-local"))
                    && l.spec.size == r.spec.size;
                if ok {
                    Ok((r, l))
                } else {
                    Err(format!(
                        "remote {:?} {:?} gen {:?}; local spec {:?} gen {:?}",
                        r.metadata.annotations,
                        r.finalizers(),
                        r.metadata.generation,
                        l.spec,
                        l.metadata.generation
                    ))
                }
            },
        )
        .await
    }
    pub async fn gone<K>(&self, api: &Api<K>, name: &str)
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        eventually(&format!("{name} to be gone"), WAIT, || async {
            match api.get_opt(name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(o) => Err(format!("still there: {o:?}")),
            }
        })
        .await
    }
}
