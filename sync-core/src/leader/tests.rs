//! The elector's decisions and the fence, on tokio's paused clock.

use super::*;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::core::ObjectMeta;

const SECOND: Duration = Duration::from_secs(1);

fn timings() -> Timings {
    LeaderElection::new("l", "ns", "me").timings()
}

/// A Lease held by `holder` at `version`, renewed (by the holder's wall clock) at `renewed`.
fn lease(holder: Option<&str>, version: &str, renewed: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("l".into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }),
    }
}

fn long_ago() -> Timestamp {
    "2000-01-01T00:00:00Z".parse().unwrap()
}

fn far_ahead() -> Timestamp {
    "2100-01-01T00:00:00Z".parse().unwrap()
}

#[test]
fn the_default_timings_are_client_gos() {
    let t = timings();
    assert_eq!(t.duration, 15 * SECOND);
    assert_eq!(t.renew_deadline, 10 * SECOND);
    assert_eq!(t.retry_period, 2 * SECOND);
}

#[test]
#[allow(deprecated)]
fn renew_grace_sets_the_renew_deadline_and_timings_stay_consistent() {
    let e = LeaderElection::new("l", "ns", "me").lease_duration(6 * SECOND);
    let t = e.clone().renew_grace(2 * SECOND).timings();
    assert_eq!((t.renew_deadline, t.retry_period), (4 * SECOND, SECOND));
    // An explicit renew deadline wins over the grace.
    let t = e
        .clone()
        .renew_grace(2 * SECOND)
        .renew_deadline(3 * SECOND)
        .timings();
    assert_eq!(t.renew_deadline, 3 * SECOND);
    // A renew deadline as long as the Lease would leave no margin; a retry period as long as
    // the deadline would lose the Lease on one failed renewal.
    let t = e
        .renew_deadline(6 * SECOND)
        .retry_period(6 * SECOND)
        .timings();
    assert!(t.renew_deadline < t.duration.mul_f64(0.95));
    assert!(t.retry_period * 2 <= t.renew_deadline);
    assert_eq!(
        LeaderElection::new("l", "ns", "me")
            .lease_duration(Duration::from_millis(1500))
            .timings()
            .duration,
        2 * SECOND
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_lease_is_created_and_a_free_or_own_one_is_taken_at_once() {
    let mut e = Elector::new("me", timings());
    let now = Instant::now();
    assert_eq!(e.decide(None, now), Decision::Create);
    assert_eq!(
        e.decide(Some(&lease(None, "1", long_ago())), now),
        Decision::Take
    );
    let empty = lease(Some(""), "2", long_ago());
    assert_eq!(e.decide(Some(&empty), now), Decision::Take);
    let mine = lease(Some("me"), "3", far_ahead());
    assert_eq!(e.decide(Some(&mine), now), Decision::Take);
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_only_after_the_lease_went_unrenewed_for_its_duration_on_its_own_clock()
 {
    let mut e = Elector::new("me", timings());
    // The holder's renewTime says the Lease expired decades ago: that is the holder's wall
    // clock, and it is never compared with this replica's.
    let held = lease(Some("other"), "7", long_ago());
    assert_eq!(e.decide(Some(&held), Instant::now()), Decision::Wait);
    tokio::time::advance(14 * SECOND).await;
    assert_eq!(e.decide(Some(&held), Instant::now()), Decision::Wait);
    tokio::time::advance(SECOND).await;
    assert_eq!(e.decide(Some(&held), Instant::now()), Decision::Take);
}

#[tokio::test(start_paused = true)]
async fn a_renewal_seen_by_the_standby_starts_its_count_again() {
    let mut e = Elector::new("me", timings());
    // A renewTime far in the future (a holder whose clock runs fast) holds nothing up either.
    assert_eq!(
        e.decide(
            Some(&lease(Some("other"), "1", far_ahead())),
            Instant::now()
        ),
        Decision::Wait
    );
    tokio::time::advance(10 * SECOND).await;
    let renewed = lease(Some("other"), "2", far_ahead());
    assert_eq!(e.decide(Some(&renewed), Instant::now()), Decision::Wait);
    tokio::time::advance(14 * SECOND).await;
    assert_eq!(e.decide(Some(&renewed), Instant::now()), Decision::Wait);
    tokio::time::advance(SECOND).await;
    assert_eq!(e.decide(Some(&renewed), Instant::now()), Decision::Take);
}

#[tokio::test(start_paused = true)]
async fn the_holder_may_write_until_the_renew_deadline_after_its_last_renewal_was_sent() {
    let mut e = Elector::new("me", timings());
    let fence = Fence::closed();
    assert!(fence.check().is_err());
    let sent = Instant::now();
    // The answer comes 3 s later: the hold counts from the sending, not the answer.
    tokio::time::advance(3 * SECOND).await;
    e.took(sent, &lease(Some("me"), "5", long_ago()), Instant::now());
    assert_eq!(e.leading_until(), Some(sent + 10 * SECOND));
    fence.hold_until(e.leading_until());
    assert!(fence.check().is_ok());
    tokio::time::advance(Duration::from_millis(6_999)).await;
    assert!(fence.check().is_ok());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        fence.check().is_err(),
        "the fence is still open at the deadline"
    );
    // Its own Lease, unchanged, is still its to renew: nobody else can have taken it.
    assert_eq!(
        e.decide(Some(&lease(Some("me"), "5", long_ago())), Instant::now()),
        Decision::Take
    );
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_finds_another_holder_named_stops_at_once() {
    let mut e = Elector::new("me", timings());
    e.took(
        Instant::now(),
        &lease(Some("me"), "5", long_ago()),
        Instant::now(),
    );
    assert!(e.leading_until().is_some());
    let taken = lease(Some("other"), "6", far_ahead());
    assert_eq!(e.decide(Some(&taken), Instant::now()), Decision::Wait);
    assert_eq!(e.leading_until(), None);
}

#[tokio::test(start_paused = true)]
async fn a_standby_never_takes_over_before_the_frozen_holder_stopped_writing() {
    // The holder renews every retry period until it freezes; the standby looks every retry
    // period from some phase, and each renewal reaches the server some latency after it was
    // sent. Whatever the phase and latency, the standby takes over only after the holder's
    // fence closed, with at least `duration - renew_deadline` to spare.
    let t = timings();
    for phase_ms in [0u64, 1, 700, 1_999] {
        for latency_ms in [0u64, 5, 900, 1_900] {
            let start = Instant::now();
            let mut holder = Elector::new("holder", t);
            let mut standby = Elector::new("me", t);
            let mut version = 0u32;
            let mut accepted: Vec<(Instant, u32)> = Vec::new();
            let mut next_renew = start;
            let mut next_look = start + Duration::from_millis(phase_ms);
            let frozen_at = start + 7 * t.retry_period + Duration::from_millis(300);
            let taken_at = loop {
                let now = next_renew.min(next_look);
                tokio::time::advance(now.saturating_duration_since(Instant::now())).await;
                if now == next_renew && now < frozen_at {
                    version += 1;
                    let l = lease(Some("holder"), &version.to_string(), long_ago());
                    holder.took(now, &l, now + Duration::from_millis(latency_ms));
                    accepted.push((now + Duration::from_millis(latency_ms), version));
                    next_renew += t.retry_period;
                }
                if now == next_look {
                    let seen = accepted.iter().rev().find(|(at, _)| *at <= now);
                    let v = seen.map_or(0, |(_, v)| *v);
                    let l = lease(Some("holder"), &v.to_string(), long_ago());
                    if standby.decide(Some(&l), now) == Decision::Take {
                        break now;
                    }
                    next_look += t.retry_period;
                }
                if now >= frozen_at {
                    next_renew = next_look + t.duration * 10;
                }
            };
            let fenced_at = holder.leading_until().unwrap();
            assert!(
                taken_at >= fenced_at + (t.duration - t.renew_deadline),
                "phase {phase_ms} ms, latency {latency_ms} ms: taken over {:?} after the fence closed",
                taken_at.saturating_duration_since(fenced_at)
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn taking_counts_a_transition_and_renewing_keeps_the_acquire_time() {
    let e = Elector::new("me", timings());
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let taken = e.claim(Some(&lease(Some("other"), "4", long_ago())), "l", now);
    let spec = taken.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    assert_eq!(spec.lease_transitions, Some(4));
    assert_eq!(spec.acquire_time, Some(MicroTime(now)));
    assert_eq!(taken.metadata.resource_version.as_deref(), Some("4"));
    let later: Timestamp = "2026-01-01T00:00:02Z".parse().unwrap();
    let renewed = e.claim(Some(&taken), "l", later).spec.unwrap();
    assert_eq!(renewed.lease_transitions, Some(4));
    assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
    assert_eq!(renewed.renew_time, Some(MicroTime(later)));
    let created = e.claim(None, "l", now);
    assert_eq!(created.metadata.name.as_deref(), Some("l"));
    assert_eq!(created.spec.unwrap().lease_transitions, Some(0));
}

#[test]
fn only_the_holder_releases_and_a_release_leaves_no_holder() {
    let e = Elector::new("me", timings());
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    assert!(e.released(&lease(Some("other"), "1", now), now).is_none());
    let released = e.released(&lease(Some("me"), "1", now), now).unwrap();
    let spec = released.spec.unwrap();
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(released.metadata.resource_version.as_deref(), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn the_fence_lapses_at_its_deadline_unless_renewed_and_opens_when_held() {
    let fence = Fence::closed();
    let opened = tokio::spawn({
        let f = fence.clone();
        async move { f.opened().await }
    });
    tokio::task::yield_now().await;
    assert!(!opened.is_finished());
    fence.hold_until(Some(Instant::now() + 4 * SECOND));
    opened.await.unwrap();

    let start = Instant::now();
    let lapsed = tokio::spawn({
        let f = fence.clone();
        async move {
            f.lapsed().await;
            Instant::now()
        }
    });
    // A renewal after 3 s holds it open until 3 + 4 s.
    tokio::time::advance(3 * SECOND).await;
    fence.hold_until(Some(Instant::now() + 4 * SECOND));
    assert_eq!(lapsed.await.unwrap() - start, 7 * SECOND);
    assert!(fence.check().is_err());

    // Closing it ends the hold at once.
    fence.hold_until(Some(Instant::now() + 4 * SECOND));
    let lapsed = tokio::spawn({
        let f = fence.clone();
        async move { f.lapsed().await }
    });
    tokio::task::yield_now().await;
    fence.close();
    lapsed.await.unwrap();
    // Without leader election it never lapses.
    let open = Fence::open();
    assert!(open.check().is_ok());
    assert!(
        tokio::time::timeout(Duration::from_secs(3600), open.lapsed())
            .await
            .is_err()
    );
}
