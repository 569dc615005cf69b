//! The rules every configured name and value of `sync-core` follows, in one place.
//!
//! `#[derive(Syncable)]` checks its attributes with these functions at compile time, and
//! `SyncBuilder::run` checks the configuration it runs with at run time, so a value set by an
//! attribute and the same value set through the builder are accepted or refused alike, with the
//! same message. Use it through `sync-core`; this crate exists because the derive cannot depend
//! on `sync-core`, which depends on it.
//!
//! Each `check_*` function returns the [`Problem`] with the value, if it has one. The per-region
//! default controller name is formed by [`per_region_name`].
//!
//! # Example
//!
//! ```
//! use sync_names::{Part, check_controller_name, check_part, per_region_name};
//!
//! assert!(check_part(Part::RemoteSuffix, "-eu").is_ok());
//! let problem = check_part(Part::RemoteSuffix, "-eu-").unwrap_err();
//! assert_eq!(
//!     problem.to_string(),
//!     "`remote_suffix` must end with a lowercase letter or digit, as every Kubernetes name does"
//! );
//! assert_eq!(per_region_name("database-sync", "-eu", ""), "database-sync-eu");
//! assert!(check_controller_name("controller_name", "").is_err());
//! ```

#![forbid(unsafe_code)]

use std::fmt;

/// A DNS-1123 label (a namespace) has at most this many characters.
pub const MAX_LABEL: usize = 63;
/// A DNS-1123 subdomain (the name of a custom resource or a secret) has at most this many
/// characters.
pub const MAX_SUBDOMAIN: usize = 253;
/// A controller name has at most this many characters.
///
/// The name forms the annotation key `<domain>/needed-by.<controller>`, and the name part of an
/// annotation key (after the '/') has at most 63 characters, of which `needed-by.` takes 10.
/// The other places the name goes allow more (a field manager or an event's reporting
/// controller, 128), so 53 is the limit that holds everywhere.
pub const MAX_CONTROLLER_NAME: usize = MAX_LABEL - NEEDED_BY.len();

/// The name part of the `needed-by` annotation key before the controller name.
const NEEDED_BY: &str = "needed-by.";

/// Why a value breaks its rule: a lowercase sentence that names the attribute, as in
/// ``"`remote_suffix` must contain only lowercase letters, digits and '-'"``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem(String);

impl Problem {
    fn new(subject: &str, phrase: impl fmt::Display) -> Self {
        Problem(format!("{subject} {phrase}"))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problem {}

/// A part of the name mapping: a suffix or the namespace prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// `remote_suffix`: ends every remote name, which is a DNS-1123 subdomain.
    RemoteSuffix,
    /// `remote_namespace_suffix`: ends every remote namespace, a DNS-1123 label.
    RemoteNamespaceSuffix,
    /// `local_namespace_suffix`: ends every local namespace, a DNS-1123 label.
    LocalNamespaceSuffix,
    /// `namespace_prefix`: starts every remote and local namespace, a DNS-1123 label.
    NamespacePrefix,
}

impl Part {
    /// The attribute and builder method that sets it.
    pub fn key(self) -> &'static str {
        match self {
            Part::RemoteSuffix => "remote_suffix",
            Part::RemoteNamespaceSuffix => "remote_namespace_suffix",
            Part::LocalNamespaceSuffix => "local_namespace_suffix",
            Part::NamespacePrefix => "namespace_prefix",
        }
    }
}

