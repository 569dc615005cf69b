//! Several kinds in one process (issue 12), against two real control planes:
//!
//! - a `SyncManager` runs two derived kinds (`Widget`, `Cache`) and one chosen at run time
//!   (`Gadget`, which has no Rust type, through `DynamicKind`): spec down, status and secrets
//!   up, one shared local namespace that goes with the last object of any kind;
//! - two replicas of it share one Lease, and only the leader writes, for every kind;
//! - its readiness waits for every kind's caches;
//! - a dynamic kind keeps its local-only fields, and one without status sends none up;
//! - a typed `transform_spec` (and a JSON one) puts a region override on the local copy only,
//!   without a write loop;
//! - configurations that can never work are refused at start.
//!
//! Every manager runs as its own user, bound only to the union of the RBAC rules
//! `sync_core::rbac` emits for its kinds, so the audit logs tell its writes apart.
//!
//! The test reads and writes every kind through `DynamicObject`, so one set of helpers serves
//! the three; the manager under test uses the typed kinds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::ObjectMeta;
use kube::{Client, CustomResourceExt, Resource, ResourceExt};
use serde_json::{Value, json};
use sync_core::{
    Dynamic, DynamicKind, KindBuilder, LeaderElection, Local, OnRemoteDelete, Propagation, Remote,
    RunError, SyncConfig, SyncManager, Syncable,
};
use sync_tests::crds::{Widget, WidgetSpec};
use sync_tests::dynamic_kind;
use sync_tests::managed::{KindRules, RunningManager, start_manager};
use sync_tests::second_kind::{self, Cache};
use sync_tests::{AuditEvent, AuditMark, install_crd};
use tokio::sync::OnceCell;

/// How long a kept namespace and kept siblings are watched after an object's remote was
/// released, to catch a deletion that comes a little later.
const HOLD: Duration = Duration::from_secs(2);
/// The lease duration of the leader-election tests: short, so a handover is quick.
const LEASE_SECONDS: u64 = 6;

/// The shared pair with this binary's CRDs installed once: Widget, Cache and Gadget, the same
/// on both planes; and this test's clients and names.
async fn env(prefix: &str) -> T {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let t = test_env(prefix).await;
    CRDS.get_or_init(|| async {
        install_crd(&t.r, Widget::crd()).await.unwrap();
        install_crd(&t.l, Widget::crd()).await.unwrap();
        second_kind::install_crds(&t.r, &t.l).await;
        dynamic_kind::install_crds(&t.r, &t.l).await;
    })
    .await;
    t
}

/// One synced kind as the test sees it, whatever its Rust type (if any).
#[derive(Clone, Debug)]
struct Kind {
    ar: ApiResource,
}

impl Kind {
    fn widget() -> Kind {
        Kind {
            ar: ApiResource::erase::<Widget>(&()),
        }
    }
    fn cache() -> Kind {
        Kind {
            ar: ApiResource::erase::<Cache>(&()),
        }
    }
    fn gadget() -> Kind {
        Kind {
            ar: dynamic_kind::api_resource(),
        }
    }
    fn api(&self, c: &Client, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(c.clone(), ns, &self.ar)
    }
    fn object(&self, name: &str, spec: Value) -> DynamicObject {
        let mut o = DynamicObject::new(name, &self.ar);
        o.data = json!({ "spec": spec });
        o
    }
}

fn spec(o: &DynamicObject) -> &Value {
    &o.data["spec"]
}

fn status(o: &DynamicObject) -> &Value {
    &o.data["status"]
}

fn annotation(o: &DynamicObject, key: &str) -> Option<String> {
    o.annotations().get(&format!("{D}/{key}")).cloned()
}

fn claimed(r: &DynamicObject) -> bool {
    r.finalizers().contains(&format!("{D}/sync-local"))
}

/// The remote object and its local copy in a few words, for failure messages.
fn pair_of(r: &DynamicObject, l: Option<&DynamicObject>) -> String {
    format!(
        "remote gen {:?} annotations {:?} finalizers {:?} spec {} status {}; local {}",
        r.metadata.generation,
        r.metadata.annotations,
        r.finalizers(),
        spec(r),
        status(r),
        l.map_or_else(
            || "none".to_owned(),
            |l| format!(
                "gen {:?} spec {} status {}",
                l.metadata.generation,
                spec(l),
                status(l)
            )
        )
    )
}

/// Waits until the remote object `name` in `ns` and its local copy satisfy `ok`; returns both.
async fn wait_for(
    t: &T,
    k: &Kind,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&DynamicObject, &DynamicObject) -> bool,
) -> (DynamicObject, DynamicObject) {
    let (ra, la) = (k.api(&t.r, ns), k.api(&t.l, ns));
    eventually(
        &format!("{} {ns}/{name}: {what}", k.ar.kind),
        WAIT,
        || async {
            let r = ra.get(name).await.map_err(|e| e.to_string())?;
            let l = la.get_opt(name).await.map_err(|e| e.to_string())?;
            match l {
                Some(l) if ok(&r, &l) => Ok((r, l)),
                l => Err(pair_of(&r, l.as_ref())),
            }
        },
    )
    .await
}

