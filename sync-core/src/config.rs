use std::time::Duration;

/// Kubernetes propagation policy used when the controller deletes a local resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Propagation {
    /// Dependents are deleted first; the resource goes last.
    #[default]
    Foreground,
    /// The resource goes at once; the garbage collector deletes dependents afterwards.
    Background,
    /// Dependents are kept.
    Orphan,
}

/// What the controller deletes locally when a remote object goes away.
///
/// The attribute `#[sync(on_remote_delete = "...")]` and the agent's flag spell the variants
/// `"namespace"`, `"resource"` and `"orphan"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnRemoteDelete {
    /// Delete the local namespace if the controller created it and nothing still needs it (no
    /// synced sibling whose remote object still exists, no other controller's mark). In a
    /// namespace it created that something still needs, delete only the local object. In a
    /// namespace it did not create, delete nothing.
    #[default]
    Namespace,
    /// Delete the local namespace as [`OnRemoteDelete::Namespace`] does; where the controller
    /// may not delete the namespace, delete the local object instead, also in a namespace the
    /// controller did not create.
    NamespaceOrResource,
    /// Delete nothing locally.
    Orphan,
}

impl OnRemoteDelete {
    /// The former name of [`OnRemoteDelete::NamespaceOrResource`].
    #[deprecated(note = "renamed to `OnRemoteDelete::NamespaceOrResource`")]
    #[allow(non_upper_case_globals)]
    pub const Resource: OnRemoteDelete = OnRemoteDelete::NamespaceOrResource;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn the_former_resource_name_still_means_namespace_or_resource() {
        assert_eq!(
            OnRemoteDelete::Resource,
            OnRemoteDelete::NamespaceOrResource
        );
        assert!(matches!(
            OnRemoteDelete::NamespaceOrResource,
            OnRemoteDelete::Resource
        ));
    }
}

/// How many local deletions may happen in a time window before the controller stops deleting.
///
/// A remote namespace wiped by mistake must not wipe a region: past the limit, deletions wait,
/// a Warning event and a metric say why, and they resume when the window allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeletionBudget {
    /// Deletions allowed per window.
    pub max_deletions: u32,
    /// Length of the window.
    pub window: Duration,
}

