// A controller name too long to form the `needed-by.<name>` annotation key.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(controller_name = "database-sync-for-the-eu-west-region-of-the-big-company")]
pub struct DatabaseSpec {
    pub size: String,
}

fn main() {
    let _ = Database::defaults();
}
