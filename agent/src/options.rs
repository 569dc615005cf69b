//! The options of one kind, after `RESOURCE:` or in a `--config` entry: one vocabulary for
//! both, checked by the rules sync-core applies when it runs.

use std::fmt;

use sync_core::{OnRemoteDelete, Propagation, SyncConfig};
use sync_names::Part;

use crate::resource::ResourceError;

/// The options of one kind, as given after `RESOURCE:` or in a `--config` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `remote-suffix`.
    pub remote_suffix: Option<String>,
    /// `remote-namespace-suffix`.
    pub remote_namespace_suffix: Option<String>,
    /// `local-namespace-suffix`.
    pub local_namespace_suffix: Option<String>,
    /// `namespace-prefix`.
    pub namespace_prefix: Option<String>,
    /// `secrets`: local secrets, controlled by a synced object, sent up.
    pub secrets: Vec<String>,
    /// `local-only`: JSON pointers to spec fields that are never copied down.
    pub local_only: Vec<String>,
    /// `controller-name`.
    pub controller_name: Option<String>,
    /// `adopt-claims-from`.
    pub adopt_claims_from: Vec<String>,
    /// `on-remote-delete`.
    pub on_remote_delete: Option<OnRemoteDelete>,
    /// `propagation`.
    pub propagation: Option<Propagation>,
    /// `concurrency`.
    pub concurrency: Option<usize>,
    /// `observed-generation`: the kind's status carries `observedGeneration`.
    pub observed_generation: Option<bool>,
    /// `streaming-lists`: the kind's watches list with streaming lists.
    pub streaming_lists: Option<bool>,
}

/// Every option a kind takes, with what it does: for `--help`, the README and error messages.
pub const OPTIONS: [(&str, &str); 13] = [
    (
        "remote-suffix",
        "remote names must end with it (overrides --remote-suffix)",
    ),
    (
        "remote-namespace-suffix",
        "remote namespaces must end with it (overrides --remote-namespace-suffix)",
    ),
    (
        "local-namespace-suffix",
        "appended to form the local namespace (overrides --local-namespace-suffix)",
    ),
    (
        "namespace-prefix",
        "remote namespaces must start with it (overrides --namespace-prefix)",
    ),
    (
        "secrets",
        "local secrets, controlled by a synced object, sent up to `<name><remote-suffix>`",
    ),
    (
        "local-only",
        "a spec field by JSON pointer, such as /spec/storageClass: never copied down",
    ),
    (
        "controller-name",
        "the kind's controller name (default: per region, `<kind>-sync` and the suffixes)",
    ),
    (
        "adopt-claims-from",
        "former controller names whose claims are adopted",
    ),
    (
        "on-remote-delete",
        "namespace, resource or orphan (overrides --on-remote-delete)",
    ),
    (
        "propagation",
        "foreground, background or orphan (overrides --propagation)",
    ),
    (
        "concurrency",
        "objects of this kind reconciled in parallel (overrides --concurrency)",
    ),
    (
        "observed-generation",
        "true when the kind's status has observedGeneration: a new object's claim also records \
         its generations, one remote write fewer (default false)",
    ),
    (
        "streaming-lists",
        "true to fill the kind's caches with streaming lists (WatchList; the API servers must \
         have it on) instead of paginated lists (default false)",
    ),
];

/// The values of `observed-generation` and `streaming-lists`.
pub const BOOLEAN: [(&str, bool); 2] = [("true", true), ("false", false)];

/// The options that take a list: `secrets=a+b`, or the key repeated.
pub(crate) const LISTS: [&str; 3] = ["secrets", "local-only", "adopt-claims-from"];

/// The names of `--on-remote-delete` and `--propagation`, and of the options alike.
pub const ON_REMOTE_DELETE: [(&str, OnRemoteDelete); 3] = [
    ("namespace", OnRemoteDelete::Namespace),
    ("resource", OnRemoteDelete::NamespaceOrResource),
    ("orphan", OnRemoteDelete::Orphan),
];
/// See [`ON_REMOTE_DELETE`].
pub const PROPAGATION: [(&str, Propagation); 3] = [
    ("foreground", Propagation::Foreground),
    ("background", Propagation::Background),
    ("orphan", Propagation::Orphan),
];

fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), ResourceError> {
    if slot.is_some() {
        return Err(ResourceError::Repeated {
            key: key.to_owned(),
        });
    }
    *slot = Some(value);
    Ok(())
}

fn named<T: Copy>(table: &[(&str, T)], key: &str, value: &str) -> Result<T, ResourceError> {
    table
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, t)| *t)
        .ok_or_else(|| ResourceError::Invalid {
            key: key.to_owned(),
            problem: format!(
                "`{value}` is not one of {}",
                table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        })
}

/// The value named `n`, for flags whose parser admits only the listed names.
pub(crate) fn named_value<T: Copy>(table: &[(&str, T)], n: &str) -> T {
    table
        .iter()
        .find(|(name, _)| *name == n)
        .unwrap_or(&table[0])
        .1
}

/// The name of `v` in `table`.
pub(crate) fn name_of<T: PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table.iter().find(|(_, t)| *t == v).map_or("", |(n, _)| n)
}

impl Options {
    /// Sets option `key` to `value` (for a list, adds `value`), checked by the rules sync-core
    /// applies when it runs, so a mistake shows before any cluster is contacted.
    ///
    /// # Errors
    ///
    /// When the key is unknown, a single-valued option is set twice, or the value breaks its
    /// rule.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ResourceError> {
        let invalid = |p: sync_names::Problem| ResourceError::Invalid {
            key: key.to_owned(),
            problem: p.to_string(),
        };
        let part = |part: Part| {
            sync_names::check_part(part, value)
                .map(|()| value.to_owned())
                .map_err(invalid)
        };
        match key {
            "remote-suffix" => once(&mut self.remote_suffix, key, part(Part::RemoteSuffix)?),
            "remote-namespace-suffix" => once(
                &mut self.remote_namespace_suffix,
                key,
                part(Part::RemoteNamespaceSuffix)?,
            ),
            "local-namespace-suffix" => once(
                &mut self.local_namespace_suffix,
                key,
                part(Part::LocalNamespaceSuffix)?,
            ),
            "namespace-prefix" => once(
                &mut self.namespace_prefix,
                key,
                part(Part::NamespacePrefix)?,
            ),
            "secrets" => {
                sync_names::check_secret_name(value).map_err(invalid)?;
                if self.secrets.iter().any(|s| s == value) {
                    return Err(ResourceError::Invalid {
                        key: key.to_owned(),
                        problem: format!("`{value}` is listed twice"),
                    });
                }
                self.secrets.push(value.to_owned());
                Ok(())
            }
            "local-only" => {
                check_pointer(value).map_err(|problem| ResourceError::Invalid {
                    key: key.to_owned(),
                    problem,
                })?;
                self.local_only.push(value.to_owned());
                Ok(())
            }
            "controller-name" => {
                sync_names::check_controller_name("controller-name", value).map_err(invalid)?;
                once(&mut self.controller_name, key, value.to_owned())
            }
            "adopt-claims-from" => {
                sync_names::check_controller_name("adopt-claims-from", value).map_err(invalid)?;
                self.adopt_claims_from.push(value.to_owned());
                Ok(())
            }
            "on-remote-delete" => {
                let v = named(&ON_REMOTE_DELETE, key, value)?;
                once(&mut self.on_remote_delete, key, v)
            }
            "propagation" => {
                let v = named(&PROPAGATION, key, value)?;
                once(&mut self.propagation, key, v)
            }
            "concurrency" => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ResourceError::Invalid {
                        key: key.to_owned(),
                        problem: format!("`{value}` is not a whole number of at least 1"),
                    })?;
                once(&mut self.concurrency, key, n)
            }
            "observed-generation" => {
                let v = named(&BOOLEAN, key, value)?;
                once(&mut self.observed_generation, key, v)
            }
            "streaming-lists" => {
                let v = named(&BOOLEAN, key, value)?;
                once(&mut self.streaming_lists, key, v)
            }
            _ => Err(ResourceError::UnknownOption {
                key: key.to_owned(),
            }),
        }
    }

    /// `config`, with these options over it.
    #[must_use]
    pub fn apply(&self, config: SyncConfig) -> SyncConfig {
        let mut c = config;
        if let Some(v) = &self.remote_suffix {
            c = c.remote_suffix(v);
        }
        if let Some(v) = &self.remote_namespace_suffix {
            c = c.remote_namespace_suffix(v);
        }
        if let Some(v) = &self.local_namespace_suffix {
            c = c.local_namespace_suffix(v);
        }
        if let Some(v) = &self.namespace_prefix {
            c = c.namespace_prefix(v);
        }
        if !self.secrets.is_empty() {
            c = c.secrets(&self.secrets);
        }
        if let Some(v) = &self.controller_name {
            c = c.controller_name(v);
        }
        if !self.adopt_claims_from.is_empty() {
            c = c.adopt_claims_from(&self.adopt_claims_from);
        }
        if let Some(v) = self.on_remote_delete {
            c = c.on_remote_delete(v);
        }
        if let Some(v) = self.propagation {
            c = c.propagation(v);
        }
        if let Some(v) = self.concurrency {
            c = c.concurrency(v);
        }
        if let Some(v) = self.observed_generation {
            c = c.status_observed_generation(v);
        }
        if let Some(v) = self.streaming_lists {
            c = c.streaming_lists(v);
        }
        c
    }
}

