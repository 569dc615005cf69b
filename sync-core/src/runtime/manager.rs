//! Several kinds in one process: [`SyncManager`] runs one reconciler per kind over one
//! Lease, one readiness, one shutdown, one reachability per cluster and one namespace watch.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared as SharedFuture};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PartialObjectMeta};
use kube::runtime::reflector;
use tokio::sync::watch;
use tracing::info;

use super::Shared;
use super::kind::{Added, KindBuilder, Running};
use super::pass::Elected;
use super::watches::namespace_watch;
use crate::clients::{Local, Remote};
use crate::config::SyncConfig;
use crate::dynamic::{Dynamic, DynamicKind};
use crate::error::{ConfigError, RunError};
use crate::leader::{Fence, LeaderElection};
use crate::metrics::{Cluster, Metrics};
use crate::reachability::Reachability;
use crate::readiness::{DEFAULT_UNREADY_AFTER, Readiness};
use crate::syncable::{SyncObject, Syncable};

/// See [`SyncManager::request_timeout`].
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings that hold for every kind of a manager (or the one kind of a [`SyncBuilder`](crate::SyncBuilder)).
pub(super) struct Settings {
    pub(super) remote: Client,
    pub(super) local: Client,
    pub(super) metrics: Metrics,
    pub(super) shutdown_deadline: Duration,
    pub(super) request_timeout: Duration,
    pub(super) ready: Option<Arc<AtomicBool>>,
    pub(super) readiness: watch::Sender<bool>,
    pub(super) unready_after: Duration,
    pub(super) leader: Option<LeaderElection>,
}

impl Settings {
    pub(super) fn new(remote: Remote, local: Local) -> Self {
        Settings {
            remote: remote.0,
            local: local.0,
            metrics: Metrics::default(),
            shutdown_deadline: Duration::from_secs(10),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ready: None,
            readiness: watch::Sender::new(false),
            unready_after: DEFAULT_UNREADY_AFTER,
            leader: None,
        }
    }
}

/// Syncs several kinds from one process: one reconciler per kind, sharing one Lease, one
/// readiness, one shutdown, one reachability per cluster and one watch of local namespaces.
///
/// Each kind keeps its own controller name (so its own claims, finalizer, metrics series and
/// namespace marks): a namespace one kind created stays while an object of any kind needs it,
/// because the others mark it as needed, as controllers in separate processes do.
///
/// # Example
///
/// ```no_run
/// use kube::api::ApiResource;
/// use kube::core::GroupVersionKind;
/// use sync_core::{DynamicKind, LeaderElection, Local, Remote, SyncManager, Syncable};
///
/// # async fn demo<Database: Syncable, Cache: Syncable>(remote: kube::Client, local: kube::Client) -> Result<(), sync_core::RunError> {
/// let queue = GroupVersionKind::gvk("acme.dev", "v1", "Queue");
/// SyncManager::new(Remote(remote), Local(local))
///     // Every kind's defaults first, then each kind's own settings.
///     .defaults(|c| c.remote_suffix("-eu"))
///     .add::<Database>(|k| k.configure(|c| c.secrets(["db-credentials"])))
///     .add::<Cache>(|k| k)
///     .add_dynamic(
///         DynamicKind::new(ApiResource::from_gvk_with_plural(&queue, "queues")),
///         |k| k.configure(|c| c.concurrency(2)),
///     )
///     .leader_election(LeaderElection::new("acme-sync", "sync-system", "pod-0"))
///     .run(async { tokio::signal::ctrl_c().await.ok(); })
///     .await
/// # }
/// ```
#[must_use]
pub struct SyncManager {
    pub(super) settings: Settings,
    defaults: Vec<Arc<dyn Fn(SyncConfig) -> SyncConfig + Send + Sync>>,
    kinds: Vec<Added>,
}

impl SyncManager {
    /// A manager with no kind yet, for the clients of the remote (management) and the local
    /// (regional) cluster.
    pub fn new(remote: Remote, local: Local) -> Self {
        SyncManager::with(Settings::new(remote, local))
    }

    pub(super) fn with(settings: Settings) -> Self {
        SyncManager {
            settings,
            defaults: Vec::new(),
            kinds: Vec::new(),
        }
    }

