//! The local controller's status: a new generation is `Provisioning`, then `Ready`, and a
//! status that is already right is left alone.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sync_examples::controller::desired_status;
use sync_examples::database::{Database, DatabaseSpec, Engine};

const PROVISION: Duration = Duration::from_secs(2);

fn db(generation: i64) -> Database {
    let spec = DatabaseSpec {
        engine: Engine::Postgres,
        version: "17".into(),
        storage: "10Gi".into(),
        replicas: 1,
        storage_class: None,
    };
    let mut db = Database::new("orders", spec);
    db.metadata.namespace = Some("tenant-acme".into());
    db.metadata.generation = Some(generation);
    db
}

fn ready(db: &Database) -> (String, String) {
    let c = db
        .status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .expect("a Ready condition");
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_new_generation_provisions_then_becomes_ready() {
    let t0 = Timestamp::now();
    let mut d = db(1);
    d.status = Some(desired_status(&d, t0, PROVISION));
    assert_eq!(ready(&d), ("False".into(), "Provisioning".into()));
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(1));
    assert_eq!(d.status.as_ref().unwrap().endpoint, None);

    let early = desired_status(&d, t0 + SignedDuration::from_secs(1), PROVISION);
    assert_eq!(
        Some(&early),
        d.status.as_ref(),
        "still provisioning, nothing to write"
    );

    d.status = Some(desired_status(
        &d,
        t0 + SignedDuration::from_secs(3),
        PROVISION,
    ));
    assert_eq!(ready(&d), ("True".into(), "Provisioned".into()));
    let endpoint = d.status.as_ref().unwrap().endpoint.clone();
    assert_eq!(endpoint.as_deref(), Some("orders.tenant-acme.svc:5432"));
}

#[test]
fn a_right_status_is_never_rewritten() {
    let t0 = Timestamp::now();
    let mut d = db(1);
    d.status = Some(desired_status(&d, t0, PROVISION));
    d.status = Some(desired_status(
        &d,
        t0 + SignedDuration::from_secs(3),
        PROVISION,
    ));
    let later = desired_status(&d, t0 + SignedDuration::from_secs(3600), PROVISION);
    assert_eq!(Some(&later), d.status.as_ref());
}

#[test]
fn a_spec_change_provisions_again_for_the_new_generation() {
    let t0 = Timestamp::now();
    let mut d = db(1);
    d.status = Some(desired_status(&d, t0, PROVISION));
    d.status = Some(desired_status(
        &d,
        t0 + SignedDuration::from_secs(3),
        PROVISION,
    ));
    d.metadata.generation = Some(2);
    d.status = Some(desired_status(
        &d,
        t0 + SignedDuration::from_secs(4),
        PROVISION,
    ));
    assert_eq!(ready(&d), ("False".into(), "Provisioning".into()));
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(2));
}
