//! A model API server: resource versions from one counter per cluster, generations bumped on
//! spec changes only, the status subresource, finalizers and deletionTimestamp, resource
//! version preconditions, namespaces whose deletion deletes what they hold after a delay.
//! Every change is recorded, in order, for the watches.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::ObjectMeta;
use sync_core::ObjectKey;

use crate::kind::{Thing, ThingStatus, admit_local, prune_remote};

/// How many kinds the simulation syncs; each has its own store and controller.
pub const KINDS: usize = 2;

/// The finalizer Kubernetes puts on an object deleted with foreground propagation.
pub const FOREGROUND: &str = "foregroundDeletion";

/// How many namespace-controller ticks a terminating namespace waits before its content goes.
const NAMESPACE_DELAY: u32 = 2;

/// A failed API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// 409: a precondition failed or the object already exists.
    Conflict,
    /// 404.
    NotFound,
    /// 403: e.g. a create in a terminating namespace.
    Forbidden,
}

/// One change, as a watch reports it; `None` is a deletion.
#[derive(Clone, Debug)]
pub enum Change {
    /// An object of a kind changed.
    Object(usize, ObjectKey, Option<Thing>),
    /// A namespace changed.
    Namespace(String, Option<ObjectMeta>),
}

/// A namespace and how long it has been terminating.
#[derive(Clone, Debug)]
pub struct Ns {
    /// Its metadata.
    pub meta: ObjectMeta,
    age: u32,
}

/// One model cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The remote cluster prunes status and has no namespaces to check; the local one admits.
    pub remote: bool,
    rv: u64,
    uids: u64,
    /// Objects by kind.
    pub objects: [BTreeMap<ObjectKey, Thing>; KINDS],
    /// Namespaces (local cluster only).
    pub namespaces: BTreeMap<String, Ns>,
    /// Changes not yet handed to the watches.
    pub changes: Vec<Change>,
}

fn deletion() -> Option<Time> {
    Some(Time(Default::default()))
}

