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
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::SyncConfig;
use crate::deletion::BudgetGuard;
use crate::keys::Keys;
use crate::leader::Fence;
use crate::mapping::{Mapping, ObjectKey};
use crate::metrics::{Cluster, ControllerMetrics, Metrics};
use crate::outcome::OnReconciled;
use crate::reachability::Reachability;
use crate::readiness::Readiness;
use crate::syncable::Syncable;

mod builder;
mod events;
mod execute;
mod index;
mod local_writes;
mod namespaces;
mod observe;
mod pass;
mod remote_writes;
mod state;
mod watches;

pub use builder::SyncBuilder;
use index::NamespaceIndex;
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

/// Sends the keys the watches yield into a channel, from a task of its own.
fn forward(triggers: Trigger) -> (mpsc::UnboundedReceiver<ObjectKey>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut triggers = triggers;
        while let Some(key) = triggers.next().await {
            if tx.send(key).is_err() {
                break;
            }
        }
    });
    (rx, watch)
}

/// Everything a running reconciler shares between its watches and its passes.
struct Inner<K> {
    config: SyncConfig,
    /// Told how each pass ended, if the program asked.
    on_reconciled: Option<OnReconciled>,
    keys: Keys,
    mapping: Mapping,
    remote: Client,
    local: Client,
    ar: ApiResource,
    remote_store: Store<DynamicObject>,
    local_store: Store<DynamicObject>,
    /// The local names of the remote objects whose copies belong in each local namespace.
    remote_index: NamespaceIndex,
    /// The local copies in each local namespace.
    local_index: NamespaceIndex,
    namespaces: Store<PartialObjectMeta<Namespace>>,
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
    /// Resource versions of the objects this controller wrote last, per remote key, so a pass
    /// never acts on a cache older than its own last write.
    written: Mutex<HashMap<ObjectKey, LastWritten>>,
    /// When a change was first seen on each side and not yet synced, for the lag histograms.
    seen: Mutex<HashMap<ObjectKey, FirstSeen>>,
    paused: Mutex<HashSet<ObjectKey>>,
    /// Keys claimed by another controller and already reported.
    claimed_elsewhere: Mutex<HashSet<ObjectKey>>,
    /// Per key, the writes the server did not keep, so they are not sent again until their
    /// source changes (see [`crate::plan::Unkept`]).
    unkept: Mutex<HashMap<ObjectKey, crate::plan::Unkept>>,
    /// Each local namespace as this controller's own last write to it left it, until the
    /// cache catches up: the keys of a namespace share its marks.
    own_namespaces: Mutex<HashMap<String, crate::plan::NamespaceState>>,
    _kind: PhantomData<fn() -> K>,
}

impl<K: Syncable> Inner<K> {
    /// The shared state of a reconciler with empty caches, and the write halves of those
    /// caches for the watches.
    fn new(
        (remote, local): (Client, Client),
        config: SyncConfig,
        metrics: &Metrics,
        request_timeout: Duration,
        fence: Fence,
        readiness: Arc<Readiness>,
        on_reconciled: Option<OnReconciled>,
    ) -> (Arc<Self>, Writers) {
        let ar = ApiResource::erase::<K>(&());
        let remote_writer = reflector::store::Writer::new(ar.clone());
        let remote_store = remote_writer.as_reader();
        let local_writer = reflector::store::Writer::new(ar.clone());
        let local_store = local_writer.as_reader();
        let (ns_store, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
        let (secret_stores, secret_writers) = secret_caches(&config.secrets);
        let reporter = Reporter {
            controller: config.controller_name.clone(),
            instance: None,
        };
        let retry = Arc::new(Notify::new());
        let scoped = metrics.scoped(&config.controller_name);
        let reach = |cluster, client: &Client| {
            Arc::new(Reachability::new(
                cluster,
                client.clone(),
                request_timeout,
                scoped.clone(),
                retry.clone(),
            ))
        };
        let inner = Arc::new(Inner::<K> {
            keys: Keys::new(&config.domain),
            mapping: Mapping::new(&config),
            recorder: Recorder::new(remote.clone(), reporter),
            metrics: scoped.clone(),
            budget: BudgetGuard::new(config.deletion_budget),
            remote_reach: reach(Cluster::Remote, &remote),
            local_reach: reach(Cluster::Local, &local),
            retry,
            request_timeout,
            fence,
            readiness,
            on_reconciled,
            remote,
            local,
            ar,
            remote_store,
            local_store,
            remote_index: NamespaceIndex::default(),
            local_index: NamespaceIndex::default(),
            namespaces: ns_store,
            secrets: secret_stores,
            written: Mutex::default(),
            seen: Mutex::default(),
            paused: Mutex::default(),
            claimed_elsewhere: Mutex::default(),
            unkept: Mutex::default(),
            own_namespaces: Mutex::default(),
            config,
            _kind: PhantomData,
        });
        let writers = Writers {
            remote: remote_writer,
            local: local_writer,
            namespaces: ns_writer,
            secrets: secret_writers,
        };
        (inner, writers)
    }
}
