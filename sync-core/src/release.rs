//! Uninstalling a region: giving up every remote object of this controller's shard without
//! deleting anything, so that a region being decommissioned does not leave the management
//! cluster's objects held by a finalizer that no controller will ever remove.

use std::fmt;

use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ObjectMeta;
use tracing::{info, warn};

use crate::clients::Remote;
use crate::config::SyncConfig;
use crate::error::{ReleaseError, is_object_not_found};
use crate::keys::Keys;
use crate::mapping::{Mapping, ObjectKey};
use crate::plan::{self, Release};
use crate::syncable::Syncable;

/// How many times one object is read again and patched when it changes under the patch.
const ATTEMPTS: usize = 5;

/// Objects listed per request.
const PAGE: u32 = 500;

/// What [`release_all`] did with the remote objects of the shard.
///
/// Objects outside the shard (whose names or namespaces the configuration's mapping does not
/// accept) are not looked at and not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReleaseReport {
    /// Objects of this controller (or a predecessor) from which the finalizer, the claim and
    /// the bookkeeping annotations were removed.
    pub released: usize,
    /// Objects claimed by another controller: not written.
    pub foreign: usize,
    /// Objects with nothing of this controller on them: not written.
    pub already_clean: usize,
    /// Objects of this controller paused by people (`<domain>/paused: "true"` on the remote
    /// object): not written. Unpause them and run again.
    pub paused: Vec<ObjectKey>,
    /// Objects deleted while the release ran: nothing left to release.
    pub gone: usize,
    /// Objects whose patch failed, with the error; run again to retry them.
    pub failed: Vec<(ObjectKey, String)>,
}

impl ReleaseReport {
    /// Whether nothing of this controller is left on the shard's objects: none failed and
    /// none is paused.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.paused.is_empty()
    }
}

impl fmt::Display for ReleaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} released, {} claimed by another controller, {} already clean, {} paused, \
             {} gone meanwhile, {} failed",
            self.released,
            self.foreign,
            self.already_clean,
            self.paused.len(),
            self.gone,
            self.failed.len()
        )
    }
}

/// The outcome for one object.
enum Outcome {
    Released,
    Foreign,
    Clean,
    Paused,
    Gone,
    Failed(String),
}

/// Removes this controller's finalizer, claim and bookkeeping annotations from every remote
/// object of kind `K` in its shard, and deletes nothing: the way to uninstall a region.
///
/// The shard is what `config`'s mapping accepts (the same suffixes and prefix the controller
/// ran with); an object is this controller's when its claim names the controller's
/// [effective name](SyncConfig::effective_controller_name) or one of its
/// [predecessors](SyncConfig::predecessors), or when it carries the finalizer and no claim.
/// Objects claimed by another controller are left untouched and counted.
///
/// Stop the controller first (scale the agent to zero): a controller still running claims the
/// objects again.
///
/// # Example
///
/// ```no_run
/// # use sync_core::{Remote, Syncable};
/// # async fn demo<K: Syncable>(management: kube::Client) -> Result<(), sync_core::ReleaseError> {
/// let config = K::defaults().remote_suffix("-eu");
/// let report = sync_core::release_all::<K>(Remote(management), &config).await?;
/// println!("{report}");
/// assert!(report.is_complete(), "run again: {:?} {:?}", report.failed, report.paused);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`ReleaseError::InvalidConfig`] when `config` can never work, before anything is read, and
/// [`ReleaseError::List`] when the remote objects cannot be listed. The failure of one object's
/// patch is not an error: it is in [`ReleaseReport::failed`], and the others go on.
///
/// # Guarantees
///
/// - Nothing is deleted, on either cluster; the local cluster is not even contacted. Local
///   copies and the namespaces the controller created stay, unmanaged: delete them by hand if
///   they are no longer wanted.
/// - Each patch carries the resource version it was computed from, so a finalizer another
///   party added meanwhile is never dropped: on a conflict the object is read again and the
///   patch recomputed, up to 5 times.
/// - Running it again is harmless: released objects count as already clean.
/// - It needs only the controller's own remote rules ([`rbac::remote_rules`](crate::rbac::remote_rules)):
///   `list`, `get` and `patch` on the kind.
///
/// # Caveats
///
/// - The remote status is left as last reported; without the generation annotations the
///   generation contract no longer says it is current.
/// - A paused object is not written (see [`ReleaseReport::paused`]).
/// - A list that takes longer than the API server keeps its continue token (about 5 minutes
///   by default) fails with [`ReleaseError::List`]; what was released stays released, so run
///   it again.
pub async fn release_all<K: Syncable>(
    remote: Remote,
    config: &SyncConfig,
) -> Result<ReleaseReport, ReleaseError> {
    release_all_of(&ApiResource::erase::<K>(&()), remote, config).await
}

