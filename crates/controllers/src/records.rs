//! Typed access to the records in the store: get, list and commit with JSON values, the error a
//! store failure becomes, and the loaded forms of records most handlers need (an ACTIVE cluster, a
//! task definition by reference). Where each record lives is `flotilla_control::keys`,
//! re-exported here so a writer names keys and reads through one module.
//!
//! Every write is a compare-and-swap on the object's `mod_revision`, so concurrent requests never
//! lose each other's updates; a conflict is retried by the caller with fresh reads.
//!
//! A controller's write also carries its term's [`Fence`] ([`commit_fenced`], [`cas_fenced`]):
//! once the term is over the store refuses it, and the refusal is not a conflict to retry but
//! [`deposed`], which ends the controller's attempt (its loop stops acting; the supervisor is
//! already stopping it).

use flotilla_control::task_definitions::TaskDefinitionRef;
use flotilla_model::shapes::{Cluster, RegisterTaskDefinitionResponse, TaskDefinitionStatus};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Fence, KeyValue, Store, StoreError, Txn, TxnOutcome};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use flotilla_control::keys::*;

/// A store failure, as the client sees it.
pub fn store_error(e: StoreError) -> EcsError {
    tracing::error!(error = %e, "store failure");
    EcsError::server(format!(
        "Flotilla could not reach its store: {e}. Retry the request."
    ))
}

