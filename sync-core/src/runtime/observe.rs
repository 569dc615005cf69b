//! What a pass sees: the caches of both clusters read into an [`Observed`], with one uncached
//! read when the cache says the remote object is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use super::Inner;
use super::cache::Entry;
use super::state::lock;
use crate::error::{Error, is_object_not_found};
use crate::mapping::ObjectKey;
use crate::plan::{NamespaceState, Observed, RemoteState, SecretPayload, Sibling, SiblingRemote};
use crate::syncable::SyncObject;

/// What the caches hold for one key: the remote object, its local copy, the local namespace.
type Cached<C> = (
    Option<Arc<Entry<C>>>,
    Option<Arc<Entry<C>>>,
    Option<NamespaceState>,
);

impl<K: SyncObject> Inner<K> {
    /// A local object, read as the kind.
    pub(super) fn typed(&self, o: &DynamicObject) -> Result<K, serde_json::Error> {
        K::from_dynamic(&self.kind, o)
    }

    /// A remote object, read as the kind and transformed on its way down: everything compares
    /// and copies the transformed spec. The remote spec is never written, so the transform
    /// never reaches the remote cluster.
    pub(super) fn remote_typed(&self, o: &DynamicObject) -> Result<K, serde_json::Error> {
        K::from_dynamic(&self.kind, o).map(|r| self.transformed(r))
    }

    /// The remote object as it goes down: transformed, if the program asked.
    fn transformed(&self, mut r: K) -> K {
        if let Some(f) = &self.transform {
            f(&mut r);
        }
        r
    }

