//! The checks at start-up: each kind is served by both clusters, namespaced on both, and the
//! same kind on both; whether its status can be synced.
//!
//! What each cluster answered is judged by pure functions ([`judge`], [`agree`]), so every
//! outcome is unit-tested; [`discover`] only asks.

use std::fmt;

use kube::Client;
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

use crate::resource::ResourceName;

/// One of the two clusters, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cluster {
    /// The management cluster.
    Remote,
    /// This cluster.
    Local,
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cluster::Remote => "remote (management)",
            Cluster::Local => "local",
        })
    }
}

/// A kind as both clusters serve it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    /// The kind, with its name from discovery.
    pub resource: ApiResource,
    /// Whether the status is synced: both clusters serve a `status` subresource.
    pub status: bool,
    /// Why the status is not synced, for the log: the clusters without the subresource.
    pub no_status_on: Vec<Cluster>,
}

/// What one cluster serves for a kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The kind.
    pub resource: ApiResource,
    /// Whether it has a `status` subresource.
    pub status: bool,
}

/// Why a kind cannot be synced, found before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The group and version are not served at all.
    #[error(
        "the {cluster} cluster does not serve {name}: it serves no API group {api_version} \
         (is the CRD installed there, with version {version} served?)"
    )]
    NoGroupVersion {
        /// Which cluster.
        cluster: Cluster,
        /// The kind.
        name: ResourceName,
        /// `GROUP/VERSION`.
        api_version: String,
        /// `VERSION`.
        version: String,
    },
    /// The group and version are served, without this resource.
    #[error(
        "the {cluster} cluster does not serve {name}: no such resource in group \
         {api_version} (is the CRD installed?{others})"
    )]
    NoResource {
        /// Which cluster.
        cluster: Cluster,
        /// The kind.
        name: ResourceName,
        /// `GROUP/VERSION`.
        api_version: String,
        /// The plurals it does serve there, as a hint.
        others: String,
    },
    /// A cluster-scoped kind.
    #[error(
        "{name} ({kind}) is cluster-scoped on the {cluster} cluster; sync-agent syncs \
         namespaced kinds only"
    )]
    NotNamespaced {
        /// Which cluster.
        cluster: Cluster,
        /// The kind.
        name: ResourceName,
        /// Its kind name.
        kind: String,
    },
    /// The two clusters name the kind differently: two different CRDs.
    #[error(
        "{name} is not the same kind on both clusters: kind {remote} on the remote cluster, \
         {local} on the local one (install the same CRD on both)"
    )]
    KindMismatch {
        /// The kind.
        name: ResourceName,
        /// Its name on the remote cluster.
        remote: String,
        /// Its name on the local cluster.
        local: String,
    },
    /// Discovery itself failed: unreachable, unauthorised, ...
    #[error("failed to discover {name} on the {cluster} cluster: {source}")]
    Request {
        /// Which cluster.
        cluster: Cluster,
        /// The kind.
        name: ResourceName,
        /// Why.
        #[source]
        source: Box<kube::Error>,
    },
}

/// What `cluster` serves for `name`, from what its discovery answered: the resources of the
/// group version, or the error of asking for them.
///
/// # Errors
///
/// When the group version or the resource is not served, or the kind is cluster-scoped.
pub fn judge(
    cluster: Cluster,
    name: &ResourceName,
    answer: Result<Vec<(ApiResource, ApiCapabilities)>, kube::Error>,
) -> Result<Served, DiscoveryError> {
    let resources = match answer {
        Ok(resources) => resources,
        // The API server answers a group version it does not serve with a bare
        // "404 page not found", not a Status: kube keeps only the code.
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(DiscoveryError::NoGroupVersion {
                cluster,
                name: name.clone(),
                api_version: name.api_version(),
                version: name.version.clone(),
            });
        }
        Err(source) => {
            return Err(DiscoveryError::Request {
                cluster,
                name: name.clone(),
                source: Box::new(source),
            });
        }
    };
    let Some((resource, caps)) = resources.iter().find(|(r, _)| r.plural == name.plural) else {
        let mut plurals: Vec<&str> = resources.iter().map(|(r, _)| r.plural.as_str()).collect();
        plurals.sort_unstable();
        let others = match plurals.is_empty() {
            true => String::new(),
            false => format!(" it serves: {}", plurals.join(", ")),
        };
        return Err(DiscoveryError::NoResource {
            cluster,
            name: name.clone(),
            api_version: name.api_version(),
            others,
        });
    };
    if caps.scope != Scope::Namespaced {
        return Err(DiscoveryError::NotNamespaced {
            cluster,
            name: name.clone(),
            kind: resource.kind.clone(),
        });
    }
    let status = caps.subresources.iter().any(|(s, _)| s.plural == "status");
    Ok(Served {
        resource: resource.clone(),
        status,
    })
}

/// The kind both clusters serve, from what each serves.
///
/// # Errors
///
/// [`DiscoveryError::KindMismatch`] when they name it differently.
pub fn agree(
    name: &ResourceName,
    remote: Served,
    local: Served,
) -> Result<Discovered, DiscoveryError> {
    if remote.resource.kind != local.resource.kind {
        return Err(DiscoveryError::KindMismatch {
            name: name.clone(),
            remote: remote.resource.kind,
            local: local.resource.kind,
        });
    }
    let no_status_on: Vec<Cluster> = [(Cluster::Remote, &remote), (Cluster::Local, &local)]
        .into_iter()
        .filter(|(_, s)| !s.status)
        .map(|(c, _)| c)
        .collect();
    Ok(Discovered {
        resource: remote.resource,
        status: no_status_on.is_empty(),
        no_status_on,
    })
}

