//! The status stage during the burst: K objects synced before the clock (the "probes", in a
//! namespace of their own) whose local status the bench changes while the N new objects
//! converge, timing how long each change takes to show on the remote object.
//!
//! Each write sets a new `status.phase` on one probe's local object, as the minimal local
//! controller's user (a merge patch of the status subresource; `observedGeneration` stays
//! current, so the local controller leaves it alone). The sample is the time from the
//! acknowledgement of that patch to the first remote watch event showing the phase. Probe `k`
//! writes at `start + k * interval` and then every `K * interval` (so the probes together write
//! once per `interval`), and never while its previous change is still on its way up: a slot
//! that comes while it waits is skipped. No write starts after the burst has converged, but the
//! changes already written are waited for (up to [`WAIT`]), so slow ones are not left out;
//! one that never shows is counted as `lost`.

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sync_tests::harness::Database;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::observer::{Observer, key};

/// How long a change may take to show remotely before it counts as lost.
const WAIT: Duration = Duration::from_secs(300);

/// What the probes saw.
#[derive(Debug, Default)]
pub struct Probed {
    /// Acknowledged local status writes.
    pub writes: usize,
    /// Write acknowledged → remote status showing it, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Writes not seen remotely within [`WAIT`].
    pub lost: usize,
}

/// Writes the probes' local statuses until `stop` turns true, then waits for the last changes.
pub async fn run(
    local: Client,
    observer: Observer,
    namespace: String,
    names: Vec<String>,
    interval: Duration,
    stop: watch::Receiver<bool>,
) -> Result<Probed> {
    let start = Instant::now();
    let period = interval * u32::try_from(names.len().max(1)).unwrap_or(u32::MAX);
    let tasks: Vec<_> = names
        .into_iter()
        .enumerate()
        .map(|(k, name)| {
            let api = Api::<Database>::namespaced(local.clone(), &namespace);
            let observer = observer.clone();
            let key = key(&namespace, &name);
            let mut stop = stop.clone();
            let first = start + interval * u32::try_from(k).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                let mut probed = Probed::default();
                let mut ticks = tokio::time::interval_at(first, period);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
                for i in 0.. {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        // The bench gone counts as a stop.
                        changed = stop.changed() => if changed.is_err() { break },
                    }
                    if *stop.borrow() {
                        break;
                    }
                    let phase = format!("Burst-{k}-{i}");
                    let seen = observer.expect_remote_phase(key.clone(), phase.clone());
                    api.patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"phase": phase}})),
                    )
                    .await
                    .with_context(|| format!("write the local status of probe {key}"))?;
                    let ack = Instant::now();
                    probed.writes += 1;
                    match tokio::time::timeout(WAIT, seen).await {
                        Ok(Ok(at)) => probed
                            .latencies_ms
                            .push(at.saturating_duration_since(ack).as_secs_f64() * 1000.0),
                        _ => probed.lost += 1,
                    }
                }
                Ok::<Probed, anyhow::Error>(probed)
            })
        })
        .collect();
    let mut all = Probed::default();
    for t in tasks {
        let p = t.await.context("a status probe panicked")??;
        all.writes += p.writes;
        all.lost += p.lost;
        all.latencies_ms.extend(p.latencies_ms);
    }
    Ok(all)
}
