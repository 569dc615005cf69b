//! A controller for `Database` that knows nothing about syncing: it "provisions" each local
//! `Database`, reports it in the status, and keeps a short-lived credentials Secret next to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use tracing::{info, warn};

use crate::database::{CREDENTIALS, Condition, Database, DatabaseStatus};

/// Annotation on the credentials Secret: when its password was made.
pub const ROTATED_AT: &str = "acme.dev/rotated-at";
const MANAGER: &str = "database-controller";

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long provisioning a new generation takes (the status says `Provisioning` meanwhile).
    pub provision_time: Duration,
    /// How often the password is replaced.
    pub rotate_every: Duration,
}

/// Errors of one reconcile; all of them are retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error("failed to {0}: {1}")]
    Kube(&'static str, #[source] kube::Error),
    /// A Secret of the credentials' name exists and belongs to something else.
    #[error("secret {0} exists and is not controlled by this Database")]
    Foreign(String),
}

struct Context {
    client: Client,
    options: Options,
}

/// Reconciles every `Database` of the cluster until `shutdown` resolves.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let secrets = watcher::Config::default().fields(&format!("metadata.name={CREDENTIALS}"));
    Controller::new(Api::<Database>::all(client.clone()), Default::default())
        .owns(Api::<Secret>::all(client.clone()), secrets)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, retry, Arc::new(Context { client, options }))
        .for_each(|r| async move {
            if let Err(e) = r {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
}

fn retry(_: Arc<Database>, _: &Error, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(db: Arc<Database>, cx: Arc<Context>) -> Result<Action, Error> {
    if db.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = db.namespace().unwrap_or_default();
    let now = Timestamp::now();
    let secrets = Api::<Secret>::namespaced(cx.client.clone(), &ns);
    let current = secrets
        .get_opt(CREDENTIALS)
        .await
        .map_err(|e| Error::Kube("read the credentials", e))?;
    let rotate_in = match current {
        Some(s) if !controlled_by(&s, &db) => {
            return Err(Error::Foreign(format!("{ns}/{CREDENTIALS}")));
        }
        Some(s) => match age(&s, now) {
            Some(age) if age < cx.options.rotate_every => cx.options.rotate_every - age,
            _ => {
                // No resource version: Secrets accept an unconditional update.
                let pp = PostParams::default();
                secrets
                    .replace(CREDENTIALS, &pp, &credentials(&db, now))
                    .await
                    .map_err(|e| Error::Kube("rotate the password", e))?;
                info!(db = %db.name_any(), %ns, "rotated the password");
                cx.options.rotate_every
            }
        },
        None => {
            let pp = PostParams::default();
            secrets
                .create(&pp, &credentials(&db, now))
                .await
                .map_err(|e| Error::Kube("create the credentials", e))?;
            info!(db = %db.name_any(), %ns, "created the credentials");
            cx.options.rotate_every
        }
    };

    let desired = desired_status(&db, now, cx.options.provision_time);
    if db.status.as_ref() != Some(&desired) {
        let patch = Patch::Merge(serde_json::json!({ "status": desired }));
        Api::<Database>::namespaced(cx.client.clone(), &ns)
            .patch_status(&db.name_any(), &PatchParams::apply(MANAGER), &patch)
            .await
            .map_err(|e| Error::Kube("update the status", e))?;
    }
    let wait = match desired.condition("Ready") {
        Some(c) if c.status != "True" => cx.options.provision_time.min(rotate_in),
        _ => rotate_in,
    };
    Ok(Action::requeue(wait.max(Duration::from_millis(200))))
}

/// The credentials Secret of `db`, with a new password, controlled by `db`.
fn credentials(db: &Database, now: Timestamp) -> Secret {
    let host = format!(
        "{}.{}.svc",
        db.name_any(),
        db.namespace().unwrap_or_default()
    );
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let data = [
        ("username", "app".to_owned()),
        ("password", password),
        ("host", host),
        ("port", db.spec.engine.port().to_string()),
    ];
    Secret {
        metadata: ObjectMeta {
            name: Some(CREDENTIALS.to_owned()),
            annotations: Some(BTreeMap::from([(ROTATED_AT.to_owned(), now.to_string())])),
            owner_references: db.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

fn controlled_by(secret: &Secret, db: &Database) -> bool {
    let uid = db.meta().uid.as_deref();
    let owners = secret.metadata.owner_references.iter().flatten();
    owners
        .filter(|o| o.controller == Some(true))
        .any(|o| Some(o.uid.as_str()) == uid)
}

fn age(secret: &Secret, now: Timestamp) -> Option<Duration> {
    let at: Timestamp = secret.annotations().get(ROTATED_AT)?.parse().ok()?;
    now.duration_since(at).try_into().ok()
}

/// The status `db` should have at `now`: a new generation is `Provisioning` for
/// `provision_time`, then `Ready`. Unchanged conditions keep their transition time, so a
/// status that is already right is never written again.
pub fn desired_status(db: &Database, now: Timestamp, provision_time: Duration) -> DatabaseStatus {
    let generation = db.metadata.generation;
    let old = db.status.clone().unwrap_or_default();
    let ready = old
        .condition("Ready")
        .filter(|_| old.observed_generation == generation);
    let since = |c: &Condition| c.last_transition_time.parse::<Timestamp>().ok();
    let provisioned = ready
        .and_then(since)
        .and_then(|t| Duration::try_from(now.duration_since(t)).ok())
        .is_some_and(|d| d >= provision_time);
    let (status, reason, message) = match ready {
        Some(c) if c.status == "True" => (c.status.clone(), c.reason.clone(), c.message.clone()),
        Some(_) if provisioned => (
            "True".into(),
            "Provisioned".into(),
            format!(
                "{:?} {} with {} is ready",
                db.spec.engine, db.spec.version, db.spec.storage
            ),
        ),
        Some(c) => (c.status.clone(), c.reason.clone(), c.message.clone()),
        None => (
            "False".into(),
            "Provisioning".into(),
            format!("provisioning {} of storage", db.spec.storage),
        ),
    };
    let last_transition_time = match old.condition("Ready") {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.to_string(),
    };
    let ready = status == "True";
    DatabaseStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status,
            reason,
            message,
            last_transition_time,
            observed_generation: generation,
        }],
        endpoint: ready.then(|| {
            format!(
                "{}.{}.svc:{}",
                db.name_any(),
                db.namespace().unwrap_or_default(),
                db.spec.engine.port()
            )
        }),
    }
}
