//! What a live object needs next: the claim, its namespace, the local copy, spec, labels and
//! annotations down; the record, status and secrets up.

use std::collections::BTreeMap;

use serde_json::Value;

use super::metadata::{self, LocalMeta, Record};
use super::{
    NotKeptWrite, Observed, PlanContext, SecretPayload, Step, Wait, annotation, terminating,
};
use crate::keys::Keys;
use crate::syncable::SyncObject;

pub(super) fn plan_live<K: SyncObject>(
    remote: &K,
    obs: &Observed<K>,
    cx: &PlanContext<'_>,
) -> Step<K> {
    let announce = obs.local.is_none() && announces(remote, obs, cx);
    let mut claim = metadata::claim_patch(remote.meta(), cx);
    if announce {
        metadata::announce_copy(&mut claim, remote.meta(), cx.keys);
    }
    if !claim.is_empty() {
        return Step::PatchRemote(claim);
    }
    match &obs.namespace {
        None => return Step::CreateNamespace,
        Some(ns) if ns.terminating => {
            return Step::Wait(Wait::Namespace);
        }
        Some(ns) if ns.wants_mark(cx.config) => return Step::MarkNamespace,
        Some(_) => {}
    }
    let Some(local) = &obs.local else {
        return create_local(remote, obs, cx, announce);
    };
    if terminating(local.meta()) {
        return Step::Wait(Wait::LocalObject);
    }
    if let Some(step) = update_local(remote, local, obs, cx) {
        return step;
    }
    let recorded = metadata::recorded_secret_versions(remote.meta(), cx.keys);
    // Here the local spec holds the remote generation's: written by this pass, compared
    // equal, or (no generation moved) recorded so already.
    if let Some(applied) = remote.meta().generation {
        let record = Record {
            applied,
            local_generation: local.meta().generation,
            local_uid: metadata::copy_identity(local.meta(), cx.keys),
            recorded: &recorded,
            pushed: &obs.pushed_secrets,
        };
        let patch = metadata::remote_meta_patch(remote.meta(), &record, cx.keys);
        if !patch.is_empty() {
            return Step::PatchRemote(patch);
        }
    }
    if let Some(status) = status_to_send(remote, local, obs) {
        return Step::PatchRemoteStatus(status);
    }
    // Secrets go last: a remote secret that does not exist yet must not hold up the spec,
    // the generation annotations or the status.
    secret_to_push(remote, obs, &recorded, cx).unwrap_or(Step::InSync)
}

/// Whether the record of a missing local copy is written before the copy is made, with the
/// claim when there is one ([`crate::SyncConfig::status_observed_generation`]): the kind's
/// status carries `observedGeneration`, the remote cluster is reachable, and the remote status
/// does not already name local generation 1, so the record cannot read as current before the
/// local controller reports on the new copy (and the status goes up only once the record
/// names the copy read).
fn announces<K: SyncObject>(remote: &K, obs: &Observed<K>, cx: &PlanContext<'_>) -> bool {
    // A number or, from a schema that says string, its text: either names generation 1.
    let names_one = remote
        .status_value()
        .and_then(|s| s.get("observedGeneration").cloned())
        .is_some_and(|g| g == 1 || g == "1");
    cx.config.status_observed_generation && !obs.remote_down && !names_one
}

/// The first step towards a local copy that does not exist.
fn create_local<K: SyncObject>(
    remote: &K,
    obs: &Observed<K>,
    cx: &PlanContext<'_>,
    announced: bool,
) -> Step<K> {
    if announced {
        // The record announces this copy (written with the claim, above): the copy carries
        // the id recorded for it, and its generation will be the 1 recorded.
        let mut meta = metadata::new_local_meta(remote.meta(), cx);
        if let Some(id) = metadata::announced_id(remote.meta(), cx.keys) {
            meta.annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(cx.keys.copy_id.clone(), id.to_owned());
        }
        return Step::CreateLocal {
            object: Box::new(remote.new_copy(meta)),
            spec_of: remote.meta().generation,
        };
    }
    // A record of a local copy that is gone goes first: the new copy's generation counts
    // again from 1 and could meet the old record, claiming currency for a spec never
    // checked, if the new record could not be written after the create. While the remote
    // cluster is down, re-creating the copy comes first: the new copy's UID differs from the
    // recorded one, so its spec is compared (and any drift reverted) on every pass until the
    // record is written.
    let forget = metadata::forget_local(remote.meta(), cx.keys);
    if !forget.is_empty() && !obs.remote_down {
        return Step::PatchRemote(forget);
    }
    let meta = metadata::new_local_meta(remote.meta(), cx);
    Step::CreateLocal {
        object: Box::new(remote.new_copy(meta)),
        spec_of: remote.meta().generation,
    }
}

