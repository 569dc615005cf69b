// A tuple struct has no named fields to copy or find.
use sync_core::Syncable;

#[derive(Syncable)]
pub struct DatabaseSpec(pub String);

fn main() {}
