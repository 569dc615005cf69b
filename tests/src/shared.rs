//! One pair of planes per test binary, and names that keep tests apart on it.

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::plane::ControlPlane;

/// The two clusters sync works between: `remote` (the management cluster) and `local` (the
/// regional cluster). Each is an independent control plane.
#[derive(Debug)]
pub struct Pair {
    /// The management cluster, where the desired objects live.
    pub remote: ControlPlane,
    /// The regional cluster, where they are copied to.
    pub local: ControlPlane,
}

impl Pair {
    /// Starts two planes, `remote` and `local`, concurrently.
    ///
    /// When `SYNC_TEST_REMOTE_KUBECONFIG` and `SYNC_TEST_LOCAL_KUBECONFIG` are both set, uses
    /// those existing clusters instead; fault injection, audit and per-user clients are then
    /// unavailable.
    ///
    /// # Errors
    ///
    /// As [`ControlPlane::start`], or [`Error::Config`] when only one of the two variables is
    /// set.
    pub async fn start() -> Result<Pair> {
        Self::start_with_apiserver_args(&[]).await
    }

    /// As [`start`](Self::start), with extra kube-apiserver flags for both started planes (see
    /// [`ControlPlane::start_with_apiserver_args`]); existing clusters ignore them.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn start_with_apiserver_args(extra: &[&str]) -> Result<Pair> {
        let remote = std::env::var_os("SYNC_TEST_REMOTE_KUBECONFIG").filter(|v| !v.is_empty());
        let local = std::env::var_os("SYNC_TEST_LOCAL_KUBECONFIG").filter(|v| !v.is_empty());
        match (remote, local) {
            (Some(remote), Some(local)) => Ok(Pair {
                remote: ControlPlane::external("remote", PathBuf::from(remote)),
                local: ControlPlane::external("local", PathBuf::from(local)),
            }),
            (None, None) => {
                let (remote, local) = tokio::try_join!(
                    ControlPlane::start_with_apiserver_args("remote", extra),
                    ControlPlane::start_with_apiserver_args("local", extra)
                )?;
                Ok(Pair { remote, local })
            }
            _ => Err(Error::Config(
                "set both SYNC_TEST_REMOTE_KUBECONFIG and SYNC_TEST_LOCAL_KUBECONFIG, or neither"
                    .to_owned(),
            )),
        }
    }

    /// Both planes, remote first, to run the same check on each.
    pub fn both(&self) -> [&ControlPlane; 2] {
        [&self.remote, &self.local]
    }
}

/// The pair shared by every test of this test binary, started on first use.
///
/// Starting is slow (seconds to a minute on 2 cores, plus a one-time build of the binaries),
/// so tests share one pair and keep apart by namespace, see [`unique_name`]. The planes hold
/// no client and are started on a thread with its own runtime, so any `#[tokio::test]` may
/// use them: make clients with [`ControlPlane::client`] inside the test.
///
/// The pair is never dropped; its watchdogs stop it when the test process ends.
///
/// # Panics
///
/// When the pair cannot be started, with the reason and the end of the failing component's
/// log. Every later call panics with the same message rather than starting again. A test never
/// skips for lack of a cluster, under `CI=true` or not.
pub fn shared_pair() -> &'static Pair {
    static PAIR: OnceLock<Result<Pair, String>> = OnceLock::new();
    let pair = PAIR.get_or_init(|| {
        let started = Instant::now();
        let result = std::thread::Builder::new()
            .name("sync-test-pair".to_owned())
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot build a tokio runtime: {e}"))?
                    .block_on(Pair::start())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("cannot spawn the thread that starts the pair: {e}"))
            .and_then(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err("starting the pair panicked".to_owned()))
            });
        if result.is_ok() {
            eprintln!(
                "sync-tests: control-plane pair ready in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        result
    });
    match pair {
        Ok(pair) => pair,
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            let note = if ci {
                " (CI=true: failing, never skipping)"
            } else {
                ""
            };
            panic!("cannot start the shared control-plane pair{note}: {reason}")
        }
    }
}

/// A fresh name for a namespace or object: `prefix`, then a counter and random characters,
/// cut to a valid DNS-1123 label of at most 40 characters.
///
/// Unique within the process and, through the random part, across processes and runs that
/// share a cluster.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded randomly per process; the time and pid make collisions between
    // processes unlikely even so.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut random = hasher.finish();
    let mut suffix = String::new();
    for _ in 0..5 {
        suffix.push(char::from(
            b"0123456789abcdefghijklmnopqrstuvwxyz"[(random % 36) as usize],
        ));
        random /= 36;
    }
    let mut base: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base = base.trim_matches('-').to_owned();
    let tail = format!("{n}{suffix}");
    base.truncate(40 - 1 - tail.len());
    let base = base.trim_end_matches('-');
    if base.is_empty() {
        format!("t-{tail}")
    } else {
        format!("{base}-{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::unique_name;

    #[test]
    fn unique_names_are_short_distinct_dns_labels() {
        let a = unique_name("Foreground_Delete of an OWNER that is long enough to be cut");
        let b = unique_name("Foreground_Delete of an OWNER that is long enough to be cut");
        assert_ne!(a, b);
        for name in [&a, &b, &unique_name(""), &unique_name("--")] {
            assert!(name.len() <= 40, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
    }
}
