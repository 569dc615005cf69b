use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::core::ObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::config::{Propagation, SyncConfig};
use crate::deletion::BudgetGuard;
use crate::error::{Error, api_status};
use crate::keys::Keys;
use crate::mapping::{Mapping, ObjectKey, Unmapped, is_dns1123_subdomain};
use crate::metrics::{Cluster, ControllerMetrics, Metrics};
use crate::plan::{NamespaceState, Observed, PlanContext, RemoteState, SecretPayload, Step, plan};
use crate::reachability::{Failure, NoAnswer, Reachability, Unreachable};
use crate::scheduler::{self, Backoff, Outcome};
use crate::syncable::Syncable;

/// How long to look again after while an API server finishes a deletion.
const WAIT_DELAY: Duration = Duration::from_secs(1);
/// At most this many writes in one pass for one key; then the key is queued again.
const MAX_STEPS: usize = 12;
/// See [`SyncBuilder::request_timeout`].
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures and runs the reconciler of one kind. Start from [`Syncable::reconciler`].
///
/// # Example
///
/// ```no_run
/// # use sync_core::{Metrics, Syncable};
/// # async fn demo<K: Syncable>(remote: kube::Client, local: kube::Client) -> Result<(), sync_core::Error> {
/// let region = std::env::var("REGION_SUFFIX").unwrap_or_default();
/// let mut registry = prometheus_client::registry::Registry::default();
/// K::reconciler(remote, local)
///     .configure(|c| c.remote_suffix(region).concurrency(8))
///     .metrics(Metrics::new(&mut registry))
///     .run(async { tokio::signal::ctrl_c().await.ok(); })
///     .await
/// # }
/// ```
#[must_use]
pub struct SyncBuilder<K> {
    remote: Client,
    local: Client,
    config: SyncConfig,
    metrics: Metrics,
    backoff: Backoff,
    shutdown_deadline: Duration,
    request_timeout: Duration,
    ready: Option<Arc<std::sync::atomic::AtomicBool>>,
    leader: Option<crate::leader::LeaderElection>,
    _kind: PhantomData<fn() -> K>,
}

impl<K: Syncable> SyncBuilder<K> {
    /// A builder with the kind's compile-time defaults.
    pub fn new(remote: Client, local: Client) -> Self {
        SyncBuilder {
            remote,
            local,
            config: K::defaults(),
            metrics: Metrics::default(),
            backoff: Backoff::default(),
            shutdown_deadline: Duration::from_secs(10),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ready: None,
            leader: None,
            _kind: PhantomData,
        }
    }

    /// Overrides configuration values, starting from the current ones:
    /// `.configure(|c| c.remote_suffix("-eu").concurrency(4))`.
    pub fn configure(mut self, f: impl FnOnce(SyncConfig) -> SyncConfig) -> Self {
        self.config = f(self.config);
        self
    }

