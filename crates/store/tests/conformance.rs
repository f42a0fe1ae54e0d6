//! Conformance suite: every behaviour of the `Store` contract, as one generic async function,
//! instantiated for every backend by the `conformance!` macro at the bottom.
//!
//! `normal` tests get a store with default limits; `small` tests get one that keeps only
//! `SMALL_HISTORY` revisions of history and buffers only `SMALL_BUFFER` live batches, to exercise
//! compaction and lagging watchers. SQLite-only behaviours (reopen) are at the end.
//!
//! The etcd instantiation starts one etcd process per test (`support/mod.rs`) and goes through
//! [`Rebased`], which subtracts the revision of the empty cluster (etcd starts at 1, not 0) from
//! every revision it reports and adds it to every revision it is given: the trait lets a store
//! start above 0, and nothing else is adapted. etcd-only behaviours are in `tests/etcd.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use flotilla_store::etcd::EtcdOptions;
use flotilla_store::{
    Compare, EtcdStore, Event, KeyValue, MemoryStore, Page, SqliteStore, Store, StoreError, Txn,
    TxnOutcome, WatchStream,
};
use futures::StreamExt;

const SMALL_HISTORY: u64 = 10;
const SMALL_BUFFER: usize = 4;

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

async fn put<S: Store>(s: &S, key: &str, value: &str) -> u64 {
    match s.txn(Txn::new().put(key, v(value))).await.unwrap() {
        TxnOutcome::Committed { revision } => revision,
        other => panic!("unexpected {other:?}"),
    }
}

async fn del<S: Store>(s: &S, key: &str) -> u64 {
    match s.txn(Txn::new().delete(key)).await.unwrap() {
        TxnOutcome::Committed { revision } => revision,
        other => panic!("unexpected {other:?}"),
    }
}

/// Takes `n` events, failing the test if they do not arrive within 10 s.
async fn take(w: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} events", out.len()));
        match next {
            Some(Ok(ev)) => out.push(ev),
            Some(Err(e)) => panic!("watch error after {} events: {e}", out.len()),
            None => panic!("watch ended after {} events", out.len()),
        }
    }
    out
}

/// Asserts that nothing arrives on the stream for a short while.
async fn quiet(w: &mut WatchStream) {
    if let Ok(x) = tokio::time::timeout(Duration::from_millis(100), w.next()).await {
        panic!("unexpected watch item {x:?}");
    }
}

fn put_ev(key: &str, value: &str, create: u64, rev: u64) -> Event {
    Event::Put(KeyValue {
        key: key.into(),
        value: v(value),
        create_revision: create,
        mod_revision: rev,
    })
}

fn del_ev(key: &str, rev: u64) -> Event {
    Event::Delete {
        key: key.into(),
        revision: rev,
    }
}

