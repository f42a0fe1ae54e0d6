//! The leadership supervisor on real etcd (the store's test support: one `etcd` process per
//! test): two replicas' supervisors, each running the real controllers on its own plane; at
//! most one runs them at any sampled moment; when the leader's supervisor is dropped (as when
//! its process dies) or cut off from etcd, the other takes over within the lease TTL and a
//! little, and the cut-off one stops its controllers by itself. And the fence: once the other
//! replica's term has started, every controller write of the deposed leader (the service loop's
//! reconcile, the sweeper, the liveness loop), driven by hand with its old term's fence, is
//! refused and leaves the store as it was, while the same writes with the new term's fence
//! commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_control::instances::InstanceRecord;
use flotilla_control::services::{
    deployment_id, new_deployment, service_key, ServiceRecord, ServiceStatus,
};
use flotilla_control::tasks::{Status, TaskRecord};
use flotilla_controllers::agents;
use flotilla_controllers::records::{instance_key, is_deposed, task_key};
use flotilla_controllers::service_loop::reconcile;
use flotilla_controllers::{Controllers, Plane, Role, Supervisor, SystemClock};
use flotilla_model::arn::ArnContext;
use flotilla_model::shapes::{NetworkMode, Service};
use flotilla_model::status::TaskStatus;
use flotilla_model::EcsError;
use flotilla_protocol::{DesiredStatus, TaskAssignment};
use flotilla_store::etcd::{ElectionOptions, EtcdConfig, EtcdElection, EtcdOptions, EtcdStore};
use flotilla_store::{Fence, Txn};
use tokio::sync::watch;

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

/// A plane on a store on `url`, and the store's election for the replica `id`.
async fn plane(url: &str, id: &str) -> (Arc<Plane>, Arc<EtcdElection>) {
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
    (plane, election)
}