    /// The configuration the reconciler will run with.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Counts into these metrics (by default, metrics registered nowhere).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Backoff of failed keys (by default 0.5 s doubling up to 60 s, with jitter).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff { initial, max };
        self
    }

    /// How long one request to an API server may go unanswered before it counts as failed
    /// (default 30 s). A frozen or partitioned API server accepts connections and never
    /// answers; without a limit, each object waiting on it would hold a worker for good.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long running reconciles may take to finish after shutdown is asked (default 10 s).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
        self
    }

    /// A flag set once every watch has listed its objects, and cleared when the reconciler
    /// stops; for readiness probes. A standby replica under leader election is ready too: its
    /// caches are warm and it takes over as soon as it holds the Lease.
    pub fn ready_flag(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.ready = Some(flag);
        self
    }

    /// Only write while holding a Lease in the local cluster (see [`crate::LeaderElection`]).
    pub fn leader_election(mut self, leader: crate::leader::LeaderElection) -> Self {
        self.leader = Some(leader);
        self
    }

    /// Runs until `shutdown` resolves.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration can never work (an invalid suffix or secret
    /// name, zero concurrency); [`Error::Leader`] when leader election cannot run. Failures
    /// of single objects are retried, never returned.
    ///
    /// # Guarantees
    ///
    /// Nothing is written before the initial lists of every watch have completed, so a cache
    /// that is still filling never makes an object look deleted. After `shutdown` resolves no
    /// new reconcile starts; running ones get the shutdown deadline to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        validate(&self.config)?;
        let ar = ApiResource::erase::<K>(&());
        let remote_writer = reflector::store::Writer::new(ar.clone());
        let remote_store = remote_writer.as_reader();
        let local_writer = reflector::store::Writer::new(ar.clone());
        let local_store = local_writer.as_reader();
        let (ns_store, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
        let mut secret_stores = BTreeMap::new();
        let mut secret_writers = Vec::new();
        for name in &self.config.secrets {
            let (s, w) = reflector::store::<Secret>();
            secret_stores.insert(name.clone(), s);
            secret_writers.push((name.clone(), w));
        }
        let reporter = Reporter {
            controller: self.config.controller_name.clone(),
            instance: None,
        };
        let retry = Arc::new(Notify::new());
        let inner = Arc::new(Inner::<K> {
            keys: Keys::new(&self.config.domain),
            mapping: Mapping::new(&self.config),
            recorder: Recorder::new(self.remote.clone(), reporter),
            metrics: self.metrics.scoped(&self.config.controller_name),
            budget: BudgetGuard::new(self.config.deletion_budget),
            remote_reach: Arc::new(Reachability::new(
                "remote",
                self.remote.clone(),
                self.request_timeout,
                retry.clone(),
            )),
            local_reach: Arc::new(Reachability::new(
                "local",
                self.local.clone(),
                self.request_timeout,
                retry.clone(),
            )),
            retry,
            request_timeout: self.request_timeout,
            remote: self.remote.clone(),
            local: self.local.clone(),
            ar: ar.clone(),
            remote_store,
            local_store,
            namespaces: ns_store,
            secrets: secret_stores,
            written: Mutex::default(),
            seen: Mutex::default(),
            paused: Mutex::default(),
            claimed_elsewhere: Mutex::default(),
            config: self.config,
            _kind: PhantomData,
        });

        let (tx, rx) = mpsc::unbounded_channel();
        let triggers =
            inner
                .clone()
                .triggers(remote_writer, local_writer, ns_writer, secret_writers);
        let watch = tokio::spawn(async move {
            let mut triggers = triggers;
            while let Some(key) = triggers.next().await {
                if tx.send(key).is_err() {
                    break;
                }
            }
        });

        let shutdown = shutdown.boxed().shared();
        let backoff = self.backoff;
        let deadline = self.shutdown_deadline;
        let set_ready = |v: bool| {
            if let Some(r) = &self.ready {
                r.store(v, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let result = tokio::select! {
            () = shutdown.clone() => Ok(()),
            () = inner.wait_for_caches() => {
                // Ready means able to work: a standby with warm caches is ready too, so a
                // rolling update of several replicas can proceed.
                set_ready(true);
                match self.leader {
                    Some(leader) => {
                        let inner = inner.clone();
                        leader
                            .run_while_leading(self.local.clone(), rx, shutdown.clone(), move |rx, stop| {
                                // Losing the Lease stops writes at once: no grace for running passes.
                                let deadline = Duration::ZERO;
                                inner.clone().work(rx, backoff, deadline, stop)
                            })
                            .await
                    }
                    None => {
                        inner.clone().work(rx, backoff, deadline, shutdown.clone()).await;
                        Ok(())
                    }
                }
            }
        };
        set_ready(false);
        watch.abort();
        inner.remote_reach.stop();
        inner.local_reach.stop();
        info!(controller = %inner.config.controller_name, "reconciler stopped");
        result
    }
}

fn validate(config: &SyncConfig) -> Result<(), Error> {
    if config.concurrency == 0 {
        return Err(Error::Config("`concurrency` must be at least 1".into()));
    }
    if !is_dns1123_subdomain(&config.domain) {
        return Err(Error::Config(format!(
            "domain {:?} is not a DNS subdomain",
            config.domain
        )));
    }
    for (what, v) in [
        ("remote_suffix", &config.remote_suffix),
        ("remote_namespace_suffix", &config.remote_namespace_suffix),
        ("local_namespace_suffix", &config.local_namespace_suffix),
        ("namespace_prefix", &config.namespace_prefix),
    ] {
        if !v.bytes().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == b'-'
                || (what == "remote_suffix" && c == b'.')
        }) || v.len() > 62
        {
            return Err(Error::Config(format!(
                "`{what}` {v:?} can never form a valid Kubernetes name"
            )));
        }
    }
    let mut seen = HashSet::new();
    for s in &config.secrets {
        if !is_dns1123_subdomain(s) || !seen.insert(s) {
            return Err(Error::Config(format!(
                "secret name {s:?} is invalid or listed twice"
            )));
        }
    }
    Ok(())
}

type Trigger = BoxStream<'static, ObjectKey>;

struct Inner<K> {
    config: SyncConfig,
    keys: Keys,
    mapping: Mapping,
    remote: Client,
    local: Client,
    ar: ApiResource,
    remote_store: Store<DynamicObject>,
    local_store: Store<DynamicObject>,
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
    /// Resource versions of the objects this controller wrote last, per remote key, so a pass
    /// never acts on a cache older than its own last write.
    written: Mutex<HashMap<ObjectKey, LastWritten>>,
    /// When a change was first seen on each side and not yet synced, for the lag histograms.
    seen: Mutex<HashMap<ObjectKey, FirstSeen>>,
    paused: Mutex<HashSet<ObjectKey>>,
    /// Keys claimed by another controller and already reported.
    claimed_elsewhere: Mutex<HashSet<ObjectKey>>,
    _kind: PhantomData<fn() -> K>,
}

/// Resource versions of the controller's last writes for one key.
#[derive(Clone, Copy, Debug, Default)]
struct LastWritten {
    remote: Option<u64>,
    local: Option<u64>,
}

/// When a change not yet synced was first seen on each side.
#[derive(Clone, Copy, Debug, Default)]
struct FirstSeen {
    spec: Option<Instant>,
    status: Option<Instant>,
}

fn key_of<R: Resource>(o: &R) -> ObjectKey {
    ObjectKey::new(o.namespace().unwrap_or_default(), o.name_any())
}

