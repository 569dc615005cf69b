//! Counting a user's writes from the API servers' audit logs.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sync_tests::AuditEvent;

/// Writes of one kind: cluster, verb and resource (with `/subresource`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    /// `remote` or `local`.
    pub cluster: &'static str,
    /// `create`, `update`, `patch`, `delete`.
    pub verb: String,
    /// e.g. `databases`, `databases/status`, `namespaces`.
    pub resource: String,
}

/// How many writes of one kind succeeded and failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Answered with a 2xx code.
    pub ok: u64,
    /// Answered with an error (409 conflicts, 403 denials, ...).
    pub failed: u64,
}

/// The writes of one user, by kind.
#[derive(Clone, Debug, Default)]
pub struct Writes(pub BTreeMap<Kind, Count>);

impl Writes {
    /// Counts the events of `user` in both clusters' audit events.
    pub fn of(user: &str, remote: &[AuditEvent], local: &[AuditEvent]) -> Writes {
        let mut out = BTreeMap::<Kind, Count>::new();
        for (cluster, events) in [("remote", remote), ("local", local)] {
            for e in events.iter().filter(|e| e.user == user) {
                let resource = if e.subresource.is_empty() {
                    e.resource.clone()
                } else {
                    format!("{}/{}", e.resource, e.subresource)
                };
                let c = out
                    .entry(Kind {
                        cluster,
                        verb: e.verb.clone(),
                        resource,
                    })
                    .or_default();
                if (200..300).contains(&e.code) {
                    c.ok += 1;
                } else {
                    c.failed += 1;
                }
            }
        }
        Writes(out)
    }

    /// Every write request, failed ones included: each costs the API server.
    pub fn total(&self) -> u64 {
        self.0.values().map(|c| c.ok + c.failed).sum()
    }

    /// The failed write requests.
    pub fn failed(&self) -> u64 {
        self.0.values().map(|c| c.failed).sum()
    }

    /// As JSON: a list of `{cluster, verb, resource, ok, failed}`.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(k, c)| {
                    json!({
                        "cluster": k.cluster,
                        "verb": k.verb,
                        "resource": k.resource,
                        "ok": c.ok,
                        "failed": c.failed,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, verb: &str, resource: &str, sub: &str, code: u16) -> AuditEvent {
        AuditEvent {
            user: user.into(),
            groups: vec![],
            verb: verb.into(),
            api_group: String::new(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "n".into(),
            name: "x".into(),
            code,
            user_agent: String::new(),
            request_uri: String::new(),
            stage: "ResponseComplete".into(),
        }
    }

    #[test]
    fn only_the_users_writes_count_and_failures_are_kept_apart() {
        let remote = [
            event("c", "patch", "databases", "status", 200),
            event("c", "patch", "databases", "", 409),
            event("other", "patch", "databases", "", 200),
        ];
        let local = [event("c", "create", "namespaces", "", 201)];
        let w = Writes::of("c", &remote, &local);
        assert_eq!((w.total(), w.failed()), (3, 1));
        let status = Kind {
            cluster: "remote",
            verb: "patch".into(),
            resource: "databases/status".into(),
        };
        assert_eq!(w.0[&status], Count { ok: 1, failed: 0 });
    }
}