/// One replica: a store on `url`, a plane on it, and a supervisor running its controllers.
async fn replica(url: &str, id: &str, running: &Arc<AtomicUsize>) -> Supervisor {
    let (plane, election) = plane(url, id).await;
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

/// A supervisor whose start function only hands out the term's fence (the test drives the
/// controllers' code by hand with it), and the plane it would run them on.
async fn fenced_replica(
    url: &str,
    id: &str,
) -> (Supervisor, Arc<Plane>, watch::Receiver<Option<Fence>>) {
    let (plane, election) = plane(url, id).await;
    let (tx, fences) = watch::channel(None);
    let sup = Supervisor::spawn_with(election, move |fence| {
        tx.send_replace(Some(fence.clone()));
    });
    (sup, plane, fences)
}

async fn fence_of(fences: &mut watch::Receiver<Option<Fence>>) -> Fence {
    fences
        .wait_for(Option::is_some)
        .await
        .unwrap()
        .clone()
        .unwrap()
}

const CLUSTER: &str = "c1";

/// A task of the service `web` (deployment `deployment`) on instance `i1`, RUNNING, or STOPPED
/// two hours before `now`.
fn task(plane: &Plane, id: &str, deployment: &str, stopped: bool, now: f64) -> TaskRecord {
    let arn = plane.arns.task(CLUSTER, id);
    let mut t = TaskRecord {
        cluster: CLUSTER.into(),
        id: id.into(),
        instance_id: "i1".into(),
        last_status: Status(if stopped {
            TaskStatus::Stopped
        } else {
            TaskStatus::Running
        }),
        ..TaskRecord::default()
    };
    t.task.task_arn = Some(arn.clone());
    t.task.group = Some("service:web".into());
    t.task.started_by = Some(deployment.into());
    t.task.started_at = Some(now - 7300.0);
    t.task.stopped_at = stopped.then_some(now - 7200.0);
    t.assignment = Some(TaskAssignment {
        task_arn: arn,
        cluster_arn: plane.arns.cluster(CLUSTER),
        task_definition_arn: "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1".into(),
        version: 1,
        desired_status: if stopped {
            DesiredStatus::Stopped
        } else {
            DesiredStatus::Running
        },
        stop_reason: None,
        stop_code: None,
        network_mode: NetworkMode::Bridge,
        cpu: None,
        memory: None,
        volumes: Vec::new(),
        pid_mode: None,
        ipc_mode: None,
        containers: Vec::new(),
        network: None,
        stop_grace_seconds: None,
        task_role_arn: None,
        service_name: None,
        enable_execute_command: false,
    });
    t
}

/// The records a leader's controllers would write: the service `web` scaled to 0 with one
/// task still RUNNING (the service loop stops it and writes the service), a task STOPPED two
/// hours ago (the sweeper deletes it) and the instance `i1`, connected (the liveness loop
/// marks it disconnected). Returns their keys.
async fn seed(plane: &Plane) -> Vec<String> {
    let now = plane.clock.now();
    let deployment = deployment_id(1);
    let service = ServiceRecord {
        service: Service {
            service_name: Some("web".into()),
            desired_count: 0,
            ..Service::default()
        },
        status: ServiceStatus::Active,
        cluster: CLUSTER.into(),
        deployments: vec![new_deployment(
            deployment.clone(),
            "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1",
            0,
            now,
        )],
        ..ServiceRecord::default()
    };
    let mut instance = InstanceRecord {
        cluster: CLUSTER.into(),
        id: "i1".into(),
        ..InstanceRecord::default()
    };
    instance.instance.agent_connected = true;
    let records = [
        (
            service_key(CLUSTER, "web"),
            serde_json::to_vec(&service).unwrap(),
        ),
        (
            task_key(CLUSTER, "t-run"),
            serde_json::to_vec(&task(plane, "t-run", &deployment, false, now)).unwrap(),
        ),
        (
            task_key(CLUSTER, "t-old"),
            serde_json::to_vec(&task(plane, "t-old", &deployment, true, now)).unwrap(),
        ),
        (
            instance_key(CLUSTER, "i1"),
            serde_json::to_vec(&instance).unwrap(),
        ),
    ];
    let mut txn = Txn::new();
    for (k, v) in &records {
        txn = txn.put(k.clone(), v.clone());
    }
    assert!(plane.store().txn(txn).await.unwrap().is_committed());
    records.into_iter().map(|(k, _)| k).collect()
}

/// Each seeded record's value and `mod_revision` (`None`: gone).
async fn snapshot(plane: &Plane, keys: &[String]) -> Vec<Option<(Vec<u8>, u64)>> {
    let mut out = Vec::new();
    for k in keys {
        let kv = plane.store().get(k).await.unwrap();
        out.push(kv.map(|kv| (kv.value, kv.mod_revision)));
    }
    out
}

/// Every background controller's write, as its loop makes it, with `fence`.
async fn controller_writes(plane: &Plane, fence: &Fence) -> [Result<(), EcsError>; 3] {
    let service = reconcile(plane, fence, CLUSTER, "web")
        .await
        .map(|done| assert!(done));
    let now = plane.clock.now();
    let sweep = agents::sweep(plane, fence, now)
        .await
        .map(|n| assert_eq!(n, 1));
    let wanted = || true;
    let liveness =
        agents::set_agent_connected(plane.store(), CLUSTER, "i1", false, &wanted, Some(fence))
            .await;
    [service, sweep, liveness]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_commits_no_controller_write_and_the_new_one_does() {
    bounded(60, async {
        let server = EtcdServer::start().await;
        let proxy = Proxy::start(server.member.client_port).await;
        let (a, plane_a, mut fences_a) =
            fenced_replica(&format!("etcd://127.0.0.1:{}/fence", proxy.port), "a").await;
        let fence_a = fence_of(&mut fences_a).await;
        let (b, plane_b, mut fences_b) = fenced_replica(&server.url("fence"), "b").await;
        let keys = seed(&plane_b).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(leads(&a) && !leads(&b));

        // a is cut off from etcd; b's term starts once a's lease lapses.
        let cut = Instant::now();
        proxy.cut();
        let fence_b = fence_of(&mut fences_b).await;
        eprintln!("b elected {:?} after the cut", cut.elapsed());
        assert_ne!(fence_a, fence_b);
        // a comes back (as a process that stalled past its lease) and, with its old term's
        // fence, makes every write its controllers would make.
        proxy.heal();
        let before = snapshot(&plane_b, &keys).await;
        let revision = plane_b.store().revision().await.unwrap();
        for (what, r) in ["service loop", "sweeper", "liveness"]
            .iter()
            .zip(controller_writes(&plane_a, &fence_a).await)
        {
            let e = r.expect_err(&format!("the deposed leader's {what} write committed"));
            assert!(is_deposed(&e), "{what}: {e}");
        }
        assert_eq!(snapshot(&plane_b, &keys).await, before, "the store changed");
        assert_eq!(
            plane_b.store().revision().await.unwrap(),
            revision,
            "something was written"
        );
        assert!(leads(&b) && !leads(&a));

        // The new leader's same writes commit.
        for (what, r) in ["service loop", "sweeper", "liveness"]
            .iter()
            .zip(controller_writes(&plane_b, &fence_b).await)
        {
            r.unwrap_or_else(|e| panic!("the leader's {what} write failed: {e}"));
        }
        let after = snapshot(&plane_b, &keys).await;
        let written = plane_b.store().revision().await.unwrap() - revision;
        eprintln!(
            "refused: 3 writes of the deposed leader; committed: {written} revisions of the leader"
        );
        let [service, running, old, instance] = [&after[0], &after[1], &after[2], &after[3]];
        assert!(
            service.as_ref().unwrap().1 > revision,
            "the service was not written"
        );
        let running: TaskRecord = serde_json::from_slice(&running.as_ref().unwrap().0).unwrap();
        assert_eq!(running.desired(), DesiredStatus::Stopped);
        assert!(old.is_none(), "the old stopped task was not swept");
        let instance: InstanceRecord =
            serde_json::from_slice(&instance.as_ref().unwrap().0).unwrap();
        assert!(!instance.instance.agent_connected);
        b.shutdown().await;
        drop(a);
    })
    .await;
}
