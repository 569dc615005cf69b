//! The writes to the remote cluster: secrets sent up, and the object's metadata and status.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch};
use tracing::{debug, info};

use super::Inner;
use super::state::lock;
use crate::error::{Error, api_status, is_object_not_found};
use crate::mapping::ObjectKey;
use crate::metrics::Cluster;
use crate::plan::{Answer, RemoteMetaPatch, SecretPayload};
use crate::syncable::SyncObject;

impl<K: SyncObject> Inner<K> {
    pub(super) async fn push_secret(
        &self,
        name: &str,
        remote: &SecretPayload,
        key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let remote_name = remote.0.metadata.name.clone().unwrap_or_default();
        let api = Api::<Secret>::namespaced(self.remote.clone(), &key.namespace);
        // An update, never a create: the remote secret must exist, so the controller's
        // remote role needs no `create` (nor `get`) on secrets. The update carries no
        // resource version, which secrets accept as an unconditional update.
        match self
            .remote_call(api.replace(&remote_name, &self.post_params(), &remote.0))
            .await
        {
            Ok(_) => {
                self.metrics.wrote(Cluster::Remote, "update", "secrets");
                info!(secret = %name, remote_secret = %remote_name, "sent secret up");
                Ok(Answer::Done)
            }
            Err(e) if is_object_not_found(&e, &remote_name) => {
                self.metrics.rejected("remote_secret_missing");
                self.warn_remote_typed(remote_obj, "RemoteSecretMissing", "SendSecret",
                    format!("remote secret {}/{remote_name} does not exist; create it on the management cluster so the local secret {name} can be sent up", key.namespace)).await;
                Err(Error::MissingRemoteSecret(format!(
                    "{}/{remote_name}",
                    key.namespace
                )))
            }
            Err(source) => {
                if let Some((reason, message, code)) = api_status(&source)
                    && code != 409
                {
                    self.metrics.rejected("remote_secret_rejected");
                    self.warn_remote_typed(
                        remote_obj,
                        "SecretRejected",
                        "SendSecret",
                        format!(
                            "remote cluster rejected secret {}/{remote_name}: {reason}: {message}",
                            key.namespace
                        ),
                    )
                    .await;
                }
                Err(Error::Remote {
                    action: format!("update secret {remote_name}"),
                    source,
                })
            }
        }
    }

    /// Patches the remote object's metadata; also how the finalizer is released.
    pub(super) async fn patch_remote(
        &self,
        p: &RemoteMetaPatch,
        key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let releasing = p
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.contains(&self.keys.finalizer));
        let r = self
            .remote_call(self.remote_api(key).patch(
                &key.name,
                &self.patch_params(),
                &Patch::Merge(p.to_merge_patch()),
            ))
            .await;
        if let Err(e) = &r
            && is_object_not_found(e, &key.name)
        {
            // The object is gone (an earlier pass released it, and the cache had not shown
            // it deleted yet): nothing to patch, and no failure to retry.
            debug!("remote object gone before its metadata patch");
            return Ok(Answer::Gone);
        }
        let patched = self
            .write_result(
                Cluster::Remote,
                r,
                format!("patch metadata of {key}"),
                remote_obj,
            )
            .await?;
        self.metrics.wrote(Cluster::Remote, "patch", "objects");
        self.remember(key, Some(&patched.metadata), None);
        if releasing {
            info!("released remote object");
        }
        match self.remote_typed(&patched) {
            Ok(r) => Ok(Answer::Object(r)),
            // A terminating object whose spec no longer fits the kind, being released.
            Err(_) => Ok(Answer::Unreadable(Box::new(patched.metadata))),
        }
    }

    pub(super) async fn patch_remote_status(
        &self,
        status: &serde_json::Value,
        key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let current = remote_obj.and_then(SyncObject::status_value);
        let body = serde_json::json!({ "status": merge_diff(current.as_ref(), status) });
        let r = self
            .remote_call(self.remote_api(key).patch_status(
                &key.name,
                &self.patch_params(),
                &Patch::Merge(body),
            ))
            .await;
        let patched = self
            .write_result(
                Cluster::Remote,
                r,
                format!("patch status of {key}"),
                remote_obj,
            )
            .await?;
        self.metrics.wrote(Cluster::Remote, "patch", "status");
        self.remember(key, Some(&patched.metadata), None);
        if let Some(t) = lock(&self.seen).get_mut(key).and_then(|s| s.status.take()) {
            self.metrics.status_lag(t.elapsed().as_secs_f64());
        }
        self.remote_typed(&patched)
            .map(Answer::Object)
            .map_err(|source| Error::Convert {
                what: "patched object".into(),
                source,
            })
    }
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
}