/// Checks a suffix or the namespace prefix.
///
/// A suffix ends, and the prefix starts, every mapped name or namespace. With a character a
/// name cannot hold, or a '-' (or '.') where a name cannot end or start, every mapped name
/// would be invalid and nothing would ever sync. Namespaces are DNS-1123 labels (no '.');
/// resource names are subdomains, so `remote_suffix` may hold a '.' with a letter or digit on
/// each side (`".eu"` is fine: the local name before it ends with one). Each leaves room for at
/// least one more character in a label of at most 63. The empty value, the default, is fine.
pub fn check_part(part: Part, s: &str) -> Result<(), Problem> {
    let key = format!("`{}`", part.key());
    let dots = part == Part::RemoteSuffix;
    let chars = if dots {
        "must contain only lowercase letters, digits, '-' and '.'"
    } else {
        "must contain only lowercase letters, digits and '-'"
    };
    if !s.chars().all(|c| is_label_char(c) || (dots && c == '.')) {
        return Err(Problem::new(&key, chars));
    }
    if part == Part::NamespacePrefix {
        if s.starts_with('-') {
            return Err(Problem::new(
                &key,
                "must start with a lowercase letter or digit, as every namespace does",
            ));
        }
    } else if s.ends_with(['-', '.']) {
        return Err(Problem::new(
            &key,
            "must end with a lowercase letter or digit, as every Kubernetes name does",
        ));
    }
    if dots && !dots_between_alphanumerics(s) {
        return Err(Problem::new(
            &key,
            "must have a lowercase letter or digit after every '.', and before every '.' but a \
             leading one",
        ));
    }
    if s.len() >= MAX_LABEL {
        let room = if part == Part::NamespacePrefix {
            "a namespace"
        } else {
            "a Kubernetes name"
        };
        return Err(Problem::new(
            &key,
            format_args!(
                "must be at most {} characters (it is {}), to leave room in {room} of at most \
                 {MAX_LABEL}",
                MAX_LABEL - 1,
                s.len()
            ),
        ));
    }
    Ok(())
}

/// Checks the namespace prefix and a namespace suffix together.
///
/// A synced namespace starts with the prefix and ends with the suffix, and it is a DNS-1123
/// label of at most 63 characters: together they may not leave it too long.
pub fn check_namespace_room(prefix: &str, suffix: Part, value: &str) -> Result<(), Problem> {
    let length = prefix.len() + value.len();
    if length > MAX_LABEL {
        return Err(Problem(format!(
            "`namespace_prefix` and `{}` are {length} characters together, but a namespace has \
             at most {MAX_LABEL}",
            suffix.key()
        )));
    }
    Ok(())
}

/// Checks one name in `secrets(...)`.
///
/// A secret's name is a DNS-1123 subdomain. A configured name that is not one could never
/// match a local secret, and the secret would silently never be sent up.
pub fn check_secret_name(name: &str) -> Result<(), Problem> {
    match subdomain_problem(name) {
        None => Ok(()),
        Some(p) => Err(Problem::new(
            &format!("secret name {name:?} in `secrets(...)`"),
            p,
        )),
    }
}

/// Checks the remote secret name a local secret name and `remote_suffix` form.
///
/// The remote secret is named `<name><remote_suffix>`, a DNS-1123 subdomain of at most 253
/// characters.
pub fn check_remote_secret_name(name: &str, remote_suffix: &str) -> Result<(), Problem> {
    let length = name.len() + remote_suffix.len();
    if length > MAX_SUBDOMAIN {
        return Err(Problem(format!(
            "the remote secret name (this name and `remote_suffix`) is {length} characters \
             long, but a secret name has at most {MAX_SUBDOMAIN}"
        )));
    }
    Ok(())
}

/// Checks the annotation domain.
///
/// The domain is the prefix of every annotation and finalizer the controller writes, and the
/// API server rejects a key whose prefix is not a DNS-1123 subdomain: every write would fail.
pub fn check_domain(s: &str) -> Result<(), Problem> {
    match subdomain_problem(s) {
        None => Ok(()),
        Some(p) => Err(Problem::new("`domain`", p)),
    }
}

