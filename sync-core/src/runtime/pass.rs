//! The pass over one key: observe, plan a step, execute it, and loop until in sync; and the
//! queue of keys that runs the passes.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, error, info, warn};

use super::Inner;
use super::state::lock;
use crate::error::Error;
use crate::mapping::ObjectKey;
use crate::outcome::Reconciled;
use crate::plan::{Answer, Observed, PlanContext, Step, Unkept, plan, transition};
use crate::reachability::Failure;
use crate::scheduler::{self, Backoff, Outcome};
use crate::syncable::SyncObject;

/// How long a pass that waits for an event looks again after, the first time: the wait ends
/// on the event that ends it (the namespace's deletion, which queues every key of that
/// namespace, or the local object's), or on a relist of the namespaces, which queues every
/// waiting key. The look is only a safety net, so it comes late and backs off, doubling with
/// each wait in a row up to [`EVENT_WAIT_MAX`]: in a mass deletion the namespace controller
/// takes minutes to remove a thousand namespaces, and each look of each waiting object is a
/// pass, which would make the controller's work grow faster than the objects.
const EVENT_WAIT_FIRST: Duration = Duration::from_secs(60);
const EVENT_WAIT_MAX: Duration = Duration::from_secs(600);
/// How long a pass that waits for nothing a watch announces looks again after, doubling up to
/// [`EVENT_WAIT_FIRST`].
const NEXT_PASS: Duration = Duration::from_secs(1);
/// At most this many writes in one pass for one key; then the key is queued again.
const MAX_STEPS: usize = 12;

/// The Lease a replica is elected on, and its identity, for logs.
pub(super) struct Elected {
    pub(super) lease: String,
    pub(super) identity: String,
}

impl<K: SyncObject> Inner<K> {
    /// Works the queue until shutdown; under leader election (`elected`), only while this
    /// replica holds the Lease. The manager runs the election.
    pub(super) async fn run_queue(
        self: Arc<Self>,
        elected: Option<Arc<Elected>>,
        shutdown: Shared<BoxFuture<'static, ()>>,
    ) {
        let Some(mut rx) = lock(&self.queued).take() else {
            return;
        };
        let (backoff, deadline) = (self.backoff, self.shutdown_deadline);
        let Some(elected) = elected else {
            self.work(&mut rx, backoff, deadline, shutdown).await;
            return;
        };
        let Elected { lease, identity } = &*elected;
        let controller = self.config.controller_name.clone();
        loop {
            tokio::select! {
                () = shutdown.clone() => break,
                () = self.stand_by(&mut rx) => {}
            }
            info!(%controller, %lease, %identity, "leading");
            // Shutdown lets running reconciles finish within the deadline, still behind the
            // fence (the election renews meanwhile). A lapsed hold drops them at once: a
            // standby may be about to take over.
            let work = self
                .clone()
                .work(&mut rx, backoff, deadline, shutdown.clone());
            tokio::select! {
                () = work => {}
                () = self.fence.lapsed() => {}
            }
            if shutdown.peek().is_some() {
                break;
            }
            warn!(%controller, %lease, %identity, "lost the lease; running reconciles stopped, standing by");
        }
    }

    /// Drops the keys (a new term requeues everything) until this replica holds the Lease.
    async fn stand_by(&self, rx: &mut mpsc::UnboundedReceiver<ObjectKey>) {
        loop {
            tokio::select! {
                () = self.fence.opened() => return,
                Some(_) = rx.recv() => {}
            }
        }
    }

