//! Child processes of a plane, and the watchdog that kills them if the test process dies.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result, io};

/// A program that makes up a control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// `etcd`.
    Etcd,
    /// `kube-apiserver`.
    ApiServer,
    /// `kube-controller-manager`.
    ControllerManager,
}

impl Component {
    /// The program's name, which is also its log file's stem.
    pub fn program(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// One running component, in a process group of its own.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) component: Component,
    child: Child,
    pub(crate) log: PathBuf,
    /// Where this run's output starts in the log, which restarts append to.
    log_start: u64,
    reaped: bool,
}

impl Proc {
    /// Starts `program` with its output appended to `log`, and records its pid in `pids` for
    /// the watchdog.
    pub(crate) fn spawn(
        component: Component,
        program: &Path,
        args: &[String],
        log: &Path,
        pids: &Path,
    ) -> Result<Proc> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("open {}", log.display())))?;
        let log_start = out
            .metadata()
            .map_err(io(format!("stat {}", log.display())))?
            .len();
        let err = out
            .try_clone()
            .map_err(io(format!("reopen {}", log.display())))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group: a terminal's Ctrl-C reaches the test process only, and one signal
            // to the group reaches anything the component itself started.
            .process_group(0)
            .spawn()
            .map_err(io(format!("start {}", program.display())))?;
        let mut pid_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(pids)
            .map_err(io(format!("open {}", pids.display())))?;
        let proc = Proc {
            component,
            child,
            log: log.to_owned(),
            log_start,
            reaped: false,
        };
        writeln!(pid_file, "{}", proc.pid()).map_err(io(format!("write {}", pids.display())))?;
        Ok(proc)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reaped = true;
                Some(status)
            }
            Ok(None) => None,
            // Only possible if it was reaped already, so it is not running.
            Err(_) => Some(ExitStatus::default()),
        }
    }

    /// This run's output so far.
    pub(crate) fn output(&self) -> String {
        read_from(&self.log, self.log_start)
    }

    /// The last lines of this run's output.
    pub(crate) fn tail(&self) -> String {
        tail(&self.output(), 40)
    }

    pub(crate) fn exited_error(&self, plane: &str, status: ExitStatus) -> Error {
        Error::Exited {
            plane: plane.to_owned(),
            component: self.component,
            status: status.to_string(),
            log: self.log.clone(),
            tail: self.tail(),
        }
    }

    /// Sends `signal` to the process group.
    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        killpg(Pid::from_raw(self.pid() as i32), signal).map_err(|e| Error::Io {
            what: format!("send {signal} to {} (pid {})", self.component, self.pid()),
            source: e.into(),
        })
    }

    /// Asks the group to stop with SIGTERM, then kills it after `grace`, and reaps the process.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.reaped {
            return;
        }
        let _ = self.signal(Signal::SIGCONT);
        let _ = self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                // Its own children, if any, go with the group.
                let _ = self.signal(Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// Kills the group and reaps the process.
    pub(crate) fn kill(&mut self) {
        if self.reaped {
            return;
        }
        let _ = self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A shell loop, in its own process group, that waits for the test process to end, then kills
/// every process group listed in the plane's `pids` file and removes the plane's folder.
///
/// `Drop` cannot run after a SIGKILL, and statics such as the shared pair are never dropped at
/// all, so this is what guarantees that nothing outlives the test process.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
}

/// `$1`: the test process; `$2`: the plane folder; `$3`: `keep` to leave the folder. The test
/// process counts as gone when its state is missing or `Z`: `kill -0` succeeds on zombies, and
/// here nothing may reap them. The state comes from `/proc` (no process spawned per poll), or
/// from `ps -o stat` where there is no `/proc`.
const WATCHDOG: &str = r#"
trap '' INT HUP TERM
alive() {
  if [ -d /proc/self ]; then
    { read -r line < "/proc/$1/stat"; } 2>/dev/null || return 1
    state=${line##*") "}
  else
    state=$(ps -o stat= -p "$1" 2>/dev/null)
  fi
  case "$state" in ''|Z*) return 1 ;; esac
}
while alive "$1"; do sleep 0.5; done
if [ -f "$2/pids" ]; then
  for pid in $(cat "$2/pids"); do kill -s KILL -- "-$pid" 2>/dev/null; done
fi
[ "$3" = keep ] || rm -rf "$2"
"#;

impl Watchdog {
    pub(crate) fn spawn(dir: &Path, keep_dir: bool) -> Result<Watchdog> {
        let child = Command::new("sh")
            .args(["-c", WATCHDOG, "sync-test-watchdog"])
            .arg(std::process::id().to_string())
            .arg(dir)
            .arg(if keep_dir { "keep" } else { "remove" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io("start the watchdog shell"))?;
        Ok(Watchdog { child })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // The group also holds the loop's current `sleep`.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Whether `pid` is a live process: it exists and is not a zombie. Reads `/proc`, or asks
/// `ps -o stat` where there is no `/proc`; never `kill -0`, which succeeds on zombies.
pub fn is_running(pid: u32) -> bool {
    let state = if Path::new("/proc/self").is_dir() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The command name in parentheses may hold spaces; the state follows it.
        stat.rsplit_once(") ")
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    } else {
        Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    !state.is_empty() && !state.starts_with('Z')
}

/// The resident set size of `pid` in bytes, from `/proc`.
pub(crate) fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(io(format!("read {path}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| Error::Config(format!("no VmRSS in {path}")))
}

pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
