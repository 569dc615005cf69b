//! Kinds chosen at run time: a CRD known only by its [`ApiResource`], synced with the same
//! planner and runtime as a [`Syncable`](crate::Syncable) type.

use std::sync::Arc;

use kube::api::{ApiResource, DynamicObject};
use kube::core::{ObjectMeta, TypeMeta};
use serde_json::{Map, Value};

use crate::clients::{Local, Remote};
use crate::config::SyncConfig;
use crate::error::ConfigError;
use crate::runtime::SyncBuilder;
use crate::syncable::{CachedError, SyncObject};

/// A namespaced kind with a spec, chosen at run time: what [`Dynamic`] objects are.
///
/// By default its whole spec goes down and its status goes up. The dynamic twin of
/// `#[sync(skip)]` is [`local_only`](Self::local_only): a spec field named by JSON pointer
/// that is never copied down.
///
/// # Example
///
/// ```no_run
/// use kube::api::ApiResource;
/// use kube::core::GroupVersionKind;
/// use sync_core::{DynamicKind, Local, Remote};
///
/// # async fn demo(remote: kube::Client, local: kube::Client) -> Result<(), sync_core::RunError> {
/// let gvk = GroupVersionKind::gvk("acme.dev", "v1", "Database");
/// let kind = DynamicKind::new(ApiResource::from_gvk_with_plural(&gvk, "databases"))
///     .local_only("/spec/replicas");
/// kind.reconciler(Remote(remote), Local(local))
///     .configure(|c| c.remote_suffix("-eu"))
///     .run(std::future::pending())
///     .await
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct DynamicKind {
    resource: ApiResource,
    local_only: Vec<String>,
    status: bool,
}

impl DynamicKind {
    /// The kind of `resource` (from discovery, or built from its group, version, kind and
    /// plural). Its status is synced up unless [`status(false)`](Self::status).
    pub fn new(resource: ApiResource) -> Self {
        DynamicKind {
            resource,
            local_only: Vec::new(),
            status: true,
        }
    }

    /// A local-only spec field, by JSON pointer into the object (RFC 6901), starting with
    /// `/spec/`: e.g. `/spec/replicas`. It is never copied down: a new local copy starts
    /// without it, and the local value is kept as it is. [`run`](SyncBuilder::run) refuses a
    /// pointer that does not start with `/spec/`.
    pub fn local_only(mut self, pointer: impl Into<String>) -> Self {
        self.local_only.push(pointer.into());
        self
    }

    /// Whether the status is sent up (default true). Turn it off for a CRD without a status
    /// subresource: there is nowhere to send it.
    pub fn status(mut self, synced: bool) -> Self {
        self.status = synced;
        self
    }

    /// The API resource of the kind.
    pub fn api_resource(&self) -> &ApiResource {
        &self.resource
    }

    /// The local-only spec fields, as given.
    pub fn local_only_fields(&self) -> &[String] {
        &self.local_only
    }

    /// Whether the status is synced up.
    pub fn syncs_status(&self) -> bool {
        self.status
    }

    /// The defaults, as the derive's: the controller name per region, `<kind in
    /// lowercase>-sync` followed by the suffixes (see [`SyncConfig::per_region`]), the rest as
    /// [`SyncConfig::new`].
    pub fn defaults(&self) -> SyncConfig {
        SyncConfig::per_region(format!("{}-sync", self.resource.kind.to_ascii_lowercase()))
    }

    /// The reconciler of this one kind, as [`Syncable::reconciler`](crate::Syncable::reconciler)
    /// is for a Rust type.
    pub fn reconciler(self, remote: Remote, local: Local) -> SyncBuilder<Dynamic> {
        let check = self.validate();
        SyncBuilder::with_kind(Arc::new(self), remote, local).checked(check)
    }

    /// Refuses local-only pointers that do not name a spec field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::LocalOnlyPointer`] naming the first bad pointer.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for p in &self.local_only {
            if spec_pointer(p).is_none_or(|rest| rest.len() <= 1) {
                return Err(ConfigError::LocalOnlyPointer(p.clone()));
            }
        }
        Ok(())
    }
}