/// Waits until the remote object is claimed, its local copy has its spec, and the remote
/// records the generations applied.
async fn converged(t: &T, k: &Kind, ns: &str, name: &str) -> (DynamicObject, DynamicObject) {
    wait_for(t, k, ns, name, "converged", |r, l| {
        claimed(r)
            && spec(l) == spec(r)
            && annotation(r, "sync-remote-generation")
                == r.metadata.generation.map(|g| g.to_string())
            && annotation(r, "sync-local-generation")
                == l.metadata.generation.map(|g| g.to_string())
    })
    .await
}

/// Merges `patch` into the spec of the object `name` on the cluster of `c`.
async fn patch_spec(c: &Client, k: &Kind, ns: &str, name: &str, patch: Value) {
    k.api(c, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": patch })),
        )
        .await
        .unwrap();
}

/// Plays the local controller: writes `status`, with `observedGeneration` set to the local
/// copy's generation, and returns the status written.
async fn set_local_status(t: &T, k: &Kind, ns: &str, name: &str, mut status: Value) -> Value {
    let api = k.api(&t.l, ns);
    let g = api.get(name).await.unwrap().metadata.generation.unwrap();
    status["observedGeneration"] = json!(g);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
    status
}

/// Starts a manager as `user` on the shared pair; see [`start_manager`].
async fn start(
    user: &str,
    leader: Option<LeaderElection>,
    kinds: impl FnOnce(SyncManager, &KindRules) -> SyncManager,
) -> RunningManager {
    start_manager(pair(), user, leader, kinds).await
}

/// Records the rules of the Gadget kind as configured in `k`, and hands `k` back.
fn gadget(rules: &KindRules, k: KindBuilder<Dynamic>) -> KindBuilder<Dynamic> {
    rules.dynamic(&dynamic_kind::api_resource(), k)
}

/// Retries within 200 ms to 5 s, so a test does not wait out the default backoff.
fn fast<K: sync_core::SyncObject>(k: KindBuilder<K>) -> KindBuilder<K> {
    k.backoff(Duration::from_millis(200), Duration::from_secs(5))
}

/// The three kinds of the manager tests, under controller names of this test (`base-w`,
/// `base-c`, `base-g`), in the namespaces of `t`. Widgets and Gadgets send up the local secret
/// `wcreds` and `gcreds`. Local deletions are in the background: a foreground deletion of a
/// kind the garbage collector has not discovered yet (it looks every 30 s) would wait for it.
fn three_kinds(t: &T, base: &str) -> impl FnOnce(SyncManager, &KindRules) -> SyncManager {
    three_kinds_with(t, base, |c| c)
}

/// As [`three_kinds`], with `more` applied to every kind's defaults.
fn three_kinds_with(
    t: &T,
    base: &str,
    more: impl Fn(SyncConfig) -> SyncConfig + Send + Sync + 'static,
) -> impl FnOnce(SyncManager, &KindRules) -> SyncManager {
    let prefix = t.prefix();
    let base = base.to_owned();
    move |m, rbac| {
        m.defaults(move |c| {
            more(
                c.namespace_prefix(prefix.clone())
                    .propagation(Propagation::Background),
            )
        })
        .add::<Widget>(|k| {
            rbac.typed(fast(k.configure(|c| {
                c.controller_name(format!("{base}-w")).secrets(["wcreds"])
            })))
        })
        .add::<Cache>(|k| {
            rbac.typed(fast(
                k.configure(|c| c.controller_name(format!("{base}-c"))),
            ))
        })
        .add_dynamic(DynamicKind::new(dynamic_kind::api_resource()), |k| {
            let k = k.configure(|c| c.controller_name(format!("{base}-g")).secrets(["gcreds"]));
            gadget(rbac, fast(k))
        })
    }
}

