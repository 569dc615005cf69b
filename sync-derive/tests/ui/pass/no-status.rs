// A kind without `status = "..."` has no status field: `Syncable::Status` is `()`.
use kube::CustomResource;
use kube::core::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
pub struct DatabaseSpec {
    pub size: u32,
}

fn main() {
    let db = Database::from_parts(ObjectMeta::default(), DatabaseSpec { size: 1 });
    let status: Option<&()> = db.status();
    assert!(status.is_none());
}
