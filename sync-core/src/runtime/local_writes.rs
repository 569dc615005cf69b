//! The writes to the local cluster: its namespace and its copy of the object.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::ObjectMeta;
use tracing::info;

use super::Inner;
use crate::config::Propagation;
use crate::error::Error;
use crate::mapping::ObjectKey;
use crate::metrics::Cluster;
use crate::plan::{NamespaceState, Observed};
use crate::syncable::Syncable;

impl<K: Syncable> Inner<K> {
    pub(super) async fn create_namespace(
        &self,
        obs: &mut Observed<K>,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<(), Error> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(local_key.namespace.clone()),
                annotations: Some([(self.keys.owner.clone(), local_key.name.clone())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = self
            .local_call(Api::<Namespace>::all(self.local.clone()).create(&self.post_params(), &ns))
            .await;
        let created = self
            .write_result(
                Cluster::Local,
                created,
                "create namespace".to_owned(),
                remote_obj,
            )
            .await?;
        self.metrics.wrote(Cluster::Local, "create", "namespaces");
        info!(namespace = %local_key.namespace, "created local namespace");
        let _ = created;
        obs.namespace = Some(NamespaceState {
            owned: true,
            terminating: false,
        });
        Ok(())
    }

    pub(super) async fn create_local(
        &self,
        obj: &K,
        obs: &mut Observed<K>,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<(), Error> {
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
        obs.local = Some(self.typed(&created).map_err(|source| Error::Convert {
            what: "created object".into(),
            source,
        })?);
        obs.spec_applied = true;
        info!("created local object");
        Ok(())
    }

    pub(super) async fn update_local(
        &self,
        obj: &K,
        obs: &mut Observed<K>,
        key: &ObjectKey,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<(), Error> {
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
        obs.local = Some(self.typed(&updated).map_err(|source| Error::Convert {
            what: "updated object".into(),
            source,
        })?);
        obs.spec_applied = true;
        info!("updated local object");
        Ok(())
    }

    pub(super) async fn delete_namespace(
        &self,
        obs: &mut Observed<K>,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<(), Error> {
        self.take_budget(remote_obj).await?;
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
        Ok(())
    }

    pub(super) async fn delete_local(
        &self,
        propagation: Propagation,
        obs: &mut Observed<K>,
        local_key: &ObjectKey,
        remote_obj: Option<&K>,
    ) -> Result<(), Error> {
        self.take_budget(remote_obj).await?;
        let dp = match propagation {
            Propagation::Foreground => DeleteParams::foreground(),
            Propagation::Background => DeleteParams::background(),
            Propagation::Orphan => DeleteParams::orphan(),
        };
        match self
            .local_call(self.local_api(local_key).delete(&local_key.name, &dp))
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
        Ok(())
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
