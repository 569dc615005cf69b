//! Leader election (SPEC §6): two replicas of one controller, each a process of its own with
//! its own user, share a `coordination.k8s.io` Lease in the local cluster. Only the leader
//! writes, which the API servers' audit logs show by user; when the leader is killed, or stops
//! gracefully, the standby takes over within the lease duration (kube-lease-manager's standby
//! sleeps until the expiry it last read, then takes the Lease).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use sync_core::Syncable;
use sync_tests::controller::ControllerProcess;
use sync_tests::{AuditEvent, AuditMark, Pair, unique_name};

const CONTROLLER: &str = env!("CARGO_BIN_EXE_sync-test-controller");
const LEASE_SECONDS: u64 = 6;

/// Writes by `user` other than to its Lease.
fn object_writes<'a>(events: &'a [AuditEvent], user: &str) -> Vec<&'a AuditEvent> {
    writes_by(events, user)
        .into_iter()
        .filter(|e| e.resource != "leases")
        .collect()
}

fn writes_since(pair: &Pair, marks: (AuditMark, AuditMark), user: &str) -> Vec<AuditEvent> {
    let mut w: Vec<AuditEvent> =
        object_writes(&pair.remote.audit_events_since(&marks.0).unwrap(), user)
            .into_iter()
            .cloned()
            .collect();
    w.extend(
        object_writes(&pair.local.audit_events_since(&marks.1).unwrap(), user)
            .into_iter()
            .cloned(),
    );
    w
}

fn marks(pair: &Pair) -> (AuditMark, AuditMark) {
    (
        pair.remote.audit_mark().unwrap(),
        pair.local.audit_mark().unwrap(),
    )
}

async fn synced(r: &Client, l: &Client, ns: &str, name: &str, size: &str) {
    let (ra, la) = (
        Api::<Database>::namespaced(r.clone(), ns),
        Api::<Database>::namespaced(l.clone(), ns),
    );
    eventually(&format!("{ns}/{name} synced at {size}"), WAIT, || async {
        let r = ra.get(name).await.map_err(|e| e.to_string())?;
        let l = la
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no local copy")?;
        let ok = l.spec.size == size
            && annotation(&r, &format!("{D}/sync-remote-generation"))
                == r.metadata.generation.map(|g| g.to_string());
        if ok {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", l.spec, r.metadata.annotations))
        }
    })
    .await
}

fn is_leading(text: &str, identity: &str) -> bool {
    text.contains(" leading") && text.contains(&format!("identity={identity}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_standby_takes_over_when_it_dies_or_steps_down() {
    let pair = setup().await;
    let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
    let name = unique_name("ha");
    let prefix = format!("{name}-");
    let ns = format!("{prefix}a");
    let lease_ns = format!("{prefix}lease");
    create_namespace(&r, &ns).await;
    create_namespace(&l, &lease_ns).await;
    // One controller (one name, so one claim on the remote objects), two replicas, each with a
    // user of its own so the audit logs tell their writes apart.
    let (user_a, user_b) = (format!("{name}-a"), format!("{name}-b"));
    let config = Database::defaults().controller_name(&name);
    for user in [&user_a, &user_b] {
        grant_controller::<Database>(pair, user, &config, true).await;
    }
    let lease = format!("{lease_ns}/{name}");
    let seconds = LEASE_SECONDS.to_string();
    let replica = |user: &str, identity: &str| {
        let args = controller_args(
            pair,
            user,
            &[
                "--name",
                &name,
                "--namespace-prefix",
                &prefix,
                "--lease",
                &lease,
                "--identity",
                identity,
                "--lease-seconds",
                &seconds,
            ],
        );
        ControllerProcess::spawn(identity, Path::new(CONTROLLER), &args)
    };

    let mut a = replica(&user_a, "a");
    a.wait_for_line("replica a leading", 0, WAIT, |l| is_leading(&l.text, "a"))
        .await;
    let mut b = replica(&user_b, "b");
    b.wait_ready(0, WAIT).await;
    let start = marks(pair);
    let api: Api<Database> = Api::namespaced(r.clone(), &ns);
    for i in 0..3 {
        api.create(&PostParams::default(), &db(&format!("db{i}"), "small"))
            .await
            .unwrap();
    }
    for i in 0..3 {
        synced(&r, &l, &ns, &format!("db{i}"), "small").await;
    }
    let by_b = writes_since(pair, start, &user_b);
    assert!(
        by_b.is_empty(),
        "the standby wrote:{}",
        describe(&by_b.iter().collect::<Vec<_>>())
    );
    assert!(
        !writes_since(pair, start, &user_a).is_empty(),
        "the leader wrote nothing"
    );

    // The leader dies without releasing the Lease: the standby waits for it to expire.
    let b_mark = b.mark();
    a.kill().await;
    let killed = Instant::now();
    let took_over = b
        .wait_for_line("replica b leading", b_mark, WAIT, |l| {
            is_leading(&l.text, "b")
        })
        .await
        .at;
    let takeover = took_over.duration_since(killed);
    let change = serde_json::json!({"spec": {"size": "large"}});
    api.patch("db0", &PatchParams::default(), &Patch::Merge(change))
        .await
        .unwrap();
    synced(&r, &l, &ns, "db0", "large").await;

    // The dead replica comes back as a standby and never writes while the other leads.
    let back = marks(pair);
    let mut a = replica(&user_a, "a");
    a.wait_ready(0, WAIT).await;
    api.create(&PostParams::default(), &db("db3", "small"))
        .await
        .unwrap();
    synced(&r, &l, &ns, "db3", "small").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_a = writes_since(pair, back, &user_a);
    assert!(
        by_a.is_empty(),
        "the standby wrote:{}",
        describe(&by_a.iter().collect::<Vec<_>>())
    );
    assert!(
        a.lines().iter().all(|l| !is_leading(&l.text, "a")),
        "two leaders:{}",
        a.tail(20)
    );

    // A leader that stops gracefully releases the Lease; the standby takes it at the latest
    // when the expiry it last read has passed.
    let a_mark = a.mark();
    assert!(
        b.terminate(Duration::from_secs(20)).await,
        "b did not stop cleanly"
    );
    let stopped = Instant::now();
    let handed = a
        .wait_for_line("replica a leading again", a_mark, WAIT, |l| {
            is_leading(&l.text, "a")
        })
        .await
        .at;
    let handover = handed.duration_since(stopped);
    api.patch(
        "db1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"size": "large"}})),
    )
    .await
    .unwrap();
    synced(&r, &l, &ns, "db1", "large").await;
    eprintln!(
        "lease {LEASE_SECONDS} s: takeover after SIGKILL of the leader {takeover:?}; after a graceful stop {handover:?}"
    );
    // Bounds that leave room for a loaded machine; the figures above are what happened.
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 5),
        "takeover took {takeover:?} with a {LEASE_SECONDS} s lease"
    );
    assert!(
        handover <= Duration::from_secs(LEASE_SECONDS + 5),
        "handover took {handover:?} with a {LEASE_SECONDS} s lease"
    );
    // Both replicas claim as the one controller they are.
    let owner = Api::<Database>::namespaced(r.clone(), &ns)
        .get("db3")
        .await
        .unwrap();
    assert_eq!(
        annotation(&owner, &format!("{D}/sync-controller")),
        Some(name.clone())
    );
    assert!(a.terminate(Duration::from_secs(20)).await);
}
