//! The deletion phase (`--delete-all`): the management plane deletes every remote object of
//! the run at once, and the bench times how the controller cleans the region up within its
//! deletion budget (SPEC §5), and counts what that costs: CPU, writes, and the Warning events
//! the budget makes it send.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sync_core::DeletionBudget;
use tokio::time::Instant;

use crate::layout::Layout;
use crate::observer::{DeletionStages, Observer, key};
use crate::writes::Writes;
use crate::{ceiling, log, quantile};

/// The reason of the Warning event a held deletion sends (sync-core's `delete_within_budget`).
pub const BUDGET_REASON: &str = "DeletionBudgetExceeded";

/// Parses a deletion budget written `MAX/WINDOW_SECONDS`, e.g. `1000/20`.
///
/// # Errors
///
/// A message for clap when the text is not of that form, or the window is not positive.
pub fn parse_budget(s: &str) -> Result<DeletionBudget, String> {
    let bad = || format!("{s:?} is not MAX/WINDOW_SECONDS, e.g. 1000/20");
    let (max, window) = s.split_once('/').ok_or_else(bad)?;
    let max_deletions = max.trim().parse::<u32>().map_err(|_| bad())?;
    let seconds = window.trim().parse::<f64>().map_err(|_| bad())?;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(bad());
    }
    Ok(DeletionBudget {
        max_deletions,
        window: Duration::from_secs_f64(seconds),
    })
}

/// A budget as [`parse_budget`] reads it.
pub fn budget_arg(b: &DeletionBudget) -> String {
    format!("{}/{}", b.max_deletions, b.window.as_secs_f64())
}

/// What the phase saw, before the audit logs and the controller's metrics are read.
pub struct Phase {
    /// From the first remote delete until every remote delete was acknowledged.
    pub requests_seconds: f64,
    /// From the first remote delete until every remote object and every local copy was gone.
    pub objects_gone_seconds: f64,
    /// From the first remote delete until, moreover, every namespace of the run was gone from
    /// the local cluster.
    pub seconds: f64,
    /// Local namespaces of the run still there when the last object was gone.
    pub namespaces_left_at_objects_gone: usize,
    /// Per-object durations.
    pub stages: DeletionStages,
}

/// The namespaces of the run present on the local cluster.
async fn run_namespaces(local: &Client, layout: &Layout) -> Result<usize> {
    let names: HashSet<String> = (0..layout.namespaces)
        .map(|i| layout.namespace(i))
        .collect();
    let list = Api::<Namespace>::all(local.clone())
        .list_metadata(&ListParams::default())
        .await
        .context("list the local namespaces")?;
    Ok(list
        .items
        .iter()
        .filter(|n| n.metadata.name.as_ref().is_some_and(|n| names.contains(n)))
        .count())
}

/// Deletes the N remote objects of the run as the management plane (`concurrency` deletes in
/// flight, round-robin over the namespaces, in the order they were created), and waits until
/// every remote object and local copy is gone, and then every local namespace of the run.
///
/// # Errors
///
/// A delete fails, or the clean-up is not done within `timeout`.
pub async fn run(
    remote: &Client,
    local: &Client,
    layout: &Layout,
    observer: &Observer,
    concurrency: usize,
    timeout: Duration,
) -> Result<Phase> {
    let keys: Vec<String> = (0..layout.objects)
        .map(|j| key(&layout.namespace_of(j), &layout.name(j)))
        .collect();
    observer.track_deletion(keys);
    let all_gone = observer.when_all_gone();
    let t0 = Instant::now();
    ceiling::for_each(layout.objects, concurrency, |j| {
        let api = Api::<sync_tests::harness::Database>::namespaced(
            remote.clone(),
            &layout.namespace_of(j),
        );
        let name = layout.remote_name(j);
        let k = key(&layout.namespace_of(j), &layout.name(j));
        async move {
            api.delete(&name, &DeleteParams::default())
                .await
                .with_context(|| format!("delete the remote object of {k}"))?;
            observer.delete_requested(k, Instant::now());
            Ok(())
        }
    })
    .await?;
    let requests_seconds = t0.elapsed().as_secs_f64();
    log(format!(
        "remote deletes acknowledged in {requests_seconds:.1}s; waiting for the clean-up"
    ));
    let deadline = t0 + timeout;
    let gone_at = match tokio::time::timeout_at(deadline, all_gone).await {
        Ok(Ok(at)) => at,
        _ => {
            let left = observer.not_gone().await;
            bail!(
                "not cleaned up within {timeout:?}: {} of {} objects still present on a cluster, e.g. {:?}",
                left.len(),
                layout.objects,
                &left[..left.len().min(10)]
            );
        }
    };
    let objects_gone_seconds = gone_at.saturating_duration_since(t0).as_secs_f64();
    log(format!(
        "every remote object and local copy gone after {objects_gone_seconds:.1}s"
    ));
    let namespaces_left_at_objects_gone = run_namespaces(local, layout).await?;
    let mut left = namespaces_left_at_objects_gone;
    while left > 0 {
        if Instant::now() >= deadline {
            bail!("{left} local namespaces of the run still there after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        left = run_namespaces(local, layout).await?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(Phase {
        requests_seconds,
        objects_gone_seconds,
        seconds,
        namespaces_left_at_objects_gone,
        stages: observer.deletion_stages().await,
    })
}

/// The Events on the remote cluster in the run's namespaces (where the controller reports on
/// remote objects), by reason, each counted with its repeats: an Event the recorder folded
/// repeats into counts `series.count` times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Occurrences by reason.
    pub by_reason: BTreeMap<String, u64>,
    /// Occurrences of [`BUDGET_REASON`] by object (`namespace/name`).
    pub budget_by_object: BTreeMap<String, u64>,
}

