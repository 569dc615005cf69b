//! A minimal operator: one kind, synced from a management cluster into a region.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

/// A bucket a management plane orders for a region.
#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "fresh.example",
    version = "v1",
    kind = "Bucket",
    namespaced,
    status = "BucketStatus"
)]
#[sync(remote_suffix = "-eu")]
pub struct BucketSpec {
    /// How big the bucket is, e.g. `10Gi`.
    pub size: String,
}

/// What the region reports back.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
pub struct BucketStatus {
    /// The bucket exists and takes writes.
    pub ready: bool,
}
