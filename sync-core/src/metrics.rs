use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which cluster a write went to.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub(crate) enum Cluster {
    /// The management cluster.
    Remote,
    /// The regional cluster.
    Local,
}

/// Labels of the per-controller metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    controller: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    controller: String,
    cluster: Cluster,
    verb: &'static str,
    resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    controller: String,
    cluster: Cluster,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    controller: String,
    reason: &'static str,
}

fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The Prometheus metrics of every reconciler in a process.
///
/// Create it once with [`Metrics::new`] on the registry the binary serves, and hand clones to
/// each reconciler's builder. Every series carries a `controller` label.
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `sync_reconciles_total` | counter | `outcome`: `in_sync`, `wrote`, `paused`, `waiting`, `conflict`, `error`, `skipped` |
/// | `sync_writes_total` | counter | `cluster`, `verb`, `resource` |
/// | `sync_rejected_writes_total` | counter | `reason`: what the API server or the controller refused |
/// | `sync_queue_depth` | gauge | |
/// | `sync_spec_lag_seconds` | histogram | remote change seen → local object written |
/// | `sync_status_lag_seconds` | histogram | local status change seen → remote status written |
/// | `sync_paused_objects` | gauge | |
/// | `sync_deletion_budget_trips_total` | counter | objects held back by the deletion budget, once per object per trip |
/// | `sync_cluster_unreachable_total` | counter | `cluster`: times the cluster was found unreachable |
/// | `sync_cached_objects` | gauge | `cluster`: objects of the kind in the controller's cache of that cluster (its own shard only) |
///
/// # Example
///
/// ```
/// use prometheus_client::registry::Registry;
/// use sync_core::Metrics;
///
/// let mut registry = Registry::default();
/// let metrics = Metrics::new(&mut registry);
/// // Hand a clone to each reconciler: `Database::reconciler(Remote(r), Local(l)).metrics(metrics.clone())`.
/// # let _ = metrics;
///
/// // What a `/metrics` handler serves; each series appears once a reconciler counts into it.
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry)?;
/// assert!(text.ends_with("# EOF\n"));
/// # Ok::<(), std::fmt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Metrics {
    reconciles: Family<OutcomeLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    queue_depth: Family<ControllerLabels, Gauge>,
    spec_lag: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    status_lag: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    paused: Family<ControllerLabels, Gauge>,
    budget_trips: Family<ControllerLabels, Counter>,
    unreachable: Family<ClusterLabels, Counter>,
    cached: Family<ClusterLabels, Gauge>,
    uncached_reads: Family<ControllerLabels, Counter>,
}

impl Default for Metrics {
    /// Metrics that are counted but registered nowhere.
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            writes: Family::default(),
            rejected: Family::default(),
            queue_depth: Family::default(),
            spec_lag: Family::new_with_constructor(lag_histogram),
            status_lag: Family::new_with_constructor(lag_histogram),
            paused: Family::default(),
            budget_trips: Family::default(),
            unreachable: Family::default(),
            cached: Family::default(),
            uncached_reads: Family::default(),
        }
    }
}

impl Metrics {
    /// Metrics registered on `registry` under the `sync` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sync");
        r.register("reconciles", "Reconciles by outcome", m.reconciles.clone());
        r.register(
            "writes",
            "Writes by cluster, verb and resource",
            m.writes.clone(),
        );
        r.register(
            "rejected_writes",
            "Writes refused, by reason",
            m.rejected.clone(),
        );
        r.register(
            "queue_depth",
            "Keys waiting to be reconciled",
            m.queue_depth.clone(),
        );
        r.register(
            "spec_lag_seconds",
            "Remote change seen to local object written",
            m.spec_lag.clone(),
        );
        r.register(
            "status_lag_seconds",
            "Local status change seen to remote status written",
            m.status_lag.clone(),
        );
        r.register(
            "paused_objects",
            "Objects paused on either side",
            m.paused.clone(),
        );
        r.register(
            "deletion_budget_trips",
            "Objects held back by the deletion budget, once per object per trip",
            m.budget_trips.clone(),
        );
        r.register(
            "cluster_unreachable",
            "Times a cluster was found unreachable (no answer from its API server)",
            m.unreachable.clone(),
        );
        r.register(
            "cached_objects",
            "Objects of the kind in the controller's cache of each cluster (its own shard only)",
            m.cached.clone(),
        );
        r.register(
            "uncached_remote_reads",
            "Reads of the remote API server for an object the cache lacks, to prove it gone",
            m.uncached_reads.clone(),
        );
        m
    }

    pub(crate) fn scoped(&self, controller: &str) -> Arc<ControllerMetrics> {
        Arc::new(ControllerMetrics {
            m: self.clone(),
            name: controller.to_owned(),
            handles: Handles::default(),
        })
    }
}

