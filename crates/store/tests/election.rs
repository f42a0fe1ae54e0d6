//! Leader election and fencing on real etcd (`support/mod.rs`): one leader at a time, a
//! resignation handed over at once, a dead leader's lease lapsing within its TTL, and a
//! leader cut off from etcd that notices the loss by itself while its fenced transaction,
//! sent after another replica took over, is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use flotilla_store::etcd::{ElectionOptions, EtcdConfig, EtcdElection, EtcdOptions, EtcdStore};
use flotilla_store::{Election, LostReason, Store, Term, Txn};

use support::{EtcdServer, Proxy};

/// The lease TTL of these tests.
const TTL: Duration = Duration::from_secs(2);

async fn bounded(secs: u64, test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"));
}

async fn replica(url: &str, id: &str) -> (EtcdStore, EtcdElection) {
    let store = EtcdStore::connect(EtcdConfig::parse(url).unwrap(), EtcdOptions::default())
        .await
        .unwrap();
    let election = store.election(id, ElectionOptions { ttl: TTL });
    (store, election)
}

/// Campaigns in the background; the handle yields the term and when it was won.
fn campaign(e: &EtcdElection) -> tokio::task::JoinHandle<(Term, Instant)> {
    let e = e.clone();
    tokio::spawn(async move {
        let term = e.campaign().await.unwrap();
        (term, Instant::now())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_resignation_hands_over_at_once() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let url = server.url("elect");
        let (_sa, a) = replica(&url, "a").await;
        let (_sb, b) = replica(&url, "b").await;
        assert_eq!(a.leader().await.unwrap(), None);
        let ta = a.campaign().await.unwrap();
        let leader = a.leader().await.unwrap().unwrap();
        assert_eq!((leader.id.as_str(), leader.term), ("a", ta.term()));
        let waiting = campaign(&b);
        // Past a whole TTL (renewals keep a's lease), b still waits.
        tokio::time::sleep(TTL * 2).await;
        assert!(!waiting.is_finished(), "b won while a leads");
        assert_eq!(ta.is_lost(), None);
        let resigned = Instant::now();
        a.resign(ta).await.unwrap();
        let (tb, won) = waiting.await.unwrap();
        eprintln!("handover after resign: {:?}", won - resigned);
        assert!(won - resigned < TTL, "b took {:?}", won - resigned);
        let leader = b.leader().await.unwrap().unwrap();
        assert_eq!((leader.id.as_str(), leader.term), ("b", tb.term()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_lease_lapses_within_its_ttl() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let url = server.url("lapse");
        let (_sa, a) = replica(&url, "a").await;
        let (_sb, b) = replica(&url, "b").await;
        let ta = a.campaign().await.unwrap();
        let waiting = campaign(&b);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let died = Instant::now();
        // Dropping the term stops the renewals without revoking, as when the process dies.
        drop(ta);
        let (tb, won) = waiting.await.unwrap();
        eprintln!("takeover after the leader died: {:?}", won - died);
        assert!(
            won - died < TTL + Duration::from_secs(2),
            "{:?}",
            won - died
        );
        assert_eq!(b.leader().await.unwrap().unwrap().term, tb.term());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_notices_and_its_fenced_writes_are_refused() {
    bounded(90, async {
        let server = EtcdServer::start().await;
        let proxy = Proxy::start(server.member.client_port).await;
        let (store_a, a) = replica(&format!("etcd://127.0.0.1:{}/fence", proxy.port), "a").await;
        let (store_b, b) = replica(&server.url("fence"), "b").await;
        let mut ta = a.campaign().await.unwrap();
        let fence_a = ta.fence().clone();
        // While a leads, its fenced writes commit.
        let t = Txn::new()
            .put("services/x", b"a1".to_vec())
            .fenced(&fence_a);
        assert!(store_a.txn(t).await.unwrap().is_committed());
        let waiting = campaign(&b);

        let cut = Instant::now();
        proxy.cut();
        let reason = tokio::time::timeout(TTL * 3, ta.lost())
            .await
            .expect("the cut-off leader never noticed");
        let noticed = cut.elapsed();
        assert_eq!(reason, LostReason::Unrenewed);
        assert!(noticed <= TTL + Duration::from_millis(500), "{noticed:?}");
        let (tb, won) = waiting.await.unwrap();
        eprintln!(
            "cut-off leader noticed after {noticed:?}; the other took over after {:?}",
            won - cut
        );
        assert!(tb.term() > ta.term());

        // The deposed leader comes back and sends a write fenced with its old term.
        proxy.heal();
        let t = Txn::new()
            .put("services/x", b"a2".to_vec())
            .fenced(&fence_a);
        let deadline = Instant::now() + Duration::from_secs(20);
        let out = loop {
            match store_a.txn(t.clone()).await {
                Ok(out) => break out,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("deposed leader's write: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(fence_a.refused(&t, &out), "{out:?}");
        let t = Txn::new()
            .put("services/x", b"b1".to_vec())
            .fenced(tb.fence());
        assert!(store_b.txn(t).await.unwrap().is_committed());
        let kv = store_b.get("services/x").await.unwrap().unwrap();
        assert_eq!(kv.value, b"b1");
    })
    .await;
}
