//! `EtcdStore`: the [`Store`] on an etcd 3.4+ cluster, for several control-plane replicas.
//!
//! The trait was modelled on etcd, so the mapping is direct:
//! - **Revisions are etcd's revisions**, unchanged. etcd's revision is cluster-wide: writes of
//!   other installations (other key prefixes) on the same cluster advance it too, so on etcd a
//!   writing transaction advances the revision by *at least* one, and a fresh cluster starts at
//!   revision 1 (the first write is 2). Everything else of the contract holds as stated.
//! - **Keys** live under one prefix per installation, `/<path>/` from
//!   `etcd://h1:2379,h2:2379/<path>` ([`EtcdConfig`]); keys outside it are never read or written.
//! - **Transactions** are one etcd `Txn` each (compares on `mod_revision`/`version`, all puts
//!   and deletes in the success branch), translated by `txn.rs`. etcd acknowledges a write
//!   once a quorum has it in its fsynced log, which is the "acknowledged means durable" clause.
//! - **Watches** are etcd watches from the requested revision, resumed after a dropped
//!   connection from the last delivered revision (`watch.rs`). A start revision older than the
//!   last compaction fails with [`StoreError::Compacted`] (from `watch`, or later from the
//!   stream); the caller then lists afresh and watches from the list's revision.
//! - **Compaction** is etcd's (cluster-wide, shared by every installation on the cluster). The
//!   store compacts on its own to keep [`EtcdOptions::history_revisions`] revisions, as the
//!   embedded backends do, unless that option is `None` (when the cluster's own
//!   `--auto-compaction-*` settings are in charge).
//! - **Limits**: a transaction whose encoded size may exceed [`EtcdOptions::max_request_bytes`]
//!   (etcd's `--max-request-bytes`, 1.5 MiB by default) is refused with
//!   [`StoreError::TooLarge`] before it is sent. A cluster that cannot answer (no member
//!   reachable, no leader, a timeout) gives [`StoreError::Unavailable`]; a write that failed so
//!   may or may not have been applied.
//!
//! Requests carry etcd's "require leader" flag, so a member that lost its leader (cut off from
//! the others) refuses them at once and ends its watches, which then resume elsewhere.
//!
//! **One bad member** (cut off, frozen) does not fail requests: each member has its own
//! connection, requests go to a healthy one and are retried on another when a member does not
//! answer within [`EtcdOptions::attempt_timeout`] (`pool.rs`). Reads, lease renewals and
//! compaction are retried after any such failure. A transaction is retried after a failure
//! that proves it was not applied (connect error, "no leader"), and after any failure when it
//! is *self-fencing*: one of its compares cannot hold once it has been applied (`Absent(k)`
//! with a final put of `k`, `Present(k)` with a final delete of `k`, `ModRevision(k, _)` with
//! any op on `k`), so a repeat can never apply it twice. If such a retry then finds a conflict,
//! the earlier attempt may be the write that made it, so the store reports
//! [`StoreError::Unavailable`] (outcome unknown), never a conflict. Other transactions fail as
//! `Unavailable` after an ambiguous failure, as before.
//!
//! What it is not: a cache. Every read is a linearizable etcd read (a round trip to the
//! leader); callers still retry conflicts and errors.

mod config;
mod election;
mod error;
mod pool;
mod txn;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{ConnectOptions, GetOptions, PutOptions, TxnOpResponse};
use futures::StreamExt;
use tokio::sync::watch as signal;

pub use config::{EtcdConfig, InvalidEtcdUrl, DEFAULT_CLIENT_PORT};
pub use election::{ElectionOptions, EtcdElection, LEADER_KEY};

use self::error::{from_etcd, kind, Kind};
use self::pool::{Pool, Retry};
use self::txn::{failed_compares, revision_i64, translate};
use crate::{
    KeyValue, Page, Store, StoreError, Txn, TxnOutcome, WatchStream, DEFAULT_HISTORY_REVISIONS,
};

/// How long a replica's record outlives it (its lease's TTL).
pub const ANNOUNCE_TTL: Duration = Duration::from_secs(9);

