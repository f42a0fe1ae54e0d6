//! `SqliteStore`: the embedded, durable default backend (one SQLite file, `flotilla.db`).
//!
//! Layout: `kv(key, value, create_revision, mod_revision)` holds the current state;
//! `changes(revision, seq, key, kind, value, create_revision)` holds the watch history (one row
//! per effective op, `seq` is the op's position within its revision); `meta(name, value)` holds
//! the current `revision` and the compaction floor `compacted` (history keeps every revision
//! `> compacted`).
//!
//! Writes: every transaction goes through ONE dedicated writer thread fed by a channel. The
//! writer drains whatever is queued (up to `max_batch`), evaluates each transaction's compares
//! against the state including the earlier transactions of the same batch, applies each one
//! inside its own SAVEPOINT (so a failing one is undone alone), and commits the whole batch in
//! one SQLite transaction: one fsync for many callers (group commit). Only after that commit
//! returns does it publish the batch's events to watchers and answer the callers. The database
//! runs in WAL mode with `synchronous=FULL`, so an acknowledged transaction survives `kill -9`
//! and power loss.
//!
//! Reads (`get`, `list`, history replay) use a small pool of separate read connections on the
//! blocking thread pool; in WAL mode they read a consistent snapshot and never wait behind the
//! writer's fsync. `revision()` is served from memory (updated by the writer after each commit).
//!
//! `get` answers from a bounded cache of the keys read lately ([`ReadCache`]) when it can, with
//! no thread hand-off and no SQL: the writer, the only one that changes the database, updates
//! the cached keys a batch wrote, under the cache's lock, before it publishes the batch's
//! revision and answers anyone; a read that missed caches what it read only if no batch was
//! published while it read (the revision it loaded before reading is still current). So the
//! cache never holds a value older than the last acknowledged write of its key.
//!
//! Invariants:
//! - A transaction that writes at least one change advances the revision by exactly one.
//! - The in-memory revision only moves after the commit that reached it; batches are published
//!   after the in-memory revision moved, in revision order (single writer).
//! - The writer compacts history to the last `history_revisions` revisions, and to the newest
//!   revisions whose changes (keys and values) fit in `history_bytes` (each with 10% slack so it
//!   deletes in chunks; the newest revision is always kept); a watch from before `compacted`
//!   fails with `StoreError::Compacted`. The byte bound is what keeps the file near the size of
//!   the live data when records are large and written often (a placement rewrites its
//!   instance's record): 100,000 revisions of them were most of a 732 MiB store at 20,000 tasks.
//!
//! What it is not: a multi-process store. One process opens a given directory at a time; a
//! second process writing the same file would be serialised by SQLite but its watchers and
//! in-memory revision would not see the other's writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::memory::{c_key, holds};
use crate::watch::{self, Batch, History};
use crate::{
    Event, KeyValue, Op, Page, Store, StoreError, Txn, TxnOutcome, WatchStream,
    DEFAULT_HISTORY_REVISIONS,
};

/// The database file created inside the store directory.
pub const DB_FILE: &str = "flotilla.db";

/// Bytes of change history [`SqliteOptions::default`] keeps at most.
pub const DEFAULT_HISTORY_BYTES: u64 = 256 * 1024 * 1024;

const KIND_PUT: i64 = 0;
const KIND_DELETE: i64 = 1;

