//! The watches: each fills a cache and yields the remote keys of the objects it touched.

use std::sync::Arc;

use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Inner;
use super::cache::CacheWriter;
use super::index::Side;
use super::observe::controller_of;
use super::state::{key_of, lock};
use super::watch_stream::{Touched, watch_into};
use crate::mapping::ObjectKey;
use crate::metrics::Cluster;
use crate::plan::{ClaimCensus, NamespaceState};
use crate::reachability::Reachability;
use crate::readiness::WatchHealth;
use crate::syncable::SyncObject;

/// The remote keys the watches yield, merged into one stream.
pub(super) type Trigger = BoxStream<'static, ObjectKey>;

/// The write halves of the secret caches, one per configured name.
pub(super) type SecretWriters = Vec<(String, reflector::store::Writer<Secret>)>;

/// The write halves of the caches, one per watch.
pub(super) struct Writers<C> {
    pub(super) remote: CacheWriter<C>,
    pub(super) local: CacheWriter<C>,
    pub(super) secrets: SecretWriters,
}

impl<K: SyncObject> Inner<K> {
    /// Starts every watch; the merged stream yields the remote key of each object touched.
    pub(super) fn triggers(self: Arc<Self>, writers: Writers<K::Cached>) -> Trigger {
        let cfg = watcher::Config::default().any_semantic();
        let cfg = if self.config.streaming_lists {
            cfg.streaming_lists()
        } else {
            cfg
        };
        let remote = self.clone().remote_triggers(writers.remote, &cfg);
        let local = self.clone().local_triggers(writers.local, &cfg);
        let mut all: Vec<Trigger> = vec![remote, local];
        for (name, writer) in writers.secrets {
            all.push(self.clone().secret_triggers(&name, writer, &cfg));
        }
        stream::select_all(all).boxed()
    }

    /// The remote objects of this controller, each marking when its spec change was seen.
    fn remote_triggers(
        self: Arc<Self>,
        writer: CacheWriter<K::Cached>,
        cfg: &watcher::Config,
    ) -> Trigger {
        let remote_api = Api::<K::Cached>::all_with(self.remote.clone(), &self.ar);
        let cfg = match &self.config.remote_label_selector {
            Some(selector) => cfg.clone().labels(selector),
            None => cfg.clone(),
        };
        let cfg = &cfg;
        let reach = self.remote_reach.clone();
        let health = self.watch_health(&reach);
        let (me, indexer, shard) = (self.clone(), self.clone(), self);
        let events = watcher(remote_api, cfg.clone())
            .filter(move |e| futures::future::ready(shard.in_shard(Side::Remote, e)))
            .inspect(move |e| indexer.index_before_cache(Side::Remote, e));
        watch_into(events, writer, reach, health, me.watched())
            .flat_map(move |t| {
                let o = match t {
                    Touched::Object(o) | Touched::Deleted(o) => o,
                    Touched::Listed => {
                        me.index_after_cache(Side::Remote, None);
                        me.metrics.cached(Cluster::Remote, me.remote_store.len());
                        return stream::iter(me.all_keys());
                    }
                };
                me.index_after_cache(Side::Remote, Some(&o));
                me.metrics.cached(Cluster::Remote, me.remote_store.len());
                let key = key_of(&o);
                // The echo of this controller's own write is no change to sync, and queues
                // nothing: the pass that wrote already knows the object.
                if !me.is_ours(&key) || !me.event_queues(&key, Side::Remote, o.meta()) {
                    return stream::iter(Vec::new());
                }
                me.first_seen(&key, Side::Remote, Instant::now());
                stream::iter(vec![key])
            })
            .boxed()
    }

    /// The local copies, each marking when its status change was seen.
    fn local_triggers(
        self: Arc<Self>,
        writer: CacheWriter<K::Cached>,
        cfg: &watcher::Config,
    ) -> Trigger {
        let local_api = Api::<K::Cached>::all_with(self.local.clone(), &self.ar);
        let reach = self.local_reach.clone();
        let health = self.watch_health(&reach);
        let (me, indexer, shard) = (self.clone(), self.clone(), self);
        let events = watcher(local_api, cfg.clone())
            .filter(move |e| futures::future::ready(shard.in_shard(Side::Local, e)))
            .inspect(move |e| indexer.index_before_cache(Side::Local, e));
        watch_into(events, writer, reach, health, me.watched())
            .flat_map(move |t| {
                let o = match t {
                    Touched::Object(o) | Touched::Deleted(o) => o,
                    Touched::Listed => {
                        me.index_after_cache(Side::Local, None);
                        me.metrics.cached(Cluster::Local, me.local_store.len());
                        return stream::iter(me.all_keys());
                    }
                };
                me.index_after_cache(Side::Local, Some(&o));
                me.metrics.cached(Cluster::Local, me.local_store.len());
                let key = me
                    .mapping
                    .to_remote(&key_of(&o))
                    .filter(|key| me.event_queues(key, Side::Local, o.meta()));
                if let Some(key) = &key {
                    me.first_seen(key, Side::Local, Instant::now());
                }
                stream::iter(key.into_iter().collect::<Vec<_>>())
            })
            .boxed()
    }

