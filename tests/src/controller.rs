//! A controller running as a child process, for tests that kill, pause or restart it: its
//! output is collected line by line with the time each line arrived.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Which output a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error (the controller's log).
    Err,
}

/// One line of a child's output.
#[derive(Clone, Debug)]
pub struct Line {
    /// When the test read it.
    pub at: Instant,
    /// Where it came from.
    pub stream: Stream,
    /// The text, without the newline.
    pub text: String,
}

impl Line {
    /// Whether this is a log line at WARN or ERROR level (tracing's default format).
    pub fn is_warning(&self) -> bool {
        self.stream == Stream::Err
            && (self.text.contains(" WARN ") || self.text.contains(" ERROR "))
    }
}

/// A child process whose output is collected. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ControllerProcess {
    /// A name for messages.
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<Line>>>,
}

fn collect(r: impl AsyncRead + Unpin + Send + 'static, stream: Stream, to: Arc<Mutex<Vec<Line>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(text)) = lines.next_line().await {
            if std::env::var_os("SYNC_TEST_CHILD_LOG").is_some() {
                eprintln!("[child] {text}");
            }
            to.lock().unwrap_or_else(|e| e.into_inner()).push(Line {
                at: Instant::now(),
                stream,
                text,
            });
        }
    });
}

impl ControllerProcess {
    /// Starts `program` with `args`. Set `SYNC_TEST_CHILD_LOG=1` to see its output as it comes.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn spawn(name: &str, program: &Path, args: &[String]) -> ControllerProcess {
        ControllerProcess::spawn_with_env(name, program, args, &[])
    }

    /// As [`spawn`](Self::spawn), with these environment variables set for the child only.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> ControllerProcess {
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", program.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(
            child.stdout.take().expect("piped"),
            Stream::Out,
            lines.clone(),
        );
        collect(
            child.stderr.take().expect("piped"),
            Stream::Err,
            lines.clone(),
        );
        ControllerProcess {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many lines so far: a mark for [`lines_since`](Self::lines_since).
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The lines after `mark`.
    pub fn lines_since(&self, mark: usize) -> Vec<Line> {
        self.lines().into_iter().skip(mark).collect()
    }

    /// The last `n` lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        let start = lines.len().saturating_sub(n);
        lines[start..]
            .iter()
            .map(|l| format!("\n  {}", l.text))
            .collect()
    }

    /// Waits until a line after `mark` satisfies `pred`, and returns it.
    ///
    /// # Panics
    ///
    /// After `timeout`, or when the process exits first, with the end of its output.
    pub async fn wait_for_line(
        &mut self,
        what: &str,
        mark: usize,
        timeout: Duration,
        pred: impl Fn(&Line) -> bool,
    ) -> Line {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines_since(mark).into_iter().find(|l| pred(l)) {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers drain what is left before the last look.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(l) = self.lines_since(mark).into_iter().find(|l| pred(l)) {
                    return l;
                }
                panic!(
                    "{} exited ({status}) before {what}; its output ended with:{}",
                    self.name,
                    self.tail(40)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {} to log {what}; its output ended with:{}",
                    self.name,
                    self.tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until it prints `READY` after `mark` (its caches are filled and, with leader
    /// election, it leads).
    pub async fn wait_ready(&mut self, mark: usize, timeout: Duration) -> Instant {
        self.wait_for_line("READY", mark, timeout, |l| {
            l.stream == Stream::Out && l.text == "READY"
        })
        .await
        .at
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// Kills it with SIGKILL and reaps it.
    pub async fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait().await;
    }

    /// Asks it to stop with SIGTERM and waits up to `timeout` for it to exit; then kills it.
    /// Returns whether it exited by itself, successfully.
    pub async fn terminate(&mut self, timeout: Duration) -> bool {
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                self.kill().await;
                false
            }
        }
    }

    /// Freezes it with SIGSTOP.
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Lets it run again with SIGCONT.
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}