fn rv(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a failed watch waits before it tries again: kube's default (0.8 s, doubling, with
/// jitter) capped at 5 s rather than 30 s, so the caches are fresh again within seconds of an
/// API server's return; a pass on a stale cache would retry needlessly (a namespace "already
/// exists", say). While the cluster is unreachable a watcher then asks about once per 5 s.
#[derive(Debug)]
struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(800);
    const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(delay.mul_f64(rand::random_range(0.5..=1.0)))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// What a watch reports.
enum Touched<R> {
    /// An object was added, changed or deleted, or came with a (re)list.
    Object(R),
    /// A (re)list completed and replaced the cache. An object that went away while the watch
    /// was down (its watch expired, 410 Gone) sent no delete event: it is simply not there.
    Listed,
}

impl<R> Touched<R> {
    fn object(self) -> Option<R> {
        match self {
            Touched::Object(o) => Some(o),
            Touched::Listed => None,
        }
    }
}

/// A watch that fills a store and yields what it touched, logging (not returning) watch
/// errors; the watcher retries them with backoff, and relists when its watch expired.
fn watch_into<R>(
    stream: impl futures::Stream<Item = Result<watcher::Event<R>, watcher::Error>> + Send + 'static,
    writer: reflector::store::Writer<R>,
    reach: Arc<Reachability>,
) -> BoxStream<'static, Touched<R>>
where
    R: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    R::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    stream
        // managedFields are often most of an object's size and are never read here; an update
        // that omits them leaves them as they are on the server.
        .modify(|o| o.meta_mut().managed_fields = None)
        .backoff(WatchBackoff::default())
        .reflect(writer)
        .filter_map(move |r| {
            let touched = match r {
                Ok(
                    watcher::Event::Apply(o)
                    | watcher::Event::Delete(o)
                    | watcher::Event::InitApply(o),
                ) => Some(Touched::Object(o)),
                Ok(watcher::Event::InitDone) => Some(Touched::Listed),
                Ok(watcher::Event::Init) => None,
                Err(e) => {
                    report_watch_error(&reach, &e);
                    None
                }
            };
            futures::future::ready(touched)
        })
        .boxed()
}

/// Logs a watch failure: once per outage when the cluster is unreachable (the watcher retries
/// with backoff meanwhile), and an expired watch as the routine relist it is.
fn report_watch_error(reach: &Reachability, e: &watcher::Error) {
    let source = match e {
        watcher::Error::InitialListFailed(s)
        | watcher::Error::WatchStartFailed(s)
        | watcher::Error::WatchFailed(s) => Some(s),
        _ => None,
    };
    match (e, source.map(|s| reach.failed(s))) {
        (_, Some(Failure::NowUnreachable)) => {
            warn!(cluster = reach.cluster(), error = %e, "cluster unreachable; retrying with backoff until it answers");
        }
        (_, Some(Failure::StillUnreachable)) => {
            debug!(cluster = reach.cluster(), error = %e, "watch failed; cluster still unreachable");
        }
        (watcher::Error::WatchError(s), _) if s.code == 410 => {
            info!(
                cluster = reach.cluster(),
                "watch expired (410 Gone); listing again"
            );
        }
        _ => warn!(cluster = reach.cluster(), error = %e, "watch failed; retrying with backoff"),
    }
}

impl<K: Syncable> Inner<K> {
    fn triggers(
        self: Arc<Self>,
        remote_writer: reflector::store::Writer<DynamicObject>,
        local_writer: reflector::store::Writer<DynamicObject>,
        ns_writer: reflector::store::Writer<PartialObjectMeta<Namespace>>,
        secret_writers: Vec<(String, reflector::store::Writer<Secret>)>,
    ) -> Trigger {
        let remote_api = Api::<DynamicObject>::all_with(self.remote.clone(), &self.ar);
        let local_api = Api::<DynamicObject>::all_with(self.local.clone(), &self.ar);
        let cfg = watcher::Config::default().any_semantic();

        let me = self.clone();
        let remote = watch_into(
            watcher(remote_api, cfg.clone()),
            remote_writer,
            self.remote_reach.clone(),
        )
        .flat_map(move |t| {
            let o = match t {
                Touched::Object(o) => o,
                Touched::Listed => return stream::iter(me.all_keys()),
            };
            let key = key_of(&o);
            let ours = me.is_ours(&key);
            if ours {
                lock(&me.seen)
                    .entry(key.clone())
                    .or_default()
                    .spec
                    .get_or_insert_with(Instant::now);
            }
            stream::iter(ours.then_some(key).into_iter().collect::<Vec<_>>())
        });
        let me = self.clone();
        let local = watch_into(
            watcher(local_api, cfg.clone()),
            local_writer,
            self.local_reach.clone(),
        )
        .flat_map(move |t| {
            let o = match t {
                Touched::Object(o) => o,
                Touched::Listed => return stream::iter(me.all_keys()),
            };
            let key = me.mapping.to_remote(&key_of(&o));
            if let Some(key) = &key {
                lock(&me.seen)
                    .entry(key.clone())
                    .or_default()
                    .status
                    .get_or_insert_with(Instant::now);
            }
            stream::iter(key.into_iter().collect::<Vec<_>>())
        });
        // Namespaces are watched for the cache only: the objects in a namespace send their
        // own events when it goes, and a pass waiting for a namespace polls.
        let namespaces = watch_into(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(self.local.clone()),
                cfg.clone(),
            ),
            ns_writer,
            self.local_reach.clone(),
        )
        .filter_map(|_| futures::future::ready(None));

