//! A `SyncManager` running in the background as its own user, bound only to the union of the
//! RBAC rules `sync_core::rbac` emits for the kinds it runs, as each kind is configured.
//!
//! ```no_run
//! use sync_core::{SyncManager, Syncable};
//! use sync_tests::crds::Widget;
//! use sync_tests::managed::{KindRules, start_manager};
//!
//! # async fn demo() {
//! let pair = sync_tests::shared_pair();
//! let mut m = start_manager(pair, "my-user", None, |m: SyncManager, rules: &KindRules| {
//!     m.add::<Widget>(|k| rules.typed(k.configure(|c| c.namespace_prefix("my-test-"))))
//! })
//! .await;
//! m.wait_ready(std::time::Duration::from_secs(30)).await;
//! m.stop().await;
//! # }
//! ```
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::ApiResource;
use sync_core::{
    Dynamic, KindBuilder, LeaderElection, Local, Remote, RunError, SyncManager, Syncable, rbac,
};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::Pair;
use crate::harness::{admin, grant};

/// How long a manager may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The rules of each kind added to a manager, remote and local, recorded from the
/// configuration the kind really runs with.
#[derive(Clone)]
pub struct KindRules {
    leader_election: bool,
    rules: Arc<Mutex<(Vec<PolicyRule>, Vec<PolicyRule>)>>,
}

impl KindRules {
    /// Rules for a manager with (or without) leader election.
    pub fn new(leader_election: bool) -> KindRules {
        KindRules {
            leader_election,
            rules: Arc::default(),
        }
    }

    /// Records the rules of the typed kind `K` as configured in `k`, and hands `k` back.
    pub fn typed<K: Syncable>(&self, k: KindBuilder<K>) -> KindBuilder<K> {
        let (remote, local) = (
            rbac::remote_rules::<K>(k.config()),
            rbac::local_rules::<K>(k.config(), self.leader_election),
        );
        self.record(remote, local);
        k
    }

    /// Records the rules of the kind `resource`, chosen at run time, as configured in `k`, and
    /// hands `k` back.
    pub fn dynamic(&self, resource: &ApiResource, k: KindBuilder<Dynamic>) -> KindBuilder<Dynamic> {
        let (remote, local) = (
            rbac::remote_rules_for(resource, k.config()),
            rbac::local_rules_for(resource, k.config(), self.leader_election),
        );
        self.record(remote, local);
        k
    }

    fn record(&self, remote: Vec<PolicyRule>, local: Vec<PolicyRule>) {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.0.extend(remote);
        rules.1.extend(local);
    }

    /// Binds `user` on each cluster of `pair` to the rules recorded.
    ///
    /// # Panics
    ///
    /// When no kind recorded its rules, or a binding fails.
    pub async fn grant(&self, pair: &Pair, user: &str) {
        let (remote, local) = self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(!remote.is_empty(), "no kind recorded its rules");
        grant(&admin(&pair.remote).await, user, remote).await;
        grant(&admin(&pair.local).await, user, local).await;
    }
}

/// A manager running in the background. Aborted when dropped.
pub struct RunningManager {
    /// The user it runs as on both clusters.
    pub user: String,
    /// Its readiness, taken before it started.
    pub ready: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), RunError>>>,
}

impl RunningManager {
    /// Stops it and waits until `run` returns.
    ///
    /// # Panics
    ///
    /// When it does not stop within 30 s, panicked, or `run` returned an error.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            let result = tokio::time::timeout(STOP_TIMEOUT, h)
                .await
                .unwrap_or_else(|_| panic!("the manager of {} did not stop", self.user));
            if let Err(e) = result.expect("the manager panicked") {
                panic!("the manager of {} failed: {e}", self.user);
            }
        }
    }

    /// Waits until its readiness is true.
    ///
    /// # Panics
    ///
    /// After `timeout`, or when it stops first.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let user = self.user.clone();
        tokio::time::timeout(timeout, self.ready.wait_for(|r| *r))
            .await
            .unwrap_or_else(|_| panic!("the manager of {user} was not ready after {timeout:?}"))
            .unwrap_or_else(|_| panic!("the manager of {user} stopped before it was ready"));
    }
}

impl Drop for RunningManager {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Starts a manager as `user` on `pair`, with only the RBAC its kinds need: `kinds` adds them
/// and records each one's rules in the [`KindRules`] it is given. Its shutdown deadline is 5 s.
///
/// # Panics
///
/// When a client cannot be made or the RBAC cannot be bound.
pub async fn start_manager(
    pair: &Pair,
    user: &str,
    leader: Option<LeaderElection>,
    kinds: impl FnOnce(SyncManager, &KindRules) -> SyncManager,
) -> RunningManager {
    let rules = KindRules::new(leader.is_some());
    let remote = pair.remote.client_as(user, &[]).await.unwrap();
    let local = pair.local.client_as(user, &[]).await.unwrap();
    let mut manager = kinds(SyncManager::new(Remote(remote), Local(local)), &rules)
        .shutdown_deadline(Duration::from_secs(5));
    if let Some(leader) = leader {
        manager = manager.leader_election(leader);
    }
    rules.grant(pair, user).await;
    let ready = manager.readiness();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(manager.run(async move {
        let _ = rx.await;
    }));
    RunningManager {
        user: user.to_owned(),
        ready,
        stop: Some(tx),
        handle: Some(handle),
    }
}
