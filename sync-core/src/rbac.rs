//! The least privilege the controller needs on each cluster.
//!
//! The controller never needs cluster-admin. On the remote cluster it reads and patches the
//! synced kind, patches its status, *updates* (never creates, never reads) the remote secrets
//! it sends up, and records events. On the local cluster it manages the synced kind, creates
//! and deletes the namespaces it owns, marks the ones another controller made as needed, and
//! reads secrets.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
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

/// The rules the controller needs on the remote (management) cluster.
pub fn remote_rules<K: Syncable>(config: &SyncConfig) -> Vec<PolicyRule> {
    let group = K::group(&());
    let plural = K::plural(&());
    let mut rules = vec![
        // `get` serves the uncached read that confirms a deletion.
        rule(&group, &[&plural], &["get", "list", "watch", "patch"]),
        rule(&group, &[&format!("{plural}/status")], &["patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ];
    if !config.secrets.is_empty() {
        // Update only: the remote secrets must pre-exist, and their content is never read.
        rules.push(rule("", &["secrets"], &["update"]));
    }
    rules
}

/// The rules the controller needs on the local (regional) cluster.
pub fn local_rules<K: Syncable>(config: &SyncConfig, leader_election: bool) -> Vec<PolicyRule> {
    let group = K::group(&());
    let plural = K::plural(&());
    let mut rules = vec![
        rule(
            &group,
            &[&plural],
            &["get", "list", "watch", "create", "update", "delete"],
        ),
        rule(
            "",
            &["namespaces"],
            &["list", "watch", "create", "patch", "delete"],
        ),
    ];
    if !config.secrets.is_empty() {
        rules.push(rule("", &["secrets"], &["list", "watch"]));
    }
    if leader_election {
        rules.push(rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "list", "watch", "create", "update", "patch"],
        ));
    }
    rules
}

/// A ClusterRole holding `rules`, named `name`.
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
