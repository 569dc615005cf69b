//! (5) Convergence: once the actors stop (people unpause what they paused, the local
//! controller and the namespace controller finish their work), every event is delivered and
//! passes run until nothing is written. Then every live object is current, every deleted one
//! is cleaned up, and a further pass writes nothing.

use sync_core::OnRemoteDelete;
use sync_core::plan::{NamespaceState, claimed_by, is_paused};

use crate::actors;
use crate::cluster::KINDS;
use crate::kind::{REWRITTEN_LABEL, Thing, annotation, has_finalizer, prune_remote, synced_local};
use crate::world::World;

/// Rounds of passes within which a quiet world must settle.
const ROUNDS: usize = 30;

/// Runs the quiet world to its end and checks it.
pub fn converge(w: &mut World, rng: &mut rand::rngs::StdRng) -> Result<(), String> {
    w.quiet = true;
    w.note("quiet: the actors stop".into());
    actors::unpause_all(w);
    actors::release_holds(w);
    for _ in 0..ROUNDS {
        let busy = settle_world(w, rng);
        let writes = pass_all(w)?;
        if writes == 0 && !busy {
            current(w)?;
            settle_world(w, rng);
            return match pass_all(w)? {
                0 => Ok(()),
                n => Err(format!(
                    "(5) convergence: {n} writes in a pass after convergence"
                )),
            };
        }
    }
    Err(format!(
        "(5) convergence: still writing after {ROUNDS} quiet rounds"
    ))
}

/// Lets the other actors finish and delivers every event; says whether anything happened.
fn settle_world(w: &mut World, rng: &mut rand::rngs::StdRng) -> bool {
    let mut busy = w
        .local
        .namespaces
        .values()
        .any(|n| n.meta.deletion_timestamp.is_some());
    w.local.tick_namespaces();
    w.local.collect_garbage();
    actors::write_statuses(w, rng, true);
    busy |= !w.local.changes.is_empty() || !w.remote.changes.is_empty();
    w.route(true);
    for c in &mut w.ctrls {
        for stream in 0..3 {
            busy |= !c.queues[stream].is_empty();
            while c.deliver(stream).is_some() {}
        }
    }
    busy
}

fn pass_all(w: &mut World) -> Result<usize, String> {
    let mut writes = 0;
    for kind in 0..KINDS {
        let keys: Vec<_> = w.ctrls[kind].known.iter().cloned().collect();
        for key in keys {
            writes += w.pass(kind, &key)?;
        }
    }
    Ok(writes)
}

/// The end state: live objects current, deleted ones released and cleaned up.
fn current(w: &World) -> Result<(), String> {
    for kind in 0..KINDS {
        for r in w.remote.objects[kind].values() {
            live_object_is_current(w, kind, r)?;
        }
        let setup = &w.ctrls[kind].setup;
        for (lk, l) in &w.local.objects[kind] {
            let Some(rk) = setup.mapping.to_remote(lk) else {
                continue;
            };
            let remote_gone = w.remote.objects[kind]
                .get(&rk)
                .is_none_or(|r| r.metadata.deletion_timestamp.is_some());
            let ns = &w.local.namespaces[&lk.namespace].meta;
            let ours = NamespaceState::from_meta(ns, &setup.keys).is_ours(&setup.config, &lk.name);
            let due = ours || setup.config.on_remote_delete == OnRemoteDelete::NamespaceOrResource;
            if remote_gone && due && annotation(&l.metadata, &setup.keys.managed_keys).is_some() {
                return Err(format!(
                    "(5) convergence: {}/{rk} is gone but its local copy {lk} is still there",
                    setup.name()
                ));
            }
        }
    }
    Ok(())
}

fn live_object_is_current(w: &World, kind: usize, r: &Thing) -> Result<(), String> {
    let setup = &w.ctrls[kind].setup;
    let keys = &setup.keys;
    let m = &r.metadata;
    let rk = crate::cluster::key_of(m);
    let fail = |why: String| Err(format!("(5) convergence: {}/{rk}: {why}", setup.name()));
    if m.deletion_timestamp.is_some() {
        return match has_finalizer(m, &keys.finalizer) {
            true => fail("terminating, but still holds the controller's finalizer".into()),
            false => Ok(()),
        };
    }
    if claimed_by(m, keys) != Some(setup.name()) || !has_finalizer(m, &keys.finalizer) {
        return fail("not claimed".into());
    }
    let Some(l) = w.local_of(kind, &rk) else {
        return fail("no local copy".into());
    };
    if is_paused(m, keys) || is_paused(&l.metadata, keys) {
        return fail("still paused".into());
    }
    let recorded = |k: &str| annotation(m, k).and_then(|v| v.parse::<i64>().ok());
    if recorded(&keys.remote_generation) != m.generation
        || recorded(&keys.local_generation) != l.metadata.generation
    {
        return fail(format!(
            "generation annotations {:?}/{:?} for generations {:?}/{:?}",
            recorded(&keys.remote_generation),
            recorded(&keys.local_generation),
            m.generation,
            l.metadata.generation
        ));
    }
    if synced_local(&l.spec) != synced_local(&r.spec) {
        return fail(format!("local spec {:?}, remote {:?}", l.spec, r.spec));
    }
    for (k, v) in m.labels.iter().flatten().filter(|(k, _)| keys.is_copied(k)) {
        let got = l.metadata.labels.as_ref().and_then(|ls| ls.get(k));
        let admitted = format!("admitted-{v}");
        if got != Some(v) && !(k == REWRITTEN_LABEL && got == Some(&admitted)) {
            return fail(format!("label {k}={v} is {got:?} locally"));
        }
    }
    if l.status.is_some() && prune_remote(l.status.clone()) != r.status {
        return fail(format!(
            "remote status {:?}, local {:?}",
            r.status, l.status
        ));
    }
    Ok(())
}
