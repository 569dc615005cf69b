//! Keep a Kubernetes custom resource in sync between a management cluster (the *remote*) and a
//! regional cluster (the *local*).
//!
//! - `spec`, labels and annotations go down: the controller creates and updates a local copy
//!   of every remote object it is responsible for, and the local namespace it lives in;
//! - `status` and selected short-lived secrets go up;
//! - two annotations on the remote object say which generations are applied;
//! - when the remote object goes, the local namespace the controller created goes too.
//!
//! Start with [`Syncable`]: put `#[derive(Syncable)]` and `#[sync(...)]` on your CRD's spec,
//! then run [`Syncable::reconciler`] with a client for each cluster. [`plan`] is the pure
//! decision the reconciler makes for each object; read it to know exactly what happens when.

mod config;
mod deletion;
mod error;
mod keys;
mod leader;
mod mapping;
mod metrics;
pub mod plan;
pub mod rbac;
mod reachability;
mod runtime;
mod scheduler;
mod syncable;

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_DOMAIN, DeletionBudget, OnRemoteDelete, Propagation, SyncConfig,
};
pub use error::Error;
pub use keys::{Keys, LAST_APPLIED};
pub use leader::LeaderElection;
pub use mapping::{Mapping, ObjectKey, Unmapped, is_dns1123_label, is_dns1123_subdomain};
pub use metrics::{Cluster, Metrics};
pub use runtime::SyncBuilder;
pub use syncable::Syncable;

#[cfg(feature = "derive")]
pub use sync_derive::Syncable;

/// Items used by the code that `#[derive(Syncable)]` generates. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::{OnRemoteDelete, Propagation, SyncConfig};
    pub use crate::syncable::Syncable;
    pub use ::core::clone::Clone;
    pub use ::core::default::Default;
    pub use ::core::option::Option;
    pub use ::kube::core::ObjectMeta;
    pub use ::std::string::String;
    pub use ::std::vec::Vec;
}
