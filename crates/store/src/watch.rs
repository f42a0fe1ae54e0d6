//! Watch streams shared by every backend: replay from history, then follow live batches.
//!
//! A backend provides two things: a [`History`] (the kept change log plus the current revision)
//! and a `tokio::sync::broadcast` channel on which it publishes, after each commit and in
//! revision order, the events of that commit as one [`Batch`].
//!
//! Invariants the backend must uphold:
//! - A batch is published only after its changes are visible through [`History`] and
//!   [`History::current_revision`].
//! - Batches are published in strictly increasing revision order, never empty.
//!
//! Given those, [`watch`] delivers every matching change with a revision greater than
//! `after_revision` exactly once, in revision order: it subscribes to the live channel *before*
//! reading the current revision `H`, replays `(after, H]` from history in chunks, and then skips
//! every live event at or below the last revision it delivered. When the receiver lags (the
//! broadcast buffer overflowed) it re-subscribes and recovers the missed range from history; if
//! that range was compacted meanwhile, the stream ends with [`StoreError::Compacted`]. It never
//! skips silently.
//!
//! This module is not a backend and keeps no state of its own beyond each stream.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::{Event, StoreError, WatchStream};

/// The events of one or more consecutive committed revisions, ascending by revision.
pub(crate) type Batch = Arc<Vec<Event>>;

/// How many revisions one history read covers while replaying.
const REPLAY_CHUNK: u64 = 1024;

/// Read access to a backend's change history.
#[async_trait]
pub(crate) trait History: Send + Sync + 'static {
    /// The current store revision; every change at or below it is readable via
    /// [`History::changes`] (unless compacted).
    async fn current_revision(&self) -> Result<u64, StoreError>;

    /// Events under `prefix` with `after < revision <= upto`, in revision order (and in op order
    /// within a revision). Fails with [`StoreError::Compacted`] when `after` is below the
    /// compaction floor.
    async fn changes(&self, prefix: &str, after: u64, upto: u64) -> Result<Vec<Event>, StoreError>;
}

struct State {
    history: Arc<dyn History>,
    rx: broadcast::Receiver<Batch>,
    prefix: String,
    /// Every matching event with a revision <= `last` has been queued or delivered.
    last: u64,
    /// Replay from history until `last` reaches this revision, then go live.
    upto: u64,
    buf: VecDeque<Event>,
    done: bool,
}

/// Opens a watch stream; see the module docs for the guarantees.
pub(crate) async fn watch(
    history: Arc<dyn History>,
    live: &broadcast::Sender<Batch>,
    prefix: &str,
    after_revision: u64,
) -> Result<WatchStream, StoreError> {
    // Subscribe first: every batch published after this point reaches `rx`, and every batch
    // published before it is at or below the revision read next.
    let rx = live.subscribe();
    let current = history.current_revision().await?;
    // Validate the start eagerly so that a compacted start fails the call, not the stream.
    history
        .changes(prefix, after_revision, after_revision)
        .await?;
    let state = State {
        history,
        rx,
        prefix: prefix.to_owned(),
        last: after_revision,
        upto: current,
        buf: VecDeque::new(),
        done: false,
    };
    Ok(futures::stream::unfold(state, step).boxed())
}

async fn step(mut st: State) -> Option<(Result<Event, StoreError>, State)> {
    loop {
        if let Some(ev) = st.buf.pop_front() {
            return Some((Ok(ev), st));
        }
        if st.done {
            return None;
        }
        if st.last < st.upto {
            let end = st.upto.min(st.last.saturating_add(REPLAY_CHUNK));
            match st.history.changes(&st.prefix, st.last, end).await {
                Ok(events) => {
                    st.buf.extend(events);
                    st.last = end;
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
            continue;
        }
        match st.rx.recv().await {
            Ok(batch) => {
                let mut max = st.last;
                for ev in batch.iter() {
                    let rev = ev.revision();
                    if rev > st.last && ev.key().starts_with(&st.prefix) {
                        st.buf.push_back(ev.clone());
                    }
                    max = max.max(rev);
                }
                st.last = max;
                st.upto = max;
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    last = st.last,
                    "watch lagged; recovering from history"
                );
                st.rx = st.rx.resubscribe();
                match st.history.current_revision().await {
                    Ok(rev) => st.upto = rev,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
            Err(RecvError::Closed) => {
                st.done = true;
                return Some((Err(StoreError::Closed), st));
            }
        }
    }
}
