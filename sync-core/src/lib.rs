//! Keep a Kubernetes custom resource in sync between a management cluster (the *remote*) and a
//! regional cluster (the *local*).
//!
//! Start with [`Syncable`]: put `#[derive(Syncable)]` and `#[sync(...)]` on your CRD's spec, and
//! run the reconciler that the derive gives you.

mod config;
mod syncable;

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_DOMAIN, DeletionBudget, OnRemoteDelete, Propagation, SyncConfig,
};
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