    /// A change to a namespace queues the key of the object this controller created it for
    /// (when another controller removes its mark, the namespace may be free to go, and no
    /// object of ours announces that), unless it only echoes this controller's own create. Its
    /// deletion queues that key too, and the key of each of this controller's objects in it:
    /// a pass that waits for the namespace to go ends its wait on this event rather than on a
    /// poll, and one whose pass is running meanwhile runs again. A change to a terminating
    /// namespace queues nothing: only its deletion can matter now (in a mass deletion the
    /// namespace controller updates each namespace several times as it empties it). A relist
    /// of the namespaces queues every key whose last pass waited: a namespace deleted while
    /// the watch was down sent no event. Costs O(objects in that namespace), through the
    /// index, or O(waiting keys) for a relist.
    pub(super) fn namespace_touched(&self, touched: &Touched<PartialObjectMeta<Namespace>>) {
        let (ns, deleted) = match touched {
            Touched::Object(ns) => (ns, false),
            Touched::Deleted(ns) => (ns, true),
            Touched::Listed => {
                for key in lock(&self.waits).keys() {
                    let _ = self.queue.send(key.clone());
                }
                return;
            }
        };
        let namespace = ns.name_any();
        if !deleted && ns.metadata.deletion_timestamp.is_some() {
            return;
        }
        // The namespace's own create is recorded as a local write of the key it was made for
        // (one resource version sequence per cluster): its echo queues nothing.
        if let Some(key) = self.creator_key(ns)
            && (deleted || self.event_queues(&key, Side::Local, &ns.metadata))
        {
            let _ = self.queue.send(key);
        }
        if !deleted {
            return;
        }
        let mut names = self.local_index.names(&namespace);
        names.extend(self.remote_index.names(&namespace));
        names.sort_unstable();
        names.dedup();
        for name in names {
            if let Some(key) = self
                .mapping
                .to_remote(&ObjectKey::new(namespace.clone(), name))
            {
                let _ = self.queue.send(key);
            }
        }
    }

    /// The remote key of the object a namespace was created for, if this controller created
    /// it (by its stamp) or the Go original did (no stamp).
    fn creator_key(&self, ns: &PartialObjectMeta<Namespace>) -> Option<ObjectKey> {
        let state = NamespaceState::from_meta(&ns.metadata, &self.keys);
        let owner = state.owner.as_ref()?;
        if !state.is_ours(&self.config, owner) {
            return None;
        }
        self.mapping
            .to_remote(&ObjectKey::new(ns.name_any(), owner.clone()))
    }

    /// One narrow watch per configured secret name: the controller never lists every secret.
    fn secret_triggers(
        self: Arc<Self>,
        name: &str,
        writer: reflector::store::Writer<Secret>,
        cfg: &watcher::Config,
    ) -> Trigger {
        let api = Api::<Secret>::all(self.local.clone());
        let cfg = cfg.clone().fields(&format!("metadata.name={name}"));
        let reach = self.local_reach.clone();
        let health = self.watch_health(&reach);
        let me = self;
        watch_into(
            watcher(api, cfg),
            writer,
            reach,
            health,
            format!("secrets named {name}"),
        )
        .filter_map(move |t| {
            let key = t.object().and_then(|s| {
                let owner = controller_of(&me.ar, &s.metadata)?;
                me.mapping
                    .to_remote(&ObjectKey::new(s.namespace().unwrap_or_default(), owner))
            });
            futures::future::ready(key)
        })
        .boxed()
    }

    /// What the watches of the kind are of, for logs: `<plural>.<version>.<group>`.
    fn watched(&self) -> String {
        match self.ar.group.as_str() {
            "" => format!("{}.{}", self.ar.plural, self.ar.version),
            group => format!("{}.{}.{group}", self.ar.plural, self.ar.version),
        }
    }

