// The expansion is clean under `#![deny(warnings)]`, including a spec whose every field is skipped.
#![deny(warnings)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "acme.dev",
    version = "v1",
    kind = "Database",
    namespaced,
    status = "DatabaseStatus"
)]
#[sync(
    remote_suffix = "-eu",
    remote_namespace_suffix = "-mgmt",
    local_namespace_suffix = "-local",
    namespace_prefix = "tenant-",
    secrets("db-credentials", "db-ca"),
    propagation = "background",
    on_remote_delete = "resource",
    concurrency = 4,
    domain = "acme.dev",
    controller_name = "database-sync",
    status_observed_generation
)]
pub struct DatabaseSpec {
    pub size: u32,
    #[sync(skip)]
    pub note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
pub struct DatabaseStatus {
    pub ready: bool,
}

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Scratch", namespaced)]
pub struct ScratchSpec {
    #[sync(skip)]
    pub note: String,
}

fn main() {
    assert!(Database::defaults().status_observed_generation);
    assert!(!Scratch::defaults().status_observed_generation);
}
