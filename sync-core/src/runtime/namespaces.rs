//! The namespace steps as API calls: create (stamped with the creator), mark or unmark as
//! needed, delete on the condition that nothing changed since the decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, Preconditions};
use kube::core::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, info};

use super::Inner;
use super::state::lock;
use crate::error::{Error, is_object_not_found};
use crate::mapping::ObjectKey;
use crate::metrics::Cluster;
use crate::plan::{Answer, NamespaceState};
use crate::syncable::SyncObject;

/// How long a namespace this process created stands in for the namespace cache, which has not
/// shown it yet. Far longer than a watch takes to deliver it; short enough that a namespace
/// deleted and needed again before the cache ever showed it is created again soon.
const MADE_STANDS_FOR: Duration = Duration::from_secs(30);

/// The namespace this process created last, per name, until the namespace cache shows it.
type MadeSlot = Arc<tokio::sync::Mutex<Option<(Instant, ObjectMeta)>>>;

/// The local namespaces this process created and its namespace cache does not show yet,
/// shared by every kind of a manager: the objects of a new namespace arrive together, and
/// one create is enough for all of them. Creates of one namespace take turns; a turn that
/// finds the namespace made by an earlier one uses its answer instead of a create that would
/// be refused (409).
#[derive(Default)]
pub(super) struct Made(Mutex<HashMap<String, MadeSlot>>);

impl Made {
    fn slot(&self, namespace: &str) -> MadeSlot {
        lock(&self.0)
            .entry(namespace.to_owned())
            .or_default()
            .clone()
    }

    /// The namespace cache shows `namespace`: it speaks for itself from now on.
    pub(super) fn seen(&self, namespace: &str) {
        let mut made = lock(&self.0);
        if !made.is_empty() {
            made.remove(namespace);
        }
    }
}

impl<K: SyncObject> Inner<K> {
    fn namespace_api(&self) -> Api<Namespace> {
        Api::all(self.local.clone())
    }

    fn namespace_answer(&self, meta: &ObjectMeta) -> Answer<K> {
        Answer::Namespace(NamespaceState::from_meta(meta, &self.keys))
    }

    /// Creates the local namespace, saying for which object and by which controller. Its
    /// resource version is recorded as a local write of `key`, the object it is made for, so
    /// its watch event (which queues that key) is known as an echo.
    pub(super) async fn create_namespace(
        &self,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        // The configured labels and annotations, then the controller's own.
        let mut annotations = self.config.namespace_annotations.clone();
        annotations.extend([
            (self.keys.namespace_owner.clone(), local_key.name.clone()),
            (
                self.keys.namespace_creator.clone(),
                self.config.controller_name.clone(),
            ),
        ]);
        let slot = self.made.slot(&local_key.namespace);
        let mut made = slot.lock().await;
        if let Some((at, meta)) = made.as_ref()
            && at.elapsed() < MADE_STANDS_FOR
        {
            debug!(namespace = %local_key.namespace, "local namespace just created by this process");
            return Ok(self.namespace_answer(meta));
        }
        // The cache may have caught up while this pass waited for its turn.
        if let Some(ns) = self.namespaces.get(&ObjectRef::new(&local_key.namespace)) {
            return Ok(self.namespace_answer(&ns.metadata));
        }
        let labels = &self.config.namespace_labels;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(local_key.namespace.clone()),
                labels: (!labels.is_empty()).then(|| labels.clone()),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let r = self
            .local_call(self.namespace_api().create(&self.post_params(), &ns))
            .await;
        let created = self
            .write_result(Cluster::Local, r, "create namespace".to_owned(), remote_obj)
            .await?;
        self.metrics.wrote(Cluster::Local, "create", "namespaces");
        self.remember(key, None, Some(&created.metadata));
        *made = Some((Instant::now(), created.metadata.clone()));
        info!(namespace = %local_key.namespace, "created local namespace");
        Ok(self.namespace_answer(&created.metadata))
    }

    /// Adds (`mark`) or removes the `needed-by` marks of these controllers (this one, and for
    /// a removal its predecessors too). A merge patch of single annotation keys touches no other
    /// controller's mark, so no precondition is needed.
    pub(super) async fn mark_namespace(
        &self,
        mark: bool,
        controllers: &[String],
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let value = mark.then_some("true");
        let annotations: serde_json::Map<String, serde_json::Value> = controllers
            .iter()
            .map(|c| (self.keys.needed_by(c), json!(value)))
            .collect();
        let body = json!({ "metadata": { "annotations": annotations } });
        let r = self
            .local_call(self.namespace_api().patch(
                &local_key.namespace,
                &self.patch_params(),
                &Patch::Merge(body),
            ))
            .await;
        let action = if mark { "mark" } else { "unmark" };
        let patched = self
            .write_result(
                Cluster::Local,
                r,
                format!("{action} namespace {}", local_key.namespace),
                remote_obj,
            )
            .await?;
        self.metrics.wrote(Cluster::Local, "patch", "namespaces");
        info!(namespace = %local_key.namespace, mark, "marked local namespace as needed");
        Ok(self.namespace_answer(&patched.metadata))
    }

    /// Deletes the local namespace if it is still the one observed: a namespace re-created
    /// under the same name, or marked by another controller since, fails with a conflict.
    pub(super) async fn delete_namespace(
        &self,
        preconditions: Preconditions,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let dp = DeleteParams {
            preconditions: Some(preconditions),
            ..DeleteParams::default()
        };
        let api = self.namespace_api();
        let request = self.local_call(api.delete(&local_key.namespace, &dp));
        let answer = match self.delete_within_budget(key, remote_obj, request).await? {
            Ok(either) => match either.left() {
                Some(ns) => self.namespace_answer(&ns.metadata),
                None => Answer::Gone,
            },
            Err(e) if is_object_not_found(&e, &local_key.namespace) => Answer::Gone,
            Err(source) => {
                return Err(Error::Local {
                    action: format!("delete namespace {}", local_key.namespace),
                    source,
                });
            }
        };
        self.metrics.wrote(Cluster::Local, "delete", "namespaces");
        info!(namespace = %local_key.namespace, "deleting local namespace");
        Ok(answer)
    }
}
