//! The rules a configuration must follow before it runs: the same as the derive's, from
//! `sync-names`.

use super::SyncConfig;
use crate::error::ConfigError;

impl SyncConfig {
    /// Refuses a configuration that can never work, by the rules `#[derive(Syncable)]` applies
    /// at compile time (both call `sync-names`), so an attribute and a run-time override agree.
    /// Call it on a [resolved](SyncConfig::resolved) configuration.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        use sync_names::Part;
        fn invalid(
            field: &'static str,
            value: &str,
        ) -> impl FnOnce(sync_names::Problem) -> ConfigError {
            let value = value.to_owned();
            move |p| ConfigError::Invalid {
                field,
                value,
                problem: p.to_string(),
            }
        }
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        sync_names::check_domain(&self.domain).map_err(invalid("domain", &self.domain))?;
        for (part, v) in [
            (Part::RemoteSuffix, &self.remote_suffix),
            (Part::RemoteNamespaceSuffix, &self.remote_namespace_suffix),
            (Part::LocalNamespaceSuffix, &self.local_namespace_suffix),
            (Part::NamespacePrefix, &self.namespace_prefix),
        ] {
            sync_names::check_part(part, v).map_err(invalid(part.key(), v))?;
        }
        for (part, v) in [
            (Part::RemoteNamespaceSuffix, &self.remote_namespace_suffix),
            (Part::LocalNamespaceSuffix, &self.local_namespace_suffix),
        ] {
            sync_names::check_namespace_room(&self.namespace_prefix, part, v)
                .map_err(invalid(part.key(), v))?;
        }
        let name = &self.controller_name;
        sync_names::check_controller_name("controller_name", name)
            .map_err(invalid("controller_name", name))?;
        for p in &self.predecessors {
            sync_names::check_controller_name("predecessors", p)
                .map_err(invalid("predecessors", p))?;
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.secrets {
            sync_names::check_secret_name(s).map_err(invalid("secrets", s))?;
            sync_names::check_remote_secret_name(s, &self.remote_suffix)
                .map_err(invalid("secrets", s))?;
            if !seen.insert(s) {
                return Err(ConfigError::DuplicateSecret { value: s.clone() });
            }
        }
        for (k, v) in &self.namespace_labels {
            sync_names::check_metadata_key("namespace label", k)
                .and_then(|()| sync_names::check_label_value(k, v))
                .map_err(invalid("namespace_labels", k))?;
        }
        let reserved = format!("{}/", self.domain);
        for k in self.namespace_annotations.keys() {
            sync_names::check_metadata_key("namespace annotation", k)
                .map_err(invalid("namespace_annotations", k))?;
            if k.starts_with(&reserved) {
                return Err(ConfigError::Invalid {
                    field: "namespace_annotations",
                    value: k.clone(),
                    problem: format!(
                        "namespace annotation key {k:?} is in the controller's domain \
                         {:?}, whose keys it writes itself",
                        self.domain
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    #[test]
    fn invalid_configuration_is_refused() {
        let v = |c: SyncConfig| c.resolved().validate();
        assert!(v(SyncConfig::new("x")).is_ok());
        assert_eq!(
            v(SyncConfig::new("x").remote_suffix("-EU")),
            Err(ConfigError::Invalid {
                field: "remote_suffix",
                value: "-EU".into(),
                problem: "`remote_suffix` must contain only lowercase letters, digits, '-' and '.'"
                    .into(),
            })
        );
        assert!(
            v(SyncConfig::new("x")
                .namespace_label("pod-security.kubernetes.io/enforce", "restricted")
                .namespace_annotation("acme.dev/tenant", "a b"))
            .is_ok()
        );
        for bad in [
            SyncConfig::new("x").namespace_label("tenant", "not ok"),
            SyncConfig::new("x").namespace_label("-tenant", "a"),
            SyncConfig::new("x").namespace_annotation("cloud.teleport.dev/sync-owner", "me"),
        ] {
            assert!(matches!(v(bad), Err(ConfigError::Invalid { .. })));
        }
        assert_eq!(
            v(SyncConfig::new("x").secrets(["a", "a"])),
            Err(ConfigError::DuplicateSecret { value: "a".into() })
        );
        assert!(matches!(
            v(SyncConfig::new("x").secrets(["A"])),
            Err(ConfigError::Invalid {
                field: "secrets",
                ..
            })
        ));
        assert!(matches!(
            v(SyncConfig::new("x").domain("not a domain")),
            Err(ConfigError::Invalid {
                field: "domain",
                ..
            })
        ));
        assert!(matches!(
            v(SyncConfig::new("x").adopt_claims_from(["Old"])),
            Err(ConfigError::Invalid {
                field: "predecessors",
                ..
            })
        ));
    }

    /// One configuration with `key` set to `value`, as the builder sets it.
    fn with(key: &str, value: &str) -> SyncConfig {
        let c = SyncConfig::new("x");
        match key {
            "remote_suffix" => c.remote_suffix(value),
            "remote_namespace_suffix" => c.remote_namespace_suffix(value),
            "local_namespace_suffix" => c.local_namespace_suffix(value),
            "namespace_prefix" => c.namespace_prefix(value),
            "secrets" => c.secrets([value]),
            "domain" => c.domain(value),
            "controller_name" => c.controller_name(value),
            "predecessors" => c.adopt_claims_from([value]),
            other => panic!("no case key {other}"),
        }
    }

    /// The table `sync-derive`'s tests run against the attributes: the runtime accepts exactly
    /// what the derive accepts.
    #[test]
    fn the_runtime_accepts_exactly_the_values_the_derive_accepts() {
        for case in sync_names::cases::all() {
            let got = with(case.key, &case.value).resolved().validate();
            assert_eq!(got.is_ok(), case.valid, "{case:?}: {got:?}");
        }
    }

    #[test]
    fn a_per_region_default_adopts_its_base_name() {
        let c = SyncConfig::per_region("database-sync")
            .remote_suffix("-eu")
            .resolved();
        assert_eq!(c.controller_name, "database-sync-eu");
        assert_eq!(c.predecessors, ["database-sync"]);
        assert!(c.is_own_name("database-sync") && c.is_own_name("database-sync-eu"));
        assert!(!c.is_own_name("database-sync-us"));
        // A name set explicitly is exact: nothing is adopted unless listed.
        let c = SyncConfig::per_region("database-sync")
            .remote_suffix("-eu")
            .controller_name("db")
            .resolved();
        assert_eq!(c.controller_name, "db");
        assert!(c.predecessors.is_empty());
        // The own name listed as a predecessor is dropped, and duplicates too.
        let c = SyncConfig::new("a")
            .adopt_claims_from(["a", "b", "b"])
            .resolved();
        assert_eq!(c.predecessors, ["b"]);
    }
}
