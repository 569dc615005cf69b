// A suffix ending in '-', where no Kubernetes name can end.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(remote_namespace_suffix = "-eu-")]
pub struct DatabaseSpec {
    pub size: String,
}

fn main() {
    let _ = Database::defaults();
}
