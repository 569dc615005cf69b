//! Everyone but the sync controllers, and the scheduler that picks who acts next: the
//! management plane, the local controller, people, restarts, the namespace controller and
//! garbage collector, and the watches that deliver events late and out of order between
//! streams.

use std::collections::BTreeMap;

use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use sync_core::ObjectKey;

use crate::cluster::{Cluster, KINDS};
use crate::controller::STREAMS;
use crate::kind::{REWRITTEN_LABEL, Thing, ThingSpec, ThingStatus, has_finalizer};
use crate::world::World;

/// The management plane's finalizer, which it removes some time after a deletion.
pub const HOLD: &str = "mgmt.dev/hold";

const NAMESPACES: [&str; 4] = ["t1", "t2", "t3", "t4"];
const NAMES: [&str; 2] = ["a-eu", "b-eu"];
const SIZES: [&str; 3] = ["s", "m", "l"];
const PAUSED: &str = "cloud.teleport.dev/paused";

/// One world step: someone acts.
pub fn act(w: &mut World, rng: &mut StdRng) -> Result<(), String> {
    match rng.random_range(0..100) {
        0..30 => deliver(w, rng),
        30..55 => {
            let kind = rng.random_range(0..KINDS);
            let known: Vec<ObjectKey> = w.ctrls[kind].known.iter().cloned().collect();
            if let Some(key) = known.choose(rng) {
                w.pass(kind, key)?;
            }
        }
        55..67 => management(w, rng),
        67..75 => write_statuses(w, rng, false),
        75..80 => local_edit(w, rng),
        80..83 => pause(w, rng),
        83..85 => w.restart(rng.random_range(0..KINDS)),
        85..90 => {
            w.local.tick_namespaces();
            w.local.collect_garbage();
        }
        90..92 => namespace_by_hand(w, rng),
        _ => {
            // A burst: one stream catches up.
            let c = rng.random_range(0..KINDS);
            let s = rng.random_range(0..3);
            while w.ctrls[c].deliver(s).is_some() {}
        }
    }
    w.route(true);
    Ok(())
}

fn deliver(w: &mut World, rng: &mut StdRng) {
    for _ in 0..rng.random_range(1..4) {
        let c = rng.random_range(0..KINDS);
        let streams: Vec<usize> = (0..STREAMS.len())
            .filter(|&s| !w.ctrls[c].queues[s].is_empty())
            .collect();
        if let Some(&s) = streams.choose(rng)
            && let Some(line) = w.ctrls[c].deliver(s)
        {
            w.note(line);
        }
    }
}

fn random_spec(rng: &mut StdRng) -> ThingSpec {
    ThingSpec {
        size: SIZES.choose(rng).copied().unwrap_or("s").into(),
        replicas: [None, Some(2), Some(3)].choose(rng).copied().flatten(),
        note: None,
    }
}

/// The management plane: creates, changes and deletes remote objects.
fn management(w: &mut World, rng: &mut StdRng) {
    let kind = rng.random_range(0..KINDS);
    let ns = NAMESPACES.choose(rng).copied().unwrap_or("t1");
    let key = ObjectKey::new(ns, NAMES.choose(rng).copied().unwrap_or("a-eu"));
    let Some(mut r) = w.remote.objects[kind].get(&key).cloned() else {
        let mut r = Thing::new(&key.name, random_spec(rng));
        r.metadata.namespace = Some(key.namespace.clone());
        r.metadata.labels = Some(BTreeMap::from([("team".to_string(), "blue".to_string())]));
        r.metadata.finalizers = rng.random_bool(0.3).then(|| vec![HOLD.to_string()]);
        let _ = w.remote.create(kind, r);
        return w.note(format!("management creates {kind}:{key}"));
    };
    let what = match rng.random_range(0..7) {
        0..2 => {
            r.spec = random_spec(rng);
            let _ = w.remote.replace(kind, &r, false);
            format!(
                "changes the spec of {kind}:{key} to {:?}/{:?}",
                r.spec.size, r.spec.replicas
            )
        }
        2 => {
            let labels = r.metadata.labels.get_or_insert_with(BTreeMap::new);
            let team = ["blue", "red"].choose(rng).copied().unwrap_or("blue");
            labels.insert("team".into(), team.into());
            if labels.remove(REWRITTEN_LABEL).is_none() {
                labels.insert(REWRITTEN_LABEL.into(), "gold".into());
            }
            let _ = w.remote.replace(kind, &r, false);
            format!("changes the labels of {kind}:{key}")
        }
        3 | 4 => {
            let _ = w.remote.delete(kind, &key, false);
            format!("deletes {kind}:{key}")
        }
        5 => {
            let _ = w.remote.patch_meta(kind, &key, None, |m| {
                m.finalizers
                    .get_or_insert_with(Vec::new)
                    .retain(|f| f != HOLD);
            });
            format!("releases its hold on {kind}:{key}")
        }
        _ => {
            let n = rng.random_range(0..1000).to_string();
            let _ = w.remote.patch_meta(kind, &key, None, |m| {
                m.annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert("mgmt.dev/touched".into(), n);
            });
            format!("annotates {kind}:{key}")
        }
    };
    w.note(format!("management {what}"));
}

