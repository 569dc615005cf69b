// An unknown key in a field attribute gets a suggestion too.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
pub struct DatabaseSpec {
    pub size: String,
    #[sync(skp)]
    pub note: String,
}

fn main() {
    let _ = Database::defaults();
}
