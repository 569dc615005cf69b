//! The example kind: a `Database` that a management plane orders and a region provisions.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

/// Name of the credentials Secret that the local controller creates next to each `Database`,
/// and that the agent sends up as `db-credentials<remote_suffix>`.
pub const CREDENTIALS: &str = "db-credentials";

/// A database ordered on the management cluster and provisioned in a region.
///
/// The management plane creates `Database` objects whose names end with the region's suffix
/// (`orders-eu`) in namespaces that start with `tenant-`, plus an empty Secret
/// `db-credentials-eu` next to each, which the agent fills from the region. One `Database` per
/// namespace, since the credentials Secret has a fixed name.
#[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
// Each `printcolumn(...)` is its own column, so repeating `type_ = "string"` is intended.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "acme.dev",
    version = "v1",
    kind = "Database",
    namespaced,
    status = "DatabaseStatus",
    shortname = "db",
    printcolumn(name = "Engine", type_ = "string", json_path = ".spec.engine"),
    printcolumn(name = "Storage", type_ = "string", json_path = ".spec.storage"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
#[sync(
    remote_suffix = "-eu",
    namespace_prefix = "tenant-",
    secrets("db-credentials"),
    propagation = "background",
    // `DatabaseStatus` carries `observedGeneration`: a new object's claim records its
    // generations too, one remote write fewer per new object.
    status_observed_generation
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The database engine.
    pub engine: Engine,
    /// The engine's major version, such as `"17"`.
    pub version: String,
    /// Size of the volume, such as `"10Gi"`.
    pub storage: String,
    /// How many instances serve the database.
    #[serde(default = "one")]
    pub replicas: i32,
    /// Chosen by the region (for example by an admission webhook), never by the management
    /// plane: it is never copied from the remote object and never reverted.
    #[sync(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

fn one() -> i32 {
    1
}

/// Database engines the region can provision.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL.
    Postgres,
    /// MySQL.
    Mysql,
}

impl Engine {
    /// The port the engine listens on.
    pub fn port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }
}

/// What the region reports about a `Database`; the agent copies it up to the management cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `Ready` condition, in the usual Kubernetes shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where clients connect, once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl DatabaseStatus {
    /// The condition of this type, if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A status condition, as `metav1.Condition` describes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, such as `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason for the last transition.
    pub reason: String,
    /// A human-readable message.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derive_fixes_the_example_defaults() {
        let c = Database::defaults();
        assert_eq!(c.remote_suffix, "-eu");
        assert_eq!(c.namespace_prefix, "tenant-");
        assert_eq!(c.secrets, [CREDENTIALS]);
        assert_eq!(c.controller_name, "database-sync");
        assert_eq!(c.effective_controller_name(), "database-sync-eu");
    }

    #[test]
    fn the_storage_class_stays_local() {
        let remote = DatabaseSpec {
            engine: Engine::Postgres,
            version: "17".into(),
            storage: "20Gi".into(),
            replicas: 2,
            storage_class: Some("remote-choice".into()),
        };
        let mut local = DatabaseSpec {
            storage: "10Gi".into(),
            storage_class: Some("fast-ssd".into()),
            ..remote.clone()
        };
        Database::copy_spec(&remote, &mut local);
        assert_eq!(local.storage, "20Gi");
        assert_eq!(local.storage_class.as_deref(), Some("fast-ssd"));
        assert_eq!(Database::new_local_spec(&remote).storage_class, None);
    }
}
