// `secrets` given as `key = value` instead of a list.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(secrets = "db-credentials")]
pub struct DatabaseSpec {
    pub size: String,
}

fn main() {
    let _ = Database::defaults();
}