    /// Runs passes for the keys from `rx` until `stop`.
    pub(super) async fn work(
        self: Arc<Self>,
        rx: &mut mpsc::UnboundedReceiver<ObjectKey>,
        backoff: Backoff,
        deadline: Duration,
        stop: impl Future<Output = ()> + Send,
    ) {
        // Every cached object gets a pass when work starts: the watch events that announced
        // them may have been consumed while the caches filled or while standing by.
        let initial = self.all_keys();
        let me = self.clone();
        let metrics = self.metrics.clone();
        let queue = scheduler::QueueConfig {
            concurrency: self.config.concurrency,
            backoff,
            deadline,
        };
        let lanes = self.clone();
        scheduler::run_lanes(
            rx,
            initial,
            queue,
            &self.retry,
            move |key| lanes.lane(key),
            move |key| me.clone().reconcile(key),
            move |d| metrics.queue_depth(d),
            stop,
        )
        .await;
    }

    /// The queue lane of a key: changes to an object whose local copy exists go ahead of
    /// new objects, so a status or spec change does not wait behind a burst of creations.
    fn lane(&self, key: &ObjectKey) -> scheduler::Lane {
        let copied = self
            .mapping
            .to_local(key)
            .is_ok_and(|local| self.local_store.get(&local).is_some());
        if copied {
            scheduler::Lane::Changes
        } else {
            scheduler::Lane::Rest
        }
    }

    async fn reconcile(self: Arc<Self>, key: ObjectKey) -> Outcome {
        let span = tracing::info_span!(
            "reconcile",
            controller = %self.config.controller_name,
            remote = %key,
            local = tracing::field::Empty,
        );
        let _pass = self.pass_starts(&key);
        // A panic in a pass (the kind's own copy functions are user code) must not take the
        // key with it: the queue would wait for the pass for good. It counts as a failure.
        let pass = AssertUnwindSafe(self.reconcile_key(&key).instrument(span.clone()));
        let result = pass.catch_unwind().await;
        let _entered = span.enter();
        let Ok(result) = result else {
            error!("reconcile panicked; retrying with backoff");
            self.metrics.reconciled("panic");
            self.tell(&key, "panic", Some("the pass panicked".to_owned()));
            return Outcome::Failed;
        };
        let mut failure = None;
        let (label, outcome) = match result {
            Ok(r) => r,
            Err(e) if e.is_conflict() => {
                debug!(error = %e, "conflict; retrying");
                ("conflict", Outcome::Conflict)
            }
            Err(Error::BudgetExhausted(wait)) => ("waiting", Outcome::RequeueAfter(wait)),
            // The Lease lapsed under this pass: not the object's failure, and the next term
            // (here or on the new leader) requeues every object.
            Err(e) if e.is_not_leading() => {
                debug!(error = %e, "write refused: not leading");
                ("not_leading", Outcome::Done)
            }
            Err(e) => {
                self.report_failure(&e).await;
                failure = Some(e.to_string());
                ("error", Outcome::Failed)
            }
        };
        if label != "waiting" {
            lock(&self.waits).remove(&key);
        }
        self.metrics.reconciled(label);
        self.tell(&key, label, failure);
        outcome
    }

    /// Tells the program how a pass ended, if it asked.
    fn tell(&self, key: &ObjectKey, outcome: &'static str, error: Option<String>) {
        if let Some(f) = &self.on_reconciled {
            f(&Reconciled {
                object: key.clone(),
                outcome,
                error,
            });
        }
    }

    /// Logs a failed pass: once per outage when its cluster is unreachable.
    async fn report_failure(&self, e: &Error) {
        let (reach, source) = match e {
            Error::Remote { source, .. } => (&self.remote_reach, source),
            Error::Local { source, .. } => (&self.local_reach, source),
            _ => {
                warn!(error = %e, "reconcile failed; retrying with backoff");
                return;
            }
        };
        match reach.failed_request(source).await {
            Failure::NowUnreachable => warn!(
                cluster = reach.cluster(),
                error = %e,
                "cluster unreachable; objects that need it retry with backoff, and at once when it answers"
            ),
            Failure::StillUnreachable => {
                debug!(error = %e, "reconcile failed; cluster still unreachable");
            }
            Failure::Answered => warn!(error = %e, "reconcile failed; retrying with backoff"),
        }
    }

