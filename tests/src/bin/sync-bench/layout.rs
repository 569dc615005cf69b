//! Which objects a run creates, in which namespaces, and which of them send a secret up.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::ObjectMeta;
use sync_tests::harness::{Database, DatabaseSpec};

use crate::child::SECRET;
use crate::local_controller::SECRET_LABEL;

/// The controller's `remote_suffix`: remote names end with it, local names do not.
pub const REMOTE_SUFFIX: &str = "-eu";

/// The suffix of the objects of another region (`--foreign-factor`): never the controller's.
pub const FOREIGN_SUFFIX: &str = "-us";

/// Prefix of the status probes' names (`--status-probes`), which live in a namespace of their
/// own so that their warm-up creates none of the run's namespaces.
pub const PROBE_PREFIX: &str = "probe-";

/// N objects spread round-robin over M namespaces; the first object of each of the first S
/// namespaces sends a secret up (a secret name is unique per namespace, so at most one object
/// per namespace can own it).
#[derive(Clone, Debug)]
pub struct Layout {
    /// Prefix of every namespace of the run.
    pub prefix: String,
    /// N.
    pub objects: usize,
    /// M.
    pub namespaces: usize,
    /// S.
    pub secrets: usize,
}

impl Layout {
    /// A layout with `share` of the objects (at most one per namespace) sending a secret.
    pub fn new(prefix: &str, objects: usize, namespaces: usize, share: f64) -> Layout {
        let namespaces = namespaces.clamp(1, objects.max(1));
        let secrets = ((objects as f64 * share).round() as usize).min(namespaces);
        Layout {
            prefix: prefix.to_owned(),
            objects,
            namespaces,
            secrets,
        }
    }

    /// The same shape under another prefix, for a ceiling run on fresh namespaces.
    pub fn with_prefix(&self, prefix: &str) -> Layout {
        Layout {
            prefix: prefix.to_owned(),
            ..self.clone()
        }
    }

    /// Namespace `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}-{i:05}", self.prefix)
    }

    /// The namespace of object `j`.
    pub fn namespace_of(&self, j: usize) -> String {
        self.namespace(j % self.namespaces)
    }

    /// The local name of object `j`.
    pub fn name(&self, j: usize) -> String {
        format!("db-{j:05}")
    }

    /// The remote name of object `j`: the local name and the controller's suffix.
    pub fn remote_name(&self, j: usize) -> String {
        format!("{}{REMOTE_SUFFIX}", self.name(j))
    }

    /// The remote name of the secret sent up.
    pub fn remote_secret_name() -> String {
        format!("{SECRET}{REMOTE_SUFFIX}")
    }

    /// The namespace of the status probes.
    pub fn probe_namespace(&self) -> String {
        format!("{}-probes", self.prefix)
    }

    /// The local name of status probe `k`.
    pub fn probe_name(k: usize) -> String {
        format!("{PROBE_PREFIX}{k:03}")
    }

    /// Status probe `k` as the management plane creates it, in [`Layout::probe_namespace`].
    pub fn probe_object(&self, k: usize) -> Database {
        let mut db = self.remote_object(0);
        db.metadata.name = Some(format!("{}{REMOTE_SUFFIX}", Self::probe_name(k)));
        db.metadata.namespace = Some(self.probe_namespace());
        db.metadata.labels =
            Some([("app.kubernetes.io/name".to_owned(), "bench".to_owned())].into());
        db
    }

    /// Foreign object `j`: of another region (its name ends with [`FOREIGN_SUFFIX`]), in the
    /// run's namespaces, round-robin.
    pub fn foreign_object(&self, j: usize) -> Database {
        let mut db = self.remote_object(j % self.objects.max(1));
        db.metadata.name = Some(format!("other-{j:06}{FOREIGN_SUFFIX}"));
        db.metadata.namespace = Some(self.namespace_of(j));
        db.metadata.labels =
            Some([("app.kubernetes.io/name".to_owned(), "bench".to_owned())].into());
        db
    }

    /// Whether object `j` sends a secret up.
    pub fn has_secret(&self, j: usize) -> bool {
        j < self.secrets
    }

    /// The remote object `j` as the management plane creates it. `replicas` is left out, so
    /// the local CRD's default fills it in: the "local defaulting causes no write loop" case.
    pub fn remote_object(&self, j: usize) -> Database {
        let mut labels =
            BTreeMap::from([("app.kubernetes.io/name".to_owned(), "bench".to_owned())]);
        if self.has_secret(j) {
            labels.insert(SECRET_LABEL.to_owned(), "true".to_owned());
        }
        let mut db = Database::new(
            &self.remote_name(j),
            DatabaseSpec {
                size: "small".to_owned(),
                replicas: None,
                local_note: None,
            },
        );
        db.metadata.namespace = Some(self.namespace_of(j));
        db.metadata.labels = Some(labels);
        db
    }

    /// A namespace of the run.
    pub fn namespace_object(&self, i: usize) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace(i)),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    /// The remote secret that must exist before a local one can be sent up, in namespace `i`.
    pub fn remote_secret(&self, i: usize) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(Self::remote_secret_name()),
                namespace: Some(self.namespace(i)),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn secrets_are_at_most_one_per_namespace_and_in_distinct_namespaces() {
        let l = Layout::new("b", 1000, 100, 0.1);
        assert_eq!(l.secrets, 100);
        let ns: std::collections::HashSet<String> = (0..1000)
            .filter(|&j| l.has_secret(j))
            .map(|j| l.namespace_of(j))
            .collect();
        assert_eq!(ns.len(), 100);
        assert_eq!(Layout::new("b", 50, 2, 0.5).secrets, 2);
    }
}