/// What `client`'s discovery says of `name`'s group version, for [`judge`].
///
/// # Errors
///
/// When the request fails, with 404 when the group version is not served.
pub async fn ask(
    client: &Client,
    name: &ResourceName,
) -> Result<Vec<(ApiResource, ApiCapabilities)>, kube::Error> {
    let gv = GroupVersion::gv(&name.group, &name.version);
    let group = kube::discovery::pinned_group(client, &gv).await?;
    Ok(group.versioned_resources(&name.version))
}

/// Asks both clusters about `name`: discovery only, which every authenticated user may read,
/// so it needs no RBAC of its own.
///
/// # Errors
///
/// As [`judge`] and [`agree`]; the remote cluster's problem first.
pub async fn discover(
    remote: &Client,
    local: &Client,
    name: &ResourceName,
) -> Result<Discovered, DiscoveryError> {
    let (r, l) = tokio::join!(ask(remote, name), ask(local, name));
    let remote = judge(Cluster::Remote, name, r)?;
    let local = judge(Cluster::Local, name, l)?;
    agree(name, remote, local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ResourceName {
        "databases.v1.acme.dev".parse().unwrap()
    }

    fn served(
        plural: &str,
        kind: &str,
        scope: Scope,
        status: bool,
    ) -> (ApiResource, ApiCapabilities) {
        let resource = ApiResource {
            group: "acme.dev".into(),
            version: "v1".into(),
            api_version: "acme.dev/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let sub = ApiResource {
            plural: "status".into(),
            ..resource.clone()
        };
        let caps = |subresources| ApiCapabilities {
            scope: scope.clone(),
            subresources,
            operations: vec!["get".into()],
        };
        let subresources = match status {
            true => vec![(sub, caps(vec![]))],
            false => vec![],
        };
        (resource, caps(subresources))
    }

    fn not_found() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("404 page not found", "Failed to parse error data")
                .with_code(404)
                .boxed(),
        )
    }

    #[test]
    fn a_namespaced_kind_with_status_on_both_clusters_is_synced_with_its_status() {
        let db = || served("databases", "Database", Scope::Namespaced, true);
        let r = judge(Cluster::Remote, &name(), Ok(vec![db()])).unwrap();
        let l = judge(Cluster::Local, &name(), Ok(vec![db()])).unwrap();
        let d = agree(&name(), r, l).unwrap();
        assert_eq!(d.resource.kind, "Database");
        assert!(d.status);
    }

    #[test]
    fn a_missing_group_version_names_the_cluster_and_the_crd() {
        let e = judge(Cluster::Local, &name(), Err(not_found())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the local cluster does not serve databases.v1.acme.dev: it serves no API group \
             acme.dev/v1 (is the CRD installed there, with version v1 served?)"
        );
    }

    #[test]
    fn a_missing_resource_in_a_served_group_lists_what_is_there() {
        let cache = served("caches", "Cache", Scope::Namespaced, true);
        let e = judge(Cluster::Remote, &name(), Ok(vec![cache])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the remote (management) cluster does not serve databases.v1.acme.dev: no such \
             resource in group acme.dev/v1 (is the CRD installed? it serves: caches)"
        );
        let e = judge(Cluster::Local, &name(), Ok(vec![])).unwrap_err();
        assert!(e.to_string().ends_with("(is the CRD installed?)"), "{e}");
    }

    #[test]
    fn a_cluster_scoped_kind_is_refused() {
        let db = served("databases", "Database", Scope::Cluster, true);
        let e = judge(Cluster::Local, &name(), Ok(vec![db])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "databases.v1.acme.dev (Database) is cluster-scoped on the local cluster; \
             sync-agent syncs namespaced kinds only"
        );
    }

    #[test]
    fn two_different_kinds_under_one_name_are_refused() {
        let r = judge(
            Cluster::Remote,
            &name(),
            Ok(vec![served(
                "databases",
                "Database",
                Scope::Namespaced,
                true,
            )]),
        );
        let l = judge(
            Cluster::Local,
            &name(),
            Ok(vec![served("databases", "DB", Scope::Namespaced, true)]),
        );
        let e = agree(&name(), r.unwrap(), l.unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "databases.v1.acme.dev is not the same kind on both clusters: kind Database on the \
             remote cluster, DB on the local one (install the same CRD on both)"
        );
    }

    #[test]
    fn without_a_status_subresource_on_either_cluster_the_status_is_not_synced() {
        let with = || served("databases", "Database", Scope::Namespaced, true);
        let without = || served("databases", "Database", Scope::Namespaced, false);
        let j = |c, s| judge(c, &name(), Ok(vec![s])).unwrap();
        let d = agree(
            &name(),
            j(Cluster::Remote, with()),
            j(Cluster::Local, without()),
        )
        .unwrap();
        assert!(!d.status);
        assert_eq!(d.no_status_on, [Cluster::Local]);
        let d = agree(
            &name(),
            j(Cluster::Remote, without()),
            j(Cluster::Local, without()),
        )
        .unwrap();
        assert_eq!(d.no_status_on, [Cluster::Remote, Cluster::Local]);
    }

    #[test]
    fn other_failures_say_which_cluster() {
        let forbidden = kube::Error::Api(
            kube::core::Status::failure("forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        let e = judge(Cluster::Remote, &name(), Err(forbidden)).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "failed to discover databases.v1.acme.dev on the remote (management) cluster: "
            ),
            "{e}"
        );
    }
}
