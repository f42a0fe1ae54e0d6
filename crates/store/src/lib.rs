//! The Store: Flotilla's only durable state.
//!
//! The control plane keeps every ECS object (clusters, task definitions, tasks, services, ...) as
//! a value under a string key. The contract follows etcd's data model on purpose, so that the
//! embedded backend and an etcd backend are interchangeable without touching any caller:
//!
//! - The store has one global, monotonically increasing **revision**. Every committed transaction
//!   that changes something advances it by exactly one. (On etcd the revision is shared by every
//!   installation on the cluster, so there it advances by *at least* one and an empty store may
//!   start above 0; see [`etcd`].)
//! - Each key remembers the revision that created it (`create_revision`) and the revision that last
//!   modified it (`mod_revision`). `mod_revision` is the object's version for compare-and-swap.
//! - A [`Txn`] is a list of [`Compare`]s and a list of [`Op`]s. It commits all ops atomically if
//!   and only if every compare holds; otherwise nothing is written and the outcome says so.
//! - [`Store::watch`] streams every change under a prefix, in revision order, starting after a
//!   given revision, so a controller can list at revision N and then watch from N without a gap.
//! - A transaction the store acknowledged (returned `Ok(TxnOutcome::Committed)`) is durable: it
//!   survives `kill -9` of the process.
//!
//! What this crate deliberately is not: it knows nothing about ECS. Keys and values are opaque
//! (values are bytes, in practice JSON written by the callers).
//!
//! Backends: [`MemoryStore`] (in-process, the reference behaviour, for tests), [`SqliteStore`]
//! (the embedded, durable default) and [`EtcdStore`] (an etcd cluster, for several replicas).
//! All keep a bounded watch history ([`DEFAULT_HISTORY_REVISIONS`] revisions by default);
//! watching from before the oldest kept revision fails with [`StoreError::Compacted`]. A caller
//! that gets `Compacted` resyncs: it lists afresh (getting the list's revision N) and watches
//! from N. [`StoreUrl`] and [`open`] choose a backend from a URL; [`open_replica`] also gives
//! the backend's leader [`Election`] (see [`election`]).
//!
//! ```
//! use flotilla_store::{Compare, MemoryStore, Store, Txn, TxnOutcome};
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), flotilla_store::StoreError> {
//! let store = MemoryStore::new();
//! // Create-if-absent, then compare-and-swap on the version just read.
//! let create = Txn::new()
//!     .when(Compare::Absent("clusters/default".into()))
//!     .put("clusters/default", b"{}".to_vec());
//! assert_eq!(store.txn(create).await?, TxnOutcome::Committed { revision: 1 });
//! let kv = store.get("clusters/default").await?.expect("just created");
//! let update = Txn::new()
//!     .when(Compare::ModRevision(kv.key.clone(), kv.mod_revision))
//!     .put(kv.key, br#"{"status":"ACTIVE"}"#.to_vec());
//! assert!(store.txn(update).await?.is_committed());
//!
//! // List at a revision, then watch from exactly that revision: no gap.
//! let page = store.list("clusters/", None, 100).await?;
//! let mut changes = store.watch("clusters/", page.revision).await?;
//! store.txn(Txn::new().delete("clusters/default")).await?;
//! let event = changes.next().await.expect("stream open")?;
//! assert_eq!((event.key(), event.revision()), ("clusters/default", 3));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

use async_trait::async_trait;

pub mod cas;
pub mod election;
pub mod etcd;
pub mod memory;
pub mod sqlite;
pub mod topology;
mod url;
mod watch;

pub use election::{Election, Fence, Leader, LostReason, SoleLeader, Term};
pub use etcd::EtcdStore;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;
pub use topology::{Embedded, Member, Topology};
pub use url::{open, open_replica, InvalidStoreUrl, StoreUrl};

/// How many revisions of change history the backends keep for watches by default.
pub const DEFAULT_HISTORY_REVISIONS: u64 = 100_000;
use futures::stream::BoxStream;

/// One stored key with its value and versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The revision of the transaction that created this key (since its last deletion).
    pub create_revision: u64,
    /// The revision of the transaction that last wrote this key; the version used by
    /// [`Compare::ModRevision`].
    pub mod_revision: u64,
}

/// A condition a transaction checks before it applies its ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key must not exist.
    Absent(String),
    /// The key must exist (any version).
    Present(String),
    /// The key must exist with exactly this `mod_revision`.
    ModRevision(String, u64),
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or overwrite the key.
    Put(String, Vec<u8>),
    /// Delete the key if it exists (deleting an absent key is not an error).
    Delete(String),
}

