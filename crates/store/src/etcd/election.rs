//! [`EtcdElection`]: the [`Election`] on etcd, with a lease and a create-if-absent key.
//!
//! - The leader key is [`LEADER_KEY`] under the installation's prefix. Its value is the
//!   leader's id; it is attached to the leader's lease, so it disappears when the lease ends.
//! - **Campaign**: wait until the key is absent (a watch for its deletion, re-read every TTL in
//!   case the watch went silent), grant a lease of [`ElectionOptions::ttl`], then one
//!   transaction `version(key) == 0 ? put(key, id, lease) : get(key)`. The winner's term is
//!   that transaction's revision, which is the key's `create_revision` and `mod_revision` (the
//!   key is never rewritten), so the fence is `Compare::ModRevision(LEADER_KEY, term)`. A loser
//!   revokes its lease and waits again.
//! - **Keeping it**: a task renews the lease every third of its TTL. The lease's deadline is
//!   counted from when the last acknowledged renewal was *sent*, so it is never later than the
//!   store's own. The term is lost (and [`Term::lost`] resolves) when etcd says the lease is
//!   gone, or when the deadline passes without an acknowledged renewal.
//! - **Resign** revokes the lease: the key goes at once and a waiting replica takes over.
//!
//! etcd's own election service (`Campaign`) is not used: it is a single blocking call that the
//! client's request timeout would cut, and the create-if-absent key gives the same guarantees
//! with requests this crate already makes.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use std::sync::Arc;

use etcd_client::{
    Compare as EtcdCompare, CompareOp, EventType, PutOptions, Txn as EtcdTxn, TxnOp,
    WatchFilterType, WatchOptions,
};
use tokio::sync::watch;

use super::error::{describe, from_etcd};
use super::pool::{Pool, Retry};
use super::{revision_u64, Keys};
use crate::election::{Election, Fence, Leader, LostReason, Term};
use crate::{Compare, StoreError};

/// The leader key, under the installation's prefix.
pub const LEADER_KEY: &str = "election/leader";

/// Tuning of an [`EtcdElection`].
#[derive(Debug, Clone)]
pub struct ElectionOptions {
    /// The lease's time to live (whole seconds, at least one): how long a dead leader keeps
    /// the others waiting at most.
    pub ttl: Duration,
}

impl Default for ElectionOptions {
    fn default() -> Self {
        ElectionOptions {
            ttl: Duration::from_secs(5),
        }
    }
}

/// Leader election of one installation on etcd. Cheap to clone.
#[derive(Clone)]
pub struct EtcdElection {
    /// Every request goes to a healthy member, renewals included (`pool.rs`).
    pool: Arc<Pool>,
    keys: Keys,
    id: String,
    ttl_seconds: i64,
}

