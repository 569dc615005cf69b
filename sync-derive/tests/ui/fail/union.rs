// A union cannot be a spec or a resource.
use sync_core::Syncable;

#[derive(Syncable)]
pub union DatabaseSpec {
    pub size: u32,
}

fn main() {}
