// A kind is one concrete type: no generic parameters.
use kube::core::ObjectMeta;
use sync_core::Syncable;

#[derive(Syncable)]
pub struct Database<S> {
    pub metadata: ObjectMeta,
    pub spec: S,
}

fn main() {}
