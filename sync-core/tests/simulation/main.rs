//! Deterministic simulation of the whole sync loop, in the manner of TigerBeetle's and
//! FoundationDB's: a seeded world of two model clusters, two kinds each synced by its own
//! controller into shared namespaces, and actors (the management plane, the local controller,
//! people, restarts, late and reordered watches) chosen by the seed. The controllers run the
//! real `plan` and `transition`; the invariants in `invariants.rs` are checked after every
//! step, and once the world is quiet it must converge (`converge.rs`).
//!
//! - `SIM_SEEDS=<n>` runs more seeds (default 2000), `SIM_STEPS=<n>` longer worlds (200);
//! - `SIM_SEED=<n>` replays one seed and prints its trace.

mod actors;
mod cluster;
mod controller;
mod converge;
mod executor;
mod invariants;
mod kind;
mod world;

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use sync_core::{OnRemoteDelete, Propagation, SyncConfig};

use controller::Setup;
use world::World;

/// A seed that broke an invariant, with the end of its trace.
struct Failure {
    seed: u64,
    message: String,
    trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} broke an invariant:\n  {}\nlast events:",
            self.seed, self.message
        )?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "replay: SIM_SEED={} cargo test -p sync-core --test simulation",
            self.seed
        )
    }
}

/// The two controllers of a seed: one kind per controller, sharing namespaces.
fn setups(rng: &mut StdRng) -> Vec<Setup> {
    let propagation = [Propagation::Foreground, Propagation::Background];
    let policy = [
        OnRemoteDelete::Namespace,
        OnRemoteDelete::NamespaceOrResource,
    ];
    let config = |name: &str, rng: &mut StdRng| {
        SyncConfig::new(name)
            .remote_suffix("-eu")
            .local_namespace_suffix("-l")
            .propagation(*propagation.choose(rng).unwrap_or(&Propagation::Foreground))
    };
    // Half the seeds record a new copy's generations in the claim (the simulated status
    // carries observedGeneration).
    let db = config("db-sync", rng).status_observed_generation(rng.random_bool(0.5));
    let cache = config("cache-sync", rng)
        .on_remote_delete(*policy.choose(rng).unwrap_or(&OnRemoteDelete::Namespace));
    vec![Setup::new(0, db), Setup::new(1, cache)]
}

/// Runs one seeded world: `steps` actor steps, then quiet until it converges. A replay keeps
/// and prints the whole trace.
fn run(
    seed: u64,
    steps: usize,
    replay: bool,
    stats: &mut BTreeMap<String, u64>,
) -> Result<(), Failure> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = World::new(setups(&mut rng));
    if replay {
        w.trace_len = usize::MAX;
    }
    // A namespace people made by hand: no controller may ever delete it.
    w.local
        .create_ns("t3-l", Default::default())
        .expect("a fresh cluster");
    w.route(true);
    let mut result = Ok(());
    for step in 0..steps {
        w.step = step;
        result = actors::act(&mut w, &mut rng).and_then(|()| invariants::after_step(&w));
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        w.step = steps;
        result = converge::converge(&mut w, &mut rng);
    }
    for (k, v) in std::mem::take(&mut w.stats) {
        *stats.entry(k).or_default() += v;
    }
    if replay && result.is_ok() {
        w.trace.iter().for_each(|line| eprintln!("{line}"));
    }
    result.map_err(|message| Failure {
        seed,
        message,
        trace: w.trace.iter().cloned().collect(),
    })
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeded_worlds_keep_every_invariant() {
    let steps = env("SIM_STEPS").unwrap_or(200) as usize;
    let seeds: Vec<u64> = match env("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env("SIM_SEEDS").unwrap_or(2000)).collect(),
    };
    let replay = seeds.len() == 1;
    let mut stats = BTreeMap::new();
    let mut failures: BTreeMap<String, (Vec<u64>, Failure)> = BTreeMap::new();
    let started = std::time::Instant::now();
    for &seed in &seeds {
        if let Err(failure) = run(seed, steps, replay, &mut stats) {
            let class = failure
                .message
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            failures
                .entry(class)
                .or_insert((Vec::new(), failure))
                .0
                .push(seed);
        }
    }
    eprintln!(
        "{} seeds x {steps} steps in {:?}: {stats:?}",
        seeds.len(),
        started.elapsed()
    );
    if failures.is_empty() {
        return;
    }
    for (class, (seeds, first)) in &failures {
        // A model that is badly broken fails most seeds: the first few are enough to replay.
        let shown = &seeds[..seeds.len().min(12)];
        let more = if seeds.len() > shown.len() {
            ", ..."
        } else {
            ""
        };
        eprintln!(
            "\n{class}: {} seeds {shown:?}{more}; the first:\n{first}",
            seeds.len()
        );
    }
    let total: usize = failures.values().map(|(s, _)| s.len()).sum();
    panic!(
        "{total} of {} seeds broke an invariant (see above)",
        seeds.len()
    );
}

/// Scripted: the controller made a namespace; someone deletes it and makes their own under the
/// same name while the controller's namespace watch lags; then the remote object goes. The
/// clean-up decided from the stale cache must not delete their namespace: its delete is
/// conditional on the UID and resource version it saw.
#[test]
fn a_namespace_made_again_by_someone_else_while_the_watch_lags_is_not_deleted() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut w = World::new(setups(&mut rng));
    let key = sync_core::ObjectKey::new("t1", "a-eu");
    let spec = kind::ThingSpec {
        size: "s".into(),
        replicas: None,
        note: None,
    };
    let mut r = kind::Thing::new(&key.name, spec);
    r.metadata.namespace = Some(key.namespace.clone());
    w.remote.create(0, r).unwrap();
    // Synced: every event delivered, passes until nothing is written.
    let settle = |w: &mut World| {
        for _ in 0..10 {
            w.route(true);
            for c in &mut w.ctrls {
                for stream in 0..3 {
                    while c.deliver(stream).is_some() {}
                }
            }
            if w.pass(0, &key).unwrap() == 0 {
                return;
            }
        }
        panic!("did not settle: {:?}", w.trace);
    };
    settle(&mut w);
    let made = w.local.namespaces["t1-l"].meta.uid.clone();
    assert!(made.is_some(), "the controller made the namespace");

    // Someone deletes it and makes their own; the controller's namespace watch lags.
    w.local.delete_ns("t1-l", None, None).unwrap();
    while w.local.namespaces.contains_key("t1-l") {
        w.local.tick_namespaces();
    }
    let theirs = w.local.create_ns("t1-l", Default::default()).unwrap().uid;
    // The remote object goes; only the remote stream catches up.
    w.remote.delete(0, &key, false).unwrap();
    w.route(true);
    while w.ctrls[0].deliver(0).is_some() {}
    for _ in 0..5 {
        w.pass(0, &key).unwrap();
    }
    let ns = &w.local.namespaces["t1-l"];
    assert_eq!(ns.meta.uid, theirs);
    assert!(
        ns.meta.deletion_timestamp.is_none(),
        "the controller deleted a namespace someone else made: {:#?}",
        w.trace
    );
}
