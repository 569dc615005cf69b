use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What the test environment could not do, with enough context to fix it.
///
/// `Debug` prints the same text as `Display`, so `.unwrap()`, `.expect()` and tests returning
/// `Result` show the reason and the component's log tail rather than an escaped one-liner.
#[derive(thiserror::Error)]
pub enum Error {
    /// The control-plane binaries were neither given nor buildable.
    #[error(
        "control-plane binaries are unavailable: {reason}\n\
         how to fix: install Go (see tests/control-plane/build.sh, which builds them once into a \
         cache), or set KUBEBUILDER_ASSETS (or SYNC_TEST_ASSETS) to a folder holding etcd, \
         kube-apiserver and kube-controller-manager"
    )]
    Binaries {
        /// Why they could not be found or built.
        reason: String,
    },

    /// A file or process operation failed.
    #[error("failed to {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An `openssl` command failed.
    #[error("failed to {what} with openssl: {stderr}")]
    Openssl {
        /// What was being made.
        what: String,
        /// What openssl printed.
        stderr: String,
    },

    /// A control-plane component exited when it should be running.
    #[error(
        "{component} of plane {plane:?} exited ({status}); last lines of {} (set \
         SYNC_TEST_KEEP_DIRS=1 to keep the plane's folder):\n{tail}",
        log.display()
    )]
    Exited {
        /// The plane's name.
        plane: String,
        /// The component that exited.
        component: crate::Component,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },

    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}; last observed: {observed}{tail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
        /// The last state seen.
        observed: String,
        /// The end of the relevant component log, if any (starts with a newline).
        tail: String,
    },

    /// A request to an API server failed.
    #[error("failed to {what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },

    /// A kubeconfig could not be loaded.
    #[error("failed to load kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why it could not be loaded.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The operation needs a plane started by this library, but the plane is an existing cluster.
    #[error(
        "{what} is unavailable on plane {plane:?}: it is an existing cluster given by \
         SYNC_TEST_*_KUBECONFIG, not one started by the tests"
    )]
    External {
        /// The plane's name.
        plane: String,
        /// The unavailable operation.
        what: &'static str,
    },

    /// The environment is configured inconsistently.
    #[error("invalid test environment: {0}")]
    Config(String),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}
