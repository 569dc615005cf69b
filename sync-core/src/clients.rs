//! The client of each cluster, in a type of its own, so that the two cannot be swapped.
//!
//! Both clusters serve the same kind through the same kind of [`kube::Client`]. Were the entry
//! points to take two bare clients, passing them in the wrong order would compile, and the
//! controller would then claim local copies as if they were the management plane's objects and
//! write specs upwards. With [`Remote`] and [`Local`] the order is part of the type:
//!
//! ```compile_fail
//! # use sync_core::{Local, Remote, Syncable};
//! # fn demo<K: Syncable>(remote: kube::Client, local: kube::Client) {
//! let _ = K::reconciler(Local(local), Remote(remote)); // error: expected `Remote`, found `Local`
//! # }
//! ```

/// A client of the **remote** (management) cluster: where the management plane creates the
/// objects, and where their status and secrets go up. The controller never reconciles objects
/// there; it claims them, records the applied generations and writes status.
///
/// # Example
///
/// ```no_run
/// # use sync_core::{Local, Remote, Syncable};
/// # async fn demo<K: Syncable>(
/// #     management: kube::Client,
/// #     region: kube::Client,
/// # ) -> Result<(), sync_core::RunError> {
/// K::reconciler(Remote(management), Local(region))
///     .run(std::future::pending())
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct Remote(pub kube::Client);

/// A client of the **local** (regional) cluster, where the controller runs: where it creates
/// the local copies and their namespaces, reads their status and the secrets that go up, and
/// holds its Lease under leader election.
///
/// See [`Remote`] for an example.
#[derive(Clone)]
pub struct Local(pub kube::Client);

impl From<Remote> for kube::Client {
    fn from(r: Remote) -> Self {
        r.0
    }
}

impl From<Local> for kube::Client {
    fn from(l: Local) -> Self {
        l.0
    }
}
