//! The bench's own view of both clusters: four watches (as the admin user) feeding one task
//! that knows, per object, whether it has converged and when each stage was first seen.
//!
//! Every event is checked for its own object only, so the cost per event is constant and the
//! observer stays cheap at 10,000 objects. For the deletion phase it also tells when each
//! object's remote object and local copy are gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use sync_core::Keys;
use sync_tests::harness::Database;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::child::SECRET;
use crate::layout::{Layout, REMOTE_SUFFIX};

/// Which of the two clusters' `Database` watches an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Side {
    Remote,
    Local,
}

/// A message to the observer task.
enum Msg {
    Remote(Box<Database>, Instant),
    Local(Box<Database>, Instant),
    /// A watch saw an object deleted.
    Deleted(Side, Box<Database>, Instant),
    /// A `Database` watch started a (re)list: objects it does not list again are gone.
    Relisting(Side),
    /// A `Database` watch finished its (re)list.
    Relisted(Side, Instant),
    RemoteSecret(Box<Secret>),
    LocalSecret(Box<Secret>),
    Listed,
    TrackDeletion(Vec<String>),
    DeleteRequested(String, Instant),
    WhenAllGone(oneshot::Sender<Instant>),
    NotGone(oneshot::Sender<Vec<String>>),
    DeletionStages(oneshot::Sender<DeletionStages>),
    Track(Vec<(String, bool)>),
    Untrack(Vec<String>),
    ExpectRemotePhase(String, String, oneshot::Sender<Instant>),
    Created(String, Instant),
    ExpectSpec(String, String, oneshot::Sender<Instant>),
    WhenConverged(Option<String>, oneshot::Sender<Instant>),
    Pending(oneshot::Sender<Vec<String>>),
    Stages(oneshot::Sender<Stages>),
}

/// Per-object durations between stages of convergence, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Stages {
    /// Remote create acknowledged → local copy first seen.
    pub create_to_local: Vec<f64>,
    /// Local copy first seen → remote generation annotations first seen.
    pub local_to_annotated: Vec<f64>,
    /// Local status first seen → the same status first seen on the remote object.
    pub status_up: Vec<f64>,
    /// Remote create acknowledged → converged.
    pub create_to_converged: Vec<f64>,
}

/// Per-object durations of the deletion phase, in milliseconds, from the acknowledgement of
/// the remote delete.
#[derive(Clone, Debug, Default)]
pub struct DeletionStages {
    /// → the local copy is gone.
    pub local_gone: Vec<f64>,
    /// → the remote object is gone (released by the controller, then removed).
    pub remote_gone: Vec<f64>,
}

/// A handle on the observer task.
#[derive(Clone)]
pub struct Observer {
    tx: mpsc::UnboundedSender<Msg>,
    _watches: Arc<Watches>,
}

/// The watch tasks, stopped when the last [`Observer`] handle goes, so that they never
/// outlive the clusters they watch.
struct Watches(Vec<tokio::task::AbortHandle>);

impl Drop for Watches {
    fn drop(&mut self) {
        for w in &self.0 {
            w.abort();
        }
    }
}

/// The key of an object: `namespace/name` of the local object (the remote name carries
/// [`REMOTE_SUFFIX`] too; the namespaces are the same).
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn key_of(o: &impl ResourceExt) -> String {
    key(&o.namespace().unwrap_or_default(), &o.name_any())
}

/// The key of a remote object, `None` for an object of another region.
fn remote_key_of(o: &impl ResourceExt) -> Option<String> {
    let name = o.name_any();
    let name = name.strip_suffix(REMOTE_SUFFIX)?;
    Some(key(&o.namespace().unwrap_or_default(), name))
}

/// For a `Database` watch: its side, and how it wraps a deletion.
type Deletions<K> = Option<(Side, fn(Side, K, Instant) -> Msg)>;

fn watch<K>(
    api: Api<K>,
    cfg: watcher::Config,
    tx: mpsc::UnboundedSender<Msg>,
    wrap: fn(K, Instant) -> Msg,
    side: Deletions<K>,
) -> tokio::task::AbortHandle
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, cfg).default_backoff());
        let mut listed = false;
        while let Some(e) = events.next().await {
            let now = Instant::now();
            let msg = match (e, side) {
                (Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)), _) => wrap(o, now),
                (Ok(watcher::Event::Delete(o)), Some((side, deleted))) => deleted(side, o, now),
                (Ok(watcher::Event::Init), Some((side, _))) => Msg::Relisting(side),
                // The first list is announced once, for [`Observer::start`]; a relist after
                // a broken watch only prunes what it no longer lists.
                (Ok(watcher::Event::InitDone), Some((side, _))) if listed => {
                    Msg::Relisted(side, now)
                }
                (Ok(watcher::Event::InitDone), side) => {
                    listed = true;
                    if let Some((side, _)) = side {
                        let _ = tx.send(Msg::Relisted(side, now));
                    }
                    Msg::Listed
                }
                (Ok(_), _) => continue,
                (Err(e), _) => {
                    eprintln!("bench watch failed, retrying: {e}");
                    continue;
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    task.abort_handle()
}