/// The part of a pointer into the object that points into the spec (`/spec/a/b` → `/a/b`).
fn spec_pointer(p: &str) -> Option<&str> {
    p.strip_prefix("/spec").filter(|rest| rest.starts_with('/'))
}

/// An object of a [`DynamicKind`]: the object as the API gives it, and its kind.
#[derive(Clone, Debug)]
pub struct Dynamic {
    object: DynamicObject,
    kind: Arc<DynamicKind>,
}

impl Dynamic {
    /// The object as the API gives it.
    pub fn object(&self) -> &DynamicObject {
        &self.object
    }

    /// The object's kind.
    pub fn kind(&self) -> &DynamicKind {
        &self.kind
    }

    /// The spec, `null` when the object has none.
    pub fn spec(&self) -> &Value {
        self.object.data.get("spec").unwrap_or(&Value::Null)
    }

    /// The spec, mutably; an object without one gets an empty one.
    pub fn spec_mut(&mut self) -> &mut Value {
        if !self.object.data.is_object() {
            self.object.data = Value::Object(Map::new());
        }
        let Value::Object(data) = &mut self.object.data else {
            unreachable!("data was made an object above")
        };
        data.entry("spec")
            .or_insert_with(|| Value::Object(Map::new()))
    }

    fn local_only(&self) -> impl Iterator<Item = &str> {
        self.kind.local_only.iter().filter_map(|p| spec_pointer(p))
    }
}

impl SyncObject for Dynamic {
    type Kind = Arc<DynamicKind>;
    type Cached = DynamicObject;

    fn from_cached(kind: &Arc<DynamicKind>, cached: DynamicObject) -> Result<Self, CachedError> {
        Dynamic::from_dynamic(kind, &cached).map_err(|e| CachedError(e.to_string()))
    }

    fn api_resource(kind: &Arc<DynamicKind>) -> ApiResource {
        kind.resource.clone()
    }

    fn defaults(kind: &Arc<DynamicKind>) -> SyncConfig {
        kind.defaults()
    }

    fn from_dynamic(
        kind: &Arc<DynamicKind>,
        object: &DynamicObject,
    ) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        match object.data.get("spec") {
            None | Some(Value::Object(_)) => {}
            Some(other) => {
                return Err(serde_json::Error::custom(format!(
                    "spec is not an object: {other}"
                )));
            }
        }
        let mut object = object.clone();
        object.types = Some(type_meta(&kind.resource));
        Ok(Dynamic {
            object,
            kind: kind.clone(),
        })
    }

    fn to_dynamic(&self) -> Result<DynamicObject, serde_json::Error> {
        Ok(self.object.clone())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.object.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.object.metadata
    }

    fn type_meta(&self) -> TypeMeta {
        type_meta(&self.kind.resource)
    }

    fn new_copy(&self, metadata: ObjectMeta) -> Self {
        let mut spec = self.spec().clone();
        for p in self.local_only() {
            remove_at(&mut spec, p);
        }
        let mut data = Map::new();
        if !spec.is_null() {
            data.insert("spec".into(), spec);
        }
        Dynamic {
            object: DynamicObject {
                types: Some(type_meta(&self.kind.resource)),
                metadata,
                data: Value::Object(data),
            },
            kind: self.kind.clone(),
        }
    }

    fn copy_spec_to(&self, local: &mut Self) {
        let mut spec = self.spec().clone();
        for p in self.local_only() {
            match local.spec().pointer(p) {
                Some(v) => set_at(&mut spec, p, v.clone()),
                None => remove_at(&mut spec, p),
            }
        }
        *local.spec_mut() = spec;
    }

    fn spec_value(&self) -> Value {
        self.spec().clone()
    }

    fn status_value(&self) -> Option<Value> {
        self.kind
            .status
            .then(|| self.object.data.get("status").cloned())
            .flatten()
            .filter(|v| !v.is_null())
    }
}

fn type_meta(ar: &ApiResource) -> TypeMeta {
    TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    }
}