/// [`release_all`] for a kind known by its API resource, such as a
/// [`DynamicKind`](crate::DynamicKind)'s.
///
/// # Errors
///
/// As [`release_all`].
pub async fn release_all_of(
    resource: &ApiResource,
    remote: Remote,
    config: &SyncConfig,
) -> Result<ReleaseReport, ReleaseError> {
    let config = config.resolved();
    config.validate()?;
    let keys = Keys::new(&config.domain);
    let mapping = Mapping::new(&config);
    let client = kube::Client::from(remote);
    let shard = list_shard(&client, resource, &mapping).await?;
    let params = PatchParams {
        field_manager: Some(config.controller_name.clone()),
        ..PatchParams::default()
    };
    let (config, keys, params) = (&config, &keys, &params);
    let outcomes: Vec<(ObjectKey, Outcome)> = stream::iter(shard)
        .map(|(key, meta)| {
            let api =
                Api::<DynamicObject>::namespaced_with(client.clone(), &key.namespace, resource);
            async move {
                let outcome = release_one(&api, &key, meta, config, keys, params).await;
                (key, outcome)
            }
        })
        .buffer_unordered(config.concurrency)
        .collect()
        .await;
    let mut report = ReleaseReport::default();
    for (key, outcome) in outcomes {
        match outcome {
            Outcome::Released => report.released += 1,
            Outcome::Foreign => report.foreign += 1,
            Outcome::Clean => report.already_clean += 1,
            Outcome::Paused => report.paused.push(key),
            Outcome::Gone => report.gone += 1,
            Outcome::Failed(e) => report.failed.push((key, e)),
        }
    }
    report.paused.sort();
    report.failed.sort();
    info!(controller = %config.controller_name, %report, "released the remote objects");
    Ok(report)
}

/// The metadata of every remote object of the kind that the mapping accepts.
async fn list_shard(
    client: &kube::Client,
    resource: &ApiResource,
    mapping: &Mapping,
) -> Result<Vec<(ObjectKey, ObjectMeta)>, ReleaseError> {
    let api = Api::<DynamicObject>::all_with(client.clone(), resource);
    let list_error = |source| ReleaseError::List {
        resource: resource.plural.clone(),
        source,
    };
    let mut shard = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&params).await.map_err(list_error)?;
        for item in page.items {
            let meta = item.metadata;
            let key = ObjectKey::new(
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            );
            // An object that does not map is not this controller's: another region's, or
            // one it never synced (and so never claimed).
            if mapping.to_local(&key).is_ok() {
                shard.push((key, meta));
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(shard),
        }
    }
}

async fn release_one(
    api: &Api<DynamicObject>,
    key: &ObjectKey,
    mut meta: ObjectMeta,
    config: &SyncConfig,
    keys: &Keys,
    params: &PatchParams,
) -> Outcome {
    for _ in 0..ATTEMPTS {
        let patch = match plan::release(&meta, config, keys) {
            Release::Foreign(_) => return Outcome::Foreign,
            Release::Clean => return Outcome::Clean,
            Release::Paused => return Outcome::Paused,
            Release::Patch(p) => p,
        };
        let sent = api
            .patch_metadata(&key.name, params, &Patch::Merge(patch.to_merge_patch()))
            .await;
        match sent {
            Ok(_) => {
                info!(object = %key, "released remote object");
                return Outcome::Released;
            }
            Err(e) if is_object_not_found(&e, &key.name) => return Outcome::Gone,
            // The object changed since it was read (a finalizer added, a new generation):
            // read it again and decide afresh.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                match api.get_metadata_opt(&key.name).await {
                    Ok(Some(fresh)) => meta = fresh.metadata,
                    Ok(None) => return Outcome::Gone,
                    Err(e) => return failed(key, &e),
                }
            }
            Err(e) => return failed(key, &e),
        }
    }
    let e = format!("the object changed under each of {ATTEMPTS} patches");
    warn!(object = %key, "failed to release remote object: {e}");
    Outcome::Failed(e)
}

fn failed(key: &ObjectKey, e: &kube::Error) -> Outcome {
    warn!(object = %key, "failed to release remote object: {e}");
    Outcome::Failed(e.to_string())
}
