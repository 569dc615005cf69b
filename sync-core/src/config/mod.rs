use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::deletion::DeletionBudget;
pub use policy::{OnRemoteDelete, Propagation};

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
    /// Name of the controller, used in events, field managers, metrics and logs, and written
    /// on every remote object it claims. With [`SyncConfig::name_per_region`] set, the base of
    /// the name: [`SyncConfig::effective_controller_name`] appends the region parts.
    pub controller_name: String,
    /// Whether the region parts (`remote_suffix`, `remote_namespace_suffix`) are appended to
    /// [`SyncConfig::controller_name`] when the reconciler starts, so each region gets its own
    /// name without configuration. Set by [`SyncConfig::per_region`] (the derive's default),
    /// cleared by [`SyncConfig::controller_name`].
    pub name_per_region: bool,
    /// Former names of this controller: objects claimed under them are adopted (the claim is
    /// rewritten to this name on the next write), terminating ones are released, and
    /// namespaces they created or marked count as this controller's.
    pub predecessors: Vec<String>,
    /// Limit on local deletions.
    pub deletion_budget: DeletionBudget,
    /// Labels put on each namespace the controller creates, such as Pod Security admission
    /// levels or a tenant label, so that a cluster policy requiring them admits the namespace.
    /// Set when the namespace is created, never changed afterwards.
    pub namespace_labels: BTreeMap<String, String>,
    /// Annotations put on each namespace the controller creates, next to its own (keys in the
    /// controller's [`domain`](SyncConfig::domain) are reserved for those).
    pub namespace_annotations: BTreeMap<String, String>,
    /// A label selector (such as `region=eu`) that the remote watch sends to the API server:
    /// remote objects without matching labels are never sent to this controller, never cached
    /// and never synced. For deployments whose management plane labels each object with its
    /// region; it narrows the shard the suffixes define, never widens it. `run` asks the remote
    /// API server once at start-up and refuses a selector it refuses.
    pub remote_label_selector: Option<String>,
    /// Whether the kind's status carries `observedGeneration`, which the local controller sets
    /// to the generation it acted on. Off by default.
    ///
    /// When on, the generations of a new local copy are recorded on the remote object in the
    /// claim itself, before the copy is made (the copy then carries the id recorded with them):
    /// a new object costs one remote metadata write instead of two. The claim still comes
    /// before anything is made locally, so of two controllers that match an object, only one
    /// makes a copy. This is safe only for such a status: the currency contract (a status is
    /// current for generation G when `metadata.generation == sync-remote-generation == G` and
    /// the status's `observedGeneration == sync-local-generation`) cannot hold before the
    /// local controller has reported on the copy, and the controller sends a status up only
    /// once the record names the copy it read it from. A remote status that already names
    /// local generation 1 (left by an earlier copy) turns the shortcut off for that object.
    ///
    /// Leave it off for a kind whose status has no `observedGeneration`: the contract would
    /// read as current from the claim on, before the copy exists.
    pub status_observed_generation: bool,
    /// Whether the kind's watches (remote and local objects, and the configured secrets) fill
    /// their caches with a streaming list (Kubernetes' `WatchList`: the initial objects come as
    /// watch events) instead of a paginated list. Off by default.
    ///
    /// A paginated list (500 objects per page) holds at most a page's response at a time, at
    /// start and at every relist; a streaming list holds one object's event at a time and
    /// spares the API server the list's pages. At 10,000 objects the two cost the controller
    /// the same memory within 3 MB (BENCHMARKS.md, "Relists"). It needs an API server with the
    /// `WatchList` feature gate on (on by default in Kubernetes 1.35, which the tests run, and
    /// off by default in 1.33): one without it refuses or ignores the request's
    /// `sendInitialEvents`, the watch never reports its list as done, and the controller never
    /// becomes ready.
    pub streaming_lists: bool,
    /// The controller names of the other kinds of the same [`SyncManager`](crate::SyncManager):
    /// a namespace one of them created is the manager's, so a local copy in it goes with its
    /// remote object as in a namespace of this controller's own. Set by the manager.
    pub(crate) partners: Vec<String>,
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
            name_per_region: false,
            predecessors: Vec::new(),
            deletion_budget: DeletionBudget::default(),
            namespace_labels: BTreeMap::new(),
            namespace_annotations: BTreeMap::new(),
            remote_label_selector: None,
            status_observed_generation: false,
            streaming_lists: false,
            partners: Vec::new(),
        }
    }

    /// A configuration with every default and a per-region name formed from `base`: the
    /// default of `#[derive(Syncable)]`, whose base is `<kind>-sync`.
    ///
    /// When the reconciler starts, the region parts of the configuration it runs with are
    /// appended to `base` (see [`SyncConfig::effective_controller_name`] for the rule), and
    /// `base` itself becomes a predecessor, so objects claimed under the bare name (the default
    /// before per-region names) are adopted without configuration.
    ///
    /// ```
    /// use sync_core::SyncConfig;
    ///
    /// let eu = SyncConfig::per_region("database-sync").remote_suffix("-eu");
    /// assert_eq!(eu.effective_controller_name(), "database-sync-eu");
    /// assert_eq!(eu.resolved().predecessors, ["database-sync"]);
    /// // No region part: the name is the base, and there is nothing to adopt.
    /// let plain = SyncConfig::per_region("database-sync");
    /// assert_eq!(plain.effective_controller_name(), "database-sync");
    /// assert!(plain.resolved().predecessors.is_empty());
    /// ```
    pub fn per_region(base: impl Into<String>) -> Self {
        SyncConfig {
            name_per_region: true,
            ..SyncConfig::new(base)
        }
    }

    /// The name the reconciler runs under.
    ///
    /// Without [`SyncConfig::name_per_region`], [`SyncConfig::controller_name`] as it is.
    /// With it, the base followed by each distinct region part, in this order:
    /// `remote_suffix`, `remote_namespace_suffix` (the suffixes by which regions shard a
    /// management cluster; `namespace_prefix`, which names tenants, is left out). Each part is trimmed of '-' and '.' at both
    /// ends, its inner '.' become '-', and it is appended after a '-' unless it is empty or
    /// already appended. A name longer than 53 characters keeps its first 44 and ends with '-'
    /// and 8 hexadecimal digits of a hash of the whole.
    ///
    /// | base | `remote_suffix` | `remote_namespace_suffix` | name |
    /// |---|---|---|---|
    /// | `database-sync` | `-eu` | | `database-sync-eu` |
    /// | `database-sync` | `-eu` | `-eu` | `database-sync-eu` |
    /// | `database-sync` | `-eu` | `-west` | `database-sync-eu-west` |
    /// | `database-sync` | | | `database-sync` (unchanged) |
    ///
    /// Regions that shard by `namespace_prefix` alone get one name: give each its own with
    /// [`SyncConfig::controller_name`].
    pub fn effective_controller_name(&self) -> String {
        if !self.name_per_region {
            return self.controller_name.clone();
        }
        sync_names::per_region_name(
            &self.controller_name,
            &self.remote_suffix,
            &self.remote_namespace_suffix,
        )
    }

    /// The configuration as a reconciler runs it: [`SyncConfig::controller_name`] is the
    /// [effective name](SyncConfig::effective_controller_name), the per-region base (when it
    /// differs) is a predecessor, and the name itself is not one.
    #[must_use]
    pub fn resolved(&self) -> SyncConfig {
        let mut config = self.clone();
        let name = self.effective_controller_name();
        if self.name_per_region && name != self.controller_name {
            config.predecessors.push(self.controller_name.clone());
        }
        config.predecessors.retain(|p| *p != name);
        let mut seen = std::collections::HashSet::new();
        config.predecessors.retain(|p| seen.insert(p.clone()));
        config.controller_name = name;
        config.name_per_region = false;
        config
    }

    /// Whether `name` is this controller's: its [`SyncConfig::controller_name`] or one of its
    /// [`SyncConfig::predecessors`]. An object claimed under any of them is this controller's.
    ///
    /// Call it on a [resolved](SyncConfig::resolved) configuration.
    pub fn is_own_name(&self, name: &str) -> bool {
        self.controller_name == name || self.predecessors.iter().any(|p| p == name)
    }

    /// This controller's name followed by its predecessors.
    pub fn own_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.controller_name.as_str())
            .chain(self.predecessors.iter().map(String::as_str))
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

    /// Sets [`SyncConfig::controller_name`] to exactly this name, and clears
    /// [`SyncConfig::name_per_region`].
    ///
    /// Renaming a running controller: list the former name with
    /// [`SyncConfig::adopt_claims_from`], or its objects are left alone as another
    /// controller's (and those being deleted stay held by the finalizer).
    #[must_use]
    pub fn controller_name(mut self, v: impl Into<String>) -> Self {
        self.controller_name = v.into();
        self.name_per_region = false;
        self
    }

    /// Adds former names of this controller to [`SyncConfig::predecessors`]: their claims are
    /// adopted.
    ///
    /// # Guarantees
    ///
    /// - A remote object claimed by a predecessor is synced as this controller's own; the
    ///   claim annotation is rewritten to this name before any other write to it.
    /// - A terminating remote object claimed by a predecessor is cleaned up and released (the
    ///   finalizer, `<domain>/sync-local`, does not carry the controller's name, so there is no
    ///   other finalizer to remove).
    /// - A local namespace a predecessor created counts as this controller's; a predecessor's
    ///   `needed-by` mark counts as this controller's mark, and goes with it.
    ///
    /// # Caveats
    ///
    /// Never list a controller that still runs: both would then sync the same objects. Keep a
    /// predecessor listed while namespaces it created may still exist, as they record its
    /// name.
    ///
    /// ```
    /// use sync_core::SyncConfig;
    ///
    /// let config = SyncConfig::new("database-sync-eu").adopt_claims_from(["database-sync"]);
    /// assert!(config.is_own_name("database-sync"));
    /// ```
    #[must_use]
    pub fn adopt_claims_from<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for name in names {
            let name = name.into();
            if !self.predecessors.contains(&name) {
                self.predecessors.push(name);
            }
        }
        self
    }

    /// Adds a label to [`SyncConfig::namespace_labels`].
    ///
    /// ```
    /// use sync_core::SyncConfig;
    ///
    /// let config = SyncConfig::new("database-sync")
    ///     .namespace_label("pod-security.kubernetes.io/enforce", "restricted")
    ///     .namespace_annotation("acme.dev/cost-center", "42");
    /// assert_eq!(config.namespace_labels["pod-security.kubernetes.io/enforce"], "restricted");
    /// ```
    #[must_use]
    pub fn namespace_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.namespace_labels.insert(key.into(), value.into());
        self
    }

    /// Adds an annotation to [`SyncConfig::namespace_annotations`].
    #[must_use]
    pub fn namespace_annotation(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.namespace_annotations.insert(key.into(), value.into());
        self
    }

    /// Sets [`SyncConfig::remote_label_selector`].
    #[must_use]
    pub fn remote_label_selector(mut self, selector: impl Into<String>) -> Self {
        self.remote_label_selector = Some(selector.into());
        self
    }

    /// Sets [`SyncConfig::status_observed_generation`]: the kind's status carries
    /// `observedGeneration`, so a new object's claim can record its generations too.
    ///
    /// ```
    /// use sync_core::SyncConfig;
    ///
    /// let config = SyncConfig::new("database-sync").status_observed_generation(true);
    /// assert!(config.status_observed_generation);
    /// ```
    #[must_use]
    pub fn status_observed_generation(mut self, on: bool) -> Self {
        self.status_observed_generation = on;
        self
    }

    /// Sets [`SyncConfig::streaming_lists`]: the watches list with a streaming list.
    ///
    /// ```
    /// use sync_core::SyncConfig;
    ///
    /// let config = SyncConfig::new("database-sync").streaming_lists(true);
    /// assert!(config.streaming_lists);
    /// ```
    #[must_use]
    pub fn streaming_lists(mut self, on: bool) -> Self {
        self.streaming_lists = on;
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

mod policy;
mod validate;
