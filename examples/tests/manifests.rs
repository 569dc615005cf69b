//! The YAML in `examples/yaml/` is what the code generates, and the Deployment only sets
//! variables the agent reads.

use std::collections::BTreeSet;

use clap::CommandFactory;
use kube::CustomResourceExt;
use sync_examples::database::Database;
use sync_examples::flags::Args;
use sync_examples::manifests::{self, COMMAND};

#[test]
fn checked_in_yaml_is_what_the_code_generates() {
    let dir = manifests::dir();
    let mut stale = Vec::new();
    for (name, generated) in manifests::files() {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if on_disk != generated {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "examples/yaml/{{{}}} differ from what the code generates; \
         refresh them with `{COMMAND}` and commit the result",
        stale.join(",")
    );
}

#[test]
fn generated_yaml_reads_back_as_the_objects_it_came_from() {
    let crd = Database::crd();
    let yaml = manifests::doc(&crd);
    let read: serde_json::Value = serde_saphyr::from_str(&yaml).expect("the YAML parses");
    assert_eq!(read, serde_json::to_value(&crd).unwrap());
    for (name, text) in manifests::files() {
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !docs.is_empty() && docs.iter().all(|d| d["kind"].is_string()),
            "{name} should hold Kubernetes objects, read back as {docs:?}"
        );
    }
}

#[test]
fn the_yaml_folder_holds_only_generated_files() {
    let generated: BTreeSet<String> = manifests::files()
        .into_iter()
        .map(|(n, _)| n.to_owned())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(manifests::dir())
        .expect("examples/yaml exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        on_disk, generated,
        "examples/yaml/ should hold exactly the generated files; refresh with `{COMMAND}`"
    );
}

#[test]
fn the_deployment_sets_only_variables_the_agent_reads() {
    let read: BTreeSet<String> = Args::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let (_, _, deployment) = manifests::agent();
    let spec = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("a pod spec");
    let set: Vec<String> = spec.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .filter(|n| n != "RUST_LOG")
        .collect();
    assert!(!set.is_empty());
    for name in set {
        assert!(
            read.contains(&name),
            "the Deployment sets {name}, which the agent does not read; it reads {read:?}"
        );
    }
}

#[test]
fn the_local_rbac_file_allows_the_lease_the_deployment_needs() {
    let local = &manifests::files()[2];
    assert_eq!(local.0, "rbac-local.yaml");
    assert!(local.1.contains("coordination.k8s.io"), "{}", local.1);
}
