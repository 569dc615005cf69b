//! The errors of the library: [`RunError`], the only one users see, with [`ConfigError`] for a
//! configuration that can never work; and [`Error`], why one pass over one object failed,
//! which the queue retries and never returns.

/// Why [`SyncBuilder::run`](crate::SyncBuilder::run) stopped before its shutdown future
/// resolved.
///
/// Every kind is terminal: retrying with the same configuration fails the same way. Failures
/// of single objects are not among them: they are retried with backoff, logged, counted in
/// [`Metrics`](crate::Metrics) and reported as Warning events on the remote object.
///
/// # Example
///
/// ```no_run
/// # use sync_core::{Local, Remote, RunError, Syncable};
/// # async fn demo<K: Syncable>(remote: kube::Client, local: kube::Client) {
/// match K::reconciler(Remote(remote), Local(local)).run(std::future::pending()).await {
///     Ok(()) => {}
///     Err(RunError::InvalidConfig(e)) => eprintln!("fix the configuration: {e}"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration can never work; nothing was read or written.
    #[error("failed to accept the configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// The remote and the local client reach the same cluster, and the mapping is the
    /// identity: the controller would sync each object onto itself, claim it as its own copy
    /// and clean it up as one. Found once the caches are filled, before anything is written,
    /// by an object whose local copy would be the object itself (the same UID: UIDs are unique
    /// per cluster).
    #[error(
        "failed to start: the remote and local clients reach the same cluster, so {object} would \
         be synced onto itself; pass a client of the management cluster as `Remote` and one of \
         the regional cluster as `Local`"
    )]
    SameCluster {
        /// The remote object, as `namespace/name`, that both caches hold.
        object: String,
    },
    /// The Lease of [`LeaderElection`](crate::LeaderElection) could not be set up. Not
    /// returned since the election retries every failed look at the Lease; kept for
    /// compatibility.
    #[error("failed to start leader election on Lease {lease}: {source}")]
    LeaderElection {
        /// The Lease, as `namespace/name`.
        lease: String,
        /// The lease manager's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The leader election task stopped (it panicked), so this replica can no longer know
    /// whether it leads; it wrote nothing since.
    #[error("failed to follow Lease {lease}: the leader election stopped")]
    LeaseManagerStopped {
        /// The Lease, as `namespace/name`.
        lease: String,
        /// Why the election task stopped.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// A [`SyncConfig`](crate::SyncConfig) value that can never work, found by
/// [`SyncBuilder::run`](crate::SyncBuilder::run) before anything is read or written.
///
/// `#[derive(Syncable)]` refuses most of these at compile time; values set at run time through
/// the builder are checked here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `concurrency` is 0.
    #[error("`concurrency` must be at least 1")]
    ZeroConcurrency,
    /// A value breaks the rule of its field (the rules `#[derive(Syncable)]` applies too): a
    /// suffix or prefix that can never form a Kubernetes name, a secret name, domain or
    /// controller name that is not a DNS-1123 subdomain, a controller name longer than 53
    /// characters.
    #[error("{problem} (the value is {value:?})")]
    Invalid {
        /// The field: `remote_suffix`, `remote_namespace_suffix`, `local_namespace_suffix`,
        /// `namespace_prefix`, `secrets`, `domain`, `controller_name`, `predecessors`,
        /// `namespace_labels` or `namespace_annotations`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A name is listed twice in `secrets`.
    #[error("secret name {value:?} is listed twice in `secrets`")]
    DuplicateSecret {
        /// The value given.
        value: String,
    },
    /// A local-only field of a [`DynamicKind`](crate::DynamicKind) is not a JSON pointer to a
    /// spec field (`/spec/...`).
    #[error(
        "local-only field {0:?} is not a JSON pointer to a spec field, such as \"/spec/replicas\""
    )]
    LocalOnlyPointer(String),
    /// Two kinds of one [`SyncManager`](crate::SyncManager) have the same controller name:
    /// their claims, finalizers and namespace marks would be one controller's.
    #[error("two kinds have the controller name {0:?}; give each kind its own")]
    DuplicateController(String),
    /// A [`SyncManager`](crate::SyncManager) was run with no kind added.
    #[error("no kind to sync: add at least one kind to the manager")]
    NoKinds,
}