/// Checks a controller name: `controller_name`, or one of `predecessors` (`key` says which).
///
/// The name is the field manager of every write, the reporting controller of every event, the
/// value of the claim annotation, and forms the annotation key `<domain>/needed-by.<name>`:
/// so it is a DNS-1123 subdomain of at most [`MAX_CONTROLLER_NAME`] characters.
pub fn check_controller_name(key: &str, s: &str) -> Result<(), Problem> {
    let subject = if key == "controller_name" {
        "`controller_name`".to_owned()
    } else {
        format!("controller name {s:?} in `{key}(...)`")
    };
    if let Some(p) = subdomain_problem(s) {
        return Err(Problem::new(&subject, p));
    }
    if s.len() > MAX_CONTROLLER_NAME {
        return Err(Problem::new(
            &subject,
            format_args!(
                "is {} characters long, but at most {MAX_CONTROLLER_NAME} are allowed: it forms \
                 the annotation key `<domain>/needed-by.<name>`, whose name part has at most \
                 {MAX_LABEL}",
                s.len()
            ),
        ));
    }
    Ok(())
}

/// The per-region default controller name: `base`, then each distinct region part.
///
/// # The rule
///
/// The region parts are, in this order, `remote_suffix` and `remote_namespace_suffix`: the
/// suffixes by which regions shard a management cluster. (`namespace_prefix` is left out: it
/// names tenants, usually alike in every region.) Each is trimmed of '-' and '.' at both ends and its inner '.' become '-'; a part that is empty
/// afterwards, or equal to one already taken, is skipped; the others are appended with '-'.
///
/// - `("database-sync", "-eu", "")` → `database-sync-eu`
/// - `("database-sync", "-eu", "-eu")` → `database-sync-eu`
/// - `("database-sync", "-eu", "-west")` → `database-sync-eu-west`
/// - `("database-sync", "", "")` → `database-sync` (no suffix: unchanged)
///
/// A result longer than [`MAX_CONTROLLER_NAME`] keeps its first 44 characters (without a
/// trailing '-' or '.') followed by '-' and 8 hexadecimal digits of a hash (32-bit FNV-1a) of
/// the whole, so it stays valid, and different regions still get different names.
pub fn per_region_name(base: &str, remote_suffix: &str, remote_namespace_suffix: &str) -> String {
    let mut name = base.to_owned();
    let mut taken: Vec<String> = Vec::new();
    for part in [remote_suffix, remote_namespace_suffix] {
        let part = part.trim_matches(['-', '.']).replace('.', "-");
        if part.is_empty() || taken.contains(&part) {
            continue;
        }
        name.push('-');
        name.push_str(&part);
        taken.push(part);
    }
    if name.len() <= MAX_CONTROLLER_NAME {
        return name;
    }
    let hash = fnv1a(&name);
    let keep = name
        .get(..MAX_CONTROLLER_NAME - 9)
        .unwrap_or(&name)
        .trim_end_matches(['-', '.']);
    format!("{keep}-{hash:08x}")
}

/// 32-bit FNV-1a: tiny, stable across releases and platforms (unlike `std`'s hasher), which a
/// name kept in annotations needs.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

fn dots_between_alphanumerics(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphanumeric);
    b.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'.')
        .all(|(i, _)| alnum(i + 1) && (i == 0 || alnum(i - 1)))
}

/// Why `s` is not a DNS-1123 subdomain, if it is not.
/// Checks a label or annotation key for the namespaces the controller creates: an optional
/// prefix (a DNS-1123 subdomain) and '/', then a name of at most 63 characters of letters,
/// digits, '-', '_' and '.', starting and ending with a letter or digit.
pub fn check_metadata_key(what: &str, key: &str) -> Result<(), Problem> {
    let subject = format!("{what} key {key:?}");
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix.and_then(subdomain_problem) {
        return Err(Problem::new(
            &subject,
            format_args!("has a prefix that {p}"),
        ));
    }
    match qualified_name_problem(name, false) {
        None => Ok(()),
        Some(p) => Err(Problem::new(&subject, p)),
    }
}