    /// Whether a watch event may reach the cache: an object of another shard never does, so
    /// the caches (and the controller's memory) follow its own shard, not the whole cluster.
    /// On the remote side that is a key the mapping refuses as foreign (another suffix,
    /// prefix or namespace suffix); on the local side, an object that maps to no remote key,
    /// which can never be a copy of ours. Events without an object always pass.
    fn in_shard(
        &self,
        side: Side,
        event: &Result<watcher::Event<K::Cached>, watcher::Error>,
    ) -> bool {
        let o = match event {
            Ok(
                watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o),
            ) => o,
            Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => return true,
        };
        let key = key_of(o);
        match side {
            Side::Remote => self.is_ours(&key),
            Side::Local => self.mapping.to_remote(&key).is_some(),
        }
    }

    /// Whether a remote key is this controller's to sync or to report.
    pub(super) fn is_ours(&self, key: &ObjectKey) -> bool {
        match self.mapping.to_local(key) {
            Ok(_) => true,
            Err(e) => !e.is_foreign(),
        }
    }

    /// Every key this controller may have work for: each cached remote object of its own, the
    /// remote key of each cached local copy, and that of each namespace it made. After a relist of either cache, this is how a
    /// remote object that vanished (or a local copy deleted) while a watch was down gets its
    /// pass: no watch event will ever announce it.
    pub(super) fn all_keys(&self) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self
            .remote_store
            .state()
            .iter()
            .map(|o| o.key())
            .filter(|k| self.is_ours(k))
            .collect();
        keys.extend(
            self.local_store
                .state()
                .iter()
                .filter_map(|o| self.mapping.to_remote(&o.key())),
        );
        // A namespace the controller made names the local object it was made for: after a
        // crash between making the namespace and the copy, and a remote object that vanished
        // meanwhile, nothing else leads back to it.
        keys.extend(
            self.namespaces
                .state()
                .iter()
                .filter_map(|ns| self.creator_key(ns)),
        );
        keys
    }

    /// The health of a new watch on the cluster of `reach`, for readiness.
    fn watch_health(&self, reach: &Arc<Reachability>) -> WatchHealth {
        let reach = reach.clone();
        self.readiness.watch(move || reach.is_down())
    }

    /// A remote object of this controller whose local copy would be the object itself: the
    /// local cache holds an object with the same UID where the mapping puts its copy. UIDs
    /// are unique per cluster, so both clients reach the same cluster; the controller would
    /// claim each object as its own copy, and clean up "the copy" when it goes.
    pub(super) fn synced_onto_itself(&self) -> Option<ObjectKey> {
        self.remote_store.state().iter().find_map(|o| {
            let key = o.key();
            let local = self.mapping.to_local(&key).ok()?;
            let copy = self.local_store.get(&local)?;
            let uid = o.uid()?;
            (copy.uid() == Some(uid)).then_some(key)
        })
    }

    /// Waits until every watch has listed its objects once.
    pub(super) async fn wait_for_caches(&self) {
        // A reflector store's wait fails only when its writer is gone, which then never
        // fills it: the manager's run stops first.
        let mut waits = vec![
            self.remote_store.wait_until_ready().boxed(),
            self.local_store.wait_until_ready().boxed(),
            self.namespaces.wait_until_ready().map(drop).boxed(),
        ];
        for s in self.secrets.values() {
            waits.push(s.wait_until_ready().map(drop).boxed());
        }
        futures::future::join_all(waits).await;
        info!(controller = %self.config.controller_name, "caches filled; reconciling");
        self.report_claims();
    }

    /// Says once, from the first full cache, whose claims the remote objects of this shard
    /// carry: a warning when most are another controller's, which this controller will leave
    /// alone (a rename without `adopt_claims_from`, or regions that overlap).
    fn report_claims(&self) {
        // One object's metadata at a time: the whole shard's at once was a spike of about
        // 1.3 KB per object (13 MB at 10,000) at every start.
        let shard = self
            .remote_store
            .state()
            .into_iter()
            .filter(|o| self.is_ours(&o.key()))
            .map(|o| o.meta());
        let census = ClaimCensus::count(shard, &self.config, &self.keys);
        let me = &self.config.controller_name;
        if census.mostly_foreign()
            && let Some((other, count)) = census.main_foreign()
        {
            warn!(
                controller = %me,
                foreign = census.foreign_total(),
                total = census.total(),
                main_claimant = other,
                main_claimant_objects = count,
                "most remote objects of this controller's shard are claimed by other controllers \
                 and will not be synced; if {other:?} is a former name of this controller, list \
                 it with `adopt_claims_from`, otherwise the regions' suffixes overlap"
            );
        } else if census.adopted > 0 {
            info!(
                controller = %me,
                adopted = census.adopted,
                "adopting remote objects claimed under a former name"
            );
        }
    }
}

/// The one watch of local namespaces that all kinds of a manager share: it fills the cache,
/// and tells each kind of every namespace it touched, and of each relist.
pub(super) fn namespace_watch(
    local: kube::Client,
    writer: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    reach: Arc<Reachability>,
    health: WatchHealth,
    touched: impl Fn(&Touched<PartialObjectMeta<Namespace>>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let cfg = watcher::Config::default().any_semantic();
    let mut stream = watch_into(
        watcher(Api::<PartialObjectMeta<Namespace>>::all(local), cfg),
        writer,
        reach,
        health,
        "namespaces".to_owned(),
    );
    tokio::spawn(async move {
        while let Some(t) = stream.next().await {
            touched(&t);
        }
    })
}
