//! Waiting for a step of the demo to converge on both clusters, with a time limit.

use std::time::{Duration, Instant};

use anyhow::bail;
use kube::Client;

use crate::rows::{self, Row, Target};
use crate::screen::Screen;

/// What a step waits for on one object.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Generation `g` applied, provisioned, reported up, credentials sent up.
    Synced(i64),
    /// Another region's object: never touched here.
    Ignored,
    /// Paused at remote generation `.0` with generation `.1` still applied.
    Held(i64, i64),
    /// Gone on both clusters, with the local namespace.
    Gone,
}

/// The first thing `row` still lacks to meet `e`.
fn missing(row: &Row, e: Expect) -> Option<&'static str> {
    let checks: Vec<(bool, &'static str)> = match e {
        Expect::Synced(g) => vec![
            (row.remote_gen == Some(g), "the remote change"),
            (row.applied == Some(g), "the spec to be applied locally"),
            (row.current(), "the status of this generation"),
            (row.status.as_deref() == Some("Ready"), "Ready"),
            (
                row.secret == Some("synced"),
                "the credentials to be sent up",
            ),
        ],
        Expect::Ignored => {
            let untouched = row.applied.is_none() && row.local_gen.is_none();
            vec![(row.remote_gen.is_some() && untouched, "to stay unsynced")]
        }
        Expect::Held(remote, applied) => vec![
            (
                row.remote_gen == Some(remote) && row.paused,
                "the pause and the change",
            ),
            (
                row.applied == Some(applied),
                "nothing to be applied while paused",
            ),
        ],
        Expect::Gone => vec![
            (row.remote_gen.is_none(), "the remote object to be released"),
            (row.local_gen.is_none(), "the local copy to go"),
            (!row.local_ns, "the local namespace to go"),
        ],
    };
    checks.into_iter().find(|(ok, _)| !ok).map(|(_, what)| what)
}

/// The demo's objects as last seen, and the steps done so far.
pub struct Steps {
    pub remote: Client,
    pub local: Client,
    pub targets: Vec<Target>,
    pub rows: Vec<Row>,
    /// Each converged step and how long it took.
    pub done: Vec<(String, Duration)>,
    timeout: Duration,
    /// How long a converged step stays on screen before the next starts.
    linger: Duration,
}

impl Steps {
    /// Steps on `targets`, each given `timeout` to converge.
    pub fn new(remote: Client, local: Client, targets: Vec<Target>, timeout: Duration) -> Self {
        let (rows, done, linger) = (Vec::new(), Vec::new(), Duration::ZERO);
        Steps {
            remote,
            local,
            targets,
            rows,
            done,
            timeout,
            linger,
        }
    }

    /// Keeps each converged step on screen for `linger`.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    async fn look(&mut self) -> Option<String> {
        match rows::observe(&self.remote, &self.local, &self.targets).await {
            Ok(rows) => {
                self.rows = rows;
                None
            }
            Err(e) => Some(format!("the clusters to answer ({e})")),
        }
    }

    fn waiting_for(&self, expect: &[Expect]) -> Option<String> {
        let mut each = self.targets.iter().zip(&self.rows).zip(expect);
        each.find_map(|((t, r), e)| missing(r, *e).map(|m| format!("{}: {m}", t.name)))
    }

    /// Waits until every object meets its expectation, showing the rows as they change.
    ///
    /// # Errors
    ///
    /// When the step has not converged within the time limit; the message says what was
    /// still awaited.
    pub async fn step(
        &mut self,
        s: &mut Screen,
        title: &str,
        expect: &[Expect],
    ) -> anyhow::Result<()> {
        s.say(format!("\n• {title}"));
        let start = Instant::now();
        loop {
            let waiting = match self.look().await {
                None => self.waiting_for(expect),
                failed => failed,
            };
            let Some(waiting) = waiting else { break };
            let elapsed = start.elapsed();
            s.show(
                &self.targets,
                &self.rows,
                &format!("… {}s, waiting for {waiting}", elapsed.as_secs()),
            );
            if elapsed > self.timeout {
                let limit = self.timeout.as_secs();
                bail!(
                    "step \"{title}\" did not converge within {limit}s; still waiting for {waiting}"
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let took = start.elapsed();
        s.show(
            &self.targets,
            &self.rows,
            &format!("✓ converged in {:.1}s", took.as_secs_f64()),
        );
        s.say(format!("  ✓ converged in {:.1}s", took.as_secs_f64()));
        self.done.push((title.to_owned(), took));
        tokio::time::sleep(self.linger).await;
        Ok(())
    }

    /// Checks for `span` that every object keeps meeting its expectation.
    ///
    /// # Errors
    ///
    /// As soon as one does not, saying what moved.
    pub async fn hold(
        &mut self,
        s: &mut Screen,
        title: &str,
        span: Duration,
        expect: &[Expect],
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < span {
            match self.look().await {
                Some(failed) => s.say(format!("  waiting for {failed}")),
                None => {
                    if let Some(moved) = self.waiting_for(expect) {
                        bail!("{title}: something moved; expected {moved}");
                    }
                }
            }
            let left = span.saturating_sub(start.elapsed()).as_secs();
            s.show(
                &self.targets,
                &self.rows,
                &format!("… checking that nothing moves ({left}s left)"),
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        s.say(format!(
            "  ✓ {title}: nothing moved for {}s",
            span.as_secs()
        ));
        self.done.push((title.to_owned(), span));
        Ok(())
    }
}
