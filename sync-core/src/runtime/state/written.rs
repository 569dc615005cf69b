//! This controller's own writes to one key that the watches have not brought back yet: which
//! watch events only echo them, and whether a cache is behind them.
//!
//! A watch event that carries exactly the resource version of one of these writes only echoes
//! it: the pass that wrote has folded the API server's answer (the same object) into what it
//! knows, so the event need not queue a pass that would find nothing to do. Every other event
//! queues the key. Nothing may be lost on the way:
//!
//! - a pass that finds a cache behind a write ends early and waits for the echo: that echo
//!   queues the key ([`LastWritten::cache_behind`]);
//! - an echo can come before the answer of its write (the watch is faster than the reply):
//!   events that arrive while a write is in flight are held, and judged once the write is
//!   recorded ([`LastWritten::write_ends`]);
//! - a pass may have read a cache before an echo and not yet compared it with the writes:
//!   meanwhile every event queues the key, and the writes stay recorded
//!   ([`LastWritten::pass_starts`]);
//! - an event past a write (someone else's later change, or a relist's) queues the key, and
//!   the write is forgotten: its echo will not come any more.

use tokio::time::Instant;

use super::super::index::Side;

/// The writes of one key, and what its passes are doing with them.
#[derive(Clone, Debug, Default)]
pub(in crate::runtime) struct LastWritten {
    /// Resource versions of the remote writes not echoed yet, oldest first.
    remote: Vec<u64>,
    /// Resource versions of the local writes not echoed yet, oldest first.
    local: Vec<u64>,
    /// A pass found a cache behind one of these writes and ended without acting on it: the
    /// next event of the key queues it, echo or not.
    awaited: bool,
    /// A pass has started and not yet compared the caches it read with these writes.
    comparing: bool,
    /// A pass is writing: events wait for its answer in `held`.
    writing: bool,
    held: Vec<Held>,
}

/// A watch event that arrived while a write was in flight.
#[derive(Clone, Copy, Debug)]
pub(in crate::runtime) struct Held {
    pub(in crate::runtime) side: Side,
    rv: Option<u64>,
    /// When it arrived: when the change it may carry was first seen.
    pub(in crate::runtime) at: Instant,
}

impl LastWritten {
    fn writes(&mut self, side: Side) -> &mut Vec<u64> {
        match side {
            Side::Remote => &mut self.remote,
            Side::Local => &mut self.local,
        }
    }

    /// A pass starts, before it reads the caches: until it has compared them
    /// ([`Self::cache_behind`]), an echo queues the key as any event, and the write stays
    /// recorded. Otherwise an echo arriving between the pass's read and its comparison would
    /// forget the write, and the pass would act on a cache older than it.
    pub(in crate::runtime) fn pass_starts(&mut self) {
        self.comparing = true;
    }

    /// The pass ended, whether or not it compared.
    pub(in crate::runtime) fn pass_ends(&mut self) {
        self.comparing = false;
    }

    /// Whether caches at these resource versions are older than the last write on either
    /// side: then the pass that read them waits for the echo, which will queue the key.
    pub(in crate::runtime) fn cache_behind(
        &mut self,
        remote: Option<u64>,
        local: Option<u64>,
    ) -> bool {
        self.comparing = false;
        let older = |seen: Option<u64>, writes: &[u64]| matches!((seen, writes.last()), (Some(s), Some(&w)) if s < w);
        let behind = older(remote, &self.remote) || older(local, &self.local);
        if behind {
            self.awaited = true;
        }
        behind
    }

    /// A write is about to be sent.
    pub(in crate::runtime) fn write_starts(&mut self) {
        self.writing = true;
    }

    /// Records a write whose answer carried resource version `rv`.
    pub(in crate::runtime) fn wrote(&mut self, side: Side, rv: Option<u64>) {
        let writes = self.writes(side);
        if let Some(rv) = rv
            && writes.last().is_none_or(|&last| last < rv)
        {
            writes.push(rv);
        }
    }

    /// The write was answered (and recorded) or failed: the events held meanwhile are judged
    /// now; returns those that queue the key.
    pub(in crate::runtime) fn write_ends(&mut self) -> Vec<Held> {
        self.writing = false;
        let held = std::mem::take(&mut self.held);
        held.into_iter()
            .filter(|h| self.event(h.side, h.rv, h.at))
            .collect()
    }

    /// Takes a watch event of the key at resource version `rv` on `side` (its cache already
    /// holds it), arrived at `at`; returns whether it queues the key now.
    pub(in crate::runtime) fn event(&mut self, side: Side, rv: Option<u64>, at: Instant) -> bool {
        if self.writing {
            self.held.push(Held { side, rv, at });
            return false;
        }
        let Some(rv) = rv.filter(|_| !self.comparing) else {
            return true;
        };
        let writes = self.writes(side);
        let own = writes.contains(&rv);
        // A watch delivers the events of an object in resource-version order: a write older
        // than this event will not be echoed any more (and the cache is past it).
        writes.retain(|&w| w > rv);
        let queues = !own || self.awaited;
        self.awaited = false;
        queues
    }

