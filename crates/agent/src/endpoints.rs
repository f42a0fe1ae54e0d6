//! The server replicas a client may talk to: [`Endpoints`], a list of base URLs with a cursor on
//! the one in use.
//!
//! What this is: the rotation shared by the agent (its API calls and its session) and the CLI's
//! verbs. Calls go to the current replica, the last one that worked; when a call through
//! replica `i` fails in a way another replica may not (no connection, a 5xx, a session that
//! drops), the caller says so with [`Endpoints::failed`] and the cursor moves to the next one,
//! wrapping around. Clones share the cursor.
//!
//! The first URL is the preferred replica (an agent lists its own zone's first): a client that
//! moved away goes back with [`Endpoints::prefer_first`] once it answers again (the agent's
//! session checks, see [`crate::session`]).
//!
//! What this is not: the retry policy. Whether to retry, and how long to wait first, is the
//! caller's (the agent backs off with [`crate::session::Backoff`]; the CLI tries each replica
//! once).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One or more server base URLs and the replica in use.
#[derive(Debug, Clone)]
pub struct Endpoints {
    urls: Arc<[String]>,
    current: Arc<AtomicUsize>,
}

impl Endpoints {
    /// A comma-separated list (`http://a:8080,http://b:8080`); blanks around the commas and
    /// empty items are ignored. `None` when no URL is left.
    pub fn parse(list: &str) -> Option<Self> {
        Self::new(
            list.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// These URLs, tried in this order starting from the first. `None` when empty.
    pub fn new(urls: Vec<String>) -> Option<Self> {
        (!urls.is_empty()).then(|| Self {
            urls: urls.into(),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Every URL, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The replica in use: its index (to pass to [`Endpoints::failed`]) and its URL.
    pub fn current(&self) -> (usize, &str) {
        let i = self.current.load(Ordering::Acquire) % self.urls.len();
        (i, &self.urls[i])
    }

    /// A call through replica `index` failed: the next replica becomes current, unless someone
    /// already moved on from `index` (so two failures of the same replica move once).
    pub fn failed(&self, index: usize) {
        let next = (index + 1) % self.urls.len();
        let _ = self
            .current
            .compare_exchange(index, next, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Moves back to the first replica (the preferred one: the agent's own zone's).
    pub fn prefer_first(&self) {
        self.current.store(0, Ordering::Release);
    }

    /// The order in which one call tries every replica once: the current one first.
    pub fn rotation(&self) -> impl Iterator<Item = (usize, &str)> {
        let (start, _) = self.current();
        let n = self.urls.len();
        (0..n).map(move |k| {
            let i = (start + k) % n;
            (i, self.urls[i].as_str())
        })
    }
}

impl std::fmt::Display for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.urls.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_on_commas_and_drops_blanks() {
        let e = Endpoints::parse(" http://a:1, http://b:2,,http://c:3 ").unwrap();
        assert_eq!(e.urls(), ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(e.to_string(), "http://a:1,http://b:2,http://c:3");
        assert_eq!(
            Endpoints::parse("http://a:1").unwrap().urls(),
            ["http://a:1"]
        );
        assert!(Endpoints::parse(" , ").is_none());
        assert!(Endpoints::new(vec![]).is_none());
    }

    #[test]
    fn a_failure_moves_to_the_next_replica_and_wraps_around() {
        let e = Endpoints::parse("http://a,http://b,http://c").unwrap();
        assert_eq!(e.current(), (0, "http://a"));
        e.failed(0);
        assert_eq!(e.current(), (1, "http://b"));
        e.failed(1);
        e.failed(2);
        assert_eq!(e.current(), (0, "http://a"), "wraps around");
        let single = Endpoints::parse("http://only").unwrap();
        single.failed(0);
        assert_eq!(single.current(), (0, "http://only"));
    }

    #[test]
    fn the_replica_that_worked_stays_current_and_stale_failures_are_ignored() {
        let e = Endpoints::parse("http://a,http://b,http://c").unwrap();
        let shared = e.clone();
        e.failed(0);
        // A second caller that also used replica 0 reports its failure late: no double move.
        shared.failed(0);
        assert_eq!(shared.current(), (1, "http://b"));
        // Successes move nothing: b stays current for every clone.
        assert_eq!(e.current(), (1, "http://b"));
    }

    #[test]
    fn prefer_first_moves_every_clone_back_to_the_first_replica() {
        let e = Endpoints::parse("http://a,http://b,http://c").unwrap();
        let shared = e.clone();
        e.failed(0);
        e.failed(1);
        assert_eq!(shared.current(), (2, "http://c"));
        shared.prefer_first();
        assert_eq!(e.current(), (0, "http://a"));
    }

    #[test]
    fn rotation_tries_each_replica_once_from_the_current_one() {
        let e = Endpoints::parse("http://a,http://b,http://c").unwrap();
        e.failed(0);
        let order: Vec<&str> = e.rotation().map(|(_, u)| u).collect();
        assert_eq!(order, ["http://b", "http://c", "http://a"]);
    }
}
