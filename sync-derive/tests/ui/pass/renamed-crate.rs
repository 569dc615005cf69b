// `#[sync(crate = "...")]` points the generated code at the runtime crate under another name.
extern crate sync_core as renamed;

use kube::CustomResource;
use renamed::Syncable;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod sync_core {}

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(crate = "renamed", remote_suffix = "-eu")]
pub struct DatabaseSpec {
    pub size: u32,
    #[sync(skip)]
    pub note: ::std::option::Option<::std::string::String>,
}

fn main() {
    assert_eq!(Database::defaults().remote_suffix, "-eu");
}