/// The metrics of one controller.
#[derive(Debug)]
pub(crate) struct ControllerMetrics {
    m: Metrics,
    name: String,
    handles: Handles,
}

/// The series of one controller whose labels never change, looked up in their family the
/// first time each is touched and kept: the watches and the queue update them on every event,
/// and a look-up builds and hashes the label set (a copy of the controller's name) each time.
/// A series appears in the output when first touched, as with a look-up each time.
#[derive(Debug, Default)]
struct Handles {
    queue_depth: OnceLock<Gauge>,
    paused: OnceLock<Gauge>,
    spec_lag: OnceLock<Histogram>,
    status_lag: OnceLock<Histogram>,
    cached_remote: OnceLock<Gauge>,
    cached_local: OnceLock<Gauge>,
}

impl ControllerMetrics {
    fn labels(&self) -> ControllerLabels {
        ControllerLabels {
            controller: self.name.clone(),
        }
    }

    pub(crate) fn reconciled(&self, outcome: &'static str) {
        self.m
            .reconciles
            .get_or_create(&OutcomeLabels {
                controller: self.name.clone(),
                outcome,
            })
            .inc();
    }

    pub(crate) fn wrote(&self, cluster: Cluster, verb: &'static str, resource: &'static str) {
        let l = WriteLabels {
            controller: self.name.clone(),
            cluster,
            verb,
            resource,
        };
        self.m.writes.get_or_create(&l).inc();
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        self.m
            .rejected
            .get_or_create(&ReasonLabels {
                controller: self.name.clone(),
                reason,
            })
            .inc();
    }

    pub(crate) fn queue_depth(&self, depth: usize) {
        self.handles
            .queue_depth
            .get_or_init(|| self.m.queue_depth.get_or_create(&self.labels()).clone())
            .set(depth as i64);
    }

    pub(crate) fn spec_lag(&self, seconds: f64) {
        self.handles
            .spec_lag
            .get_or_init(|| self.m.spec_lag.get_or_create(&self.labels()).clone())
            .observe(seconds);
    }

    pub(crate) fn status_lag(&self, seconds: f64) {
        self.handles
            .status_lag
            .get_or_init(|| self.m.status_lag.get_or_create(&self.labels()).clone())
            .observe(seconds);
    }

    pub(crate) fn paused(&self, count: usize) {
        self.handles
            .paused
            .get_or_init(|| self.m.paused.get_or_create(&self.labels()).clone())
            .set(count as i64);
    }

    pub(crate) fn unreachable(&self, cluster: Cluster) {
        self.m
            .unreachable
            .get_or_create(&ClusterLabels {
                controller: self.name.clone(),
                cluster,
            })
            .inc();
    }

    pub(crate) fn cached(&self, cluster: Cluster, count: usize) {
        let handle = match cluster {
            Cluster::Remote => &self.handles.cached_remote,
            Cluster::Local => &self.handles.cached_local,
        };
        handle
            .get_or_init(|| {
                let labels = ClusterLabels {
                    controller: self.name.clone(),
                    cluster,
                };
                self.m.cached.get_or_create(&labels).clone()
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn budget_trip(&self) {
        self.m.budget_trips.get_or_create(&self.labels()).inc();
    }

    pub(crate) fn uncached_read(&self) {
        self.m.uncached_reads.get_or_create(&self.labels()).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, registry).unwrap();
        s
    }

    #[test]
    fn a_kept_series_appears_when_first_touched_and_shows_its_latest_value() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let c = metrics.scoped("c");
        assert!(!text(&registry).contains("sync_queue_depth{"));
        c.queue_depth(3);
        c.queue_depth(5);
        c.cached(Cluster::Remote, 7);
        c.cached(Cluster::Local, 2);
        c.cached(Cluster::Remote, 8);
        c.spec_lag(0.1);
        c.spec_lag(0.2);
        let t = text(&registry);
        assert!(t.contains("sync_queue_depth{controller=\"c\"} 5"), "{t}");
        assert!(
            t.contains("sync_cached_objects{controller=\"c\",cluster=\"Remote\"} 8"),
            "{t}"
        );
        assert!(
            t.contains("sync_cached_objects{controller=\"c\",cluster=\"Local\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("sync_spec_lag_seconds_count{controller=\"c\"} 2"),
            "{t}"
        );
        assert!(!t.contains("sync_paused_objects{"), "{t}");
    }
}