fn keys(p: &Page) -> Vec<&str> {
    p.items.iter().map(|kv| kv.key.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Basic reads and writes

async fn put_get_roundtrip<S: Store>(s: S) {
    assert_eq!(s.revision().await.unwrap(), 0);
    assert_eq!(s.get("a").await.unwrap(), None);
    assert_eq!(put(&s, "a", "1").await, 1);
    let kv = s.get("a").await.unwrap().unwrap();
    assert_eq!(
        kv,
        KeyValue {
            key: "a".into(),
            value: v("1"),
            create_revision: 1,
            mod_revision: 1
        }
    );
    assert_eq!(s.revision().await.unwrap(), 1);
    // Binary values and empty values round-trip.
    let bin = vec![0u8, 255, 1, 2, 0];
    s.txn(Txn::new().put("bin", bin.clone()).put("empty", vec![]))
        .await
        .unwrap();
    assert_eq!(s.get("bin").await.unwrap().unwrap().value, bin);
    assert_eq!(
        s.get("empty").await.unwrap().unwrap().value,
        Vec::<u8>::new()
    );
}

async fn revisions_advance_by_one_per_writing_txn<S: Store>(s: S) {
    // A multi-op txn advances by exactly one; all its keys share the revision.
    let r = s
        .txn(
            Txn::new()
                .put("a", v("1"))
                .put("b", v("1"))
                .put("c", v("1")),
        )
        .await
        .unwrap();
    assert_eq!(r, TxnOutcome::Committed { revision: 1 });
    for k in ["a", "b", "c"] {
        assert_eq!(s.get(k).await.unwrap().unwrap().mod_revision, 1);
    }
    // Overwrite: mod_revision moves, create_revision stays.
    assert_eq!(put(&s, "a", "2").await, 2);
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (1, 2));
    // Rewriting the same value still advances (etcd semantics).
    assert_eq!(put(&s, "a", "2").await, 3);
    // Empty txn and a txn whose deletes find nothing commit without advancing.
    assert_eq!(
        s.txn(Txn::new()).await.unwrap(),
        TxnOutcome::Committed { revision: 3 }
    );
    assert_eq!(del(&s, "nope").await, 3);
    assert_eq!(
        s.txn(Txn::new().when(Compare::Present("a".into())))
            .await
            .unwrap(),
        TxnOutcome::Committed { revision: 3 }
    );
    assert_eq!(s.revision().await.unwrap(), 3);
    assert_eq!(put(&s, "d", "1").await, 4);
}

async fn cas_on_mod_revision<S: Store>(s: S) {
    let r1 = put(&s, "k", "1").await;
    put(&s, "other", "x").await;
    // Right version: commits.
    let ok = s
        .txn(
            Txn::new()
                .when(Compare::ModRevision("k".into(), r1))
                .put("k", v("2")),
        )
        .await
        .unwrap();
    assert_eq!(ok, TxnOutcome::Committed { revision: 3 });
    // Stale version: conflict, reports the failed index and the evaluation revision.
    let stale = s
        .txn(
            Txn::new()
                .when(Compare::Present("k".into()))
                .when(Compare::ModRevision("k".into(), r1))
                .put("k", v("3")),
        )
        .await
        .unwrap();
    assert_eq!(
        stale,
        TxnOutcome::Conflict {
            failed: vec![1],
            revision: 3
        }
    );
    assert!(!stale.is_committed());
    assert_eq!(s.get("k").await.unwrap().unwrap().value, v("2"));
    // ModRevision on an absent key fails.
    let absent = s
        .txn(
            Txn::new()
                .when(Compare::ModRevision("missing".into(), 0))
                .put("missing", v("x")),
        )
        .await
        .unwrap();
    assert!(matches!(absent, TxnOutcome::Conflict { ref failed, .. } if failed == &vec![0]));
    assert_eq!(s.get("missing").await.unwrap(), None);
}

async fn absent_and_present<S: Store>(s: S) {
    let create = Txn::new()
        .when(Compare::Absent("x".into()))
        .put("x", v("1"));
    assert!(s.txn(create.clone()).await.unwrap().is_committed());
    // Second create-if-absent loses.
    assert_eq!(
        s.txn(create).await.unwrap(),
        TxnOutcome::Conflict {
            failed: vec![0],
            revision: 1
        }
    );
    // Present holds for x, fails for y; every failed compare is reported.
    assert!(s
        .txn(
            Txn::new()
                .when(Compare::Present("x".into()))
                .put("x", v("2"))
        )
        .await
        .unwrap()
        .is_committed());
    assert_eq!(
        s.txn(
            Txn::new()
                .when(Compare::Present("y".into()))
                .when(Compare::Present("x".into()))
                .when(Compare::Absent("x".into()))
                .put("x", v("3"))
        )
        .await
        .unwrap(),
        TxnOutcome::Conflict {
            failed: vec![0, 2],
            revision: 2
        }
    );
    assert_eq!(s.get("x").await.unwrap().unwrap().value, v("2"));
}

async fn failed_compare_writes_nothing<S: Store>(s: S) {
    put(&s, "a", "1").await;
    put(&s, "b", "1").await;
    let out = s
        .txn(
            Txn::new()
                .when(Compare::ModRevision("a".into(), 1))
                .when(Compare::ModRevision("b".into(), 1)) // b is at 2: fails
                .put("a", v("2"))
                .put("c", v("2"))
                .delete("b"),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        TxnOutcome::Conflict {
            failed: vec![1],
            revision: 2
        }
    );
    assert_eq!(s.revision().await.unwrap(), 2);
    assert_eq!(s.get("a").await.unwrap().unwrap().value, v("1"));
    assert_eq!(s.get("b").await.unwrap().unwrap().value, v("1"));
    assert_eq!(s.get("c").await.unwrap(), None);
    // And the whole multi-key txn applies atomically once the compares hold.
    let ok = s
        .txn(
            Txn::new()
                .when(Compare::ModRevision("a".into(), 1))
                .when(Compare::ModRevision("b".into(), 2))
                .put("a", v("2"))
                .put("c", v("2"))
                .delete("b"),
        )
        .await
        .unwrap();
    assert_eq!(ok, TxnOutcome::Committed { revision: 3 });
    assert_eq!(s.get("a").await.unwrap().unwrap().mod_revision, 3);
    assert_eq!(s.get("c").await.unwrap().unwrap().mod_revision, 3);
    assert_eq!(s.get("b").await.unwrap(), None);
}

async fn deletes<S: Store>(s: S) {
    put(&s, "a", "1").await;
    assert_eq!(del(&s, "a").await, 2);
    assert_eq!(s.get("a").await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), 2);
    // Recreating starts a new life: create_revision is the new revision.
    assert_eq!(put(&s, "a", "again").await, 3);
    let a = s.get("a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (3, 3));
    // Put then delete of the same key in one txn leaves it absent (a backend may coalesce the
    // two ops, so whether the revision moves is not part of the contract).
    let r = s
        .txn(Txn::new().put("t", v("1")).delete("t"))
        .await
        .unwrap();
    assert!(r.is_committed(), "{r:?}");
    assert_eq!(s.get("t").await.unwrap(), None);
    // Several puts of one key: the last value wins.
    s.txn(
        Txn::new()
            .put("p", v("1"))
            .put("q", v("1"))
            .put("p", v("2")),
    )
    .await
    .unwrap();
    assert_eq!(s.get("p").await.unwrap().unwrap().value, v("2"));
    assert_eq!(s.get("q").await.unwrap().unwrap().value, v("1"));
}

async fn list_prefix_start_after_limit_more<S: Store>(s: S) {
    for k in ["a/1", "a/2", "a/3", "a/4", "a/5", "a0", "ab", "b/1", "a"] {
        put(&s, k, k).await;
    }
    let rev = s.revision().await.unwrap();
    let p = s.list("a/", None, 2).await.unwrap();
    assert_eq!(keys(&p), ["a/1", "a/2"]);
    assert!(p.more);
    assert_eq!(p.revision, rev);
    assert_eq!(p.items[0].value, v("a/1"));
    let p = s.list("a/", Some("a/2"), 2).await.unwrap();
    assert_eq!(keys(&p), ["a/3", "a/4"]);
    assert!(p.more);
    let p = s.list("a/", Some("a/4"), 2).await.unwrap();
    assert_eq!(keys(&p), ["a/5"]);
    assert!(!p.more);
    // Exactly-fitting page: more is false.
    let p = s.list("a/", Some("a/3"), 2).await.unwrap();
    assert_eq!(keys(&p), ["a/4", "a/5"]);
    assert!(!p.more);
    // start_after not itself a key, and before the prefix.
    let p = s.list("a/", Some("a/25"), 10).await.unwrap();
    assert_eq!(keys(&p), ["a/3", "a/4", "a/5"]);
    let p = s.list("a/", Some("0"), 10).await.unwrap();
    assert_eq!(p.items.len(), 5);
    // start_after past the prefix range.
    let p = s.list("a/", Some("a/9"), 10).await.unwrap();
    assert!(p.items.is_empty() && !p.more);
    // limit 0 = unlimited; empty prefix = everything, in byte order.
    let p = s.list("", None, 0).await.unwrap();
    assert_eq!(
        keys(&p),
        ["a", "a/1", "a/2", "a/3", "a/4", "a/5", "a0", "ab", "b/1"]
    );
    assert!(!p.more);
    let p = s.list("a", None, 0).await.unwrap();
    assert_eq!(p.items.len(), 8);
    let p = s.list("zzz", None, 10).await.unwrap();
    assert!(p.items.is_empty() && !p.more);
    // Non-ASCII keys sort by UTF-8 bytes.
    put(&s, "u/\u{e9}", "x").await;
    put(&s, "u/z", "x").await;
    put(&s, "u/\u{1F600}", "x").await;
    let p = s.list("u/", None, 0).await.unwrap();
    assert_eq!(keys(&p), ["u/z", "u/\u{e9}", "u/\u{1F600}"]);
}

// ---------------------------------------------------------------------------------------------
// Watch

/// Writes a fixed history: revisions 1..=5.
async fn seed<S: Store>(s: &S) {
    put(s, "w/a", "1").await; // 1
    put(s, "w/b", "1").await; // 2
    put(s, "x/a", "1").await; // 3
    put(s, "w/a", "2").await; // 4
    del(s, "w/b").await; // 5
}

async fn watch_from_zero<S: Store>(s: S) {
    seed(&s).await;
    let mut w = s.watch("", 0).await.unwrap();
    let evs = take(&mut w, 5).await;
    assert_eq!(
        evs,
        [
            put_ev("w/a", "1", 1, 1),
            put_ev("w/b", "1", 2, 2),
            put_ev("x/a", "1", 3, 3),
            put_ev("w/a", "2", 1, 4),
            del_ev("w/b", 5),
        ]
    );
    quiet(&mut w).await;
}

async fn watch_from_middle<S: Store>(s: S) {
    seed(&s).await;
    let mut w = s.watch("", 3).await.unwrap();
    assert_eq!(
        take(&mut w, 2).await,
        [put_ev("w/a", "2", 1, 4), del_ev("w/b", 5)]
    );
    quiet(&mut w).await;
    // From the current revision: nothing old, then live.
    let mut w = s.watch("", 5).await.unwrap();
    quiet(&mut w).await;
    put(&s, "w/c", "1").await;
    assert_eq!(take(&mut w, 1).await, [put_ev("w/c", "1", 6, 6)]);
}

async fn watch_live<S: Store>(s: S) {
    let s = Arc::new(s);
    let mut w = s.watch("", 0).await.unwrap();
    quiet(&mut w).await;
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                put(&*s, &format!("k{i:02}"), "v").await;
            }
            s.txn(Txn::new().put("m1", v("1")).put("m2", v("2")).delete("k00"))
                .await
                .unwrap();
        })
    };
    let evs = take(&mut w, 23).await;
    writer.await.unwrap();
    for (i, ev) in evs[..20].iter().enumerate() {
        assert_eq!(
            ev,
            &put_ev(&format!("k{i:02}"), "v", i as u64 + 1, i as u64 + 1)
        );
    }
    // A multi-op txn yields its events in op order, all at one revision.
    assert_eq!(
        &evs[20..],
        [
            put_ev("m1", "1", 21, 21),
            put_ev("m2", "2", 21, 21),
            del_ev("k00", 21)
        ]
    );
    quiet(&mut w).await;
    // A watch from the future skips until its revision is passed.
    let mut fut = s.watch("", 23).await.unwrap();
    put(&*s, "f", "1").await; // 22: skipped
    put(&*s, "f", "2").await; // 23: skipped
    put(&*s, "f", "3").await; // 24
    assert_eq!(take(&mut fut, 1).await, [put_ev("f", "3", 22, 24)]);
}

