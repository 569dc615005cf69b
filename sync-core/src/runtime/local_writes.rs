//! The writes to the local cluster's copy of the object (its namespace: `namespaces.rs`).

use kube::api::{DeleteParams, DynamicObject, Preconditions};
use tracing::info;

use super::Inner;
use crate::config::Propagation;
use crate::error::Error;
use crate::mapping::ObjectKey;
use crate::metrics::Cluster;
use crate::plan::{Answer, Observed};
use crate::syncable::Syncable;

impl<K: Syncable> Inner<K> {
    pub(super) async fn create_local(
        &self,
        obj: &K,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let body = to_dynamic(obj)?;
        let r = self
            .local_call(self.local_api(local_key).create(&self.post_params(), &body))
            .await;
        let created = self
            .write_result(
                Cluster::Local,
                r,
                "create local object".to_owned(),
                remote_obj,
            )
            .await?;
        self.metrics.wrote(Cluster::Local, "create", "objects");
        self.spec_written(key);
        self.remember(key, None, Some(&created.metadata));
        info!("created local object");
        self.answer(&created, "created object")
    }

    pub(super) async fn update_local(
        &self,
        obj: &K,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        let body = to_dynamic(obj)?;
        let r = self
            .local_call(self.local_api(local_key).replace(
                &local_key.name,
                &self.post_params(),
                &body,
            ))
            .await;
        let updated = self
            .write_result(
                Cluster::Local,
                r,
                "update local object".to_owned(),
                remote_obj,
            )
            .await?;
        self.metrics.wrote(Cluster::Local, "update", "objects");
        self.spec_written(key);
        self.remember(key, None, Some(&updated.metadata));
        info!("updated local object");
        self.answer(&updated, "updated object")
    }

    pub(super) async fn delete_local(
        &self,
        propagation: Propagation,
        obs: &Observed<K>,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<Answer<K>, Error> {
        self.take_budget(remote_obj).await?;
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
        let answer = match self
            .local_call(self.local_api(local_key).delete(&local_key.name, &dp))
            .await
        {
            Ok(either) => match either.left() {
                Some(o) => self.answer(&o, "deleted object")?,
                None => Answer::Gone,
            },
            Err(kube::Error::Api(s)) if s.code == 404 => Answer::Gone,
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

fn to_dynamic<K: Syncable>(obj: &K) -> Result<DynamicObject, Error> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|source| Error::Convert {
            what: "object to write".into(),
            source,
        })
}