/// Tuning knobs for [`SqliteStore::open_with`]; [`Default`] gives the production values.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Revisions of change history kept for watches (minimum 1).
    pub history_revisions: u64,
    /// Bytes of change history (keys and values) kept for watches at most; the newest revision
    /// is kept whatever its size.
    pub history_bytes: u64,
    /// Committed batches buffered for live watchers before a slow watcher falls back to
    /// reading history (minimum 1).
    pub watch_buffer: usize,
    /// Most transactions committed together in one group commit (minimum 1).
    pub max_batch: usize,
    /// Read connections kept open for reuse (more are opened on demand under load).
    pub read_connections: usize,
    /// Keys `get` keeps in memory (0: no cache).
    pub cached_keys: usize,
    /// Bytes of values `get` keeps in memory at most.
    pub cached_bytes: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            history_revisions: DEFAULT_HISTORY_REVISIONS,
            history_bytes: DEFAULT_HISTORY_BYTES,
            watch_buffer: 1024,
            max_batch: 1024,
            read_connections: 4,
            cached_keys: 16 * 1024,
            cached_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The SQLite-backed [`Store`]. Cloning yields another handle to the same store; the writer
/// thread stops (after finishing queued work) when the last handle is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    live: broadcast::Sender<Batch>,
    reader: Arc<Reader>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain what is queued and exit; waiting for it
        // releases the database before a reopen in the same process.
        self.requests.take();
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Request {
    Txn(Txn, Reply<TxnOutcome>),
    Compact(u64, Reply<()>),
}

fn be(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The bare message of an error, without the `StoreError` display prefix.
fn message(e: StoreError) -> String {
    match e {
        StoreError::Backend(m) => m,
        other => other.to_string(),
    }
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| be(format!("revision {v} out of range")))
}

impl SqliteStore {
    /// Opens (creating if needed) the store in directory `dir`, with default options.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(dir, SqliteOptions::default())
    }

    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open_with(dir: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| be(format!("create store directory {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let conn = open_writer(&path).map_err(|e| be(format!("open {}: {e}", path.display())))?;
        let revision = read_meta(&conn, "revision").map_err(be)?;
        let floor = read_meta(&conn, "compacted").map_err(be)?;
        let kept = KeptHistory::read(&conn).map_err(be)?;

        let (live, _) = broadcast::channel(opts.watch_buffer.max(1));
        let (tx, rx) = mpsc::channel(opts.max_batch.max(1) * 4);
        let reader = Arc::new(Reader {
            path,
            pool: Mutex::new(Vec::new()),
            keep: opts.read_connections,
            revision: AtomicU64::new(revision),
            cache: Mutex::new(ReadCache::new(opts.cached_keys, opts.cached_bytes)),
        });
        let writer = Writer {
            conn,
            rx,
            live: live.clone(),
            reader: reader.clone(),
            revision,
            floor,
            history: opts.history_revisions.max(1),
            history_bytes: opts.history_bytes,
            kept,
            max_batch: opts.max_batch.max(1),
        };
        let handle = std::thread::Builder::new()
            .name("flotilla-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| be(format!("spawn writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                requests: Some(tx),
                writer: Some(handle),
                live,
                reader,
            }),
        })
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let requests = self.inner.requests.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// WAL pages between automatic checkpoints (see [`open_writer`]): about 40 MiB of WAL.
const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(be)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(be)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(be)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(be(format!("could not enable WAL mode (got {mode})")));
    }
    // The WAL is checkpointed into the database every WRITER_CHECKPOINT_PAGES pages instead of
    // SQLite's 1,000, so a page written by many commits between two checkpoints is copied
    // once (checkpoints were a seventh of the writer's time under `flotilla bench scale`). It
    // does not change what is durable: every commit's WAL frames are synced before it is
    // acknowledged.
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES};"
    ))
    .map_err(be)?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS kv (
             key TEXT PRIMARY KEY,
             value BLOB NOT NULL,
             create_revision INTEGER NOT NULL,
             mod_revision INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS changes (
             revision INTEGER NOT NULL,
             seq INTEGER NOT NULL,
             key TEXT NOT NULL,
             kind INTEGER NOT NULL,
             value BLOB,
             create_revision INTEGER
         );
         CREATE UNIQUE INDEX IF NOT EXISTS changes_by_revision ON changes (revision, seq);
         CREATE TABLE IF NOT EXISTS meta (
             name TEXT PRIMARY KEY,
             value INTEGER NOT NULL
         );
         INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0),
             ('schema', 1);
         COMMIT;",
    )
    .map_err(be)?;
    Ok(conn)
}

