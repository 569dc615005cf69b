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
//! then run [`Syncable::reconciler`] with a client for each cluster, [`Remote`] and [`Local`].
//! To decommission a region, stop its controller and run [`release_all`].
//!
//! The reconciler decides what to do for each object with a pure function of what it
//! observed, in the module `plan`; the README says what happens when. That model is public only
//! behind the `unstable-model` feature, for simulations and property tests outside the crate:
//! it is exempt from semver and may change in any release.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod clients;
mod config;
mod deletion;
mod dynamic;
mod error;
mod keys;
mod leader;
mod mapping;
mod metrics;
mod outcome;
#[cfg(feature = "unstable-model")]
#[cfg_attr(docsrs, doc(cfg(feature = "unstable-model")))]
pub mod plan;
#[cfg(not(feature = "unstable-model"))]
pub(crate) mod plan;
pub mod rbac;
mod reachability;
mod readiness;
mod release;
mod runtime;
mod scheduler;
mod syncable;

pub use clients::{Local, Remote};
pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_DOMAIN, DeletionBudget, OnRemoteDelete, Propagation, SyncConfig,
};
pub use dynamic::{Dynamic, DynamicKind};
pub use error::{ConfigError, ReleaseError, RunError};
pub use keys::Keys;
pub use leader::LeaderElection;
pub use mapping::{Mapping, ObjectKey, Unmapped};
pub use metrics::Metrics;
pub use outcome::Reconciled;
pub use release::{ReleaseReport, release_all, release_all_of};
pub use runtime::{KindBuilder, SyncBuilder, SyncManager};
pub use syncable::{SyncObject, Syncable};

#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
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
