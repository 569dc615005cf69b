//! The simulated world: two clusters, one controller per kind, the trace, and the ledger the
//! invariants read. A controller pass runs here as the runtime runs it: observe, plan, execute,
//! transition, plan again, at most [`MAX_STEPS`] steps, with the invariants checked after
//! every step.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use sync_core::ObjectKey;
use sync_core::plan::{Answer, Observed, Step, plan, transition};

use crate::cluster::{Change, Cluster, KINDS};
use crate::controller::{Controller, Setup};
use crate::executor::{Target, describe, describe_answer, execute, target};
use crate::invariants;
use crate::kind::{Thing, ThingSpec};

/// The most steps one pass takes, as in the runtime.
pub const MAX_STEPS: usize = 12;

/// How many trace lines a failure prints, unless the whole trace is asked for.
pub const TRACE: usize = 40;

/// What the invariants count and remember.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Remote specs by (UID, generation), as the management plane wrote them.
    pub history: BTreeMap<(String, i64), ThingSpec>,
    /// Changes by anyone but the controllers, per (kind, remote key): each may cause writes.
    pub sources: BTreeMap<(usize, ObjectKey), u32>,
    /// Restarts per controller: each forgets what was not kept.
    pub restarts: [u32; KINDS],
    /// Controller writes per (kind, remote key), by [`Target`].
    pub writes: BTreeMap<(usize, ObjectKey), [u32; 4]>,
}

/// The whole simulated world.
pub struct World {
    /// The management cluster.
    pub remote: Cluster,
    /// The regional cluster.
    pub local: Cluster,
    /// One controller per kind, by kind.
    pub ctrls: Vec<Controller>,
    /// The invariants' ledger.
    pub ledger: Ledger,
    /// The last lines of the trace.
    pub trace: VecDeque<String>,
    /// The number of the current world step.
    pub step: usize,
    /// The actors have stopped: paused objects must see no write at all.
    pub quiet: bool,
    /// How many trace lines are kept.
    pub trace_len: usize,
    /// How often each step and error happened, for the summary.
    pub stats: BTreeMap<String, u64>,
}

impl World {
    /// A world with empty clusters and these controllers, one per kind.
    pub fn new(setups: Vec<Setup>) -> Self {
        let remote = Cluster::new(true);
        let local = Cluster::new(false);
        let ctrls = setups
            .into_iter()
            .map(|s| Controller::start(Rc::new(s), &remote, &local))
            .collect();
        World {
            remote,
            local,
            ctrls,
            ledger: Ledger::default(),
            trace: VecDeque::new(),
            step: 0,
            quiet: false,
            trace_len: TRACE,
            stats: BTreeMap::new(),
        }
    }

    /// Adds a line to the trace.
    pub fn note(&mut self, line: String) {
        if self.trace.len() == self.trace_len {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("[{}] {line}", self.step));
    }

    /// Hands the clusters' changes to the watches; changes an actor made count as sources of
    /// writes for the keys they touch.
    pub fn route(&mut self, by_actor: bool) {
        let changes: Vec<(bool, Change)> = (self.remote.changes.drain(..).map(|c| (true, c)))
            .chain(self.local.changes.drain(..).map(|c| (false, c)))
            .collect();
        for (remote_side, change) in changes {
            for c in &mut self.ctrls {
                c.enqueue(remote_side, &change);
            }
            let Change::Object(kind, key, obj) = change else {
                continue;
            };
            if remote_side && let Some(o) = &obj {
                let id = (
                    o.metadata.uid.clone().unwrap_or_default(),
                    o.metadata.generation.unwrap_or(0),
                );
                let old = self
                    .ledger
                    .history
                    .entry(id)
                    .or_insert_with(|| o.spec.clone());
                assert_eq!(
                    *old, o.spec,
                    "model bug: a spec changed without a new generation"
                );
            }
            let remote_key = if remote_side {
                Some(key)
            } else {
                self.ctrls[kind].setup.mapping.to_remote(&key)
            };
            if by_actor && let Some(k) = remote_key {
                *self.ledger.sources.entry((kind, k)).or_default() += 1;
            }
        }
    }