    /// Whether nothing is left to remember.
    pub(in crate::runtime) fn is_empty(&self) -> bool {
        self.remote.is_empty()
            && self.local.is_empty()
            && !self.awaited
            && !self.comparing
            && !self.writing
            && self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrote(remote: &[u64], local: &[u64]) -> LastWritten {
        let mut w = LastWritten::default();
        for &rv in remote {
            w.write_starts();
            w.wrote(Side::Remote, Some(rv));
            assert!(w.write_ends().is_empty());
        }
        for &rv in local {
            w.write_starts();
            w.wrote(Side::Local, Some(rv));
            assert!(w.write_ends().is_empty());
        }
        w
    }

    fn event(w: &mut LastWritten, side: Side, rv: u64) -> bool {
        w.event(side, Some(rv), Instant::now())
    }

    #[test]
    fn the_echo_of_an_own_write_queues_nothing_and_is_forgotten() {
        let mut w = wrote(&[10], &[7]);
        assert!(!event(&mut w, Side::Remote, 10));
        assert!(!event(&mut w, Side::Local, 7));
        assert!(w.is_empty());
    }

    #[test]
    fn an_event_of_another_version_queues_the_key() {
        let mut w = wrote(&[10], &[]);
        // Someone else's change before the write, then after it.
        assert!(event(&mut w, Side::Remote, 9));
        assert!(event(&mut w, Side::Local, 10), "another side's version");
        assert!(!w.is_empty());
        assert!(event(&mut w, Side::Remote, 11));
        assert!(
            w.is_empty(),
            "a later event supersedes the echo that never came"
        );
        assert!(w.event(Side::Remote, None, Instant::now()));
    }

    #[test]
    fn the_echo_of_the_first_of_two_writes_keeps_the_second() {
        let mut w = wrote(&[10, 12], &[]);
        assert!(!event(&mut w, Side::Remote, 10));
        assert!(w.cache_behind(Some(10), None));
        // The pass waits for the second echo.
        assert!(event(&mut w, Side::Remote, 12));
        assert!(w.is_empty());
    }

    #[test]
    fn a_pass_behind_its_own_write_is_queued_by_the_echo() {
        let mut w = wrote(&[10], &[]);
        w.pass_starts();
        assert!(w.cache_behind(Some(9), None));
        w.pass_ends();
        assert!(
            event(&mut w, Side::Remote, 10),
            "the echo a pass waits for queues it"
        );
        assert!(w.is_empty());
        // Behind on the local side: the remote echo queues the key; the pass, still behind,
        // waits again, and the local echo queues it.
        let mut w = wrote(&[10], &[7]);
        assert!(w.cache_behind(Some(9), Some(6)));
        assert!(event(&mut w, Side::Remote, 10));
        assert!(w.cache_behind(Some(10), Some(6)));
        assert!(event(&mut w, Side::Local, 7));
        assert!(w.is_empty());
    }

    #[test]
    fn an_echo_while_a_pass_compares_queues_the_key_and_keeps_the_write() {
        let mut w = wrote(&[10], &[]);
        w.pass_starts();
        assert!(event(&mut w, Side::Remote, 10));
        // The pass read the cache before the echo: it is still behind, and the write is
        // still there to say so.
        assert!(w.cache_behind(Some(9), None));
    }

    #[test]
    fn an_echo_that_comes_before_the_answer_waits_for_it() {
        let mut w = LastWritten::default();
        w.write_starts();
        // The watch brings the write, and someone else's change after it, before the reply.
        assert!(!event(&mut w, Side::Local, 7));
        assert!(!event(&mut w, Side::Remote, 20));
        w.wrote(Side::Local, Some(7));
        let queued = w.write_ends();
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert!(matches!(queued[0].side, Side::Remote));
        assert!(w.is_empty());
    }

    #[test]
    fn a_failed_write_lets_every_held_event_queue() {
        let mut w = wrote(&[], &[]);
        w.write_starts();
        assert!(!event(&mut w, Side::Remote, 20));
        assert_eq!(w.write_ends().len(), 1);
        assert!(w.is_empty());
    }

    #[test]
    fn a_caught_up_cache_is_not_behind() {
        let mut w = wrote(&[10], &[7]);
        assert!(!w.cache_behind(Some(10), Some(8)));
        assert!(
            !w.cache_behind(None, None),
            "an object gone from a cache is not behind"
        );
        assert!(w.cache_behind(Some(10), Some(6)));
    }
}
