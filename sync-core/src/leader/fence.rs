//! The fence: whether this replica may write now, by its own monotonic clock.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

/// Whether this replica may write: every write to either cluster checks it just before its
/// request is sent. Without leader election it is always open.
#[derive(Clone, Debug)]
pub(crate) struct Fence {
    hold: Arc<watch::Sender<Hold>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// No leader election: always open.
    Always,
    /// Open until then (this replica's monotonic clock).
    Until(Instant),
    /// Closed: standing by, or stopped.
    Closed,
}

impl Hold {
    fn open_at(self, now: Instant) -> bool {
        match self {
            Hold::Always => true,
            Hold::Until(t) => now < t,
            Hold::Closed => false,
        }
    }
}

/// Why a write was not sent: this replica does not hold the Lease, or its hold lapsed.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error(
    "refused to send a write: this replica does not hold the leader Lease, or its last renewal is older than the renew deadline"
)]
pub(crate) struct NotLeading;

impl Fence {
    /// A fence that is always open, for a reconciler without leader election.
    pub(crate) fn open() -> Fence {
        Fence {
            hold: Arc::new(watch::Sender::new(Hold::Always)),
        }
    }

    /// A fence that is closed until an elector holds it open.
    pub(crate) fn closed() -> Fence {
        Fence {
            hold: Arc::new(watch::Sender::new(Hold::Closed)),
        }
    }

    /// Whether a write may be sent now.
    ///
    /// # Errors
    ///
    /// [`NotLeading`] when it may not.
    pub(crate) fn check(&self) -> Result<(), NotLeading> {
        match self.hold.borrow().open_at(Instant::now()) {
            true => Ok(()),
            false => Err(NotLeading),
        }
    }

    /// Opens the fence until `until`, or closes it (`None`).
    pub(super) fn hold_until(&self, until: Option<Instant>) {
        self.hold
            .send_replace(until.map_or(Hold::Closed, Hold::Until));
    }

    pub(super) fn close(&self) {
        self.hold.send_replace(Hold::Closed);
    }

    /// Resolves once the fence is open.
    pub(crate) async fn opened(&self) {
        let mut rx = self.hold.subscribe();
        loop {
            if rx.borrow_and_update().open_at(Instant::now()) {
                return;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Resolves once the fence is closed: by the elector, or by the passing of the time it was
    /// held open until.
    pub(crate) async fn lapsed(&self) {
        let mut rx = self.hold.subscribe();
        loop {
            let hold = *rx.borrow_and_update();
            match hold {
                Hold::Always => return std::future::pending().await,
                Hold::Until(t) if Instant::now() < t => {
                    tokio::select! {
                        () = tokio::time::sleep_until(t) => {}
                        changed = rx.changed() => if changed.is_err() {
                            // No elector is left to extend it: it lapses at `t`.
                            tokio::time::sleep_until(t).await;
                            return;
                        },
                    }
                }
                Hold::Until(_) | Hold::Closed => return,
            }
        }
    }
}
