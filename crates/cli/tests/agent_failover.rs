//! An agent given two server replicas (`--server URL1,URL2`) moves from one to the other: two
//! routers in process on one shared `MemoryStore` (the replicas of one region), real Docker.
//! The agent registers through replica 1 and runs two tasks; replica 1 dies with every
//! connection it held; while no replica answers, one task's container is killed (a report
//! produced during the move); replica 2 comes up, the agent's session moves there within a
//! bound, the report is applied (that task STOPPED), and the other task's container was never
//! restarted. Then replica 1 returns: the agent's session moves back to it (its first, preferred
//! replica) by itself, and the instance never shows disconnected during that move.
//!
//! Needs Docker and `flotilla/busybox:latest` (`scripts/images`); fails loudly without them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: any failure must fail the test loudly.

#[path = "../../agent/tests/common/mod.rs"]
mod common;
mod server;

use common::{docker, docker_inspect, init_tracing, try_docker, Cleanup, IMAGE};
use flotilla_agent::client::EcsClient;
use flotilla_agent::AgentConfig;
use flotilla_api::router;
use flotilla_store::{MemoryStore, Store};
use serde_json::{json, Value};
use server::{creds, instances, until};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One server replica on its own runtime, so that killing it drops every connection it held
/// (the agent's WebSocket included), as a dead process would.
struct Replica {
    url: String,
    api: Arc<flotilla_api::Api>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    fn start(store: Arc<dyn Store>, listener: std::net::TcpListener) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let (api_tx, api_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let api = Arc::new(server::api(store));
                api_tx.send(api.clone()).unwrap();
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, router(api)).await;
                });
                let _ = killed.await;
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        Replica {
            url,
            api: api_rx.recv().unwrap(),
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Like `kill -9`: the listener and every open connection go at once.
    fn kill(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn loopback() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

/// The task as the server describes it (`None` while no replica answers).
async fn task(client: &EcsClient, cluster: &str, arn: &str) -> Option<Value> {
    let d = client
        .call(
            "DescribeTasks",
            &json!({"cluster": cluster, "tasks": [arn]}),
        )
        .await
        .ok()?;
    Some(d["tasks"][0].clone())
}

/// The Docker container of a task's only container.
fn container_of(task_arn: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label={}={task_arn}", flotilla_protocol::labels::TASK_ARN),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_moves_to_another_replica_keeping_its_tasks_and_reports() {
    init_tracing();
    assert!(
        try_docker(&["version", "--format", "{{.Server.Version}}"]).is_some_and(|v| !v.is_empty()),
        "this test needs a running Docker engine"
    );
    assert!(
        try_docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE])
            .is_some_and(|v| !v.is_empty()),
        "this test needs {IMAGE} (scripts/images)"
    );
    let cluster = format!("failover-{}", std::process::id());
    let _cleanup = Cleanup::cluster(&cluster);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut one = Replica::start(store.clone(), loopback());
    // Replica 2's address is chosen now and served only once replica 1 is dead.
    let two_addr = loopback().local_addr().unwrap();
    let two_url = format!("http://{two_addr}");
    let servers = format!("{},{two_url}", one.url);

    // The test's own client is given both replicas too.
    let client = EcsClient::new(&servers, creds(), "us-east-1").unwrap();
    server::cluster_with(
        &client,
        &cluster,
        json!({
                "family": "failover-sleep",
                "containerDefinitions": [{
                    "name": "main",
                    "image": IMAGE,
                    "memory": 32,
                    "essential": true,
                    "command": ["sleep", "3600"],
                    "stopTimeout": 2
                }]
        }),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AgentConfig::new(&cluster, &servers, dir.path(), creds());
    cfg.usage_interval = Duration::from_secs(1);
    let (stop_agent, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(async move {
        flotilla_agent::run(cfg, async {
            let _ = stopped.await;
        })
        .await
        .expect("the agent runs");
    });

    let mut arns = Vec::new();
    for _ in 0..2 {
        // RunTask needs the instance registered and connected first.
        let arn = until("RunTask placed on the agent", 30, async || {
            let run = client
                .call(
                    "RunTask",
                    &json!({"cluster": cluster, "taskDefinition": "failover-sleep"}),
                )
                .await
                .ok()?;
            run["tasks"][0]["taskArn"].as_str().map(str::to_string)
        })
        .await;
        arns.push(arn);
    }
    for arn in &arns {
        until("RUNNING through replica 1", 60, async || {
            task(&client, &cluster, arn)
                .await
                .filter(|t| t["lastStatus"] == "RUNNING")
        })
        .await;
    }
    let (steady, doomed) = (&arns[0], &arns[1]);
    let steady_container = container_of(steady);
    let steady_started = docker_inspect(&steady_container, "{{.State.StartedAt}}");
    let doomed_container = container_of(doomed);

    // Replica 1 dies; while no replica answers, a container exits (the engine reports it).
    let killed_at = Instant::now();
    one.kill();
    docker(&["kill", &doomed_container]);
    until("the killed container exited", 20, async || {
        (docker_inspect(&doomed_container, "{{.State.Running}}") == "false").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!agent.is_finished(), "the agent runs on without a server");

    // Replica 2 comes up on the same store; the session moves there and the report lands.
    let two_started_at = Instant::now();
    let mut two = Replica::start(
        store.clone(),
        std::net::TcpListener::bind(two_addr).unwrap(),
    );
    assert_eq!(two.url, two_url);
    let applied = until("the report applied through replica 2", 45, async || {
        task(&client, &cluster, doomed)
            .await
            .filter(|t| t["lastStatus"] == "STOPPED")
    })
    .await;
    let moved_in = two_started_at.elapsed();
    let outage = killed_at.elapsed();
    eprintln!(
        "failover: replica 2 up {:.1}s after replica 1 died; the agent's report applied {:.1}s after replica 2 came up ({:.1}s after the kill)",
        (two_started_at - killed_at).as_secs_f64(),
        moved_in.as_secs_f64(),
        outage.as_secs_f64()
    );
    assert!(
        moved_in < Duration::from_secs(20),
        "the move took {moved_in:?}"
    );
    assert_eq!(
        applied["containers"][0]["exitCode"],
        json!(137),
        "{applied}"
    );
    assert_eq!(client.endpoints().current().1, two_url);

    // The other task never stopped: same container, never restarted, still RUNNING.
    assert_eq!(container_of(steady), steady_container);
    assert_eq!(
        docker_inspect(
            &steady_container,
            "{{.State.Running}} {{.State.StartedAt}} {{.RestartCount}}"
        ),
        format!("true {steady_started} 0")
    );
    let t = task(&client, &cluster, steady).await.unwrap();
    assert_eq!(t["lastStatus"], "RUNNING", "{t}");
    let inst = until("the instance connected through replica 2", 10, async || {
        let i = instances(&client, &cluster).await.first().cloned()?;
        (i["agentConnected"] == json!(true)).then_some(i)
    })
    .await;
    assert_eq!(inst["runningTasksCount"], json!(1), "{inst}");

    // Replica 1 returns on its address: the agent's session goes back to it (its preferred
    // replica) after a few ready probes, and the move never shows the instance disconnected
    // (a disconnect would make services replace its tasks).
    let one_addr = one.url.trim_start_matches("http://").to_string();
    let one_again = Replica::start(
        store.clone(),
        std::net::TcpListener::bind(&one_addr).unwrap(),
    );
    let key = flotilla_control::keys::instance_key(
        &cluster,
        inst["containerInstanceArn"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap(),
    );
    let back_at = Instant::now();
    let deadline = back_at
        + flotilla_agent::session::HOME_PROBE_INTERVAL
            * (flotilla_agent::session::HOME_PROBE_PASSES + 3);
    let mut samples = 0;
    while !one_again.api.agents.has_session(&key) {
        assert!(
            Instant::now() < deadline,
            "the session did not move back to replica 1 within {:?}",
            deadline - back_at
        );
        let i = instances(&client, &cluster).await;
        assert_eq!(
            i[0]["agentConnected"],
            json!(true),
            "during the move home: {}",
            i[0]
        );
        samples += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "the session moved back to replica 1 {:.1}s after it returned ({samples} samples, all connected)",
        back_at.elapsed().as_secs_f64()
    );
    for _ in 0..10 {
        let i = instances(&client, &cluster).await;
        assert_eq!(
            i[0]["agentConnected"],
            json!(true),
            "after the move home: {}",
            i[0]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !two.api.agents.has_session(&key),
        "the session left replica 2"
    );

    stop_agent.send(()).unwrap();
    agent.await.unwrap();
    two.kill();
    drop(one_again);
}