/// A multi-object compare-and-swap transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// All must hold for the ops to be applied.
    pub compares: Vec<Compare>,
    /// Applied atomically, in order, if every compare holds. Several ops on one key leave the
    /// state of applying them in order, but a backend may coalesce them to the last one (etcd
    /// refuses a key twice in one transaction): only that one's event is then certain, and a
    /// put then delete of an absent key may not advance the revision.
    pub ops: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a compare.
    pub fn when(mut self, c: Compare) -> Self {
        self.compares.push(c);
        self
    }
    /// Adds a put.
    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.ops.push(Op::Put(key.into(), value));
        self
    }
    /// Adds a delete.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }
}

/// What happened to a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held and the ops are durable at this revision. A transaction with no ops
    /// (or whose deletes found nothing) commits at the current revision without advancing it.
    Committed {
        /// The store revision after the commit.
        revision: u64,
    },
    /// At least one compare failed; nothing was written.
    Conflict {
        /// Indexes into `Txn::compares` of the compares that failed.
        failed: Vec<usize>,
        /// The store revision at which the compares were evaluated.
        revision: u64,
    },
}

impl TxnOutcome {
    /// True when the transaction committed.
    pub fn is_committed(&self) -> bool {
        matches!(self, TxnOutcome::Committed { .. })
    }
}

/// A page of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Keys in ascending byte order.
    pub items: Vec<KeyValue>,
    /// True when more keys under the prefix follow the last returned one.
    pub more: bool,
    /// The store revision the page was read at.
    pub revision: u64,
}

/// One change delivered by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created or overwritten; carries the new value and versions.
    Put(KeyValue),
    /// The key was deleted at `revision`.
    Delete {
        /// The deleted key.
        key: String,
        /// The revision of the deleting transaction.
        revision: u64,
    },
}

impl Event {
    /// The key this event is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put(kv) => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }
    /// The revision at which the change happened.
    pub fn revision(&self) -> u64 {
        match self {
            Event::Put(kv) => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
}

/// Errors of the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, database error, connection lost). The operation may or may not
    /// have been applied only if it was a write whose acknowledgement was lost.
    #[error("store backend error: {0}")]
    Backend(String),
    /// A watch asked for history the store no longer keeps.
    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still available to watch from.
        oldest: u64,
    },
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// The store cannot be reached: no member answers, the cluster has no leader, or the
    /// request timed out. A write that fails so may or may not have been applied.
    #[error("store unreachable: {0}")]
    Unavailable(String),
    /// The request is over the store's size limit and was not sent.
    #[error("request of up to {size} bytes is over the store's limit of {limit} bytes; write smaller values or fewer keys per transaction")]
    TooLarge {
        /// An upper bound of the request's size, in bytes.
        size: usize,
        /// The store's limit, in bytes.
        limit: usize,
    },
}

/// A stream of watch events; ends with an error if the watch cannot continue (for example the
/// watcher fell too far behind and the history it needs was compacted).
pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

/// The storage contract every backend implements. See the module docs for the semantics.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Reads up to `limit` keys that start with `prefix` and sort strictly after `start_after`
    /// (when given), in ascending byte order. `limit == 0` means no limit (as in etcd). The page
    /// is a consistent snapshot at `Page::revision`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Applies a transaction atomically and durably, or reports which compares failed.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;

    /// The current store revision.
    async fn revision(&self) -> Result<u64, StoreError>;

    /// Streams every change under `prefix` with a revision greater than `after_revision`,
    /// in revision order, first from history and then live. A transaction yields one event per
    /// op that changed something (a delete of an absent key yields none), in op order, all at
    /// its revision.
    ///
    /// Fails with [`StoreError::Compacted`] when `after_revision` is older than the kept history
    /// (`oldest` is then the smallest `after_revision` that would be accepted). A revision in the
    /// future is allowed: the stream then starts with the first change after it. The stream ends
    /// with [`StoreError::Closed`] when the store is dropped, and with an error (never a silent
    /// gap) when it cannot continue.
    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError>;

    /// Discards watch history up to and including `revision` (clamped to the current revision),
    /// so that later watches need `after_revision >= revision`. Backends also compact on their
    /// own to keep history bounded. The default implementation keeps everything.
    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let _ = revision;
        Ok(())
    }
}
