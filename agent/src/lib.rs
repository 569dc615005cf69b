//! `sync-agent`: the sync of [`sync_core`] for any namespaced custom resource, with the kinds
//! chosen at start-up instead of compiled in.
//!
//! - [`resource`]: `--resource PLURAL.VERSION.GROUP[:OPTIONS]`;
//! - [`options`]: each kind's options, which override the shared flags;
//! - [`file`](mod@file): `--config FILE`, the same in YAML;
//! - [`flags`]: every flag and its environment variable, as the example agent's;
//! - [`discovery`]: the checks on both clusters at start-up, before anything is written;
//! - [`manifests`]: `--print-rbac` and `--print-manifests`;
//! - [`agent`]: connecting, checking and running.
//!
//! The example operator in `examples/` stays the typed showcase: a `Syncable` type with its
//! own agent. This binary is for kinds that have no Rust type.

pub mod agent;
pub mod discovery;
pub mod file;
pub mod flags;
pub mod manifests;
pub mod options;
pub mod resource;
