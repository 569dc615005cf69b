//! Which objects a run creates, in which namespaces, and which of them send a secret up.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::ObjectMeta;
use sync_tests::harness::{Database, DatabaseSpec};

use crate::child::SECRET;
use crate::local_controller::SECRET_LABEL;

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

    /// The name of object `j`.
    pub fn name(&self, j: usize) -> String {
        format!("db-{j:05}")
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
            &self.name(j),
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
                name: Some(SECRET.to_owned()),
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
