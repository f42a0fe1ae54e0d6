//! Throughput of `SqliteStore` on this machine: CAS puts (one writer, 16 concurrent writers) and
//! gets (one reader, 16 concurrent readers).
//!
//! Run with `cargo run --release -p flotilla-store --example store_bench [-- <seconds per case>]`.
//! The store lives in a fresh temporary directory (pass `FLOTILLA_BENCH_DIR` to choose the
//! parent directory, e.g. to measure a specific disk). Every put is a real durable commit
//! (WAL, `synchronous=FULL`); concurrent writers share fsyncs through group commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_store::{Compare, SqliteStore, Store, Txn};

const VALUE_LEN: usize = 512;

/// One CAS put loop on `key` until `until`; returns the number of commits.
async fn cas_loop(store: Arc<SqliteStore>, key: String, until: Instant) -> u64 {
    let value = vec![b'x'; VALUE_LEN];
    let mut version = store
        .get(&key)
        .await
        .unwrap()
        .map_or(0, |kv| kv.mod_revision);
    let mut n = 0;
    while Instant::now() < until {
        let cmp = if version == 0 {
            Compare::Absent(key.clone())
        } else {
            Compare::ModRevision(key.clone(), version)
        };
        let out = store
            .txn(Txn::new().when(cmp).put(&key, value.clone()))
            .await
            .unwrap();
        match out {
            flotilla_store::TxnOutcome::Committed { revision } => version = revision,
            other => panic!("unexpected conflict {other:?}"),
        }
        n += 1;
    }
    n
}

async fn writers(store: &Arc<SqliteStore>, tasks: usize, secs: f64, tag: &str) -> f64 {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..tasks)
        .map(|t| tokio::spawn(cas_loop(store.clone(), format!("bench/{tag}/{t}"), until)))
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn readers(store: &Arc<SqliteStore>, tasks: usize, secs: f64, keys: usize) -> f64 {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut i = t;
                while Instant::now() < until {
                    let key = format!("bench/read/{:05}", i % keys);
                    assert!(store.get(&key).await.unwrap().is_some());
                    n += 1;
                    i += 7;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seconds per case"))
        .unwrap_or(3.0);
    let parent = std::env::var_os("FLOTILLA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(parent).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    println!(
        "SqliteStore in {} ({VALUE_LEN}-byte values, {secs} s per case, {} cores)",
        dir.path().display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let single = writers(&store, 1, secs, "single").await;
    println!("CAS put, 1 writer:     {single:>10.0} txn/s");
    let concurrent = writers(&store, 16, secs, "multi").await;
    println!("CAS put, 16 writers:   {concurrent:>10.0} txn/s");

    // Seed keys for reads in one big transaction.
    const KEYS: usize = 10_000;
    let mut txn = Txn::new();
    for i in 0..KEYS {
        txn = txn.put(format!("bench/read/{i:05}"), vec![b'y'; VALUE_LEN]);
    }
    store.txn(txn).await.unwrap();
    let get1 = readers(&store, 1, secs, KEYS).await;
    println!("get, 1 reader:         {get1:>10.0} get/s");
    let get16 = readers(&store, 16, secs, KEYS).await;
    println!("get, 16 readers:       {get16:>10.0} get/s");
    println!("final revision: {}", store.revision().await.unwrap());
}
