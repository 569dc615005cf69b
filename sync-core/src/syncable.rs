use std::fmt::Debug;

use kube::Resource;
use kube::core::{NamespaceResourceScope, ObjectMeta};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::SyncConfig;

/// A namespaced custom resource that can be kept in sync between a remote and a local cluster.
///
/// `#[derive(Syncable)]` implements this trait; see its documentation for the attributes. A
/// hand-written implementation is possible too: it says how to reach the spec and status of the
/// kind, which spec fields are copied from the remote object, and the configuration defaults.
///
/// # Example
///
/// A hand-written implementation for a kind whose whole spec is synced:
///
/// ```
/// use kube::CustomResource;
/// use kube::core::ObjectMeta;
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
/// use sync_core::{SyncConfig, Syncable};
///
/// #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// #[kube(group = "acme.dev", version = "v1", kind = "Cache", namespaced, status = "CacheStatus")]
/// pub struct CacheSpec {
///     pub size: String,
/// }
///
/// #[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// pub struct CacheStatus {
///     pub ready: bool,
/// }
///
/// impl Syncable for Cache {
///     type Spec = CacheSpec;
///     type Status = CacheStatus;
///
///     fn defaults() -> SyncConfig {
///         SyncConfig::new("cache-sync").remote_suffix("-eu")
///     }
///     fn spec(&self) -> &CacheSpec {
///         &self.spec
///     }
///     fn spec_mut(&mut self) -> &mut CacheSpec {
///         &mut self.spec
///     }
///     fn status(&self) -> Option<&CacheStatus> {
///         self.status.as_ref()
///     }
///     fn from_parts(metadata: ObjectMeta, spec: CacheSpec) -> Self {
///         Cache { metadata, spec, status: None }
///     }
///     fn copy_spec(remote: &CacheSpec, local: &mut CacheSpec) {
///         local.clone_from(remote);
///     }
///     fn new_local_spec(remote: &CacheSpec) -> CacheSpec {
///         remote.clone()
///     }
/// }
///
/// assert_eq!(Cache::defaults().remote_suffix, "-eu");
/// ```
pub trait Syncable:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The `spec` type.
    type Spec: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The `status` type; `()` for a kind without status.
    type Status: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The configuration fixed at compile time. The reconciler's builder starts from it and can
    /// override every value.
    fn defaults() -> SyncConfig;

    /// The object's spec.
    fn spec(&self) -> &Self::Spec;

    /// The object's spec, mutably.
    fn spec_mut(&mut self) -> &mut Self::Spec;

    /// The object's status, if it has one yet.
    fn status(&self) -> Option<&Self::Status>;

    /// A new object with this metadata and spec, and no status.
    fn from_parts(metadata: ObjectMeta, spec: Self::Spec) -> Self;

    /// Copies every synced field of a remote spec onto a local spec.
    ///
    /// Fields marked `#[sync(skip)]` are local-only: they are left as they are.
    fn copy_spec(remote: &Self::Spec, local: &mut Self::Spec);

    /// The spec of a new local object: synced fields from the remote spec, local-only fields at
    /// their default.
    fn new_local_spec(remote: &Self::Spec) -> Self::Spec;

    /// The typed reconciler of this kind, starting from [`Syncable::defaults`]; every value
    /// can be overridden through the builder before it runs. Each client is wrapped in the type
    /// of its cluster, so that the two cannot be swapped: `Kind::reconciler(Remote(r), Local(l))`.
    fn reconciler(remote: crate::Remote, local: crate::Local) -> crate::SyncBuilder<Self> {
        crate::SyncBuilder::new(remote, local)
    }
}