    /// What the plan for `key` rests on, or `None` when there is nothing to do now: a cache
    /// still behind this controller's own write, an object that does not fit the kind, or
    /// nothing on either side.
    pub(super) async fn observe(
        &self,
        key: &ObjectKey,
        local_key: &ObjectKey,
    ) -> Result<Option<Observed<K>>, Error> {
        let (remote_dyn, local_dyn, namespace) = self.cached(key, local_key);
        if self.behind_own_write(key, remote_dyn.as_ref(), local_dyn.as_ref()) {
            // The watch has not delivered this controller's own last write yet; its event
            // will queue the key again.
            return Ok(None);
        }

        let local = match &local_dyn {
            Some(o) => match K::from_cached(&self.kind, o.object()) {
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
            Some(o) => match K::from_cached(&self.kind, o.object()).map(|r| self.transformed(r)) {
                Ok(r) => RemoteState::Present(r),
                // Clean-up needs only metadata: a terminating object is released even so.
                Err(_) if o.terminating() => RemoteState::Unreadable(Box::new(o.meta())),
                Err(e) => {
                    self.warn_remote(Some(o.as_ref()), "InvalidSpec", "Convert",
                        format!("remote object does not deserialise into the kind's type, so it is not synced: {e}")).await;
                    self.metrics.rejected("invalid_spec");
                    return Ok(None);
                }
            },
            // Nothing local to keep or clean up: no need to ask the remote API.
            None if local.is_none()
                && !namespace
                    .as_ref()
                    .is_some_and(|n| self.may_clean(n, local_key)) =>
            {
                self.budget.end_trip(key);
                return Ok(None);
            }
            None => self.read_remote(key).await?,
        };
        let cleaning_up = remote.cleaning_up();
        let secrets = self.owned_secrets(local.as_ref(), local_key);
        let mut obs = Observed::new(remote, local, namespace);
        obs.secrets = secrets;
        obs.remote_down = self.remote_reach.is_down();
        if cleaning_up {
            let siblings = self.siblings(local_key);
            obs.siblings = Some(self.confirm_gone(siblings, &local_key.namespace).await);
        }
        Ok(Some(obs))
    }

    /// What the caches hold for `key`: the remote object, its local copy, and the local
    /// namespace.
    fn cached(&self, key: &ObjectKey, local_key: &ObjectKey) -> Cached<K::Cached> {
        let remote_dyn = self.remote_store.get(key);
        let local_dyn = self.local_store.get(local_key);
        let cached = self
            .namespaces
            .get(&ObjectRef::new(&local_key.namespace))
            .map(|ns| NamespaceState::from_meta(&ns.metadata, &self.keys));
        if cached.is_some() {
            self.made.seen(&local_key.namespace);
        }
        if remote_dyn.is_some() {
            // The watch shows an object under the key: whatever was proven gone is back.
            self.proven_gone.forget(key);
        }
        let mut own = lock(&self.own_namespaces);
        let namespace = NamespaceState::fresher(cached.clone(), own.get(&local_key.namespace));
        if namespace == cached {
            // The cache has caught up with this controller's own write (or never lagged).
            own.remove(&local_key.namespace);
        }
        (remote_dyn, local_dyn, namespace)
    }

    /// The remote object as the API server has it now, for one missing from the cache.
    async fn read_remote(&self, key: &ObjectKey) -> Result<RemoteState<K>, Error> {
        // Absent from the cache is not gone: only an uncached read that answers 404
        // proves it. An unreachable API fails the pass, and nothing is deleted.
        // A 404 read earlier still stands while nothing could have brought it back unseen.
        let epoch = self.remote_reach.epoch();
        if !self.remote_reach.is_down() && self.proven_gone.holds(key, epoch) {
            return Ok(RemoteState::Gone);
        }
        let api =
            Api::<DynamicObject>::namespaced_with(self.remote.clone(), &key.namespace, &self.ar);
        self.metrics.uncached_read();
        match self.remote_read(api.get(&key.name)).await {
            Ok(o) => match self.remote_typed(&o) {
                Ok(r) => Ok(RemoteState::Present(r)),
                Err(_) if o.metadata.deletion_timestamp.is_some() => {
                    Ok(RemoteState::Unreadable(Box::new(o.metadata)))
                }
                Err(source) => Err(Error::Convert {
                    what: format!("remote object {key}"),
                    source,
                }),
            },
            Err(e) if is_object_not_found(&e, &key.name) => {
                self.proven_gone.record(key, epoch);
                Ok(RemoteState::Gone)
            }
            Err(source) => Err(Error::Remote {
                action: format!("read {key}"),
                source,
            }),
        }
    }

    /// The configured secrets in the local namespace that the local object controls.
    fn owned_secrets(
        &self,
        local: Option<&K>,
        local_key: &ObjectKey,
    ) -> BTreeMap<String, SecretPayload> {
        let mut secrets = BTreeMap::new();
        if let Some(uid) = local.and_then(|l| l.meta().uid.clone()) {
            for (name, store) in &self.secrets {
                if let Some(s) = store.get(&ObjectRef::new(name).within(&local_key.namespace))
                    && controller_uid(&s.metadata) == Some(uid.as_str())
                {
                    secrets.insert(name.clone(), SecretPayload((*s).clone()));
                }
            }
        }
        secrets
    }

    /// Whether a pass may have clean-up to do in this namespace with no local copy: the
    /// namespace is this controller's, or carries its mark (or a predecessor's).
    fn may_clean(&self, ns: &NamespaceState, local_key: &ObjectKey) -> bool {
        ns.is_ours(&self.config, &local_key.name) || !ns.own_marks(&self.config).is_empty()
    }

    /// Asks the remote API about each sibling whose local copy exists but whose remote object
    /// the cache lacks: a 404 proves it gone, so it does not hold the namespace, and its copy
    /// need not be deleted on its own first. Any other answer leaves it unproven.
    async fn confirm_gone(&self, mut siblings: Vec<Sibling>, namespace: &str) -> Vec<Sibling> {
        for s in &mut siblings {
            if s.remote != SiblingRemote::NotCached || !s.has_local {
                continue;
            }
            let local_key = ObjectKey::new(namespace, s.local_name.clone());
            let Some(key) = self.mapping.to_remote(&local_key) else {
                continue;
            };
            if let Ok(RemoteState::Gone) = self.read_remote(&key).await {
                s.remote = SiblingRemote::Gone;
            }
        }
        siblings
    }

    /// This controller's other objects that map into the same local namespace: each local
    /// copy there, and each remote object whose copy would be there (its copy may be
    /// missing for now), as the caches show them.
    ///
    /// Costs O(objects in that namespace): the watches index them by namespace.
    fn siblings(&self, local_key: &ObjectKey) -> Vec<Sibling> {
        let mut names: BTreeSet<String> = self
            .local_index
            .names(&local_key.namespace)
            .into_iter()
            .collect();
        names.extend(self.remote_index.names(&local_key.namespace));
        names.remove(&local_key.name);
        names
            .into_iter()
            .filter_map(|name| {
                let local_key = ObjectKey::new(local_key.namespace.clone(), name.clone());
                let local = self.local_store.get(&local_key);
                let remote = self
                    .mapping
                    .to_remote(&local_key)
                    .and_then(|rk| self.remote_store.get(&rk));
                // The index may still name an object both caches let go of.
                if local.is_none() && remote.is_none() {
                    return None;
                }
                Some(Sibling::from_meta(
                    name,
                    remote.map(|r| r.meta()).as_ref(),
                    local.map(|l| l.meta()).as_ref(),
                    &self.keys,
                ))
            })
            .collect()
    }
}

/// The name of the object of the kind `ar` that controls an object, if any.
pub(super) fn controller_of(ar: &ApiResource, meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true) && o.kind == ar.kind && o.api_version == ar.api_version
        })
        .map(|o| o.name.clone())
}

fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}
