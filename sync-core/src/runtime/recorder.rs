//! Warning events on remote objects. A repeat of an event (same object, reason, action and
//! note) within [`SERIES_TTL`] of its last occurrence is counted on the Event already stored
//! (its `series`) rather than stored again, so an object that keeps failing does not fill the
//! management cluster with Events.
//!
//! kube-runtime's `Recorder` does the same, but every publish sweeps its whole cache of the
//! last six minutes' events, and the cache keeps each event whole: in a mass deletion, where
//! each object the budget holds gets one event, its CPU grew with the square of the events and
//! it held tens of MB (BENCHMARKS.md, "Events"). This one keeps only what a repeat needs, and
//! sweeps when the cache has doubled since its last sweep: linear in the events published.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::time::Instant;

use super::state::lock;

/// How long after its last occurrence an event still counts repeats (kube's recorder and
/// client-go use the same six minutes).
pub(super) const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// The longest note the API server takes on an Event, in bytes.
const NOTE_MAX: usize = 1000;

/// Below this many series, the cache is never swept.
const SWEEP_MIN: usize = 1024;

/// What this controller publishes Warning events with.
pub(super) struct Recorder {
    client: kube::Client,
    /// `reportingController` and `reportingInstance` of every event.
    controller: String,
    series: Mutex<Series>,
}

/// What makes two events one series: the object they are about, and what they say.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    namespace: String,
    name: String,
    uid: Option<String>,
    reason: String,
    action: String,
    note: String,
}

/// The stored Event of a series: its name, its count, and when it last occurred.
#[derive(Debug)]
struct Sent {
    event: String,
    count: i32,
    last: Instant,
}

/// The series of the last [`SERIES_TTL`].
#[derive(Debug, Default)]
struct Series {
    by_key: HashMap<SeriesKey, Sent>,
    /// Past this size, series older than [`SERIES_TTL`] are swept; then it doubles the size
    /// left, so sweeping stays linear in the events recorded.
    sweep_at: usize,
    /// Series looked at by sweeps, for the test of linearity.
    #[cfg(test)]
    swept: usize,
}

/// What publishing an event takes: a new Event, or a repeat counted on a stored one.
#[derive(Debug, PartialEq)]
enum Publish {
    Create,
    Repeat { event: String, count: i32 },
}

impl Series {
    fn next(&self, key: &SeriesKey, now: Instant) -> Publish {
        match self.by_key.get(key) {
            Some(s) if now.duration_since(s.last) < SERIES_TTL => Publish::Repeat {
                event: s.event.clone(),
                count: s.count.saturating_add(1),
            },
            _ => Publish::Create,
        }
    }

    fn sent(&mut self, key: SeriesKey, event: String, count: i32, now: Instant) {
        let last = now;
        self.by_key.insert(key, Sent { event, count, last });
        if self.by_key.len() > self.sweep_at.max(SWEEP_MIN) {
            #[cfg(test)]
            {
                self.swept += self.by_key.len();
            }
            self.by_key
                .retain(|_, s| now.duration_since(s.last) < SERIES_TTL);
            self.sweep_at = 2 * self.by_key.len();
        }
    }
}

impl Recorder {
    pub(super) fn new(client: kube::Client, controller: String) -> Self {
        Recorder {
            client,
            controller,
            series: Mutex::default(),
        }
    }

