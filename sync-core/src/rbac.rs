//! The least privilege the controller needs on each cluster.
//!
//! The controller never needs cluster-admin. On the remote cluster it reads and patches the
//! synced kind, patches its status, *updates* (never creates, never reads) the remote secrets
//! it sends up, and records events. On the local cluster it manages the synced kind, creates
//! and deletes the namespaces it owns, marks the ones another controller made as needed, and
//! reads secrets.
//!
//! Bind the controller's identity on each cluster to a ClusterRole of the rules for that
//! cluster, written as YAML by the binary or applied from code.
//!
//! # Example
//!
//! ```
//! use kube::CustomResource;
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use sync_core::{Syncable, rbac};
//!
//! #[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
//! #[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
//! #[sync(secrets("db-credentials"))]
//! pub struct DatabaseSpec {
//!     pub size: String,
//! }
//!
//! let config = Database::defaults();
//! let remote = rbac::cluster_role("database-sync-remote", rbac::remote_rules::<Database>(&config));
//! let local = rbac::cluster_role("database-sync-local", rbac::local_rules::<Database>(&config, true));
//! assert_eq!(remote.metadata.name.as_deref(), Some("database-sync-remote"));
//! // Secrets are sent up: the remote role may update them, and never read them.
//! let rules = remote.rules.unwrap();
//! let secrets = rules.iter().find(|r| r.resources == Some(vec!["secrets".into()])).unwrap();
//! assert_eq!(secrets.verbs, ["update"]);
//! // With leader election, the local role may hold a Lease.
//! assert!(local.rules.unwrap().iter().any(|r| r.resources == Some(vec!["leases".into()])));
//! ```

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::ApiResource;
use kube::core::ObjectMeta;

use crate::config::SyncConfig;
use crate::syncable::Syncable;

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// The rules the controller needs on the remote (management) cluster: read and patch the kind
/// and its status, record events, and update (only) the remote secrets when `config` sends
/// secrets up.
///
/// # Example
///
/// ```
/// # use kube::CustomResource;
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// # use sync_core::{Syncable, rbac};
/// # #[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// # #[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
/// # pub struct DatabaseSpec {}
/// let rules = rbac::remote_rules::<Database>(&Database::defaults());
/// assert_eq!(rules[0].api_groups, Some(vec!["acme.dev".to_owned()]));
/// assert_eq!(rules[0].resources, Some(vec!["databases".to_owned()]));
/// // Without secrets to send, no rule on secrets at all.
/// assert!(rules.iter().all(|r| r.resources != Some(vec!["secrets".to_owned()])));
/// ```
pub fn remote_rules<K: Syncable>(config: &SyncConfig) -> Vec<PolicyRule> {
    remote_rules_for(&ApiResource::erase::<K>(&()), config)
}

/// [`remote_rules`] for a kind known by its API resource, such as a
/// [`DynamicKind`](crate::DynamicKind)'s.
pub fn remote_rules_for(resource: &ApiResource, config: &SyncConfig) -> Vec<PolicyRule> {
    let (group, plural) = (&resource.group, &resource.plural);
    let mut rules = vec![
        // `get` serves the uncached read that confirms a deletion.
        rule(group, &[plural], &["get", "list", "watch", "patch"]),
        rule(group, &[&format!("{plural}/status")], &["patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ];
    if !config.secrets.is_empty() {
        // Update only: the remote secrets must pre-exist, and their content is never read.
        rules.push(rule("", &["secrets"], &["update"]));
    }
    rules
}

/// The rules the controller needs on the local (regional) cluster: manage the kind, create,
/// mark and delete namespaces, list and watch the secrets `config` sends up (by name only:
/// no other secret of the cluster can be read), and, with `leader_election`, hold a Lease.
///
/// # Example
///
/// ```
/// # use kube::CustomResource;
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// # use sync_core::{Syncable, rbac};
/// # #[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// # #[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
/// # pub struct DatabaseSpec {}
/// let single = rbac::local_rules::<Database>(&Database::defaults(), false);
/// let replicated = rbac::local_rules::<Database>(&Database::defaults(), true);
/// assert_eq!(replicated.len(), single.len() + 1);
/// ```
pub fn local_rules<K: Syncable>(config: &SyncConfig, leader_election: bool) -> Vec<PolicyRule> {
    local_rules_for(&ApiResource::erase::<K>(&()), config, leader_election)
}

/// [`local_rules`] for a kind known by its API resource, such as a
/// [`DynamicKind`](crate::DynamicKind)'s.
pub fn local_rules_for(
    resource: &ApiResource,
    config: &SyncConfig,
    leader_election: bool,
) -> Vec<PolicyRule> {
    let (group, plural) = (&resource.group, &resource.plural);
    let mut rules = vec![
        rule(
            group,
            &[plural],
            &["get", "list", "watch", "create", "update", "delete"],
        ),
        rule(
            "",
            &["namespaces"],
            &["list", "watch", "create", "patch", "delete"],
        ),
    ];
    if !config.secrets.is_empty() {
        // Only the named secrets: each is watched with a `metadata.name` field selector, which
        // is what lets the authorizer apply `resourceNames` to a list or watch.
        let mut names = config.secrets.to_vec();
        names.sort();
        names.dedup();
        rules.push(PolicyRule {
            resource_names: Some(names),
            ..rule("", &["secrets"], &["list", "watch"])
        });
    }
    if leader_election {
        // The elector reads the one Lease, creates it once, and updates it on the condition
        // of its resource version: no list, watch or patch.
        rules.push(rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update"],
        ));
    }
    rules
}

/// A ClusterRole holding `rules`, named `name`.
///
/// # Example
///
/// ```
/// use sync_core::rbac;
///
/// let role = rbac::cluster_role("database-sync-local", Vec::new());
/// assert_eq!(role.metadata.name.as_deref(), Some("database-sync-local"));
/// assert_eq!(role.rules, Some(Vec::new()));
/// ```
pub fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
        ..ClusterRole::default()
    }
}
