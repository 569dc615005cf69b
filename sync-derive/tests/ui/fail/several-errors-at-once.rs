// Every mistake is reported in one compile, each at its own span.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(
    remote_sufix = "-eu",
    namespace_prefix = "Tenant-",
    secrets("db", "db"),
    propagation = "cascade",
    concurrency = 0
)]
pub struct DatabaseSpec {
    pub size: String,
    #[sync(skp)]
    pub note: String,
}

fn main() {
    let _ = Database::defaults();
}
