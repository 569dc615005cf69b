//! Measures the figures in tests/README.md: the time to start a pair of planes and their
//! memory. Run with `cargo run -p sync-tests --bin sync-testenv-measure`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use sync_tests::{Component, ControlPlane, Pair, unique_name};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_memory(when: &str, plane: &ControlPlane) {
    let rss = plane.rss_bytes().unwrap();
    let of = |c: Component| rss.iter().find(|(k, _)| *k == c).map_or(0, |(_, b)| *b);
    let total: u64 = rss.iter().map(|(_, b)| b).sum();
    println!(
        "{when:<28} {:<7} etcd {:6.0} MiB  apiserver {:6.0} MiB  controller-manager {:6.0} MiB  total {:6.0} MiB",
        plane.name(),
        mib(of(Component::Etcd)),
        mib(of(Component::ApiServer)),
        mib(of(Component::ControllerManager)),
        mib(total),
    );
}

/// Seconds from deleting an empty namespace until it is gone: the controller manager at work.
async fn namespace_deletion_seconds(plane: &ControlPlane) -> f64 {
    let api: Api<Namespace> = Api::all(plane.client().await.unwrap());
    let name = unique_name("measure");
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    api.create(&PostParams::default(), &ns).await.unwrap();
    let started = Instant::now();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    while api.get_opt(&name).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "namespace {name} not deleted in 90s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed().as_secs_f64()
}

/// Run on an otherwise idle machine: the figures are only as quiet as the machine.
#[tokio::main]
async fn main() {
    // Built or found once, outside the timing.
    sync_tests::Binaries::locate().unwrap();
    for round in 1..=3 {
        let started = Instant::now();
        let pair = Pair::start().await.unwrap();
        let ready = started.elapsed().as_secs_f64();
        println!("round {round}: pair ready in {ready:.2}s");
        for plane in pair.both() {
            print_memory("right after start", plane);
        }
        for plane in pair.both() {
            let seconds = namespace_deletion_seconds(plane).await;
            println!(
                "round {round}: {} namespace deleted in {seconds:.2}s",
                plane.name()
            );
        }
        tokio::time::sleep(Duration::from_secs(20)).await;
        for plane in pair.both() {
            print_memory("after 20 s idle", plane);
        }
        let dropping = Instant::now();
        drop(pair);
        println!(
            "round {round}: pair dropped in {:.2}s",
            dropping.elapsed().as_secs_f64()
        );
    }
}
