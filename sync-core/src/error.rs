/// Why a reconcile or the reconciler failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
    /// The deletion budget is spent.
    #[error("deletion budget exhausted; next deletion allowed in {0:?}")]
    BudgetExhausted(std::time::Duration),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Leader election failed.
    #[error("failed to run leader election: {0}")]
    Leader(String),
}

impl Error {
    /// Whether this is an optimistic-concurrency conflict (HTTP 409): expected, retried
    /// promptly and not logged as an error.
    pub fn is_conflict(&self) -> bool {
        api_code(self) == Some(409)
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
