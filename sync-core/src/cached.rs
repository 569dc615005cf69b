//! What the caches hold of an object of a Rust kind: the object itself, parsed once when the
//! watch delivers it, or, when it does not fit the kind, its metadata and why.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::Resource;
use kube::api::ApiResource;
use kube::core::{DynamicResourceScope, ObjectMeta};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::syncable::Syncable;

/// An object of the kind `K` as the caches hold it.
///
/// A typed object costs about half the memory of the same object kept as JSON, and a pass
/// reads it without parsing it again. An object that does not fit the kind is kept too, with
/// only its metadata, so that it is still reported and, once terminating, still released.
#[derive(Clone, Debug)]
pub enum CachedObject<K> {
    /// The object fits the kind.
    Parsed(K),
    /// The object does not fit the kind: its metadata, and the parse error.
    Unparsed {
        /// The object's metadata.
        metadata: Box<ObjectMeta>,
        /// Why it does not fit the kind.
        error: String,
        /// The kind it was read as.
        #[doc(hidden)]
        kind: PhantomData<fn() -> K>,
    },
}

impl<'de, K: Syncable> Deserialize<'de> for CachedObject<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CachedVisitor(PhantomData))
    }
}

/// Reads an object in one go from the watch's text: its metadata straight into an
/// [`ObjectMeta`], without `managedFields` (often most of an object's size, never read here,
/// and dropped by the watch anyway), and only the rest (`spec`, `status`, …) through a
/// [`serde_json::Value`], so that an object that does not fit the kind keeps its metadata.
struct CachedVisitor<K>(PhantomData<fn() -> K>);

impl<'de, K: Syncable> Visitor<'de> for CachedVisitor<K> {
    type Value = CachedObject<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CachedObject<K>, A::Error> {
        let mut metadata = None;
        let mut rest = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "metadata" {
                metadata = Some(map.next_value::<MetaWithoutManagedFields>()?.into_meta());
            } else {
                rest.insert(key, map.next_value()?);
            }
        }
        // The kind reads an empty metadata; the one read above takes its place.
        if metadata.is_some() {
            rest.insert("metadata".to_owned(), Value::Object(serde_json::Map::new()));
        }
        let metadata = metadata.unwrap_or_default();
        Ok(match K::deserialize(Value::Object(rest)) {
            Ok(mut k) => {
                *k.meta_mut() = metadata;
                CachedObject::Parsed(k)
            }
            Err(e) => CachedObject::Unparsed {
                metadata: Box::new(metadata),
                error: e.to_string(),
                kind: PhantomData,
            },
        })
    }
}

/// [`ObjectMeta`] as the API sends it, less `managedFields`, which serde skips without
/// building anything. Converted with every field named, so that a field k8s-openapi adds
/// fails to compile here rather than being dropped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaWithoutManagedFields {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

impl MetaWithoutManagedFields {
    fn into_meta(self) -> ObjectMeta {
        let MetaWithoutManagedFields {
            annotations,
            creation_timestamp,
            deletion_grace_period_seconds,
            deletion_timestamp,
            finalizers,
            generate_name,
            generation,
            labels,
            name,
            namespace,
            owner_references,
            resource_version,
            self_link,
            uid,
        } = self;
        ObjectMeta {
            annotations,
            creation_timestamp,
            deletion_grace_period_seconds,
            deletion_timestamp,
            finalizers,
            generate_name,
            generation,
            labels,
            managed_fields: None,
            name,
            namespace,
            owner_references,
            resource_version,
            self_link,
            uid,
        }
    }
}

impl<K: Syncable> Resource for CachedObject<K> {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            CachedObject::Parsed(k) => k.meta(),
            CachedObject::Unparsed { metadata, .. } => metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            CachedObject::Parsed(k) => k.meta_mut(),
            CachedObject::Unparsed { metadata, .. } => metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResource;
    use kube::core::WatchEvent;
    use schemars::JsonSchema;
    use serde::Serialize;
    use serde_json::json;