/// Checks a label value for the namespaces the controller creates: empty, or at most 63
/// characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
pub fn check_label_value(key: &str, value: &str) -> Result<(), Problem> {
    match qualified_name_problem(value, true) {
        None => Ok(()),
        Some(p) => Err(Problem::new(
            &format!("namespace label value {value:?} (of {key:?})"),
            p,
        )),
    }
}

fn qualified_name_problem(s: &str, may_be_empty: bool) -> Option<String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if s.is_empty() {
        return (!may_be_empty).then(|| "must not be empty".to_owned());
    }
    if s.len() > MAX_LABEL {
        return Some(format!(
            "is {} characters long, but at most {MAX_LABEL} are allowed",
            s.len()
        ));
    }
    if !s.chars().all(ok_char) {
        return Some("must contain only letters, digits, '-', '_' and '.'".to_owned());
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !s.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Some("must start and end with a letter or digit".to_owned());
    }
    None
}

fn subdomain_problem(s: &str) -> Option<String> {
    let problem = if s.is_empty() {
        "must not be empty".to_owned()
    } else if !s.chars().all(|c| is_label_char(c) || c == '.') {
        "must contain only lowercase letters, digits, '-' and '.'".to_owned()
    } else if s.split('.').any(|part| {
        !part.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !part.ends_with(|c: char| c.is_ascii_alphanumeric())
    }) {
        "must start and end with a lowercase letter or digit, and so must each part between \
         dots"
            .to_owned()
    } else if s.len() > MAX_SUBDOMAIN {
        format!(
            "is {} characters long, but at most {MAX_SUBDOMAIN} are allowed",
            s.len()
        )
    } else {
        return None;
    };
    Some(problem)
}

/// One value and whether the rules accept it: the table that the derive's tests and the
/// runtime's tests both run, so the two provably agree. Not part of the API.
#[doc(hidden)]
pub mod cases {
    /// A value for one attribute or builder method, and whether it is valid.
    #[derive(Clone, Debug)]
    pub struct Case {
        /// The attribute: `remote_suffix`, ..., `secrets`, `domain`, `controller_name` or
        /// `predecessors`.
        pub key: &'static str,
        /// The value.
        pub value: String,
        /// Whether the rules accept it.
        pub valid: bool,
    }

