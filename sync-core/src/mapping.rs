use std::fmt;

use crate::config::SyncConfig;

/// The namespace and name of an object on one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from a namespace and a name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a remote object is not synced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unmapped {
    /// The remote name lacks `remote_suffix`: the object belongs to another region. Not an
    /// error, and not reported.
    #[error("name {0:?} does not end with the remote suffix")]
    OtherName(String),
    /// The remote namespace lacks `namespace_prefix` or `remote_namespace_suffix`: not ours
    /// either.
    #[error("namespace {0:?} does not match the namespace prefix and suffix")]
    OtherNamespace(String),
    /// The mapped local name is empty or not a DNS-1123 subdomain.
    #[error("local name {0:?} mapped from the remote name is not a valid Kubernetes name")]
    InvalidName(String),
    /// The mapped local namespace is empty or not a DNS-1123 label.
    #[error("local namespace {0:?} mapped from the remote namespace is not a valid namespace name")]
    InvalidNamespace(String),
}

impl Unmapped {
    /// Whether the object is someone else's (silently ignored), rather than ours but unusable
    /// (reported with a Warning event).
    pub fn is_foreign(&self) -> bool {
        matches!(self, Unmapped::OtherName(_) | Unmapped::OtherNamespace(_))
    }
}

/// The name mapping between remote and local objects (SPEC §1).
///
/// - local namespace = remote namespace without `remote_namespace_suffix`, plus
///   `local_namespace_suffix`;
/// - local name = remote name without `remote_suffix`.
///
/// # Guarantees
///
/// [`Mapping::to_remote`] is the exact inverse of [`Mapping::to_local`] on every key that maps.
///
/// # Example
///
/// ```
/// use sync_core::{Mapping, ObjectKey, SyncConfig};
///
/// let config = SyncConfig::new("db").remote_suffix("-eu").local_namespace_suffix("-sync");
/// let mapping = Mapping::new(&config);
/// let local = mapping.to_local(&ObjectKey::new("tenant-a", "orders-eu")).unwrap();
/// assert_eq!(local, ObjectKey::new("tenant-a-sync", "orders"));
/// assert_eq!(mapping.to_remote(&local), Some(ObjectKey::new("tenant-a", "orders-eu")));
/// ```
#[derive(Clone, Debug)]
pub struct Mapping {
    remote_suffix: String,
    remote_namespace_suffix: String,
    local_namespace_suffix: String,
    namespace_prefix: String,
}

impl Mapping {
    /// The mapping a configuration describes.
    pub fn new(config: &SyncConfig) -> Self {
        Mapping {
            remote_suffix: config.remote_suffix.clone(),
            remote_namespace_suffix: config.remote_namespace_suffix.clone(),
            local_namespace_suffix: config.local_namespace_suffix.clone(),
            namespace_prefix: config.namespace_prefix.clone(),
        }
    }

    /// The local key of a remote object.
    ///
    /// # Errors
    ///
    /// [`Unmapped`] when the remote object is not ours, or maps to an invalid name.
    pub fn to_local(&self, remote: &ObjectKey) -> Result<ObjectKey, Unmapped> {
        let name = remote
            .name
            .strip_suffix(self.remote_suffix.as_str())
            .ok_or_else(|| Unmapped::OtherName(remote.name.clone()))?;
        if !remote.namespace.starts_with(&self.namespace_prefix) {
            return Err(Unmapped::OtherNamespace(remote.namespace.clone()));
        }
        let base = remote
            .namespace
            .strip_suffix(self.remote_namespace_suffix.as_str())
            .ok_or_else(|| Unmapped::OtherNamespace(remote.namespace.clone()))?;
        // The prefix and the suffix must not overlap: "tenant-" with suffix "-eu" on
        // "tenant-eu" would leave no base at all.
        if base.len() < self.namespace_prefix.len() {
            return Err(Unmapped::OtherNamespace(remote.namespace.clone()));
        }
        let namespace = format!("{base}{}", self.local_namespace_suffix);
        if !is_dns1123_subdomain(name) {
            return Err(Unmapped::InvalidName(name.to_owned()));
        }
        if !is_dns1123_label(&namespace) {
            return Err(Unmapped::InvalidNamespace(namespace));
        }
        Ok(ObjectKey {
            namespace,
            name: name.to_owned(),
        })
    }

