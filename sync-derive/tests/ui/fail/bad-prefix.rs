// A namespace prefix starting with '-', where no namespace can start.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(namespace_prefix = "-tenant")]
pub struct DatabaseSpec {
    pub size: String,
}

fn main() {
    let _ = Database::defaults();
}