#[async_trait]
impl crate::Topology for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn shared(&self) -> bool {
        true
    }

    fn announce(&self, key: String, value: Vec<u8>) -> Option<tokio::task::JoinHandle<()>> {
        Some(tokio::spawn(self.clone().keep_announced(key, value)))
    }

    async fn members(&self) -> Result<Option<Vec<crate::Member>>, StoreError> {
        let resp = self
            .inner
            .pool
            .read(|m| {
                let mut c = m.cluster.clone();
                async move { c.member_list().await }
            })
            .await
            .map_err(from_etcd)?;
        Ok(Some(
            resp.members()
                .iter()
                .map(|m| crate::Member {
                    name: m.name().to_owned(),
                    client_urls: m.client_urls().to_vec(),
                })
                .collect(),
        ))
    }
}

/// etcd's default `--max-request-bytes`.
pub const ETCD_DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Largest response the client accepts (a `list` with no limit of a big prefix).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// How long `watch` waits for etcd to name its compaction revision after refusing a start.
const COMPACT_REVISION_WAIT: Duration = Duration::from_secs(5);

/// Tuning knobs for [`EtcdStore::connect`]; [`Default`] gives the production values.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Longest wait for one request's answer (over every member tried) before it fails with
    /// [`StoreError::Unavailable`].
    pub request_timeout: Duration,
    /// Longest wait for one member's answer to a request that may be retried on another
    /// member (see the module documentation); also the health probe's timeout.
    pub attempt_timeout: Duration,
    /// Longest wait for a TCP connection to a member.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval and timeout: how fast a silent member (stopped, cut off)
    /// is noticed by open watches.
    pub keep_alive: (Duration, Duration),
    /// The cluster's `--max-request-bytes`; larger transactions are refused before sending.
    pub max_request_bytes: usize,
    /// Revisions of history the store keeps by compacting etcd itself (`None`: never compact,
    /// leave it to the cluster's `--auto-compaction-*`).
    pub history_revisions: Option<u64>,
    /// Longest pause between attempts to resume a broken watch.
    pub watch_backoff_max: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            request_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            keep_alive: (Duration::from_secs(2), Duration::from_secs(3)),
            max_request_bytes: ETCD_DEFAULT_MAX_REQUEST_BYTES,
            history_revisions: Some(DEFAULT_HISTORY_REVISIONS),
            watch_backoff_max: Duration::from_secs(1),
        }
    }
}

/// The installation's key prefix: Flotilla keys to etcd keys and back.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    fn full(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    /// The etcd key range of every key starting with `prefix`.
    fn range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.full(prefix);
        let end = range_end(&start);
        (start, end)
    }

    /// A Flotilla key from an etcd key of this installation.
    fn strip(&self, key: &[u8]) -> Result<String, StoreError> {
        key.strip_prefix(self.prefix.as_bytes())
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "etcd returned key {:?} outside the prefix {:?} or not UTF-8",
                    String::from_utf8_lossy(key),
                    self.prefix
                ))
            })
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: self.strip(kv.key())?,
            value: kv.value().to_vec(),
            create_revision: revision_u64(kv.create_revision()),
            mod_revision: revision_u64(kv.mod_revision()),
        })
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's `range_end`).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (never for an installation prefix, which starts with '/'): to the end.
    vec![0]
}

fn revision_u64(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

/// An etcd-backed [`Store`]. Cloning yields another handle to the same connection.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Arc<Pool>,
    keys: Keys,
    config: EtcdConfig,
    opts: EtcdOptions,
    /// The highest revision this handle has compacted etcd to.
    compacted_to: AtomicU64,
    /// Dropped with the last handle: open watch streams then end with `Closed`.
    closed: signal::Sender<()>,
}

