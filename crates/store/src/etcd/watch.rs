//! A watch on etcd that survives dropped connections.
//!
//! One [`Resuming`] follows one key range. It remembers `last`, the highest revision whose
//! events it has queued for the caller. Whenever its gRPC stream breaks (the member died, the
//! connection was reset, the server ended the stream or cancelled the watch for a reason other
//! than compaction) it opens a new etcd watch from revision `last` and drops every event at or
//! below `last`, retrying with capped exponential backoff while the cluster is unreachable. etcd
//! never splits one revision's events over two responses, so the caller sees every change
//! exactly once, in order.
//!
//! Why from `last` and not `last + 1`: etcd accepts a watch that starts exactly at its
//! compaction revision, but by then it may have dropped a deletion made at that revision.
//! Starting at `last` makes etcd refuse exactly when a change after `last` may be gone
//! (`last < compact revision`), and that refusal ends the stream with
//! [`StoreError::Compacted`]: the watcher must list afresh and watch from the list's revision.
//!
//! The stream ends with [`StoreError::Closed`] once the last handle of its store is dropped.
//! It is not a cache and does not re-list: that is the caller's choice after `Compacted`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchClient, WatchOptions, WatchResponse};
use tokio::sync::watch as signal;

use super::error::{from_etcd, kind, Kind};
use super::pool::Pool;
use super::txn::revision_i64;
use super::Keys;
use crate::{Event, KeyValue, StoreError};

/// First wait before reopening a broken watch; doubles up to the store's `watch_backoff_max`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The state of one resuming watch stream.
pub(crate) struct Resuming {
    /// Each (re)connection opens the watch on a healthy member.
    pool: Arc<Pool>,
    keys: Keys,
    /// etcd key range `[start, end)`.
    start: Vec<u8>,
    end: Vec<u8>,
    /// Every change at or below `last` has been queued; the next ones come after it.
    last: u64,
    conn: Option<etcd_client::WatchStream>,
    buf: VecDeque<Event>,
    /// Resolves (with an error) when the store is dropped.
    closed: signal::Receiver<()>,
    done: bool,
    backoff: Duration,
    max_backoff: Duration,
}

impl Resuming {
    /// A watch of `[start, end)` for changes after `after`; not connected yet.
    pub(crate) fn new(
        pool: Arc<Pool>,
        keys: Keys,
        (start, end): (Vec<u8>, Vec<u8>),
        after: u64,
        closed: signal::Receiver<()>,
        max_backoff: Duration,
    ) -> Self {
        Resuming {
            pool,
            keys,
            start,
            end,
            last: after,
            conn: None,
            buf: VecDeque::new(),
            closed,
            done: false,
            backoff: FIRST_BACKOFF,
            max_backoff,
        }
    }

    /// Opens the etcd watch from `last`.
    pub(crate) async fn connect(&mut self) -> Result<(), StoreError> {
        let stream = open(
            &mut self.pool.pick().watch.clone(),
            &self.start,
            &self.end,
            self.last,
        )
        .await?;
        self.conn = Some(stream);
        Ok(())
    }

    /// After a compaction was found by other means: waits (bounded) for etcd to cancel this
    /// watch and returns the compaction revision it names.
    pub(crate) async fn compact_revision(&mut self, within: Duration) -> Option<u64> {
        let conn = self.conn.as_mut()?;
        let wait = async {
            while let Ok(Some(resp)) = conn.message().await {
                if resp.canceled() && resp.compact_revision() > 0 {
                    return u64::try_from(resp.compact_revision()).ok();
                }
            }
            None
        };
        tokio::time::timeout(within, wait).await.ok().flatten()
    }

    /// Waits before the next reconnection attempt; false when the store was dropped meanwhile.
    async fn pause(&mut self) -> bool {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(self.max_backoff);
        tokio::select! {
            _ = self.closed.changed() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// Queues the events of one response above `last`; an error for a cancelled watch.
    fn absorb(&mut self, resp: &WatchResponse) -> Result<(), StoreError> {
        if resp.canceled() {
            self.conn = None;
            if resp.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    requested: self.last,
                    oldest: u64::try_from(resp.compact_revision()).unwrap_or(0),
                });
            }
            tracing::warn!(
                revision = self.last,
                reason = resp.cancel_reason(),
                "etcd cancelled a watch; resuming"
            );
            return Ok(());
        }
        self.backoff = FIRST_BACKOFF;
        let floor = self.last;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
            if revision <= floor {
                continue;
            }
            let key = self.keys.strip(kv.key())?;
            self.buf.push_back(match ev.event_type() {
                EventType::Put => Event::Put(KeyValue {
                    key,
                    value: kv.value().to_vec(),
                    create_revision: u64::try_from(kv.create_revision()).unwrap_or(0),
                    mod_revision: revision,
                }),
                EventType::Delete => Event::Delete { key, revision },
            });
            self.last = self.last.max(revision);
        }
        Ok(())
    }
}

/// An etcd watch of `[start, end)` from revision `last` (etcd's 0 means "now": at least 1).
async fn open(
    client: &mut WatchClient,
    start: &[u8],
    end: &[u8],
    last: u64,
) -> Result<etcd_client::WatchStream, StoreError> {
    let opts = WatchOptions::new()
        .with_range(end.to_vec())
        .with_start_revision(revision_i64(last.max(1)));
    client
        .watch(start.to_vec(), Some(opts))
        .await
        .map_err(from_etcd)
}

/// One step of the stream: the next event, or the error that ends it.
pub(crate) async fn step(mut st: Resuming) -> Option<(Result<Event, StoreError>, Resuming)> {
    loop {
        if let Some(ev) = st.buf.pop_front() {
            return Some((Ok(ev), st));
        }
        if st.done {
            return None;
        }
        if st.conn.is_none() {
            let mut client = st.pool.pick().watch.clone();
            let connected = tokio::select! {
                _ = st.closed.changed() => Err(StoreError::Closed),
                r = open(&mut client, &st.start, &st.end, st.last) => r,
            };
            match connected {
                Ok(stream) => st.conn = Some(stream),
                Err(StoreError::Unavailable(reason)) => {
                    tracing::warn!(revision = st.last, %reason, "etcd watch cannot reconnect yet");
                    if !st.pause().await {
                        st.done = true;
                        return Some((Err(StoreError::Closed), st));
                    }
                    continue;
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
        let Some(conn) = st.conn.as_mut() else {
            continue;
        };
        let message = tokio::select! {
            biased;
            _ = st.closed.changed() => {
                st.done = true;
                return Some((Err(StoreError::Closed), st));
            }
            m = conn.message() => m,
        };
        match message {
            Ok(Some(resp)) => {
                if let Err(e) = st.absorb(&resp) {
                    st.done = true;
                    return Some((Err(e), st));
                }
                // Cancelled for another reason than compaction: resume, but not in a hot loop.
                if st.conn.is_none() && !st.pause().await {
                    st.done = true;
                    return Some((Err(StoreError::Closed), st));
                }
            }
            Ok(None) => {
                tracing::warn!(revision = st.last, "etcd watch stream ended; resuming");
                st.conn = None;
            }
            Err(e) if kind(&e) == Kind::Unavailable => {
                tracing::warn!(revision = st.last, error = %e, "etcd watch connection lost; resuming");
                st.conn = None;
                if !st.pause().await {
                    st.done = true;
                    return Some((Err(StoreError::Closed), st));
                }
            }
            Err(e) => {
                st.done = true;
                return Some((Err(from_etcd(e)), st));
            }
        }
    }
}