        let mut all: Vec<Trigger> = vec![remote.boxed(), local.boxed(), namespaces.boxed()];
        for (name, writer) in secret_writers {
            // One narrow watch per configured name: the controller never lists every secret.
            let api = Api::<Secret>::all(self.local.clone());
            let cfg = cfg.clone().fields(&format!("metadata.name={name}"));
            let me = self.clone();
            let s = watch_into(watcher(api, cfg), writer, self.local_reach.clone()).filter_map(
                move |t| {
                    let key = t.object().and_then(|s| {
                        let owner = controller_of::<K>(&s.metadata)?;
                        me.mapping
                            .to_remote(&ObjectKey::new(s.namespace().unwrap_or_default(), owner))
                    });
                    futures::future::ready(key)
                },
            );
            all.push(s.boxed());
        }
        stream::select_all(all).boxed()
    }

    /// Whether a remote key is this controller's to sync or to report.
    fn is_ours(&self, key: &ObjectKey) -> bool {
        match self.mapping.to_local(key) {
            Ok(_) => true,
            Err(e) => !e.is_foreign(),
        }
    }

    /// Every key this controller may have work for: each cached remote object of its own, the
    /// remote key of each cached local copy, and that of each namespace it made. After a relist of either cache, this is how a
    /// remote object that vanished (or a local copy deleted) while a watch was down gets its
    /// pass: no watch event will ever announce it.
    fn all_keys(&self) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self
            .remote_store
            .state()
            .iter()
            .map(|o| key_of(o.as_ref()))
            .filter(|k| self.is_ours(k))
            .collect();
        keys.extend(
            self.local_store
                .state()
                .iter()
                .filter_map(|o| self.mapping.to_remote(&key_of(o.as_ref()))),
        );
        // A namespace the controller made names the local object it was made for: after a
        // crash between making the namespace and the copy, and a remote object that vanished
        // meanwhile, nothing else leads back to it.
        keys.extend(self.namespaces.state().iter().filter_map(|ns| {
            let owner = ns.annotations().get(&self.keys.owner)?;
            self.mapping
                .to_remote(&ObjectKey::new(ns.name_any(), owner.clone()))
        }));
        keys
    }

    async fn wait_for_caches(&self) {
        let mut waits = vec![
            self.remote_store.wait_until_ready().boxed(),
            self.local_store.wait_until_ready().boxed(),
            self.namespaces.wait_until_ready().boxed(),
        ];
        for s in self.secrets.values() {
            waits.push(s.wait_until_ready().boxed());
        }
        futures::future::join_all(waits).await;
        info!(controller = %self.config.controller_name, "caches filled; reconciling");
    }

    async fn work(
        self: Arc<Self>,
        rx: mpsc::UnboundedReceiver<ObjectKey>,
        backoff: Backoff,
        deadline: Duration,
        stop: impl Future<Output = ()> + Send,
    ) -> mpsc::UnboundedReceiver<ObjectKey> {
        // Every cached object gets a pass when work starts: the watch events that announced
        // them may have been consumed while the caches filled or while standing by.
        let initial = self.all_keys();
        let mut rx = rx;
        let me = self.clone();
        let metrics = self.metrics.clone();
        let queue = scheduler::QueueConfig {
            concurrency: self.config.concurrency,
            backoff,
            deadline,
        };
        scheduler::run(
            &mut rx,
            initial,
            queue,
            &self.retry,
            move |key| me.clone().reconcile(key),
            move |d| metrics.queue_depth(d),
            stop,
        )
        .await;
        rx
    }

    async fn reconcile(self: Arc<Self>, key: ObjectKey) -> Outcome {
        let span = tracing::info_span!(
            "reconcile",
            controller = %self.config.controller_name,
            remote = %key,
            local = tracing::field::Empty,
        );
        let result = self.reconcile_key(&key).instrument(span.clone()).await;
        let _entered = span.enter();
        let (label, outcome) = match result {
            Ok(r) => r,
            Err(e) if e.is_conflict() => {
                debug!(error = %e, "conflict; retrying");
                ("conflict", Outcome::Conflict)
            }
            Err(Error::BudgetExhausted(wait)) => ("waiting", Outcome::RequeueAfter(wait)),
            Err(e) => {
                let (reach, source) = match &e {
                    Error::Remote { source, .. } => (Some(&self.remote_reach), Some(source)),
                    Error::Local { source, .. } => (Some(&self.local_reach), Some(source)),
                    _ => (None, None),
                };
                match reach.zip(source).map(|(r, s)| (r, r.failed(s))) {
                    Some((r, Failure::NowUnreachable)) => warn!(
                        cluster = r.cluster(),
                        error = %e,
                        "cluster unreachable; objects that need it retry with backoff, and at once when it answers"
                    ),
                    Some((_, Failure::StillUnreachable)) => {
                        debug!(error = %e, "reconcile failed; cluster still unreachable");
                    }
                    _ => warn!(error = %e, "reconcile failed; retrying with backoff"),
                }
                ("error", Outcome::Failed)
            }
        };
        self.metrics.reconciled(label);
        outcome
    }

    async fn reconcile_key(&self, key: &ObjectKey) -> Result<(&'static str, Outcome), Error> {
        let local_key = match self.mapping.to_local(key) {
            Ok(k) => k,
            Err(e) if e.is_foreign() => return Ok(("skipped", Outcome::Done)),
            Err(e) => {
                self.report_unmapped(key, &e).await;
                return Ok(("skipped", Outcome::Done));
            }
        };
        tracing::Span::current().record("local", tracing::field::display(&local_key));
        let Some(mut obs) = self.observe(key, &local_key).await? else {
            return Ok(("skipped", Outcome::Done));
        };
        let cx = PlanContext {
            config: &self.config,
            keys: &self.keys,
            mapping: &self.mapping,
            remote_key: key,
            local_key: &local_key,
        };
        let mut wrote = false;
        for _ in 0..MAX_STEPS {
            let step = plan(&obs, &cx);
            self.note_paused(key, matches!(step, Step::Paused));
            if !matches!(step, Step::ClaimedElsewhere(_)) {
                lock(&self.claimed_elsewhere).remove(key);
            }
            match step {
                Step::InSync => {
                    lock(&self.seen).remove(key);
                    return Ok((if wrote { "wrote" } else { "in_sync" }, Outcome::Done));
                }
                Step::Paused => return Ok(("paused", Outcome::Done)),
                Step::ClaimedElsewhere(owner) => {
                    let remote = match &obs.remote {
                        RemoteState::Present(r) => Some(r),
                        RemoteState::Gone => None,
                    };
                    self.report_claimed(key, &owner, remote).await;
                    return Ok(("skipped", Outcome::Done));
                }
                Step::Wait(why) => {
                    debug!(why, "waiting");
                    return Ok(("waiting", Outcome::RequeueAfter(WAIT_DELAY)));
                }
                step => {
                    self.execute(step, &mut obs, key, &local_key).await?;
                    wrote = true;
                }
            }
        }
        Ok(("wrote", Outcome::RequeueAfter(Duration::ZERO)))
    }

    fn note_paused(&self, key: &ObjectKey, paused: bool) {
        let mut set = lock(&self.paused);
        let changed = if paused {
            set.insert(key.clone())
        } else {
            set.remove(key)
        };
        if changed {
            self.metrics.paused(set.len());
        }
    }

    fn typed(&self, o: &DynamicObject) -> Result<K, serde_json::Error> {
        serde_json::to_value(o).and_then(serde_json::from_value)
    }

    async fn observe(
        &self,
        key: &ObjectKey,
        local_key: &ObjectKey,
    ) -> Result<Option<Observed<K>>, Error> {
        let remote_dyn = self
            .remote_store
            .get(&ObjectRef::new_with(&key.name, self.ar.clone()).within(&key.namespace));
        let local_dyn = self.local_store.get(
            &ObjectRef::new_with(&local_key.name, self.ar.clone()).within(&local_key.namespace),
        );
        let namespace = self
            .namespaces
            .get(&ObjectRef::new(&local_key.namespace))
            .map(|ns| NamespaceState {
                owned: ns.annotations().contains_key(&self.keys.owner),
                terminating: ns.metadata.deletion_timestamp.is_some(),
            });
        // Copied out first: the guard must not live into the body, which locks again.
        let last_written = lock(&self.written).get(key).copied();
        if let Some(LastWritten {
            remote: remote_rv,
            local: local_rv,
        }) = last_written
        {
            let behind = |seen: Option<&Arc<DynamicObject>>, wrote: Option<u64>| matches!((seen.and_then(|o| rv(&o.metadata)), wrote), (Some(s), Some(w)) if s < w);
            if behind(remote_dyn.as_ref(), remote_rv) || behind(local_dyn.as_ref(), local_rv) {
                // The watch has not delivered this controller's own last write yet; its event
                // will queue the key again.
                return Ok(None);
            }
            lock(&self.written).remove(key);
        }

        let local = match &local_dyn {
            Some(o) => match self.typed(o) {
                Ok(l) => Some(l),
                Err(e) => {
                    self.warn_remote(
                        remote_dyn.as_deref(),
                        "InvalidLocalObject",
                        "Convert",
                        format!("local object {local_key} does not match the kind's type: {e}"),
                    )
                    .await;
                    self.metrics.rejected("invalid_local_object");
                    return Ok(None);
                }
            },
            None => None,
        };
        let remote = match remote_dyn {
            Some(o) => match self.typed(&o) {
                Ok(r) => RemoteState::Present(r),
                Err(e) => {
                    self.warn_remote(Some(&o), "InvalidSpec", "Convert",
                        format!("remote object does not deserialise into the kind's type, so it is not synced: {e}")).await;
                    self.metrics.rejected("invalid_spec");
                    return Ok(None);
                }
            },
            // Nothing local to keep or clean up: no need to ask the remote API.
            None if local.is_none() && !namespace.is_some_and(|n| n.owned) => return Ok(None),
            None => {
                // Absent from the cache is not gone: only an uncached read that answers 404
                // proves it. An unreachable API fails the pass, and nothing is deleted.
                let api = Api::<DynamicObject>::namespaced_with(
                    self.remote.clone(),
                    &key.namespace,
                    &self.ar,
                );
                match self.remote_call(api.get_opt(&key.name)).await {
                    Ok(Some(o)) => {
                        RemoteState::Present(self.typed(&o).map_err(|source| Error::Convert {
                            what: format!("remote object {key}"),
                            source,
                        })?)
                    }
                    Ok(None) => RemoteState::Gone,
                    Err(source) => {
                        return Err(Error::Remote {
                            action: format!("read {key}"),
                            source,
                        });
                    }
                }
            }
        };
        let cleaning_up = match &remote {
            RemoteState::Gone => true,
            RemoteState::Present(r) => r.meta().deletion_timestamp.is_some(),
        };
        let live_sibling = cleaning_up && self.live_sibling(local_key);
        let mut secrets = BTreeMap::new();
        if let Some(uid) = local.as_ref().and_then(|l| l.meta().uid.clone()) {
            for (name, store) in &self.secrets {
                if let Some(s) = store.get(&ObjectRef::new(name).within(&local_key.namespace))
                    && controller_uid(&s.metadata) == Some(uid.as_str())
                {
                    secrets.insert(name.clone(), SecretPayload((*s).clone()));
                }
            }
        }
        Ok(Some(Observed {
            remote,
            local,
            namespace,
            live_sibling,
            secrets,
            spec_applied: false,
            pushed_secrets: BTreeMap::new(),
        }))
    }

    /// Whether another synced object in this local namespace has a remote object that exists
    /// and is not being deleted.
    fn live_sibling(&self, local_key: &ObjectKey) -> bool {
        self.local_store.state().iter().any(|o| {
            let k = key_of(o.as_ref());
            k.namespace == local_key.namespace
                && k.name != local_key.name
                && self.mapping.to_remote(&k).is_some_and(|rk| {
                    self.remote_store
                        .get(&ObjectRef::new_with(&rk.name, self.ar.clone()).within(&rk.namespace))
                        .is_some_and(|r| r.metadata.deletion_timestamp.is_none())
                })
        })
    }

    fn remember(&self, key: &ObjectKey, remote: Option<&ObjectMeta>, local: Option<&ObjectMeta>) {
        let mut w = lock(&self.written);
        let e = w.entry(key.clone()).or_default();
        if let Some(m) = remote {
            e.remote = rv(m).or(e.remote);
        }
        if let Some(m) = local {
            e.local = rv(m).or(e.local);
        }
    }

    async fn execute(
        &self,
        step: Step<K>,
        obs: &mut Observed<K>,
        key: &ObjectKey,
        local_key: &ObjectKey,
    ) -> Result<(), Error> {
        let pp = PostParams {
            field_manager: Some(self.config.controller_name.clone()),
            ..PostParams::default()
        };
        let patch_params = PatchParams {
            field_manager: Some(self.config.controller_name.clone()),
            ..PatchParams::default()
        };
        let local_api = Api::<DynamicObject>::namespaced_with(
            self.local.clone(),
            &local_key.namespace,
            &self.ar,
        );
        let remote_api =
            Api::<DynamicObject>::namespaced_with(self.remote.clone(), &key.namespace, &self.ar);
        let remote_obj = match &obs.remote {
            RemoteState::Present(r) => Some(r.clone()),
            RemoteState::Gone => None,
        };
        match step {
            Step::InSync | Step::Paused | Step::Wait(_) | Step::ClaimedElsewhere(_) => {}
            Step::CreateNamespace => {
                let ns = Namespace {
                    metadata: ObjectMeta {
                        name: Some(local_key.namespace.clone()),
                        annotations: Some(
                            [(self.keys.owner.clone(), local_key.name.clone())].into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                };
                let created = self
                    .local_call(Api::<Namespace>::all(self.local.clone()).create(&pp, &ns))
                    .await;
                let created = self
                    .write_result(
                        Cluster::Local,
                        created,
                        "create namespace".to_owned(),
                        remote_obj.as_ref(),
                    )
                    .await?;
                self.metrics.wrote(Cluster::Local, "create", "namespaces");
                info!(namespace = %local_key.namespace, "created local namespace");
                let _ = created;
                obs.namespace = Some(NamespaceState {
                    owned: true,
                    terminating: false,
                });
            }
            Step::CreateLocal(obj) => {
                let body = to_dynamic(&*obj)?;
                let r = self.local_call(local_api.create(&pp, &body)).await;
                let created = self
                    .write_result(
                        Cluster::Local,
                        r,
                        "create local object".to_owned(),
                        remote_obj.as_ref(),
                    )
                    .await?;
                self.metrics.wrote(Cluster::Local, "create", "objects");
                self.spec_written(key);
                self.remember(key, None, Some(&created.metadata));
                obs.local = Some(self.typed(&created).map_err(|source| Error::Convert {
                    what: "created object".into(),
                    source,
                })?);
                obs.spec_applied = true;
                info!("created local object");
            }
            Step::UpdateLocal(obj) => {
                let body = to_dynamic(&*obj)?;
                let r = self
                    .local_call(local_api.replace(&local_key.name, &pp, &body))
                    .await;
                let updated = self
                    .write_result(
                        Cluster::Local,
                        r,
                        "update local object".to_owned(),
                        remote_obj.as_ref(),
                    )
                    .await?;
                self.metrics.wrote(Cluster::Local, "update", "objects");
                self.spec_written(key);
                self.remember(key, None, Some(&updated.metadata));
                obs.local = Some(self.typed(&updated).map_err(|source| Error::Convert {
                    what: "updated object".into(),
                    source,
                })?);
                obs.spec_applied = true;
                info!("updated local object");
            }
            Step::PushSecret {
                name,
                version,
                remote,
            } => {
                let remote_name = remote.0.metadata.name.clone().unwrap_or_default();
                let api = Api::<Secret>::namespaced(self.remote.clone(), &key.namespace);
                // An update, never a create: the remote secret must exist, so the controller's
                // remote role needs no `create` (nor `get`) on secrets. The update carries no
                // resource version, which secrets accept as an unconditional update.
                match self
                    .remote_call(api.replace(&remote_name, &pp, &remote.0))
                    .await
                {
                    Ok(_) => {
                        self.metrics.wrote(Cluster::Remote, "update", "secrets");
                        info!(secret = %name, remote_secret = %remote_name, "sent secret up");
                        obs.pushed_secrets.insert(name, version);
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.metrics.rejected("remote_secret_missing");
                        self.warn_remote_typed(remote_obj.as_ref(), "RemoteSecretMissing", "SendSecret",
                            format!("remote secret {}/{remote_name} does not exist; create it on the management cluster so the local secret {name} can be sent up", key.namespace)).await;
                        return Err(Error::MissingRemoteSecret(format!(
                            "{}/{remote_name}",
                            key.namespace
                        )));
                    }
                    Err(source) => {
                        if let Some((reason, message, code)) = api_status(&source)
                            && code != 409
                        {
                            self.metrics.rejected("remote_secret_rejected");
                            self.warn_remote_typed(remote_obj.as_ref(), "SecretRejected", "SendSecret",
                                format!("remote cluster rejected secret {}/{remote_name}: {reason}: {message}", key.namespace)).await;
                        }
                        return Err(Error::Remote {
                            action: format!("update secret {remote_name}"),
                            source,
                        });
                    }
                }
            }
            Step::PatchRemote(p) | Step::ReleaseFinalizer(p) => {
                let releasing = p
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.contains(&self.keys.finalizer));
                let r = self
                    .remote_call(remote_api.patch(
                        &key.name,
                        &patch_params,
                        &Patch::Merge(p.to_merge_patch()),
                    ))
                    .await;
                let patched = self
                    .write_result(
                        Cluster::Remote,
                        r,
                        format!("patch metadata of {key}"),
                        remote_obj.as_ref(),
                    )
                    .await?;
                self.metrics.wrote(Cluster::Remote, "patch", "objects");
                self.remember(key, Some(&patched.metadata), None);
                if releasing {
                    info!("released remote object");
                }
                obs.remote = RemoteState::Present(self.typed(&patched).map_err(|source| {
                    Error::Convert {
                        what: "patched object".into(),
                        source,
                    }
                })?);
            }
            Step::PatchRemoteStatus(status) => {
                let current = remote_obj
                    .as_ref()
                    .and_then(|r| r.status().and_then(|s| serde_json::to_value(s).ok()));
                let body = serde_json::json!({ "status": merge_diff(current.as_ref(), &status) });
                let r = self
                    .remote_call(remote_api.patch_status(
                        &key.name,
                        &patch_params,
                        &Patch::Merge(body),
                    ))
                    .await;
                let patched = self
                    .write_result(
                        Cluster::Remote,
                        r,
                        format!("patch status of {key}"),
                        remote_obj.as_ref(),
                    )
                    .await?;
                self.metrics.wrote(Cluster::Remote, "patch", "status");
                self.remember(key, Some(&patched.metadata), None);
                if let Some(t) = lock(&self.seen).get_mut(key).and_then(|s| s.status.take()) {
                    self.metrics.status_lag(t.elapsed().as_secs_f64());
                }
                obs.remote = RemoteState::Present(self.typed(&patched).map_err(|source| {
                    Error::Convert {
                        what: "patched object".into(),
                        source,
                    }
                })?);
            }
            Step::DeleteNamespace => {
                self.take_budget(remote_obj.as_ref()).await?;
                let api = Api::<Namespace>::all(self.local.clone());
                match self
                    .local_call(api.delete(&local_key.namespace, &DeleteParams::default()))
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(source) => {
                        return Err(Error::Local {
                            action: format!("delete namespace {}", local_key.namespace),
                            source,
                        });
                    }
                }
                self.metrics.wrote(Cluster::Local, "delete", "namespaces");
                info!(namespace = %local_key.namespace, "deleting local namespace");
                obs.namespace = Some(NamespaceState {
                    owned: true,
                    terminating: true,
                });
            }
            Step::DeleteLocal(propagation) => {
                self.take_budget(remote_obj.as_ref()).await?;
                let dp = match propagation {
                    Propagation::Foreground => DeleteParams::foreground(),
                    Propagation::Background => DeleteParams::background(),
                    Propagation::Orphan => DeleteParams::orphan(),
                };
                match self
                    .local_call(local_api.delete(&local_key.name, &dp))
                    .await
                {
                    Ok(either) => {
                        obs.local = match either.left() {
                            Some(o) => Some(self.typed(&o).map_err(|source| Error::Convert {
                                what: "deleted object".into(),
                                source,
                            })?),
                            None => None,
                        };
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => obs.local = None,
                    Err(source) => {
                        return Err(Error::Local {
                            action: format!("delete {local_key}"),
                            source,
                        });
                    }
                }
                self.metrics.wrote(Cluster::Local, "delete", "objects");
                info!("deleting local object");
            }
        }
        Ok(())
    }

    /// A request to the remote cluster; see [`Inner::call`].
    async fn remote_call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        self.call(&self.remote_reach, request).await
    }

    /// A request to the local cluster; see [`Inner::call`].
    async fn local_call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        self.call(&self.local_reach, request).await
    }

    /// A request that counts as failed when no answer comes within the request timeout, and
    /// is not even sent while its cluster is known to be unreachable: a frozen API server
    /// would otherwise hold a worker for the whole timeout on every pass that needs it, and
    /// the objects that need only the other cluster would wait for free workers.
    async fn call<T>(
        &self,
        reach: &Reachability,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        if reach.is_down() {
            return Err(kube::Error::Service(Box::new(Unreachable)));
        }
        tokio::time::timeout(self.request_timeout, request)
            .await
            .unwrap_or_else(|_| {
                Err(kube::Error::Service(Box::new(NoAnswer(
                    self.request_timeout,
                ))))
            })
    }

    fn spec_written(&self, key: &ObjectKey) {
        if let Some(t) = lock(&self.seen).get_mut(key).and_then(|s| s.spec.take()) {
            self.metrics.spec_lag(t.elapsed().as_secs_f64());
        }
    }

    /// Takes one deletion from the budget; past it, says why on the remote object and in a
    /// metric, and makes the key wait until the window allows.
    async fn take_budget(&self, remote: Option<&K>) -> Result<(), Error> {
        let Err(wait) = self.budget.try_take() else {
            return Ok(());
        };
        self.metrics.budget_trip();
        let b = self.config.deletion_budget;
        let note = format!(
            "more than {} local deletions within {:?}; holding this one back for {:?} so a mass deletion on the management cluster cannot wipe the region",
            b.max_deletions, b.window, wait
        );
        warn!(?wait, "deletion budget exhausted");
        self.warn_remote_typed(remote, "DeletionBudgetExceeded", "Delete", note)
            .await;
        Err(Error::BudgetExhausted(wait))
    }

    /// The result of a write to either cluster. A rejection (admission, schema, quota, size
    /// limits) is reported as a Warning event on the remote object, so the management plane
    /// sees why without reading logs.
    async fn write_result<T>(
        &self,
        cluster: Cluster,
        r: Result<T, kube::Error>,
        action: String,
        remote: Option<&K>,
    ) -> Result<T, Error> {
        let source = match r {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        if let Some((reason, message, code)) = api_status(&source)
            && matches!(code, 400 | 403 | 422)
        {
            let (metric, event, event_action, side) = match cluster {
                Cluster::Local => (
                    "local_write_rejected",
                    "LocalWriteRejected",
                    "SyncSpec",
                    "local",
                ),
                Cluster::Remote => (
                    "remote_write_rejected",
                    "RemoteWriteRejected",
                    "Sync",
                    "remote",
                ),
            };
            self.metrics.rejected(metric);
            let note = format!("{side} cluster rejected the {action}: {reason}: {message}");
            self.warn_remote_typed(remote, event, event_action, note)
                .await;
        }
        Err(match cluster {
            Cluster::Local => Error::Local { action, source },
            Cluster::Remote => Error::Remote { action, source },
        })
    }

    /// Reports, once per key while this process runs, a remote object that another controller
    /// claimed: both controllers match it, so their configurations overlap.
    async fn report_claimed(&self, key: &ObjectKey, owner: &str, remote: Option<&K>) {
        if !lock(&self.claimed_elsewhere).insert(key.clone()) {
            return;
        }
        warn!(
            claimed_by = owner,
            "remote object claimed by another controller; not synced"
        );
        self.metrics.rejected("claimed_elsewhere");
        let note = format!(
            "claimed by controller {owner:?} (annotation {}), so controller {:?} leaves it alone; both match it, so their suffixes or prefixes overlap",
            self.keys.claim, self.config.controller_name
        );
        self.warn_remote_typed(remote, "ClaimedByAnotherController", "Claim", note)
            .await;
    }

    async fn report_unmapped(&self, key: &ObjectKey, why: &Unmapped) {
        let remote = self
            .remote_store
            .get(&ObjectRef::new_with(&key.name, self.ar.clone()).within(&key.namespace));
        warn!(reason = %why, "remote object not synced");
        self.metrics.rejected("invalid_name");
        self.warn_remote(
            remote.as_deref(),
            "InvalidName",
            "Map",
            format!("not synced: {why}"),
        )
        .await;
    }

    async fn warn_remote_typed(
        &self,
        remote: Option<&K>,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if let Some(r) = remote {
            self.publish(r.object_ref(&()), reason, action, note).await;
        }
    }

    async fn warn_remote(
        &self,
        remote: Option<&DynamicObject>,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if let Some(r) = remote {
            self.publish(r.object_ref(&self.ar), reason, action, note)
                .await;
        }
    }

    async fn publish(
        &self,
        reference: k8s_openapi::api::core::v1::ObjectReference,
        reason: &str,
        action: &str,
        mut note: String,
    ) {
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let ev = Event {
            type_: EventType::Warning,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        match self
            .remote_call(self.recorder.publish(&ev, &reference))
            .await
        {
            Ok(()) => self.metrics.wrote(Cluster::Remote, "create", "events"),
            Err(e) => debug!(error = %e, "failed to publish event"),
        }
    }
}

fn to_dynamic<K: Syncable>(obj: &K) -> Result<DynamicObject, Error> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|source| Error::Convert {
            what: "object to write".into(),
            source,
        })
}

