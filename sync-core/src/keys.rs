/// Every annotation and finalizer key the controller reads or writes, derived from the
/// annotation domain ([`SyncConfig::domain`](crate::SyncConfig::domain)).
///
/// A management plane, a dashboard or a test reads these to know what the controller recorded,
/// such as which generation of a remote object is applied locally. With the default domain
/// `cloud.teleport.dev` the first five are exactly the Go original's strings, so an existing
/// management plane works unchanged.
///
/// # Example
///
/// ```
/// use sync_core::{DEFAULT_DOMAIN, Keys};
///
/// let keys = Keys::new(DEFAULT_DOMAIN);
/// assert_eq!(keys.remote_generation, "cloud.teleport.dev/sync-remote-generation");
/// assert_eq!(keys.needed_by("db-sync"), "cloud.teleport.dev/needed-by.db-sync");
/// assert!(keys.is_copied("app.kubernetes.io/name"));
/// assert!(!keys.is_copied(&keys.paused));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keys {
    /// Annotation on the remote object: remote `metadata.generation` whose spec is applied.
    pub remote_generation: String,
    /// Annotation on the remote object: local `metadata.generation` right after that apply.
    pub local_generation: String,
    /// Annotation on the remote object: the identity of the local object that
    /// `local_generation` counts (its [`Keys::copy_id`] when it carries one, else its UID), so
    /// a local copy deleted and re-created (its generation starts again at 1) is never
    /// mistaken for the one recorded. (Not in the original.)
    pub local_uid: String,
    /// Annotation on a local copy made after its generations were recorded in the claim
    /// ([`SyncConfig::status_observed_generation`](crate::SyncConfig::status_observed_generation)):
    /// the id the claim recorded for it in [`Keys::local_uid`], since its UID is not known
    /// before it exists. (Not in the original.)
    pub copy_id: String,
    /// Finalizer on the remote object.
    pub finalizer: String,
    /// Annotation on a local namespace the controller created: the name of the local object
    /// it was created for (`sync-owner`, as the Go original writes it).
    pub namespace_owner: String,
    /// Annotation on a local namespace the controller created, next to
    /// [`Keys::namespace_owner`]: the name of the controller that created it. A namespace with
    /// `namespace_owner` and without it was made by the Go original (or a version before this
    /// key): it belongs to the object `namespace_owner` names. (Not in the original.)
    pub namespace_creator: String,
    /// Prefix of an annotation that a controller adds to a namespace another controller
    /// created while one of its objects lives there; [`Keys::needed_by`] forms the whole key.
    /// The creator never deletes a namespace that carries another controller's mark.
    /// (Not in the original.)
    pub needed_by_prefix: String,
    /// Annotation set by people on either side: `"true"` stops every write for the object.
    pub paused: String,
    /// Annotation on the local object: the label and annotation keys copied from the remote
    /// object, so that a key removed remotely is removed locally while keys added by local
    /// actors are kept. (Not in the Go original, which overwrites the local maps.)
    pub managed_keys: String,
    /// Annotation on the remote object: the resource versions of the local secrets last sent
    /// up, so unchanged secrets are not written again after a restart. (Not in the original.)
    pub secret_versions: String,
    /// Annotation on the remote object: the name of the controller that claimed it. A
    /// controller never syncs an object another controller claimed, so two controllers whose
    /// suffixes overlap ("-eu" and "-west-eu" both match "db-west-eu") report the object
    /// instead of fighting over it. A controller adopts the claims of its predecessors
    /// ([`SyncConfig::adopt_claims_from`](crate::SyncConfig::adopt_claims_from)), rewriting
    /// them to its own name. (Not in the original.)
    pub claimed_by: String,
    /// The domain itself followed by '/': every key with this prefix is the controller's own
    /// and never copied between clusters.
    pub own_prefix: String,
}

impl Keys {
    /// The keys of a domain.
    pub fn new(domain: &str) -> Self {
        let k = |s: &str| format!("{domain}/{s}");
        Keys {
            remote_generation: k("sync-remote-generation"),
            local_generation: k("sync-local-generation"),
            local_uid: k("sync-local-uid"),
            copy_id: k("sync-copy-id"),
            finalizer: k("sync-local"),
            namespace_owner: k("sync-owner"),
            namespace_creator: k("sync-owner-controller"),
            needed_by_prefix: k("needed-by."),
            paused: k("paused"),
            managed_keys: k("sync-managed-keys"),
            secret_versions: k("sync-secret-versions"),
            claimed_by: k("sync-controller"),
            own_prefix: k(""),
        }
    }

    /// The annotation by which `controller` says it still needs a namespace it did not
    /// create: `<domain>/needed-by.<controller>`.
    pub fn needed_by(&self, controller: &str) -> String {
        format!("{}{controller}", self.needed_by_prefix)
    }

    /// Whether a label or annotation key is copied from the remote object to the local one:
    /// every key but the controller's own (under [`Keys::own_prefix`]) and kubectl's
    /// client-side apply record, which describes the remote object.
    pub fn is_copied(&self, key: &str) -> bool {
        !key.starts_with(&self.own_prefix) && key != LAST_APPLIED
    }
}

/// kubectl's client-side apply record, which describes the remote object and is never copied.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_domain_keys_are_the_go_originals() {
        let k = Keys::new(crate::DEFAULT_DOMAIN);
        assert_eq!(
            k.remote_generation,
            "cloud.teleport.dev/sync-remote-generation"
        );
        assert_eq!(
            k.local_generation,
            "cloud.teleport.dev/sync-local-generation"
        );
        assert_eq!(k.finalizer, "cloud.teleport.dev/sync-local");
        assert_eq!(k.namespace_owner, "cloud.teleport.dev/sync-owner");
        assert_eq!(k.paused, "cloud.teleport.dev/paused");
    }

    #[test]
    fn own_keys_and_last_applied_are_not_copied() {
        let k = Keys::new("acme.dev");
        assert!(!k.is_copied("acme.dev/paused"));
        assert!(!k.is_copied(LAST_APPLIED));
        assert!(k.is_copied("app.kubernetes.io/name"));
        assert!(k.is_copied("acme.dev.other/x"));
    }
}