impl EtcdElection {
    pub(crate) fn new(pool: Arc<Pool>, keys: Keys, id: String, opts: ElectionOptions) -> Self {
        let ttl_seconds = i64::try_from(opts.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        EtcdElection {
            pool,
            keys,
            id,
            ttl_seconds,
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_seconds.unsigned_abs())
    }

    fn key(&self) -> Vec<u8> {
        self.keys.full(LEADER_KEY)
    }

    /// Reads the leader key as it is now.
    async fn read_key(&self) -> Result<etcd_client::GetResponse, StoreError> {
        let key = self.key();
        self.pool
            .read(|m| {
                let mut kv = m.kv.clone();
                let k = key.clone();
                async move { kv.get(k, None).await }
            })
            .await
            .map_err(from_etcd)
    }

    /// Returns once the leader key is absent.
    async fn wait_vacant(&self) -> Result<(), StoreError> {
        loop {
            let resp = self.read_key().await?;
            if resp.kvs().is_empty() {
                return Ok(());
            }
            let revision = resp.header().map_or(0, |h| h.revision());
            // Wait for its deletion; re-read after a TTL in any case (a silent watch, an error).
            let _ = tokio::time::timeout(self.ttl(), self.deleted_after(revision)).await;
        }
    }

    /// Resolves when the leader key is deleted after `revision` (or the watch fails).
    async fn deleted_after(&self, revision: i64) {
        let opts = WatchOptions::new()
            .with_start_revision(revision + 1)
            .with_filters([WatchFilterType::NoPut]);
        let Ok(mut stream) = self
            .pool
            .pick()
            .watch
            .clone()
            .watch(self.key(), Some(opts))
            .await
        else {
            return;
        };
        while let Ok(Some(resp)) = stream.message().await {
            if resp.canceled()
                || resp
                    .events()
                    .iter()
                    .any(|e| e.event_type() == EventType::Delete)
            {
                return;
            }
        }
    }

    /// One attempt: a fresh lease and the create-if-absent transaction.
    async fn try_acquire(&self) -> Result<Option<Term>, StoreError> {
        let sent = Instant::now();
        // A repeated grant only leaves an unused lease, which expires.
        let ttl_seconds = self.ttl_seconds;
        let grant = self
            .pool
            .read(|m| {
                let mut l = m.lease.clone();
                async move { l.grant(ttl_seconds, None).await }
            })
            .await
            .map_err(from_etcd)?;
        let lease = grant.id();
        let ttl = Duration::from_secs(grant.ttl().max(1).unsigned_abs());
        let key = self.key();
        let txn = EtcdTxn::new()
            .when([EtcdCompare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                self.id.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        // Create-if-absent fences itself: a repeat of an applied attempt fails its compare.
        let outcome = self
            .pool
            .run(Retry::Idempotent, |m| {
                let mut kv = m.kv.clone();
                let t = txn.clone();
                async move { kv.txn(t).await }
            })
            .await;
        let resp = match outcome.result {
            Ok(r) => r,
            Err(e) => {
                // Ambiguous: if it was applied, revoking frees the key again.
                self.revoke(lease).await;
                return Err(from_etcd(e));
            }
        };
        if !resp.succeeded() {
            // Lost, or (after an ambiguous attempt) maybe won by that attempt: revoking the
            // lease frees the key in that case, and the campaign goes on.
            self.revoke(lease).await;
            return Ok(None);
        }
        let term = resp.header().map_or(0, |h| revision_u64(h.revision()));
        let (tx, rx) = watch::channel(None);
        let keeper = tokio::spawn(keep(self.pool.clone(), lease, ttl, sent + ttl, tx));
        Ok(Some(Term::new(
            term,
            Fence::on(Compare::ModRevision(LEADER_KEY.to_owned(), term)),
            Some(lease),
            rx,
            Box::new(AbortOnDrop(keeper)),
        )))
    }
}

impl EtcdElection {
    /// Revokes `lease`, best effort (it expires anyway).
    async fn revoke(&self, lease: i64) {
        let _ = self.revoke_checked(lease).await;
    }

    async fn revoke_checked(&self, lease: i64) -> Result<(), etcd_client::Error> {
        self.pool
            .read(|m| {
                let mut l = m.lease.clone();
                async move { l.revoke(lease).await }
            })
            .await
            .map(|_| ())
    }
}

/// Aborts the lease keeper when the term is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pause between failed renewal attempts while the deadline has not passed.
const RENEW_RETRY: Duration = Duration::from_millis(200);

/// Renews `lease` every third of `ttl` until it is lost, then says why on `lost`.
async fn keep(
    pool: Arc<Pool>,
    lease: i64,
    ttl: Duration,
    mut deadline: Instant,
    lost: watch::Sender<Option<LostReason>>,
) {
    let reason = loop {
        let now = Instant::now();
        let next = (now + ttl / 3).min(deadline);
        tokio::time::sleep_until(next.into()).await;
        let sent = Instant::now();
        if sent >= deadline {
            break LostReason::Unrenewed;
        }
        // Each attempt on a healthy member, bounded, and retried on another one.
        let renew = pool.read(|m| {
            let mut l = m.lease.clone();
            async move { l.keep_alive(lease).await }
        });
        match tokio::time::timeout_at(deadline.into(), renew).await {
            // A renewal restores the lease's whole TTL, counted from when it was sent.
            Ok(Ok(_)) => deadline = sent + ttl,
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => {
                break LostReason::Expired
            }
            Ok(Err(e)) => {
                tracing::warn!(lease, error = %describe(&e), "renewing the leader lease failed; retrying");
                let retry = (Instant::now() + RENEW_RETRY).min(deadline);
                tokio::time::sleep_until(retry.into()).await;
                // Renew again at once rather than after a third of the TTL.
                continue;
            }
            Err(_) => break LostReason::Unrenewed,
        }
    };
    let _ = lost.send(Some(reason));
}

#[async_trait]
impl Election for EtcdElection {
    async fn campaign(&self) -> Result<Term, StoreError> {
        loop {
            self.wait_vacant().await?;
            if let Some(term) = self.try_acquire().await? {
                return Ok(term);
            }
        }
    }

    async fn resign(&self, term: Term) -> Result<(), StoreError> {
        let lease = term.lease;
        drop(term);
        if let Some(lease) = lease {
            match self.revoke_checked(lease).await {
                Ok(_) => {}
                // Already expired: nothing to give up.
                Err(e) if describe(&e).contains("not found") => {}
                Err(e) => return Err(from_etcd(e)),
            }
        }
        Ok(())
    }

    async fn leader(&self) -> Result<Option<Leader>, StoreError> {
        let resp = self.read_key().await?;
        Ok(resp.kvs().first().map(|kv| Leader {
            id: String::from_utf8_lossy(kv.value()).into_owned(),
            term: revision_u64(kv.create_revision()),
        }))
    }
}
