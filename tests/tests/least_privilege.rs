//! Least privilege (SPEC §6): the rules `sync_core::rbac` emits are exactly the short list the
//! controller needs, and the API servers enforce them. Every behaviour test already runs the
//! controller as a user bound only to these rules; this binary shows what they forbid.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::ObjectMeta;
use sync_core::{SyncConfig, Syncable};
use sync_tests::unique_name;

/// The rules as `group/resource → verbs`, for comparing with the list the design allows.
fn by_resource(rules: &[PolicyRule]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rules {
        assert!(r.non_resource_urls.is_none(), "unexpected rule {r:?}");
        // A rule scoped to names reads `group/resource[name,...]`.
        let names = r
            .resource_names
            .as_ref()
            .map(|n| format!("[{}]", n.join(",")))
            .unwrap_or_default();
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                out.entry(format!("{g}/{res}{names}"))
                    .or_default()
                    .extend(r.verbs.iter().cloned());
            }
        }
    }
    out
}

fn set(verbs: &[&str]) -> BTreeSet<String> {
    verbs.iter().map(|v| (*v).to_owned()).collect()
}

#[test]
fn the_emitted_rules_are_exactly_the_minimal_lists() {
    let with_secrets = Database::defaults().secrets(["creds"]);
    let remote = by_resource(&sync_core::rbac::remote_rules::<Database>(&with_secrets));
    let expected_remote: BTreeMap<String, BTreeSet<String>> = [
        (
            "acme.test/databases".to_owned(),
            set(&["get", "list", "watch", "patch"]),
        ),
        ("acme.test/databases/status".to_owned(), set(&["patch"])),
        // Update only: never create, never read (get, list, watch) a remote secret.
        ("/secrets".to_owned(), set(&["update"])),
        // Warning events on the remote objects, the management plane's view of failures.
        ("events.k8s.io/events".to_owned(), set(&["create", "patch"])),
    ]
    .into();
    assert_eq!(remote, expected_remote);

    let local = by_resource(&sync_core::rbac::local_rules::<Database>(
        &with_secrets,
        false,
    ));
    let expected_local: BTreeMap<String, BTreeSet<String>> = [
        (
            "acme.test/databases".to_owned(),
            set(&["get", "list", "watch", "create", "update", "delete"]),
        ),
        // `patch` only adds or removes this controller's `needed-by` mark on a namespace
        // another controller created.
        (
            "/namespaces".to_owned(),
            set(&["list", "watch", "create", "patch", "delete"]),
        ),
        // The local secrets it sends up are read from a watch, by name; never written.
        ("/secrets[creds]".to_owned(), set(&["list", "watch"])),
    ]
    .into();
    assert_eq!(local, expected_local);

    // Without secrets to send, no rule on secrets at all; leases only with leader election.
    let plain = SyncConfig::new("x");
    assert!(
        !by_resource(&sync_core::rbac::remote_rules::<Database>(&plain)).contains_key("/secrets")
    );
    let local = by_resource(&sync_core::rbac::local_rules::<Database>(&plain, true));
    assert!(!local.contains_key("/secrets"));
    assert_eq!(
        local["coordination.k8s.io/leases"],
        set(&["get", "create", "update"])
    );
    for rules in [
        sync_core::rbac::remote_rules::<Database>(&with_secrets),
        sync_core::rbac::local_rules::<Database>(&with_secrets, true),
    ] {
        for r in &rules {
            assert!(
                !r.verbs.iter().any(|v| v == "*")
                    && !r.resources.iter().flatten().any(|v| v == "*")
                    && !r.api_groups.iter().flatten().any(|v| v == "*"),
                "wildcard in {r:?}"
            );
        }
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("not an API answer: {e}"),
    }
}

