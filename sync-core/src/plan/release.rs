//! Giving up the remote objects of a region being decommissioned: whether an object of the
//! shard is this controller's, and the patch that takes every trace of its claim off it.

use kube::core::ObjectMeta;

use super::{RemoteMetaPatch, annotation, claimed_by, has_finalizer, is_paused};
use crate::config::SyncConfig;
use crate::keys::Keys;

/// What releasing one remote object of the shard takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// The object is this controller's: the patch removes the finalizer, the claim and the
    /// bookkeeping annotations, guarded by the resource version it was computed from.
    Patch(RemoteMetaPatch),
    /// The object is not claimed by another controller, and carries nothing of this one.
    Clean,
    /// The object is claimed by another controller, named here: it is left alone.
    Foreign(String),
    /// The object is this controller's, but people paused it: no write at all.
    Paused,
}

/// Decides how to release one remote object of this controller's shard.
///
/// `config` must be [resolved](SyncConfig::resolved): an object claimed by a predecessor is
/// this controller's. An object with the finalizer and no claim at all is this controller's
/// too: the Go original and versions before the claim annotation wrote the finalizer alone,
/// and a running controller would claim it on its next pass.
///
/// Released means "as if never synced by this region": the finalizer and the claim go, and so
/// do the generation annotations, the local UID and the sent-secret versions, which describe a
/// local copy that no controller looks after any more. Left as they were, they would tell the
/// management plane (by the generation contract) that the current generation is applied, and
/// a controller that later takes over the shard would trust a record of another cluster. The
/// status is left as last reported: it is the management plane's to read, and without the
/// generation annotations the contract no longer says it is current.
pub fn release(meta: &ObjectMeta, config: &SyncConfig, keys: &Keys) -> Release {
    if let Some(claimant) = claimed_by(meta, keys)
        && !config.is_own_name(claimant)
    {
        return Release::Foreign(claimant.to_owned());
    }
    let mut patch = RemoteMetaPatch {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        ..RemoteMetaPatch::default()
    };
    if has_finalizer(meta, keys) {
        // The whole list without ours: every other finalizer is kept, and the resource
        // version in the patch makes the API server refuse it if the list changed since.
        let others = meta.finalizers.iter().flatten();
        let rest = others.filter(|f| **f != keys.finalizer).cloned().collect();
        patch.finalizers = Some(rest);
    }
    for key in [
        &keys.claimed_by,
        &keys.remote_generation,
        &keys.local_generation,
        &keys.local_uid,
        &keys.secret_versions,
    ] {
        if annotation(meta, key).is_some() {
            patch.annotations.insert(key.clone(), None);
        }
    }
    if patch.is_empty() {
        Release::Clean
    } else if is_paused(meta, keys) {
        Release::Paused
    } else {
        Release::Patch(patch)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn meta(finalizers: &[&str], annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            resource_version: Some("7".into()),
            finalizers: Some(finalizers.iter().map(|s| (*s).to_owned()).collect()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    fn config() -> SyncConfig {
        SyncConfig::new("db-eu")
            .adopt_claims_from(["db"])
            .resolved()
    }

    const FIN: &str = "cloud.teleport.dev/sync-local";
    const CLAIM: &str = "cloud.teleport.dev/sync-controller";
    const GEN: &str = "cloud.teleport.dev/sync-remote-generation";

    #[test]
    fn an_own_object_loses_our_finalizer_claim_and_records_and_keeps_the_rest() {
        let keys = Keys::new(crate::DEFAULT_DOMAIN);
        let m = meta(
            &["other/keep", FIN],
            &[
                (CLAIM, "db-eu"),
                (GEN, "3"),
                ("cloud.teleport.dev/sync-local-generation", "2"),
                ("cloud.teleport.dev/sync-local-uid", "u"),
                ("cloud.teleport.dev/sync-secret-versions", "{}"),
                ("app/owner", "team"),
            ],
        );
        let Release::Patch(p) = release(&m, &config(), &keys) else {
            panic!("expected a patch");
        };
        assert_eq!(p.resource_version, "7");
        assert_eq!(p.finalizers, Some(vec!["other/keep".to_owned()]));
        assert_eq!(p.annotations.len(), 5);
        assert!(p.annotations.values().all(Option::is_none));
        let mut after = m.clone();
        p.apply_to(&mut after);
        assert_eq!(release(&after, &config(), &keys), Release::Clean);
        let left: BTreeMap<_, _> = after.annotations.unwrap_or_default();
        assert_eq!(left.keys().collect::<Vec<_>>(), ["app/owner"]);
    }

    #[test]
    fn a_predecessors_claim_and_an_unclaimed_finalizer_are_ours() {
        let keys = Keys::new(crate::DEFAULT_DOMAIN);
        let adopted = meta(&[FIN], &[(CLAIM, "db")]);
        assert!(matches!(
            release(&adopted, &config(), &keys),
            Release::Patch(_)
        ));
        let go_original = meta(&[FIN], &[]);
        assert!(matches!(
            release(&go_original, &config(), &keys),
            Release::Patch(p) if p.finalizers == Some(vec![])
        ));
    }

    #[test]
    fn another_controllers_object_is_left_alone_even_with_our_finalizer() {
        let keys = Keys::new(crate::DEFAULT_DOMAIN);
        let m = meta(&[FIN], &[(CLAIM, "db-us"), (GEN, "1")]);
        assert_eq!(
            release(&m, &config(), &keys),
            Release::Foreign("db-us".into())
        );
    }

    #[test]
    fn a_paused_object_gets_no_write_and_a_clean_one_needs_none() {
        let keys = Keys::new(crate::DEFAULT_DOMAIN);
        let paused = meta(
            &[FIN],
            &[(CLAIM, "db-eu"), ("cloud.teleport.dev/paused", "true")],
        );
        assert_eq!(release(&paused, &config(), &keys), Release::Paused);
        let clean = meta(&["other/keep"], &[("cloud.teleport.dev/paused", "true")]);
        assert_eq!(release(&clean, &config(), &keys), Release::Clean);
        assert_eq!(
            release(&ObjectMeta::default(), &config(), &keys),
            Release::Clean
        );
    }
}