/// The local controller: writes a status for every new local generation (all of them when
/// `all`, else one), and now and then changes one for the same generation.
pub fn write_statuses(w: &mut World, rng: &mut StdRng, all: bool) {
    let mut due: Vec<(usize, ObjectKey, i64)> = Vec::new();
    for kind in 0..KINDS {
        for (k, o) in &w.local.objects[kind] {
            let g = o.metadata.generation.unwrap_or(0);
            let stale = o.status.as_ref().is_none_or(|s| s.observed_generation != g);
            if stale || (!all && rng.random_bool(0.1)) {
                due.push((kind, k.clone(), g));
            }
        }
    }
    let picked: Vec<_> = if all {
        due
    } else {
        due.choose(rng).cloned().into_iter().collect()
    };
    for (kind, key, g) in picked {
        let status = ThingStatus {
            ready: rng.random_bool(0.5),
            observed_generation: g,
            detail: rng.random_bool(0.5).then(|| "from-local-crd".into()),
        };
        let _ = w.local.patch_status(kind, &key, Some(status));
        w.note(format!(
            "local controller writes the status of {kind}:{key} for generation {g}"
        ));
    }
}

/// People in the region: drift the spec, add their own label, delete the local copy.
fn local_edit(w: &mut World, rng: &mut StdRng) {
    let kind = rng.random_range(0..KINDS);
    let keys: Vec<ObjectKey> = w.local.objects[kind].keys().cloned().collect();
    let Some(key) = keys.choose(rng).cloned() else {
        return;
    };
    let mut l = w.local.objects[kind][&key].clone();
    let what = match rng.random_range(0..4) {
        0 => {
            l.spec.size = "drifted".into();
            "drifts the spec of"
        }
        1 => {
            l.spec.note = Some(format!("note-{}", rng.random_range(0..100)));
            "edits the local-only field of"
        }
        2 => {
            l.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert("local-team".into(), "ops".into());
            "adds a local label to"
        }
        _ => {
            let _ = w.local.delete(kind, &key, false);
            w.note(format!("someone deletes local {kind}:{key}"));
            return;
        }
    };
    let _ = w.local.replace(kind, &l, false);
    w.note(format!("someone {what} local {kind}:{key}"));
}

/// Someone deletes a local namespace by hand, or makes one of their own (no sync annotations)
/// under a local namespace name that is free, perhaps one a controller just deleted.
fn namespace_by_hand(w: &mut World, rng: &mut StdRng) {
    let name = format!("{}-l", NAMESPACES.choose(rng).copied().unwrap_or("t1"));
    let line = match w.local.namespaces.get(&name) {
        Some(ns) if ns.meta.deletion_timestamp.is_none() && rng.random_bool(0.3) => {
            let _ = w.local.delete_ns(&name, None, None);
            format!("someone deletes namespace {name}")
        }
        Some(_) => return,
        None => match w.local.create_ns(&name, BTreeMap::new()) {
            Ok(meta) => format!("someone makes their own namespace {name} ({:?})", meta.uid),
            Err(_) => return,
        },
    };
    w.note(line);
}

fn set_paused(cluster: &mut Cluster, kind: usize, key: &ObjectKey, paused: bool) {
    let _ = cluster.patch_meta(kind, key, None, |m| {
        let a = m.annotations.get_or_insert_with(BTreeMap::new);
        match paused {
            true => a.insert(PAUSED.into(), "true".into()),
            false => a.remove(PAUSED),
        };
    });
}

/// Someone pauses or unpauses an object on one side.
fn pause(w: &mut World, rng: &mut StdRng) {
    let kind = rng.random_range(0..KINDS);
    let remote_side = rng.random_bool(0.5);
    let cluster = if remote_side {
        &mut w.remote
    } else {
        &mut w.local
    };
    let keys: Vec<ObjectKey> = cluster.objects[kind].keys().cloned().collect();
    let Some(key) = keys.choose(rng) else { return };
    let paused = cluster.objects[kind][key]
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(PAUSED));
    set_paused(cluster, kind, key, !paused);
    let side = if remote_side { "remote" } else { "local" };
    w.note(format!(
        "someone {} {side} {kind}:{key}",
        if paused { "unpauses" } else { "pauses" }
    ));
}

/// Everyone unpauses what they paused.
pub fn unpause_all(w: &mut World) {
    for cluster in [&mut w.remote, &mut w.local] {
        for kind in 0..KINDS {
            let keys: Vec<ObjectKey> = cluster.objects[kind].keys().cloned().collect();
            for key in keys {
                if cluster.objects[kind][&key]
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(PAUSED))
                {
                    set_paused(cluster, kind, &key, false);
                }
            }
        }
    }
    w.route(true);
}

/// The management plane lets go of the objects it deleted.
pub fn release_holds(w: &mut World) {
    for kind in 0..KINDS {
        let held = w.remote.objects[kind]
            .iter()
            .filter(|(_, r)| has_finalizer(&r.metadata, HOLD));
        let keys: Vec<ObjectKey> = held.map(|(k, _)| k.clone()).collect();
        for key in keys {
            let _ = w.remote.patch_meta(kind, &key, None, |m| {
                m.finalizers
                    .get_or_insert_with(Vec::new)
                    .retain(|f| f != HOLD);
            });
        }
    }
    w.route(true);
}
