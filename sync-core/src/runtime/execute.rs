//! The executor: one [`Step`] becomes one API call, and the server's answer an [`Answer`]
//! that [`crate::plan::transition`] folds into what is known.
//! The calls themselves are in [`local_writes`](super::local_writes) and
//! [`remote_writes`](super::remote_writes).

use std::future::Future;

use kube::api::{Api, DynamicObject, PatchParams, PostParams, Preconditions};

use super::Inner;
use crate::error::Error;
use crate::mapping::ObjectKey;
use crate::plan::{Answer, Observed, Step};
use crate::reachability::{NoAnswer, Reachability, Unreachable};
use crate::syncable::SyncObject;

impl<K: SyncObject> Inner<K> {
    /// Carries out one write step and returns the server's answer; the caller hands it to
    /// [`crate::plan::transition`].
    pub(super) async fn execute(
        &self,
        step: &Step<K>,
        obs: &Observed<K>,
        key: &ObjectKey,
        local_key: &ObjectKey,
    ) -> Result<Answer<K>, Error> {
        // Checked again just before each request; here too, so a step that would first take
        // from the deletion budget does not.
        self.fence.check()?;
        let remote_obj = obs.remote.object();
        match step {
            Step::InSync | Step::Paused | Step::Wait(_) | Step::ClaimedElsewhere(_) => {
                Ok(Answer::Done)
            }
            Step::CreateNamespace => self.create_namespace(key, local_key, remote_obj).await,
            Step::MarkNamespace => {
                let me = [self.config.controller_name.clone()];
                self.mark_namespace(true, &me, local_key, remote_obj).await
            }
            Step::UnmarkNamespace(names) => {
                self.mark_namespace(false, names, local_key, remote_obj)
                    .await
            }
            Step::DeleteNamespace {
                uid,
                resource_version,
            } => {
                let pre = Preconditions {
                    uid: uid.clone(),
                    resource_version: resource_version.clone(),
                };
                self.delete_namespace(pre, key, local_key, remote_obj).await
            }
            Step::CreateLocal { object, .. } => {
                self.create_local(object, key, local_key, remote_obj).await
            }
            Step::UpdateLocal { object, .. } => {
                self.update_local(object, key, local_key, remote_obj).await
            }
            Step::PushSecret { name, remote, .. } => {
                self.push_secret(name, remote, key, remote_obj).await
            }
            Step::PatchRemote(p) | Step::ReleaseFinalizer(p) => {
                self.patch_remote(p, key, remote_obj).await
            }
            Step::PatchRemoteStatus(status) => {
                self.patch_remote_status(status, key, remote_obj).await
            }
            Step::DeleteLocal(propagation) => {
                self.delete_local(*propagation, obs, key, local_key, remote_obj)
                    .await
            }
        }
    }

    pub(super) fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.config.controller_name.clone()),
            ..PostParams::default()
        }
    }

    pub(super) fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.config.controller_name.clone()),
            ..PatchParams::default()
        }
    }

    pub(super) fn local_api(&self, local_key: &ObjectKey) -> Api<DynamicObject> {
        Api::namespaced_with(self.local.clone(), &local_key.namespace, &self.ar)
    }

    pub(super) fn remote_api(&self, key: &ObjectKey) -> Api<DynamicObject> {
        Api::namespaced_with(self.remote.clone(), &key.namespace, &self.ar)
    }

    /// A write to the remote cluster: not sent unless the fence is open (under leader
    /// election: while this replica holds the Lease); see [`Inner::call`].
    pub(super) async fn remote_call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        self.fenced()?;
        self.call(&self.remote_reach, request).await
    }

    /// A read from the remote cluster, which any replica may make; see [`Inner::call`].
    pub(super) async fn remote_read<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        self.call(&self.remote_reach, request).await
    }

    /// A write to the local cluster, fenced as [`Inner::remote_call`].
    pub(super) async fn local_call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        self.fenced()?;
        self.call(&self.local_reach, request).await
    }

    /// The fence, checked as late as possible: the request future has not been polled yet,
    /// so nothing of it is sent when the hold has lapsed.
    fn fenced(&self) -> Result<(), kube::Error> {
        self.fence
            .check()
            .map_err(|e| kube::Error::Service(Box::new(e)))
    }

    /// A request that counts as failed when no answer comes within the request timeout, and
    /// is not even sent while its cluster is known to be unreachable: a frozen API server
    /// would otherwise hold a worker for the whole timeout on every pass that needs it, and
    /// the objects that need only the other cluster would wait for free workers.
    async fn call<T>(
        &self,
        reach: &Reachability,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        if reach.is_down() {
            return Err(kube::Error::Service(Box::new(Unreachable)));
        }
        tokio::time::timeout(self.request_timeout, request)
            .await
            .unwrap_or_else(|_| {
                Err(kube::Error::Service(Box::new(NoAnswer(
                    self.request_timeout,
                ))))
            })
    }
}
