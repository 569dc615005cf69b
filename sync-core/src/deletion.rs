use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::DeletionBudget;

/// Counts local deletions in a sliding window, shared by every key of one controller.
#[derive(Debug)]
pub(crate) struct BudgetGuard {
    budget: DeletionBudget,
    recent: Mutex<VecDeque<Instant>>,
}

impl BudgetGuard {
    pub(crate) fn new(budget: DeletionBudget) -> Self {
        BudgetGuard {
            budget,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes one deletion from the budget, or says how long until one is free.
    pub(crate) fn try_take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.budget.window)
        {
            recent.pop_front();
        }
        if recent.len() < self.budget.max_deletions as usize {
            recent.push_back(now);
            return Ok(());
        }
        let oldest = recent.front().copied().unwrap_or(now);
        Err(self
            .budget
            .window
            .saturating_sub(now.duration_since(oldest))
            .max(Duration::from_millis(100)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_stops_deletions_past_its_limit_until_the_window_allows() {
        let g = BudgetGuard::new(DeletionBudget {
            max_deletions: 2,
            window: Duration::from_secs(10),
        });
        assert!(g.try_take().is_ok());
        assert!(g.try_take().is_ok());
        let wait = g.try_take().unwrap_err();
        assert!(
            wait <= Duration::from_secs(10) && wait > Duration::from_secs(9),
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(g.try_take().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_budget_never_deletes() {
        let g = BudgetGuard::new(DeletionBudget {
            max_deletions: 0,
            window: Duration::from_secs(1),
        });
        assert!(g.try_take().is_err());
    }
}
