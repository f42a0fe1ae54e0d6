//! One store watch per replica for many waiters on single keys' deletion: how every agent
//! session of a replica hears that its agent key was revoked.
//!
//! Why: a session opened with an agent key ends the moment its key's record is deleted (its
//! container instance deregistered). A store watch per session would hand every committed batch
//! of the whole store to every session (a watch filters by prefix after the fact), so the cost
//! of each write would grow with the number of connected hosts. Here one watch of the prefix
//! serves them all: a delete wakes only the waiters of that key.
//!
//! How: [`Deletions::wait_for`] starts the watch on first use (from the store's revision then),
//! registers the waiter, and only then does the caller read the key (so a delete either came
//! before that read, which sees the key gone, or after it, which the watch delivers). When the
//! watch fails or ends, every waiter is told [`Ended::WatchFailed`] (a session then closes and
//! its agent reconnects, checking its key again) and the next waiter starts a new watch.
//!
//! Invariant: a waiter is registered only while the watch runs (both under one lock), so no
//! waiter is left on a watch that has already failed; a dropped [`Waiter`] unregisters itself.

use flotilla_store::{Event, Store, StoreError};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::oneshot;

/// Why a waiter's wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The key was deleted.
    Deleted,
    /// The shared watch failed or ended (the reason); the key may still exist.
    WatchFailed(String),
}

#[derive(Default)]
struct State {
    running: bool,
    next_id: u64,
    waiters: HashMap<String, Vec<(u64, oneshot::Sender<Ended>)>>,
}

/// Waiters on the deletion of keys under one prefix, served by one store watch.
pub struct Deletions {
    prefix: String,
    state: Mutex<State>,
    /// Held while the watch is being started, so only one caller starts it.
    starting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Deletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deletions")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// One waiter: [`Waiter::ended`] resolves when its key is deleted or the watch fails.
#[derive(Debug)]
pub struct Waiter {
    key: String,
    id: u64,
    rx: oneshot::Receiver<Ended>,
    owner: Weak<Deletions>,
}

impl Waiter {
    /// Waits until the key is deleted or the shared watch fails.
    pub async fn ended(&mut self) -> Ended {
        (&mut self.rx)
            .await
            .unwrap_or_else(|_| Ended::WatchFailed("the deletion watch was dropped".into()))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            let mut state = owner.lock();
            if let Some(list) = state.waiters.get_mut(&self.key) {
                list.retain(|(id, _)| *id != self.id);
                if list.is_empty() {
                    state.waiters.remove(&self.key);
                }
            }
        }
    }
}

impl Deletions {
    /// Waiters on keys under `prefix` (the watch starts on first use).
    pub fn new(prefix: &str) -> Arc<Self> {
        Arc::new(Deletions {
            prefix: prefix.to_string(),
            state: Mutex::default(),
            starting: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many waiters are registered (for tests and metrics).
    pub fn waiting(&self) -> usize {
        self.lock().waiters.values().map(Vec::len).sum()
    }

    /// Registers a waiter on `key` (under the prefix), starting the shared watch when it does
    /// not run. Read the key *after* this returns: a delete before that read is seen by the
    /// read, one after it reaches the waiter.
    pub async fn wait_for(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        key: &str,
    ) -> Result<Waiter, StoreError> {
        debug_assert!(
            key.starts_with(&self.prefix),
            "{key} not under {}",
            self.prefix
        );
        loop {
            if let Some(w) = self.register(key) {
                return Ok(w);
            }
            let _one = self.starting.lock().await;
            if self.lock().running {
                continue;
            }
            let rev = store.revision().await?;
            let stream = store.watch(&self.prefix, rev).await?;
            self.lock().running = true;
            tokio::spawn(follow(Arc::downgrade(self), stream));
        }
    }

    /// A waiter on `key`, if the watch runs.
    fn register(self: &Arc<Self>, key: &str) -> Option<Waiter> {
        let mut state = self.lock();
        if !state.running {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        let (tx, rx) = oneshot::channel();
        state
            .waiters
            .entry(key.to_string())
            .or_default()
            .push((id, tx));
        Some(Waiter {
            key: key.to_string(),
            id,
            rx,
            owner: Arc::downgrade(self),
        })
    }

    /// Tells the waiters of `key` it was deleted.
    fn deleted(&self, key: &str) {
        let waiters = self.lock().waiters.remove(key).unwrap_or_default();
        for (_, tx) in waiters {
            let _ = tx.send(Ended::Deleted);
        }
    }

    /// Marks the watch stopped and tells every waiter why.
    fn failed(&self, why: String) {
        let waiters = {
            let mut state = self.lock();
            state.running = false;
            std::mem::take(&mut state.waiters)
        };
        for (_, tx) in waiters.into_values().flatten() {
            let _ = tx.send(Ended::WatchFailed(why.clone()));
        }
    }
}

/// The shared watch: hands each delete to its key's waiters until the watch fails, ends, or
/// the [`Deletions`] is dropped.
async fn follow(owner: Weak<Deletions>, mut stream: flotilla_store::WatchStream) {
    let why = loop {
        let next = stream.next().await;
        let Some(owner) = owner.upgrade() else {
            return;
        };
        match next {
            Some(Ok(Event::Delete { key, .. })) => owner.deleted(&key),
            Some(Ok(Event::Put(_))) => {}
            Some(Err(e)) => break format!("the watch of {} failed: {e}", owner.prefix),
            None => break format!("the watch of {} ended", owner.prefix),
        }
    };
    if let Some(owner) = owner.upgrade() {
        tracing::warn!(reason = %why, "deletion watch stopped; its waiters were told");
        owner.failed(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_store::memory::MemoryStore;
    use flotilla_store::Txn;
    use std::time::Duration;

    async fn put(store: &Arc<dyn Store>, key: &str) {
        store.txn(Txn::new().put(key, b"x".to_vec())).await.unwrap();
    }

    async fn delete(store: &Arc<dyn Store>, key: &str) {
        store.txn(Txn::new().delete(key)).await.unwrap();
    }

    async fn within<T>(f: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::time::timeout(Duration::from_secs(2), f).await.ok()
    }

    #[tokio::test]
    async fn a_delete_wakes_only_the_waiters_of_its_key() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        put(&store, "k/a").await;
        put(&store, "k/b").await;
        let d = Deletions::new("k/");
        let mut a1 = d.wait_for(&store, "k/a").await.unwrap();
        let mut a2 = d.wait_for(&store, "k/a").await.unwrap();
        let mut b = d.wait_for(&store, "k/b").await.unwrap();
        assert_eq!(d.waiting(), 3);
        put(&store, "k/b").await;
        put(&store, "other/a").await;
        delete(&store, "k/a").await;
        assert_eq!(within(a1.ended()).await, Some(Ended::Deleted));
        assert_eq!(within(a2.ended()).await, Some(Ended::Deleted));
        assert_eq!(
            tokio::time::timeout(Duration::from_millis(200), b.ended())
                .await
                .ok(),
            None,
            "a put, or another key's delete, does not end a wait"
        );
        assert_eq!(d.waiting(), 1);
        drop(b);
        assert_eq!(d.waiting(), 0, "a dropped waiter unregisters itself");
    }

    #[tokio::test]
    async fn a_delete_just_after_registering_is_not_missed() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let d = Deletions::new("k/");
        for i in 0..50 {
            let key = format!("k/{i}");
            put(&store, &key).await;
            let mut w = d.wait_for(&store, &key).await.unwrap();
            delete(&store, &key).await;
            assert_eq!(within(w.ended()).await, Some(Ended::Deleted), "{key}");
        }
    }
}
