//! The queue's tests, on tokio's paused clock.

use super::*;
use std::sync::{Arc, Mutex};

#[test]
fn backoff_grows_and_is_capped() {
    let b = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };
    assert!(b.delay(1) <= Duration::from_millis(100));
    assert!(b.delay(1) >= Duration::from_millis(50));
    assert!(b.delay(4) >= Duration::from_millis(400));
    assert!(b.delay(40) <= Duration::from_secs(2));
    assert!(b.delay(40) >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_key_is_never_reconciled_twice_at_once_and_reruns_when_dirty() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let active = Arc::new(Mutex::new(HashSet::new()));
    let runs = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (a, r) = (active.clone(), runs.clone());
    let handle = tokio::spawn(async move {
        run(
            &mut rx,
            [],
            QueueConfig {
                concurrency: 4,
                backoff: Backoff::default(),
                deadline: Duration::from_secs(1),
            },
            &Notify::new(),
            move |key: u32| {
                let (a, r) = (a.clone(), r.clone());
                async move {
                    assert!(a.lock().unwrap().insert(key), "key {key} ran twice at once");
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    a.lock().unwrap().remove(&key);
                    r.lock().unwrap().push(key);
                    Outcome::Done
                }
            },
            |_| {},
            async {
                stop_rx.await.ok();
            },
        )
        .await
    });
    for _ in 0..5 {
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(()).unwrap();
    handle.await.unwrap();
    let runs = runs.lock().unwrap();
    let ones = runs.iter().filter(|k| **k == 1).count();
    // Five triggers within one run coalesce: the first run, then one rerun for the rest.
    assert!((2..=3).contains(&ones), "key 1 ran {ones} times: {runs:?}");
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_with_backoff() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        run(
            &mut rx,
            [],
            QueueConfig {
                concurrency: 1,
                backoff: Backoff {
                    initial: Duration::from_millis(20),
                    max: Duration::from_millis(80),
                },
                deadline: Duration::from_secs(1),
            },
            &Notify::new(),
            move |_: u32| {
                let r = r.clone();
                async move {
                    r.lock().unwrap().push(tokio::time::Instant::now());
                    Outcome::Failed
                }
            },
            |_| {},
            async {
                stop_rx.await.ok();
            },
        )
        .await
    });
    tx.send(7).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop_tx.send(()).unwrap();
    handle.await.unwrap();
    let runs = runs.lock().unwrap();
    assert!(runs.len() >= 4, "only {} retries", runs.len());
    // Exact on the paused clock: each gap is a jittered backoff, capped at 80 ms.
    for w in runs.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= Duration::from_millis(10), "retried after {gap:?}");
        assert!(gap <= Duration::from_millis(80), "retried after {gap:?}");
    }
    assert!(
        runs.len() < 40,
        "{} retries in 600 ms is a hot loop",
        runs.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_notification_runs_every_failed_key_at_once_despite_its_backoff() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let retry = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let notify = retry.clone();
    let handle = tokio::spawn(async move {
        run(
            &mut rx,
            [],
            QueueConfig {
                concurrency: 4,
                // Far longer than the test: only the notification can rerun a key.
                backoff: Backoff {
                    initial: Duration::from_secs(600),
                    max: Duration::from_secs(600),
                },
                deadline: Duration::from_secs(1),
            },
            &notify,
            move |key: u32| {
                let r = r.clone();
                async move {
                    r.lock().unwrap().push(key);
                    if key == 0 {
                        Outcome::Done
                    } else {
                        Outcome::Failed
                    }
                }
            },
            |_| {},
            async {
                stop_rx.await.ok();
            },
        )
        .await
    });
    for key in 0..3 {
        tx.send(key).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runs.lock().unwrap().len(), 3);
    retry.notify_one();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).unwrap();
    handle.await.unwrap();
    let mut runs = runs.lock().unwrap().clone();
    runs.sort_unstable();
    // The failed keys ran again; the one that succeeded did not.
    assert_eq!(runs, vec![0, 1, 1, 2, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_conflict_that_repeats_is_retried_less_and_less_often() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runs = Arc::new(Mutex::new(0u32));
    let r = runs.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        run(
            &mut rx,
            [],
            QueueConfig {
                concurrency: 1,
                backoff: Backoff::default(),
                deadline: Duration::from_secs(1),
            },
            &Notify::new(),
            move |_: u32| {
                let r = r.clone();
                async move {
                    *r.lock().unwrap() += 1;
                    Outcome::Conflict
                }
            },
            |_| {},
            async {
                stop_rx.await.ok();
            },
        )
        .await
    });
    tx.send(1).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop_tx.send(()).unwrap();
    handle.await.unwrap();
    // Runs at 0, 50, 150, 350 and 750 ms: five in 1 s, where a fixed 50 ms made 20.
    let runs = *runs.lock().unwrap();
    assert_eq!(runs, 5, "{runs} runs in 1 s");
}

#[tokio::test(start_paused = true)]
async fn a_change_to_a_synced_object_overtakes_a_backlog_of_new_ones() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Keys below 1000 are new objects; 1000 and above are changes to synced ones.
    let lane = |k: &u32| {
        if *k >= 1000 {
            Lane::Changes
        } else {
            Lane::Rest
        }
    };
    let handle = tokio::spawn(async move {
        run_lanes(
            &mut rx,
            0..200u32,
            QueueConfig {
                concurrency: 2,
                backoff: Backoff::default(),
                deadline: Duration::from_secs(1),
            },
            &Notify::new(),
            lane,
            move |key: u32| {
                let r = r.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    r.lock().unwrap().push(key);
                    Outcome::Done
                }
            },
            |_| {},
            async {
                stop_rx.await.ok();
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(55)).await;
    for k in 1000..1010u32 {
        tx.send(k).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(()).unwrap();
    handle.await.unwrap();
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 210, "every key ran once: {runs:?}");
    let last_change = runs.iter().rposition(|k| *k >= 1000).unwrap();
    // Ten changes, at most four in a row before one new key: done within about 13 runs
    // of their arrival (after about 10 of the 200 new keys had run), not after all 200.
    assert!(
        last_change < 30,
        "the last change ran as run {last_change} of 210: {runs:?}"
    );
    // The new keys were not starved: some ran between the changes.
    let first_change = runs.iter().position(|k| *k >= 1000).unwrap();
    let new_between = runs[first_change..last_change]
        .iter()
        .filter(|k| **k < 1000)
        .count();
    assert!(
        new_between >= 2,
        "no new key ran among the changes: {runs:?}"
    );
}