impl EventCounts {
    /// Lists them.
    ///
    /// # Errors
    ///
    /// The list fails.
    pub async fn list(remote: &Client, layout: &Layout) -> Result<EventCounts> {
        let names: HashSet<String> = (0..layout.namespaces)
            .map(|i| layout.namespace(i))
            .collect();
        let events = Api::<KubeEvent>::all(remote.clone())
            .list(&ListParams::default())
            .await
            .context("list the remote events")?;
        Ok(Self::of(events.items.iter().filter(|e| {
            e.metadata
                .namespace
                .as_ref()
                .is_some_and(|n| names.contains(n))
        })))
    }

    fn of<'a>(events: impl Iterator<Item = &'a KubeEvent>) -> EventCounts {
        let mut counts = EventCounts::default();
        for e in events {
            let n = e
                .series
                .as_ref()
                .map_or(1, |s| u64::try_from(s.count).unwrap_or(1).max(1));
            let reason = e.reason.clone().unwrap_or_default();
            if reason == BUDGET_REASON {
                let r = e.regarding.as_ref();
                let object = format!(
                    "{}/{}",
                    r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
                    r.and_then(|r| r.name.clone()).unwrap_or_default()
                );
                *counts.budget_by_object.entry(object).or_default() += n;
            }
            *counts.by_reason.entry(reason).or_default() += n;
        }
        counts
    }

    /// The occurrences in `self` that are not in `before`, by reason.
    fn since(&self, before: &EventCounts) -> BTreeMap<String, u64> {
        self.by_reason
            .iter()
            .map(|(r, n)| {
                let was = before.by_reason.get(r).copied().unwrap_or(0);
                (r.clone(), n.saturating_sub(was))
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Everything measured about the phase.
pub struct Figures<'a> {
    /// The run's layout.
    pub layout: &'a Layout,
    /// The controller's budget.
    pub budget: DeletionBudget,
    /// What the phase saw.
    pub phase: &'a Phase,
    /// The controller's writes during the phase, from the audit logs.
    pub writes: Option<&'a Writes>,
    /// The controller's CPU seconds during the phase.
    pub cpu_seconds: f64,
    /// The controller's peak RSS at the end of the phase (over its whole life).
    pub peak_rss_bytes: u64,
    /// The remote Events before and after the phase.
    pub events_before: &'a EventCounts,
    /// As above.
    pub events_after: &'a EventCounts,
    /// `sync_deletion_budget_trips_total` at the controller's stop: one per held object per
    /// trip (nothing is deleted before the phase).
    pub trips: u64,
}

impl Figures<'_> {
    /// The `delete_*` keys of the JSON report.
    pub fn to_json(&self) -> serde_json::Map<String, Value> {
        let n = self.layout.objects as f64;
        let count = |cluster: &str, verb: &str, resource: &str| {
            self.writes.map(|w| {
                w.0.iter()
                    .filter(|(k, _)| {
                        k.cluster == cluster && k.verb == verb && k.resource == resource
                    })
                    .map(|(_, c)| c.ok)
                    .sum::<u64>()
            })
        };
        let event_writes = self.writes.map(|w| {
            w.0.iter()
                .filter(|(k, _)| k.resource == "events")
                .map(|(_, c)| c.ok + c.failed)
                .sum::<u64>()
        });
        let local_copies = count("local", "delete", "databases");
        let local_namespaces = count("local", "delete", "namespaces");
        let deletions = local_copies.zip(local_namespaces).map(|(a, b)| a + b);
        let max = u64::from(self.budget.max_deletions.max(1));
        // The budget lets `max` deletions through per window: D deletions need at least
        // ceil(D / max) - 1 whole windows after the first.
        let floor = deletions
            .map(|d| d.div_ceil(max).saturating_sub(1) as f64 * self.budget.window.as_secs_f64());
        let budget_events: u64 = self.events_after.budget_by_object.values().sum();
        let held = self.events_after.budget_by_object.len();
        let most = self
            .events_after
            .budget_by_object
            .values()
            .copied()
            .max()
            .unwrap_or(0);
        let s = &self.phase.stages;
        let v = json!({
            "delete_all": true,
            "deletion_budget_max": self.budget.max_deletions,
            "deletion_budget_window_seconds": self.budget.window.as_secs_f64(),
            "delete_requests_seconds": self.phase.requests_seconds,
            "delete_objects_gone_seconds": self.phase.objects_gone_seconds,
            "delete_seconds": self.phase.seconds,
            "delete_namespaces_left_at_objects_gone": self.phase.namespaces_left_at_objects_gone,
            "delete_objects_per_second": n / self.phase.seconds,
            "delete_local_gone_p50_ms": quantile(&s.local_gone, 0.5),
            "delete_local_gone_p99_ms": quantile(&s.local_gone, 0.99),
            "delete_local_gone_max_ms": quantile(&s.local_gone, 1.0),
            "delete_remote_gone_p50_ms": quantile(&s.remote_gone, 0.5),
            "delete_remote_gone_p99_ms": quantile(&s.remote_gone, 0.99),
            "delete_remote_gone_max_ms": quantile(&s.remote_gone, 1.0),
            "delete_cpu_seconds": self.cpu_seconds,
            "delete_cpu_ms_per_object": self.cpu_seconds * 1000.0 / n,
            "delete_peak_rss_bytes": self.peak_rss_bytes,
            "delete_writes": self.writes.map(Writes::to_json),
            "delete_writes_total": self.writes.map(Writes::total),
            "delete_writes_failed": self.writes.map(Writes::failed),
            "delete_writes_per_object": self.writes.map(|w| w.total() as f64 / n),
            "delete_local_copy_deletions": local_copies,
            "delete_local_namespace_deletions": local_namespaces,
            "delete_budget_floor_seconds": floor,
            "delete_event_writes": event_writes,
            "delete_events_by_reason": self.events_after.since(self.events_before),
            "delete_budget_events": budget_events,
            "delete_held_objects": held,
            "delete_budget_events_max_per_object": most,
            "delete_budget_trips": self.trips,
            "delete_budget_events_per_held_object_trip": (self.trips > 0).then(|| budget_events as f64 / self.trips as f64),
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a json! object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_max_slash_seconds() {
        let b = parse_budget("1000/20").unwrap();
        assert_eq!((b.max_deletions, b.window), (1000, Duration::from_secs(20)));
        assert_eq!(budget_arg(&b), "1000/20");
        assert_eq!(parse_budget(&budget_arg(&b)), Ok(b));
        assert_eq!(
            parse_budget("5/0.5").unwrap().window,
            Duration::from_millis(500)
        );
        for bad in ["1000", "x/20", "10/0", "10/-1", "10/inf"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_count_their_repeats_and_budget_ones_by_object() {
        let event = |reason: &str, name: &str, count: Option<i32>| KubeEvent {
            reason: Some(reason.into()),
            regarding: Some(k8s_openapi::api::core::v1::ObjectReference {
                namespace: Some("n".into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            series: count.map(|count| {
                serde_json::from_value(json!({
                    "count": count,
                    "lastObservedTime": "2026-11-27T20:00:00.000000Z",
                }))
                .unwrap()
            }),
            ..Default::default()
        };
        let events = [
            event(BUDGET_REASON, "a", None),
            event(BUDGET_REASON, "b", Some(3)),
            event("RemoteWriteRejected", "a", None),
        ];
        let c = EventCounts::of(events.iter());
        assert_eq!(c.by_reason[BUDGET_REASON], 4);
        assert_eq!(c.budget_by_object["n/b"], 3);
        let before = EventCounts::of(events[2..].iter());
        assert_eq!(
            c.since(&before),
            BTreeMap::from([(BUDGET_REASON.to_owned(), 4)])
        );
    }
}
