//! The whole agent against the real server (the axum router in process) and real Docker:
//! register, session, RunTask -> RUNNING with a reachable host port, StopTask -> STOPPED, and a
//! restarted agent that stays the same container instance.
//!
//! Needs Docker and `flotilla/busybox:latest` (`scripts/images`); fails loudly without them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: any failure must fail the test loudly.

#[path = "../../agent/tests/common/mod.rs"]
mod common;
mod server;

use common::{init_tracing, Cleanup, IMAGE};
use flotilla_agent::client::EcsClient;
use flotilla_agent::AgentConfig;
use flotilla_api::router;
use flotilla_store::MemoryStore;
use serde_json::json;
use server::{creds, instances, until};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

async fn serve() -> String {
    let api = server::api(Arc::new(MemoryStore::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = router(Arc::new(api));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

fn start_agent(
    url: &str,
    cluster: &str,
    dir: &std::path::Path,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut cfg = AgentConfig::new(cluster, url, dir, creds());
    cfg.usage_interval = Duration::from_secs(1);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        flotilla_agent::run(cfg, async {
            let _ = rx.await;
        })
        .await
        .expect("the agent runs");
    });
    (tx, join)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_registers_runs_and_stops_a_task_and_restarts_as_the_same_instance() {
    init_tracing();
    let cluster = format!("e2e-{}", std::process::id());
    let _cleanup = Cleanup::cluster(&cluster);
    let url = serve().await;
    let client = EcsClient::new(&url, creds(), "us-east-1").unwrap();
    server::cluster_with(
        &client,
        &cluster,
        json!({
                "family": "e2e-web",
                "networkMode": "bridge",
                "containerDefinitions": [{
                    "name": "web",
                    "image": IMAGE,
                    "memory": 64,
                    "essential": true,
                    "entryPoint": ["httpd"],
                    "command": ["-f", "-p", "8080", "-h", "/www"],
                    "portMappings": [{"containerPort": 8080, "hostPort": 0}],
                    "linuxParameters": {"initProcessEnabled": true},
                    "stopTimeout": 5
                }]
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (stop_agent, agent) = start_agent(&url, &cluster, dir.path());

    let inst = until("an instance with a connected agent", 30, async || {
        let list = instances(&client, &cluster).await;
        list.first()
            .filter(|i| i["agentConnected"] == json!(true))
            .cloned()
    })
    .await;
    let inst_arn = inst["containerInstanceArn"].as_str().unwrap().to_string();
    assert!(inst["ec2InstanceId"].as_str().unwrap().starts_with("i-"));
    assert_eq!(
        inst["versionInfo"]["agentVersion"],
        env!("CARGO_PKG_VERSION")
    );
    let cpu = inst["registeredResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "CPU")
        .unwrap()["integerValue"]
        .as_i64()
        .unwrap();
    assert_eq!(cpu % 1024, 0);

    let run = client
        .call(
            "RunTask",
            &json!({"cluster": cluster, "taskDefinition": "e2e-web"}),
        )
        .await
        .unwrap();
    let task_arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    let describe = async || {
        let d = client
            .call(
                "DescribeTasks",
                &json!({"cluster": cluster, "tasks": [task_arn]}),
            )
            .await
            .unwrap();
        d["tasks"][0].clone()
    };
    let running = until("RUNNING", 30, async || {
        let t = describe().await;
        (t["lastStatus"] == "RUNNING").then_some(t)
    })
    .await;
    let port = running["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap();
    // RUNNING means the container started; the server inside may need a moment to listen.
    let answer = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut out = String::new();
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port as u16)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
                    let _ = s.read_to_string(&mut out);
                }
            }
            if out.starts_with("HTTP/1.") || std::time::Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1."), "{answer}");

    client
        .call(
            "StopTask",
            &json!({"cluster": cluster, "task": task_arn, "reason": "e2e done"}),
        )
        .await
        .unwrap();
    let stopped = until("STOPPED", 30, async || {
        let t = describe().await;
        (t["lastStatus"] == "STOPPED").then_some(t)
    })
    .await;
    assert!(
        stopped["containers"][0]["exitCode"].is_number(),
        "{stopped}"
    );
    assert_eq!(stopped["stopCode"], "UserInitiated");

    // A restarted agent on the same data directory is the same instance.
    stop_agent.send(()).unwrap();
    agent.await.unwrap();
    let (stop_agent, agent) = start_agent(&url, &cluster, dir.path());
    until("the same instance, connected again", 30, async || {
        let list = instances(&client, &cluster).await;
        (list.len() == 1
            && list[0]["containerInstanceArn"] == json!(inst_arn)
            && list[0]["agentConnected"] == json!(true))
        .then(|| list[0].clone())
    })
    .await;
    stop_agent.send(()).unwrap();
    agent.await.unwrap();
}
