// `Syncable` may be derived before `CustomResource`, in one list or in separate attributes.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(Syncable, CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "acme.dev",
    version = "v1",
    kind = "Database",
    namespaced,
    status = "DatabaseStatus"
)]
#[sync(remote_suffix = "-eu")]
pub struct DatabaseSpec {
    pub size: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
pub struct DatabaseStatus {
    pub ready: bool,
}

#[rustfmt::skip] // keep the two `derive` attributes apart
#[derive(Syncable)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[sync(remote_suffix = "-eu")]
#[kube(group = "acme.dev", version = "v1", kind = "Cache", namespaced)]
pub struct CacheSpec {
    #[sync(skip)]
    pub size: u32,
}

fn main() {
    let _ = Database::defaults();
    let _ = Cache::defaults();
}