fn deleted(side: Side, o: Database, at: Instant) -> Msg {
    Msg::Deleted(side, Box::new(o), at)
}

impl Observer {
    /// Starts the four watches and the observer task, and waits for their initial lists.
    pub async fn start(remote: Client, local: Client) -> Result<Observer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let secrets = watcher::Config::default().fields(&format!("metadata.name={SECRET}"));
        let remote_secrets = watcher::Config::default()
            .fields(&format!("metadata.name={}", Layout::remote_secret_name()));
        let watches = vec![
            watch(
                Api::<Database>::all(remote.clone()),
                watcher::Config::default(),
                tx.clone(),
                |o, t| Msg::Remote(Box::new(o), t),
                Some((Side::Remote, deleted)),
            ),
            watch(
                Api::<Database>::all(local.clone()),
                watcher::Config::default(),
                tx.clone(),
                |o, t| Msg::Local(Box::new(o), t),
                Some((Side::Local, deleted)),
            ),
            watch(
                Api::<Secret>::all(remote),
                remote_secrets,
                tx.clone(),
                |o, _| Msg::RemoteSecret(Box::new(o)),
                None,
            ),
            watch(
                Api::<Secret>::all(local),
                secrets,
                tx.clone(),
                |o, _| Msg::LocalSecret(Box::new(o)),
                None,
            ),
        ];
        let (listed_tx, listed_rx) = oneshot::channel();
        tokio::spawn(State::default().run(rx, listed_tx));
        tokio::time::timeout(Duration::from_secs(60), listed_rx)
            .await
            .map_err(|_| anyhow!("the bench's watches did not list within 60 s"))??;
        Ok(Observer {
            tx,
            _watches: Arc::new(Watches(watches)),
        })
    }

    fn send(&self, msg: Msg) {
        // The task lives as long as any handle does.
        let _ = self.tx.send(msg);
    }

    /// Tracks these objects (key, whether it sends a secret up) for convergence.
    pub fn track(&self, keys: Vec<(String, bool)>) {
        self.send(Msg::Track(keys));
    }

    /// Stops tracking these objects: they no longer count for convergence or the stages.
    pub fn untrack(&self, keys: Vec<String>) {
        self.send(Msg::Untrack(keys));
    }

    /// Resolves when the remote object of `key` is seen with `status.phase == phase`.
    pub fn expect_remote_phase(&self, key: String, phase: String) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::ExpectRemotePhase(key, phase, tx));
        rx
    }

    /// Notes when the remote create of `key` was acknowledged.
    pub fn created(&self, key: String, at: Instant) {
        self.send(Msg::Created(key, at));
    }

    /// Resolves when the local copy of `key` is seen with `spec.size == size`.
    pub fn expect_local_size(&self, key: String, size: String) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::ExpectSpec(key, size, tx));
        rx
    }

    /// Resolves when `key` (or, with `None`, every tracked object) is converged.
    pub fn when_converged(&self, key: Option<String>) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::WhenConverged(key, tx));
        rx
    }

    /// The tracked objects not converged now.
    pub async fn pending(&self) -> Vec<String> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Pending(tx));
        rx.await.unwrap_or_default()
    }

    /// The stage durations of every tracked object.
    pub async fn stages(&self) -> Stages {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Stages(tx));
        rx.await.unwrap_or_default()
    }

    /// Tracks these objects (keys) for deletion: [`Observer::when_all_gone`] resolves once
    /// both their remote objects and their local copies are gone.
    pub fn track_deletion(&self, keys: Vec<String>) {
        self.send(Msg::TrackDeletion(keys));
    }

    /// Notes when the remote delete of `key` was acknowledged.
    pub fn delete_requested(&self, key: String, at: Instant) {
        self.send(Msg::DeleteRequested(key, at));
    }

    /// Resolves when every object tracked for deletion is gone on both clusters.
    pub fn when_all_gone(&self) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::WhenAllGone(tx));
        rx
    }

    /// The objects tracked for deletion still present on either cluster.
    pub async fn not_gone(&self) -> Vec<String> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::NotGone(tx));
        rx.await.unwrap_or_default()
    }

    /// The deletion stage durations of every object tracked for deletion.
    pub async fn deletion_stages(&self) -> DeletionStages {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::DeletionStages(tx));
        rx.await.unwrap_or_default()
    }
}