    /// Changes the defaults of every kind added after this call, before the kind's own
    /// closure: e.g. the region's suffix, or a concurrency for all.
    pub fn defaults(
        mut self,
        f: impl Fn(SyncConfig) -> SyncConfig + Send + Sync + 'static,
    ) -> Self {
        self.defaults.push(Arc::new(f));
        self
    }

    fn shared_defaults(&self, config: SyncConfig) -> SyncConfig {
        self.defaults.iter().fold(config, |c, f| f(c))
    }

    /// Adds a kind that is a Rust type, starting from its compile-time defaults.
    #[allow(
        clippy::should_implement_trait,
        reason = "a builder step, as in `.add::<Database>(..)`; not arithmetic"
    )]
    pub fn add<K: Syncable>(self, f: impl FnOnce(KindBuilder<K>) -> KindBuilder<K>) -> Self {
        let config = self.shared_defaults(K::defaults());
        let kind = f(KindBuilder::new((), config));
        self.push(kind, Ok(()))
    }

    /// Adds a kind chosen at run time, starting from [`DynamicKind::defaults`].
    pub fn add_dynamic(
        self,
        kind: DynamicKind,
        f: impl FnOnce(KindBuilder<Dynamic>) -> KindBuilder<Dynamic>,
    ) -> Self {
        let config = self.shared_defaults(kind.defaults());
        let check = kind.validate();
        let kind = f(KindBuilder::new(Arc::new(kind), config));
        self.push(kind, check)
    }

    pub(super) fn push<K: SyncObject>(
        mut self,
        kind: KindBuilder<K>,
        check: Result<(), ConfigError>,
    ) -> Self {
        self.kinds.push(kind.erase(check));
        self
    }

    /// Counts into these metrics (by default, metrics registered nowhere). Each kind's series
    /// carry its controller name.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.settings.metrics = metrics;
        self
    }

    /// See [`SyncBuilder::request_timeout`](crate::SyncBuilder::request_timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// See [`SyncBuilder::shutdown_deadline`](crate::SyncBuilder::shutdown_deadline).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.settings.shutdown_deadline = deadline;
        self
    }

    /// Whether every kind can do its work; see
    /// [`SyncBuilder::readiness`](crate::SyncBuilder::readiness). It turns true once every
    /// watch of every kind has listed its objects.
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.settings.readiness.subscribe()
    }

    /// See [`SyncBuilder::unready_after`](crate::SyncBuilder::unready_after).
    pub fn unready_after(mut self, threshold: Duration) -> Self {
        self.settings.unready_after = threshold;
        self
    }

    /// Only write while holding this one Lease in the local cluster, for all kinds (see
    /// [`LeaderElection`]).
    pub fn leader_election(mut self, leader: LeaderElection) -> Self {
        self.settings.leader = Some(leader);
        self
    }

    /// The configurations the kinds will run with, in the order they were added.
    pub fn configs(&self) -> impl Iterator<Item = &SyncConfig> {
        self.kinds.iter().map(|k| &k.config)
    }

    /// Runs every kind until `shutdown` resolves.
    ///
    /// # Errors
    ///
    /// As [`SyncBuilder::run`](crate::SyncBuilder::run), for any kind; and
    /// [`RunError::InvalidConfig`] when no kind was added or two kinds have one controller
    /// name. Nothing is read or written before every configuration is found valid.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let SyncManager {
            settings, kinds, ..
        } = self;
        let mut configs = Vec::new();
        let mut names = BTreeSet::new();
        for k in &kinds {
            k.check.clone()?;
            let config = k.config.resolved();
            config.validate()?;
            if !names.insert(config.controller_name.clone()) {
                return Err(ConfigError::DuplicateController(config.controller_name).into());
            }
            configs.push(config);
        }
        if kinds.is_empty() {
            return Err(ConfigError::NoKinds.into());
        }
        for config in &mut configs {
            config.partners = names
                .iter()
                .filter(|n| **n != config.controller_name)
                .cloned()
                .collect();
        }
        let resources: Vec<ApiResource> = kinds.iter().map(|k| k.resource.clone()).collect();
        for (resource, config) in resources.iter().zip(&configs) {
            check_selector(&settings.remote, resource, config).await?;
        }
        let label = names.iter().cloned().collect::<Vec<_>>().join(",");
        // Under leader election nothing is written until the Lease is held.
        let fence = match &settings.leader {
            Some(_) => Fence::closed(),
            None => Fence::open(),
        };
        let readiness = Readiness::new(
            &label,
            settings.readiness,
            settings.ready,
            settings.unready_after,
        );
        let reach = |cluster, client: &Client| {
            Arc::new(Reachability::new(
                cluster,
                client.clone(),
                settings.request_timeout,
            ))
        };
        let (namespaces, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
        let shared = Shared {
            remote_reach: reach(Cluster::Remote, &settings.remote),
            local_reach: reach(Cluster::Local, &settings.local),
            remote: settings.remote,
            local: settings.local.clone(),
            request_timeout: settings.request_timeout,
            shutdown_deadline: settings.shutdown_deadline,
            fence: fence.clone(),
            readiness: readiness.clone(),
            namespaces: namespaces.clone(),
            made: Arc::default(),
            metrics: settings.metrics,
        };
        let running: Vec<Arc<dyn Running>> = kinds
            .into_iter()
            .zip(configs)
            .map(|(k, config)| (k.start)(&shared, config))
            .collect();
        let told = running.clone();
        let reach = shared.local_reach.clone();
        let health = readiness.watch(move || reach.is_down());
        let ns_watch = namespace_watch(
            shared.local.clone(),
            ns_writer,
            shared.local_reach.clone(),
            health,
            move |ns| told.iter().for_each(|k| k.namespace_touched(ns)),
        );

        let shutdown = shutdown.boxed().shared();
        let driver = tokio::spawn(readiness.clone().drive());
        let caches = futures::future::join_all(running.iter().map(|k| k.caches_ready()));
        let result = tokio::select! {
            () = shutdown.clone() => Ok(()),
            _ = caches => match running.iter().find_map(|k| k.synced_onto_itself()) {
                Some(object) => Err(RunError::SameCluster { object: object.to_string() }),
                None => {
                    // Ready means able to work: a standby with warm caches is ready too, so
                    // a rolling update of several replicas can proceed.
                    readiness.caches_filled();
                    lead(&running, settings.leader, settings.local, fence, shutdown.clone()).await
                }
            }
        };
        driver.abort();
        readiness.stop();
        ns_watch.abort();
        for k in &running {
            k.stop();
        }
        shared.remote_reach.stop();
        shared.local_reach.stop();
        result
    }
}

