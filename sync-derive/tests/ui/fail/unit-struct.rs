// A unit struct has no fields to copy or find.
use sync_core::Syncable;

#[derive(Syncable)]
pub struct DatabaseSpec;

fn main() {}