fn read_meta(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        get_u64(r, 0)
    })
}

/// Reads a non-negative INTEGER column as `u64`.
fn get_u64(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

// ---------------------------------------------------------------------------------------------
// Writer

struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Request>,
    live: broadcast::Sender<Batch>,
    reader: Arc<Reader>,
    /// Committed revision and compaction floor (only updated after a successful commit).
    revision: u64,
    floor: u64,
    history: u64,
    history_bytes: u64,
    /// The size of each revision of history above `floor`.
    kept: KeptHistory,
    max_batch: usize,
}

/// The bytes (keys and values) of each revision of change history still kept, oldest first.
#[derive(Debug, Default)]
struct KeptHistory {
    revisions: std::collections::VecDeque<(u64, u64)>,
    bytes: u64,
}

impl KeptHistory {
    /// What the `changes` table holds (at open: one scan of the kept history).
    fn read(conn: &Connection) -> rusqlite::Result<KeptHistory> {
        let mut st = conn.prepare(
            "SELECT revision, SUM(LENGTH(key) + COALESCE(LENGTH(value), 0)) FROM changes
             GROUP BY revision ORDER BY revision",
        )?;
        let rows = st.query_map([], |r| Ok((get_u64(r, 0)?, get_u64(r, 1)?)))?;
        let mut kept = KeptHistory::default();
        for row in rows {
            let (rev, bytes) = row?;
            kept.push(rev, bytes);
        }
        Ok(kept)
    }

    fn push(&mut self, revision: u64, bytes: u64) {
        match self.revisions.back_mut() {
            Some((r, b)) if *r == revision => *b += bytes,
            _ => self.revisions.push_back((revision, bytes)),
        }
        self.bytes += bytes;
    }

    /// Forgets the revisions at or below `floor`.
    fn compacted(&mut self, floor: u64) {
        while let Some(&(r, b)) = self.revisions.front() {
            if r > floor {
                break;
            }
            self.revisions.pop_front();
            self.bytes -= b;
        }
    }

    /// The compaction point that brings the kept history (with `added`, a batch not yet
    /// recorded) down to `limit` bytes once it is over `limit` plus a tenth: the newest
    /// revision is never compacted. `None` while within the limit.
    fn over(&self, added: &KeptHistory, floor: u64, limit: u64) -> Option<u64> {
        if self.bytes + added.bytes <= limit.saturating_add(limit / 10) {
            return None;
        }
        let all: Vec<(u64, u64)> = self
            .revisions
            .iter()
            .chain(added.revisions.iter())
            .copied()
            .filter(|(r, _)| *r > floor)
            .collect();
        let mut total: u64 = all.iter().map(|(_, b)| b).sum();
        let newest = all.last()?.0;
        let mut to = None;
        for (r, b) in all {
            if total <= limit || r == newest {
                break;
            }
            total -= b;
            to = Some(r);
        }
        to
    }
}

/// The bytes each revision of `events` adds to the history.
fn sizes(events: &[Event]) -> KeptHistory {
    let mut kept = KeptHistory::default();
    for e in events {
        let (rev, bytes) = match e {
            Event::Put(kv) => (kv.mod_revision, kv.key.len() + kv.value.len()),
            Event::Delete { key, revision } => (*revision, key.len()),
        };
        kept.push(rev, bytes as u64);
    }
    kept
}

/// A request's result while its batch is not yet committed.
enum Pending {
    Txn(Result<TxnOutcome, StoreError>),
    Compact(Result<(), StoreError>),
}

impl Writer {
    fn run(mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        tracing::debug!("store writer exiting");
    }

