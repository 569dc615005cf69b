//! Reading a plane's audit log, to count the writes a client made.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, io};

/// The audit policy of every plane: writes at level `Metadata`, nothing else.
pub(crate) const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
"#;

/// One finished write request, as the API server's audit log records it.
///
/// The policy logs only the verbs `create`, `update`, `patch`, `delete` and
/// `deletecollection`, so every event is a write attempt; denied and failed ones are included,
/// with their response code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// The authenticated user: the client certificate's CN.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The resource, e.g. `configmaps`; empty for non-resource URLs.
    pub resource: String,
    /// The subresource, e.g. `status`; empty if none.
    pub subresource: String,
    /// The namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// The object's name; empty for collection requests, and for a create that was refused
    /// before its body was read (e.g. by authorization, code 403).
    pub name: String,
    /// The HTTP status code of the response.
    pub code: u16,
    /// The request's user agent.
    pub user_agent: String,
    /// The request URI.
    pub request_uri: String,
    /// The stage; always `ResponseComplete`.
    pub stage: String,
}

/// A point in a plane's audit log; see
/// [`ControlPlane::audit_mark`](crate::ControlPlane::audit_mark).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditMark(pub(crate) u64);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    request_uri: String,
    #[serde(default)]
    user: RawUser,
    #[serde(default)]
    user_agent: String,
    #[serde(default)]
    object_ref: RawObjectRef,
    #[serde(default)]
    response_status: RawStatus,
}

#[derive(Default, Deserialize)]
struct RawUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    api_group: String,
}

#[derive(Default, Deserialize)]
struct RawStatus {
    #[serde(default)]
    code: u16,
}

/// Reads the complete lines of `log` from `from` on, and returns their `ResponseComplete`
/// events and the mark after the last complete line.
pub(crate) fn read(log: &Path, from: AuditMark) -> Result<(Vec<AuditEvent>, AuditMark)> {
    let bytes = match std::fs::read(log) {
        Ok(bytes) => bytes,
        // The apiserver creates the file on its first event.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(format!("read {}", log.display()))(e)),
    };
    let start = usize::try_from(from.0)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    // A line still being written has no newline yet; leave it for the next read.
    let end = bytes[start..]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(start, |i| start + i + 1);
    let events = String::from_utf8_lossy(&bytes[start..end])
        .lines()
        .filter_map(|line| serde_json::from_str::<RawEvent>(line).ok())
        .filter(|raw| raw.stage == "ResponseComplete")
        .map(|raw| AuditEvent {
            user: raw.user.username,
            groups: raw.user.groups,
            verb: raw.verb,
            api_group: raw.object_ref.api_group,
            resource: raw.object_ref.resource,
            subresource: raw.object_ref.subresource,
            namespace: raw.object_ref.namespace,
            name: raw.object_ref.name,
            code: raw.response_status.code,
            user_agent: raw.user_agent,
            request_uri: raw.request_uri,
            stage: raw.stage,
        })
        .collect();
    Ok((events, AuditMark(end as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_complete_lines_only_and_keeps_response_complete_events() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let complete = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/n/configmaps","verb":"create","user":{"username":"alice","groups":["team","system:authenticated"]},"userAgent":"probe","objectRef":{"resource":"configmaps","namespace":"n","name":"c","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201}}"#;
        let panic = complete.replace("ResponseComplete", "Panic");
        let partial = &complete[..40];
        std::fs::write(&log, format!("{complete}\n{panic}\n{partial}")).unwrap();

        let (events, mark) = read(&log, AuditMark(0)).unwrap();

        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.user.as_str(), e.verb.as_str(), e.resource.as_str()),
            ("alice", "create", "configmaps")
        );
        assert_eq!(
            (e.namespace.as_str(), e.name.as_str(), e.code),
            ("n", "c", 201)
        );
        assert_eq!(e.groups, ["team", "system:authenticated"]);
        assert_eq!(mark.0 as usize, complete.len() + panic.len() + 2);
        let (later, _) = read(&log, mark).unwrap();
        assert!(later.is_empty(), "the partial line is not an event yet");
    }
}