    async fn reconcile_key(&self, key: &ObjectKey) -> Result<(&'static str, Outcome), Error> {
        let local_key = match self.mapping.to_local(key) {
            Ok(k) => k,
            Err(e) if e.is_foreign() => return Ok(("skipped", Outcome::Done)),
            Err(e) => {
                self.report_unmapped(key, &e).await;
                return Ok(("skipped", Outcome::Done));
            }
        };
        tracing::Span::current().record("local", tracing::field::display(&local_key));
        let Some(mut obs) = self.observe(key, &local_key).await? else {
            return Ok(("skipped", Outcome::Done));
        };
        let cx = PlanContext {
            config: &self.config,
            keys: &self.keys,
            mapping: &self.mapping,
            remote_key: key,
            local_key: &local_key,
        };
        obs.unkept = lock(&self.unkept).get(key).cloned().unwrap_or_default();
        let result = self.run_steps(&mut obs, &cx).await;
        // What the server did not keep outlives the pass: the next one must not send it again.
        match obs.unkept == Unkept::default() {
            true => lock(&self.unkept).remove(key),
            false => lock(&self.unkept).insert(key.clone(), obs.unkept.clone()),
        };
        result
    }

    /// Plans and executes steps until there is nothing to write, or a step waits or fails.
    async fn run_steps(
        &self,
        obs: &mut Observed<K>,
        cx: &PlanContext<'_>,
    ) -> Result<(&'static str, Outcome), Error> {
        let key = cx.remote_key;
        let mut wrote = false;
        for _ in 0..MAX_STEPS {
            let step = plan(obs, cx);
            self.note_paused(key, matches!(step, Step::Paused));
            if !matches!(step, Step::ClaimedElsewhere(_)) {
                lock(&self.claimed_elsewhere).remove(key);
            }
            if matches!(
                step,
                Step::InSync | Step::Paused | Step::ClaimedElsewhere(_)
            ) {
                // No deletion is due for this key now: a later hold is a new trip.
                self.budget.end_trip(key);
            }
            match step {
                Step::InSync => {
                    lock(&self.seen).remove(key);
                    return Ok((if wrote { "wrote" } else { "in_sync" }, Outcome::Done));
                }
                Step::Paused => return Ok(("paused", Outcome::Done)),
                Step::ClaimedElsewhere(owner) => {
                    let remote = obs.remote.object();
                    self.report_claimed(key, &owner, remote).await;
                    return Ok(("skipped", Outcome::Done));
                }
                Step::Wait(wait) => {
                    let n = {
                        let mut waits = lock(&self.waits);
                        let n = waits.entry(key.clone()).or_default();
                        *n = n.saturating_add(1);
                        *n
                    };
                    let (first, max) = match wait.ends_on_event() {
                        true => (EVENT_WAIT_FIRST, EVENT_WAIT_MAX),
                        false => (NEXT_PASS, EVENT_WAIT_FIRST),
                    };
                    let delay = first.saturating_mul(1 << (n - 1).min(8)).min(max);
                    debug!(why = wait.why(), ?delay, "waiting");
                    return Ok(("waiting", Outcome::RequeueAfter(delay)));
                }
                step => {
                    let answer = {
                        let _writing = self.write_starts(key);
                        self.execute(&step, obs, key, cx.local_key).await?
                    };
                    if let Answer::Namespace(ns) = &answer {
                        lock(&self.own_namespaces)
                            .insert(cx.local_key.namespace.clone(), ns.clone());
                    }
                    if let Some(what) = transition(obs, &step, answer, cx) {
                        self.report_not_kept(what, obs).await;
                    }
                    wrote = true;
                }
            }
        }
        // The model promises convergence in fewer steps; a pass that still has work is a
        // server that keeps changing what was written, and gets the failure backoff.
        warn!(
            steps = MAX_STEPS,
            "still not in sync after this many writes; retrying with backoff"
        );
        Ok(("error", Outcome::Failed))
    }
}
