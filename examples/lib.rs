//! Example operator for sync: a `Database` kind synced from a management cluster into a
//! region.
//!
//! - [`database`]: the kind, with `#[derive(CustomResource, Syncable)]`;
//! - [`agent`] and [`flags`]: the agent binary, which runs the sync (`--help` lists every flag);
//! - [`serve`]: its HTTP server (`/metrics`, `/healthz`, `/readyz`);
//! - [`controller`]: the region's own controller for `Database`, which knows nothing about
//!   syncing: it sets the status and makes the `db-credentials` Secret;
//! - [`manifests`]: the YAML in `examples/yaml/`, generated from code.

pub mod agent;
pub mod controller;
pub mod database;
pub mod flags;
pub mod manifests;
pub mod serve;