async fn watch_prefix_filtering<S: Store>(s: S) {
    seed(&s).await;
    let mut w = s.watch("w/", 0).await.unwrap();
    assert_eq!(
        take(&mut w, 4).await,
        [
            put_ev("w/a", "1", 1, 1),
            put_ev("w/b", "1", 2, 2),
            put_ev("w/a", "2", 1, 4),
            del_ev("w/b", 5),
        ]
    );
    put(&s, "x/b", "1").await; // 6, filtered
    s.txn(Txn::new().put("x/c", v("1")).put("w/c", v("1")))
        .await
        .unwrap(); // 7, half filtered
    assert_eq!(take(&mut w, 1).await, [put_ev("w/c", "1", 7, 7)]);
    quiet(&mut w).await;
    let mut x = s.watch("x/", 2).await.unwrap();
    assert_eq!(
        take(&mut x, 3).await,
        [
            put_ev("x/a", "1", 3, 3),
            put_ev("x/b", "1", 6, 6),
            put_ev("x/c", "1", 7, 7)
        ]
    );
}

/// Watches opened at arbitrary points while a writer runs see every later revision exactly once.
async fn watch_seam_no_gap_no_duplicate<S: Store>(s: S) {
    const N: u64 = 300;
    let s = Arc::new(s);
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..N {
                put(&*s, &format!("k{}", i % 7), &i.to_string()).await;
            }
        })
    };
    let mut watchers = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let from = s.revision().await.unwrap();
        watchers.push((from, s.watch("", from).await.unwrap()));
    }
    writer.await.unwrap();
    for (from, mut w) in watchers {
        let evs = take(&mut w, (N - from) as usize).await;
        let revs: Vec<u64> = evs.iter().map(Event::revision).collect();
        let want: Vec<u64> = (from + 1..=N).collect();
        assert_eq!(revs, want, "watch from {from}");
        quiet(&mut w).await;
    }
}

