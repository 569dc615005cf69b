//! The runtime: the part of the library that talks to the API servers.
//!
//! Watches fill a cache per cluster, index the objects by local namespace ([`index`]), and
//! queue the remote key of every object they touch ([`watches`]). A pass over one key reads the caches into an [`Observed`](crate::plan::Observed)
//! ([`observe`]), asks the pure [`plan`](crate::plan::plan) for the next step, executes it
//! ([`execute`]), and loops until the key is in sync or has to wait ([`pass`]). Each step is
//! one API call: to the local cluster in [`local_writes`] and [`namespaces`], to the remote one
//! in [`remote_writes`]; [`crate::plan::transition`] folds each answer into what is known.
//! Rejected writes and refused objects become Warning events on the remote
//! object ([`events`]); what the controller wrote last, and when, is kept per key ([`state`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{ApiResource, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::SyncConfig;
use crate::deletion::BudgetGuard;
use crate::keys::Keys;
use crate::leader::Fence;
use crate::mapping::{Mapping, ObjectKey};
use crate::metrics::{ControllerMetrics, Metrics};
use crate::outcome::OnReconciled;
use crate::reachability::Reachability;
use crate::readiness::Readiness;
use crate::scheduler::Backoff;
use crate::syncable::SyncObject;

mod builder;
mod cache;
mod events;
mod execute;
mod gone;
mod index;
mod kind;
mod local_writes;
mod manager;
mod namespaces;
mod observe;
mod pass;
mod recorder;
mod remote_writes;
mod state;
mod watch_stream;
mod watches;

pub use builder::SyncBuilder;
use cache::ObjectCache;
use index::NamespaceIndex;
pub use kind::KindBuilder;
pub use manager::SyncManager;
use recorder::Recorder;
use state::{FirstSeen, LastWritten};
use watches::{SecretWriters, Trigger, Writers};

/// One cache per configured secret name, and its write half for the watch.
fn secret_caches(names: &[String]) -> (BTreeMap<String, Store<Secret>>, SecretWriters) {
    let mut secret_stores = BTreeMap::new();
    let mut secret_writers = Vec::new();
    for name in names {
        let (s, w) = reflector::store::<Secret>();
        secret_stores.insert(name.clone(), s);
        secret_writers.push((name.clone(), w));
    }
    (secret_stores, secret_writers)
}

/// Sends the keys the watches yield into the queue's channel, from a task of its own.
fn forward(triggers: Trigger, tx: mpsc::UnboundedSender<ObjectKey>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut triggers = triggers;
        while let Some(key) = triggers.next().await {
            if tx.send(key).is_err() {
                break;
            }
        }
    })
}

/// A transform of the remote object on its way down (see `KindBuilder::transform_spec`).
pub(crate) type Transform<K> = Arc<dyn Fn(&mut K) + Send + Sync>;

/// What the reconcilers of one manager share: the clients, one reachability per cluster, one
/// readiness, one fence, and the one cache of local namespaces.
pub(crate) struct Shared {
    remote: Client,
    local: Client,
    request_timeout: Duration,
    shutdown_deadline: Duration,
    fence: Fence,
    readiness: Arc<Readiness>,
    remote_reach: Arc<Reachability>,
    local_reach: Arc<Reachability>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    /// The namespaces this process created that the cache does not show yet.
    made: Arc<namespaces::Made>,
    metrics: Metrics,
}

/// How one kind is set up, before it runs.
pub(crate) struct KindSetup<K: SyncObject> {
    pub(crate) kind: K::Kind,
    pub(crate) config: SyncConfig,
    pub(crate) backoff: Backoff,
    pub(crate) on_reconciled: Option<OnReconciled>,
    pub(crate) transform: Option<Transform<K>>,
}

impl<K: SyncObject> Clone for KindSetup<K> {
    fn clone(&self) -> Self {
        KindSetup {
            kind: self.kind.clone(),
            config: self.config.clone(),
            backoff: self.backoff,
            on_reconciled: self.on_reconciled.clone(),
            transform: self.transform.clone(),
        }
    }
}

