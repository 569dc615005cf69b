//! The pure half of the election: what a replica knows of the Lease, what it decides from a
//! Lease it read, and the Lease it writes. Times are the replica's monotonic clock; wall time
//! only goes into the Lease, for people to read.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::core::ObjectMeta;
use tokio::time::Instant;

use super::Timings;

/// What one look at the Lease calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// It is free, ours, or unrenewed for its duration as observed here: write this replica
    /// as holder (a renewal when it is ours).
    Take,
    /// Another replica renewed it within its duration, as observed here: stand by.
    Wait,
}

/// The pure half of the election: what a replica knows, and what it decides from a Lease it
/// read. Times are this replica's monotonic clock.
#[derive(Clone, Debug)]
pub(crate) struct Elector {
    identity: String,
    timings: Timings,
    /// The Lease's `resourceVersion` as last read, and when it was first read with it.
    observed: Option<(String, Instant)>,
    /// When the request of this replica's last successful take or renewal was sent, while it
    /// may count as holder.
    renewed: Option<Instant>,
}

impl Elector {
    pub(crate) fn new(identity: &str, timings: Timings) -> Self {
        Elector {
            identity: identity.to_owned(),
            timings,
            observed: None,
            renewed: None,
        }
    }

    /// Until when this replica may write, if it holds the Lease: the renew deadline after its
    /// last successful renewal was sent. The time may already have passed.
    pub(crate) fn leading_until(&self) -> Option<Instant> {
        self.renewed.map(|t| t + self.timings.renew_deadline)
    }

    /// Decides from the Lease as just read (`None`: there is none) at `now`.
    pub(crate) fn decide(&mut self, lease: Option<&Lease>, now: Instant) -> Decision {
        let Some(lease) = lease else {
            self.observed = None;
            self.renewed = None;
            return Decision::Create;
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        match &self.observed {
            Some((v, _)) if *v == version => {}
            _ => self.observed = Some((version, now)),
        }
        let spec = lease.spec.as_ref();
        let holder = spec
            .and_then(|s| s.holder_identity.as_deref())
            .filter(|h| !h.is_empty());
        match holder {
            None => Decision::Take,
            Some(h) if h == self.identity => Decision::Take,
            Some(_) => {
                // Someone else is named: whatever this replica thought, it holds nothing.
                self.renewed = None;
                let duration = spec
                    .and_then(|s| s.lease_duration_seconds)
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(self.timings.duration, Duration::from_secs);
                let since = self.observed.as_ref().map_or(now, |(_, t)| *t);
                if now.duration_since(since) >= duration {
                    Decision::Take
                } else {
                    Decision::Wait
                }
            }
        }
    }

    /// The Lease to write to take or renew `current` (`None`: create it) at wall time `now`,
    /// on the condition of its version.
    pub(crate) fn claim(&self, current: Option<&Lease>, name: &str, now: Timestamp) -> Lease {
        let old = current.and_then(|l| l.spec.clone()).unwrap_or_default();
        let ours = old.holder_identity.as_deref() == Some(self.identity.as_str());
        let transitions = old.lease_transitions.unwrap_or(0);
        let metadata = match current {
            Some(l) => l.metadata.clone(),
            None => ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
        };
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.timings.duration.as_secs()).unwrap_or(i32::MAX),
                ),
                renew_time: Some(MicroTime(now)),
                acquire_time: match ours {
                    true => old.acquire_time.or(Some(MicroTime(now))),
                    false => Some(MicroTime(now)),
                },
                lease_transitions: Some(match (ours, current.is_some()) {
                    (false, true) => transitions.saturating_add(1),
                    _ => transitions,
                }),
                ..old
            }),
        }
    }

    /// Takes in a successful take or renewal sent at `sent`, answered with `written` at `now`.
    pub(crate) fn took(&mut self, sent: Instant, written: &Lease, now: Instant) {
        self.renewed = Some(sent);
        let version = written
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        self.observed = Some((version, now));
    }

    /// The Lease to write to release `current`, if this replica still holds it: no holder,
    /// and a duration of one second.
    pub(crate) fn released(&self, current: &Lease, now: Timestamp) -> Option<Lease> {
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return None;
        }
        Some(Lease {
            metadata: current.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                renew_time: Some(MicroTime(now)),
                acquire_time: None,
                ..spec
            }),
        })
    }
}
