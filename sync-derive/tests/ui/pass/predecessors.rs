// The default name is per region, and its bare base is adopted; listed predecessors are too.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(remote_suffix = "-eu", predecessors("db-sync-eu"))]
pub struct DatabaseSpec {
    pub size: u32,
}

fn main() {
    let config = Database::defaults();
    assert_eq!(config.controller_name, "database-sync");
    assert!(config.name_per_region);
    let running = config.resolved();
    assert_eq!(running.controller_name, "database-sync-eu");
    assert_eq!(running.predecessors, ["db-sync-eu", "database-sync"]);
    // An explicit name at run time is exact, and keeps the listed predecessors.
    let renamed = Database::defaults().controller_name("db").resolved();
    assert_eq!(renamed.controller_name, "db");
    assert_eq!(renamed.predecessors, ["db-sync-eu"]);
}
