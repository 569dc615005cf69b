//! Whose claims the remote objects of this controller's shard carry, counted once at start-up:
//! a controller whose objects are mostly claimed under another name was most likely renamed
//! without listing its former name, or overlaps another region.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use kube::core::ObjectMeta;

use super::claimed_by;
use crate::config::SyncConfig;
use crate::keys::Keys;

/// How the claims on the remote objects of one shard are spread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimCensus {
    /// Objects claimed under this controller's name.
    pub ours: usize,
    /// Objects claimed by a predecessor: adopted on their next pass.
    pub adopted: usize,
    /// Objects no controller claimed yet.
    pub unclaimed: usize,
    /// Objects claimed by another controller, by its name.
    pub foreign: BTreeMap<String, usize>,
}

impl ClaimCensus {
    /// Counts the claims of the remote objects of a shard (the objects whose names and
    /// namespaces this controller's mapping accepts). The objects' metadata may be made as the
    /// count goes (owned items), so that only one exists at a time.
    pub fn count<M: Borrow<ObjectMeta>>(
        shard: impl IntoIterator<Item = M>,
        config: &SyncConfig,
        keys: &Keys,
    ) -> Self {
        let mut census = ClaimCensus::default();
        for meta in shard {
            match claimed_by(meta.borrow(), keys) {
                None => census.unclaimed += 1,
                Some(c) if c == config.controller_name => census.ours += 1,
                Some(c) if config.is_own_name(c) => census.adopted += 1,
                Some(c) => *census.foreign.entry(c.to_owned()).or_default() += 1,
            }
        }
        census
    }

    /// How many objects another controller claimed.
    pub fn foreign_total(&self) -> usize {
        self.foreign.values().sum()
    }

    /// How many objects were counted.
    pub fn total(&self) -> usize {
        self.ours + self.adopted + self.unclaimed + self.foreign_total()
    }

    /// Whether most objects of the shard are claimed by other controllers: this controller
    /// will leave them alone, which is rarely what its operator meant.
    pub fn mostly_foreign(&self) -> bool {
        self.foreign_total() * 2 > self.total()
    }

    /// The other controller that claimed the most objects, and how many.
    pub fn main_foreign(&self) -> Option<(&str, usize)> {
        self.foreign
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(c, n)| (c.as_str(), *n))
    }
}
