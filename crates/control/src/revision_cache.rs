//! A bounded cache of what was derived from a store record, valid for one `mod_revision` of
//! its key: a reader reads the record's key (the store answers its current `mod_revision`)
//! and reuses what it derived from that revision rather than decoding the value again.
//!
//! Correct by construction on any backend and with any number of replicas: an entry is only
//! answered for the exact `(key, mod_revision)` it was derived from, and any write of the key
//! (a deregistration changing a task definition's status, on this replica or another) gives
//! it a new `mod_revision`, so the next read misses and derives again. A key deleted and put
//! again also has a new `mod_revision` (revisions only grow).
//!
//! Bounded by entries: when full it starts over empty (the hot keys come back on their next
//! read), as the SQLite store's read cache does. Pure: no clock, no I/O, no lock (the caller
//! holds it behind its own mutex).

use std::collections::HashMap;
use std::sync::Arc;

/// What was derived from the records of some keys, each valid for one `mod_revision`.
#[derive(Debug)]
pub struct RevisionCache<V> {
    entries: HashMap<String, (u64, Arc<V>)>,
    max_entries: usize,
}

impl<V> RevisionCache<V> {
    /// An empty cache of at most `max_entries` keys (0: it keeps nothing).
    pub fn new(max_entries: usize) -> Self {
        RevisionCache {
            entries: HashMap::new(),
            max_entries,
        }
    }

    /// What was derived from `key` at `mod_revision`, if it is kept.
    pub fn get(&self, key: &str, mod_revision: u64) -> Option<Arc<V>> {
        match self.entries.get(key) {
            Some((rev, value)) if *rev == mod_revision => Some(value.clone()),
            _ => None,
        }
    }

    /// Keeps `value` as derived from `key` at `mod_revision`, replacing what was kept for
    /// another revision of the key (an older revision never replaces a newer one).
    pub fn insert(&mut self, key: &str, mod_revision: u64, value: Arc<V>) {
        if self.max_entries == 0 {
            return;
        }
        if let Some((rev, kept)) = self.entries.get_mut(key) {
            if *rev < mod_revision {
                *rev = mod_revision;
                *kept = value;
            }
            return;
        }
        if self.entries.len() >= self.max_entries {
            self.entries.clear();
        }
        self.entries.insert(key.to_string(), (mod_revision, value));
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_answered_only_at_its_revision() {
        let mut c = RevisionCache::new(8);
        assert_eq!(c.get("k", 5), None);
        c.insert("k", 5, Arc::new("five"));
        assert_eq!(c.get("k", 5).as_deref(), Some(&"five"));
        // The key was written since (another replica deregistered it): a miss.
        assert_eq!(c.get("k", 6), None);
        assert_eq!(c.get("k", 4), None);
        assert_eq!(c.get("other", 5), None);
    }

    #[test]
    fn a_newer_revision_replaces_an_older_one_never_the_reverse() {
        let mut c = RevisionCache::new(8);
        c.insert("k", 5, Arc::new(5));
        c.insert("k", 7, Arc::new(7));
        assert_eq!(c.get("k", 5), None);
        assert_eq!(c.get("k", 7).as_deref(), Some(&7));
        // A slow reader that read revision 5 before the write comes back late.
        c.insert("k", 5, Arc::new(5));
        assert_eq!(c.get("k", 7).as_deref(), Some(&7));
        assert_eq!(c.get("k", 5), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let mut c = RevisionCache::new(2);
        c.insert("a", 1, Arc::new(1));
        c.insert("b", 1, Arc::new(2));
        assert_eq!(c.len(), 2);
        // Replacing a kept key does not count as a new one.
        c.insert("b", 2, Arc::new(3));
        assert_eq!(c.len(), 2);
        c.insert("c", 1, Arc::new(4));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("a", 1), None);
        assert_eq!(c.get("c", 1).as_deref(), Some(&4));
    }

    #[test]
    fn a_cache_of_no_entries_keeps_nothing() {
        let mut c = RevisionCache::new(0);
        c.insert("a", 1, Arc::new(1));
        assert!(c.is_empty());
        assert_eq!(c.get("a", 1), None);
    }
}
