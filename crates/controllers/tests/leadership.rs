//! The leadership supervisor on real etcd (the store's test support: one `etcd` process per
//! test): two replicas' supervisors, each running the real controllers on its own plane; at
//! most one runs them at any sampled moment; when the leader's supervisor is dropped (as when
//! its process dies) or cut off from etcd, the other takes over within the lease TTL and a
//! little, and the cut-off one stops its controllers by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_controllers::{Controllers, Plane, Role, Supervisor, SystemClock};
use flotilla_model::arn::ArnContext;
use flotilla_store::etcd::{ElectionOptions, EtcdConfig, EtcdOptions, EtcdStore};

use support::{EtcdServer, Proxy};

const TTL: Duration = Duration::from_secs(2);

async fn bounded(secs: u64, test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"));
}

/// Counts the replicas whose controllers run.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One replica: a store on `url`, a plane on it, and a supervisor running its controllers.
async fn replica(url: &str, id: &str, running: &Arc<AtomicUsize>) -> Supervisor {
    let store = EtcdStore::connect(EtcdConfig::parse(url).unwrap(), EtcdOptions::default())
        .await
        .unwrap();
    let election = Arc::new(store.election(id, ElectionOptions { ttl: TTL }));
    let plane = Arc::new(Plane::new(
        Arc::new(store),
        ArnContext {
            region: "us-east-1".into(),
            account: "000000000000".into(),
        },
        Arc::new(SystemClock),
    ));
    let running = running.clone();
    Supervisor::spawn_with(election, move |fence| {
        let controllers = Controllers::start(&plane, fence);
        running.fetch_add(1, Ordering::SeqCst);
        (controllers, Running(running.clone()))
    })
}

fn leads(s: &Supervisor) -> bool {
    matches!(*s.role().borrow(), Role::Leader { .. })
}

/// Samples every 10 ms until `done`: never more than one replica runs controllers.
async fn until_at_most_one_runs(running: &AtomicUsize, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        let n = running.load(Ordering::SeqCst);
        assert!(n <= 1, "{n} replicas run controllers");
        assert!(Instant::now() < deadline, "condition not reached in 20 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_runs_controllers_and_the_other_takes_over_when_it_dies() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let url = server.url("supervised");
        let running = Arc::new(AtomicUsize::new(0));
        let a = replica(&url, "a", &running).await;
        a.role()
            .wait_for(|r| matches!(r, Role::Leader { .. }))
            .await
            .unwrap();
        let b = replica(&url, "b", &running).await;
        // Two TTLs: the leader renews its lease; b keeps waiting, and only one runs.
        let settle = Instant::now() + TTL * 2;
        until_at_most_one_runs(&running, || Instant::now() >= settle).await;
        assert!(leads(&a) && !leads(&b));
        assert_eq!(running.load(Ordering::SeqCst), 1);

        let died = Instant::now();
        drop(a);
        until_at_most_one_runs(&running, || leads(&b)).await;
        let failover = died.elapsed();
        eprintln!("failover after the leader's supervisor was dropped: {failover:?}");
        assert!(failover < TTL + Duration::from_millis(1500), "{failover:?}");
        let settle = Instant::now() + Duration::from_millis(300);
        until_at_most_one_runs(&running, || Instant::now() >= settle).await;
        assert_eq!(running.load(Ordering::SeqCst), 1);
        b.shutdown().await;
        assert_eq!(running.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_stops_its_controllers_before_the_other_starts() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let proxy = Proxy::start(server.member.client_port).await;
        let running = Arc::new(AtomicUsize::new(0));
        let a = replica(
            &format!("etcd://127.0.0.1:{}/cut", proxy.port),
            "a",
            &running,
        )
        .await;
        a.role()
            .wait_for(|r| matches!(r, Role::Leader { .. }))
            .await
            .unwrap();
        let b = replica(&server.url("cut"), "b", &running).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(leads(&a) && !leads(&b));

        let cut = Instant::now();
        proxy.cut();
        until_at_most_one_runs(&running, || leads(&b)).await;
        let failover = cut.elapsed();
        eprintln!("failover after the leader was cut off: {failover:?}");
        assert!(!leads(&a), "the cut-off leader still leads");
        assert!(failover < TTL + Duration::from_millis(1500), "{failover:?}");

        // Healed, the old leader campaigns again and waits.
        proxy.heal();
        let settle = Instant::now() + TTL * 2;
        until_at_most_one_runs(&running, || Instant::now() >= settle).await;
        assert!(leads(&b) && !leads(&a));
        // A graceful shutdown resigns: the other takes over at once, not after a TTL.
        let resigned = Instant::now();
        b.shutdown().await;
        until_at_most_one_runs(&running, || leads(&a)).await;
        let handover = resigned.elapsed();
        eprintln!("handover after a graceful shutdown: {handover:?}");
        assert!(handover < TTL, "{handover:?}");
    })
    .await;
}
