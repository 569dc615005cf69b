use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The three programs a control plane is made of.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The `etcd` server.
    pub etcd: PathBuf,
    /// The `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// The `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
}

impl Binaries {
    /// Finds the binaries, building them the first time if needed.
    ///
    /// In order:
    /// 1. `SYNC_TEST_ASSETS`, then `KUBEBUILDER_ASSETS`: a folder holding all three;
    /// 2. otherwise `tests/control-plane/build.sh`, which builds them from the Go module proxy
    ///    once into a versioned cache (10–25 minutes on 2 cores; its progress goes to stderr)
    ///    and prints the folder. Later calls, also from other processes, reuse the cache.
    ///
    /// The answer is remembered for the life of the process.
    ///
    /// # Errors
    ///
    /// [`Error::Binaries`] when the folder lacks a binary or the build fails; the message says
    /// how to fix it.
    pub fn locate() -> Result<Binaries> {
        static FOUND: OnceLock<Result<Binaries, String>> = OnceLock::new();
        FOUND
            .get_or_init(locate_uncached)
            .clone()
            .map_err(|reason| Error::Binaries { reason })
    }

    /// Uses the binaries in `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Binaries`] when one of them is missing.
    pub fn in_folder(dir: &Path) -> Result<Binaries> {
        check_folder(dir).map_err(|reason| Error::Binaries { reason })
    }
}

fn check_folder(dir: &Path) -> Result<Binaries, String> {
    let found = Binaries {
        etcd: dir.join("etcd"),
        kube_apiserver: dir.join("kube-apiserver"),
        kube_controller_manager: dir.join("kube-controller-manager"),
    };
    for path in [
        &found.etcd,
        &found.kube_apiserver,
        &found.kube_controller_manager,
    ] {
        if !path.is_file() {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    Ok(found)
}

fn locate_uncached() -> Result<Binaries, String> {
    for var in ["SYNC_TEST_ASSETS", "KUBEBUILDER_ASSETS"] {
        if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return check_folder(Path::new(&dir)).map_err(|e| format!("{var}: {e}"));
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("control-plane/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); its output is above",
            script.display(),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("{} printed no folder", script.display()))?;
    check_folder(Path::new(dir.trim()))
}