    fn process(&mut self, batch: Vec<Request>) {
        let mut revision = self.revision;
        let mut floor = self.floor;
        let mut events = Vec::new();
        let mut added = KeptHistory::default();
        let committed =
            self.commit_batch(&batch, &mut revision, &mut floor, &mut events, &mut added);
        let results = match committed {
            Ok(results) => {
                self.revision = revision;
                self.floor = floor;
                for (r, b) in added.revisions {
                    self.kept.push(r, b);
                }
                self.kept.compacted(floor);
                // The cached keys this batch wrote change with the published revision, under
                // the cache's lock (see `Reader::get`).
                let mut cache = self.reader.cache.lock().unwrap_or_else(|e| e.into_inner());
                cache.apply(&events);
                self.reader.revision.store(revision, Ordering::SeqCst);
                drop(cache);
                if !events.is_empty() {
                    // No receivers is not an error.
                    let _ = self.live.send(Arc::new(events));
                }
                results
            }
            Err(e) => {
                tracing::error!(error = %e, "store batch commit failed");
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                let msg = message(e);
                batch
                    .iter()
                    .map(|req| match req {
                        Request::Txn(..) => Pending::Txn(Err(be(&msg))),
                        Request::Compact(..) => Pending::Compact(Err(be(&msg))),
                    })
                    .collect()
            }
        };
        for (req, result) in batch.into_iter().zip(results) {
            // A caller that went away is not an error: its transaction is committed anyway.
            match (req, result) {
                (Request::Txn(_, reply), Pending::Txn(r)) => {
                    let _ = reply.send(r);
                }
                (Request::Compact(_, reply), Pending::Compact(r)) => {
                    let _ = reply.send(r);
                }
                (Request::Txn(_, reply), _) => {
                    let _ = reply.send(Err(be("internal: result mismatch")));
                }
                (Request::Compact(_, reply), _) => {
                    let _ = reply.send(Err(be("internal: result mismatch")));
                }
            }
        }
    }

    /// Applies the whole batch in one SQLite transaction and commits it. Per-request failures
    /// are in the returned results; an `Err` means the batch as a whole was not committed.
    /// `added` gets the bytes each revision of the batch adds to the history.
    fn commit_batch(
        &self,
        batch: &[Request],
        revision: &mut u64,
        floor: &mut u64,
        events: &mut Vec<Event>,
        added: &mut KeptHistory,
    ) -> Result<Vec<Pending>, StoreError> {
        let conn = &self.conn;
        exec_cached(conn, "BEGIN IMMEDIATE").map_err(be)?;
        let mut results = Vec::with_capacity(batch.len());
        for req in batch {
            match req {
                Request::Txn(txn, _) => {
                    let result = apply_txn(conn, txn, revision, events);
                    // Some SQLite errors (disk full, I/O) roll back the whole transaction; then
                    // nothing of this batch is applied and every caller must hear so.
                    if result.is_err() && conn.is_autocommit() {
                        return Err(be(format!(
                            "batch rolled back by the database: {}",
                            result.err().map_or_else(String::new, message)
                        )));
                    }
                    results.push(Pending::Txn(result));
                }
                Request::Compact(to, _) => {
                    let to = (*to).min(*revision);
                    if to > *floor {
                        compact(conn, to)?;
                        *floor = to;
                    }
                    results.push(Pending::Compact(Ok(())));
                }
            }
        }
        // Automatic compaction, in chunks of ~10% of the kept history (by count or by bytes).
        let slack = (self.history / 10).max(1);
        let by_count =
            (*revision > *floor + self.history + slack).then(|| *revision - self.history);
        *added = sizes(events);
        let by_bytes = self.kept.over(added, *floor, self.history_bytes);
        if let Some(to) = by_count.max(by_bytes).filter(|to| *to > *floor) {
            compact(conn, to)?;
            *floor = to;
        }
        if *revision != self.revision {
            let rev = to_i64(*revision)?;
            conn.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")
                .and_then(|mut st| st.execute([rev]))
                .map_err(be)?;
        }
        exec_cached(conn, "COMMIT").map_err(be)?;
        Ok(results)
    }
}

