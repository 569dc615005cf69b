//! What the caches hold of an object of a Rust kind: the object itself, parsed once when the
//! watch delivers it, or, when it does not fit the kind, its metadata and why.

use std::borrow::Cow;
use std::marker::PhantomData;

use kube::Resource;
use kube::api::ApiResource;
use kube::core::{DynamicResourceScope, ObjectMeta};
use serde::de::{Deserialize, Deserializer, Error as _};

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
        let v = serde_json::Value::deserialize(d)?;
        match K::deserialize(&v) {
            Ok(k) => Ok(CachedObject::Parsed(k)),
            Err(e) => {
                let metadata = match v.get("metadata") {
                    Some(m) => ObjectMeta::deserialize(m).map_err(D::Error::custom)?,
                    None => ObjectMeta::default(),
                };
                let metadata = Box::new(metadata);
                Ok(CachedObject::Unparsed {
                    metadata,
                    error: e.to_string(),
                    kind: PhantomData,
                })
            }
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