/// The name of the object of kind `K` that controls an object, if any.
fn controller_of<K: Syncable>(meta: &ObjectMeta) -> Option<String> {
    let kind = K::kind(&());
    let api_version = K::api_version(&());
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == kind && o.api_version == api_version)
        .map(|o| o.name.clone())
}

fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// A JSON merge patch that turns `old` into `new` exactly: keys only in `old` become `null`.
pub(crate) fn merge_diff(
    old: Option<&serde_json::Value>,
    new: &serde_json::Value,
) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Some(Value::Object(o)), Value::Object(n)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in n {
                if o.get(k) != Some(v) {
                    out.insert(k.clone(), merge_diff(o.get(k), v));
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_diff_removes_dropped_keys_and_keeps_equal_ones_out() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let new = json!({"a": 1, "b": {"c": 5}, "f": true});
        assert_eq!(
            merge_diff(Some(&old), &new),
            json!({"b": {"c": 5, "d": null}, "e": null, "f": true})
        );
        assert_eq!(merge_diff(None, &new), new);
    }

    #[test]
    fn invalid_configuration_is_refused() {
        assert!(validate(&SyncConfig::new("x")).is_ok());
        assert!(validate(&SyncConfig::new("x").remote_suffix("-EU")).is_err());
        assert!(validate(&SyncConfig::new("x").secrets(["a", "a"])).is_err());
        assert!(validate(&SyncConfig::new("x").domain("not a domain")).is_err());
    }
}
