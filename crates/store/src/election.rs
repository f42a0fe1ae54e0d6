//! Leader election as a store capability: which control-plane replica runs the controllers.
//!
//! An [`Election`] is campaigned on by every replica of one installation; at most one holds a
//! [`Term`] at a time. A term is numbered by a **fencing token** (`term`, strictly greater than
//! every earlier term of the installation) and carries a [`Fence`]: a compare that a
//! controller adds to each of its transactions ([`Txn::fenced`]), so that a store write of a
//! deposed leader (one whose term was lost while the write was in flight, or a process that
//! stalled past its lease) is refused by the store instead of committed.
//!
//! Backends:
//! - [`SoleLeader`] (memory and SQLite, which one server owns): always leader, term 1, and a
//!   fence that compares nothing (no other replica can exist).
//! - [`crate::etcd::EtcdElection`]: a leader key under the installation's prefix, created only
//!   if absent and attached to an etcd lease that the holder keeps alive; the key's revision is
//!   the term, and the fence is `mod_revision(key) == term`.
//!
//! A term ends when it is lost ([`Term::lost`] resolves: the lease expired, or could not be
//! renewed before its deadline, measured from when the last renewal was sent so the holder
//! always hears of it no later than the store does), when it is resigned
//! ([`Election::resign`]), or when the [`Term`] is dropped (then the lease simply lapses, as
//! when the process dies).
//!
//! What this is not: a lock for arbitrary critical sections, or a consensus of its own: on etcd
//! it is etcd's lease and compare-and-swap, nothing more.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::{Compare, StoreError, Txn, TxnOutcome};

/// Who leads an installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leading replica's name, as it gave it when it campaigned.
    pub id: String,
    /// Its term (the fencing token).
    pub term: u64,
}

/// Why a term ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LostReason {
    /// The store says the lease is gone (it expired, or was revoked by someone else).
    #[error("the leader lease expired")]
    Expired,
    /// No renewal was acknowledged before the lease's deadline (the store is unreachable or
    /// too slow); the store expires the lease at that deadline at the earliest.
    #[error("the leader lease could not be renewed before its deadline")]
    Unrenewed,
    /// The holder resigned.
    #[error("resigned")]
    Resigned,
}

/// The condition that makes a controller's transaction refusable once its term is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    compare: Option<Compare>,
}

impl Fence {
    /// A fence that compares nothing: for a store that only one server uses.
    pub fn unfenced() -> Self {
        Fence { compare: None }
    }

    /// A fence that holds while `compare` holds.
    pub fn on(compare: Compare) -> Self {
        Fence {
            compare: Some(compare),
        }
    }

    /// The compare fenced transactions carry (`None` for [`Fence::unfenced`]).
    pub fn compare(&self) -> Option<&Compare> {
        self.compare.as_ref()
    }

    /// True when `outcome` of the fenced `txn` is a conflict because the fence failed: the term
    /// is over, and retrying the transaction is pointless.
    pub fn refused(&self, txn: &Txn, outcome: &TxnOutcome) -> bool {
        let (Some(fence), TxnOutcome::Conflict { failed, .. }) = (&self.compare, outcome) else {
            return false;
        };
        failed
            .iter()
            .any(|i| txn.compares.get(*i).is_some_and(|c| c == fence))
    }
}

impl Txn {
    /// Adds the fence's compare (if it has one): the transaction commits only while the term
    /// that issued the fence is current.
    pub fn fenced(mut self, fence: &Fence) -> Self {
        if let Some(c) = &fence.compare {
            self.compares.push(c.clone());
        }
        self
    }
}

/// One term of leadership, held by the replica that won it. Dropping it stops renewing the
/// lease (which then lapses, as when the process dies); [`Election::resign`] ends it at once.
pub struct Term {
    term: u64,
    fence: Fence,
    pub(crate) lease: Option<i64>,
    lost: watch::Receiver<Option<LostReason>>,
    /// Whatever keeps the term alive (the lease keeper); dropped with the term.
    _keeper: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term")
            .field("term", &self.term)
            .field("fence", &self.fence)
            .field("lost", &*self.lost.borrow())
            .finish()
    }
}

