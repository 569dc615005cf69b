// `#[kube(root = "...")]` names the generated type; the kind still names the controller.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "acme.dev",
    version = "v1",
    kind = "Database",
    root = "DatabaseResource",
    namespaced,
    status = "DatabaseStatus",
    shortname = "db",
    printcolumn = r#"{"name":"Size", "type":"integer", "jsonPath":".spec.size"}"#,
    derive = "PartialEq"
)]
pub struct DatabaseSpec {
    pub size: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct DatabaseStatus {
    pub ready: bool,
}

fn main() {
    assert_eq!(
        DatabaseResource::defaults().controller_name,
        "database-sync"
    );
}
