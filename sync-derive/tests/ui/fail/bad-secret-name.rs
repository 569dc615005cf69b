// A secret name that is not a DNS-1123 subdomain.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(secrets("db-credentials", "Db_Credentials"))]
pub struct DatabaseSpec {
    pub size: String,
}

fn main() {
    let _ = Database::defaults();
}
