// An enum cannot be a spec or a resource.
use sync_core::Syncable;

#[derive(Syncable)]
pub enum DatabaseSpec {
    Small,
    Large,
}

fn main() {}
