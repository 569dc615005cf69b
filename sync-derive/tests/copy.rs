//! What the generated code does: the copy functions respect `#[sync(skip)]`, and `defaults()`
//! reflects the attributes, under the builder's run-time overrides.

use std::borrow::Cow;

use kube::core::{NamespaceResourceScope, ObjectMeta};
use kube::{CustomResource, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::{OnRemoteDelete, Propagation, SyncConfig, Syncable};

#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "acme.dev",
    version = "v1",
    kind = "Database",
    namespaced,
    status = "DatabaseStatus"
)]
#[sync(
    remote_suffix = "-eu",
    remote_namespace_suffix = "-mgmt",
    local_namespace_suffix = "-local",
    namespace_prefix = "tenant-",
    secrets("db-credentials", "db-ca"),
    propagation = "background",
    on_remote_delete = "resource",
    concurrency = 4,
    domain = "acme.dev",
    controller_name = "acme-database-sync"
)]
struct DatabaseSpec {
    size: String,
    replicas: u32,
    #[sync(skip)]
    local_note: Option<String>,
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
struct DatabaseStatus {
    ready: bool,
}

/// A kind with no `#[sync]` attribute and no status.
#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Cache", namespaced)]
struct CacheSpec {
    size: String,
}

/// A kind whose every spec field is local-only.
#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "acme.dev", version = "v1", kind = "Scratch", namespaced)]
struct ScratchSpec {
    #[sync(skip)]
    note: String,
}

/// A hand-written resource struct, as kopium generates them.
#[derive(Syncable, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[sync(remote_suffix = "-us")]
struct Queue {
    metadata: ObjectMeta,
    spec: QueueSpec,
    status: Option<QueueStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct QueueSpec {
    depth: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct QueueStatus {
    length: u32,
}

impl Resource for Queue {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Queue".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "acme.dev".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "queues".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn remote_spec() -> DatabaseSpec {
    DatabaseSpec {
        size: "10Gi".into(),
        replicas: 3,
        local_note: Some("remote note".into()),
        tags: vec!["prod".into()],
    }
}

#[test]
fn copy_spec_copies_synced_fields_and_leaves_skipped_ones_alone() {
    let mut local = DatabaseSpec {
        size: "1Gi".into(),
        replicas: 1,
        local_note: Some("local note".into()),
        tags: Vec::new(),
    };
    Database::copy_spec(&remote_spec(), &mut local);
    assert_eq!(
        local,
        DatabaseSpec {
            size: "10Gi".into(),
            replicas: 3,
            local_note: Some("local note".into()),
            tags: vec!["prod".into()],
        }
    );
}

#[test]
fn new_local_spec_takes_synced_fields_and_defaults_skipped_ones() {
    assert_eq!(
        Database::new_local_spec(&remote_spec()),
        DatabaseSpec {
            local_note: None,
            ..remote_spec()
        }
    );
}

#[test]
fn a_spec_whose_fields_are_all_skipped_is_never_copied() {
    let mut local = ScratchSpec {
        note: "mine".into(),
    };
    Scratch::copy_spec(
        &ScratchSpec {
            note: "theirs".into(),
        },
        &mut local,
    );
    assert_eq!(local.note, "mine");
    assert_eq!(
        Scratch::new_local_spec(&ScratchSpec {
            note: "theirs".into()
        })
        .note,
        ""
    );
}

#[test]
fn a_spec_without_skipped_fields_is_copied_whole() {
    let remote = CacheSpec { size: "5Gi".into() };
    let mut local = CacheSpec { size: "1Gi".into() };
    Cache::copy_spec(&remote, &mut local);
    assert_eq!(local, remote);
    assert_eq!(Cache::new_local_spec(&remote), remote);
}

#[test]
fn defaults_reflect_every_attribute() {
    let expected = SyncConfig::new("acme-database-sync")
        .remote_suffix("-eu")
        .remote_namespace_suffix("-mgmt")
        .local_namespace_suffix("-local")
        .namespace_prefix("tenant-")
        .secrets(["db-credentials", "db-ca"])
        .propagation(Propagation::Background)
        .on_remote_delete(OnRemoteDelete::NamespaceOrResource)
        .concurrency(4)
        .domain("acme.dev");
    assert_eq!(Database::defaults(), expected);
}

#[test]
fn defaults_without_attributes_are_sync_config_defaults_named_per_region_after_the_kind() {
    assert_eq!(Cache::defaults(), SyncConfig::per_region("cache-sync"));
    // No suffix: the name is the kind's, and nothing is adopted.
    assert_eq!(Cache::defaults().resolved(), SyncConfig::new("cache-sync"));
}

#[test]
fn builder_overrides_win_over_attributes() {
    let config = Database::defaults().remote_suffix("-us").concurrency(8);
    assert_eq!(config.remote_suffix, "-us");
    assert_eq!(config.concurrency, 8);
    assert_eq!(config.namespace_prefix, "tenant-");
}

#[test]
fn accessors_reach_spec_and_status_of_the_kube_generated_kind() {
    let mut db = Database::from_parts(ObjectMeta::default(), remote_spec());
    assert_eq!(db.status(), None);
    db.spec_mut().replicas = 5;
    assert_eq!(db.spec().replicas, 5);
    db.status = Some(DatabaseStatus { ready: true });
    assert_eq!(db.status(), Some(&DatabaseStatus { ready: true }));

    let cache = Cache::from_parts(ObjectMeta::default(), CacheSpec { size: "1Gi".into() });
    assert_eq!(cache.status(), None::<&()>);
}

#[test]
fn a_hand_written_resource_struct_is_copied_whole() {
    let remote = QueueSpec { depth: 7 };
    let mut local = QueueSpec { depth: 1 };
    Queue::copy_spec(&remote, &mut local);
    assert_eq!(local, remote);

    let mut queue = Queue::from_parts(ObjectMeta::default(), Queue::new_local_spec(&remote));
    assert_eq!(queue.spec().depth, 7);
    assert_eq!(queue.status(), None);
    queue.status = Some(QueueStatus { length: 2 });
    assert_eq!(queue.status().map(|s| s.length), Some(2));
    assert_eq!(
        Queue::defaults(),
        SyncConfig::per_region("queue-sync").remote_suffix("-us")
    );
    assert_eq!(
        Queue::defaults().effective_controller_name(),
        "queue-sync-us"
    );
}
