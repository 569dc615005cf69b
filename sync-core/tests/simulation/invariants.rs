//! The invariants, checked after every step of every seed:
//!
//! 1. the currency contract is never claimed for a spec that is not applied;
//! 2. no namespace is deleted that the controller did not create, or that an object of any
//!    kind still needs;
//! 3. no write to an object observed paused (and, once the world is quiet, to one paused);
//! 4. a bounded number of writes per outside change;
//! 5. once the world is quiet, everything converges and stays written-out (`converged`).

use kube::core::ObjectMeta;
use sync_core::ObjectKey;
use sync_core::plan::{NamespaceState, Observed, RemoteState, Step, claimed_by, is_paused};

use crate::cluster::KINDS;
use crate::executor::describe;
use crate::kind::{Thing, annotation, synced_local};
use crate::world::World;

fn generation(meta: &ObjectMeta, key: &str) -> Option<i64> {
    annotation(meta, key)?.parse().ok()
}

/// (1) Whenever a remote object says `sync-remote-generation == generation == G` and
/// `sync-local-generation` is the local generation, written by its controller, the local spec
/// holds generation G's remote spec.
///
/// A controller that records a new copy's generations in the claim
/// (`status_observed_generation`) is held to the contract as SPEC §3.6 states it for a status
/// with `observedGeneration`: the remote status must name that local generation too. Its
/// record may announce a copy before it exists, and then meet an older copy at generation 1
/// that its caches did not show yet; that copy's id differs, so the next pass compares it.
pub fn after_step(w: &World) -> Result<(), String> {
    for kind in 0..KINDS {
        let setup = &w.ctrls[kind].setup;
        let keys = &setup.keys;
        for (rk, r) in &w.remote.objects[kind] {
            let m = &r.metadata;
            let Some(g) = m.generation else { continue };
            if claimed_by(m, keys) != Some(setup.name())
                || generation(m, &keys.remote_generation) != Some(g)
            {
                continue;
            }
            let Some(l) = w.local_of(kind, rk) else {
                continue;
            };
            if generation(m, &keys.local_generation) != l.metadata.generation {
                continue;
            }
            let reported = r.status.as_ref().map(|s| s.observed_generation);
            if setup.config.status_observed_generation && reported != l.metadata.generation {
                continue;
            }
            let id = (m.uid.clone().unwrap_or_default(), g);
            let want = w
                .ledger
                .history
                .get(&id)
                .expect("every remote generation is recorded");
            if synced_local(&l.spec) != synced_local(want) {
                return Err(format!(
                    "(1) currency: {}/{rk} records remote generation {g} applied at local generation {:?}, \
                     but the local spec is {:?} and generation {g}'s is {:?}",
                    setup.name(),
                    l.metadata.generation,
                    synced_local(&l.spec),
                    synced_local(want)
                ));
            }
        }
    }
    Ok(())
}

/// (2) and (3), checked before a write step is executed.
pub fn before_write(
    w: &World,
    kind: usize,
    (key, local_key): (&ObjectKey, &ObjectKey),
    obs: &Observed<Thing>,
    step: &Step<Thing>,
) -> Result<(), String> {
    let setup = &w.ctrls[kind].setup;
    let keys = &setup.keys;
    let seen_paused = matches!(&obs.remote, RemoteState::Present(r) if is_paused(&r.metadata, keys))
        || obs
            .local
            .as_ref()
            .is_some_and(|l| is_paused(&l.metadata, keys));
    let paused_now = w.remote.objects[kind]
        .get(key)
        .is_some_and(|r| is_paused(&r.metadata, keys))
        || w.local.objects[kind]
            .get(local_key)
            .is_some_and(|l| is_paused(&l.metadata, keys));
    if seen_paused || (w.quiet && paused_now) {
        return Err(format!(
            "(3) paused: {}/{key} gets {} while paused",
            setup.name(),
            describe(step)
        ));
    }
    if let Step::DeleteNamespace {
        uid,
        resource_version,
    } = step
    {
        return namespace_deletion(w, kind, local_key, (uid, resource_version));
    }
    Ok(())
}