async fn concurrent_cas_writers<S: Store>(s: S) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 200;
    let s = Arc::new(s);
    put(&*s, "counter", "0").await;
    let mut w = s.watch("counter", 1).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..INCREMENTS {
                loop {
                    let kv = s.get("counter").await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                    let t = Txn::new()
                        .when(Compare::ModRevision("counter".into(), kv.mod_revision))
                        .put("counter", (n + 1).to_string().into_bytes());
                    if s.txn(t).await.unwrap().is_committed() {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = (TASKS * INCREMENTS) as u64;
    let kv = s.get("counter").await.unwrap().unwrap();
    assert_eq!(kv.value, total.to_string().into_bytes());
    assert_eq!(kv.mod_revision, total + 1);
    assert_eq!(s.revision().await.unwrap(), total + 1);
    // The watcher saw every increment, in order.
    let evs = take(&mut w, total as usize).await;
    for (i, ev) in evs.iter().enumerate() {
        assert_eq!(ev.revision(), i as u64 + 2);
        match ev {
            Event::Put(kv) => assert_eq!(kv.value, (i as u64 + 1).to_string().into_bytes()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn watch_compacted<S: Store>(s: S) {
    for i in 0..10 {
        put(&s, "k", &i.to_string()).await;
    }
    s.compact(6).await.unwrap();
    match s.watch("", 5).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, 5);
            assert!((6..=10).contains(&oldest), "oldest {oldest}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("watch from a compacted revision succeeded"),
    }
    // From the compaction point itself: fine.
    let mut w = s.watch("", 6).await.unwrap();
    let evs = take(&mut w, 4).await;
    assert_eq!(
        evs.iter().map(Event::revision).collect::<Vec<_>>(),
        [7, 8, 9, 10]
    );
    // Data is untouched by compaction.
    assert_eq!(s.get("k").await.unwrap().unwrap().value, v("9"));
}

async fn watch_ends_when_store_dropped<S: Store>(s: S) {
    let mut w = s.watch("", 0).await.unwrap();
    put(&s, "a", "1").await;
    assert_eq!(take(&mut w, 1).await.len(), 1);
    drop(s);
    let end = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("stream did not end");
    assert!(matches!(end, Some(Err(StoreError::Closed))), "{end:?}");
    assert!(w.next().await.is_none());
}

// ---------------------------------------------------------------------------------------------
// Small limits: bounded history and lagging watchers

async fn history_is_bounded<S: Store>(s: S) {
    for i in 0..(SMALL_HISTORY * 5) {
        put(&s, "k", &i.to_string()).await;
    }
    let rev = s.revision().await.unwrap();
    assert!(matches!(
        s.watch("", 0).await,
        Err(StoreError::Compacted { requested: 0, .. })
    ));
    // The most recent SMALL_HISTORY revisions are always kept.
    let mut w = s.watch("", rev - SMALL_HISTORY).await.unwrap();
    assert_eq!(take(&mut w, SMALL_HISTORY as usize).await.len(), 10);
}

/// A watcher that never reads while many batches go by recovers from history without a gap.
async fn lagging_watcher_recovers<S: Store>(s: S) {
    let mut w = s.watch("", 0).await.unwrap();
    // Far more batches than the live buffer, fewer revisions than the history keeps.
    for i in 0..(SMALL_HISTORY - 1) {
        put(&s, &format!("k{i}"), "v").await;
    }
    let evs = take(&mut w, (SMALL_HISTORY - 1) as usize).await;
    let revs: Vec<u64> = evs.iter().map(Event::revision).collect();
    assert_eq!(revs, (1..SMALL_HISTORY).collect::<Vec<_>>());
    // Live again afterwards.
    put(&s, "after", "v").await;
    assert_eq!(take(&mut w, 1).await[0].revision(), SMALL_HISTORY);
}

/// A watcher that lags past the kept history ends with an error, never skipping silently.
async fn lagging_watcher_past_history_errors<S: Store>(s: S) {
    let mut w = s.watch("", 0).await.unwrap();
    for i in 0..(SMALL_HISTORY * 5) {
        put(&s, &format!("k{i}"), "v").await;
    }
    let mut expected = 1;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("stream stalled")
        {
            Some(Ok(ev)) => {
                assert_eq!(ev.revision(), expected, "gap in watch");
                expected += 1;
            }
            Some(Err(StoreError::Compacted { .. })) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(w.next().await.is_none());
}

// ---------------------------------------------------------------------------------------------
// SQLite only: persistence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        seed(&s).await;
        s.txn(Txn::new().put("multi/1", v("1")).put("multi/2", v("2")))
            .await
            .unwrap();
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.revision().await.unwrap(), 6);
    assert_eq!(
        s.get("w/a").await.unwrap().unwrap(),
        KeyValue {
            key: "w/a".into(),
            value: v("2"),
            create_revision: 1,
            mod_revision: 4
        }
    );
    assert_eq!(s.get("w/b").await.unwrap(), None);
    assert_eq!(
        keys(&s.list("multi/", None, 0).await.unwrap()),
        ["multi/1", "multi/2"]
    );
    // Revisions continue from where they were.
    assert_eq!(put(&s, "n", "1").await, 7);
}

/// `get`'s cache never answers older than an acknowledged write: readers racing writers see
/// every key's value move forward only, and after a write is acknowledged every read sees it
/// (or a later one). With a cache of 2 keys for 8 keys, entries are dropped and read again
/// all the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_cached_reads_never_go_back() {
    use flotilla_store::sqlite::SqliteOptions;
    let dir = tempfile::tempdir().unwrap();
    for cached_keys in [2, 1024] {
        let opts = SqliteOptions {
            cached_keys,
            ..SqliteOptions::default()
        };
        let s = Arc::new(SqliteStore::open_with(dir.path(), opts).unwrap());
        let keys: Vec<String> = (0..8).map(|k| format!("cache{cached_keys}/{k}")).collect();
        let writers = (0..4).map(|w| {
            let (s, keys) = (s.clone(), keys.clone());
            tokio::spawn(async move {
                for i in 0..60 {
                    let key = &keys[(i + w) % keys.len()];
                    let TxnOutcome::Committed { revision } = s
                        .txn(Txn::new().put(key.clone(), v(&i.to_string())))
                        .await
                        .unwrap()
                    else {
                        panic!("an unconditional put conflicted");
                    };
                    // Acknowledged: every read from now on sees this revision or a later one.
                    let kv = s.get(key).await.unwrap().unwrap();
                    assert!(
                        kv.mod_revision >= revision,
                        "{key}: read {kv:?} after {revision}"
                    );
                }
            })
        });
        let readers = (0..4).map(|_| {
            let (s, keys) = (s.clone(), keys.clone());
            tokio::spawn(async move {
                let mut seen = vec![0u64; keys.len()];
                for i in 0..400 {
                    let k = i % keys.len();
                    if let Some(kv) = s.get(&keys[k]).await.unwrap() {
                        assert!(kv.mod_revision >= seen[k], "{} went back", keys[k]);
                        seen[k] = kv.mod_revision;
                    }
                }
            })
        });
        let all: Vec<_> = writers.chain(readers).collect();
        for t in all {
            t.await.unwrap();
        }
        // Deleted keys read as absent, cached or not.
        for key in &keys {
            assert!(s.get(key).await.unwrap().is_some());
            s.txn(Txn::new().delete(key.clone())).await.unwrap();
            assert_eq!(s.get(key).await.unwrap(), None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_watch_across_reopen_from_history() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        seed(&s).await;
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    let mut w = s.watch("w/", 1).await.unwrap();
    assert_eq!(
        take(&mut w, 3).await,
        [
            put_ev("w/b", "1", 2, 2),
            put_ev("w/a", "2", 1, 4),
            del_ev("w/b", 5)
        ]
    );
    put(&s, "w/z", "1").await;
    assert_eq!(take(&mut w, 1).await, [put_ev("w/z", "1", 6, 6)]);
    // Compaction survives a reopen too.
    s.compact(4).await.unwrap();
    drop(w);
    drop(s);
    let s = SqliteStore::open(dir.path()).unwrap();
    assert!(matches!(
        s.watch("", 3).await,
        Err(StoreError::Compacted {
            requested: 3,
            oldest: 4
        })
    ));
    let mut w = s.watch("", 4).await.unwrap();
    assert_eq!(take(&mut w, 2).await.len(), 2);
}

#[tokio::test]
async fn sqlite_open_failure_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match SqliteStore::open(&file.join("store")) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("not-a-dir"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a store under a regular file"),
    }
    // A directory holding something that is not a database.
    std::fs::write(dir.path().join("flotilla.db"), vec![7u8; 4096]).unwrap();
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::Backend(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// etcd: revisions relative to the empty cluster's

/// An [`EtcdStore`] on its own etcd process, with revisions counted from the empty cluster's
/// revision (see the module docs). Dropping it drops the store, then kills etcd.
struct Rebased {
    inner: Option<EtcdStore>,
    base: u64,
    _server: support::EtcdServer,
}

impl Rebased {
    async fn start(opts: EtcdOptions) -> Self {
        let server = support::EtcdServer::start().await;
        let inner = server.store("conformance", opts).await;
        let base = inner.revision().await.unwrap();
        Rebased {
            inner: Some(inner),
            base,
            _server: server,
        }
    }
    fn s(&self) -> &EtcdStore {
        self.inner.as_ref().unwrap()
    }
    fn kv(&self, kv: KeyValue) -> KeyValue {
        KeyValue {
            create_revision: kv.create_revision - self.base,
            mod_revision: kv.mod_revision - self.base,
            ..kv
        }
    }
}

impl Drop for Rebased {
    fn drop(&mut self) {
        // The store first, so that its watches end with `Closed` rather than a lost connection.
        self.inner.take();
    }
}

fn rebase_err(e: StoreError, base: u64) -> StoreError {
    match e {
        StoreError::Compacted { requested, oldest } => StoreError::Compacted {
            requested: requested - base,
            oldest: oldest.saturating_sub(base),
        },
        other => other,
    }
}

#[async_trait::async_trait]
impl Store for Rebased {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.s().get(key).await?.map(|kv| self.kv(kv)))
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let p = self.s().list(prefix, start_after, limit).await?;
        Ok(Page {
            items: p.items.into_iter().map(|kv| self.kv(kv)).collect(),
            more: p.more,
            revision: p.revision - self.base,
        })
    }
    async fn txn(&self, mut txn: Txn) -> Result<TxnOutcome, StoreError> {
        for c in &mut txn.compares {
            if let Compare::ModRevision(_, r) = c {
                if *r != 0 {
                    *r += self.base;
                }
            }
        }
        Ok(match self.s().txn(txn).await? {
            TxnOutcome::Committed { revision } => TxnOutcome::Committed {
                revision: revision - self.base,
            },
            TxnOutcome::Conflict { failed, revision } => TxnOutcome::Conflict {
                failed,
                revision: revision - self.base,
            },
        })
    }
    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.s().revision().await? - self.base)
    }
    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        let base = self.base;
        let w = self
            .s()
            .watch(prefix, after_revision + base)
            .await
            .map_err(|e| rebase_err(e, base))?;
        Ok(w.map(move |r| match r {
            Ok(Event::Put(kv)) => Ok(Event::Put(KeyValue {
                create_revision: kv.create_revision - base,
                mod_revision: kv.mod_revision - base,
                ..kv
            })),
            Ok(Event::Delete { key, revision }) => Ok(Event::Delete {
                key,
                revision: revision - base,
            }),
            Err(e) => Err(rebase_err(e, base)),
        })
        .boxed())
    }
    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        self.s().compact(revision + self.base).await
    }
}

/// SQLite keeps history within its byte bound, also across a reopen: old revisions are
/// compacted once large values pass the bound, recent ones stay watchable, data is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_history_is_bounded_by_bytes() {
    use flotilla_store::sqlite::SqliteOptions;
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        history_bytes: 10_000,
        ..SqliteOptions::default()
    };
    let big = "x".repeat(1_000);
    for round in 0..2 {
        let s = SqliteStore::open_with(dir.path(), opts.clone()).unwrap();
        for i in 0..40 {
            put(&s, &format!("k{}", i % 3), &format!("{round}{i}{big}")).await;
        }
        let rev = s.revision().await.unwrap();
        assert_eq!(rev, 40 * (round + 1));
        // About 10 revisions of 1 KB fit; 40 ago is compacted.
        assert!(matches!(
            s.watch("", rev - 30).await,
            Err(StoreError::Compacted { .. })
        ));
        let mut w = s.watch("", rev - 5).await.unwrap();
        assert_eq!(take(&mut w, 5).await.len(), 5);
        assert_eq!(
            s.get("k0").await.unwrap().unwrap().value,
            v(&format!("{round}39{big}"))
        );
    }
}