/// One object of the deletion phase: when its remote delete was acknowledged, and when each
/// side was first seen gone.
#[derive(Default)]
struct Gone {
    requested: Option<Instant>,
    remote: Option<Instant>,
    local: Option<Instant>,
}

#[derive(Default)]
struct Entry {
    secret: bool,
    created: Option<Instant>,
    local_seen: Option<Instant>,
    annotated: Option<Instant>,
    local_status: Option<Instant>,
    status_up: Option<Instant>,
    converged: Option<Instant>,
}

#[derive(Default)]
struct State {
    remote: HashMap<String, Database>,
    local: HashMap<String, Database>,
    /// Secret data by namespace.
    remote_secrets: HashMap<String, BTreeMap<String, ByteString>>,
    local_secrets: HashMap<String, BTreeMap<String, ByteString>>,
    /// The tracked key that sends a secret up, by namespace.
    secret_key: HashMap<String, String>,
    entries: HashMap<String, Entry>,
    pending: HashSet<String>,
    all_waiters: Vec<oneshot::Sender<Instant>>,
    key_waiters: HashMap<String, Vec<oneshot::Sender<Instant>>>,
    spec_waiters: HashMap<String, Vec<(String, oneshot::Sender<Instant>)>>,
    phase_waiters: HashMap<String, Vec<(String, oneshot::Sender<Instant>)>>,
    keys: Option<Keys>,
    /// The objects tracked for deletion, and how many of them are not gone on both sides.
    deleting: HashMap<String, Gone>,
    not_gone: usize,
    gone_waiters: Vec<oneshot::Sender<Instant>>,
    /// The keys a relist of each side has listed so far, while it runs.
    relisting: HashMap<Side, HashSet<String>>,
}

