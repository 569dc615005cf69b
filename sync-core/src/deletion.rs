//! The deletion budget: how many local deletions a window allows, who waits for the next free
//! one, and which held objects were already reported.
//!
//! A mass deletion on the management cluster (10,000 objects, say) must neither wipe the region
//! nor flood either cluster: held keys wait first come, first served, each woken at the moment
//! a deletion would be free for it (not all at once), and each is reported once per trip.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use crate::mapping::ObjectKey;

/// How many local deletions may happen in a time window before the controller stops deleting.
///
/// A remote namespace wiped by mistake must not wipe a region: past the limit, deletions wait,
/// a Warning event and a metric say why, and they resume when the window allows.
///
/// # Guarantees
///
/// - At most `max_deletions` local deletions (of copies and of namespaces) are sent within any
///   `window`, counting those still in flight. A deletion the API server refuses or finds
///   nothing to delete for (404), or one never sent (its cluster known unreachable, or the
///   leader fence closed), gives its token back; one that got no answer keeps it.
/// - Held objects wait first come, first served, and each is woken when a deletion should be
///   free for it, so about one held object wakes per freed token: 10,000 held objects cost
///   one pass per token, not 10,000 passes per window.
/// - Each held object gets one `DeletionBudgetExceeded` Warning event (and one count in
///   `sync_deletion_budget_trips_total`) per trip: from its first hold until its clean-up is
///   done or it no longer needs one. Its text is the same on every hold, so the API server's
///   and the recorder's aggregation could fold repeats.
///
/// # Caveats
///
/// The budget lives in the controller's memory: **a restart starts with a full budget**. A
/// deliberate restart is rare, and a crash loop is slowed by the kubelet's back-off (10 s
/// doubling to 5 min) and by the caches, which must fill before anything is written, so each
/// start lets through at most one more `max_deletions`; after the first few restarts that is
/// less than the default rate. Keeping the count across restarts would need a write to a
/// shared object (a Lease or a ConfigMap) for each deletion, and without leader election RBAC
/// for an object the controller otherwise never writes; starting each process with a spent
/// budget instead would delay every clean-up after a deploy by a whole window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeletionBudget {
    /// Deletions allowed per window.
    pub max_deletions: u32,
    /// Length of the window.
    pub window: Duration,
}