/// A local-only field: a JSON pointer (RFC 6901) into the spec, such as `/spec/storageClass`.
fn check_pointer(p: &str) -> Result<(), String> {
    let Some(rest) = p.strip_prefix("/spec/") else {
        return Err(format!(
            "`{p}` must be a JSON pointer into the spec, starting with `/spec/`, such as \
             `/spec/storageClass`"
        ));
    };
    for token in rest.split('/') {
        if token.is_empty() {
            return Err(format!("`{p}` has an empty path segment"));
        }
        let mut chars = token.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(format!(
                    "`{p}`: `~` must be followed by 0 (for `~`) or 1 (for `/`)"
                ));
            }
        }
    }
    Ok(())
}

impl fmt::Display for Options {
    /// The options as `--resource` takes them after the colon, every one set:
    /// `secrets=a+b,local-only=/spec/x`; empty without any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self;
        let single = [
            ("remote-suffix", o.remote_suffix.clone()),
            ("remote-namespace-suffix", o.remote_namespace_suffix.clone()),
            ("local-namespace-suffix", o.local_namespace_suffix.clone()),
            ("namespace-prefix", o.namespace_prefix.clone()),
            ("controller-name", o.controller_name.clone()),
            (
                "on-remote-delete",
                o.on_remote_delete
                    .map(|v| name_of(&ON_REMOTE_DELETE, v).to_owned()),
            ),
            (
                "propagation",
                o.propagation.map(|v| name_of(&PROPAGATION, v).to_owned()),
            ),
            ("concurrency", o.concurrency.map(|n| n.to_string())),
            (
                "observed-generation",
                o.observed_generation
                    .map(|v| name_of(&BOOLEAN, v).to_owned()),
            ),
            (
                "streaming-lists",
                o.streaming_lists.map(|v| name_of(&BOOLEAN, v).to_owned()),
            ),
        ];
        let lists = [
            ("secrets", &o.secrets),
            ("local-only", &o.local_only),
            ("adopt-claims-from", &o.adopt_claims_from),
        ];
        let options: Vec<String> = single
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .chain(
                lists
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| format!("{k}={}", v.join("+"))),
            )
            .collect();
        f.write_str(&options.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;

    fn parse(s: &str) -> Result<Resource, String> {
        s.parse::<Resource>().map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_suffix_overrides_the_shared_one() {
        let r = parse("databases.v1.acme.dev:remote-suffix=").unwrap();
        assert_eq!(r.options.remote_suffix.as_deref(), Some(""));
        let shared = SyncConfig::new("database-sync").remote_suffix("-eu");
        assert_eq!(r.options.apply(shared).remote_suffix, "");
    }

    #[test]
    fn options_override_the_shared_configuration() {
        let shared = SyncConfig::new("x")
            .remote_suffix("-eu")
            .namespace_prefix("tenant-")
            .concurrency(8);
        let r = parse("databases.v1.acme.dev:namespace-prefix=team-,secrets=db").unwrap();
        let c = r.options.apply(shared);
        assert_eq!(c.remote_suffix, "-eu");
        assert_eq!(c.namespace_prefix, "team-");
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.secrets, ["db"]);
    }
}