/// Asks the remote API server once whether it takes the kind's label selector: one it refuses
/// would make the remote watch fail for good. Any other failure (the cluster is unreachable)
/// is left to the watch, which retries.
async fn check_selector(
    remote: &Client,
    resource: &ApiResource,
    config: &SyncConfig,
) -> Result<(), ConfigError> {
    let Some(selector) = &config.remote_label_selector else {
        return Ok(());
    };
    let api = Api::<DynamicObject>::all_with(remote.clone(), resource);
    match api
        .list_metadata(&ListParams::default().labels(selector).limit(1))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 400 => Err(ConfigError::Invalid {
            field: "remote_label_selector",
            value: selector.clone(),
            problem: format!("the remote API server refuses it: {}", s.message),
        }),
        _ => Ok(()),
    }
}

/// Works every kind's queue until shutdown; under leader election, only while this replica
/// holds the one Lease, which is released at the end.
async fn lead(
    running: &[Arc<dyn Running>],
    leader: Option<LeaderElection>,
    local: Client,
    fence: Fence,
    shutdown: SharedFuture<BoxFuture<'static, ()>>,
) -> Result<(), RunError> {
    let elected = leader.as_ref().map(|l| {
        Arc::new(Elected {
            lease: l.lease(),
            identity: l.identity().to_owned(),
        })
    });
    let work = futures::future::join_all(
        running
            .iter()
            .map(|k| k.clone().run_queue(elected.clone(), shutdown.clone())),
    );
    let Some(leader) = leader else {
        work.await;
        return Ok(());
    };
    let identity = leader.identity().to_owned();
    let mut election = leader.spawn(local, fence);
    let lease = election.lease().to_owned();
    info!(%lease, %identity, "electing: every kind writes only while this replica holds the lease");
    let stopped = |source| RunError::LeaseManagerStopped {
        lease: lease.clone(),
        source: Box::new(source),
    };
    tokio::select! {
        _ = work => {}
        e = election.stopped() => return Err(stopped(e)),
    }
    // Closes the fence, then releases the Lease so that a standby takes over at once.
    election.release().await.map_err(stopped)
}
