//! One sync controller as the runtime runs it: caches fed by watch events (delayed, and
//! reordered between streams), and the observation a pass builds from them with the same
//! pure helpers the runtime uses.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use kube::core::ObjectMeta;
use sync_core::plan::{
    NamespaceState, Observed, PlanContext, RemoteState, Sibling, SiblingRemote, Unkept,
};
use sync_core::{Keys, Mapping, ObjectKey, SyncConfig};

use crate::cluster::{Change, Cluster};
use crate::kind::{Thing, rv_of};

/// What a controller is: its kind, configuration and derived keys and mapping.
#[derive(Debug)]
pub struct Setup {
    /// The kind it syncs.
    pub kind: usize,
    /// Its configuration.
    pub config: SyncConfig,
    /// Its keys.
    pub keys: Keys,
    /// Its name mapping.
    pub mapping: Mapping,
}

impl Setup {
    /// A controller of `kind` with this configuration.
    pub fn new(kind: usize, config: SyncConfig) -> Self {
        Setup {
            kind,
            keys: Keys::new(&config.domain),
            mapping: Mapping::new(&config),
            config,
        }
    }

    /// The planning context of one key.
    pub fn cx<'a>(
        &'a self,
        remote_key: &'a ObjectKey,
        local_key: &'a ObjectKey,
    ) -> PlanContext<'a> {
        PlanContext {
            config: &self.config,
            keys: &self.keys,
            mapping: &self.mapping,
            remote_key,
            local_key,
        }
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.config.controller_name
    }
}

/// The three watch streams of a controller.
pub const STREAMS: [&str; 3] = ["remote", "local", "namespaces"];

/// A controller's state in memory; all of it is lost on a restart.
#[derive(Debug)]
pub struct Controller {
    /// What it is.
    pub setup: Rc<Setup>,
    /// Remote objects of its kind, as the watch delivered them.
    pub remote: BTreeMap<ObjectKey, Thing>,
    /// Local objects of its kind.
    pub local: BTreeMap<ObjectKey, Thing>,
    /// Local namespaces.
    pub namespaces: BTreeMap<String, ObjectMeta>,
    /// Changes not delivered yet, per stream, in order.
    pub queues: [VecDeque<Change>; 3],
    /// Remote keys its watches have told it about: what it reconciles.
    pub known: BTreeSet<ObjectKey>,
    /// Writes not kept, per key, kept across passes.
    pub unkept: BTreeMap<ObjectKey, Unkept>,
    /// The resource versions of its last writes per key (remote, local), until the cache
    /// shows them.
    pub written: BTreeMap<ObjectKey, (u64, u64)>,
    /// Each local namespace as the controller's own last write left it, until the cache
    /// catches up (as `own_namespaces` in the runtime).
    pub own_namespaces: BTreeMap<String, NamespaceState>,
}

impl Controller {
    /// A controller with caches listed from the clusters as they are.
    pub fn start(setup: Rc<Setup>, remote: &Cluster, local: &Cluster) -> Self {
        let kind = setup.kind;
        let mut c = Controller {
            setup,
            remote: remote.objects[kind].clone(),
            local: local.objects[kind].clone(),
            namespaces: local
                .namespaces
                .iter()
                .map(|(k, n)| (k.clone(), n.meta.clone()))
                .collect(),
            queues: Default::default(),
            known: BTreeSet::new(),
            unkept: BTreeMap::new(),
            written: BTreeMap::new(),
            own_namespaces: BTreeMap::new(),
        };
        c.known = c.remote.keys().cloned().collect();
        let from_local: Vec<ObjectKey> = c
            .local
            .keys()
            .filter_map(|k| c.setup.mapping.to_remote(k))
            .collect();
        c.known.extend(from_local);
        c
    }

    /// Queues a change for the stream it belongs to, if it concerns this controller.
    pub fn enqueue(&mut self, remote_side: bool, change: &Change) {
        let stream = match change {
            Change::Object(kind, ..) if *kind != self.setup.kind => return,
            Change::Object(..) if remote_side => 0,
            Change::Object(..) => 1,
            Change::Namespace(..) if remote_side => return,
            Change::Namespace(..) => 2,
        };
        self.queues[stream].push_back(change.clone());
    }