/// Runs a parameterless statement through the statement cache (the writer runs these per txn).
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn compact(conn: &Connection, to: u64) -> Result<(), StoreError> {
    let to = to_i64(to)?;
    conn.prepare_cached("DELETE FROM changes WHERE revision <= ?1")
        .and_then(|mut st| st.execute([to]))
        .map_err(be)?;
    conn.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compacted'")
        .and_then(|mut st| st.execute([to]))
        .map_err(be)?;
    Ok(())
}

/// Evaluates and applies one transaction inside the open batch transaction. On success with at
/// least one effective change it advances `revision` and appends the events.
fn apply_txn(
    conn: &Connection,
    txn: &Txn,
    revision: &mut u64,
    events: &mut Vec<Event>,
) -> Result<TxnOutcome, StoreError> {
    let mut failed = Vec::new();
    {
        let mut st = conn
            .prepare_cached("SELECT mod_revision FROM kv WHERE key = ?1")
            .map_err(be)?;
        for (i, c) in txn.compares.iter().enumerate() {
            let current: Option<u64> = st
                .query_row([c_key(c)], |r| get_u64(r, 0))
                .optional()
                .map_err(be)?;
            if !holds(c, current) {
                failed.push(i);
            }
        }
    }
    if !failed.is_empty() {
        return Ok(TxnOutcome::Conflict {
            failed,
            revision: *revision,
        });
    }
    if txn.ops.is_empty() {
        return Ok(TxnOutcome::Committed {
            revision: *revision,
        });
    }
    let new_rev = *revision + 1;
    exec_cached(conn, "SAVEPOINT txn").map_err(be)?;
    match apply_ops(conn, &txn.ops, new_rev) {
        Ok(evs) => {
            if let Err(e) = exec_cached(conn, "RELEASE txn") {
                // Cannot close this transaction alone: abandon the whole batch.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(be(e));
            }
            if !evs.is_empty() {
                *revision = new_rev;
                events.extend(evs);
            }
            Ok(TxnOutcome::Committed {
                revision: *revision,
            })
        }
        Err(e) => {
            if conn.execute_batch("ROLLBACK TO txn; RELEASE txn").is_err() {
                // Cannot undo this transaction alone: abandon the whole batch.
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e)
        }
    }
}

fn apply_ops(conn: &Connection, ops: &[Op], rev: u64) -> Result<Vec<Event>, StoreError> {
    let rev_i = to_i64(rev)?;
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                 mod_revision = excluded.mod_revision
             RETURNING create_revision",
        )
        .map_err(be)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM kv WHERE key = ?1")
        .map_err(be)?;
    let mut record = conn
        .prepare_cached(
            "INSERT INTO changes (revision, seq, key, kind, value, create_revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(be)?;
    let mut events = Vec::new();
    for op in ops {
        let seq = events.len() as i64;
        match op {
            Op::Put(key, value) => {
                let create: u64 = upsert
                    .query_row(params![key, value, rev_i], |r| get_u64(r, 0))
                    .map_err(be)?;
                let create_i = to_i64(create)?;
                record
                    .execute(params![rev_i, seq, key, KIND_PUT, value, create_i])
                    .map_err(be)?;
                events.push(Event::Put(KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: create,
                    mod_revision: rev,
                }));
            }
            Op::Delete(key) => {
                if delete.execute([key]).map_err(be)? > 0 {
                    record
                        .execute(params![
                            rev_i,
                            seq,
                            key,
                            KIND_DELETE,
                            None::<Vec<u8>>,
                            None::<i64>
                        ])
                        .map_err(be)?;
                    events.push(Event::Delete {
                        key: key.clone(),
                        revision: rev,
                    });
                }
            }
        }
    }
    Ok(events)
}

// ---------------------------------------------------------------------------------------------
// Readers

