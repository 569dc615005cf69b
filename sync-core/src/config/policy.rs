//! The deletion policies: what goes locally when a remote object goes, and how.

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
