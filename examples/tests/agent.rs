//! The agent's flags and its HTTP endpoints, without a cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use sync_core::{Metrics, OnRemoteDelete, Syncable};
use sync_examples::database::Database;
use sync_examples::flags::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[test]
fn without_flags_the_agent_runs_with_the_derive_defaults() {
    let args = Args::try_parse_from(["agent"]).unwrap();
    assert_eq!(args.config(), Database::defaults());
    assert!(!args.leader.leader_election);
}

#[test]
fn flags_override_every_compile_time_default() {
    let args = Args::try_parse_from([
        "agent",
        "--remote-suffix",
        "-us",
        "--local-namespace-suffix",
        "-copy",
        "--namespace-prefix",
        "team-",
        "--secrets",
        "a,b",
        "--on-remote-delete",
        "orphan",
        "--concurrency",
        "3",
        "--controller-name",
        "db-us",
        "--leader-election",
    ])
    .unwrap();
    let c = args.config();
    assert_eq!(c.remote_suffix, "-us");
    assert_eq!(c.local_namespace_suffix, "-copy");
    assert_eq!(c.namespace_prefix, "team-");
    assert_eq!(c.secrets, ["a", "b"]);
    assert_eq!(c.on_remote_delete, OnRemoteDelete::Orphan);
    assert_eq!(c.concurrency, 3);
    assert_eq!(c.controller_name, "db-us");
    assert_eq!(c.effective_controller_name(), "db-us");
    assert!(args.leader.leader_election);
    let none = Args::try_parse_from(["agent", "--secrets", ""]).unwrap();
    assert!(none.config().secrets.is_empty());
    // Without a name, the name is per region, and the former default is adopted.
    let region = Args::try_parse_from(["agent", "--remote-suffix", "-us"]).unwrap();
    let running = region.config().resolved();
    assert_eq!(running.controller_name, "database-sync-us");
    assert_eq!(running.predecessors, ["database-sync"]);
    let renamed = Args::try_parse_from(["agent", "--adopt-claims-from", "db-eu,db-old"]).unwrap();
    assert_eq!(renamed.config().predecessors, ["db-eu", "db-old"]);
}

#[test]
fn release_all_is_a_command_that_takes_the_sync_flags() {
    let args = Args::try_parse_from(["agent", "--release-all", "--remote-suffix", "-us"]).unwrap();
    assert!(args.running.release_all);
    assert_eq!(
        args.config().effective_controller_name(),
        "database-sync-us"
    );
    assert!(!Args::try_parse_from(["agent"]).unwrap().running.release_all);
    // One command at a time.
    assert!(Args::try_parse_from(["agent", "--release-all", "--print-rbac"]).is_err());
}

#[tokio::test]
async fn release_all_without_a_management_cluster_says_how_to_name_one() {
    let args = Args::try_parse_from(["agent", "--release-all"]).unwrap();
    let e = sync_examples::agent::release_all(&args).await.unwrap_err();
    assert!(e.to_string().contains("--remote-kubeconfig"), "{e}");
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn readyz_follows_the_readiness_and_metrics_are_served() {
    let mut registry = Registry::default();
    let _metrics = Metrics::new(&mut registry);
    // The sync families print nothing until a reconciler counts; a counter with a value shows
    // that the registry is what gets served.
    let served = Counter::<u64>::default();
    served.inc();
    registry.register("agent_test", "A counter of this test", served);
    let (ready, readiness) = tokio::sync::watch::channel(false);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(sync_examples::serve::serve(
        listener,
        Arc::new(registry),
        readiness,
        stop.clone().cancelled_owned(),
    ));

    let not_ready = get(addr, "/readyz").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    ready.send_replace(true);
    let ready_now = get(addr, "/readyz").await;
    assert!(ready_now.starts_with("HTTP/1.1 200"), "{ready_now}");
    // A watch failing past the threshold turns the value false again.
    ready.send_replace(false);
    let unready = get(addr, "/readyz").await;
    assert!(unready.starts_with("HTTP/1.1 503"), "{unready}");
    ready.send_replace(true);
    let health = get(addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = get(addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("application/openmetrics-text"),
        "{metrics}"
    );
    assert!(metrics.contains("agent_test_total 1"), "{metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    let missing = get(addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
    stopped
        .expect("the server stops on shutdown")
        .unwrap()
        .unwrap();
}