impl State {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, listed: oneshot::Sender<()>) {
        self.keys = Some(Keys::new(sync_core::DEFAULT_DOMAIN));
        let mut listed = Some((listed, 0));
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Listed => {
                    if let Some((tx, n)) = listed.take() {
                        if n + 1 == 4 {
                            let _ = tx.send(());
                        } else {
                            listed = Some((tx, n + 1));
                        }
                    }
                }
                Msg::Remote(o, at) => {
                    // Objects of other regions are none of the bench's business.
                    let Some(k) = remote_key_of(&*o) else {
                        continue;
                    };
                    if let Some(waiters) = self.phase_waiters.get_mut(&k) {
                        let phase = o.status.as_ref().and_then(|s| s.phase.clone());
                        for (want, tx) in std::mem::take(waiters) {
                            if phase.as_ref() == Some(&want) {
                                let _ = tx.send(at);
                            } else {
                                waiters.push((want, tx));
                            }
                        }
                    }
                    if let Some(seen) = self.relisting.get_mut(&Side::Remote) {
                        seen.insert(k.clone());
                    }
                    self.remote.insert(k.clone(), *o);
                    self.check(&k, at);
                }
                Msg::Local(o, at) => {
                    let k = key_of(&*o);
                    if let Some(waiters) = self.spec_waiters.get_mut(&k) {
                        let size = o.spec.size.clone();
                        for (want, tx) in std::mem::take(waiters) {
                            if want == size {
                                let _ = tx.send(at);
                            } else {
                                waiters.push((want, tx));
                            }
                        }
                    }
                    if let Some(seen) = self.relisting.get_mut(&Side::Local) {
                        seen.insert(k.clone());
                    }
                    self.local.insert(k.clone(), *o);
                    self.check(&k, at);
                }
                Msg::Deleted(side, o, at) => {
                    let k = match side {
                        Side::Remote => remote_key_of(&*o),
                        Side::Local => Some(key_of(&*o)),
                    };
                    if let Some(k) = k {
                        self.gone(side, &k, at);
                    }
                }
                Msg::Relisting(side) => {
                    self.relisting.insert(side, HashSet::new());
                }
                Msg::Relisted(side, at) => {
                    let Some(seen) = self.relisting.remove(&side) else {
                        continue;
                    };
                    let map = match side {
                        Side::Remote => &self.remote,
                        Side::Local => &self.local,
                    };
                    let missing: Vec<String> =
                        map.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                    for k in missing {
                        self.gone(side, &k, at);
                    }
                }
                Msg::TrackDeletion(keys) => {
                    let now = Instant::now();
                    for k in keys {
                        let entry = Gone {
                            requested: None,
                            remote: (!self.remote.contains_key(&k)).then_some(now),
                            local: (!self.local.contains_key(&k)).then_some(now),
                        };
                        let done = entry.remote.is_some() && entry.local.is_some();
                        if let Some(old) = self.deleting.insert(k, entry)
                            && (old.remote.is_none() || old.local.is_none())
                        {
                            self.not_gone -= 1;
                        }
                        if !done {
                            self.not_gone += 1;
                        }
                    }
                    self.wake_gone(now);
                }
                Msg::DeleteRequested(k, at) => {
                    if let Some(g) = self.deleting.get_mut(&k) {
                        g.requested = Some(at);
                    }
                }
                Msg::WhenAllGone(tx) => {
                    self.gone_waiters.push(tx);
                    self.wake_gone(Instant::now());
                }
                Msg::NotGone(tx) => {
                    let mut p: Vec<String> = self
                        .deleting
                        .iter()
                        .filter(|(_, g)| g.remote.is_none() || g.local.is_none())
                        .map(|(k, _)| k.clone())
                        .collect();
                    p.sort();
                    let _ = tx.send(p);
                }
                Msg::DeletionStages(tx) => {
                    let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
                        (Some(a), Some(b)) => {
                            Some(b.saturating_duration_since(a).as_secs_f64() * 1000.0)
                        }
                        _ => None,
                    };
                    let mut s = DeletionStages::default();
                    for g in self.deleting.values() {
                        s.local_gone.extend(ms(g.requested, g.local));
                        s.remote_gone.extend(ms(g.requested, g.remote));
                    }
                    let _ = tx.send(s);
                }
                Msg::RemoteSecret(s) => {
                    let ns = s.namespace().unwrap_or_default();
                    self.remote_secrets
                        .insert(ns.clone(), s.data.unwrap_or_default());
                    self.check_secret_of(&ns);
                }
                Msg::LocalSecret(s) => {
                    let ns = s.namespace().unwrap_or_default();
                    self.local_secrets
                        .insert(ns.clone(), s.data.unwrap_or_default());
                    self.check_secret_of(&ns);
                }
                Msg::Track(keys) => {
                    let now = Instant::now();
                    for (k, secret) in keys {
                        if secret {
                            let ns = k.split('/').next().unwrap_or_default().to_owned();
                            self.secret_key.insert(ns, k.clone());
                        }
                        self.entries.insert(
                            k.clone(),
                            Entry {
                                secret,
                                ..Entry::default()
                            },
                        );
                        self.pending.insert(k.clone());
                        self.check(&k, now);
                    }
                }
                Msg::Untrack(keys) => {
                    for k in keys {
                        self.entries.remove(&k);
                        self.pending.remove(&k);
                    }
                    if self.pending.is_empty() {
                        let now = Instant::now();
                        for tx in self.all_waiters.drain(..) {
                            let _ = tx.send(now);
                        }
                    }
                }
                Msg::ExpectRemotePhase(k, phase, tx) => {
                    let seen = self
                        .remote
                        .get(&k)
                        .and_then(|r| r.status.as_ref())
                        .and_then(|s| s.phase.as_ref())
                        == Some(&phase);
                    if seen {
                        let _ = tx.send(Instant::now());
                    } else {
                        self.phase_waiters.entry(k).or_default().push((phase, tx));
                    }
                }
                Msg::Created(k, at) => {
                    if let Some(e) = self.entries.get_mut(&k) {
                        e.created = Some(at);
                    }
                }
                Msg::ExpectSpec(k, size, tx) => {
                    if self.local.get(&k).is_some_and(|l| l.spec.size == size) {
                        let _ = tx.send(Instant::now());
                    } else {
                        self.spec_waiters.entry(k).or_default().push((size, tx));
                    }
                }
                Msg::WhenConverged(None, tx) => {
                    if self.pending.is_empty() {
                        let _ = tx.send(Instant::now());
                    } else {
                        self.all_waiters.push(tx);
                    }
                }
                Msg::WhenConverged(Some(k), tx) => {
                    if self.converged(&k) {
                        let _ = tx.send(Instant::now());
                    } else {
                        self.key_waiters.entry(k).or_default().push(tx);
                    }
                }
                Msg::Pending(tx) => {
                    let mut p: Vec<String> = self.pending.iter().cloned().collect();
                    p.sort();
                    let _ = tx.send(p);
                }
                Msg::Stages(tx) => {
                    let _ = tx.send(self.stages());
                }
            }
        }
    }

    /// `key` is gone on `side`.
    fn gone(&mut self, side: Side, key: &str, at: Instant) {
        match side {
            Side::Remote => self.remote.remove(key),
            Side::Local => self.local.remove(key),
        };
        let Some(g) = self.deleting.get_mut(key) else {
            return;
        };
        let slot = match side {
            Side::Remote => &mut g.remote,
            Side::Local => &mut g.local,
        };
        if slot.is_some() {
            return;
        }
        *slot = Some(at);
        if g.remote.is_some() && g.local.is_some() {
            self.not_gone -= 1;
            self.wake_gone(at);
        }
    }

    fn wake_gone(&mut self, at: Instant) {
        if self.not_gone == 0 {
            for tx in self.gone_waiters.drain(..) {
                let _ = tx.send(at);
            }
        }
    }

    fn check_secret_of(&mut self, ns: &str) {
        if let Some(k) = self.secret_key.get(ns).cloned() {
            self.check(&k, Instant::now());
        }
    }

    /// Whether `key` is converged now: the local spec is the remote one, the generation
    /// annotations are right, the local controller has seen the current generation and its
    /// status is on the remote object, and the secret (if any) went up.
    fn converged(&self, key: &str) -> bool {
        let (Some(r), Some(l)) = (self.remote.get(key), self.local.get(key)) else {
            return false;
        };
        let spec = l.spec.size == r.spec.size
            && (r.spec.replicas.is_none() || r.spec.replicas == l.spec.replicas);
        let status = l.status.as_ref().is_some_and(|s| {
            s.observed_generation == l.metadata.generation && r.status.as_ref() == Some(s)
        });
        let secret = !self.entries.get(key).is_some_and(|e| e.secret) || {
            let ns = key.split('/').next().unwrap_or_default();
            match (self.local_secrets.get(ns), self.remote_secrets.get(ns)) {
                (Some(l), Some(r)) => !l.is_empty() && l == r,
                _ => false,
            }
        };
        spec && self.annotated(r, l) && status && secret
    }

    fn annotated(&self, r: &Database, l: &Database) -> bool {
        let keys = self.keys.as_ref().expect("set at start");
        let a = r.annotations();
        let gen_of = |k: &str| a.get(k).and_then(|v| v.parse::<i64>().ok());
        gen_of(&keys.remote_generation) == r.metadata.generation
            && gen_of(&keys.local_generation) == l.metadata.generation
    }

    fn check(&mut self, key: &str, at: Instant) {
        if !self.entries.contains_key(key) {
            return;
        }
        let converged = self.converged(key);
        let local_seen = self.local.contains_key(key);
        let annotated = match (self.remote.get(key), self.local.get(key)) {
            (Some(r), Some(l)) => self.annotated(r, l),
            _ => false,
        };
        let local_status = self.local.get(key).and_then(|l| l.status.clone());
        let status_up = local_status.is_some()
            && self.remote.get(key).and_then(|r| r.status.as_ref()) == local_status.as_ref();
        let e = self.entries.get_mut(key).expect("checked above");
        let first = |slot: &mut Option<Instant>, now: bool| {
            if now && slot.is_none() {
                *slot = Some(at);
            }
        };
        first(&mut e.local_seen, local_seen);
        first(&mut e.annotated, annotated);
        first(&mut e.local_status, local_status.is_some());
        first(&mut e.status_up, status_up);
        first(&mut e.converged, converged);
        if converged {
            self.pending.remove(key);
            for tx in self.key_waiters.remove(key).unwrap_or_default() {
                let _ = tx.send(at);
            }
            if self.pending.is_empty() {
                for tx in self.all_waiters.drain(..) {
                    let _ = tx.send(at);
                }
            }
        } else {
            self.pending.insert(key.to_owned());
        }
    }

    fn stages(&self) -> Stages {
        let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64() * 1000.0),
            _ => None,
        };
        let mut s = Stages::default();
        for e in self.entries.values() {
            s.create_to_local.extend(ms(e.created, e.local_seen));
            s.local_to_annotated.extend(ms(e.local_seen, e.annotated));
            s.status_up.extend(ms(e.local_status, e.status_up));
            s.create_to_converged.extend(ms(e.created, e.converged));
        }
        s
    }
}
