//! The writes to the local cluster's copy of the object (its namespace: `namespaces.rs`).

use std::future::Future;

use kube::api::{DeleteParams, DynamicObject, Preconditions};
use tracing::info;

use super::Inner;
use crate::config::Propagation;
use crate::error::{Error, is_object_not_found};
use crate::mapping::ObjectKey;
use crate::metrics::Cluster;
use crate::plan::{Answer, Observed};
use crate::syncable::SyncObject;

impl<K: SyncObject> Inner<K> {
    pub(super) async fn create_local(
        &self,
        obj: &K,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let body = to_dynamic(obj)?;
        let (api, pp) = (self.local_api(local_key), self.post_params());
        let request = api.create(&pp, &body);
        self.write_local(request, "create", key, remote_obj).await
    }

    pub(super) async fn update_local(
        &self,
        obj: &K,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let body = to_dynamic(obj)?;
        let (api, pp) = (self.local_api(local_key), self.post_params());
        let request = api.replace(&local_key.name, &pp, &body);
        self.write_local(request, "update", key, remote_obj).await
    }

    /// Sends a create or update of the local object (`verb`) and takes its answer.
    async fn write_local(
        &self,
        request: impl Future<Output = Result<DynamicObject, kube::Error>>,
        verb: &'static str,
        key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let r = self.local_call(request).await;
        let action = format!("{verb} local object");
        let written = self
            .write_result(Cluster::Local, r, action, remote_obj)
            .await?;
        self.metrics.wrote(Cluster::Local, verb, "objects");
        self.spec_written(key);
        self.remember(key, None, Some(&written.metadata));
        info!("{verb}d local object");
        self.answer(&written, &format!("{verb}d object"))
    }

    pub(super) async fn delete_local(
        &self,
        propagation: Propagation,
        obs: &Observed<K>,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let mut dp = match propagation {
            Propagation::Foreground => DeleteParams::foreground(),
            Propagation::Background => DeleteParams::background(),
            Propagation::Orphan => DeleteParams::orphan(),
        };
        // The copy the decision was about, not one someone re-created under its name since.
        dp.preconditions = Some(Preconditions {
            uid: obs.local.as_ref().and_then(|l| l.meta().uid.clone()),
            resource_version: None,
        });
        let api = self.local_api(local_key);
        let request = self.local_call(api.delete(&local_key.name, &dp));
        let answer = match self.delete_within_budget(key, remote_obj, request).await? {
            Ok(either) => match either.left() {
                Some(o) => self.answer(&o, "deleted object")?,
                None => Answer::Gone,
            },
            Err(e) if is_object_not_found(&e, &local_key.name) => Answer::Gone,
            Err(source) => {
                return Err(Error::Local {
                    action: format!("delete {local_key}"),
                    source,
                });
            }
        };
        self.metrics.wrote(Cluster::Local, "delete", "objects");
        info!("deleting local object");
        Ok(answer)
    }

    /// An object the server answered with, as the kind.
    pub(super) fn answer(&self, o: &DynamicObject, what: &str) -> Result<Answer<K>, Error> {
        self.typed(o)
            .map(Answer::Object)
            .map_err(|source| Error::Convert {
                what: what.into(),
                source,
            })
    }
}

fn to_dynamic<K: SyncObject>(obj: &K) -> Result<DynamicObject, Error> {
    obj.to_dynamic().map_err(|source| Error::Convert {
        what: "object to write".into(),
        source,
    })
}
