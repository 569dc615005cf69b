//! `--print-rbac` and `--print-manifests`: the least privilege the configured kinds need on
//! each cluster (from `sync_core::rbac`), and everything to run the agent in a cluster.
//!
//! Nothing here contacts a cluster. RBAC needs each kind's plural and group only, which
//! `PLURAL.VERSION.GROUP` gives; the kind's name, which discovery finds at start-up, plays no
//! part in it.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::core::ObjectMeta;
use kube::discovery::ApiResource;
use serde_json::json;
use sync_core::{SyncConfig, rbac};
use sync_examples::manifests::doc;

use crate::flags::Args;
use crate::resource::Resource;

/// The ApiResource of `r` as far as its name tells: everything but the kind's name.
pub fn api_resource(r: &Resource) -> ApiResource {
    ApiResource {
        group: r.name.group.clone(),
        version: r.name.version.clone(),
        api_version: r.name.api_version(),
        kind: String::new(),
        plural: r.name.plural.clone(),
    }
}

/// The sync configuration of `r` under the shared flags, before its kind's defaults (the
/// controller name) are known: all that RBAC depends on.
pub fn config(args: &Args, r: &Resource) -> SyncConfig {
    r.options
        .apply(args.sync.apply(SyncConfig::new("sync-agent")))
}

/// `rules` without repeats, in order: every kind needs the same namespace rule.
fn distinct(rules: impl IntoIterator<Item = PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for r in rules {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// The rules of every kind on the remote cluster.
pub fn remote_rules(args: &Args, resources: &[Resource]) -> Vec<PolicyRule> {
    distinct(
        resources
            .iter()
            .flat_map(|r| rbac::remote_rules_for(&api_resource(r), &config(args, r))),
    )
}

/// The rules of every kind on the local cluster, with one Lease rule under leader election.
pub fn local_rules(args: &Args, resources: &[Resource], leader_election: bool) -> Vec<PolicyRule> {
    distinct(resources.iter().enumerate().flat_map(|(i, r)| {
        rbac::local_rules_for(
            &api_resource(r),
            &config(args, r),
            leader_election && i == 0,
        )
    }))
}

fn binding(name: &str, subject: Subject) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.to_owned(),
        },
        subjects: Some(vec![subject]),
    }
}