/// (2) A namespace deletion that the API server would carry out: the namespace must be the
/// controller's, and no object of any kind may still need it.
fn namespace_deletion(
    w: &World,
    kind: usize,
    local_key: &ObjectKey,
    (uid, rv): (&Option<String>, &Option<String>),
) -> Result<(), String> {
    let setup = &w.ctrls[kind].setup;
    let name = &local_key.namespace;
    let Some(ns) = w.local.namespaces.get(name) else {
        return Ok(());
    };
    // The API server refuses a delete whose preconditions do not match; one without them is
    // carried out whatever namespace holds the name now.
    let refused = |want: &Option<String>, got: &Option<String>| want.is_some() && want != got;
    if ns.meta.deletion_timestamp.is_some()
        || refused(uid, &ns.meta.uid)
        || refused(rv, &ns.meta.resource_version)
    {
        return Ok(());
    }
    let fail = |why: String| {
        Err(format!(
            "(2) namespace: {} deletes {name}: {why}",
            setup.name()
        ))
    };
    if !NamespaceState::from_meta(&ns.meta, &setup.keys).is_ours(&setup.config, &local_key.name) {
        return fail("it did not create it".into());
    }
    match still_needed(w, kind, local_key) {
        Some(why) => fail(why),
        None => Ok(()),
    }
}

/// Which object, if any, still needs the namespace of `local_key`: a local copy (of any kind)
/// whose remote object is live, or paused as far as the deleting controller can know; or an
/// object of the deleting controller that is live in its cache and as it is.
fn still_needed(w: &World, kind: usize, local_key: &ObjectKey) -> Option<String> {
    let name = &local_key.namespace;
    for k in 0..KINDS {
        let other = &w.ctrls[k].setup;
        let paused = |m: Option<&ObjectMeta>| m.is_some_and(|m| is_paused(m, &other.keys));
        for (lk, l) in w.local.objects[k]
            .iter()
            .filter(|(lk, _)| lk.namespace == *name)
        {
            let Some(rk) = other.mapping.to_remote(lk) else {
                continue;
            };
            let Some(r) = w.remote.objects[k].get(&rk) else {
                continue;
            };
            if k == kind && lk == local_key {
                continue;
            }
            // Another controller protects only what it has taken on: a remote object it has
            // not claimed yet (say, re-created under the name of a copy it left behind) is
            // one it has not seen, and its first pass makes a namespace again if need be.
            let claimed = claimed_by(&r.metadata, &other.keys) == Some(other.name());
            if k != kind && !claimed {
                continue;
            }
            // A terminating object its controller has released is done with the namespace,
            // whatever happens to it (a pause, another finalizer) afterwards.
            let released = !r
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| *f == other.keys.finalizer);
            if r.metadata.deletion_timestamp.is_some() && released {
                continue;
            }
            // A pause this controller's own caches do not show yet is a race it cannot see;
            // another controller's pause is carried by its mark.
            let cached = [w.ctrls[k].remote.get(&rk), w.ctrls[k].local.get(lk)];
            let paused_known = paused(Some(&r.metadata)) || paused(Some(&l.metadata));
            let paused_known = paused_known
                && (k != kind || cached.iter().any(|c| paused(c.map(|c| &c.metadata))));
            if r.metadata.deletion_timestamp.is_none() || paused_known {
                return Some(format!(
                    "{}/{rk} still needs it (live or paused, local copy {lk})",
                    other.name()
                ));
            }
        }
    }
    let setup = &w.ctrls[kind].setup;
    for rk in w.ctrls[kind].remote.keys() {
        let Ok(lk) = setup.mapping.to_local(rk) else {
            continue;
        };
        let live = w.remote.objects[kind]
            .get(rk)
            .is_some_and(|r| r.metadata.deletion_timestamp.is_none());
        if lk.namespace == *name && lk != *local_key && live {
            return Some(format!(
                "{}/{rk} is live in its cache and still needs it",
                setup.name()
            ));
        }
    }
    None
}

/// (4) Writes per key are bounded by the outside changes to it and the restarts: a loop shows
/// up as a count that grows without them.
pub fn budget(w: &World, kind: usize, key: &ObjectKey) -> Result<(), String> {
    let l = &w.ledger;
    let sources = l.sources.get(&(kind, key.clone())).copied().unwrap_or(0) + l.restarts[kind];
    let writes = l
        .writes
        .get(&(kind, key.clone()))
        .copied()
        .unwrap_or_default();
    for (n, what) in writes.iter().zip([
        "local object",
        "remote status",
        "remote metadata",
        "namespace",
    ]) {
        if *n > 2 * sources + 4 {
            return Err(format!(
                "(4) budget: {} wrote {n} times to the {what} of {key}, after {sources} outside changes and restarts",
                w.ctrls[kind].setup.name()
            ));
        }
    }
    Ok(())
}
