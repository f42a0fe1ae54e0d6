//! The read-change-commit loop every writer shares: [`retry`] runs an attempt (read the records,
//! decide, build a compare-and-swap [`Txn`]), commits it, and runs it again on a conflict, a
//! bounded number of times with a short jittered wait, so concurrent writers never lose each
//! other's updates and never loop forever.
//!
//! Callers keep their own error type (`E: From<StoreError>`); a record that stays contended for
//! every attempt is [`Contended`], which the caller turns into its service's error.
//! `flotilla_controllers::records::cas` is the ECS writers' version of the same loop.

use crate::{Store, StoreError, Txn};

/// What one attempt decided.
pub enum Attempt<T> {
    /// Nothing to write: the result as is.
    Done(T),
    /// Commit this transaction; on success the result is `T`.
    Commit(Txn, T),
}

/// How many attempts [`retry`] makes.
pub const ATTEMPTS: u32 = 12;

/// Every attempt lost its compare-and-swap to another writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contended;

/// Runs `attempt` until its transaction commits (or it needs none), at most [`ATTEMPTS`] times.
/// `Ok(Err(Contended))` when every attempt lost to another writer.
pub async fn retry<T, E, F, Fut>(
    store: &dyn Store,
    mut attempt: F,
) -> Result<Result<T, Contended>, E>
where
    E: From<StoreError>,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt<T>, E>>,
{
    for n in 0..ATTEMPTS {
        match attempt().await? {
            Attempt::Done(v) => return Ok(Ok(v)),
            Attempt::Commit(txn, v) => {
                if store.txn(txn).await?.is_committed() {
                    return Ok(Ok(v));
                }
            }
        }
        tokio::time::sleep(wait(n)).await;
    }
    Ok(Err(Contended))
}

/// The wait before attempt `n + 1`: up to 2^n ms (capped at 64 ms), jittered by the clock's
/// nanoseconds so contenders spread out.
fn wait(n: u32) -> std::time::Duration {
    let cap_us = (1u64 << n.min(6)) * 1000;
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    std::time::Duration::from_micros(jitter % cap_us + 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compare, MemoryStore};
    use std::sync::Arc;

    async fn increment(store: &dyn Store) -> Result<Result<u64, Contended>, StoreError> {
        retry(store, || async {
            let cur = store.get("n").await?;
            let (n, compare) = match &cur {
                Some(kv) => (
                    String::from_utf8_lossy(&kv.value)
                        .parse::<u64>()
                        .unwrap_or(0),
                    Compare::ModRevision("n".into(), kv.mod_revision),
                ),
                None => (0, Compare::Absent("n".into())),
            };
            let txn = Txn::new()
                .when(compare)
                .put("n", (n + 1).to_string().into_bytes());
            Ok(Attempt::Commit(txn, n + 1))
        })
        .await
    }

    #[tokio::test]
    async fn concurrent_writers_lose_no_update() {
        let store = Arc::new(MemoryStore::new());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { increment(s.as_ref()).await }));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_ok());
        }
        let kv = store.get("n").await.unwrap().unwrap();
        assert_eq!(kv.value, b"8");
    }
}