struct Reader {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    keep: usize,
    /// The last committed revision, published by the writer after each commit (with the
    /// cache's lock held).
    revision: AtomicU64,
    /// The keys read lately, as of `revision`.
    cache: Mutex<ReadCache>,
}

/// The values of the keys read or written lately (`None`: the key is absent), as of the
/// published revision, in two generations: new entries go to the young one, and when it holds
/// half the bounds (keys or bytes) it becomes the old one and the old one is dropped, so the
/// cache holds at most the bounds and what was touched last stays.
///
/// Written keys are cached too (the writer puts every committed value in): the control plane
/// reads back what it just wrote (an agent's report reads the task record placement wrote a
/// moment before), and each such read would otherwise go to SQLite on the blocking pool.
struct ReadCache {
    young: Generation,
    old: Generation,
    max_keys: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Generation {
    entries: std::collections::HashMap<String, Option<KeyValue>>,
    bytes: usize,
}

impl Generation {
    fn remove(&mut self, key: &str) -> Option<Option<KeyValue>> {
        let old = self.entries.remove(key)?;
        self.bytes -= ReadCache::size(key, &old);
        Some(old)
    }
}

impl ReadCache {
    fn new(max_keys: usize, max_bytes: usize) -> Self {
        ReadCache {
            young: Generation::default(),
            old: Generation::default(),
            max_keys,
            max_bytes,
        }
    }

    fn size(key: &str, value: &Option<KeyValue>) -> usize {
        key.len() + value.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len())
    }

    fn get(&self, key: &str) -> Option<Option<KeyValue>> {
        self.young
            .entries
            .get(key)
            .or_else(|| self.old.entries.get(key))
            .cloned()
    }

    fn holds(&self, key: &str) -> bool {
        self.young.entries.contains_key(key) || self.old.entries.contains_key(key)
    }

    /// Caches `value` as `key`'s (in the young generation, which turns old when full).
    fn insert(&mut self, key: &str, value: Option<KeyValue>) {
        let size = Self::size(key, &value);
        if self.max_keys == 0 || size > self.max_bytes / 2 {
            self.forget(key);
            return;
        }
        self.old.remove(key);
        self.young.remove(key);
        let full = (self.young.entries.len() + 1).saturating_mul(2) > self.max_keys
            || (self.young.bytes + size).saturating_mul(2) > self.max_bytes;
        if full {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.entries.insert(key.to_string(), value);
        self.young.bytes += size;
    }

    fn forget(&mut self, key: &str) {
        self.young.remove(key);
        self.old.remove(key);
    }

    /// A committed batch's changes: every key it put takes its new value; a deleted key that
    /// is cached reads as absent.
    fn apply(&mut self, events: &[Event]) {
        for event in events {
            match event {
                Event::Put(kv) => self.insert(&kv.key, Some(kv.clone())),
                Event::Delete { key, .. } => {
                    if self.holds(key) {
                        self.insert(key, None);
                    }
                }
            }
        }
    }
}

impl Reader {
    fn open_conn(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path).map_err(be)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(be)?;
        conn.execute_batch("PRAGMA query_only=ON").map_err(be)?;
        Ok(conn)
    }

    /// Runs `f` on a pooled read connection on the blocking thread pool.
    async fn with<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = this.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => this.open_conn()?,
            };
            let result = f(&mut conn);
            // A connection that failed may be in a bad state (e.g. an open transaction).
            if result.is_ok() && conn.is_autocommit() {
                let mut pool = this.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < this.keep {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(be)?
    }
}

fn row_to_kv(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: r.get(0)?,
        value: r.get(1)?,
        create_revision: get_u64(r, 2)?,
        mod_revision: get_u64(r, 3)?,
    })
}

/// The [`History`] view of the store handed to watch streams.
struct ReaderHistory(Arc<Reader>);

#[async_trait]
impl History for ReaderHistory {
    async fn current_revision(&self) -> Result<u64, StoreError> {
        Ok(self.0.revision.load(Ordering::SeqCst))
    }

