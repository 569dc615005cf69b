//! Reading a plane's audit log, to count the writes a client made.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

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

/// The files of one audit log, oldest first: the rotated ones, then `log` itself.
///
/// kube-apiserver writes its audit log through lumberjack, which rotates it when it would pass
/// `--audit-log-maxsize` megabytes (and `0` there means lumberjack's default of 100 MB, not
/// "never"): it renames `audit.log` to `audit-<UTC time>.log` and starts a new `audit.log`.
/// The time in the name sorts as text, so the names sort oldest first.
fn files(log: &Path) -> Result<Vec<PathBuf>> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let stem = log.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let ext = log
        .extension()
        .and_then(|s| s.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let prefix = format!("{stem}-");
    let mut rotated: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&ext))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(format!("list {}", dir.display()))(e)),
    };
    rotated.sort();
    rotated.push(log.to_owned());
    Ok(rotated)
}

/// The bytes of `path` from `offset` on; nothing if it does not exist (yet).
fn read_from(path: &Path, offset: u64) -> Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        // The apiserver creates the file on its first event.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("open {}", path.display()))(e)),
    };
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(io(format!("read {}", path.display())))?;
    Ok(bytes)
}

fn len(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io(format!("read the size of {}", path.display()))(e)),
    }
}

/// Reads the complete lines of `log` from `from` on, rotated files included, and returns
/// their `ResponseComplete` events and the mark after the last complete line.
///
/// A mark is an offset into all the log's files one after the other, oldest first, so it
/// stays valid when the log rotates: the rotated files never change again, and (the planes
/// set neither `--audit-log-maxbackup` nor `--audit-log-maxage`) are never removed.
pub(crate) fn read(log: &Path, from: AuditMark) -> Result<(Vec<AuditEvent>, AuditMark)> {
    // A rotation between listing the files and reading the last one would make the new,
    // short `audit.log` look like the old one: list again after reading, and start over if
    // the list changed.
    loop {
        let files = files(log)?;
        let mut events = Vec::new();
        let mut base = 0u64;
        let mut mark = from;
        for (i, file) in files.iter().enumerate() {
            let last = i + 1 == files.len();
            let size = len(file)?;
            if !last && base + size <= from.0 {
                base += size;
                continue;
            }
            let start = from.0.saturating_sub(base);
            let bytes = read_from(file, start)?;
            // A line still being written has no newline yet; leave it for the next read. A
            // rotated file ends with a whole line: lumberjack rotates between writes.
            let end = match last {
                true => bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1),
                false => bytes.len(),
            };
            events.extend(parse(&bytes[..end]));
            mark = AuditMark(base + start + end as u64);
            base += size.max(start + bytes.len() as u64);
        }
        if files == self::files(log)? {
            return Ok((events, mark.max(from)));
        }
    }
}

/// The mark after the last complete line of `log`: as [`read`], without parsing anything.
pub(crate) fn end(log: &Path) -> Result<AuditMark> {
    loop {
        let files = files(log)?;
        let (current, rotated) = files.split_last().expect("the log itself is listed");
        let mut base = 0;
        for f in rotated {
            base += len(f)?;
        }
        // Only the tail of the current file is needed to find its last newline.
        let size = len(current)?;
        let mut start = size.saturating_sub(64 * 1024);
        let end = loop {
            let bytes = read_from(current, start)?;
            match bytes.iter().rposition(|&b| b == b'\n') {
                Some(i) => break start + i as u64 + 1,
                None if start == 0 => break 0,
                None => start = start.saturating_sub(64 * 1024),
            }
        };
        if files == self::files(log)? {
            return Ok(AuditMark(base + end));
        }
    }
}

/// The `ResponseComplete` events of whole JSON lines.
fn parse(bytes: &[u8]) -> Vec<AuditEvent> {
    String::from_utf8_lossy(bytes)
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
        .collect()
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

    fn line(user: &str) -> String {
        format!(
            r#"{{"stage":"ResponseComplete","verb":"create","user":{{"username":"{user}"}},"objectRef":{{"resource":"configmaps","name":"c"}},"responseStatus":{{"code":201}}}}"#
        )
    }

    fn users(events: &[AuditEvent]) -> Vec<&str> {
        events.iter().map(|e| e.user.as_str()).collect()
    }

    /// What the API server's lumberjack does when the log would pass its maximum size.
    fn rotate(log: &Path, time: &str) {
        std::fs::rename(log, log.with_file_name(format!("audit-{time}.log"))).unwrap();
    }

    fn append(log: &Path, users: &[&str]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        for u in users {
            writeln!(f, "{}", line(u)).unwrap();
        }
    }

    #[test]
    fn events_written_before_and_after_a_rotation_are_all_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        std::fs::write(dir.path().join("audit-policy.yaml"), "not a log").unwrap();
        append(&log, &["before-1", "before-2"]);
        let mark = end(&log).unwrap();
        append(&log, &["a", "b"]);
        rotate(&log, "2026-11-27T20-00-00.000");
        append(&log, &["c"]);
        rotate(&log, "2026-11-27T20-00-05.000");
        append(&log, &["d", "e"]);

        let (events, next) = read(&log, mark).unwrap();

        assert_eq!(users(&events), ["a", "b", "c", "d", "e"]);
        assert_eq!(next, end(&log).unwrap());
        assert_eq!(users(&read(&log, AuditMark(0)).unwrap().0).len(), 7);
        append(&log, &["f"]);
        rotate(&log, "2026-11-27T20-00-09.000");
        assert_eq!(users(&read(&log, next).unwrap().0), ["f"]);
    }

    #[test]
    fn a_mark_taken_just_before_a_rotation_sees_only_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        append(&log, &["old-1", "old-2", "old-3"]);
        let mark = end(&log).unwrap();
        rotate(&log, "2026-11-27T20-00-00.000");
        // Longer than the part of the old file after the mark, shorter than the old file.
        append(&log, &["new-1", "new-2"]);

        assert_eq!(users(&read(&log, mark).unwrap().0), ["new-1", "new-2"]);
    }
}