    /// The remote key of a local object, or `None` when no remote object maps to it.
    pub fn to_remote(&self, local: &ObjectKey) -> Option<ObjectKey> {
        let base = local
            .namespace
            .strip_suffix(self.local_namespace_suffix.as_str())?;
        let remote = ObjectKey {
            namespace: format!("{base}{}", self.remote_namespace_suffix),
            name: format!("{}{}", local.name, self.remote_suffix),
        };
        // Only keys in the image of `to_local` have a remote: this keeps the round trip exact.
        (self.to_local(&remote).as_ref() == Ok(local)).then_some(remote)
    }

    /// The remote name of a local secret.
    pub fn remote_secret_name(&self, local_secret: &str) -> String {
        format!("{local_secret}{}", self.remote_suffix)
    }
}

/// Whether `s` is a DNS-1123 label: at most 63 lowercase alphanumerics or '-', starting and
/// ending with an alphanumeric. Namespaces must be labels.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1123 subdomain: at most 253 characters of dot-separated labels.
/// Names of custom resources and secrets must be subdomains.
pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mapping(rs: &str, rns: &str, lns: &str, prefix: &str) -> Mapping {
        Mapping::new(
            &SyncConfig::new("t")
                .remote_suffix(rs)
                .remote_namespace_suffix(rns)
                .local_namespace_suffix(lns)
                .namespace_prefix(prefix),
        )
    }

    #[test]
    fn default_mapping_is_the_identity() {
        let m = mapping("", "", "", "");
        let k = ObjectKey::new("ns", "a");
        assert_eq!(m.to_local(&k), Ok(k.clone()));
        assert_eq!(m.to_remote(&k), Some(k));
    }

    #[test]
    fn foreign_names_and_namespaces_are_ignored_not_reported() {
        let m = mapping("-eu", "-r", "", "tenant-");
        let e = m
            .to_local(&ObjectKey::new("tenant-a-r", "db-us"))
            .unwrap_err();
        assert!(e.is_foreign(), "{e:?}");
        let e = m
            .to_local(&ObjectKey::new("other-a-r", "db-eu"))
            .unwrap_err();
        assert!(e.is_foreign(), "{e:?}");
        let e = m
            .to_local(&ObjectKey::new("tenant-a", "db-eu"))
            .unwrap_err();
        assert!(e.is_foreign(), "{e:?}");
    }

    #[test]
    fn a_name_equal_to_the_suffix_is_reported_as_invalid() {
        let m = mapping("-eu", "", "", "");
        assert_eq!(
            m.to_local(&ObjectKey::new("ns", "-eu")),
            Err(Unmapped::InvalidName(String::new()))
        );
        assert_eq!(
            m.to_local(&ObjectKey::new("ns", "db--eu")),
            Err(Unmapped::InvalidName("db-".into()))
        );
    }

    #[test]
    fn a_namespace_that_grows_too_long_is_reported_as_invalid() {
        let m = mapping("", "", "-regional-copy", "");
        let ns = "n".repeat(60);
        assert!(matches!(
            m.to_local(&ObjectKey::new(ns, "a")),
            Err(Unmapped::InvalidNamespace(_))
        ));
    }

    #[test]
    fn prefix_and_namespace_suffix_must_not_overlap() {
        let m = mapping("", "-eu", "", "tenant-eu");
        assert!(
            m.to_local(&ObjectKey::new("tenant-eu", "a"))
                .unwrap_err()
                .is_foreign()
        );
    }

    #[test]
    fn local_objects_outside_the_mapping_have_no_remote() {
        let m = mapping("-eu", "", "-sync", "tenant-");
        assert_eq!(m.to_remote(&ObjectKey::new("tenant-a", "db")), None);
        assert_eq!(m.to_remote(&ObjectKey::new("other-sync", "db")), None);
        assert_eq!(
            m.to_remote(&ObjectKey::new("tenant-a-sync", "db")),
            Some(ObjectKey::new("tenant-a", "db-eu"))
        );
    }

    #[test]
    fn remote_secret_names_carry_the_remote_suffix() {
        assert_eq!(
            mapping("-eu", "", "", "").remote_secret_name("creds"),
            "creds-eu"
        );
    }

    fn part() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z0-9-]{1,6}"]
    }

    proptest! {
        #[test]
        fn mapping_round_trips_exactly(
            rs in part(), rns in part(), lns in part(), prefix in part(),
            ns in "[a-z0-9-]{0,70}", name in "[a-z0-9.-]{0,30}",
        ) {
            let m = mapping(&rs, &rns, &lns, &prefix);
            let remote = ObjectKey::new(ns, name);
            if let Ok(local) = m.to_local(&remote) {
                prop_assert!(is_dns1123_label(&local.namespace));
                prop_assert!(is_dns1123_subdomain(&local.name));
                prop_assert_eq!(m.to_remote(&local), Some(remote));
            }
        }

        #[test]
        fn reverse_mapping_round_trips_exactly(
            rs in part(), rns in part(), lns in part(), prefix in part(),
            ns in "[a-z0-9-]{0,70}", name in "[a-z0-9.-]{0,30}",
        ) {
            let m = mapping(&rs, &rns, &lns, &prefix);
            let local = ObjectKey::new(ns, name);
            if let Some(remote) = m.to_remote(&local) {
                prop_assert_eq!(m.to_local(&remote), Ok(local));
            }
        }

        #[test]
        fn names_that_carry_the_suffixes_map_exactly_when_the_result_is_valid(
            rs in part(), rns in part(), lns in part(), prefix in part(),
            base in "[a-z0-9.-]{0,24}", ns_base in "[a-z0-9-]{0,40}",
        ) {
            // Built as base + suffix, so the suffixes are always there and stripping them is
            // really exercised (arbitrary strings rarely end with a generated suffix).
            let m = mapping(&rs, &rns, &lns, &prefix);
            let remote = ObjectKey::new(format!("{prefix}{ns_base}{rns}"), format!("{base}{rs}"));
            let namespace = format!("{prefix}{ns_base}{lns}");
            match m.to_local(&remote) {
                Ok(local) => {
                    prop_assert_eq!(&local.name, &base);
                    prop_assert_eq!(&local.namespace, &namespace);
                    prop_assert_eq!(m.to_remote(&local), Some(remote));
                }
                Err(Unmapped::InvalidName(n)) => {
                    prop_assert_eq!(&n, &base);
                    prop_assert!(!is_dns1123_subdomain(&base));
                }
                Err(Unmapped::InvalidNamespace(n)) => {
                    prop_assert_eq!(&n, &namespace);
                    prop_assert!(is_dns1123_subdomain(&base) && !is_dns1123_label(&namespace));
                }
                Err(e) => prop_assert!(false, "{remote} carries every affix yet is {e:?}"),
            }
        }

        #[test]
        fn shards_with_suffixes_that_do_not_end_one_another_never_share_an_object(
            a in "[a-z0-9-]{1,6}", b in "[a-z0-9-]{1,6}",
            base in "[a-z0-9]{1,10}", ns in "[a-z0-9]{1,10}",
        ) {
            let (ma, mb) = (mapping(&a, "", "", ""), mapping(&b, "", "", ""));
            for name in [format!("{base}{a}"), format!("{base}{b}"), format!("{base}{a}{b}"), format!("{base}{b}{a}")] {
                let key = ObjectKey::new(ns.clone(), name);
                let both = ma.to_local(&key).is_ok() && mb.to_local(&key).is_ok();
                // Only overlapping suffixes ("-eu" and "-west-eu") can both match: the claim
                // annotation tells such controllers apart.
                prop_assert!(!both || a.ends_with(&b) || b.ends_with(&a), "{key} maps under {a:?} and {b:?}");
            }
        }

        #[test]
        fn mapping_never_panics(ns in ".{0,80}", name in ".{0,80}", rs in ".{0,4}", lns in ".{0,4}") {
            let m = mapping(&rs, "", &lns, "");
            let _ = m.to_local(&ObjectKey::new(ns.clone(), name.clone()));
            let _ = m.to_remote(&ObjectKey::new(ns, name));
        }
    }
}