impl Default for DeletionBudget {
    fn default() -> Self {
        DeletionBudget {
            max_deletions: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// The annotation domain of the Go original; with it, the keys are the original's strings.
pub const DEFAULT_DOMAIN: &str = "cloud.teleport.dev";

/// Default number of keys reconciled in parallel.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Everything that configures the sync of one kind.
///
/// `#[derive(Syncable)]` fixes the defaults at compile time; the reconciler's builder overrides
/// any of them at run time. Every setter takes and returns the configuration by value, so they
/// chain; the fields say what each value means.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use sync_core::{OnRemoteDelete, Propagation, SyncConfig};
///
/// let config = SyncConfig::new("database-sync")
///     .remote_suffix("-eu")
///     .remote_namespace_suffix("-eu")
///     .local_namespace_suffix("-synced")
///     .namespace_prefix("tenant-")
///     .secrets(["db-credentials"])
///     .propagation(Propagation::Background)
///     .on_remote_delete(OnRemoteDelete::NamespaceOrResource)
///     .concurrency(8)
///     .domain("acme.dev")
///     .deletion_budget(10, Duration::from_secs(60));
/// assert_eq!(config.controller_name, "database-sync");
/// assert_eq!(config.secrets, ["db-credentials"]);
///
/// // Values below 1 count as 1.
/// assert_eq!(config.concurrency(0).concurrency, 1);
/// ```
///
/// With a kind, start from its compile-time defaults instead: `Database::defaults()`, or
/// `Database::reconciler(Remote(r), Local(l)).configure(|c| c.remote_suffix("-us"))`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncConfig {
    /// Remote names must end with it; it is stripped to form the local name, and appended to a
    /// local secret's name to form the remote secret's name.
    pub remote_suffix: String,
    /// Remote namespaces must end with it; it is stripped to form the local namespace.
    pub remote_namespace_suffix: String,
    /// Appended to form the local namespace.
    pub local_namespace_suffix: String,
    /// Remote namespaces must start with it; it is kept in the local namespace.
    pub namespace_prefix: String,
    /// Names of local secrets sent up.
    pub secrets: Vec<String>,
    /// Propagation policy of local deletions.
    pub propagation: Propagation,
    /// What is deleted locally when the remote object goes.
    pub on_remote_delete: OnRemoteDelete,
    /// How many keys may be reconciled in parallel.
    pub concurrency: usize,
    /// Prefix of every key the controller writes.
    pub domain: String,
    /// Name of the controller, used in events, field managers, metrics and logs.
    pub controller_name: String,
    /// Limit on local deletions.
    pub deletion_budget: DeletionBudget,
}

impl SyncConfig {
    /// A configuration with every default and this controller name.
    pub fn new(controller_name: impl Into<String>) -> Self {
        SyncConfig {
            remote_suffix: String::new(),
            remote_namespace_suffix: String::new(),
            local_namespace_suffix: String::new(),
            namespace_prefix: String::new(),
            secrets: Vec::new(),
            propagation: Propagation::default(),
            on_remote_delete: OnRemoteDelete::default(),
            concurrency: DEFAULT_CONCURRENCY,
            domain: DEFAULT_DOMAIN.to_owned(),
            controller_name: controller_name.into(),
            deletion_budget: DeletionBudget::default(),
        }
    }

    /// Sets [`SyncConfig::remote_suffix`].
    #[must_use]
    pub fn remote_suffix(mut self, v: impl Into<String>) -> Self {
        self.remote_suffix = v.into();
        self
    }

    /// Sets [`SyncConfig::remote_namespace_suffix`].
    #[must_use]
    pub fn remote_namespace_suffix(mut self, v: impl Into<String>) -> Self {
        self.remote_namespace_suffix = v.into();
        self
    }

    /// Sets [`SyncConfig::local_namespace_suffix`].
    #[must_use]
    pub fn local_namespace_suffix(mut self, v: impl Into<String>) -> Self {
        self.local_namespace_suffix = v.into();
        self
    }

    /// Sets [`SyncConfig::namespace_prefix`].
    #[must_use]
    pub fn namespace_prefix(mut self, v: impl Into<String>) -> Self {
        self.namespace_prefix = v.into();
        self
    }

    /// Sets [`SyncConfig::secrets`].
    #[must_use]
    pub fn secrets<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.secrets = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`SyncConfig::propagation`].
    #[must_use]
    pub fn propagation(mut self, v: Propagation) -> Self {
        self.propagation = v;
        self
    }

    /// Sets [`SyncConfig::on_remote_delete`].
    #[must_use]
    pub fn on_remote_delete(mut self, v: OnRemoteDelete) -> Self {
        self.on_remote_delete = v;
        self
    }

    /// Sets [`SyncConfig::concurrency`]; values below 1 count as 1.
    #[must_use]
    pub fn concurrency(mut self, v: usize) -> Self {
        self.concurrency = v.max(1);
        self
    }

    /// Sets [`SyncConfig::domain`].
    #[must_use]
    pub fn domain(mut self, v: impl Into<String>) -> Self {
        self.domain = v.into();
        self
    }

    /// Sets [`SyncConfig::controller_name`].
    #[must_use]
    pub fn controller_name(mut self, v: impl Into<String>) -> Self {
        self.controller_name = v.into();
        self
    }

    /// Sets [`SyncConfig::deletion_budget`].
    #[must_use]
    pub fn deletion_budget(mut self, max_deletions: u32, window: Duration) -> Self {
        self.deletion_budget = DeletionBudget {
            max_deletions,
            window,
        };
        self
    }
}