    async fn changes(&self, prefix: &str, after: u64, upto: u64) -> Result<Vec<Event>, StoreError> {
        let prefix = prefix.to_owned();
        self.0
            .with(move |conn| read_changes(conn, &prefix, after, upto))
            .await
    }
}

fn read_changes(
    conn: &mut Connection,
    prefix: &str,
    after: u64,
    upto: u64,
) -> Result<Vec<Event>, StoreError> {
    let tx = conn.transaction().map_err(be)?;
    let floor = read_meta(&tx, "compacted").map_err(be)?;
    if after < floor {
        return Err(StoreError::Compacted {
            requested: after,
            oldest: floor,
        });
    }
    let mut events = Vec::new();
    if upto > after {
        let mut st = tx
            .prepare_cached(
                "SELECT revision, key, kind, value, create_revision FROM changes
                 WHERE revision > ?1 AND revision <= ?2 ORDER BY revision, seq",
            )
            .map_err(be)?;
        let mut rows = st
            .query(params![to_i64(after)?, to_i64(upto)?])
            .map_err(be)?;
        while let Some(r) = rows.next().map_err(be)? {
            let key: String = r.get(1).map_err(be)?;
            if !key.starts_with(prefix) {
                continue;
            }
            let revision = get_u64(r, 0).map_err(be)?;
            let kind: i64 = r.get(2).map_err(be)?;
            if kind == KIND_DELETE {
                events.push(Event::Delete { key, revision });
            } else {
                events.push(Event::Put(KeyValue {
                    key,
                    value: r.get(3).map_err(be)?,
                    create_revision: get_u64(r, 4).map_err(be)?,
                    mod_revision: revision,
                }));
            }
        }
    }
    tx.commit().map_err(be)?;
    Ok(events)
}