/// Everything a running reconciler shares between its watches and its passes.
struct Inner<K: SyncObject> {
    config: SyncConfig,
    /// The kind, as known at run time.
    kind: K::Kind,
    /// Applied to each remote object read, before anything is compared.
    transform: Option<Transform<K>>,
    backoff: Backoff,
    shutdown_deadline: Duration,
    /// The queue's channel: the watches send keys in, the work loop takes them out.
    queue: mpsc::UnboundedSender<ObjectKey>,
    queued: Mutex<Option<mpsc::UnboundedReceiver<ObjectKey>>>,
    /// The task that forwards the watches' keys into the queue.
    watch: Mutex<Option<JoinHandle<()>>>,
    /// Told how each pass ended, if the program asked.
    on_reconciled: Option<OnReconciled>,
    keys: Keys,
    mapping: Mapping,
    remote: Client,
    local: Client,
    ar: ApiResource,
    remote_store: ObjectCache<K::Cached>,
    local_store: ObjectCache<K::Cached>,
    /// The local names of the remote objects whose copies belong in each local namespace.
    remote_index: NamespaceIndex,
    /// The local copies in each local namespace.
    local_index: NamespaceIndex,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    made: Arc<namespaces::Made>,
    secrets: BTreeMap<String, Store<Secret>>,
    recorder: Recorder,
    metrics: Arc<ControllerMetrics>,
    budget: BudgetGuard,
    remote_reach: Arc<Reachability>,
    local_reach: Arc<Reachability>,
    /// Woken when an unreachable cluster answers again: failed keys are retried at once.
    retry: Arc<Notify>,
    request_timeout: Duration,
    /// Whether this replica may write (under leader election: while it holds the Lease).
    fence: Fence,
    /// Told by each watch whether it works.
    readiness: Arc<Readiness>,
    /// Resource versions of the objects this controller wrote, per remote key, until the
    /// watches bring them back: a pass never acts on a cache older than its own last write,
    /// and the watch event that only echoes such a write queues no pass.
    written: Mutex<HashMap<ObjectKey, LastWritten>>,
    /// When a change was first seen on each side and not yet synced, for the lag histograms.
    seen: Mutex<HashMap<ObjectKey, FirstSeen>>,
    paused: Mutex<HashSet<ObjectKey>>,
    /// Per key, the passes in a row that ended waiting: the next look backs off.
    waits: Mutex<HashMap<ObjectKey, u32>>,
    /// Keys claimed by another controller and already reported.
    claimed_elsewhere: Mutex<HashSet<ObjectKey>>,
    /// Per key, the writes the server did not keep, so they are not sent again until their
    /// source changes (see [`crate::plan::Unkept`]).
    unkept: Mutex<HashMap<ObjectKey, crate::plan::Unkept>>,
    /// Each local namespace as this controller's own last write to it left it, until the
    /// cache catches up: the keys of a namespace share its marks.
    own_namespaces: Mutex<HashMap<String, crate::plan::NamespaceState>>,
    /// Remote objects an uncached read proved gone, while the proof stands.
    proven_gone: gone::ProvenGone,
}

impl<K: SyncObject> Inner<K> {
    /// A reconciler of one kind with empty caches; its watches start at once, and fill the
    /// caches while the manager waits for them.
    fn start(shared: &Shared, setup: KindSetup<K>) -> Arc<Self> {
        let KindSetup {
            kind,
            config,
            backoff,
            on_reconciled,
            transform,
        } = setup;
        let ar = K::api_resource(&kind);
        let keys = Keys::new(&config.domain);
        // The annotations every synced object carries, kept as one byte each in the caches.
        let known = || {
            cache::Known::new(
                [
                    &keys.claimed_by,
                    &keys.remote_generation,
                    &keys.local_generation,
                    &keys.local_uid,
                    &keys.copy_id,
                    &keys.managed_keys,
                    &keys.secret_versions,
                ]
                .map(String::as_str),
            )
        };
        let (remote_store, remote_writer) = cache::cache(known());
        let (local_store, local_writer) = cache::cache(known());
        let (secret_stores, secret_writers) = secret_caches(&config.secrets);
        let retry = Arc::new(Notify::new());
        let scoped = shared.metrics.scoped(&config.controller_name);
        shared.remote_reach.listen(scoped.clone(), retry.clone());
        shared.local_reach.listen(scoped.clone(), retry.clone());
        let (queue, queued) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner::<K> {
            keys,
            mapping: Mapping::new(&config),
            recorder: Recorder::new(shared.remote.clone(), config.controller_name.clone()),
            metrics: scoped,
            budget: BudgetGuard::new(config.deletion_budget),
            remote_reach: shared.remote_reach.clone(),
            local_reach: shared.local_reach.clone(),
            retry,
            request_timeout: shared.request_timeout,
            shutdown_deadline: shared.shutdown_deadline,
            fence: shared.fence.clone(),
            readiness: shared.readiness.clone(),
            on_reconciled,
            remote: shared.remote.clone(),
            local: shared.local.clone(),
            ar,
            kind,
            transform,
            backoff,
            queue: queue.clone(),
            queued: Mutex::new(Some(queued)),
            watch: Mutex::default(),
            remote_store,
            local_store,
            remote_index: NamespaceIndex::default(),
            local_index: NamespaceIndex::default(),
            namespaces: shared.namespaces.clone(),
            made: shared.made.clone(),
            secrets: secret_stores,
            written: Mutex::default(),
            seen: Mutex::default(),
            paused: Mutex::default(),
            waits: Mutex::default(),
            claimed_elsewhere: Mutex::default(),
            unkept: Mutex::default(),
            own_namespaces: Mutex::default(),
            proven_gone: gone::ProvenGone::default(),
            config,
        });
        let writers = Writers {
            remote: remote_writer,
            local: local_writer,
            secrets: secret_writers,
        };
        let watch = forward(inner.clone().triggers(writers), queue);
        *state::lock(&inner.watch) = Some(watch);
        inner
    }
}