/// Why [`release_all`](crate::release_all) stopped before it looked at every object.
///
/// The failure of a single object's patch is not among these: it is reported in
/// [`ReleaseReport::failed`](crate::ReleaseReport::failed). Either kind leaves the objects
/// released so far released; running again is harmless.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The configuration can never work; nothing was read or written.
    #[error("failed to accept the configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// The remote objects could not be listed (unreachable cluster, missing `list` right, an
    /// expired continue token).
    #[error("failed to list {resource} on the remote cluster: {source}")]
    List {
        /// The plural resource name of the kind.
        resource: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// Why a pass over one object failed. The queue retries it with backoff; it never leaves the
/// crate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A request to the remote cluster failed.
    #[error("failed to {action} on the remote cluster: {source}")]
    Remote {
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A request to the local cluster failed.
    #[error("failed to {action} on the local cluster: {source}")]
    Local {
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object could not be converted to or from the typed kind.
    #[error("failed to convert {what}: {source}")]
    Convert {
        /// What was being converted.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The remote secret to update does not exist; the controller never creates remote secrets.
    #[error("remote secret {0} does not exist; it must be created on the management cluster first")]
    MissingRemoteSecret(String),
    /// A write was refused before it was sent: this replica does not hold the leader Lease.
    #[error("failed to write: {0}")]
    NotLeading(#[from] crate::leader::NotLeading),
    /// The deletion budget is spent: this key's turn comes after the given wait.
    #[error("deletion budget exhausted; this deletion's turn comes in {0:?}")]
    BudgetExhausted(std::time::Duration),
}

impl Error {
    /// Whether this is an optimistic-concurrency conflict (HTTP 409): expected, retried
    /// promptly and not logged as an error.
    pub fn is_conflict(&self) -> bool {
        api_code(self) == Some(409)
    }

    /// Whether a write was refused before it was sent because this replica does not hold the
    /// leader Lease (see [`crate::LeaderElection`]): not a failure of the object.
    pub fn is_not_leading(&self) -> bool {
        match self {
            Error::NotLeading(_) => true,
            Error::Remote {
                source: kube::Error::Service(e),
                ..
            }
            | Error::Local {
                source: kube::Error::Service(e),
                ..
            } => e.is::<crate::leader::NotLeading>(),
            _ => false,
        }
    }
}

/// The HTTP status code of an API error, if this is one.
pub(crate) fn api_code(e: &Error) -> Option<u16> {
    match e {
        Error::Remote {
            source: kube::Error::Api(s),
            ..
        }
        | Error::Local {
            source: kube::Error::Api(s),
            ..
        } => Some(s.code),
        _ => None,
    }
}

/// The status of an API error (reason and message), if this is one.
pub(crate) fn api_status(e: &kube::Error) -> Option<(&str, &str, u16)> {
    match e {
        kube::Error::Api(s) => Some((s.reason.as_str(), s.message.as_str(), s.code)),
        _ => None,
    }
}

/// Whether an API error says that the object `name` does not exist.
///
/// Not every 404 says so. A resource the server does not serve (a CRD version no longer
/// served, a CRD deleted) answers 404 "the server could not find the requested resource" to
/// every request, with no object named in the status details; reading that as "gone" would
/// release remote objects whose local copies still exist. Only a 404 that names the object
/// proves it absent.
pub(crate) fn is_object_not_found(e: &kube::Error, name: &str) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.is_not_found() && s.details.as_ref().is_some_and(|d| d.name == name)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::is_object_not_found;

    fn not_found(details: serde_json::Value) -> kube::Error {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
            "code": 404, "message": "not found", "details": details,
        });
        kube::Error::Api(Box::new(serde_json::from_value(status).unwrap()))
    }

    #[test]
    fn only_a_404_naming_the_object_proves_it_absent() {
        let named = |name: &str| not_found(json!({ "name": name, "kind": "databases" }));
        assert!(is_object_not_found(&named("a"), "a"));
        assert!(!is_object_not_found(&named("b"), "a"));
        // "the server could not find the requested resource": no object named.
        assert!(!is_object_not_found(&not_found(json!({})), "a"));
        assert!(!is_object_not_found(
            &not_found(serde_json::Value::Null),
            "a"
        ));
    }
}
