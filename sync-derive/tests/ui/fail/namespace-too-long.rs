// A prefix and a suffix that leave no room for a namespace.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
#[sync(
    namespace_prefix = "pppppppppppppppppppppppppppppppppppppppp",
    remote_namespace_suffix = "-ssssssssssssssssssssssssssssss"
)]
pub struct DatabaseSpec {
    pub size: String,
}

fn main() {
    let _ = Database::defaults();
}
