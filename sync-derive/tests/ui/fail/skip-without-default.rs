// `#[sync(skip)]` on a field whose type has no `Default`.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
pub struct DatabaseSpec {
    pub size: String,
    #[sync(skip)]
    pub owner: Owner,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
pub struct Owner {
    pub name: String,
}

fn main() {
    let _ = Database::defaults();
}