/// Fails a test that runs longer than a minute (etcd tests talk to a real process).
async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("test did not finish within 60 s");
}

// ---------------------------------------------------------------------------------------------
// Instantiation

macro_rules! conformance {
    (
        normal: [$($normal:ident),* $(,)?],
        small: [$($small:ident),* $(,)?],
        small_buffered: [$($buffered:ident),* $(,)?] $(,)?
    ) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $normal() {
                    super::$normal(MemoryStore::new()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $small() {
                    super::$small(MemoryStore::with_limits(SMALL_HISTORY, SMALL_BUFFER)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $buffered() {
                    super::$buffered(MemoryStore::with_limits(SMALL_HISTORY, SMALL_BUFFER)).await;
                }
            )*
        }
        /// etcd keeps no bounded live buffer (a live watch is never dropped for lagging), so the
        /// `small_buffered` tests do not apply; `tests/etcd.rs` covers its compaction errors.
        mod etcd {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $normal() {
                    bounded(super::$normal(Rebased::start(EtcdOptions::default()).await)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $small() {
                    let opts = EtcdOptions {
                        history_revisions: Some(SMALL_HISTORY),
                        ..EtcdOptions::default()
                    };
                    bounded(super::$small(Rebased::start(opts).await)).await;
                }
            )*
        }
        /// Callers' tests mostly use the default current-thread runtime: make sure the SQLite
        /// backend (writer thread, blocking reads) behaves there too.
        mod sqlite_current_thread {
            use super::*;
            $(
                #[tokio::test]
                async fn $normal() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$normal(SqliteStore::open(dir.path()).unwrap()).await;
                }
            )*
        }
        mod sqlite {
            use super::*;
            use flotilla_store::sqlite::SqliteOptions;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $normal() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$normal(SqliteStore::open(dir.path()).unwrap()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $buffered() {
                    let dir = tempfile::tempdir().unwrap();
                    let opts = SqliteOptions {
                        history_revisions: SMALL_HISTORY,
                        watch_buffer: SMALL_BUFFER,
                        ..SqliteOptions::default()
                    };
                    super::$buffered(SqliteStore::open_with(dir.path(), opts).unwrap()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $small() {
                    let dir = tempfile::tempdir().unwrap();
                    let opts = SqliteOptions {
                        history_revisions: SMALL_HISTORY,
                        watch_buffer: SMALL_BUFFER,
                        ..SqliteOptions::default()
                    };
                    super::$small(SqliteStore::open_with(dir.path(), opts).unwrap()).await;
                }
            )*
        }
    };
}

conformance! {
    normal: [
        put_get_roundtrip,
        revisions_advance_by_one_per_writing_txn,
        cas_on_mod_revision,
        absent_and_present,
        failed_compare_writes_nothing,
        deletes,
        list_prefix_start_after_limit_more,
        watch_from_zero,
        watch_from_middle,
        watch_live,
        watch_prefix_filtering,
        watch_seam_no_gap_no_duplicate,
        concurrent_cas_writers,
        watch_compacted,
        watch_ends_when_store_dropped,
    ],
    small: [
        history_is_bounded,
        lagging_watcher_recovers,
    ],
    small_buffered: [
        lagging_watcher_past_history_errors,
    ],
}