impl Default for DeletionBudget {
    fn default() -> Self {
        DeletionBudget {
            max_deletions: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// A waiting key that has not come back this long after its turn came is taken off the queue,
/// so a key whose clean-up went another way (it failed before its delete, or its object came
/// back) does not hold the keys behind it back for good. If it comes back later, it queues
/// again at the end.
const LATE: Duration = Duration::from_secs(10);

/// The shortest wait a held key is given.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// A deletion let through by the budget, to be given back with [`BudgetGuard::refund`] if the
/// API server refused it.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a token is spent unless refunded"]
pub(crate) struct Token(u64);

/// A deletion the budget holds back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// When to try again: the moment a deletion should be free for this key, with jitter.
    pub wait: Duration,
    /// Whether this is the first hold of this key's trip, the one to report.
    pub first: bool,
}

/// Counts local deletions in a sliding window, shared by every key of one controller.
///
/// # Guarantees
///
/// - Never more than `max_deletions` tokens within any `window`: a token counts from when it
///   is taken, in flight or not, until it is refunded or the window has passed.
/// - Held keys are served first come, first served: a key may take a token only while more
///   are free than keys queued ahead of it, so a newcomer never takes the one a waiting key
///   was woken for.
/// - Each held key is told to wait until the token its place in the queue will get frees,
///   so as tokens free, about one held key wakes per token.
/// - [`Held::first`] is true once per trip: from the first hold of a key until
///   [`BudgetGuard::end_trip`].
///
/// # Caveats
///
/// It lives in memory: a restarted controller starts with a full budget (see
/// [`DeletionBudget`]).
#[derive(Debug)]
pub(crate) struct BudgetGuard<Key = ObjectKey> {
    budget: DeletionBudget,
    state: Mutex<State<Key>>,
}

#[derive(Debug)]
struct State<Key> {
    /// When each token in the window was taken, oldest first, and its id.
    spent: VecDeque<(Instant, u64)>,
    next_id: u64,
    /// The held keys in the order they came (by ticket), each with when its turn comes.
    queue: BTreeMap<u64, (Key, Instant)>,
    tickets: HashMap<Key, u64>,
    next_ticket: u64,
    /// Keys held at least once in their current trip.
    tripped: HashSet<Key>,
}

impl<Key: Clone + Eq + Hash> BudgetGuard<Key> {
    pub(crate) fn new(budget: DeletionBudget) -> Self {
        BudgetGuard {
            budget,
            state: Mutex::new(State {
                spent: VecDeque::new(),
                next_id: 0,
                queue: BTreeMap::new(),
                tickets: HashMap::new(),
                next_ticket: 0,
                tripped: HashSet::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<Key>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a token for one deletion by `key`, or says how long it waits for one.
    ///
    /// Costs O(log n) in the number of held keys, plus O(keys ahead) when a key's turn came
    /// and went without a token (a refunded token's worth of waiting, at most).
    pub(crate) fn try_take(&self, key: &Key) -> Result<Token, Held> {
        let now = Instant::now();
        let window = self.budget.window;
        let max = self.budget.max_deletions as usize;
        let mut s = self.state();
        while s.spent.front().is_some_and(|(t, _)| *t + window <= now) {
            s.spent.pop_front();
        }
        s.drop_late(now);
        let free = max.saturating_sub(s.spent.len());
        let ticket = s.tickets.get(key).copied();
        // Only whether fewer than `free` are ahead matters, so counting stops there.
        let ahead = match ticket {
            Some(t) => s.queue.range(..t).take(free + 1).count(),
            None => s.queue.len().min(free + 1),
        };
        if ahead < free {
            s.leave_queue(key);
            let id = s.next_id;
            s.next_id += 1;
            s.spent.push_back((now, id));
            return Ok(Token(id));
        }
        let first = s.tripped.insert(key.clone());
        if max == 0 {
            return Err(Held {
                wait: window.max(MIN_WAIT),
                first,
            });
        }
        let due = match ticket.and_then(|t| s.queue.get(&t)) {
            // Its turn has not come yet (an early look, e.g. after a relist): it keeps it.
            Some((_, due)) if *due > now => *due,
            _ => {
                let place = match ticket {
                    Some(t) => s.queue.range(..t).count(),
                    None => s.queue.len(),
                };
                s.turn(place, now, &self.budget) + self.jitter()
            }
        };
        let t = ticket.unwrap_or_else(|| {
            let t = s.next_ticket;
            s.next_ticket += 1;
            s.tickets.insert(key.clone(), t);
            t
        });
        s.queue.insert(t, (key.clone(), due));
        Err(Held {
            wait: due.saturating_duration_since(now).max(MIN_WAIT),
            first,
        })
    }

    /// Gives back a token whose deletion the API server refused (or found nothing to delete):
    /// only deletions that happened, or may have, count.
    pub(crate) fn refund(&self, token: Token) {
        let mut s = self.state();
        if let Some(i) = s.spent.iter().position(|(_, id)| *id == token.0) {
            s.spent.remove(i);
        }
    }

    /// Ends `key`'s trip: it needs no deletion now (its clean-up finished, or its object came
    /// back). Its next hold is reported again.
    pub(crate) fn end_trip(&self, key: &Key) {
        let mut s = self.state();
        if s.tripped.remove(key) {
            s.leave_queue(key);
        }
    }

    /// A small random delay after a key's turn, a fraction of the spacing between tokens, so
    /// keys whose tokens free at one instant do not all wake in the same millisecond.
    fn jitter(&self) -> Duration {
        let spacing =
            (self.budget.window / self.budget.max_deletions.max(1)).min(Duration::from_secs(1));
        spacing.mul_f64(rand::rng().random_range(0.0..0.5))
    }
}

impl<Key: Clone + Eq + Hash> State<Key> {
    fn leave_queue(&mut self, key: &Key) {
        if let Some(t) = self.tickets.remove(key) {
            self.queue.remove(&t);
        }
    }

    /// Takes keys whose turn came more than [`LATE`] ago off the front of the queue.
    fn drop_late(&mut self, now: Instant) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.get().1 + LATE > now {
                break;
            }
            let (key, _) = entry.remove();
            self.tickets.remove(&key);
        }
    }

    /// When a token will be free for the key with `place` keys ahead of it, if each key ahead
    /// takes the next one. The free tokens go first, then each spent one as it leaves the
    /// window, and every token comes round again one window after it was last free.
    fn turn(&self, place: usize, now: Instant, budget: &DeletionBudget) -> Instant {
        let max = budget.max_deletions as usize;
        let free = max.saturating_sub(self.spent.len());
        let (round, slot) = (place / max, place % max);
        let first_free = match slot.checked_sub(free) {
            None => now,
            Some(i) => self.spent[i].0 + budget.window,
        };
        first_free + budget.window * u32::try_from(round).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_deletions: u32, secs: u64) -> BudgetGuard<u32> {
        BudgetGuard::new(DeletionBudget {
            max_deletions,
            window: Duration::from_secs(secs),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_stops_deletions_past_its_limit_until_the_window_allows() {
        let g = guard(2, 10);
        assert!(g.try_take(&1).is_ok());
        assert!(g.try_take(&2).is_ok());
        let held = g.try_take(&3).unwrap_err();
        assert!(
            held.wait >= Duration::from_secs(10) && held.wait < Duration::from_secs(11),
            "{held:?}"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(g.try_take(&3).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_budget_never_deletes() {
        let g = guard(0, 1);
        assert!(g.try_take(&1).is_err());
    }

    /// Runs `keys` held keys, each coming back exactly when told, until all took a token;
    /// returns when each took it, in seconds since the start.
    async fn drain(g: &BudgetGuard<u32>, keys: u32) -> Vec<(u32, f64)> {
        let start = Instant::now();
        let mut wakes: BTreeMap<(Instant, u32), ()> = (0..keys).map(|k| ((start, k), ())).collect();
        let mut taken = Vec::new();
        let mut passes = 0;
        while let Some(((at, key), ())) = wakes.pop_first() {
            passes += 1;
            assert!(passes < keys * 3, "{passes} passes for {keys} keys");
            tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
            match g.try_take(&key) {
                Ok(_) => taken.push((key, (Instant::now() - start).as_secs_f64())),
                Err(h) => {
                    wakes.insert((Instant::now() + h.wait, key), ());
                }
            }
        }
        taken
    }

    #[tokio::test(start_paused = true)]
    async fn a_mass_deletion_drains_at_the_budget_s_pace_with_one_wake_per_token() {
        let g = guard(5, 10);
        let taken = drain(&g, 23).await;
        assert_eq!(taken.len(), 23);
        // Never more than 5 within any 10 s.
        for (i, (_, t)) in taken.iter().enumerate() {
            let within = taken[i..].iter().filter(|(_, u)| *u < t + 10.0).count();
            assert!(
                within <= 5,
                "{within} deletions within 10 s of {t}: {taken:?}"
            );
        }
        // First come, first served, five per window as soon as the window allows: key k in
        // window k / 5, each window a little late by the jitter of the one before.
        for (k, t) in &taken {
            let window = f64::from(k / 5) * 10.0;
            assert!(
                (window..window + 2.5).contains(t),
                "key {k} deleted at {t} s: {taken:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn held_keys_are_woken_spread_over_the_window_not_all_at_once() {
        let g = guard(4, 10);
        for k in 0..4 {
            assert!(g.try_take(&k).is_ok());
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        // Tokens were taken at 0, 2, 4 and 6 s; now is 8 s.
        let waits: Vec<f64> = (4..12)
            .map(|k| g.try_take(&k).unwrap_err().wait.as_secs_f64())
            .collect();
        let expected = [2.0, 4.0, 6.0, 8.0, 12.0, 14.0, 16.0, 18.0];
        for (w, e) in waits.iter().zip(expected) {
            // Jitter: at most half the 2.5 s spacing between tokens, capped at 1 s.
            assert!(
                (e..e + 0.5).contains(w),
                "waits {waits:?}, expected {expected:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_newcomer_does_not_take_the_token_a_held_key_was_woken_for() {
        let g = guard(1, 10);
        assert!(g.try_take(&1).is_ok());
        let held = g.try_take(&2).unwrap_err();
        tokio::time::advance(held.wait).await;
        assert!(g.try_take(&3).is_err(), "the newcomer jumped the queue");
        assert!(g.try_take(&2).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_key_that_never_comes_back_holds_the_queue_back_only_briefly() {
        let g = guard(1, 10);
        assert!(g.try_take(&1).is_ok());
        let held = g.try_take(&2).unwrap_err();
        assert!(g.try_take(&3).is_err());
        tokio::time::advance(held.wait + LATE).await;
        assert!(g.try_take(&3).is_ok(), "key 2 holds its turn for good");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_deletion_gives_its_token_back() {
        let g = guard(1, 10);
        let token = g.try_take(&1).unwrap();
        // In flight, the token counts: a concurrent deletion waits.
        assert!(g.try_take(&2).is_err());
        g.refund(token);
        tokio::time::advance(Duration::from_secs(1)).await;
        let held = g.try_take(&3).unwrap_err();
        // Key 2 is queued ahead: the free token is its, and key 3 comes after it.
        assert!(held.wait > Duration::from_secs(9), "{held:?}");
        assert!(g.try_take(&2).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_is_reported_on_its_first_hold_only() {
        let g = guard(1, 10);
        assert!(g.try_take(&1).is_ok());
        assert!(g.try_take(&2).unwrap_err().first);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(100)).await;
            assert!(!g.try_take(&2).unwrap_err().first);
        }
        // Its deletion went through, the next one (its namespace) is held: the same trip.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(g.try_take(&2).is_ok());
        assert!(!g.try_take(&2).unwrap_err().first);
        // Done; a later clean-up of the same key is a new trip.
        g.end_trip(&2);
        assert!(g.try_take(&2).unwrap_err().first);
    }

    #[tokio::test(start_paused = true)]
    async fn an_early_look_keeps_a_held_key_s_turn() {
        let g = guard(1, 10);
        assert!(g.try_take(&1).is_ok());
        let first = g.try_take(&2).unwrap_err();
        tokio::time::advance(Duration::from_secs(3)).await;
        let again = g.try_take(&2).unwrap_err();
        assert_eq!(again.wait, first.wait - Duration::from_secs(3));
    }
}
