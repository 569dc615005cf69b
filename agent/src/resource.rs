//! Which kinds are synced: `--resource PLURAL.VERSION.GROUP[:OPTIONS]` and the entries of
//! `--config`, both parsed here into [`Resource`]; the options themselves are in
//! [`options`](crate::options).

use std::fmt;
use std::str::FromStr;

use crate::options::{LISTS, OPTIONS, Options};

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

impl fmt::Display for Resource {
    /// The form `--resource` takes, with every option set: `databases.v1.acme.dev:secrets=a+b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if self.options != Options::default() {
            write!(f, ":{}", self.options)?;
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
    use sync_core::{OnRemoteDelete, Propagation, SyncConfig};

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
             adopt-claims-from=old-db-sync,namespace-prefix=tenant-,observed-generation=true,\
             streaming-lists=true",
        )
        .unwrap();
        let o = &r.options;
        assert_eq!(o.observed_generation, Some(true));
        assert!(o.apply(SyncConfig::new("x")).status_observed_generation);
        assert_eq!(o.streaming_lists, Some(true));
        assert!(o.apply(SyncConfig::new("x")).streaming_lists);
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
                "x.v1.a.b:observed-generation=yes",
                "`yes` is not one of true, false",
            ),
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
}