/// The local identity reads only the secrets it sends up, by name: a list or watch of those
/// with a `metadata.name` field selector is allowed, and any other read of secrets is refused.
/// (`sync.rs` `secrets_go_up_only_when_listed_and_controlled_and_a_missing_remote_secret_is_reported`
/// shows the controller sending them up under these rules.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_identity_can_read_only_the_secrets_it_sends_up() {
    let pair = setup().await;
    let user = unique_name("lps");
    let config = Database::defaults()
        .controller_name(&user)
        .secrets(["creds"]);
    grant(
        &admin(&pair.local).await,
        &user,
        sync_core::rbac::local_rules::<Database>(&config, false),
    )
    .await;
    let me = pair.local.client_as(&user, &[]).await.unwrap();
    let all: Api<Secret> = Api::all(me.clone());
    let named = |name: &str| ListParams::default().fields(&format!("metadata.name={name}"));
    let watch_named = |name: &str| WatchParams::default().fields(&format!("metadata.name={name}"));
    eventually("the granted list to work", WAIT, || async {
        match code(all.list(&named("creds")).await) {
            200 => Ok(()),
            c => Err(format!("list answered {c}")),
        }
    })
    .await;
    assert_eq!(
        code(all.watch(&watch_named("creds"), "0").await.map(|_| ())),
        200
    );

    let denied = [
        (
            "list every secret",
            code(all.list(&ListParams::default()).await),
        ),
        ("list another name", code(all.list(&named("other")).await)),
        (
            "watch every secret",
            code(all.watch(&WatchParams::default(), "0").await.map(|_| ())),
        ),
        (
            "watch another name",
            code(all.watch(&watch_named("other"), "0").await.map(|_| ())),
        ),
        (
            "get",
            code(
                Api::<Secret>::namespaced(me.clone(), "default")
                    .get("creds")
                    .await,
            ),
        ),
    ];
    for (what, c) in denied {
        assert_eq!(c, 403, "{what} answered {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_identity_can_neither_read_nor_create_remote_secrets_but_can_update_them() {
    let pair = setup().await;
    let user = unique_name("lp");
    let ns = format!("{user}-a");
    let admin_r = admin(&pair.remote).await;
    create_namespace(&admin_r, &ns).await;
    let existing = Secret {
        metadata: ObjectMeta {
            name: Some("creds-eu".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("password".to_string(), "old".to_string())].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(admin_r.clone(), &ns)
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();
    let config = Database::defaults()
        .controller_name(&user)
        .remote_suffix("-eu")
        .secrets(["creds"]);
    grant(
        &admin_r,
        &user,
        sync_core::rbac::remote_rules::<Database>(&config),
    )
    .await;
    let me = pair.remote.client_as(&user, &[]).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(me.clone(), &ns);

    // RBAC takes a moment to reach the authorizer's cache: wait until what is granted works.
    let mut update = existing.clone();
    update.string_data = Some([("password".to_string(), "new".to_string())].into());
    eventually("the granted update to work", WAIT, || async {
        match code(
            secrets
                .replace("creds-eu", &PostParams::default(), &update)
                .await,
        ) {
            200 => Ok(()),
            c => Err(format!("update answered {c}")),
        }
    })
    .await;

    let denied = [
        ("get", code(secrets.get("creds-eu").await)),
        ("list", code(secrets.list(&ListParams::default()).await)),
        (
            "list in every namespace",
            code(
                Api::<Secret>::all(me.clone())
                    .list(&ListParams::default())
                    .await,
            ),
        ),
        (
            "watch",
            code(
                secrets
                    .watch(&WatchParams::default(), "0")
                    .await
                    .map(|_| ()),
            ),
        ),
        (
            "create",
            code(
                secrets
                    .create(
                        &PostParams::default(),
                        &Secret {
                            metadata: ObjectMeta {
                                name: Some("new-eu".into()),
                                ..ObjectMeta::default()
                            },
                            ..Secret::default()
                        },
                    )
                    .await,
            ),
        ),
        (
            "patch",
            code(
                secrets
                    .patch(
                        "creds-eu",
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"a": "b"}}})),
                    )
                    .await,
            ),
        ),
        (
            "delete",
            code(secrets.delete("creds-eu", &DeleteParams::default()).await),
        ),
    ];
    let allowed: Vec<_> = denied.iter().filter(|(_, c)| *c != 403).collect();
    assert!(
        allowed.is_empty(),
        "the controller's remote identity is not refused: {allowed:?}"
    );

    // On the synced kind too, it can only read and patch: no create, update or delete.
    let dbs: Api<Database> = Api::namespaced(me, &ns);
    let admin_dbs: Api<Database> = Api::namespaced(admin_r, &ns);
    admin_dbs
        .create(&PostParams::default(), &db("orders-eu", "small"))
        .await
        .unwrap();
    let current = dbs.get("orders-eu").await.unwrap();
    let kind = [
        (
            "create",
            code(
                dbs.create(&PostParams::default(), &db("other-eu", "small"))
                    .await,
            ),
        ),
        (
            "update",
            code(
                dbs.replace("orders-eu", &PostParams::default(), &current)
                    .await,
            ),
        ),
        (
            "delete",
            code(dbs.delete("orders-eu", &DeleteParams::default()).await),
        ),
    ];
    let allowed: Vec<_> = kind.iter().filter(|(_, c)| *c != 403).collect();
    assert!(allowed.is_empty(), "allowed on the kind: {allowed:?}");
    let patch = serde_json::json!({"metadata": {"annotations": {"checked": "yes"}}});
    assert_eq!(
        code(
            dbs.patch("orders-eu", &PatchParams::default(), &Patch::Merge(patch))
                .await
        ),
        200
    );
}
