// `#[sync(skip)]` on a resource struct, whose spec fields this derive cannot see.
use std::borrow::Cow;

use kube::Resource;
use kube::core::{NamespaceResourceScope, ObjectMeta};
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(Syncable, Serialize, Deserialize, Clone, Debug)]
pub struct Database {
    pub metadata: ObjectMeta,
    #[sync(skip)]
    pub spec: String,
}

impl Resource for Database {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Database".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "acme.dev".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "databases".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn main() {
    let _ = Database::defaults();
}