/// The first configured secret whose current version was not sent up yet.
fn secret_to_push<K: SyncObject>(
    remote: &K,
    obs: &Observed<K>,
    recorded: &BTreeMap<String, String>,
    cx: &PlanContext<'_>,
) -> Option<Step<K>> {
    obs.secrets
        .iter()
        .find_map(|(name, SecretPayload(secret))| {
            let version = secret.metadata.resource_version.clone().unwrap_or_default();
            let sent = obs.pushed_secrets.get(name).or_else(|| recorded.get(name));
            (sent != Some(&version)).then(|| Step::PushSecret {
                name: name.clone(),
                version,
                remote: Box::new(SecretPayload(metadata::remote_secret(secret, remote, cx))),
            })
        })
}

/// The update the local object needs (spec, labels, annotations), if any.
fn update_local<K: SyncObject>(
    remote: &K,
    local: &K,
    obs: &Observed<K>,
    cx: &PlanContext<'_>,
) -> Option<Step<K>> {
    let generation = remote.meta().generation;
    let mut desired = local.clone();
    let mut spec_differs = false;
    // A spec this pass wrote for this very generation is not compared again: local
    // defaulting or admission may have changed it, and writing it again would loop.
    if obs.spec_applied.is_none_or(|g| Some(g) != generation)
        && spec_check_due(remote, local, cx.keys)
    {
        remote.copy_spec_to(&mut desired);
        spec_differs = desired.spec_value() != local.spec_value();
    }
    let current = LocalMeta::of(local.meta()).fingerprint();
    let meta = metadata::desired_local_meta(remote.meta(), local.meta(), cx.keys)
        // Labels and annotations the server rewrote are not sent again until they change.
        .filter(|m| {
            !NotKeptWrite::repeats(obs.unkept.local_meta.as_ref(), &m.fingerprint(), &current)
        });
    if !spec_differs && meta.is_none() {
        return None;
    }
    if let Some(LocalMeta {
        labels,
        annotations,
    }) = meta
    {
        desired.meta_mut().labels = metadata::none_if_empty(labels);
        desired.meta_mut().annotations = Some(annotations);
    }
    // Whichever way the spec got here (copied now, applied earlier this pass, or recorded
    // as applied with no generation moved since), it is the remote generation's.
    Some(Step::UpdateLocal {
        object: Box::new(desired),
        spec_of: generation,
    })
}

/// The spec is compared only when the remote generation moved (a remote change) or the local
/// generation moved (a local edit) since the last recorded apply, or the local object is not
/// the one recorded (re-created, its generation counts again from 1). Malformed or missing
/// annotations count as moved.
fn spec_check_due<K: SyncObject>(remote: &K, local: &K, keys: &Keys) -> bool {
    use metadata::generation_annotation as recorded;
    recorded(remote.meta(), &keys.remote_generation) != remote.meta().generation
        || recorded(remote.meta(), &keys.local_generation) != local.meta().generation
        || annotation(remote.meta(), &keys.local_uid) != metadata::copy_identity(local.meta(), keys)
}

/// The local status, when the remote one differs from it and it was not sent already
/// without being kept.
fn status_to_send<K: SyncObject>(remote: &K, local: &K, obs: &Observed<K>) -> Option<Value> {
    // A kind without a status, or a local copy with none yet: nothing to send.
    let local_status = local.status_value()?;
    let remote_status = remote.status_value().unwrap_or(Value::Null);
    let differs = remote_status != local_status;
    let repeats = NotKeptWrite::repeats(obs.unkept.status.as_ref(), &local_status, &remote_status);
    (differs && !repeats).then_some(local_status)
}