    /// Publishes a Warning event about `regarding`, or counts a repeat on the one stored.
    /// Answers the verb it took (`create` or `patch`). A note longer than the API takes is cut
    /// to [`NOTE_MAX`] bytes.
    pub(super) async fn warn(
        &self,
        regarding: ObjectReference,
        reason: &str,
        action: &str,
        mut note: String,
    ) -> Result<&'static str, kube::Error> {
        if note.len() > NOTE_MAX {
            let mut cut = NOTE_MAX;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let key = SeriesKey {
            namespace: regarding.namespace.clone().unwrap_or_default(),
            name: regarding.name.clone().unwrap_or_default(),
            uid: regarding.uid.clone(),
            reason: reason.to_owned(),
            action: action.to_owned(),
            note,
        };
        let namespace = match key.namespace.as_str() {
            "" => "default",
            ns => ns,
        };
        let api = Api::<Event>::namespaced(self.client.clone(), namespace);
        let now = Instant::now();
        let next = lock(&self.series).next(&key, now);
        let (verb, event, count) = match next {
            Publish::Repeat { event, count } => {
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(Timestamp::now()),
                };
                let patch = serde_json::json!({ "series": series });
                match api
                    .patch(&event, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => ("patch", event, count),
                    // Deleted meanwhile (by hand, or its TTL on the API server): a new one.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        let event = self.create(&api, regarding, &key).await?;
                        ("create", event, 1)
                    }
                    Err(e) => return Err(e),
                }
            }
            Publish::Create => {
                let event = self.create(&api, regarding, &key).await?;
                ("create", event, 1)
            }
        };
        lock(&self.series).sent(key, event, count, now);
        Ok(verb)
    }

    /// Creates the first Event of a series, and answers its name.
    async fn create(
        &self,
        api: &Api<Event>,
        regarding: ObjectReference,
        key: &SeriesKey,
    ) -> Result<String, kube::Error> {
        let event = Event {
            metadata: ObjectMeta {
                // The API server adds a random suffix to the first 58 characters of the
                // prefix, which may end with '-' but not with '.'.
                generate_name: Some(format!("{}-", key.name.get(..57).unwrap_or(&key.name))),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(Timestamp::now())),
            type_: Some("Warning".to_owned()),
            reason: Some(key.reason.clone()),
            action: Some(key.action.clone()),
            note: Some(key.note.clone()),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            ..Event::default()
        };
        let created = api.create(&PostParams::default(), &event).await?;
        Ok(created.metadata.name.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, note: &str) -> SeriesKey {
        SeriesKey {
            namespace: "ns".to_owned(),
            name: name.to_owned(),
            uid: Some(format!("uid-{name}")),
            reason: "LocalWriteRejected".to_owned(),
            action: "SyncSpec".to_owned(),
            note: note.to_owned(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeat_within_the_ttl_is_counted_on_the_stored_event() {
        let mut series = Series::default();
        let k = key("a", "too long");
        assert_eq!(series.next(&k, Instant::now()), Publish::Create);
        series.sent(k.clone(), "a.x1".to_owned(), 1, Instant::now());
        tokio::time::advance(SERIES_TTL - Duration::from_secs(1)).await;
        let repeat = series.next(&k, Instant::now());
        assert_eq!(
            repeat,
            Publish::Repeat {
                event: "a.x1".to_owned(),
                count: 2
            }
        );
        series.sent(k.clone(), "a.x1".to_owned(), 2, Instant::now());
        assert_eq!(
            series.next(&key("a", "another note"), Instant::now()),
            Publish::Create,
            "another note is another event"
        );
        assert_eq!(
            series.next(&key("b", "too long"), Instant::now()),
            Publish::Create
        );
        // The TTL counts from the last repeat, not from the first event.
        tokio::time::advance(SERIES_TTL - Duration::from_secs(1)).await;
        assert!(matches!(
            series.next(&k, Instant::now()),
            Publish::Repeat { count: 3, .. }
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(series.next(&k, Instant::now()), Publish::Create);
    }

    #[tokio::test(start_paused = true)]
    async fn sweeping_stays_linear_in_the_events_published_and_drops_old_series() {
        let mut series = Series::default();
        // A mass deletion: one event for each of 100,000 held objects, 10 per second.
        let n = 100_000;
        for i in 0..n {
            series.sent(
                key(&format!("o{i}"), "held"),
                format!("e{i}"),
                1,
                Instant::now(),
            );
            if i % 10 == 0 {
                tokio::time::advance(Duration::from_secs(1)).await;
            }
        }
        assert!(
            series.swept <= 3 * n,
            "sweeps looked at {} series for {n} events",
            series.swept
        );
        // Only the last TTL's series are left (3,600 at 10 per second), give or take what
        // arrived since the last sweep.
        assert!(
            series.by_key.len() <= 2 * 3_600 + SWEEP_MIN,
            "{} series kept",
            series.by_key.len()
        );
        tokio::time::advance(SERIES_TTL).await;
        for i in 0..=SWEEP_MIN.max(series.sweep_at) {
            series.sent(
                key(&format!("new{i}"), "held"),
                format!("n{i}"),
                1,
                Instant::now(),
            );
        }
        assert!(series.by_key.keys().all(|k| k.name.starts_with("new")));
    }
}
