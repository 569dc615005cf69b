//! `--config FILE`: the kinds to sync, in YAML, with the same options as `--resource`.
//!
//! ```yaml
//! resources:
//!   - resource: databases.v1.acme.dev
//!     secrets: [db-credentials]
//!     local-only: [/spec/storageClass]
//!   - resource: caches.v1.acme.dev
//!     remote-suffix: -cache-eu
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::resource::{Resource, ResourceError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    resources: Vec<BTreeMap<String, Value>>,
}

/// An option's value: text, a number (`concurrency: 4`), a boolean
/// (`observed-generation: true`) or a list (`secrets: [a, b]`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Value {
    Boolean(bool),
    Number(u64),
    Text(String),
    List(Vec<String>),
}

/// Why `--config` is refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error(
        "{path} is not a sync-agent configuration (a `resources:` list of entries with a \
         `resource:` key): {problem}"
    )]
    Shape {
        /// The file.
        path: String,
        /// The YAML parser's message.
        problem: String,
    },
    /// An entry without `resource:`.
    #[error("{path}: entry {index} of `resources` has no `resource: PLURAL.VERSION.GROUP`")]
    NoResource {
        /// The file.
        path: String,
        /// Its place, from 1.
        index: usize,
    },
    /// An entry with a bad resource or option.
    #[error("{path}: entry {index} of `resources`: {source}")]
    Entry {
        /// The file.
        path: String,
        /// Its place, from 1.
        index: usize,
        /// What is wrong.
        #[source]
        source: ResourceError,
    },
}

/// The kinds listed in the file at `path`.
///
/// # Errors
///
/// When it cannot be read, is not the expected YAML, or an entry is refused as `--resource`
/// would refuse it.
pub fn read(path: &Path) -> Result<Vec<Resource>, FileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text)
}

/// The kinds listed in `text`, the content of the file `path`.
///
/// # Errors
///
/// As [`read`].
pub fn parse(path: &str, text: &str) -> Result<Vec<Resource>, FileError> {
    let file: File = serde_saphyr::from_str(text).map_err(|e| FileError::Shape {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    file.resources
        .into_iter()
        .enumerate()
        .map(|(i, mut entry)| {
            let index = i + 1;
            let entry_error = |source| FileError::Entry {
                path: path.to_owned(),
                index,
                source,
            };
            let name = match entry.remove("resource") {
                Some(Value::Text(name)) => name,
                _ => {
                    return Err(FileError::NoResource {
                        path: path.to_owned(),
                        index,
                    });
                }
            };
            let mut resource = Resource {
                name: name.parse().map_err(entry_error)?,
                options: Default::default(),
            };
            for (key, value) in entry {
                let values = match value {
                    Value::Number(n) => vec![n.to_string()],
                    Value::Boolean(b) => vec![b.to_string()],
                    Value::Text(s) => vec![s],
                    Value::List(list) => list,
                };
                for v in values {
                    resource.options.set(&key, &v).map_err(entry_error)?;
                }
            }
            Ok(resource)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_lists_kinds_with_the_options_of_the_flag() {
        let text = "resources:\n\
                    - resource: databases.v1.acme.dev\n  \
                      secrets: [db-credentials, tls]\n  \
                      local-only: [/spec/storageClass]\n  \
                      concurrency: 4\n  \
                      observed-generation: true\n\
                    - resource: caches.v1.acme.dev\n  \
                      remote-suffix: -cache-eu\n";
        let resources = parse("agent.yaml", text).unwrap();
        assert_eq!(
            resources[0].to_string(),
            "databases.v1.acme.dev:concurrency=4,observed-generation=true,\
             secrets=db-credentials+tls,local-only=/spec/storageClass"
        );
        assert_eq!(
            resources[1].to_string(),
            "caches.v1.acme.dev:remote-suffix=-cache-eu"
        );
    }

    #[test]
    fn a_bad_file_says_where() {
        let cases = [
            (
                "resources: 3\n",
                "agent.yaml is not a sync-agent configuration",
            ),
            (
                "kinds: []\n",
                "agent.yaml is not a sync-agent configuration",
            ),
            (
                "resources:\n- secrets: [a]\n",
                "agent.yaml: entry 1 of `resources` has no `resource: PLURAL.VERSION.GROUP`",
            ),
            (
                "resources:\n- resource: a.v1.b.c\n- resource: databases.acme.dev\n",
                "agent.yaml: entry 2 of `resources`: `databases.acme.dev` is not PLURAL.VERSION.GROUP",
            ),
            (
                "resources:\n- resource: a.v1.b.c\n  secret: x\n",
                "agent.yaml: entry 1 of `resources`: unknown option `secret`",
            ),
            (
                "resources:\n- resource: a.v1.b.c\n  remote-suffix: _x\n",
                "entry 1 of `resources`: option `remote-suffix`:",
            ),
        ];
        for (text, expected) in cases {
            let e = parse("agent.yaml", text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read(Path::new("/nonexistent/agent.yaml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to read /nonexistent/agent.yaml: "),
            "{e}"
        );
    }
}
