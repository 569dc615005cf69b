//! Leader election (SPEC §6): two replicas of one controller, each a process of its own with
//! its own user, share a `coordination.k8s.io` Lease in the local cluster. Only the leader
//! writes, which the API servers' audit logs show by user; when the leader is killed, the
//! standby takes over once it has seen the Lease go unrenewed for the lease duration on its own
//! clock, and when the leader stops gracefully it releases the Lease for a prompt takeover.
//! A leader that cannot renew (frozen, or its renewals denied) stops writing before a standby
//! may take over: every write is fenced by its last successful renewal.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
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

    // The leader dies without releasing the Lease: the standby takes it once it has seen it
    // unrenewed for the lease duration, on its own clock.
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

    // A leader that stops gracefully releases the Lease; the standby takes it at its next
    // look, within a retry period.
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

/// One controller with two replica users, its remote namespace and its Lease.
struct Ha {
    pair: &'static Pair,
    r: Client,
    l: Client,
    name: String,
    prefix: String,
    ns: String,
    lease_ns: String,
    users: [String; 2],
}

impl Ha {
    async fn new(prefix: &str) -> Ha {
        let pair = setup().await;
        let (r, l) = (admin(&pair.remote).await, admin(&pair.local).await);
        let name = unique_name(prefix);
        let prefix = format!("{name}-");
        let ns = format!("{prefix}a");
        let lease_ns = format!("{prefix}lease");
        create_namespace(&r, &ns).await;
        create_namespace(&l, &lease_ns).await;
        let users = [format!("{name}-a"), format!("{name}-b")];
        let config = Database::defaults().controller_name(&name);
        for user in &users {
            grant_controller::<Database>(pair, user, &config, true).await;
        }
        Ha {
            pair,
            r,
            l,
            name,
            prefix,
            ns,
            lease_ns,
            users,
        }
    }

    /// Replica `identity` (`a` or `b`, each with its own user), with `env` for the child.
    fn replica(&self, identity: &str, env: &[(&str, &str)]) -> ControllerProcess {
        let user = &self.users[usize::from(identity != "a")];
        let lease = format!("{}/{}", self.lease_ns, self.name);
        let seconds = LEASE_SECONDS.to_string();
        let args = controller_args(
            self.pair,
            user,
            &[
                "--name",
                &self.name,
                "--namespace-prefix",
                &self.prefix,
                "--lease",
                &lease,
                "--identity",
                identity,
                "--lease-seconds",
                &seconds,
            ],
        );
        ControllerProcess::spawn_with_env(identity, Path::new(CONTROLLER), &args, env)
    }

    fn api(&self) -> Api<Database> {
        Api::namespaced(self.r.clone(), &self.ns)
    }

    async fn create(&self, name: &str) {
        self.api()
            .create(&PostParams::default(), &db(name, "small"))
            .await
            .unwrap();
        synced(&self.r, &self.l, &self.ns, name, "small").await;
    }

    async fn resize(&self, name: &str, size: &str) {
        let change = serde_json::json!({"spec": {"size": size}});
        self.api()
            .patch(name, &PatchParams::default(), &Patch::Merge(change))
            .await
            .unwrap();
    }
}

async fn wait_leading(p: &mut ControllerProcess, mark: usize) -> Instant {
    let identity = p.name.clone();
    p.wait_for_line(&format!("replica {identity} leading"), mark, WAIT, |l| {
        is_leading(&l.text, &identity)
    })
    .await
    .at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_writes_nothing_after_it_wakes_once_a_standby_took_over() {
    let ha = Ha::new("frz").await;
    let mut a = ha.replica("a", &[]);
    wait_leading(&mut a, 0).await;
    let mut b = ha.replica("b", &[]);
    b.wait_ready(0, WAIT).await;
    let objects = ["db0", "db1", "db2", "db3"];
    for o in objects {
        ha.create(o).await;
    }

    // SIGSTOP stands for a GC pause or a stalled node: the leader neither renews nor knows it.
    let b_mark = b.mark();
    a.pause();
    let frozen = Instant::now();
    let took_over = wait_leading(&mut b, b_mark).await;
    let takeover = took_over.duration_since(frozen);
    // Changes the new leader syncs while the old one sleeps; the old one finds them in its
    // watches (and its stale caches) when it wakes.
    for o in objects {
        ha.resize(o, "large").await;
    }
    for o in objects {
        synced(&ha.r, &ha.l, &ha.ns, o, "large").await;
    }

    let woke = marks(ha.pair);
    let a_mark = a.mark();
    a.resume();
    // More changes right as it wakes, while its queue still holds what it saw before.
    for o in objects {
        ha.resize(o, "medium").await;
    }
    for o in objects {
        synced(&ha.r, &ha.l, &ha.ns, o, "medium").await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let by_a = writes_since(ha.pair, woke, &ha.users[0]);
    let frozen_for = Instant::now().duration_since(frozen);
    eprintln!(
        "lease {LEASE_SECONDS} s: standby led {takeover:?} after SIGSTOP of the leader; object writes by the old leader after SIGCONT: {}",
        by_a.len()
    );
    assert!(
        by_a.is_empty(),
        "the old leader wrote after it woke (frozen {frozen_for:?}):{}\nits log:{}",
        describe(&by_a.iter().collect::<Vec<_>>()),
        a.lines_since(a_mark)
            .iter()
            .map(|l| format!("\n  {}", l.text))
            .collect::<String>()
    );
    assert!(
        takeover >= Duration::from_secs(LEASE_SECONDS.saturating_sub(3)),
        "the standby took over {takeover:?} after the freeze, before the Lease could have lapsed"
    );
    assert!(b.terminate(Duration::from_secs(20)).await);
    assert!(a.terminate(Duration::from_secs(20)).await);
}

/// A policy on the local plane that denies every update of a Lease by `user`.
async fn deny_lease_updates(l: &Client, name: &str, user: &str) {
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["coordination.k8s.io"],
                "apiVersions": ["v1"],
                "operations": ["UPDATE"],
                "resources": ["leases"],
            }]},
            "validations": [{
                "expression": format!("request.userInfo.username != '{user}'"),
                "message": "lease renewals are denied by the test",
            }],
        },
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<ValidatingAdmissionPolicy>::all(l.clone())
        .create(&pp, &policy)
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(l.clone())
        .create(&pp, &binding)
        .await
        .unwrap();
}