/// Serializes a record.
pub fn to_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, EcsError> {
    serde_json::to_vec(v).map_err(|e| EcsError::server(format!("could not encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, EcsError> {
    serde_json::from_slice(bytes)
        .map_err(|e| EcsError::server(format!("record {key} is unreadable: {e}")))
}

/// Reads one record with its `mod_revision`.
pub async fn get<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<(T, u64)>, EcsError> {
    match store.get(key).await.map_err(store_error)? {
        Some(kv) => Ok(Some((decode(key, &kv.value)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Reads every record under a prefix, in key order.
pub async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<(String, T, u64)>, EcsError> {
    list_as(store, prefix, |kv| decode(&kv.key, &kv.value)).await
}

/// [`list`] with each record read by `read` from its key and value as stored.
pub async fn list_as<T>(
    store: &dyn Store,
    prefix: &str,
    read: impl Fn(&KeyValue) -> Result<T, EcsError>,
) -> Result<Vec<(String, T, u64)>, EcsError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(prefix, after.as_deref(), 1000)
            .await
            .map_err(store_error)?;
        for kv in &page.items {
            out.push((kv.key.clone(), read(kv)?, kv.mod_revision));
        }
        if !page.more {
            break;
        }
        after = page.items.last().map(|kv| kv.key.clone());
    }
    Ok(out)
}

/// A transaction that replaces the record at `key` with `value` if it is still at `rev` (the
/// `mod_revision` it was read at).
pub fn replace<T: Serialize>(key: &str, rev: u64, value: &T) -> Result<Txn, EcsError> {
    Ok(Txn::new()
        .when(Compare::ModRevision(key.to_string(), rev))
        .put(key.to_string(), to_bytes(value)?))
}

/// Commits a transaction; `Ok(false)` means a compare failed and the caller should retry.
pub async fn commit(store: &dyn Store, txn: Txn) -> Result<bool, EcsError> {
    commit_fenced(store, txn, None).await
}

/// [`commit`] of a controller's write, fenced with its term's `fence` (`None`: an API
/// handler's write, which any replica makes). A refused fence is not a conflict: it is the
/// error [`deposed`], never retried.
pub async fn commit_fenced(
    store: &dyn Store,
    txn: Txn,
    fence: Option<&Fence>,
) -> Result<bool, EcsError> {
    Ok(commit_fenced_at(store, txn, fence).await?.is_some())
}

/// [`commit_fenced`], telling the revision the transaction committed at (`None`: a compare
/// failed).
pub async fn commit_fenced_at(
    store: &dyn Store,
    txn: Txn,
    fence: Option<&Fence>,
) -> Result<Option<u64>, EcsError> {
    let at = |o: TxnOutcome| match o {
        TxnOutcome::Committed { revision } => Some(revision),
        TxnOutcome::Conflict { .. } => None,
    };
    let fence = fence.filter(|f| f.compare().is_some());
    let Some(fence) = fence else {
        return Ok(at(store.txn(txn).await.map_err(store_error)?));
    };
    let txn = txn.fenced(fence);
    let outcome = store.txn(txn.clone()).await.map_err(store_error)?;
    if fence.refused(&txn, &outcome) {
        return Err(deposed());
    }
    Ok(at(outcome))
}

/// What a controller's write ends with when the store refused its fence: this replica's term
/// is over (another replica leads, or will once the lease lapses).
const DEPOSED: &str =
    "This replica is no longer the leader: the write of its controllers was refused.";

/// The error of a write refused by its fence (see [`commit_fenced`]).
pub fn deposed() -> EcsError {
    EcsError::server(DEPOSED)
}

/// Whether `e` is [`deposed`]: the controller should stop acting rather than retry.
pub fn is_deposed(e: &EcsError) -> bool {
    e.code == flotilla_model::ErrorCode::ServerException && e.message == DEPOSED
}

/// The error for a compare-and-swap that kept losing.
pub fn contention() -> EcsError {
    EcsError::server(
        "The resource is being modified by other requests at the same time. Retry the request.",
    )
}

/// Loads an ACTIVE cluster by name or ARN, or answers `ClusterNotFoundException`.
pub async fn active_cluster(
    store: &dyn Store,
    cluster: Option<&str>,
) -> Result<(Cluster, u64), EcsError> {
    let name = flotilla_control::keys::cluster_name(cluster)?;
    match get::<Cluster>(store, &flotilla_control::keys::cluster_key(&name)).await? {
        Some((c, rev)) if c.status.as_deref() == Some("ACTIVE") => Ok((c, rev)),
        _ => Err(EcsError::cluster_not_found()),
    }
}

/// Loads a task definition record by reference: a given revision in any status, or the
/// latest ACTIVE revision of a family. `None` when there is none.
///
/// The latest ACTIVE revision is most often the family's last one (its family record says
/// which): two reads by key. Only when that one is not ACTIVE (deregistered, deleted) does it
/// read every revision of the family, the latest first.
pub async fn load_task_definition(
    store: &dyn Store,
    r: &TaskDefinitionRef,
) -> Result<Option<(RegisterTaskDefinitionResponse, u64)>, EcsError> {
    load_task_definition_as(
        store,
        r,
        |kv| decode(&kv.key, &kv.value),
        |rec: &RegisterTaskDefinitionResponse| {
            rec.task_definition.as_ref().and_then(|t| t.status)
                == Some(TaskDefinitionStatus::Active)
        },
    )
    .await
}

/// [`load_task_definition`] with the record read by `read` from its key and value as stored
/// (DescribeTaskDefinition reuses what it derived from the same `mod_revision`,
/// [`flotilla_control::revision_cache`]); `is_active` tells whether what it read is ACTIVE.
pub async fn load_task_definition_as<T>(
    store: &dyn Store,
    r: &TaskDefinitionRef,
    read: impl Fn(&KeyValue) -> Result<T, EcsError>,
    is_active: impl Fn(&T) -> bool,
) -> Result<Option<(T, u64)>, EcsError> {
    let get_as = |key: String| {
        let read = &read;
        async move {
            match store.get(&key).await.map_err(store_error)? {
                Some(kv) => Ok::<_, EcsError>(Some((read(&kv)?, kv.mod_revision))),
                None => Ok(None),
            }
        }
    };
    match r.revision {
        Some(rev) => get_as(task_definition_key(&r.family, rev)).await,
        None => {
            if let Some((family, _)) = get::<FamilyRecord>(store, &family_key(&r.family)).await? {
                let last = task_definition_key(&r.family, family.last_revision);
                match get_as(last).await? {
                    Some((rec, rev)) if is_active(&rec) => return Ok(Some((rec, rev))),
                    _ => {}
                }
            }
            let all = list_as(store, &task_definition_prefix(&r.family), &read).await?;
            Ok(all
                .into_iter()
                .rev()
                .find(|(_, rec, _)| is_active(rec))
                .map(|(_, rec, rev)| (rec, rev)))
        }
    }
}

/// One attempt of a read-change-commit ([`cas`]): what the attempt decided after reading.
pub enum Attempt<T> {
    /// Commit this transaction (its compares guard what was read); the result is `T` if it
    /// commits, and the attempt runs again on fresh reads if a compare fails.
    Commit(Txn, T),
    /// Nothing to write: the result is `T` as it is.
    Done(T),
}

/// How many attempts [`cas`] makes before it answers that the record is contended. Within one
/// process writers of one record are serialized ([`crate::plane::Plane::serialize`]), so
/// attempts are lost only to other replicas or other records in the same transaction.
pub const CAS_MAX_ATTEMPTS: u32 = 64;

/// Read, change, commit, retry: runs `attempt` (which reads what it needs and returns the
/// transaction to commit) until its transaction commits or it has nothing to write. A lost
/// compare-and-swap runs it again on fresh reads after a short jittered backoff (1 ms doubling
/// to 64 ms), at most [`CAS_MAX_ATTEMPTS`] times; then the answer is [`contention`]. A store
/// failure ends it at once.
pub async fn cas<T, F, Fut>(store: &dyn Store, attempt: F) -> Result<T, EcsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt<T>, EcsError>>,
{
    cas_fenced(store, None, attempt).await
}

/// [`cas`] of a controller's write, each attempt's transaction fenced with its term's `fence`
/// ([`commit_fenced`]): a refused fence ends it at once with [`deposed`].
pub async fn cas_fenced<T, F, Fut>(
    store: &dyn Store,
    fence: Option<&Fence>,
    mut attempt: F,
) -> Result<T, EcsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt<T>, EcsError>>,
{
    for n in 0..CAS_MAX_ATTEMPTS {
        match attempt().await? {
            Attempt::Done(v) => return Ok(v),
            Attempt::Commit(txn, v) => {
                if commit_fenced(store, txn, fence).await? {
                    return Ok(v);
                }
            }
        }
        tokio::time::sleep(backoff(n)).await;
    }
    Err(contention())
}

/// The wait before attempt `n + 1`: up to 2^n ms, capped at 64 ms, jittered so contenders
/// spread out.
pub(crate) fn backoff(n: u32) -> std::time::Duration {
    let cap_ms = 1u64 << n.min(6);
    std::time::Duration::from_micros(rand::random::<u64>() % (cap_ms * 1000) + 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_store::MemoryStore;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_refused_fence_ends_the_cas_at_once_and_an_unfenced_one_commits() {
        let store = MemoryStore::new();
        let earlier = Txn::new().put("election/leader", b"a".to_vec());
        assert!(store.txn(earlier).await.unwrap().is_committed());
        let leader = Txn::new().put("election/leader", b"b".to_vec());
        let TxnOutcome::Committed { revision } = store.txn(leader).await.unwrap() else {
            panic!("the leader key was not written");
        };
        let live = Fence::on(Compare::ModRevision("election/leader".into(), revision));
        // A term that is over: the leader key was written again since.
        let fence = Fence::on(Compare::ModRevision("election/leader".into(), revision - 1));
        let attempts = AtomicU32::new(0);
        let attempt = || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Ok(Attempt::Commit(Txn::new().put("k", b"v".to_vec()), ()))
        };
        let e = cas_fenced(&store, Some(&fence), attempt).await.unwrap_err();
        assert!(is_deposed(&e), "{e}");
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1,
            "a refused fence was retried"
        );
        assert!(store.get("k").await.unwrap().is_none());
        // A conflict that is not the fence's is still retried, then contended.
        let stale = Txn::new().when(Compare::Present("missing".into()));
        assert!(!commit_fenced(&store, stale, Some(&live)).await.unwrap());
        cas_fenced(&store, Some(&live), attempt).await.unwrap();
        cas_fenced(&store, None, attempt).await.unwrap();
        cas_fenced(&store, Some(&Fence::unfenced()), attempt)
            .await
            .unwrap();
        assert!(store.get("k").await.unwrap().is_some());
        assert!(!is_deposed(&contention()));
    }
}