    /// Every case.
    pub fn all() -> Vec<Case> {
        let long = |n: usize| "a".repeat(n);
        let mut cases = Vec::new();
        let mut add = |key: &'static str, value: &str, valid: bool| {
            cases.push(Case {
                key,
                value: value.to_owned(),
                valid,
            });
        };
        for key in [
            "remote_suffix",
            "remote_namespace_suffix",
            "local_namespace_suffix",
        ] {
            add(key, "", true);
            add(key, "-eu", true);
            add(key, "-eu-1", true);
            add(key, "-eu-", false);
            add(key, "_EU", false);
            add(key, "-EU", false);
            add(key, &long(62), true);
            add(key, &long(63), false);
        }
        add("remote_suffix", ".eu", true);
        add("remote_suffix", "-eu.west", true);
        add("remote_suffix", "-eu.", false);
        add("remote_suffix", "-.eu", false);
        add("remote_suffix", "-eu..west", false);
        add("remote_namespace_suffix", ".eu", false);
        add("local_namespace_suffix", ".eu", false);
        add("namespace_prefix", "", true);
        add("namespace_prefix", "tenant-", true);
        add("namespace_prefix", "-tenant", false);
        add("namespace_prefix", "Tenant-", false);
        add("namespace_prefix", "tenant.", false);
        add("namespace_prefix", &long(62), true);
        add("namespace_prefix", &long(63), false);
        add("secrets", "db-credentials", true);
        add("secrets", "db.credentials", true);
        add("secrets", "", false);
        add("secrets", "Db", false);
        add("secrets", "-db", false);
        add("secrets", "db..x", false);
        add("domain", "acme.dev", true);
        add("domain", "not a domain", false);
        add("domain", "acme.dev.", false);
        for key in ["controller_name", "predecessors"] {
            add(key, "database-sync", true);
            add(key, "database-sync-eu.1", true);
            add(key, "", false);
            add(key, "database_sync", false);
            add(key, "Database-sync", false);
            add(key, "database-sync-", false);
            add(key, &long(53), true);
            add(key, &long(54), false);
        }
        cases
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn namespace_label_and_annotation_keys_and_values_follow_the_api_servers_rules() {
        use super::{check_label_value, check_metadata_key};
        for ok in [
            "team",
            "pod-security.kubernetes.io/enforce",
            "acme.dev/tenant_id",
            "a.b",
        ] {
            assert!(check_metadata_key("namespace label", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-team",
            "team-",
            "Acme.dev/x",
            "a/b/c",
            "x/",
            &"a".repeat(64),
        ] {
            assert!(check_metadata_key("namespace label", bad).is_err(), "{bad}");
        }
        for ok in ["", "restricted", "v1.2_3"] {
            assert!(check_label_value("k", ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "a b", &"a".repeat(64)] {
            assert!(check_label_value("k", bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn check(key: &str, value: &str) -> Result<(), Problem> {
        match key {
            "remote_suffix" => check_part(Part::RemoteSuffix, value),
            "remote_namespace_suffix" => check_part(Part::RemoteNamespaceSuffix, value),
            "local_namespace_suffix" => check_part(Part::LocalNamespaceSuffix, value),
            "namespace_prefix" => check_part(Part::NamespacePrefix, value),
            "secrets" => check_secret_name(value),
            "domain" => check_domain(value),
            k => check_controller_name(k, value),
        }
    }

    #[test]
    fn every_case_of_the_shared_table_holds() {
        for case in cases::all() {
            let got = check(case.key, &case.value);
            assert_eq!(got.is_ok(), case.valid, "{case:?}: {got:?}");
        }
    }

    #[test]
    fn a_controller_name_leaves_room_for_the_needed_by_key() {
        assert_eq!(MAX_CONTROLLER_NAME, 53);
        assert_eq!(NEEDED_BY.len() + MAX_CONTROLLER_NAME, MAX_LABEL);
    }

    #[test]
    fn the_per_region_name_appends_each_distinct_region_part() {
        let n = per_region_name;
        assert_eq!(n("database-sync", "-eu", ""), "database-sync-eu");
        assert_eq!(n("database-sync", "-eu", "-eu"), "database-sync-eu");
        assert_eq!(n("database-sync", "-eu", "-west"), "database-sync-eu-west");
        assert_eq!(n("database-sync", "", "-west"), "database-sync-west");
        assert_eq!(n("database-sync", ".eu.west", ""), "database-sync-eu-west");
        assert_eq!(n("database-sync", "", ""), "database-sync");
        assert_eq!(n("database-sync", "-", ""), "database-sync");
    }

    #[test]
    fn a_long_per_region_name_is_shortened_with_a_hash_and_stays_distinct() {
        let eu = per_region_name("database-sync", &format!("-{}-eu", "x".repeat(50)), "");
        let us = per_region_name("database-sync", &format!("-{}-us", "x".repeat(50)), "");
        assert_eq!(eu.len(), MAX_CONTROLLER_NAME);
        assert_ne!(eu, us);
        assert!(
            check_controller_name("controller_name", &eu).is_ok(),
            "{eu}"
        );
        assert!(
            check_controller_name("controller_name", &us).is_ok(),
            "{us}"
        );
    }

    #[test]
    fn every_valid_configuration_forms_a_valid_per_region_name() {
        let long = format!("-{}", "a".repeat(61));
        for rs in ["", "-eu", ".eu", "-eu.west", "-a1", "x", long.as_str()] {
            for rns in ["", "-eu", "-west", "-x", long.as_str()] {
                let name = per_region_name("database-sync", rs, rns);
                assert!(
                    check_controller_name("controller_name", &name).is_ok(),
                    "{rs:?} {rns:?} → {name}"
                );
            }
        }
    }
}