/// The unescaped tokens of a JSON pointer (`~1` is `/`, `~0` is `~`).
fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Removes the value at `pointer`, if there is one.
fn remove_at(root: &mut Value, pointer: &str) {
    let mut tokens = tokens(pointer);
    let Some(last) = tokens.pop() else { return };
    let mut at = root;
    for t in &tokens {
        at = match at {
            Value::Object(m) => match m.get_mut(t) {
                Some(v) => v,
                None => return,
            },
            Value::Array(a) => match t.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    match at {
        Value::Object(m) => {
            m.remove(&last);
        }
        Value::Array(a) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// Sets the value at `pointer`, making the objects on the way that do not exist. A path
/// through something that is not an object (or an array index out of range) is left alone.
fn set_at(root: &mut Value, pointer: &str, value: Value) {
    let mut tokens = tokens(pointer);
    let Some(last) = tokens.pop() else { return };
    if root.is_null() {
        *root = Value::Object(Map::new());
    }
    let mut at = root;
    for t in &tokens {
        at = match at {
            Value::Object(m) => m
                .entry(t.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(a) => match t.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    match at {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use kube::core::GroupVersionKind;
    use serde_json::json;

    use super::*;

    fn kind() -> Arc<DynamicKind> {
        let gvk = GroupVersionKind::gvk("acme.dev", "v1", "Database");
        Arc::new(
            DynamicKind::new(ApiResource::from_gvk_with_plural(&gvk, "databases"))
                .local_only("/spec/replicas")
                .local_only("/spec/tuning/cache~1size"),
        )
    }

    fn object(data: Value) -> Dynamic {
        let o = DynamicObject {
            types: None,
            metadata: ObjectMeta::default(),
            data,
        };
        Dynamic::from_dynamic(&kind(), &o).unwrap()
    }

    #[test]
    fn a_new_copy_leaves_out_local_only_fields_and_the_status() {
        let remote = object(json!({
            "spec": {"size": "10Gi", "replicas": 3, "tuning": {"cache/size": 5, "x": 1}},
            "status": {"ready": true}
        }));
        let copy = remote.new_copy(ObjectMeta::default());
        assert_eq!(
            copy.object().data,
            json!({"spec": {"size": "10Gi", "tuning": {"x": 1}}})
        );
        assert_eq!(copy.type_meta().kind, "Database");
        assert_eq!(copy.type_meta().api_version, "acme.dev/v1");
    }

    #[test]
    fn copying_the_spec_keeps_the_local_values_of_local_only_fields() {
        let remote = object(json!({"spec": {"size": "20Gi", "replicas": 3}}));
        let mut local = object(
            json!({"spec": {"size": "10Gi", "replicas": 5, "tuning": {"cache/size": 7}}, "status": {"ready": true}}),
        );
        remote.copy_spec_to(&mut local);
        assert_eq!(
            local.object().data,
            json!({"spec": {"size": "20Gi", "replicas": 5, "tuning": {"cache/size": 7}}, "status": {"ready": true}})
        );
        // A local-only field the local copy lacks stays absent.
        let mut bare = object(json!({"spec": {"size": "1Gi"}}));
        remote.copy_spec_to(&mut bare);
        assert_eq!(bare.spec(), &json!({"size": "20Gi"}));
    }

    #[test]
    fn the_status_is_sent_only_when_the_kind_syncs_it() {
        let o = object(json!({"spec": {}, "status": {"ready": true}}));
        assert_eq!(o.status_value(), Some(json!({"ready": true})));
        let quiet = Arc::new((*kind()).clone().status(false));
        let o = Dynamic::from_dynamic(&quiet, o.object()).unwrap();
        assert_eq!(o.status_value(), None);
    }

    #[test]
    fn a_spec_that_is_not_an_object_does_not_fit() {
        let o = DynamicObject {
            types: None,
            metadata: ObjectMeta::default(),
            data: json!({"spec": "oops"}),
        };
        assert!(Dynamic::from_dynamic(&kind(), &o).is_err());
    }

    #[test]
    fn pointers_outside_the_spec_are_refused() {
        let k = |p: &str| (*kind()).clone().local_only(p).validate();
        assert!(k("/spec/ok").is_ok());
        for bad in ["/status/x", "spec/x", "/spec", "/spec/", "/specx/y", ""] {
            assert!(k(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