/// The first objects of the three kinds, in `ns`: a Widget `w1`, a Cache `c1`, a Gadget `g1`.
fn first_objects() -> [(Kind, &'static str, Value); 3] {
    [
        (Kind::widget(), "w1", json!({"size": 1, "color": "blue"})),
        (Kind::cache(), "c1", json!({"size": "1Gi"})),
        (Kind::gadget(), "g1", json!({"image": "v1", "replicas": 2})),
    ]
}

async fn create_remote(t: &T, k: &Kind, ns: &str, name: &str, spec: Value) {
    k.api(&t.r, ns)
        .create(&PostParams::default(), &k.object(name, spec))
        .await
        .unwrap();
}

fn secret(name: &str, ns: &str, value: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn password(s: &Secret) -> String {
    s.data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

/// The local namespace in a few words, for failure messages.
fn describe_ns(ns: Option<&Namespace>) -> String {
    match ns {
        None => "gone".to_owned(),
        Some(n) => format!(
            "uid {:?}, deletionTimestamp {:?}, annotations {:?}",
            n.metadata.uid, n.metadata.deletion_timestamp, n.metadata.annotations
        ),
    }
}

/// Deletes the remote object, waits until it is released and gone and its local copy is
/// gone, then checks for [`HOLD`] that the local namespace is the same live one and that
/// every `kept` local object (kind, name, uid) is still the same object.
async fn delete_and_keep_namespace(
    t: &T,
    k: &Kind,
    name: &str,
    ns_uid: &str,
    kept: &[(Kind, &str, String)],
) {
    let ns = &t.ns;
    k.api(&t.r, ns)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    for (c, side) in [(&t.r, "remote"), (&t.l, "local")] {
        let api = k.api(c, ns);
        eventually(
            &format!("the {side} {} {ns}/{name} to be gone", k.ar.kind),
            WAIT,
            || async {
                match api.get_opt(name).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(o) => Err(format!(
                        "still there: deletionTimestamp {:?}, finalizers {:?}",
                        o.metadata.deletion_timestamp,
                        o.finalizers()
                    )),
                }
            },
        )
        .await;
    }
    let until = tokio::time::Instant::now() + HOLD;
    loop {
        let n = Api::<Namespace>::all(t.l.clone())
            .get_opt(ns)
            .await
            .unwrap();
        assert!(
            n.as_ref()
                .is_some_and(|n| n.metadata.deletion_timestamp.is_none()
                    && n.metadata.uid.as_deref() == Some(ns_uid)),
            "the shared local namespace {ns} was not kept after the {} {name} went; now: {}",
            k.ar.kind,
            describe_ns(n.as_ref())
        );
        for (kk, kname, uid) in kept {
            let now = kk.api(&t.l, ns).get_opt(kname).await.unwrap();
            assert_eq!(
                now.as_ref().and_then(ResourceExt::uid).as_deref(),
                Some(uid.as_str()),
                "the local {} {ns}/{kname} was not kept after the {} {name} went (None = gone)",
                kk.ar.kind,
                k.ar.kind
            );
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_kinds_in_one_manager_sync_down_and_up_in_one_shared_namespace() {
    let t = env("three").await;
    let ns = t.ns.clone();
    let rs = Api::<Secret>::namespaced(t.r.clone(), &ns);
    for name in ["wcreds", "gcreds"] {
        rs.create(&PostParams::default(), &secret(name, &ns, "old"))
            .await
            .unwrap();
    }
    let mut m = start(&t.name, None, three_kinds(&t, &t.name)).await;
    m.wait_ready(WAIT).await;

    // Create: each kind's local copy appears in the one mapped namespace.
    for (k, name, spec) in first_objects() {
        create_remote(&t, &k, &ns, name, spec).await;
    }
    let mut locals = Vec::new();
    for (k, name, _) in first_objects() {
        locals.push(converged(&t, &k, &ns, name).await.1);
    }
    let local_ns = Api::<Namespace>::all(t.l.clone()).get(&ns).await.unwrap();
    assert!(
        local_ns
            .annotations()
            .contains_key(&format!("{D}/sync-owner")),
        "the local namespace was not created by the manager: {}",
        describe_ns(Some(&local_ns))
    );

    // Update: a spec change of each kind goes down.
    let changes = [
        json!({"size": 2}),
        json!({"size": "2Gi"}),
        json!({"image": "v2"}),
    ];
    for ((k, name, _), change) in first_objects().into_iter().zip(changes) {
        patch_spec(&t.r, &k, &ns, name, change).await;
    }
    for (k, name, _) in first_objects() {
        let (r, l) = converged(&t, &k, &ns, name).await;
        assert_eq!(spec(&l), spec(&r));
    }

    // Status: what the local controller reports goes up, for each kind.
    let statuses = [
        json!({"phase": "Ready"}),
        json!({"ready": true}),
        json!({"phase": "Running"}),
    ];
    for ((k, name, _), s) in first_objects().into_iter().zip(statuses) {
        let written = set_local_status(&t, &k, &ns, name, s).await;
        wait_for(&t, &k, &ns, name, "the local status up", |r, _| {
            *status(r) == written
        })
        .await;
    }

    // Secrets: a configured secret controlled by the local copy goes up, for a derived kind
    // and for the dynamic one.
    let ls = Api::<Secret>::namespaced(t.l.clone(), &ns);
    for (k, owner, name) in [
        (Kind::widget(), &locals[0], "wcreds"),
        (Kind::gadget(), &locals[2], "gcreds"),
    ] {
        let mut s = secret(name, &ns, "new");
        s.metadata.owner_references = Some(vec![owner.controller_owner_ref(&k.ar).unwrap()]);
        ls.create(&PostParams::default(), &s).await.unwrap();
    }
    for (k, owner, name) in [
        (Kind::widget(), "w1", "wcreds"),
        (Kind::gadget(), "g1", "gcreds"),
    ] {
        let remote_owner = k.api(&t.r, &ns).get(owner).await.unwrap().uid().unwrap();
        let rs = rs.clone();
        eventually(
            &format!("the local secret {name} up, owned by the remote {owner}"),
            WAIT,
            || async {
                let s = rs.get(name).await.map_err(|e| e.to_string())?;
                let owner = s
                    .metadata
                    .owner_references
                    .as_ref()
                    .and_then(|o| o.iter().find(|o| o.controller == Some(true)))
                    .map(|o| o.uid.clone());
                if password(&s) == "new" && owner.as_deref() == Some(remote_owner.as_str()) {
                    Ok(())
                } else {
                    Err(format!("password {:?}, controller {owner:?}", password(&s)))
                }
            },
        )
        .await;
    }

    // One shutdown stops every kind: a later remote change of any kind stays up there.
    m.stop().await;
    let since = marks();
    let changes = [
        json!({"size": 9}),
        json!({"size": "9Gi"}),
        json!({"image": "v9"}),
    ];
    for ((k, name, _), change) in first_objects().into_iter().zip(changes) {
        patch_spec(&t.r, &k, &ns, name, change).await;
    }
    tokio::time::sleep(HOLD).await;
    let after = writes_on_both_since(&since, &t.name);
    assert!(
        after.is_empty(),
        "writes after the manager stopped:{}",
        describe(&after.iter().collect::<Vec<_>>())
    );
    for (k, name, _) in first_objects() {
        let (r, l) = (k.api(&t.r, &ns), k.api(&t.l, &ns));
        let (r, l) = (r.get(name).await.unwrap(), l.get(name).await.unwrap());
        assert_ne!(
            spec(&l),
            spec(&r),
            "the local copy followed after the manager stopped"
        );
    }
}

/// The annotation by which a sync controller says it created a local namespace.
fn creator(n: &Namespace) -> Option<&str> {
    n.annotations()
        .get(&format!("{D}/sync-owner-controller"))
        .map(String::as_str)
}

/// Creates a Widget, a Cache and a Gadget in one namespace (the Widget kind creates it), then
/// deletes their remotes in that order: each local copy must go with its remote, and the
/// namespace must stay until the last goes, then go too. `policy` is every kind's
/// `on_remote_delete`, if not the default.
async fn each_kind_deleted_in_turn(prefix: &str, policy: Option<OnRemoteDelete>) {
    let t = env(prefix).await;
    let ns = t.ns.clone();
    let kinds = three_kinds_with(&t, &t.name, move |c| match policy {
        Some(p) => c.on_remote_delete(p),
        None => c,
    });
    let mut m = start(&t.name, None, kinds).await;
    m.wait_ready(WAIT).await;
    // The Widget comes first, so the Widget kind creates the namespace and the others join
    // it; its object then goes first, and the namespace must outlive it.
    let [first, rest @ ..] = first_objects();
    create_remote(&t, &first.0, &ns, first.1, first.2).await;
    converged(&t, &first.0, &ns, first.1).await;
    for (k, name, spec) in rest {
        create_remote(&t, &k, &ns, name, spec).await;
    }
    let mut uids = Vec::new();
    for (k, name, _) in first_objects() {
        uids.push(converged(&t, &k, &ns, name).await.1.uid().unwrap());
    }
    let local_ns = Api::<Namespace>::all(t.l.clone()).get(&ns).await.unwrap();
    assert_eq!(
        creator(&local_ns),
        Some(format!("{}-w", t.name).as_str()),
        "the Widget kind did not create the namespace: {}",
        describe_ns(Some(&local_ns))
    );
    let ns_uid = local_ns.uid().unwrap();

    delete_and_keep_namespace(
        &t,
        &Kind::widget(),
        "w1",
        &ns_uid,
        &[
            (Kind::cache(), "c1", uids[1].clone()),
            (Kind::gadget(), "g1", uids[2].clone()),
        ],
    )
    .await;
    delete_and_keep_namespace(
        &t,
        &Kind::cache(),
        "c1",
        &ns_uid,
        &[(Kind::gadget(), "g1", uids[2].clone())],
    )
    .await;
    Kind::gadget()
        .api(&t.r, &ns)
        .delete("g1", &DeleteParams::default())
        .await
        .unwrap();
    let nsa = Api::<Namespace>::all(t.l.clone());
    eventually(
        &format!("the local namespace {ns} to be deleted with the last object"),
        WAIT,
        || async {
            let n = nsa.get_opt(&ns).await.map_err(|e| e.to_string())?;
            match &n {
                Some(n) if n.metadata.deletion_timestamp.is_none() => Err(describe_ns(Some(n))),
                _ => Ok(()),
            }
        },
    )
    .await;
    t.gone(&Kind::gadget().api(&t.r, &ns), "g1").await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_resource_policy_any_kinds_delete_takes_its_copy_and_the_last_the_namespace() {
    each_kind_deleted_in_turn("delres", Some(OnRemoteDelete::NamespaceOrResource)).await;
}

/// The kinds of one manager share the namespace one of them created, so by default a remote
/// delete of any kind takes its local copy with it, as it does for the kind that created it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_any_kinds_delete_takes_its_copy_and_the_last_the_namespace() {
    assert_eq!(
        Widget::defaults().on_remote_delete,
        OnRemoteDelete::Namespace
    );
    each_kind_deleted_in_turn("deldef", None).await;
}

/// Writes by `user` other than to Leases, on both planes since `marks`.
fn object_writes(marks: &(AuditMark, AuditMark), user: &str) -> Vec<AuditEvent> {
    writes_on_both_since(marks, user)
        .into_iter()
        .filter(|e| e.resource != "leases")
        .collect()
}

/// Which resources `events` created or updated successfully, for "every kind was written".
fn written_resources(events: &[AuditEvent]) -> Vec<String> {
    let mut r: Vec<String> = events
        .iter()
        .filter(|e| e.code < 300)
        .map(|e| e.resource.clone())
        .collect();
    r.sort();
    r.dedup();
    r
}

async fn wait_holder(l: &Client, lease_ns: &str, lease: &str, identity: &str) {
    let api = Api::<Lease>::namespaced(l.clone(), lease_ns);
    eventually(
        &format!("the Lease {lease_ns}/{lease} held by {identity}"),
        WAIT,
        || async {
            let held = api
                .get_opt(lease)
                .await
                .map_err(|e| e.to_string())?
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity);
            if held.as_deref() == Some(identity) {
                Ok(())
            } else {
                Err(format!("holder {held:?}"))
            }
        },
    )
    .await;
}

/// Exactly one Lease in `lease_ns`, named `lease`.
async fn one_lease(l: &Client, lease_ns: &str, lease: &str) {
    let names: Vec<String> = Api::<Lease>::namespaced(l.clone(), lease_ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(
        names,
        [lease],
        "the manager of three kinds must hold one Lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_of_a_three_kind_manager_share_one_lease_and_only_the_leader_writes() {
    let t = env("mgrha").await;
    let lease_ns = format!("{}lease", t.prefix());
    create_namespace(&t.l, &lease_ns).await;
    let lease = t.name.clone();
    let election = |identity: &str| {
        LeaderElection::new(&lease, &lease_ns, identity)
            .lease_duration(Duration::from_secs(LEASE_SECONDS))
    };
    // One manager (one set of controller names), two replicas, each with a user of its own
    // so the audit logs tell their writes apart.
    let (user_a, user_b) = (format!("{}-a", t.name), format!("{}-b", t.name));
    let a = start(&user_a, Some(election("a")), three_kinds(&t, &t.name)).await;
    wait_holder(&t.l, &lease_ns, &lease, "a").await;
    let mut b = start(&user_b, Some(election("b")), three_kinds(&t, &t.name)).await;
    b.wait_ready(WAIT).await;

    let since = marks();
    for (k, name, spec) in first_objects() {
        create_remote(&t, &k, &t.ns, name, spec).await;
    }
    for (k, name, _) in first_objects() {
        converged(&t, &k, &t.ns, name).await;
    }
    let by_b = object_writes(&since, &user_b);
    assert!(
        by_b.is_empty(),
        "the standby wrote:{}",
        describe(&by_b.iter().collect::<Vec<_>>())
    );
    let by_a = written_resources(&object_writes(&since, &user_a));
    for kind in ["widgets", "caches", "gadgets"] {
        assert!(
            by_a.iter().any(|r| r == kind),
            "the leader wrote no {kind}; it wrote {by_a:?}"
        );
    }
    one_lease(&t.l, &lease_ns, &lease).await;

    // The leader stops and releases the Lease: the standby takes over every kind, and the
    // old leader, back as a standby, writes nothing.
    a.stop().await;
    wait_holder(&t.l, &lease_ns, &lease, "b").await;
    let mut a = start(&user_a, Some(election("a")), three_kinds(&t, &t.name)).await;
    a.wait_ready(WAIT).await;
    let since = marks();
    let changes = [
        json!({"size": 3}),
        json!({"size": "3Gi"}),
        json!({"image": "v3"}),
    ];
    for ((k, name, _), change) in first_objects().into_iter().zip(changes) {
        patch_spec(&t.r, &k, &t.ns, name, change).await;
    }
    for (k, name, _) in first_objects() {
        converged(&t, &k, &t.ns, name).await;
    }
    let by_a = object_writes(&since, &user_a);
    assert!(
        by_a.is_empty(),
        "the old leader wrote as a standby:{}",
        describe(&by_a.iter().collect::<Vec<_>>())
    );
    let by_b = written_resources(&object_writes(&since, &user_b));
    for kind in ["widgets", "caches", "gadgets"] {
        assert!(
            by_b.iter().any(|r| r == kind),
            "the new leader wrote no {kind}; it wrote {by_b:?}"
        );
    }
    one_lease(&t.l, &lease_ns, &lease).await;
    b.stop().await;
    a.stop().await;
}

/// A manager of the Gadget kind alone, whose `/spec/replicas` is local-only.
fn gadgets_with_local_replicas(t: &T) -> impl FnOnce(SyncManager, &KindRules) -> SyncManager {
    let prefix = t.prefix();
    move |m, rbac| {
        m.defaults(move |c| c.namespace_prefix(prefix.clone()))
            .add_dynamic(
                DynamicKind::new(dynamic_kind::api_resource()).local_only("/spec/replicas"),
                |k| gadget(rbac, fast(k)),
            )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_kinds_local_only_field_is_left_as_set_while_the_rest_follows_the_remote() {
    let t = env("localonly").await;
    let ns = &t.ns;
    let k = Kind::gadget();
    let m = start(&t.name, None, gadgets_with_local_replicas(&t)).await;
    create_remote(&t, &k, ns, "g1", json!({"image": "v1", "replicas": 2})).await;
    let (_, l) = wait_for(&t, &k, ns, "g1", "created, claimed", |r, l| {
        claimed(r) && spec(l)["image"] == "v1"
    })
    .await;
    assert_eq!(
        spec(&l).get("replicas"),
        None,
        "the local-only field was copied down on creation"
    );

    // Set by hand locally, then the remote changes both fields.
    patch_spec(&t.l, &k, ns, "g1", json!({"replicas": 5})).await;
    patch_spec(&t.r, &k, ns, "g1", json!({"image": "v2", "replicas": 7})).await;
    wait_for(&t, &k, ns, "g1", "the new image down", |r, l| {
        spec(l)["image"] == "v2"
            && annotation(r, "sync-remote-generation")
                == r.metadata.generation.map(|g| g.to_string())
            && annotation(r, "sync-local-generation")
                == l.metadata.generation.map(|g| g.to_string())
    })
    .await;
    // Nothing reverts the hand-set value later, and nothing is written for it.
    let since = marks();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let l = k.api(&t.l, ns).get("g1").await.unwrap();
    assert_eq!(
        spec(&l)["replicas"],
        json!(5),
        "the local-only field was not left as set: {}",
        spec(&l)
    );
    let idle = writes_on_both_since(&since, &t.name);
    assert!(
        idle.is_empty(),
        "writes for a local-only difference:{}",
        describe(&idle.iter().collect::<Vec<_>>())
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_local_only_field_is_kept_even_when_the_remote_drops_its_parent() {
    let t = env("nestedlocal").await;
    let ns = &t.ns;
    let k = Kind::gadget();
    let prefix = t.prefix();
    let m = start(&t.name, None, move |m, rbac| {
        m.defaults(move |c| c.namespace_prefix(prefix.clone()))
            .add_dynamic(
                DynamicKind::new(dynamic_kind::api_resource()).local_only("/spec/limits/cpu"),
                |k| gadget(rbac, fast(k)),
            )
    })
    .await;
    let limits = json!({"cpu": "1", "memory": "1Gi"});
    create_remote(&t, &k, ns, "g1", json!({"image": "v1", "limits": limits})).await;
    let follows = |want: Value| {
        move |r: &DynamicObject, l: &DynamicObject| {
            claimed(r)
                && *spec(l) == want
                && annotation(r, "sync-remote-generation")
                    == r.metadata.generation.map(|g| g.to_string())
                && annotation(r, "sync-local-generation")
                    == l.metadata.generation.map(|g| g.to_string())
        }
    };
    let created = json!({"image": "v1", "limits": {"memory": "1Gi"}});
    wait_for(
        &t,
        &k,
        ns,
        "g1",
        "created without the cpu",
        follows(created),
    )
    .await;

    patch_spec(&t.l, &k, ns, "g1", json!({"limits": {"cpu": "500m"}})).await;
    patch_spec(&t.r, &k, ns, "g1", json!({"limits": {"memory": "2Gi"}})).await;
    let changed = json!({"image": "v1", "limits": {"cpu": "500m", "memory": "2Gi"}});
    wait_for(
        &t,
        &k,
        ns,
        "g1",
        "the memory down, the cpu kept",
        follows(changed),
    )
    .await;

    patch_spec(&t.r, &k, ns, "g1", json!({"image": "v2", "limits": null})).await;
    let dropped = json!({"image": "v2", "limits": {"cpu": "500m"}});
    wait_for(
        &t,
        &k,
        ns,
        "g1",
        "the limits gone but the cpu",
        follows(dropped),
    )
    .await;
    let since = marks();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = writes_on_both_since(&since, &t.name);
    assert!(
        idle.is_empty(),
        "writes for a nested local-only field:{}",
        describe(&idle.iter().collect::<Vec<_>>())
    );
    m.stop().await;
}

/// Runs `manager` and expects it to refuse its configuration at once. It is confined to the
/// namespaces of `t`, so a manager that is not refused touches no other test's objects.
async fn refused(what: &str, manager: SyncManager) {
    let result = tokio::time::timeout(Duration::from_secs(10), manager.run(std::future::pending()))
        .await
        .unwrap_or_else(|_| panic!("run did not refuse {what}"));
    assert!(
        matches!(result, Err(RunError::InvalidConfig(_))),
        "run did not refuse {what} as an invalid configuration: {result:?}"
    );
}

fn confined(t: &T) -> SyncManager {
    let prefix = t.prefix();
    SyncManager::new(Remote(t.r.clone()), Local(t.l.clone()))
        .defaults(move |c| c.namespace_prefix(prefix.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_only_pointer_outside_the_spec_is_refused_at_start() {
    let t = env("badptr").await;
    for pointer in [
        "/metadata/labels",
        "/status/phase",
        "spec/replicas",
        "/spec",
    ] {
        let kind = DynamicKind::new(dynamic_kind::api_resource()).local_only(pointer);
        refused(
            &format!("the local-only pointer {pointer:?}"),
            confined(&t).add_dynamic(kind, |k| k),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_without_kinds_or_with_two_kinds_of_one_name_is_refused_at_start() {
    let t = env("badmgr").await;
    refused("a manager without kinds", confined(&t)).await;
    let same = |c: sync_core::SyncConfig| c.controller_name("one-name");
    refused(
        "two kinds under one controller name",
        confined(&t)
            .add::<Widget>(|k| k.configure(same))
            .add_dynamic(DynamicKind::new(dynamic_kind::api_resource()), |k| {
                k.configure(same)
            }),
    )
    .await;
}

/// The region override of the transform tests.
const REGION_COLOR: &str = "eu-red";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_spec_transform_puts_a_region_override_down_and_writes_nothing_while_idle() {
    let t = env("transform").await;
    let ns = &t.ns;
    let k = Kind::widget();
    let prefix = t.prefix();
    let m = start(&t.name, None, move |m, rbac| {
        m.defaults(move |c| c.namespace_prefix(prefix.clone()))
            .add::<Widget>(|k| {
                rbac.typed(fast(k).transform_spec(|s: &mut WidgetSpec| {
                    s.color = Some(REGION_COLOR.to_owned());
                }))
            })
    })
    .await;
    create_remote(&t, &k, ns, "w1", json!({"size": 1, "color": "blue"})).await;
    let transformed = |r: &DynamicObject, l: &DynamicObject| {
        claimed(r)
            && spec(l)["size"] == spec(r)["size"]
            && spec(l)["color"] == REGION_COLOR
            && annotation(r, "sync-remote-generation")
                == r.metadata.generation.map(|g| g.to_string())
            && annotation(r, "sync-local-generation")
                == l.metadata.generation.map(|g| g.to_string())
    };
    let (r, _) = wait_for(&t, &k, ns, "w1", "the override down", transformed).await;
    assert_eq!(
        *spec(&r),
        json!({"size": 1, "color": "blue"}),
        "the remote spec was changed"
    );

    // A remote change still goes down, with the override; a local edit of the overridden
    // field is drift, reverted to the override.
    patch_spec(&t.r, &k, ns, "w1", json!({"size": 2})).await;
    wait_for(&t, &k, ns, "w1", "the change down", |r, l| {
        transformed(r, l) && spec(l)["size"] == 2
    })
    .await;
    patch_spec(&t.l, &k, ns, "w1", json!({"color": "green"})).await;
    wait_for(&t, &k, ns, "w1", "the local edit reverted", transformed).await;
    let written = set_local_status(&t, &k, ns, "w1", json!({"phase": "Ready"})).await;
    let (r, _) = wait_for(&t, &k, ns, "w1", "the status up", |r, l| {
        transformed(r, l) && *status(r) == written
    })
    .await;
    // One create and one change: a write of the remote spec would have made a third.
    assert_eq!(
        (spec(&r), r.metadata.generation),
        (&json!({"size": 2, "color": "blue"}), Some(2)),
        "the remote spec was changed"
    );

    // Converged: over an idle window, not one write.
    let since = marks();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = writes_on_both_since(&since, &t.name);
    assert!(
        idle.is_empty(),
        "writes while idle with a spec transform:{}",
        describe(&idle.iter().collect::<Vec<_>>())
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_spec_transform_on_a_dynamic_kind_sets_the_region_on_the_local_copy_only() {
    let t = env("jsontransform").await;
    let ns = &t.ns;
    let k = Kind::gadget();
    let prefix = t.prefix();
    let m = start(&t.name, None, move |m, rbac| {
        m.defaults(move |c| c.namespace_prefix(prefix.clone()))
            .add_dynamic(DynamicKind::new(dynamic_kind::api_resource()), |k| {
                gadget(
                    rbac,
                    fast(k).transform_json(|spec| spec["region"] = json!("eu")),
                )
            })
    })
    .await;
    create_remote(&t, &k, ns, "g1", json!({"image": "v1", "region": "any"})).await;
    let transformed = |r: &DynamicObject, l: &DynamicObject| {
        claimed(r)
            && *spec(l) == json!({"image": spec(r)["image"], "region": "eu"})
            && annotation(r, "sync-remote-generation")
                == r.metadata.generation.map(|g| g.to_string())
            && annotation(r, "sync-local-generation")
                == l.metadata.generation.map(|g| g.to_string())
    };
    wait_for(&t, &k, ns, "g1", "the region down", transformed).await;
    patch_spec(&t.l, &k, ns, "g1", json!({"region": "us"})).await;
    let (r, _) = wait_for(&t, &k, ns, "g1", "the local edit reverted", transformed).await;
    assert_eq!(
        (spec(&r), r.metadata.generation),
        (&json!({"image": "v1", "region": "any"}), Some(1)),
        "the remote spec was changed"
    );
    let since = marks();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = writes_on_both_since(&since, &t.name);
    assert!(
        idle.is_empty(),
        "writes while idle with a JSON spec transform:{}",
        describe(&idle.iter().collect::<Vec<_>>())
    );
    m.stop().await;
}

/// A kind without a status subresource, for the test of `DynamicKind::status(false)`.
fn gizmo() -> ApiResource {
    ApiResource {
        kind: "Gizmo".into(),
        plural: "gizmos".into(),
        ..dynamic_kind::api_resource()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_kind_without_status_run_alone_syncs_its_spec_and_sends_no_status_up() {
    let t = env("nostatus").await;
    let ns = &t.ns;
    let mut crd = dynamic_kind::crd_of(&gizmo());
    crd.spec.versions[0].subresources = None;
    for c in [&t.r, &t.l] {
        install_crd(c, crd.clone()).await.unwrap();
    }
    let k = Kind { ar: gizmo() };
    // The one-kind reconciler of a kind chosen at run time, as its own user with its RBAC.
    let kind = DynamicKind::new(gizmo()).status(false);
    let config = kind.defaults().namespace_prefix(t.prefix());
    grant(
        &admin(&pair().remote).await,
        &t.name,
        sync_core::rbac::remote_rules_for(&gizmo(), &config),
    )
    .await;
    grant(
        &admin(&pair().local).await,
        &t.name,
        sync_core::rbac::local_rules_for(&gizmo(), &config, false),
    )
    .await;
    let builder = kind
        .reconciler(
            Remote(pair().remote.client_as(&t.name, &[]).await.unwrap()),
            Local(pair().local.client_as(&t.name, &[]).await.unwrap()),
        )
        .configure(|_| config)
        .backoff(Duration::from_millis(200), Duration::from_secs(5))
        .shutdown_deadline(Duration::from_secs(5));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(builder.run(async move {
        let _ = stopped.await;
    }));

    create_remote(&t, &k, ns, "z1", json!({"image": "v1"})).await;
    converged(&t, &k, ns, "z1").await;
    // The local controller writes a status into the object itself (there is no subresource).
    k.api(&t.l, ns)
        .patch(
            "z1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    patch_spec(&t.r, &k, ns, "z1", json!({"image": "v2"})).await;
    converged(&t, &k, ns, "z1").await;
    let since = marks();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = k.api(&t.r, ns).get("z1").await.unwrap();
    assert_eq!(*status(&r), Value::Null, "a status was sent up");
    let idle = writes_on_both_since(&since, &t.name);
    assert!(
        idle.is_empty(),
        "writes while idle:{}",
        describe(&idle.iter().collect::<Vec<_>>())
    );
    let _ = stop.send(());
    let result = tokio::time::timeout(WAIT, run)
        .await
        .expect("the reconciler did not stop");
    assert!(
        matches!(result, Ok(Ok(()))),
        "the reconciler failed: {result:?}"
    );
}

/// A kind whose CRD the readiness test installs on the local cluster only when it is ready to.
fn phantom() -> ApiResource {
    ApiResource {
        kind: "Phantom".into(),
        plural: "phantoms".into(),
        ..dynamic_kind::api_resource()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_managers_readiness_waits_for_every_kinds_cache() {
    let t = env("ready").await;
    // The fourth kind is served by the remote cluster only, so its local cache cannot fill.
    install_crd(&t.r, dynamic_kind::crd_of(&phantom()))
        .await
        .unwrap();
    let three = three_kinds(&t, &t.name);
    let base = t.name.clone();
    let mut m = start(&t.name, None, move |m, rbac| {
        three(m, rbac).add_dynamic(DynamicKind::new(phantom()), |k| {
            rbac.dynamic(
                &phantom(),
                fast(k.configure(|c| c.controller_name(format!("{base}-p")))),
            )
        })
    })
    .await;
    // Nothing is written before every kind's caches are filled: this Widget waits too.
    create_remote(&t, &Kind::widget(), &t.ns, "w1", json!({"size": 1})).await;
    let ready = tokio::time::timeout(Duration::from_secs(5), m.ready.wait_for(|r| *r))
        .await
        .is_ok();
    assert!(
        !ready,
        "ready while one kind's local cache could not be filled"
    );
    let w1 = Kind::widget().api(&t.r, &t.ns).get("w1").await.unwrap();
    let copy = Kind::widget().api(&t.l, &t.ns).get_opt("w1").await.unwrap();
    assert!(
        !claimed(&w1) && copy.is_none(),
        "written before every kind's caches were filled: {}",
        pair_of(&w1, copy.as_ref())
    );
    install_crd(&t.l, dynamic_kind::crd_of(&phantom()))
        .await
        .unwrap();
    m.wait_ready(WAIT).await;
    converged(&t, &Kind::widget(), &t.ns, "w1").await;
    let ready = m.ready.clone();
    m.stop().await;
    assert!(!*ready.borrow(), "still ready after the manager stopped");
}