/// The ClusterRole on the management cluster and its binding to `--remote-user`, both named
/// after that user.
pub fn remote_rbac(args: &Args, resources: &[Resource]) -> (ClusterRole, ClusterRoleBinding) {
    let name = &args.running.remote_user;
    let user = Subject {
        kind: "User".into(),
        name: name.clone(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        ..Subject::default()
    };
    (
        rbac::cluster_role(name, remote_rules(args, resources)),
        binding(name, user),
    )
}

/// The ClusterRole on this cluster and its binding to the agent's ServiceAccount, all named
/// `--lease-name`, the ServiceAccount in `--lease-namespace`.
pub fn local_rbac(
    args: &Args,
    resources: &[Resource],
    leader_election: bool,
) -> (ClusterRole, ClusterRoleBinding) {
    let name = &args.leader.lease_name;
    let sa = Subject {
        kind: "ServiceAccount".into(),
        name: name.clone(),
        namespace: Some(args.leader.lease_namespace.clone()),
        ..Subject::default()
    };
    (
        rbac::cluster_role(name, local_rules(args, resources, leader_election)),
        binding(name, sa),
    )
}

/// `--print-rbac`: both clusters' RBAC, as YAML, the local part after a line
/// `# On this (local) cluster:`.
pub fn rbac_yaml(args: &Args, resources: &[Resource]) -> String {
    let (rr, rb) = remote_rbac(args, resources);
    let (lr, lb) = local_rbac(args, resources, args.leader.leader_election);
    format!(
        "# On the management (remote) cluster, for user {}:\n{}{}# On this (local) cluster:\n{}{}",
        args.running.remote_user,
        doc(&rr),
        doc(&rb),
        doc(&lr),
        doc(&lb)
    )
}

/// `--print-manifests`: the RBAC of both clusters (with leader election), and the Namespace,
/// ServiceAccount and Deployment (two replicas) of the agent on this cluster, running these
/// kinds with these shared flags.
pub fn manifests_yaml(args: &Args, resources: &[Resource]) -> String {
    let (rr, rb) = remote_rbac(args, resources);
    let (lr, lb) = local_rbac(args, resources, true);
    let name = &args.leader.lease_name;
    let namespace = &args.leader.lease_namespace;
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace } });
    let sa = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": name, "namespace": namespace },
    });
    let mut command: Vec<String> = resources
        .iter()
        .map(|r| format!("--resource={r}"))
        .collect();
    command.extend(args.sync.to_args());
    let labels = json!({ "app.kubernetes.io/name": name });
    let field = |path: &str| json!({ "fieldRef": { "fieldPath": path } });
    let probe =
        |path: &str| json!({ "httpGet": { "path": path, "port": "http" }, "periodSeconds": 10 });
    let container = json!({
        "name": "sync-agent",
        "image": args.running.image,
        "args": command,
        "env": [
            { "name": "SYNC_REMOTE_KUBECONFIG", "value": "/etc/sync/remote/kubeconfig" },
            { "name": "SYNC_LEADER_ELECTION", "value": "true" },
            { "name": "SYNC_LEASE_NAME", "value": name },
            { "name": "SYNC_LEASE_NAMESPACE", "valueFrom": field("metadata.namespace") },
            { "name": "SYNC_IDENTITY", "valueFrom": field("metadata.name") },
            { "name": "SYNC_LISTEN", "value": "0.0.0.0:8080" },
            { "name": "RUST_LOG", "value": "info" },
        ],
        "ports": [{ "name": "http", "containerPort": 8080 }],
        "livenessProbe": probe("/healthz"),
        "readinessProbe": probe("/readyz"),
        "resources": {
            "requests": { "cpu": "50m", "memory": "64Mi" },
            "limits": { "memory": "256Mi" },
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": { "drop": ["ALL"] },
        },
        "volumeMounts": [
            { "name": "remote-kubeconfig", "mountPath": "/etc/sync/remote", "readOnly": true },
        ],
    });
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "serviceAccountName": name,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [container],
                    "volumes": [
                        { "name": "remote-kubeconfig", "secret": { "secretName": "remote-kubeconfig" } },
                    ],
                },
            },
        },
    });
    format!(
        "# On the management (remote) cluster, for user {user}:\n{}{}\
         # On this (local) cluster, after storing the remote kubeconfig:\n\
         #   kubectl -n {namespace} create secret generic remote-kubeconfig \\\n\
         #     --from-file=kubeconfig=remote.kubeconfig\n\
         # The image is yours to build around `cargo build --release -p sync-agent`.\n{}{}{}{}{}",
        doc(&rr),
        doc(&rb),
        doc(&ns),
        doc(&sa),
        doc(&lr),
        doc(&lb),
        doc(&deployment),
        user = args.running.remote_user,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn args(flags: &[&str]) -> (Args, Vec<Resource>) {
        let args = Args::try_parse_from([&["sync-agent"], flags].concat()).unwrap();
        let resources = args.kinds.resources().unwrap();
        (args, resources)
    }

    fn has(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
        rules.iter().any(|r| {
            r.api_groups.as_deref() == Some(&[group.to_owned()])
                && r.resources
                    .as_ref()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource))
                && r.verbs.iter().any(|v| v == verb)
        })
    }

    #[test]
    fn rbac_covers_every_kind_once_and_the_lease_once() {
        let (args, resources) = args(&[
            "--resource",
            "databases.v1.acme.dev:secrets=db-credentials",
            "--resource",
            "caches.v1beta1.cache.acme.dev",
            "--leader-election",
        ]);
        let remote = remote_rules(&args, &resources);
        assert!(has(&remote, "acme.dev", "databases", "patch"));
        assert!(has(&remote, "acme.dev", "databases/status", "patch"));
        assert!(has(&remote, "cache.acme.dev", "caches", "watch"));
        assert!(has(&remote, "", "secrets", "update"));
        let local = local_rules(&args, &resources, true);
        assert!(has(&local, "acme.dev", "databases", "create"));
        assert!(has(&local, "cache.acme.dev", "caches", "delete"));
        let count = |what: &str| {
            local
                .iter()
                .filter(|r| {
                    r.resources
                        .as_ref()
                        .is_some_and(|rs| rs.iter().any(|x| x == what))
                })
                .count()
        };
        assert_eq!(count("namespaces"), 1);
        assert_eq!(count("leases"), 1);
        // Only the databases send a secret up: one secret rule, naming it alone.
        let secrets: Vec<_> = local
            .iter()
            .filter(|r| r.resources.as_deref() == Some(&["secrets".to_owned()]))
            .collect();
        assert_eq!(secrets.len(), 1);
        assert_eq!(
            secrets[0].resource_names.as_deref(),
            Some(&["db-credentials".to_owned()][..])
        );
    }

    #[test]
    fn printed_rbac_binds_the_remote_user_and_the_service_account() {
        let (args, resources) = args(&[
            "--resource",
            "databases.v1.acme.dev",
            "--remote-user",
            "sync-agent-eu",
            "--lease-name",
            "db-agent",
        ]);
        let yaml = rbac_yaml(&args, &resources);
        let (remote, local) = yaml.split_once("# On this (local) cluster:\n").unwrap();
        let remote: Vec<serde_json::Value> = serde_saphyr::from_multiple(remote).unwrap();
        let local: Vec<serde_json::Value> = serde_saphyr::from_multiple(local).unwrap();
        assert_eq!(remote[0]["kind"], "ClusterRole");
        assert_eq!(remote[1]["subjects"][0]["name"], "sync-agent-eu");
        assert_eq!(local[1]["metadata"]["name"], "db-agent");
        assert_eq!(local[1]["subjects"][0]["kind"], "ServiceAccount");
        assert_eq!(local[1]["subjects"][0]["namespace"], "sync-system");
        // Without --leader-election, no Lease.
        assert!(!yaml.contains("leases"));
    }

    #[test]
    fn the_deployment_runs_the_same_kinds_and_shared_flags() {
        let (args, resources) = args(&[
            "--resource",
            "databases.v1.acme.dev:secrets=db-credentials,local-only=/spec/storageClass",
            "--remote-suffix",
            "-eu",
            "--print-manifests",
        ]);
        let yaml = manifests_yaml(&args, &resources);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ClusterRole",
                "ClusterRoleBinding",
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment"
            ]
        );
        let container = &docs[6]["spec"]["template"]["spec"]["containers"][0];
        let command: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
        assert_eq!(
            command,
            [
                "--resource=databases.v1.acme.dev:secrets=db-credentials,local-only=/spec/storageClass",
                "--remote-suffix=-eu",
            ]
        );
        // The printed command line parses back to the same configuration.
        let again =
            Args::try_parse_from(std::iter::once("sync-agent".to_owned()).chain(command)).unwrap();
        assert_eq!(again.kinds.resources().unwrap(), resources);
        assert_eq!(config(&again, &resources[0]), config(&args, &resources[0]));
        // Leader election is on in the Deployment, so the local role may hold the Lease.
        assert!(docs[4]["rules"].to_string().contains("leases"));
    }
}