    /// Restarts a controller: cold caches, listed afresh; nothing kept in memory survives.
    pub fn restart(&mut self, kind: usize) {
        self.route(true);
        let setup = self.ctrls[kind].setup.clone();
        self.ctrls[kind] = Controller::start(setup, &self.remote, &self.local);
        self.ledger.restarts[kind] += 1;
        self.note(format!("restart {}", self.ctrls[kind].setup.name()));
    }

    /// Runs one reconcile pass of the controller of `kind` for a remote key. Returns how many
    /// writes it made, or the first invariant it broke.
    pub fn pass(&mut self, kind: usize, key: &ObjectKey) -> Result<usize, String> {
        let setup = self.ctrls[kind].setup.clone();
        let Ok(local_key) = setup.mapping.to_local(key) else {
            return Ok(0);
        };
        let Some(mut obs) = self.ctrls[kind].observe(key, &local_key, &self.remote) else {
            self.count("pass skipped".into());
            return Ok(0);
        };
        let cx = setup.cx(key, &local_key);
        for n in 0..MAX_STEPS {
            let step = plan(&obs, &cx);
            let name = describe(&step)
                .split('(')
                .next()
                .unwrap_or_default()
                .to_owned();
            self.count(name);
            if !step.is_write() {
                if n > 0 || !matches!(step, Step::InSync) {
                    self.note(format!("{}/{key}: {}", setup.name(), describe(&step)));
                }
                return Ok(n);
            }
            if !self.write(kind, (key, &local_key), &mut obs, &step)? {
                return Ok(n);
            }
        }
        self.count("pass requeued after 12 steps".into());
        self.note(format!(
            "{}/{key}: {MAX_STEPS} steps, requeued",
            setup.name()
        ));
        Ok(MAX_STEPS)
    }

    /// Executes one write step of a pass and applies its answer; `false` when the API server
    /// refused it, which ends the pass as an error does in the runtime.
    fn write(
        &mut self,
        kind: usize,
        (key, local_key): (&ObjectKey, &ObjectKey),
        obs: &mut Observed<Thing>,
        step: &Step<Thing>,
    ) -> Result<bool, String> {
        let setup = self.ctrls[kind].setup.clone();
        let cx = setup.cx(key, local_key);
        let who = format!("{}/{key}", setup.name());
        if let Err(e) = invariants::before_write(self, kind, (key, local_key), obs, step) {
            self.note(format!("{who}: {} (not sent)", describe(step)));
            return Err(e);
        }
        let result = execute(
            &mut self.remote,
            &mut self.local,
            &setup,
            (key, local_key),
            step,
        );
        let answer = match result {
            Ok(a) => a,
            Err(e) => {
                self.count(format!("{e:?}"));
                self.note(format!("{who}: {} -> {e:?}", describe(step)));
                self.route(false);
                return Ok(false);
            }
        };
        self.note(format!(
            "{who}: {} -> {}",
            describe(step),
            describe_answer(&answer)
        ));
        let t = target(step);
        if let Answer::Namespace(ns) = &answer {
            self.ctrls[kind]
                .own_namespaces
                .insert(local_key.namespace.clone(), ns.clone());
        }
        if let Answer::Object(o) = &answer {
            let remote_side = matches!(t, Target::Status | Target::RemoteMeta);
            self.ctrls[kind].remember(key, remote_side, &o.metadata);
        }
        self.ledger.writes.entry((kind, key.clone())).or_default()[t as usize] += 1;
        if let Some(not_kept) = transition(obs, step, answer, &cx) {
            self.count(not_kept.reason().into());
            self.note(format!("{who}: not kept: {}", not_kept.reason()));
        }
        self.ctrls[kind]
            .unkept
            .insert(key.clone(), obs.unkept.clone());
        self.route(false);
        invariants::after_step(self)?;
        invariants::budget(self, kind, key)?;
        Ok(true)
    }

    fn count(&mut self, what: String) {
        *self.stats.entry(what).or_default() += 1;
    }

    /// The local object of a remote key of a kind, as it is.
    pub fn local_of(&self, kind: usize, key: &ObjectKey) -> Option<&Thing> {
        let lk = self.ctrls[kind].setup.mapping.to_local(key).ok()?;
        self.local.objects[kind].get(&lk)
    }
}