impl Cluster {
    /// An empty cluster.
    pub fn new(remote: bool) -> Self {
        Cluster {
            remote,
            rv: 0,
            uids: 0,
            objects: Default::default(),
            namespaces: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    fn next_rv(&mut self) -> Option<String> {
        self.rv += 1;
        Some(self.rv.to_string())
    }

    /// Stores an object as changed; one whose last finalizer went while terminating is deleted.
    fn commit(&mut self, kind: usize, key: ObjectKey, mut obj: Thing) -> Thing {
        obj.metadata.resource_version = self.next_rv();
        let gone = obj.metadata.deletion_timestamp.is_some()
            && obj.metadata.finalizers.as_ref().is_none_or(Vec::is_empty);
        if gone {
            self.objects[kind].remove(&key);
            self.changes.push(Change::Object(kind, key, None));
        } else {
            self.objects[kind].insert(key.clone(), obj.clone());
            self.changes
                .push(Change::Object(kind, key, Some(obj.clone())));
        }
        obj
    }

    fn current(&self, kind: usize, key: &ObjectKey, rv: Option<&str>) -> Result<Thing, ApiError> {
        let cur = self.objects[kind].get(key).ok_or(ApiError::NotFound)?;
        match rv {
            Some(rv) if cur.metadata.resource_version.as_deref() != Some(rv) => {
                Err(ApiError::Conflict)
            }
            _ => Ok(cur.clone()),
        }
    }

    /// Creates an object: new UID, generation 1, no status.
    pub fn create(&mut self, kind: usize, mut obj: Thing) -> Result<Thing, ApiError> {
        let key = key_of(&obj.metadata);
        if !self.remote {
            let ns = self
                .namespaces
                .get(&key.namespace)
                .ok_or(ApiError::NotFound)?;
            if ns.meta.deletion_timestamp.is_some() {
                return Err(ApiError::Forbidden);
            }
            admit_local(&mut obj);
        }
        if self.objects[kind].contains_key(&key) {
            return Err(ApiError::Conflict);
        }
        self.uids += 1;
        let side = if self.remote { "r" } else { "l" };
        obj.metadata.uid = Some(format!("{side}-uid-{}", self.uids));
        obj.metadata.generation = Some(1);
        obj.metadata.deletion_timestamp = None;
        obj.status = None;
        Ok(self.commit(kind, key, obj))
    }

    /// Replaces spec, labels, annotations and finalizers (not status); guarded by the sent
    /// resource version when `guard` holds.
    pub fn replace(&mut self, kind: usize, sent: &Thing, guard: bool) -> Result<Thing, ApiError> {
        let key = key_of(&sent.metadata);
        let rv = sent.metadata.resource_version.as_deref().filter(|_| guard);
        let mut obj = self.current(kind, &key, rv)?;
        let before = obj.spec.clone();
        obj.spec = sent.spec.clone();
        obj.metadata.labels.clone_from(&sent.metadata.labels);
        obj.metadata
            .annotations
            .clone_from(&sent.metadata.annotations);
        obj.metadata
            .finalizers
            .clone_from(&sent.metadata.finalizers);
        if !self.remote {
            admit_local(&mut obj);
        }
        if obj.spec != before {
            obj.metadata.generation = obj.metadata.generation.map(|g| g + 1);
        }
        Ok(self.commit(kind, key, obj))
    }

    /// Changes metadata only (labels, annotations, finalizers), guarded when `rv` is given.
    pub fn patch_meta(
        &mut self,
        kind: usize,
        key: &ObjectKey,
        rv: Option<&str>,
        f: impl FnOnce(&mut ObjectMeta),
    ) -> Result<Thing, ApiError> {
        let mut obj = self.current(kind, key, rv)?;
        f(&mut obj.metadata);
        Ok(self.commit(kind, key.clone(), obj))
    }

    /// Writes the status subresource: spec and generation are untouched.
    pub fn patch_status(
        &mut self,
        kind: usize,
        key: &ObjectKey,
        status: Option<ThingStatus>,
    ) -> Result<Thing, ApiError> {
        let mut obj = self.current(kind, key, None)?;
        obj.status = if self.remote {
            prune_remote(status)
        } else {
            status
        };
        Ok(self.commit(kind, key.clone(), obj))
    }

    /// Deletes an object: marks it terminating when it has finalizers (or the foreground
    /// finalizer it gets), else removes it. Answers the terminating object, or `None`.
    pub fn delete(
        &mut self,
        kind: usize,
        key: &ObjectKey,
        foreground: bool,
    ) -> Result<Option<Thing>, ApiError> {
        let mut obj = self.current(kind, key, None)?;
        if foreground && obj.metadata.deletion_timestamp.is_none() {
            obj.metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(FOREGROUND.into());
        }
        obj.metadata.deletion_timestamp = obj.metadata.deletion_timestamp.or_else(deletion);
        let stored = self.commit(kind, key.clone(), obj);
        Ok(self.objects[kind].contains_key(key).then_some(stored))
    }

    /// The garbage collector: an object deleted in the foreground loses that finalizer (it has
    /// no dependents in the model).
    pub fn collect_garbage(&mut self) {
        for kind in 0..KINDS {
            let due: Vec<ObjectKey> = self.objects[kind]
                .iter()
                .filter(|(_, o)| crate::kind::has_finalizer(&o.metadata, FOREGROUND))
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                let _ = self.patch_meta(kind, &key, None, |m| {
                    m.finalizers
                        .get_or_insert_with(Vec::new)
                        .retain(|f| f != FOREGROUND);
                });
            }
        }
    }

    fn store_ns(&mut self, mut meta: ObjectMeta, age: u32) -> ObjectMeta {
        meta.resource_version = self.next_rv();
        let name = meta.name.clone().unwrap_or_default();
        self.namespaces.insert(
            name.clone(),
            Ns {
                meta: meta.clone(),
                age,
            },
        );
        self.changes
            .push(Change::Namespace(name, Some(meta.clone())));
        meta
    }

    /// Creates a namespace with these annotations.
    pub fn create_ns(
        &mut self,
        name: &str,
        annotations: BTreeMap<String, String>,
    ) -> Result<ObjectMeta, ApiError> {
        if self.namespaces.contains_key(name) {
            return Err(ApiError::Conflict);
        }
        self.uids += 1;
        let meta = ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("ns-uid-{}", self.uids)),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        };
        Ok(self.store_ns(meta, 0))
    }

    /// Changes a namespace's annotations (a merge patch, unguarded).
    pub fn patch_ns(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<ObjectMeta, ApiError> {
        let ns = self.namespaces.get(name).ok_or(ApiError::NotFound)?.clone();
        let mut meta = ns.meta;
        f(meta.annotations.get_or_insert_with(BTreeMap::new));
        Ok(self.store_ns(meta, ns.age))
    }

    /// Deletes a namespace on the condition that its UID and resource version still match.
    pub fn delete_ns(
        &mut self,
        name: &str,
        uid: Option<&str>,
        rv: Option<&str>,
    ) -> Result<ObjectMeta, ApiError> {
        let ns = self.namespaces.get(name).ok_or(ApiError::NotFound)?.clone();
        let mismatch = |want: Option<&str>, got: &Option<String>| {
            want.is_some_and(|w| Some(w) != got.as_deref())
        };
        if mismatch(uid, &ns.meta.uid) || mismatch(rv, &ns.meta.resource_version) {
            return Err(ApiError::Conflict);
        }
        if ns.meta.deletion_timestamp.is_some() {
            return Ok(ns.meta);
        }
        let mut meta = ns.meta;
        meta.deletion_timestamp = deletion();
        Ok(self.store_ns(meta, 0))
    }

    /// The namespace controller: a namespace terminating long enough has its objects deleted,
    /// and goes once it is empty.
    pub fn tick_namespaces(&mut self) {
        let terminating: Vec<String> = self
            .namespaces
            .iter()
            .filter(|(_, n)| n.meta.deletion_timestamp.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for name in terminating {
            let ns = self.namespaces.get_mut(&name).expect("listed above");
            ns.age += 1;
            if ns.age < NAMESPACE_DELAY {
                continue;
            }
            let mut empty = true;
            for kind in 0..KINDS {
                let inside: Vec<ObjectKey> = self.objects[kind]
                    .keys()
                    .filter(|k| k.namespace == name)
                    .cloned()
                    .collect();
                for key in inside {
                    empty = false;
                    let _ = self.delete(kind, &key, false);
                }
            }
            if empty {
                self.namespaces.remove(&name);
                self.changes.push(Change::Namespace(name, None));
            }
        }
    }
}

/// The key of an object's metadata.
pub fn key_of(meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}
