//! What only the network store has, against real etcd processes (`support/mod.rs`):
//! a watch resumed after its connection drops (through a proxy that is cut, and across a
//! `kill -9` and restart of etcd), a compacted revision found on resume ending the watch with
//! `Compacted` (and the resync from a fresh list), the request size limit, prefix isolation,
//! an unreachable cluster reported as `Unavailable`, and the fault test of acceptance line 1:
//! `kill -9` of the leader of a three-member cluster while writers commit as fast as they can,
//! after which every acknowledged write is there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_store::etcd::{EtcdConfig, EtcdOptions, EtcdStore, ETCD_DEFAULT_MAX_REQUEST_BYTES};
use flotilla_store::{Election, Event, Store, StoreError, Term, Txn, TxnOutcome, WatchStream};
use futures::StreamExt;

use support::{EtcdCluster, EtcdServer, Proxy};

/// Fails a test that runs longer than `secs`.
async fn bounded(secs: u64, test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"));
}

async fn store_at(url: &str, opts: EtcdOptions) -> EtcdStore {
    EtcdStore::connect(EtcdConfig::parse(url).unwrap(), opts)
        .await
        .unwrap()
}

/// A put retried while the store is unreachable (each key written once: a retry after an
/// ambiguous failure rewrites the same value).
async fn put(s: &EtcdStore, key: &str, value: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match s.txn(Txn::new().put(key, value.as_bytes().to_vec())).await {
            Ok(TxnOutcome::Committed { revision }) => return revision,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(StoreError::Unavailable(e)) if Instant::now() < deadline => {
                eprintln!("put {key}: unavailable ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
}

async fn next(w: &mut WatchStream) -> Result<Event, StoreError> {
    tokio::time::timeout(Duration::from_secs(15), w.next())
        .await
        .expect("watch stalled")
        .expect("watch ended")
}

fn value_of(ev: &Event) -> String {
    match ev {
        Event::Put(kv) => String::from_utf8(kv.value.clone()).unwrap(),
        Event::Delete { .. } => "<deleted>".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_the_connection_is_cut() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let proxy = Proxy::start(server.member.client_port).await;
        let direct = server.store("resume", EtcdOptions::default()).await;
        let through = store_at(
            &format!("etcd://127.0.0.1:{}/resume", proxy.port),
            EtcdOptions::default(),
        )
        .await;
        let from = put(&direct, "w/0", "0").await;
        let mut w = through.watch("w/", from).await.unwrap();
        for i in 1..=3 {
            put(&direct, &format!("w/{i}"), &i.to_string()).await;
        }
        for i in 1..=3 {
            assert_eq!(value_of(&next(&mut w).await.unwrap()), i.to_string());
        }
        // Cut: the watch loses its connection; changes go on meanwhile; heal.
        proxy.cut();
        for i in 4..=9 {
            put(&direct, &format!("w/{i}"), &i.to_string()).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.heal();
        for i in 10..=12 {
            put(&direct, &format!("w/{i}"), &i.to_string()).await;
        }
        let mut last = 0;
        for i in 4..=12 {
            let ev = next(&mut w).await.unwrap();
            assert_eq!(value_of(&ev), i.to_string(), "event {i}");
            assert!(ev.revision() > last);
            last = ev.revision();
        }
        // Exactly once: nothing more.
        assert!(tokio::time::timeout(Duration::from_millis(300), w.next())
            .await
            .is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_across_kill_9_and_restart_of_etcd() {
    bounded(60, async {
        let mut server = EtcdServer::start().await;
        let s = server.store("restart", EtcdOptions::default()).await;
        let from = s.revision().await.unwrap();
        let mut w = s.watch("", from).await.unwrap();
        for i in 0..5 {
            put(&s, &format!("k{i}"), &i.to_string()).await;
        }
        for i in 0..3 {
            assert_eq!(value_of(&next(&mut w).await.unwrap()), i.to_string());
        }
        server.kill();
        match s.revision().await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("a killed etcd answered {other:?}"),
        }
        server.restart().await;
        for i in 5..8 {
            put(&s, &format!("k{i}"), &i.to_string()).await;
        }
        for i in 3..8 {
            assert_eq!(value_of(&next(&mut w).await.unwrap()), i.to_string());
        }
        assert!(tokio::time::timeout(Duration::from_millis(300), w.next())
            .await
            .is_err());
    })
    .await;
}

/// A watch that comes back after its revision was compacted ends with `Compacted`, never
/// skipping; the watcher resyncs by listing afresh and watching from the list's revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_while_disconnected_ends_the_watch_and_a_fresh_list_resyncs() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let proxy = Proxy::start(server.member.client_port).await;
        let direct = server.store("compact", EtcdOptions::default()).await;
        let through = store_at(
            &format!("etcd://127.0.0.1:{}/compact", proxy.port),
            EtcdOptions::default(),
        )
        .await;
        let from = direct.revision().await.unwrap();
        let mut w = through.watch("", from).await.unwrap();
        let seen = put(&direct, "a", "1").await;
        assert_eq!(next(&mut w).await.unwrap().revision(), seen);
        proxy.cut();
        put(&direct, "a", "2").await;
        put(&direct, "b", "1").await;
        let now = put(&direct, "a", "3").await;
        direct.compact(now).await.unwrap();
        proxy.heal();
        match next(&mut w).await {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (seen, now));
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        assert!(w.next().await.is_none(), "the stream ends after Compacted");
        // Resync: a fresh list has the state, and a watch from its revision goes on.
        let page = through.list("", None, 0).await.unwrap();
        let state: BTreeMap<_, _> = page
            .items
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
            .collect();
        assert_eq!(state, BTreeMap::from([("a", &b"3"[..]), ("b", &b"1"[..])]));
        let mut w = through.watch("", page.revision).await.unwrap();
        let r = put(&direct, "c", "1").await;
        assert_eq!(next(&mut w).await.unwrap().revision(), r);
        // And opening a watch below the compaction fails at once.
        assert!(matches!(
            through.watch("", seen).await,
            Err(StoreError::Compacted { requested, oldest }) if requested == seen && oldest == now
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_size_limit_are_refused_before_sending() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let s = server.store("size", EtcdOptions::default()).await;
        let limit = ETCD_DEFAULT_MAX_REQUEST_BYTES;
        // One value over the limit.
        match s.txn(Txn::new().put("big", vec![7; 2 << 20])).await {
            Err(StoreError::TooLarge { size, limit: l }) => {
                assert_eq!(l, limit);
                assert!(size > 2 << 20);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Many keys that only together are over it.
        let mut txn = Txn::new();
        for i in 0..20 {
            txn = txn.put(format!("many/{i}"), vec![1; 100 * 1024]);
        }
        assert!(matches!(s.txn(txn).await, Err(StoreError::TooLarge { .. })));
        assert!(s.list("", None, 0).await.unwrap().items.is_empty());
        // Just under the bound: etcd accepts it, so the bound is not too strict to be useful.
        let value = vec![9; limit - 4096];
        assert!(s
            .txn(Txn::new().put("fits", value.clone()))
            .await
            .unwrap()
            .is_committed());
        assert_eq!(s.get("fits").await.unwrap().unwrap().value, value);
        // A lower limit configured for a cluster with a smaller --max-request-bytes.
        let strict = server
            .store(
                "size",
                EtcdOptions {
                    max_request_bytes: 1024,
                    ..EtcdOptions::default()
                },
            )
            .await;
        assert!(matches!(
            strict.txn(Txn::new().put("k", vec![0; 2048])).await,
            Err(StoreError::TooLarge { limit: 1024, .. })
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prefixes_on_one_etcd_do_not_see_each_other() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let a = server.store("flotilla", EtcdOptions::default()).await;
        let b = server.store("flotilla2", EtcdOptions::default()).await;
        let mut wa = a.watch("", a.revision().await.unwrap()).await.unwrap();
        let mut wb = b.watch("", b.revision().await.unwrap()).await.unwrap();
        put(&a, "clusters/default", "a").await;
        put(&b, "clusters/default", "b").await;
        put(&b, "tasks/x", "b").await;
        assert!(a
            .txn(Txn::new().delete("tasks/x"))
            .await
            .unwrap()
            .is_committed());
        assert_eq!(b.get("tasks/x").await.unwrap().unwrap().value, b"b");
        let keys = |p: flotilla_store::Page| -> Vec<(String, Vec<u8>)> {
            p.items.into_iter().map(|kv| (kv.key, kv.value)).collect()
        };
        assert_eq!(
            keys(a.list("", None, 0).await.unwrap()),
            [("clusters/default".to_owned(), b"a".to_vec())]
        );
        assert_eq!(
            keys(b.list("", None, 0).await.unwrap()),
            [
                ("clusters/default".to_owned(), b"b".to_vec()),
                ("tasks/x".to_owned(), b"b".to_vec())
            ]
        );
        assert_eq!(value_of(&next(&mut wa).await.unwrap()), "a");
        assert!(tokio::time::timeout(Duration::from_millis(300), wa.next())
            .await
            .is_err());
        assert_eq!(next(&mut wb).await.unwrap().key(), "clusters/default");
        assert_eq!(next(&mut wb).await.unwrap().key(), "tasks/x");
        // Revisions are the cluster's: shared, still increasing in each installation.
        assert!(a.revision().await.unwrap() == b.revision().await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_reported_as_unavailable() {
    bounded(30, async {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = EtcdOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            ..EtcdOptions::default()
        };
        let s = store_at(&format!("etcd://127.0.0.1:{port}/x"), opts).await;
        let started = Instant::now();
        for result in [
            s.revision().await.map(|_| ()),
            s.txn(Txn::new().put("k", vec![])).await.map(|_| ()),
            s.watch("", 0).await.map(|_| ()),
        ] {
            match result {
                Err(StoreError::Unavailable(msg)) => assert!(!msg.is_empty()),
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    })
    .await;
}

/// Acceptance 1: writers commit as fast as they can through a store on all three members; the
/// leader gets `kill -9`; after recovery (the member restarted), every acknowledged write is
/// there with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_of_the_etcd_leader() {
    const WRITERS: usize = 16;
    bounded(90, async {
        let mut cluster = EtcdCluster::start().await;
        let opts = EtcdOptions {
            request_timeout: Duration::from_secs(3),
            ..EtcdOptions::default()
        };
        let store = Arc::new(store_at(&cluster.url("fault"), opts).await);
        let stop = Arc::new(AtomicBool::new(false));
        let killed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (store, stop, killed_at) = (store.clone(), stop.clone(), killed_at.clone());
            writers.push(tokio::spawn(async move {
                let (mut acked, mut failed, mut after_kill) = (Vec::new(), 0usize, 0usize);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w:02}/{i:08}");
                    match store
                        .txn(Txn::new().put(&key, key.as_bytes().to_vec()))
                        .await
                    {
                        Ok(TxnOutcome::Committed { .. }) => {
                            if killed_at.lock().unwrap().is_some() {
                                after_kill += 1;
                            }
                            acked.push(key);
                        }
                        Ok(other) => panic!("unexpected {other:?}"),
                        // Ambiguous: may or may not be there; not counted either way.
                        Err(_) => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    i += 1;
                }
                (acked, failed, after_kill)
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leader = cluster.leader().await.expect("a leader before the kill");
        cluster.members[leader].kill();
        *killed_at.lock().unwrap() = Some(Instant::now());
        // A new leader among the two others.
        let deadline = Instant::now() + Duration::from_secs(20);
        let new_leader = loop {
            if let Some(l) = cluster.leader().await {
                break l;
            }
            assert!(Instant::now() < deadline, "no new leader within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let failover = killed_at.lock().unwrap().unwrap().elapsed();
        assert_ne!(new_leader, leader);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.members[leader].spawn();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut acked, mut failed, mut after_kill) = (Vec::new(), 0, 0);
        for w in writers {
            let (a, f, k) = w.await.unwrap();
            acked.extend(a);
            failed += f;
            after_kill += k;
        }
        // Read back through a fresh store (all members up again).
        let reader = store_at(&cluster.url("fault"), EtcdOptions::default()).await;
        let page = loop {
            match reader.list("", None, 0).await {
                Ok(p) => break p,
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("reading back: {e}"),
            }
        };
        let stored: BTreeMap<String, Vec<u8>> = page
            .items
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|k| stored.get(*k).map(Vec::as_slice) != Some(k.as_bytes()))
            .collect();
        eprintln!(
            "kill -9 of etcd leader m{leader}: {} writes acknowledged ({after_kill} after the \
             kill), {} found, {} missing, {failed} failed (ambiguous), {} keys stored, new \
             leader m{new_leader} seen after {failover:?}",
            acked.len(),
            acked.len() - missing.len(),
            missing.len(),
            stored.len()
        );
        assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
        assert!(acked.len() > 100, "too few writes to mean anything");
        assert!(after_kill > 0, "no write was acknowledged after the kill");
    })
    .await;
}

/// Where [`EtcdStore`] starts: its preferred member is `pid % members` of the endpoint list
/// (`pool.rs`), so the bad member is put there, the worst case.
fn preferred_index(n: usize) -> usize {
    std::process::id() as usize % n
}

/// Store operations through one bad member of three: `rounds` rounds of a get, a list, a
/// self-fencing transaction (create-if-absent) and a plain put, each within `bound`; the
/// elected leader's term must survive. Returns the slowest operation.
async fn survive_one_bad_member(
    store: &EtcdStore,
    term: &Term,
    rounds: usize,
    bound: Duration,
    label: &str,
) -> Duration {
    let mut slowest = Duration::ZERO;
    let mut timed = |what: String, started: Instant| {
        let took = started.elapsed();
        assert!(
            took < bound,
            "{label}: {what} took {took:?} (bound {bound:?})"
        );
        slowest = slowest.max(took);
    };
    for i in 0..rounds {
        let t = Instant::now();
        store
            .get("bad/k")
            .await
            .unwrap_or_else(|e| panic!("{label}: get {i}: {e}"));
        timed(format!("get {i}"), t);
        let t = Instant::now();
        store
            .list("bad/", None, 100)
            .await
            .unwrap_or_else(|e| panic!("{label}: list {i}: {e}"));
        timed(format!("list {i}"), t);
        let t = Instant::now();
        let created = store
            .txn(
                Txn::new()
                    .when(flotilla_store::Compare::Absent(format!("bad/{label}/c{i}")))
                    .put(format!("bad/{label}/c{i}"), b"c".to_vec()),
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: create {i}: {e}"));
        assert!(
            matches!(created, TxnOutcome::Committed { .. }),
            "{label}: {created:?}"
        );
        timed(format!("create {i}"), t);
        let t = Instant::now();
        let put = store
            .txn(Txn::new().put("bad/k", i.to_string().into_bytes()))
            .await
            .unwrap_or_else(|e| panic!("{label}: put {i}: {e}"));
        assert!(
            matches!(put, TxnOutcome::Committed { .. }),
            "{label}: {put:?}"
        );
        timed(format!("put {i}"), t);
        assert!(
            term.is_lost().is_none(),
            "{label}: the leader lost its term after round {i}: {:?}",
            term.is_lost()
        );
    }
    slowest
}

/// A store on `hosts` (installation `onebad`) whose election `id` (TTL 3 s) holds a term, with a
/// first write made through it (so its preferred member has an open connection).
async fn elected_warm_store(
    hosts: &[String],
    id: &str,
) -> (EtcdStore, flotilla_store::etcd::EtcdElection, Term) {
    let store = store_at(
        &format!("etcd://{}/onebad", hosts.join(",")),
        EtcdOptions::default(),
    )
    .await;
    let election = store.election(
        id,
        flotilla_store::etcd::ElectionOptions {
            ttl: Duration::from_secs(3),
        },
    );
    let term = tokio::time::timeout(Duration::from_secs(10), election.campaign())
        .await
        .expect("campaign stalled")
        .unwrap();
    put(&store, "bad/k", "warm").await;
    (store, election, term)
}

/// The bug: with one member cut off (its connections dropped, new ones refused, as in a zone
/// cut) or frozen (SIGSTOP), every replica's requests kept going to it. Now each request gets
/// through within 2 s, and an elected leader (TTL 3 s) keeps its term for the whole outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cut_or_frozen_member_does_not_fail_requests_or_terms() {
    const ROUNDS: usize = 20;
    const BOUND: Duration = Duration::from_secs(2);
    bounded(150, async {
        let cluster = EtcdCluster::start().await;
        // A follower, so that the raft cluster itself keeps its leader when it is frozen.
        let raft_leader = cluster.leader().await.unwrap();
        let bad = (raft_leader + 1) % 3;
        let proxy = Proxy::start(cluster.members[bad].client_port).await;
        let slot = preferred_index(3);
        let mut others = (0..3).filter(|&i| i != bad);
        let hosts: Vec<String> = (0..3)
            .map(|i| {
                let port = if i == slot {
                    proxy.port
                } else {
                    cluster.members[others.next().unwrap()].client_port
                };
                format!("127.0.0.1:{port}")
            })
            .collect();
        let (store, election, term) = elected_warm_store(&hosts, "r1").await;

        // 1. The bad member's proxy cut: connect errors.
        proxy.cut();
        let started = Instant::now();
        let slowest_cut = survive_one_bad_member(&store, &term, ROUNDS, BOUND, "cut").await;
        // Outlast the lease's TTL twice over: renewals must have gone elsewhere.
        tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;
        assert!(
            term.is_lost().is_none(),
            "cut: term lost: {:?}",
            term.is_lost()
        );
        eprintln!(
            "cut: {} ops in {:?}, slowest {slowest_cut:?}",
            ROUNDS * 4,
            started.elapsed()
        );
        proxy.heal();
        // Let the probe put the member back in use.
        tokio::time::sleep(Duration::from_secs(2)).await;
        survive_one_bad_member(&store, &term, 2, BOUND, "healed").await;
        election.resign(term).await.unwrap();

        // 2. The bad member frozen (SIGSTOP): connections stay open, nothing answers. A fresh
        // store and term, so that the frozen member is again the preferred one, with an open
        // connection (the warm-up goes through it).
        let (store, election, term) = elected_warm_store(&hosts, "r2").await;
        cluster.members[bad].freeze();
        let started = Instant::now();
        let slowest_frozen = survive_one_bad_member(&store, &term, ROUNDS, BOUND, "frozen").await;
        tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;
        let lost = term.is_lost();
        cluster.members[bad].thaw();
        assert!(lost.is_none(), "frozen: term lost: {lost:?}");
        eprintln!(
            "frozen: {} ops in {:?}, slowest {slowest_frozen:?}",
            ROUNDS * 4,
            started.elapsed()
        );
        election.resign(term).await.unwrap();
    })
    .await;
}
