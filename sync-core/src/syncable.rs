use std::fmt::Debug;

use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::core::{NamespaceResourceScope, ObjectMeta, TypeMeta};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

/// What the reconciler needs of a synced object, whether its kind is a Rust type (every
/// [`Syncable`] type) or chosen at run time ([`Dynamic`](crate::Dynamic)). The planner and the
/// runtime are written once, against this trait; implement [`Syncable`], not this.
pub trait SyncObject: Clone + Debug + Send + Sync + 'static {
    /// What is known of the kind at run time: `()` for a [`Syncable`] type, a
    /// [`DynamicKind`](crate::DynamicKind) for a runtime-chosen kind.
    type Kind: Clone + Debug + Send + Sync + 'static;

    /// What the caches hold of an object of the kind: a
    /// [`CachedObject`](crate::CachedObject) for a [`Syncable`] type (the parsed object),
    /// the `DynamicObject` itself for a runtime-chosen kind.
    type Cached: Resource<DynamicType = ApiResource>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// Reads a cached object as the kind.
    ///
    /// # Errors
    ///
    /// When the object does not fit the kind (its spec does not parse).
    fn from_cached(kind: &Self::Kind, cached: Self::Cached) -> Result<Self, CachedError>;

    /// The API resource of the kind.
    fn api_resource(kind: &Self::Kind) -> ApiResource;

    /// The kind's configuration defaults.
    fn defaults(kind: &Self::Kind) -> SyncConfig;

    /// Reads an object of the kind as a watch or an API answer gives it.
    ///
    /// # Errors
    ///
    /// When the object does not fit the kind (its spec does not parse).
    fn from_dynamic(kind: &Self::Kind, object: &DynamicObject) -> Result<Self, serde_json::Error>;

    /// The object as the API takes it.
    ///
    /// # Errors
    ///
    /// When the object does not serialise (a bug in a hand-written `Serialize`).
    fn to_dynamic(&self) -> Result<DynamicObject, serde_json::Error>;

    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;

    /// The object's metadata, mutably.
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// The `apiVersion` and `kind` of the object.
    fn type_meta(&self) -> TypeMeta;

    /// A new local copy of this remote object, with `metadata`: the synced spec fields from
    /// this object, local-only fields at their default, and no status.
    #[must_use]
    fn new_copy(&self, metadata: ObjectMeta) -> Self;

    /// Copies every synced spec field of this remote object onto `local`, leaving its
    /// local-only fields as they are.
    fn copy_spec_to(&self, local: &mut Self);

    /// The spec, as JSON, for comparisons.
    fn spec_value(&self) -> Value;

    /// The status, as JSON, when the object has one and the kind syncs it.
    fn status_value(&self) -> Option<Value>;
}

impl<K: Syncable> SyncObject for K {
    type Kind = ();
    type Cached = crate::CachedObject<K>;

    fn from_cached((): &(), cached: Self::Cached) -> Result<Self, CachedError> {
        match cached {
            crate::CachedObject::Parsed(k) => Ok(k),
            crate::CachedObject::Unparsed { error, .. } => Err(CachedError(error)),
        }
    }

    fn api_resource((): &()) -> ApiResource {
        ApiResource::erase::<K>(&())
    }

    fn defaults((): &()) -> SyncConfig {
        K::defaults()
    }

    fn from_dynamic((): &(), object: &DynamicObject) -> Result<Self, serde_json::Error> {
        // The metadata is already typed: the kind reads the rest with an empty one, and takes
        // a copy of it afterwards, rather than a round trip of the metadata through JSON.
        let Value::Object(data) = &object.data else {
            return serde_json::to_value(object).and_then(serde_json::from_value);
        };
        let mut fields = data.clone();
        if let Some(types) = &object.types {
            // As when serialised: a field of the data wins over the type's.
            fields
                .entry("apiVersion")
                .or_insert_with(|| types.api_version.clone().into());
            fields
                .entry("kind")
                .or_insert_with(|| types.kind.clone().into());
        }
        fields.insert("metadata".to_owned(), Value::Object(serde_json::Map::new()));
        let mut k = K::deserialize(Value::Object(fields))?;
        Resource::meta_mut(&mut k).clone_from(&object.metadata);
        Ok(k)
    }

    fn to_dynamic(&self) -> Result<DynamicObject, serde_json::Error> {
        serde_json::to_value(self).and_then(serde_json::from_value)
    }

    fn meta(&self) -> &ObjectMeta {
        Resource::meta(self)
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        Resource::meta_mut(self)
    }

    fn type_meta(&self) -> TypeMeta {
        TypeMeta {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
        }
    }

    fn new_copy(&self, metadata: ObjectMeta) -> Self {
        K::from_parts(metadata, K::new_local_spec(self.spec()))
    }

    fn copy_spec_to(&self, local: &mut Self) {
        K::copy_spec(self.spec(), local.spec_mut());
    }

    fn spec_value(&self) -> Value {
        serde_json::to_value(self.spec()).unwrap_or(Value::Null)
    }

    fn status_value(&self) -> Option<Value> {
        // `()` is the status of a kind without one: `null`, never sent.
        self.status()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .filter(|v| !v.is_null())
    }
}

/// Why a cached object does not fit its kind: the parse error, as text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CachedError(pub String);
