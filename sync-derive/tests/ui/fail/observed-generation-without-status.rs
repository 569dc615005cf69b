// `status_observed_generation` on a kind without a status.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(status_observed_generation)]
pub struct DatabaseSpec {
    pub size: u32,
}

fn main() {}
