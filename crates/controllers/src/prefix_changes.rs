//! One store watch per replica for many followers of every change under a prefix: how every
//! agent session of a replica hears that the log groups changed (and sends its agent the list
//! again).
//!
//! Why: a store watch hands every committed batch of the whole store to its stream (it filters
//! by prefix after the fact), so a watch per session made each write cost more with every
//! connected host: with 300 hollow agents in `flotilla bench scale`, the sessions' log group
//! watches took about 14% of the server's CPU while no log group changed at all.
//!
//! How: [`PrefixChanges::follow`] starts the watch on first use (after the store's revision
//! then) and hands back a receiver of the revision of the latest change it has seen under the
//! prefix. A follower calls it *before* it reads what it follows at some revision R, then waits
//! for a value above R ([`Follower::changed_after`]): the watch started at or before R, so every
//! change after R is told. When the watch fails or ends, every follower is told (its wait ends
//! with `false`: read again), and the next `follow` starts a new watch.
//!
//! Invariant: a follower never misses a change made after the revision it read at, as long as
//! it called `follow` before reading.

use flotilla_store::{Store, StoreError};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Followers of the changes under one prefix, served by one store watch.
pub struct PrefixChanges {
    prefix: String,
    /// The running watch's receiver (its sender is dropped when the watch ends).
    current: Mutex<Option<watch::Receiver<u64>>>,
    /// Held while the watch is being started, so only one caller starts it.
    starting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PrefixChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixChanges")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// One follower: see [`Follower::changed_after`].
#[derive(Debug, Clone)]
pub struct Follower(watch::Receiver<u64>);

impl Follower {
    /// Waits for a change under the prefix after `revision`: `true` when one came, `false` when
    /// the shared watch ended (the follower should read again and follow anew).
    pub async fn changed_after(&mut self, revision: u64) -> bool {
        self.0.wait_for(|seen| *seen > revision).await.is_ok()
    }
}

impl PrefixChanges {
    /// Followers of the changes under `prefix`; no watch runs until the first
    /// [`PrefixChanges::follow`].
    pub fn new(prefix: &str) -> Arc<Self> {
        Arc::new(PrefixChanges {
            prefix: prefix.to_string(),
            current: Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
        })
    }

    fn running(&self) -> Option<watch::Receiver<u64>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|rx| rx.has_changed().is_ok())
            .cloned()
    }

    /// Follows the changes under the prefix from now on (call it before reading what is
    /// followed); starts the shared watch on `store` if it is not running.
    pub async fn follow(&self, store: &Arc<dyn Store>) -> Result<Follower, StoreError> {
        if let Some(rx) = self.running() {
            return Ok(Follower(rx));
        }
        let _one = self.starting.lock().await;
        if let Some(rx) = self.running() {
            return Ok(Follower(rx));
        }
        let from = store.revision().await?;
        let mut stream = store.watch(&self.prefix, from).await?;
        let (tx, rx) = watch::channel(from);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx.clone());
        let prefix = self.prefix.clone();
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        tx.send_replace(ev.revision());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, prefix, "shared watch ended; followers read again");
                        break;
                    }
                }
            }
            // Dropping the sender tells every follower.
        });
        Ok(Follower(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_store::{MemoryStore, Txn};
    use std::time::Duration;

    async fn put(store: &Arc<dyn Store>, key: &str) -> u64 {
        match store.txn(Txn::new().put(key, b"x".to_vec())).await.unwrap() {
            flotilla_store::TxnOutcome::Committed { revision } => revision,
            other => panic!("a plain put conflicted: {other:?}"),
        }
    }

    #[tokio::test]
    async fn followers_hear_every_change_after_what_they_read_and_nothing_else() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let changes = PrefixChanges::new("groups/");
        let mut a = changes.follow(&store).await.unwrap();
        let read_at = store.revision().await.unwrap();
        // A write elsewhere is not a change of the prefix.
        put(&store, "other/1").await;
        let quiet =
            tokio::time::timeout(Duration::from_millis(100), a.changed_after(read_at)).await;
        assert!(quiet.is_err(), "no change under the prefix yet");
        let rev = put(&store, "groups/g1").await;
        assert!(a.changed_after(read_at).await);
        // A second follower shares the watch and waits past what it read.
        let mut b = changes.follow(&store).await.unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(100), b.changed_after(rev)).await;
        assert!(quiet.is_err());
        put(&store, "groups/g2").await;
        assert!(b.changed_after(rev).await);
    }
}
