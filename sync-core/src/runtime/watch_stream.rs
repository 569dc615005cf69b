//! One watch as a stream: it fills a cache, retries with a short backoff, tells readiness
//! whether it works, logs its failures once per outage, and yields what it touched.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use futures::stream::{BoxStream, StreamExt};
use kube::Resource;
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{debug, info, warn};

use super::cache::CacheWriter;

use crate::reachability::{Failure, Reachability};
use crate::readiness::WatchHealth;

/// How long a failed watch waits before it tries again: kube's default (0.8 s, doubling, with
/// jitter) capped at 5 s rather than 30 s, so the caches are fresh again within seconds of an
/// API server's return; a pass on a stale cache would retry needlessly (a namespace "already
/// exists", say). While the cluster is unreachable a watcher then asks about once per 5 s.
#[derive(Debug)]
pub(super) struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(800);
    const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(delay.mul_f64(rand::random_range(0.5..=1.0)))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// What a watch reports.
pub(super) enum Touched<R> {
    /// An object was added or changed, or came with a (re)list.
    Object(R),
    /// An object was deleted (its last state).
    Deleted(R),
    /// A (re)list completed and replaced the cache. An object that went away while the watch
    /// was down (its watch expired, 410 Gone) sent no delete event: it is simply not there.
    Listed,
}

impl<R> Touched<R> {
    pub(super) fn object(self) -> Option<R> {
        match self {
            Touched::Object(o) | Touched::Deleted(o) => Some(o),
            Touched::Listed => None,
        }
    }
}

/// What a watch fills: one of the kind's own caches, or a kube reflector store (namespaces,
/// secrets).
pub(super) trait Fill<R>: Send + 'static {
    /// Takes in one event of the watch, before anything downstream sees it.
    fn fill(&mut self, event: &watcher::Event<R>);
}

impl<R> Fill<R> for reflector::store::Writer<R>
where
    R: Resource + Clone + Send + Sync + 'static,
    R::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    fn fill(&mut self, event: &watcher::Event<R>) {
        self.apply_watcher_event(event);
    }
}

impl<R> Fill<R> for CacheWriter<R>
where
    R: Resource + Clone + Send + Sync + 'static,
{
    fn fill(&mut self, event: &watcher::Event<R>) {
        self.apply(event);
    }
}

/// A watch that fills a cache and yields what it touched, logging (not returning) watch
/// errors and telling `health` whether it works; the watcher retries errors with backoff,
/// and relists when its watch expired.
pub(super) fn watch_into<R>(
    stream: impl futures::Stream<Item = Result<watcher::Event<R>, watcher::Error>> + Send + 'static,
    mut writer: impl Fill<R>,
    reach: Arc<Reachability>,
    health: WatchHealth,
    watched: String,
) -> BoxStream<'static, Touched<R>>
where
    R: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    stream
        // managedFields are often most of an object's size and are never read here; an update
        // that omits them leaves them as they are on the server.
        .modify(|o| o.meta_mut().managed_fields = None)
        .backoff(WatchBackoff::default())
        .inspect_ok(move |e| writer.fill(e))
        .filter_map(move |r| {
            match &r {
                Ok(_) => health.ok(),
                Err(_) => health.failed(),
            }
            let touched = match r {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    Some(Touched::Object(o))
                }
                Ok(watcher::Event::Delete(o)) => Some(Touched::Deleted(o)),
                Ok(watcher::Event::InitDone) => Some(Touched::Listed),
                Ok(watcher::Event::Init) => None,
                Err(e) => {
                    report_watch_error(&reach, &watched, &e);
                    None
                }
            };
            futures::future::ready(touched)
        })
        .boxed()
}

/// Logs a watch failure: once per outage when the cluster is unreachable (the watcher retries
/// with backoff meanwhile), and an expired watch as the routine relist it is.
/// `watched` says what the watch is of (the resource, `namespaces`, a secret), for the log.
fn report_watch_error(reach: &Reachability, watched: &str, e: &watcher::Error) {
    reach.disturbed();
    let source = match e {
        watcher::Error::InitialListFailed(s)
        | watcher::Error::WatchStartFailed(s)
        | watcher::Error::WatchFailed(s) => Some(s),
        _ => None,
    };
    match (e, source.map(|s| reach.failed(s))) {
        (_, Some(Failure::NowUnreachable)) => {
            warn!(cluster = reach.cluster(), watch = watched, error = %e, "cluster unreachable; retrying with backoff until it answers");
        }
        (_, Some(Failure::StillUnreachable)) => {
            debug!(cluster = reach.cluster(), watch = watched, error = %e, "watch failed; cluster still unreachable");
        }
        (watcher::Error::WatchError(s), _) if s.code == 410 => {
            info!(
                cluster = reach.cluster(),
                watch = watched,
                "watch expired (410 Gone); listing again"
            );
        }
        _ => {
            warn!(cluster = reach.cluster(), watch = watched, error = %e, "watch failed; retrying with backoff")
        }
    }
}
