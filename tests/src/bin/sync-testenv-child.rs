//! Starts one control plane, prints `PLANE <folder> <pids...>`, and waits to be killed: the
//! smoke test `a_killed_test_process_leaves_no_plane_process_or_folder_behind` kills it with
//! SIGKILL and checks that the plane's watchdog leaves nothing behind.

use std::time::Duration;

use sync_tests::ControlPlane;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let plane = ControlPlane::start("killed").await.expect("start a plane");
    let pids: Vec<String> = plane
        .pids()
        .expect("pids")
        .into_iter()
        .map(|(_, p)| p.to_string())
        .collect();
    println!(
        "PLANE {} {}",
        plane.dir().expect("a managed plane").display(),
        pids.join(" ")
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
}
