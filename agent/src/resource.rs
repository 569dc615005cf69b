//! Which kinds are synced, and how: `--resource RESOURCE[:OPTIONS]` and the entries of
//! `--config`, both parsed here into [`Resource`], with one vocabulary of options.

use std::fmt;
use std::str::FromStr;

use sync_core::{OnRemoteDelete, Propagation, SyncConfig};
use sync_names::Part;

/// A kind named as `PLURAL.VERSION.GROUP`, such as `databases.v1.acme.dev`: what the API
/// server serves at `/apis/GROUP/VERSION/PLURAL`. RBAC needs only the plural and the group;
/// the kind's name and scope come from discovery when the agent starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceName {
    /// The plural, such as `databases`.
    pub plural: String,
    /// The version, such as `v1`.
    pub version: String,
    /// The API group, such as `acme.dev`.
    pub group: String,
}

impl ResourceName {
    /// `GROUP/VERSION`, as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.plural, self.version, self.group)
    }
}

/// One synced kind: its name and its own options, which override the shared flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// The kind.
    pub name: ResourceName,
    /// Its options; `None` keeps the shared value.
    pub options: Options,
}

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
}

/// Every option a kind takes, with what it does: for `--help`, the README and error messages.
pub const OPTIONS: [(&str, &str); 11] = [
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
];

/// The options that take a list: `secrets=a+b`, or the key repeated.
const LISTS: [&str; 3] = ["secrets", "local-only", "adopt-claims-from"];

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

/// Why a `--resource` value or a `--config` entry is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourceError {
    /// Not three dot-separated parts with a version in the middle.
    #[error(
        "`{value}` is not PLURAL.VERSION.GROUP, such as `databases.v1.acme.dev` \
         (the CRD's spec.names.plural, a served version, and spec.group)"
    )]
    Malformed {
        /// The resource as given.
        value: String,
    },
    /// A part of the name breaks the API server's rules.
    #[error("`{value}`: {problem}")]
    BadName {
        /// The resource as given.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// An option that does not exist.
    #[error("unknown option `{key}`; the options are: {}", option_names())]
    UnknownOption {
        /// The key as given.
        key: String,
    },
    /// Not `key=value`.
    #[error("option `{option}` must be written `KEY=VALUE` (options are separated by ',')")]
    NotKeyValue {
        /// The text as given.
        option: String,
    },
    /// Nothing between two commas, or after the colon.
    #[error("an empty option: write `RESOURCE:KEY=VALUE,KEY=VALUE`, with no ',' too many")]
    EmptyOption,
    /// A single-valued option given twice.
    #[error("option `{key}` is given twice")]
    Repeated {
        /// The key.
        key: String,
    },
    /// A value that breaks its rule.
    #[error("option `{key}`: {problem}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The same kind listed twice.
    #[error("`{name}` is listed twice; give each kind once, with all its options")]
    Duplicate {
        /// The kind.
        name: ResourceName,
    },
}

fn option_names() -> String {
    OPTIONS.map(|(k, _)| k).join(", ")
}

impl FromStr for ResourceName {
    type Err = ResourceError;

