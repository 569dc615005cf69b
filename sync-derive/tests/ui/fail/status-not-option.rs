// The `status` field of a resource struct must be an `Option`: a new object has none.
use kube::core::ObjectMeta;
use sync_core::Syncable;

#[derive(Syncable)]
pub struct Database {
    pub metadata: ObjectMeta,
    pub spec: String,
    pub status: String,
}

fn main() {}