    use super::*;
    use crate::SyncConfig;

    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    #[kube(
        group = "test.dev",
        version = "v1",
        kind = "Gadget",
        namespaced,
        derive = "PartialEq"
    )]
    struct GadgetSpec {
        size: String,
    }

    impl Syncable for Gadget {
        type Spec = GadgetSpec;
        type Status = ();
        fn defaults() -> SyncConfig {
            SyncConfig::new("gadget-sync")
        }
        fn spec(&self) -> &GadgetSpec {
            &self.spec
        }
        fn spec_mut(&mut self) -> &mut GadgetSpec {
            &mut self.spec
        }
        fn status(&self) -> Option<&()> {
            None
        }
        fn from_parts(metadata: ObjectMeta, spec: GadgetSpec) -> Self {
            Gadget { metadata, spec }
        }
        fn copy_spec(remote: &GadgetSpec, local: &mut GadgetSpec) {
            local.clone_from(remote);
        }
        fn new_local_spec(remote: &GadgetSpec) -> GadgetSpec {
            remote.clone()
        }
    }

    fn object(spec: Value) -> Value {
        json!({
            "apiVersion": "test.dev/v1",
            "kind": "Gadget",
            "metadata": {
                "name": "g1",
                "namespace": "ns",
                "uid": "u-1",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2026-11-27T10:00:00Z",
                "annotations": {"a": "1", "b": "2"},
                "labels": {"l": "x"},
                "finalizers": ["f"],
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "u-0", "controller": true
                }],
                "managedFields": [{
                    "manager": "kubectl", "operation": "Update", "apiVersion": "test.dev/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}
                }]
            },
            "spec": spec
        })
    }

    /// What the object was read as before the metadata was read on its own: the whole
    /// object through the kind, managed fields then dropped by the watch.
    fn read_whole(v: &Value) -> Gadget {
        let mut g = Gadget::deserialize(v).unwrap();
        g.metadata.managed_fields = None;
        g
    }

    #[test]
    fn an_object_of_the_kind_is_read_as_the_whole_object_is_less_its_managed_fields() {
        let v = object(json!({"size": "large"}));
        let text = serde_json::to_string(&v).unwrap();
        for cached in [
            serde_json::from_str::<CachedObject<Gadget>>(&text).unwrap(),
            serde_json::from_value::<CachedObject<Gadget>>(v.clone()).unwrap(),
        ] {
            let CachedObject::Parsed(g) = cached else {
                panic!("not parsed: {cached:?}");
            };
            assert_eq!(g, read_whole(&v));
            assert!(g.metadata.managed_fields.is_none());
            assert_eq!(g.metadata.annotations.as_ref().unwrap().len(), 2);
        }
    }

    #[test]
    fn an_object_in_a_watch_event_is_read_from_the_event_text() {
        let v = object(json!({"size": "large"}));
        let line = serde_json::to_string(&json!({"type": "MODIFIED", "object": v})).unwrap();
        let event: WatchEvent<CachedObject<Gadget>> = serde_json::from_str(&line).unwrap();
        let WatchEvent::Modified(CachedObject::Parsed(g)) = event else {
            panic!("not a parsed modification");
        };
        assert_eq!(g, read_whole(&v));
    }

    #[test]
    fn an_object_that_does_not_fit_the_kind_keeps_its_metadata_and_the_error() {
        let v = object(json!({"size": 7}));
        let cached = serde_json::from_value::<CachedObject<Gadget>>(v).unwrap();
        let CachedObject::Unparsed {
            metadata, error, ..
        } = &cached
        else {
            panic!("parsed: {cached:?}");
        };
        assert_eq!(metadata.name.as_deref(), Some("g1"));
        assert_eq!(metadata.finalizers, Some(vec!["f".to_owned()]));
        assert!(metadata.managed_fields.is_none());
        assert!(error.contains("invalid type"), "{error}");
        assert_eq!(cached.meta().resource_version.as_deref(), Some("42"));
    }

    #[test]
    fn an_object_with_malformed_metadata_is_an_error() {
        let mut v = object(json!({"size": "large"}));
        v["metadata"]["generation"] = json!("three");
        assert!(serde_json::from_value::<CachedObject<Gadget>>(v).is_err());
    }

    #[test]
    fn a_dynamic_object_is_read_as_the_kind_as_through_json() {
        use crate::SyncObject;
        let v = object(json!({"size": "large"}));
        let dynamic: kube::api::DynamicObject = serde_json::from_value(v).unwrap();
        let through_json: Gadget =
            serde_json::from_value(serde_json::to_value(&dynamic).unwrap()).unwrap();
        let read = <Gadget as SyncObject>::from_dynamic(&(), &dynamic).unwrap();
        assert_eq!(read, through_json);
        assert!(read.metadata.managed_fields.is_some());

        let mut bad = dynamic.clone();
        bad.data["spec"] = json!({"size": 7});
        assert!(<Gadget as SyncObject>::from_dynamic(&(), &bad).is_err());
    }
}
