//! TEMPORARY, until sync-core's `rbac::remote_rules_for` / `local_rules_for` land on main: the
//! same rules as `sync_core::rbac::{remote_rules, local_rules}`, for a kind known by its
//! ApiResource. Removed at the merge.

use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::discovery::ApiResource;
use sync_core::SyncConfig;

pub use sync_core::rbac::cluster_role;

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

pub fn remote_rules_for(resource: &ApiResource, config: &SyncConfig) -> Vec<PolicyRule> {
    let (group, plural) = (&resource.group, &resource.plural);
    let mut rules = vec![
        rule(group, &[plural], &["get", "list", "watch", "patch"]),
        rule(group, &[&format!("{plural}/status")], &["patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ];
    if !config.secrets.is_empty() {
        rules.push(rule("", &["secrets"], &["update"]));
    }
    rules
}

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
        let mut names = config.secrets.to_vec();
        names.sort();
        names.dedup();
        rules.push(PolicyRule {
            resource_names: Some(names),
            ..rule("", &["secrets"], &["list", "watch"])
        });
    }
    if leader_election {
        rules.push(rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update"],
        ));
    }
    rules
}