    fn from_str(value: &str) -> Result<Self, ResourceError> {
        let malformed = || ResourceError::Malformed {
            value: value.to_owned(),
        };
        let bad = |problem: String| ResourceError::BadName {
            value: value.to_owned(),
            problem,
        };
        let mut parts = value.splitn(3, '.');
        let (Some(plural), Some(version), Some(group)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if !is_version(version) {
            return Err(malformed());
        }
        if !is_label(plural) {
            return Err(bad(format!(
                "the plural `{plural}` must be a lowercase DNS label, such as `databases`"
            )));
        }
        if !group.split('.').all(is_label) || group.len() > 253 {
            return Err(bad(format!(
                "the group `{group}` must be a lowercase DNS subdomain, such as `acme.dev`"
            )));
        }
        Ok(ResourceName {
            plural: plural.to_owned(),
            version: version.to_owned(),
            group: group.to_owned(),
        })
    }
}

/// `v1`, `v2beta1`, `v1alpha3`: what a CRD's version names look like in practice.
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (major, tail) = rest.split_at(digits);
    if major.is_empty() || major.starts_with('0') {
        return false;
    }
    let level = tail
        .strip_prefix("alpha")
        .or_else(|| tail.strip_prefix("beta"));
    match level {
        None => tail.is_empty(),
        Some(n) => !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !n.starts_with('0'),
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl FromStr for Resource {
    type Err = ResourceError;

    /// `PLURAL.VERSION.GROUP[:KEY=VALUE,...]`.
    fn from_str(value: &str) -> Result<Self, ResourceError> {
        let (name, options) = match value.split_once(':') {
            Some((name, options)) => (name, Some(options)),
            None => (value, None),
        };
        let mut resource = Resource {
            name: name.parse()?,
            options: Options::default(),
        };
        for option in options.into_iter().flat_map(|o| o.split(',')) {
            let Some((key, v)) = option.split_once('=') else {
                return Err(match option {
                    "" => ResourceError::EmptyOption,
                    _ if OPTIONS.iter().any(|(k, _)| *k == option) => ResourceError::NotKeyValue {
                        option: option.to_owned(),
                    },
                    _ => ResourceError::UnknownOption {
                        key: option.to_owned(),
                    },
                });
            };
            if LISTS.contains(&key) {
                for item in v.split('+').filter(|s| !s.is_empty()) {
                    resource.options.set(key, item)?;
                }
            } else {
                resource.options.set(key, v)?;
            }
        }
        Ok(resource)
    }
}

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

impl fmt::Display for Resource {
    /// The form `--resource` takes, with every option set: `databases.v1.acme.dev:secrets=a+b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
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
        write!(f, "{}", self.name)?;
        if !options.is_empty() {
            write!(f, ":{}", options.join(","))?;
        }
        Ok(())
    }
}

/// Refuses a kind listed twice.
///
/// # Errors
///
/// [`ResourceError::Duplicate`], naming the first kind listed twice (any version).
pub fn check_distinct(resources: &[Resource]) -> Result<(), ResourceError> {
    let mut seen = std::collections::HashSet::new();
    for r in resources {
        // Two versions of one kind are the same objects: one agent must not sync them twice.
        if !seen.insert((&r.name.plural, &r.name.group)) {
            return Err(ResourceError::Duplicate {
                name: r.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Resource, String> {
        s.parse::<Resource>().map_err(|e| e.to_string())
    }

    #[test]
    fn a_plain_resource_has_three_parts_and_no_options() {
        let r = parse("databases.v1.acme.dev").unwrap();
        assert_eq!(r.name.plural, "databases");
        assert_eq!(r.name.version, "v1");
        assert_eq!(r.name.group, "acme.dev");
        assert_eq!(r.name.api_version(), "acme.dev/v1");
        assert_eq!(r.options, Options::default());
        let beta = parse("caches.v2beta1.cache.example.com").unwrap();
        assert_eq!(beta.name.version, "v2beta1");
        assert_eq!(beta.name.group, "cache.example.com");
    }

    #[test]
    fn options_follow_a_colon_and_lists_join_with_plus_or_repeat() {
        let r = parse(
            "databases.v1.acme.dev:remote-suffix=-eu,secrets=db-credentials+tls,\
             local-only=/spec/storageClass,secrets=extra,controller-name=db-sync,\
             propagation=background,on-remote-delete=orphan,concurrency=4,\
             adopt-claims-from=old-db-sync,namespace-prefix=tenant-",
        )
        .unwrap();
        let o = &r.options;
        assert_eq!(o.remote_suffix.as_deref(), Some("-eu"));
        assert_eq!(o.secrets, ["db-credentials", "tls", "extra"]);
        assert_eq!(o.local_only, ["/spec/storageClass"]);
        assert_eq!(o.controller_name.as_deref(), Some("db-sync"));
        assert_eq!(o.propagation, Some(Propagation::Background));
        assert_eq!(o.on_remote_delete, Some(OnRemoteDelete::Orphan));
        assert_eq!(o.concurrency, Some(4));
        assert_eq!(o.adopt_claims_from, ["old-db-sync"]);
        // Printed back, it parses to the same thing.
        assert_eq!(parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn an_empty_suffix_overrides_the_shared_one() {
        let r = parse("databases.v1.acme.dev:remote-suffix=").unwrap();
        assert_eq!(r.options.remote_suffix.as_deref(), Some(""));
        let shared = SyncConfig::new("database-sync").remote_suffix("-eu");
        assert_eq!(r.options.apply(shared).remote_suffix, "");
    }

    #[test]
    fn malformed_resources_say_what_the_form_is() {
        for bad in [
            "databases",
            "databases.acme.dev",
            "databases.acme",
            "",
            "databases.v1",
            "Databases.v1.acme.dev",
            "databases.v1.Acme.dev",
            "databases.v01.acme.dev",
            "databases.v1beta.acme.dev",
            "databases.v1..dev",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("PLURAL.VERSION.GROUP") || e.contains("must be a lowercase DNS"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            parse("databases.acme.dev").unwrap_err(),
            "`databases.acme.dev` is not PLURAL.VERSION.GROUP, such as `databases.v1.acme.dev` \
             (the CRD's spec.names.plural, a served version, and spec.group)"
        );
    }

    #[test]
    fn bad_options_are_named_with_what_is_wrong() {
        let cases = [
            (
                "x.v1.a.b:secret=a",
                "unknown option `secret`; the options are: remote-suffix,",
            ),
            (
                "x.v1.a.b:remote-suffix",
                "option `remote-suffix` must be written `KEY=VALUE`",
            ),
            ("x.v1.a.b:", "an empty option"),
            ("x.v1.a.b:secrets=a,", "an empty option"),
            (
                "x.v1.a.b:remote-suffix=_eu",
                "option `remote-suffix`: `remote_suffix` must contain only",
            ),
            ("x.v1.a.b:namespace-prefix=-x", "option `namespace-prefix`:"),
            (
                "x.v1.a.b:remote-suffix=-a,remote-suffix=-b",
                "option `remote-suffix` is given twice",
            ),
            ("x.v1.a.b:secrets=Bad_Name", "option `secrets`:"),
            ("x.v1.a.b:secrets=a+a", "`a` is listed twice"),
            (
                "x.v1.a.b:local-only=/status/x",
                "must be a JSON pointer into the spec",
            ),
            ("x.v1.a.b:local-only=/spec/", "empty path segment"),
            ("x.v1.a.b:local-only=/spec/a~2", "`~` must be followed by 0"),
            (
                "x.v1.a.b:propagation=fast",
                "`fast` is not one of foreground, background, orphan",
            ),
            (
                "x.v1.a.b:on-remote-delete=all",
                "is not one of namespace, resource, orphan",
            ),
            (
                "x.v1.a.b:concurrency=0",
                "is not a whole number of at least 1",
            ),
            ("x.v1.a.b:controller-name=Bad", "option `controller-name`:"),
        ];
        for (input, expected) in cases {
            let e = parse(input).unwrap_err();
            assert!(e.contains(expected), "{input}: {e}");
        }
    }

    #[test]
    fn a_kind_is_listed_once_whatever_the_version() {
        let a: Resource = "databases.v1.acme.dev".parse().unwrap();
        let b: Resource = "databases.v2.acme.dev".parse().unwrap();
        let c: Resource = "caches.v1.acme.dev".parse().unwrap();
        assert!(check_distinct(&[a.clone(), c]).is_ok());
        let e = check_distinct(&[a, b]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`databases.v2.acme.dev` is listed twice; give each kind once, with all its options"
        );
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
