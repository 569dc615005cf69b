//! Real two-cluster test environment for sync.
//!
//! Every behaviour of sync is tested against real Kubernetes control planes (etcd,
//! kube-apiserver and kube-controller-manager processes on loopback), never a fake. Start with
//! [`shared_pair`]: it starts a `remote` and a `local` plane once per test binary, and each test
//! keeps to namespaces named with [`unique_name`]:
//!
//! ```no_run
//! use k8s_openapi::api::core::v1::Namespace;
//! use kube::{Api, CustomResourceExt, api::PostParams};
//! use sync_tests::{crds::Widget, install_crd, shared_pair, unique_name};
//!
//! # async fn example() -> sync_tests::Result<()> {
//! let pair = shared_pair();
//! let remote = pair.remote.client().await?;
//! install_crd(&remote, Widget::crd()).await?;
//! let mut ns = Namespace::default();
//! ns.metadata.name = Some(unique_name("my-test"));
//! Api::<Namespace>::all(remote).create(&PostParams::default(), &ns).await.unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! What the environment offers:
//! - [`ControlPlane`]: one plane, with admin and per-user clients ([`ControlPlane::client`],
//!   [`ControlPlane::client_as`]), an audit log of all writes
//!   ([`ControlPlane::audit_events_since`]) and fault injection
//!   ([`ControlPlane::stop_apiserver`], [`ControlPlane::pause_apiserver`], ...).
//! - [`install_crd`], and a reusable test kind, [`crds::Widget`]; [`dynamic_kind`], a kind
//!   with no Rust type, for `sync_core::DynamicKind`.
//! - [`managed::start_manager`]: a `sync_core::SyncManager` running as its own user, bound
//!   only to the RBAC rules of its kinds.
//! - [`Binaries`]: where the programs come from (`KUBEBUILDER_ASSETS`, `SYNC_TEST_ASSETS`, or
//!   a one-time build by `tests/control-plane/build.sh`).
//!
//! Nothing outlives the test process: each plane's processes and folder go when it is dropped,
//! and a watchdog removes them when the process ends in any other way, SIGKILL included.

mod audit;
mod binaries;
mod certs;
pub mod controller;
mod crd;
pub mod crds;
pub mod dynamic_kind;
mod error;
pub mod fragile;
pub mod harness;
pub mod loose;
pub mod managed;
mod plane;
mod process;
pub mod second_kind;
mod shared;
pub mod skew;
pub mod webhook;

pub use audit::{AuditEvent, AuditMark};
pub use binaries::Binaries;
pub use crd::install_crd;
pub use error::{Error, Result};
pub use plane::{
    ADMIN_USER, CONTROLLER_MANAGER_USER, ControlPlane, KEEP_DIRS, client_from_kubeconfig,
};
pub use process::{Component, is_running};
pub use shared::{Pair, shared_pair, unique_name};