fn read_page(
    conn: &mut Connection,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Page, StoreError> {
    let tx = conn.transaction().map_err(be)?;
    let revision = read_meta(&tx, "revision").map_err(be)?;
    let (sql, lower) = match start_after {
        Some(after) if after >= prefix => (
            "SELECT key, value, create_revision, mod_revision FROM kv WHERE key > ?1 ORDER BY key",
            after,
        ),
        _ => (
            "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ?1 ORDER BY key",
            prefix,
        ),
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    let mut items = Vec::new();
    let mut more = false;
    {
        let mut st = tx.prepare_cached(sql).map_err(be)?;
        let mut rows = st.query([lower]).map_err(be)?;
        while let Some(r) = rows.next().map_err(be)? {
            let kv = row_to_kv(r).map_err(be)?;
            if !kv.key.starts_with(prefix) {
                break;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(kv);
        }
    }
    tx.commit().map_err(be)?;
    Ok(Page {
        items,
        more,
        revision,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let reader = &self.inner.reader;
        if let Some(hit) = reader
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Ok(hit);
        }
        // Loaded before reading: if a batch is published while this reads, what it read may be
        // older than that batch, so it is not cached.
        let before = reader.revision.load(Ordering::SeqCst);
        let owned = key.to_owned();
        let read = reader
            .with(move |conn| {
                conn.prepare_cached(
                    "SELECT key, value, create_revision, mod_revision FROM kv WHERE key = ?1",
                )
                .and_then(|mut st| st.query_row([&owned], row_to_kv).optional())
                .map_err(be)
            })
            .await?;
        let mut cache = reader.cache.lock().unwrap_or_else(|e| e.into_inner());
        if reader.revision.load(Ordering::SeqCst) == before {
            cache.insert(key, read.clone());
        }
        Ok(read)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        self.inner
            .reader
            .with(move |conn| read_page(conn, &prefix, start_after.as_deref(), limit))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        self.request(|reply| Request::Txn(txn, reply)).await
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.inner.reader.revision.load(Ordering::SeqCst))
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        let history: Arc<dyn History> = Arc::new(ReaderHistory(self.inner.reader.clone()));
        watch::watch(history, &self.inner.live, prefix, after_revision).await
    }

    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        self.request(|reply| Request::Compact(revision, reply))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, rev: u64) -> Event {
        Event::Put(KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: rev,
            mod_revision: rev,
        })
    }

    /// Written keys are cached with their new values, deleted ones read as absent, and the two
    /// generations keep the cache within its bounds while what was touched last stays.
    #[test]
    fn the_read_cache_takes_writes_and_keeps_its_bounds() {
        let mut c = ReadCache::new(8, 1 << 20);
        c.apply(&[put("a", "1", 1), put("b", "1", 1)]);
        assert_eq!(c.get("a").flatten().map(|kv| kv.value), Some(b"1".to_vec()));
        c.apply(&[
            put("a", "2", 2),
            Event::Delete {
                key: "b".into(),
                revision: 2,
            },
        ]);
        assert_eq!(c.get("a").flatten().map(|kv| kv.mod_revision), Some(2));
        assert_eq!(c.get("b"), Some(None), "deleted: absent, from the cache");
        // A delete of a key it never held caches nothing.
        c.apply(&[Event::Delete {
            key: "z".into(),
            revision: 3,
        }]);
        assert_eq!(c.get("z"), None);
        for n in 0..100 {
            c.apply(&[put(&format!("k{n}"), "v", 10 + n)]);
            let held = c.young.entries.len() + c.old.entries.len();
            assert!(held <= 8, "{held} keys held");
            assert!(
                c.get(&format!("k{n}")).is_some(),
                "the last written is held"
            );
        }
        assert_eq!(c.get("a"), None, "long untouched: dropped");
        // Bytes bound the generations too.
        let mut c = ReadCache::new(1000, 64);
        for n in 0..50 {
            c.apply(&[put(&format!("k{n}"), "0123456789", n)]);
            assert!(c.young.bytes + c.old.bytes <= 64);
        }
        // A value larger than half the bound is never cached, and drops what was there.
        c.apply(&[put("k49", &"x".repeat(40), 60)]);
        assert_eq!(c.get("k49"), None);
    }

    fn kept(revs: &[(u64, u64)]) -> KeptHistory {
        let mut k = KeptHistory::default();
        for &(r, b) in revs {
            k.push(r, b);
        }
        k
    }

    #[test]
    fn history_within_its_bytes_and_slack_is_kept() {
        let k = kept(&[(1, 50), (2, 50)]);
        assert_eq!(k.over(&kept(&[(3, 9)]), 0, 100), None);
    }

    #[test]
    fn history_over_its_bytes_is_compacted_to_the_limit_oldest_first() {
        let k = kept(&[(1, 40), (2, 40), (3, 40)]);
        // 160 bytes with the batch: dropping 1 and 2 gets to 80 <= 100.
        assert_eq!(k.over(&kept(&[(4, 40)]), 0, 100), Some(2));
        // Revisions at or below the floor no longer count.
        assert_eq!(k.over(&kept(&[(4, 40)]), 1, 100), Some(2));
    }

    #[test]
    fn the_newest_revision_is_kept_whatever_its_size() {
        let k = kept(&[(1, 10)]);
        assert_eq!(k.over(&kept(&[(2, 1_000)]), 0, 100), Some(1));
        assert_eq!(kept(&[]).over(&kept(&[(1, 1_000)]), 0, 100), None);
    }

    #[test]
    fn pushes_of_one_revision_add_up_and_compaction_forgets_them() {
        let mut k = kept(&[(1, 10), (1, 5), (2, 7)]);
        assert_eq!(k.revisions, [(1, 15), (2, 7)]);
        assert_eq!(k.bytes, 22);
        k.compacted(1);
        assert_eq!(k.bytes, 7);
        k.compacted(5);
        assert_eq!((k.bytes, k.revisions.len()), (0, 0));
    }
}