impl EtcdStore {
    /// Connects to the cluster of `config`. Connections are made lazily: this fails only for
    /// an unusable configuration, and an unreachable cluster shows as
    /// [`StoreError::Unavailable`] on the first request.
    pub async fn connect(config: EtcdConfig, opts: EtcdOptions) -> Result<Self, StoreError> {
        let connect = ConnectOptions::new()
            .with_timeout(opts.request_timeout)
            .with_connect_timeout(opts.connect_timeout)
            .with_keep_alive(opts.keep_alive.0, opts.keep_alive.1)
            .with_keep_alive_while_idle(true)
            // A member cut off from its cluster is alive and answers pings, but a watch on it
            // would hang silently: with this, it ends the watch ("no leader") and the watch
            // resumes on another member; reads and writes on it fail fast as `Unavailable`.
            .with_require_leader(true);
        let (closed, _) = signal::channel(());
        let pool = Pool::connect(
            &config.endpoints,
            &connect,
            MAX_RESPONSE_BYTES,
            opts.attempt_timeout,
            opts.request_timeout,
            closed.subscribe(),
        )
        .await
        .map_err(from_etcd)?;
        Ok(EtcdStore {
            inner: Arc::new(Inner {
                pool,
                keys: Keys {
                    prefix: config.key_prefix(),
                },
                config,
                opts,
                compacted_to: AtomicU64::new(0),
                closed,
            }),
        })
    }

    /// The cluster and installation this store talks to.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The leader election of this installation, for the replica named `id` (its value in the
    /// leader key, shown to whoever asks who leads), on this store's connection.
    pub fn election(&self, id: impl Into<String>, opts: ElectionOptions) -> EtcdElection {
        EtcdElection::new(
            self.inner.pool.clone(),
            self.inner.keys.clone(),
            id.into(),
            opts,
        )
    }

    fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Keeps `key` = `value` on a lease of [`ANNOUNCE_TTL`] renewed every third of it; after a
    /// failure, a fresh lease a second later.
    async fn keep_announced(self, key: String, value: Vec<u8>) {
        let ttl = ANNOUNCE_TTL.as_secs();
        loop {
            if let Err(e) = self.announce_once(&key, &value, ttl).await {
                tracing::debug!(key, error = %e, "announcing this replica failed; retrying");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One lease: granted, the key put on it, renewed until a renewal fails. Every request
    /// goes to a healthy member (a repeated grant leaves an unused lease that expires; a
    /// repeated put writes the same value).
    async fn announce_once(
        &self,
        key: &str,
        value: &[u8],
        ttl: u64,
    ) -> Result<(), etcd_client::Error> {
        let ttl_i = i64::try_from(ttl).unwrap_or(10);
        let id = self
            .pool()
            .read(|m| {
                let mut l = m.lease.clone();
                async move { l.grant(ttl_i, None).await }
            })
            .await?
            .id();
        let full = self.inner.keys.full(key);
        self.pool()
            .read(|m| {
                let mut kv = m.kv.clone();
                let (k, v) = (full.clone(), value.to_vec());
                async move { kv.put(k, v, Some(PutOptions::new().with_lease(id))).await }
            })
            .await?;
        loop {
            tokio::time::sleep(Duration::from_secs(ttl / 3)).await;
            let renewed = self
                .pool()
                .read(|m| {
                    let mut l = m.lease.clone();
                    async move { l.keep_alive(id).await }
                })
                .await;
            match renewed {
                Ok(_) => {}
                Err(e) if kind(&e) == Kind::Unavailable => {
                    tracing::debug!(key, error = %e, "renewing this replica's lease failed; retrying");
                }
                // "lease not found": expired, start over with a fresh one.
                Err(_) => return Ok(()),
            }
        }
    }

    /// A read (`get` with `opts`) of `key` through the pool: retried on another member when
    /// this one does not answer.
    async fn get_with(
        &self,
        key: Vec<u8>,
        opts: GetOptions,
    ) -> Result<etcd_client::GetResponse, etcd_client::Error> {
        self.pool()
            .read(|m| {
                let mut kv = m.kv.clone();
                let (k, o) = (key.clone(), opts.clone());
                async move { kv.get(k, Some(o)).await }
            })
            .await
    }

    /// The header revision of a cheap linearizable read (one key, count only).
    async fn read_revision(&self, at: Option<u64>) -> Result<u64, etcd_client::Error> {
        let mut opts = GetOptions::new().with_count_only();
        if let Some(at) = at {
            opts = opts.with_revision(revision_i64(at));
        }
        let resp = self.get_with(self.inner.keys.full(""), opts).await?;
        Ok(resp.header().map_or(0, |h| revision_u64(h.revision())))
    }

    /// Compacts etcd when this handle has written `history_revisions` (plus a 10% slack)
    /// revisions past its last compaction. Best effort: a failure only delays compaction.
    async fn maybe_compact(&self, revision: u64) {
        let Some(keep) = self.inner.opts.history_revisions else {
            return;
        };
        let keep = keep.max(1);
        let slack = (keep / 10).max(1);
        let floor = self.inner.compacted_to.load(Ordering::Relaxed);
        if revision <= floor + keep + slack {
            return;
        }
        let target = revision - keep;
        if self.inner.compacted_to.fetch_max(target, Ordering::Relaxed) >= target {
            return;
        }
        if let Err(e) = self.compact_at(target).await {
            tracing::debug!(revision = target, error = %e, "etcd compaction failed");
        }
    }

    async fn compact_at(&self, revision: u64) -> Result<(), StoreError> {
        let compacted = self
            .pool()
            .read(|m| {
                let mut kv = m.kv.clone();
                async move { kv.compact(revision_i64(revision), None).await }
            })
            .await;
        match compacted {
            Ok(_) => Ok(()),
            // Already compacted at or past it (by another replica or installation).
            Err(e) if kind(&e) == Kind::Compacted => Ok(()),
            Err(e) => Err(from_etcd(e)),
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let full = self.inner.keys.full(key);
        let resp = self
            .pool()
            .read(|m| {
                let mut kv = m.kv.clone();
                let k = full.clone();
                async move { kv.get(k, None).await }
            })
            .await
            .map_err(from_etcd)?;
        resp.kvs()
            .first()
            .map(|kv| self.inner.keys.kv(kv))
            .transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let keys = &self.inner.keys;
        let (mut start, end) = keys.range(prefix);
        if let Some(after) = start_after.filter(|a| *a >= prefix) {
            start = keys.full(after);
            start.push(0);
        }
        if start >= end {
            let revision = self.read_revision(None).await.map_err(from_etcd)?;
            return Ok(Page {
                items: Vec::new(),
                more: false,
                revision,
            });
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let opts = GetOptions::new().with_range(end).with_limit(limit);
        let resp = self.get_with(start, opts).await.map_err(from_etcd)?;
        Ok(Page {
            items: resp
                .kvs()
                .iter()
                .map(|kv| keys.kv(kv))
                .collect::<Result<_, _>>()?,
            more: resp.more(),
            revision: resp.header().map_or(0, |h| revision_u64(h.revision())),
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let compares = txn.compares.clone();
        let retry = if self_fencing(&txn) {
            Retry::Idempotent
        } else {
            Retry::IfNotSent
        };
        let t = translate(&self.inner.keys.prefix, txn);
        let limit = self.inner.opts.max_request_bytes;
        if t.size_bound > limit {
            return Err(StoreError::TooLarge {
                size: t.size_bound,
                limit,
            });
        }
        let etcd_txn = t.txn;
        let outcome = self
            .pool()
            .run(retry, |m| {
                let mut kv = m.kv.clone();
                let request = etcd_txn.clone();
                async move { kv.txn(request).await }
            })
            .await;
        let resp = outcome.result.map_err(|e| match kind(&e) {
            Kind::TooLarge => StoreError::TooLarge {
                size: t.size_bound,
                limit,
            },
            _ => from_etcd(e),
        })?;
        let revision = resp.header().map_or(0, |h| revision_u64(h.revision()));
        if resp.succeeded() {
            self.maybe_compact(revision).await;
            return Ok(TxnOutcome::Committed { revision });
        }
        let current: Vec<Option<u64>> = resp
            .op_responses()
            .iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| revision_u64(kv.mod_revision())),
                _ => None,
            })
            .collect();
        if outcome.ambiguous {
            // An earlier attempt may have been applied and be what the compares now see.
            return Err(StoreError::Unavailable(format!(
                "etcd transaction retried after a member did not answer; the retry found a \
                 conflict at revision {revision}, which the first attempt may have caused"
            )));
        }
        let failed = failed_compares(&compares, &t.read_back, &current);
        if failed.is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd refused the compares of a transaction at revision {revision}, \
                 but they all hold on the keys read back"
            )));
        }
        Ok(TxnOutcome::Conflict { failed, revision })
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.read_revision(None).await.map_err(from_etcd)
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        let mut w = watch::Resuming::new(
            self.inner.pool.clone(),
            self.inner.keys.clone(),
            self.inner.keys.range(prefix),
            after_revision,
            self.inner.closed.subscribe(),
            self.inner.opts.watch_backoff_max,
        );
        w.connect().await?;
        // etcd answers a compacted start only asynchronously on the stream; a read at the
        // start revision answers at once, with the same rule (compacted iff below the last
        // compaction), so that `watch` itself fails as the contract asks.
        match self.read_revision(Some(after_revision.max(1))).await {
            Ok(_) => {}
            Err(e) if kind(&e) == Kind::FutureRevision => {}
            Err(e) if kind(&e) == Kind::Compacted => {
                let oldest = match w.compact_revision(COMPACT_REVISION_WAIT).await {
                    Some(r) => r,
                    None => self.revision().await?,
                };
                return Err(StoreError::Compacted {
                    requested: after_revision,
                    oldest,
                });
            }
            Err(e) => return Err(from_etcd(e)),
        }
        Ok(futures::stream::unfold(w, watch::step).boxed())
    }

    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let current = self.revision().await?;
        let target = revision.min(current);
        if target < 2 {
            // etcd's revision 1 is the empty initial state: nothing to discard.
            return Ok(());
        }
        self.inner.compacted_to.fetch_max(target, Ordering::Relaxed);
        self.compact_at(target).await
    }
}

