//! `MemoryStore`: an in-process backend with the exact semantics of the [`Store`] contract.
//!
//! It is the reference behaviour the conformance suite checks every backend against, and a
//! convenient store for unit tests of callers. It is not durable: everything is lost when the
//! last handle is dropped (the "acknowledged means durable" clause is trivially void).
//!
//! Invariants:
//! - All state lives behind one mutex; a transaction evaluates its compares and applies its ops
//!   under that lock, so it is atomic and transactions are totally ordered.
//! - A transaction that writes at least one change advances the revision by exactly one; a
//!   conflicting or no-op transaction does not.
//! - The change history holds every event with revision `> floor`; it is bounded to the last
//!   `history_revisions` revisions. Events are published to watchers under the same lock, so
//!   publication order equals revision order.
//! - Handles are cheap clones sharing one store. When the last handle is dropped, open watch
//!   streams end with [`StoreError::Closed`].

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::watch::{self, Batch, History};
use crate::{
    Compare, Event, KeyValue, Op, Page, Store, StoreError, Txn, TxnOutcome, WatchStream,
    DEFAULT_HISTORY_REVISIONS,
};

/// Default capacity (in committed transactions) of the live watch channel before a slow watcher
/// has to recover from history.
const DEFAULT_WATCH_BUFFER: usize = 4096;

/// An in-memory [`Store`]. Cloning yields another handle to the same store.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    live: broadcast::Sender<Batch>,
}

/// The part watch streams keep alive (it holds no sender, so dropping the store closes them).
struct Shared {
    state: Mutex<State>,
}

struct Entry {
    value: Vec<u8>,
    create_revision: u64,
    mod_revision: u64,
}

struct State {
    kv: BTreeMap<String, Entry>,
    revision: u64,
    /// Every event with revision > `floor`, ascending.
    history: VecDeque<Event>,
    floor: u64,
    history_revisions: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 0 with the default history bound.
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_HISTORY_REVISIONS, DEFAULT_WATCH_BUFFER)
    }

    /// An empty store keeping at least `history_revisions` revisions of watch history (minimum 1)
    /// and buffering `watch_buffer` committed transactions (minimum 1) for live watchers before
    /// a lagging watcher falls back to history.
    pub fn with_limits(history_revisions: u64, watch_buffer: usize) -> Self {
        let (live, _) = broadcast::channel(watch_buffer.max(1));
        let state = State {
            kv: BTreeMap::new(),
            revision: 0,
            history: VecDeque::new(),
            floor: 0,
            history_revisions: history_revisions.max(1),
        };
        MemoryStore {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    state: Mutex::new(state),
                }),
                live,
            }),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock, but never propagate a poison regardless.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn mod_revision(&self, key: &str) -> Option<u64> {
        self.kv.get(key).map(|e| e.mod_revision)
    }

    fn compact_to(&mut self, floor: u64) {
        let floor = floor.min(self.revision);
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        while self.history.front().is_some_and(|e| e.revision() <= floor) {
            self.history.pop_front();
        }
    }

    fn apply(&mut self, txn: Txn) -> (TxnOutcome, Vec<Event>) {
        let failed: Vec<usize> = txn
            .compares
            .iter()
            .enumerate()
            .filter(|(_, c)| !holds(c, self.mod_revision(c_key(c))))
            .map(|(i, _)| i)
            .collect();
        if !failed.is_empty() {
            return (
                TxnOutcome::Conflict {
                    failed,
                    revision: self.revision,
                },
                Vec::new(),
            );
        }
        let rev = self.revision + 1;
        let mut events = Vec::new();
        for op in txn.ops {
            match op {
                Op::Put(key, value) => {
                    let create_revision = self.kv.get(&key).map_or(rev, |e| e.create_revision);
                    self.kv.insert(
                        key.clone(),
                        Entry {
                            value: value.clone(),
                            create_revision,
                            mod_revision: rev,
                        },
                    );
                    events.push(Event::Put(KeyValue {
                        key,
                        value,
                        create_revision,
                        mod_revision: rev,
                    }));
                }
                Op::Delete(key) => {
                    if self.kv.remove(&key).is_some() {
                        events.push(Event::Delete { key, revision: rev });
                    }
                }
            }
        }
        if !events.is_empty() {
            self.revision = rev;
            self.history.extend(events.iter().cloned());
            if self.revision > self.floor + self.history_revisions {
                self.compact_to(self.revision - self.history_revisions);
            }
        }
        (
            TxnOutcome::Committed {
                revision: self.revision,
            },
            events,
        )
    }
}

/// The key a compare is about.
pub(crate) fn c_key(c: &Compare) -> &str {
    match c {
        Compare::Absent(k) | Compare::Present(k) | Compare::ModRevision(k, _) => k,
    }
}

/// Whether a compare holds given the key's current `mod_revision` (`None` when absent).
pub(crate) fn holds(c: &Compare, current: Option<u64>) -> bool {
    match c {
        Compare::Absent(_) => current.is_none(),
        Compare::Present(_) => current.is_some(),
        Compare::ModRevision(_, want) => current == Some(*want),
    }
}

#[async_trait]
impl History for Shared {
    async fn current_revision(&self) -> Result<u64, StoreError> {
        Ok(self.lock().revision)
    }

    async fn changes(&self, prefix: &str, after: u64, upto: u64) -> Result<Vec<Event>, StoreError> {
        let st = self.lock();
        if after < st.floor {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: st.floor,
            });
        }
        let start = st.history.partition_point(|e| e.revision() <= after);
        Ok(st
            .history
            .range(start..)
            .take_while(|e| e.revision() <= upto)
            .filter(|e| e.key().starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let st = self.inner.shared.lock();
        Ok(st.kv.get(key).map(|e| KeyValue {
            key: key.to_owned(),
            value: e.value.clone(),
            create_revision: e.create_revision,
            mod_revision: e.mod_revision,
        }))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let st = self.inner.shared.lock();
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut iter = st
            .kv
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        let items: Vec<KeyValue> = iter
            .by_ref()
            .take(limit)
            .map(|(k, e)| KeyValue {
                key: k.clone(),
                value: e.value.clone(),
                create_revision: e.create_revision,
                mod_revision: e.mod_revision,
            })
            .collect();
        let more = iter.next().is_some();
        Ok(Page {
            items,
            more,
            revision: st.revision,
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let mut st = self.inner.shared.lock();
        let (outcome, events) = st.apply(txn);
        if !events.is_empty() {
            // Published under the lock so that batches go out in revision order. No receivers
            // is not an error.
            let _ = self.inner.live.send(Arc::new(events));
        }
        Ok(outcome)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.inner.shared.lock().revision)
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        let history: Arc<dyn History> = self.inner.shared.clone();
        watch::watch(history, &self.inner.live, prefix, after_revision).await
    }

    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        self.inner.shared.lock().compact_to(revision);
        Ok(())
    }
}