impl Term {
    pub(crate) fn new(
        term: u64,
        fence: Fence,
        lease: Option<i64>,
        lost: watch::Receiver<Option<LostReason>>,
        keeper: Box<dyn Send + Sync>,
    ) -> Self {
        Term {
            term,
            fence,
            lease,
            lost,
            _keeper: keeper,
        }
    }

    /// The fencing token: greater than every earlier term of the installation.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The compare to add to every controller transaction of this term.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Resolves when the term is lost, with the reason; at once if it already is.
    pub async fn lost(&mut self) -> LostReason {
        match self.lost.wait_for(Option::is_some).await {
            Ok(r) => r.unwrap_or(LostReason::Expired),
            // The keeper is gone without a word: nothing renews the lease any more.
            Err(_) => LostReason::Unrenewed,
        }
    }

    /// The reason the term was lost, if it is.
    pub fn is_lost(&self) -> Option<LostReason> {
        *self.lost.borrow()
    }
}

/// Leader election among the replicas of one installation.
#[async_trait]
pub trait Election: Send + Sync + 'static {
    /// Waits until this replica leads, and returns its term. Fails when the store fails; the
    /// caller retries (with a backoff).
    async fn campaign(&self) -> Result<Term, StoreError>;

    /// Ends `term` now, so that another replica can take over without waiting for the lease
    /// to lapse.
    async fn resign(&self, term: Term) -> Result<(), StoreError>;

    /// Who leads now (`None` while nobody does).
    async fn leader(&self) -> Result<Option<Leader>, StoreError>;
}

/// The election of a store only one server uses (memory, SQLite): always won, at term 1, with
/// a fence that compares nothing.
#[derive(Debug, Clone)]
pub struct SoleLeader {
    id: String,
}

impl SoleLeader {
    /// The one server, named `id`.
    pub fn new(id: impl Into<String>) -> Self {
        SoleLeader { id: id.into() }
    }
}

#[async_trait]
impl Election for SoleLeader {
    async fn campaign(&self) -> Result<Term, StoreError> {
        let (tx, rx) = watch::channel(None);
        // The sender lives as long as the term, so `lost` never resolves on its own.
        Ok(Term::new(1, Fence::unfenced(), None, rx, Box::new(tx)))
    }

    async fn resign(&self, term: Term) -> Result<(), StoreError> {
        drop(term);
        Ok(())
    }

    async fn leader(&self) -> Result<Option<Leader>, StoreError> {
        Ok(Some(Leader {
            id: self.id.clone(),
            term: 1,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, Store};

    #[tokio::test]
    async fn the_sole_leader_always_leads_at_term_1_unfenced() {
        let e = SoleLeader::new("me");
        let term = e.campaign().await.unwrap();
        assert_eq!(term.term(), 1);
        assert_eq!(term.fence(), &Fence::unfenced());
        assert_eq!(term.is_lost(), None);
        assert_eq!(
            e.leader().await.unwrap(),
            Some(Leader {
                id: "me".into(),
                term: 1
            })
        );
        let store = MemoryStore::new();
        let txn = Txn::new().put("k", b"v".to_vec()).fenced(term.fence());
        assert!(txn.compares.is_empty());
        assert!(store.txn(txn).await.unwrap().is_committed());
    }

    #[tokio::test]
    async fn a_failed_fence_is_told_apart_from_other_conflicts() {
        let store = MemoryStore::new();
        let fence = Fence::on(Compare::ModRevision("election/leader".into(), 7));
        let other = Txn::new()
            .when(Compare::Present("missing".into()))
            .put("k", b"v".to_vec());
        let out = store.txn(other.clone()).await.unwrap();
        assert!(!fence.refused(&other, &out));
        let fenced = Txn::new().put("k", b"v".to_vec()).fenced(&fence);
        let out = store.txn(fenced.clone()).await.unwrap();
        assert!(fence.refused(&fenced, &out));
        assert!(!Fence::unfenced().refused(&fenced, &out));
    }
}