/// Whether a transaction cannot be applied twice: one of its compares fails once it has been
/// applied, so a repeat after an ambiguous failure is harmless (it conflicts).
fn self_fencing(txn: &Txn) -> bool {
    use crate::{Compare, Op};
    let last_op = |key: &str| {
        txn.ops.iter().rev().find(|op| match op {
            Op::Put(k, _) | Op::Delete(k) => k == key,
        })
    };
    txn.compares.iter().any(|c| match c {
        Compare::Absent(k) => matches!(last_op(k), Some(Op::Put(..))),
        Compare::Present(k) => matches!(last_op(k), Some(Op::Delete(..))),
        // The key exists; any op on it changes its mod_revision or removes it.
        Compare::ModRevision(k, r) => *r > 0 && last_op(k).is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_fencing_transactions_are_those_a_repeat_cannot_apply() {
        use crate::Compare;
        let t = |c: Vec<Compare>, txn: Txn| Txn { compares: c, ..txn };
        let absent = || Compare::Absent("a".into());
        assert!(self_fencing(&t(
            vec![absent()],
            Txn::new().put("a", vec![])
        )));
        assert!(!self_fencing(&t(
            vec![absent()],
            Txn::new().put("a", vec![]).delete("a")
        )));
        assert!(!self_fencing(&t(
            vec![absent()],
            Txn::new().put("b", vec![])
        )));
        assert!(self_fencing(&t(
            vec![Compare::Present("a".into())],
            Txn::new().delete("a")
        )));
        assert!(self_fencing(&t(
            vec![Compare::ModRevision("a".into(), 7)],
            Txn::new().delete("a").put("b", vec![])
        )));
        assert!(!self_fencing(&Txn::new().put("a", vec![])));
    }

    #[test]
    fn range_end_is_the_next_prefix() {
        assert_eq!(range_end(b"/flotilla/"), b"/flotilla0");
        assert_eq!(range_end(b"/f/a\xff"), b"/f/b");
        assert_eq!(range_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn keys_map_both_ways_and_refuse_foreign_keys() {
        let keys = Keys {
            prefix: "/flotilla/".into(),
        };
        assert_eq!(keys.full("tasks/a"), b"/flotilla/tasks/a");
        assert_eq!(keys.strip(b"/flotilla/tasks/a").unwrap(), "tasks/a");
        assert!(keys.strip(b"/other/tasks/a").is_err());
        assert!(keys.strip(b"/flotilla/\xff").is_err());
        let (start, end) = keys.range("");
        assert_eq!(
            (start.as_slice(), end.as_slice()),
            (&b"/flotilla/"[..], &b"/flotilla0"[..])
        );
    }
}