async fn allow_lease_updates(l: &Client, name: &str) {
    let dp = DeleteParams::default();
    let _ = Api::<ValidatingAdmissionPolicyBinding>::all(l.clone())
        .delete(name, &dp)
        .await;
    let _ = Api::<ValidatingAdmissionPolicy>::all(l.clone())
        .delete(name, &dp)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_are_denied_stops_writing_within_the_lease_duration() {
    let ha = Ha::new("deny").await;
    // No standby yet: nothing takes the Lease away, so only the leader's own clock can tell it
    // that its hold lapsed.
    let mut a = ha.replica("a", &[]);
    wait_leading(&mut a, 0).await;
    ha.create("db0").await;

    let before = ha.pair.local.audit_mark().unwrap();
    deny_lease_updates(&ha.l, &ha.name, &ha.users[0]).await;
    let user_a = ha.users[0].clone();
    let result = ha
        .pair
        .local
        .wait_for_audit(&before, WAIT, |events| {
            events
                .iter()
                .any(|e| e.user == user_a && e.resource == "leases" && e.code >= 400)
        })
        .await;
    if let Err(e) = result {
        allow_lease_updates(&ha.l, &ha.name).await;
        panic!("no renewal was denied: {e}");
    }
    let denied = Instant::now();
    // The first denied renewal came at most one retry period after the last accepted one, so
    // by now a standby could have taken over.
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS)).await;
    let late = marks(ha.pair);
    ha.resize("db0", "large").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let by_a = writes_since(ha.pair, late, &ha.users[0]);
    let stopped = a
        .lines()
        .into_iter()
        .find(|l| l.text.contains("lost the lease"))
        .map(|l| l.at.saturating_duration_since(denied));

    // A standby started now sees the Lease unrenewed for its duration, takes it and syncs.
    let mut b = ha.replica("b", &[]);
    let started = Instant::now();
    let took_over = wait_leading(&mut b, 0).await.duration_since(started);
    synced(&ha.r, &ha.l, &ha.ns, "db0", "large").await;
    allow_lease_updates(&ha.l, &ha.name).await;
    eprintln!(
        "lease {LEASE_SECONDS} s: the leader whose renewals were denied logged the loss {stopped:?} after the first denial was seen; object writes by it {LEASE_SECONDS} s after: {}; a standby started then led after {took_over:?}",
        by_a.len()
    );
    assert!(
        by_a.is_empty(),
        "the leader whose renewals were denied still wrote {LEASE_SECONDS} s later:{}\nits log:{}",
        describe(&by_a.iter().collect::<Vec<_>>()),
        a.tail(30)
    );
    assert!(b.terminate(Duration::from_secs(20)).await);
    assert!(a.terminate(Duration::from_secs(20)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_leader_election_lets_a_running_reconcile_finish_within_the_deadline() {
    // The test controller's shutdown deadline.
    const DEADLINE: Duration = Duration::from_secs(5);
    let ha = Ha::new("term").await;
    // Each update of the local copy is held 2 s, well within the deadline.
    let mut a = ha.replica("a", &[("SYNC_TEST_SLOW_LOCAL_UPDATES_MS", "2000")]);
    wait_leading(&mut a, 0).await;
    ha.create("db0").await;

    let mark = a.mark();
    ha.resize("db0", "large").await;
    a.wait_for_line("an update held in flight", mark, WAIT, |l| {
        l.text == "HOLDING_UPDATE"
    })
    .await;
    let asked = marks(ha.pair);
    let term = Instant::now();
    let clean = a.terminate(Duration::from_secs(20)).await;
    let exited = term.elapsed();
    let local = get_opt::<Database>(&ha.l, &ha.ns, "db0").await.unwrap();
    let remote = ha.api().get("db0").await.unwrap();
    let after_term = writes_since(ha.pair, asked, &ha.users[0]);
    let lease = Api::<Lease>::namespaced(ha.l.clone(), &ha.lease_ns)
        .get(&ha.name)
        .await
        .unwrap();
    eprintln!(
        "SIGTERM with a reconcile in flight: exited after {exited:?} (deadline {DEADLINE:?}); writes after SIGTERM:{}",
        describe(&after_term.iter().collect::<Vec<_>>())
    );
    assert!(clean, "the controller did not stop cleanly:{}", a.tail(30));
    assert_eq!(
        local.spec.size,
        "large",
        "the running reconcile did not finish its update:{}",
        a.tail(30)
    );
    assert_eq!(
        annotation(&remote, &format!("{D}/sync-remote-generation")),
        remote.metadata.generation.map(|g| g.to_string()),
        "the running reconcile did not record the generation it applied:{}",
        a.tail(30)
    );
    assert!(
        after_term
            .iter()
            .any(|e| e.resource == "databases" && e.verb == "patch" && e.code < 300),
        "no write was issued after SIGTERM:{}",
        describe(&after_term.iter().collect::<Vec<_>>())
    );
    assert!(
        exited <= DEADLINE + Duration::from_secs(2),
        "stopping took {exited:?} with a {DEADLINE:?} deadline"
    );
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "the Lease was not released on shutdown"
    );
}