    /// Delivers the oldest change of a stream to the cache; says what it was.
    pub fn deliver(&mut self, stream: usize) -> Option<String> {
        let change = self.queues[stream].pop_front()?;
        let what = match change {
            Change::Object(_, key, obj) => {
                let rv = obj.as_ref().map_or(0, |o| rv_of(&o.metadata));
                let cache = if stream == 0 {
                    &mut self.remote
                } else {
                    &mut self.local
                };
                let remote_key = if stream == 0 {
                    Some(key.clone())
                } else {
                    self.setup.mapping.to_remote(&key)
                };
                match obj {
                    Some(o) => cache.insert(key.clone(), o),
                    None => cache.remove(&key),
                };
                self.known.extend(remote_key);
                format!("{key} rv {rv}")
            }
            Change::Namespace(name, meta) => {
                match meta {
                    Some(m) => self.namespaces.insert(name.clone(), m),
                    None => self.namespaces.remove(&name),
                };
                name
            }
        };
        Some(format!(
            "{} sees {} {what}",
            self.setup.name(),
            STREAMS[stream]
        ))
    }

    /// Remembers the resource version a write answered, so a pass whose cache is behind it
    /// skips until the watch catches up.
    pub fn remember(&mut self, key: &ObjectKey, remote_side: bool, meta: &ObjectMeta) {
        let e = self.written.entry(key.clone()).or_default();
        let slot = if remote_side { &mut e.0 } else { &mut e.1 };
        *slot = (*slot).max(rv_of(meta));
    }

    /// What a pass for `key` observes, or `None` when the pass skips: its cache is behind
    /// its own last write, or there is nothing to do.
    pub fn observe(
        &mut self,
        key: &ObjectKey,
        local_key: &ObjectKey,
        truth: &Cluster,
    ) -> Option<Observed<Thing>> {
        let remote = self.remote.get(key).cloned();
        let local = self.local.get(local_key).cloned();
        if let Some(&(wr, wl)) = self.written.get(key) {
            let behind = |seen: &Option<Thing>, wrote: u64| {
                seen.as_ref().is_some_and(|o| rv_of(&o.metadata) < wrote)
            };
            if behind(&remote, wr) || behind(&local, wl) {
                return None;
            }
            self.written.remove(key);
        }
        let keys = &self.setup.keys;
        let cached = self
            .namespaces
            .get(&local_key.namespace)
            .map(|m| NamespaceState::from_meta(m, keys));
        let namespace = NamespaceState::fresher(
            cached.clone(),
            self.own_namespaces.get(&local_key.namespace),
        );
        if namespace == cached {
            self.own_namespaces.remove(&local_key.namespace);
        }
        let config = &self.setup.config;
        let remote = match remote {
            Some(r) => RemoteState::Present(r),
            None => {
                let ns_concerns = namespace.as_ref().is_some_and(|n| {
                    n.is_ours(config, &local_key.name) || !n.own_marks(config).is_empty()
                });
                if local.is_none() && !ns_concerns {
                    return None;
                }
                // Absent from the cache is not gone: the uncached read decides.
                match truth.objects[self.setup.kind].get(key) {
                    Some(r) => RemoteState::Present(r.clone()),
                    None => RemoteState::Gone,
                }
            }
        };
        let cleaning_up = remote.cleaning_up();
        let mut obs = Observed::new(remote, local, namespace);
        if cleaning_up {
            // As the runtime does: an unproven sibling is looked up uncached.
            let mut siblings = self.siblings(local_key);
            for s in &mut siblings {
                let lk = ObjectKey::new(local_key.namespace.clone(), s.local_name.clone());
                let gone = self
                    .setup
                    .mapping
                    .to_remote(&lk)
                    .is_some_and(|rk| !truth.objects[self.setup.kind].contains_key(&rk));
                if s.remote == SiblingRemote::NotCached && s.has_local && gone {
                    s.remote = SiblingRemote::Gone;
                }
            }
            obs.siblings = Some(siblings);
        }
        obs.unkept = self.unkept.get(key).cloned().unwrap_or_default();
        Some(obs)
    }

    /// The controller's other objects mapping into the same local namespace, from both caches.
    fn siblings(&self, local_key: &ObjectKey) -> Vec<Sibling> {
        let mapping = &self.setup.mapping;
        let ns = &local_key.namespace;
        let mut names = BTreeSet::new();
        for rk in self.remote.keys() {
            if let Ok(lk) = mapping.to_local(rk)
                && lk.namespace == *ns
            {
                names.insert(lk.name);
            }
        }
        for lk in self.local.keys() {
            if lk.namespace == *ns && mapping.to_remote(lk).is_some() {
                names.insert(lk.name.clone());
            }
        }
        names.remove(&local_key.name);
        names
            .into_iter()
            .map(|name| {
                let lk = ObjectKey::new(ns.clone(), name.clone());
                let remote = mapping.to_remote(&lk).and_then(|rk| self.remote.get(&rk));
                let local = self.local.get(&lk);
                Sibling::from_meta(
                    name,
                    remote.map(|r| &r.metadata),
                    local.map(|l| &l.metadata),
                    &self.setup.keys,
                )
            })
            .collect()
    }
}
