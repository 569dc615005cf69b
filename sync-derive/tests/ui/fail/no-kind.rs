// Neither `#[kube(kind = ...)]` nor `metadata` and `spec` fields: no kind type to implement the trait for.
use sync_core::Syncable;

#[derive(Syncable)]
pub struct DatabaseSpec {
    pub size: String,
}

fn main() {}
