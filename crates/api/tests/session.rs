//! The agent session over a real socket: a WebSocket client signed with SigV4 against the axum
//! router on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use flotilla_api::{AgentTimings, Api};
use flotilla_control::keys::{agent_beat_key, BeatRecord};
use flotilla_controllers::agents::set_agent_connected;
use flotilla_model::shapes::{NetworkBinding, TaskStopCode, TransportProtocol};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_protocol::{
    AgentMessage, ContainerStateReport, DesiredStatus, ServerMessage, TaskStateReport, SESSION_PATH,
};
use flotilla_sigv4::{Request, Signer};
use flotilla_store::{Election, Leader, MemoryStore, Store, StoreError, Term};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every wait is bounded by this deadline; the tests never sleep a fixed time.
const DEADLINE: Duration = Duration::from_secs(10);

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn connect(
    addr: &str,
    instance: &str,
    sign: bool,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let query = format!("containerInstance={}", encode(instance));
    let url = format!("ws://{addr}{SESSION_PATH}?{query}");
    let mut req = url.as_str().into_client_request().unwrap();
    if sign {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let headers = flotilla_sigv4::sign(
            &Request {
                method: "GET",
                path: SESSION_PATH,
                query: &query,
                headers: &[("host", addr)],
                body: b"",
            },
            &Signer {
                region: REGION,
                access_key_id: AKID,
                secret_access_key: SECRET,
                session_token: None,
            },
            now,
        );
        for (k, v) in headers {
            req.headers_mut().insert(
                k.parse::<tokio_tungstenite::tungstenite::http::HeaderName>()
                    .unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn next_message(ws: &mut Ws) -> ServerMessage {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a server message before the deadline")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            return flotilla_protocol::decode(t.as_str()).unwrap();
        }
    }
}

async fn send(ws: &mut Ws, msg: &AgentMessage) {
    ws.send(Message::text(flotilla_protocol::encode(msg).unwrap()))
        .await
        .unwrap();
}

fn report(
    seq: u64,
    task: &str,
    version: u64,
    status: TaskStatus,
    c: ContainerStatus,
) -> TaskStateReport {
    TaskStateReport {
        seq,
        task_arn: task.into(),
        version,
        last_status: status,
        containers: vec![ContainerStateReport {
            name: "app".into(),
            runtime_id: Some("deadbeef".into()),
            last_status: c,
            exit_code: (c == ContainerStatus::Stopped).then_some(0),
            reason: None,
            network_bindings: vec![NetworkBinding {
                bind_ip: Some("0.0.0.0".into()),
                container_port: Some(80),
                host_port: Some(8080),
                protocol: Some(TransportProtocol::Tcp),
                container_port_range: None,
                host_port_range: None,
            }],
            health_status: None,
            image_digest: None,
            managed_agents: vec![],
        }],
        pull_started_at: Some(1.0e9),
        pull_stopped_at: Some(1.0e9 + 1.0),
        started_at: (status >= TaskStatus::Running).then_some(1.0e9 + 2.0),
        execution_stopped_at: None,
        stop_code: None,
        stopped_reason: None,
        health_status: None,
    }
}

async fn agent_connected(api: &Api, cluster: &str, instance: &str) -> bool {
    let d = ok(
        api,
        "DescribeContainerInstances",
        json!({"cluster": cluster, "containerInstances": [instance]}),
    )
    .await;
    d["containerInstances"][0]["agentConnected"]
        .as_bool()
        .unwrap()
}

async fn wait_connected(api: &Api, cluster: &str, instance: &str, want: bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while agent_connected(api, cluster, instance).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "agentConnected never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pushes_assignments_and_applies_reports() {
    let (api, addr) = serve(api().with_timings(AgentTimings {
        heartbeat_interval: Duration::from_millis(500),
        stopped_task_retention: Duration::from_secs(3600),
    }))
    .await;
    cluster(&api, "s1").await;
    let inst = register(&api, "s1", 1024, 1024, "us-east-1a").await;
    task_definition(&api, "web", 256, Some(8080)).await;

    // Unsigned: refused before the upgrade.
    match connect(&addr, &inst, false).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected a 403, got {:?}", other.map(|_| ())),
    }

    let mut ws = connect(&addr, &inst, true).await.unwrap();
    match next_message(&mut ws).await {
        ServerMessage::Welcome {
            container_instance_arn,
            heartbeat_interval_ms,
            ..
        } => {
            assert_eq!(container_instance_arn, inst);
            assert_eq!(heartbeat_interval_ms, 500);
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    assert_eq!(
        next_message(&mut ws).await,
        ServerMessage::Tasks {
            full: true,
            tasks: vec![]
        }
    );
    wait_connected(&api, "s1", &inst, true).await;

    // RunTask: the assignment is pushed.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "s1", "taskDefinition": "web",
        "overrides": {"containerOverrides": [{"name": "app", "command": ["echo", "over"]}]}}),
    )
    .await;
    let task = r["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    let a = match next_message(&mut ws).await {
        ServerMessage::Tasks {
            full: false,
            mut tasks,
        } => tasks.remove(0),
        other => panic!("expected an assignment, got {other:?}"),
    };
    assert_eq!(a.task_arn, task);
    assert_eq!(a.desired_status, DesiredStatus::Running);
    assert_eq!(a.version, 1);
    assert_eq!(
        a.containers[0].definition.command.as_deref(),
        Some(&["echo".to_string(), "over".to_string()][..])
    );

    // Reports: RUNNING, acknowledged, and visible in DescribeTasks.
    send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
    send(
        &mut ws,
        &AgentMessage::TaskState(report(
            1,
            &task,
            1,
            TaskStatus::Running,
            ContainerStatus::Running,
        )),
    )
    .await;
    assert_eq!(next_message(&mut ws).await, ServerMessage::Ack { seq: 1 });
    // A repeated report is harmless and acknowledged again.
    send(
        &mut ws,
        &AgentMessage::TaskState(report(
            1,
            &task,
            1,
            TaskStatus::Running,
            ContainerStatus::Running,
        )),
    )
    .await;
    assert_eq!(next_message(&mut ws).await, ServerMessage::Ack { seq: 1 });
    let d = ok(
        &api,
        "DescribeTasks",
        json!({"cluster": "s1", "tasks": [task]}),
    )
    .await;
    let t = &d["tasks"][0];
    assert_eq!(t["lastStatus"], "RUNNING");
    assert_eq!(t["version"], 2);
    assert_eq!(t["connectivity"], "CONNECTED");
    assert_eq!(t["startedAt"], 1.0e9 + 2.0);
    assert_eq!(t["pullStartedAt"], 1.0e9);
    assert_eq!(t["containers"][0]["lastStatus"], "RUNNING");
    assert_eq!(t["containers"][0]["runtimeId"], "deadbeef");
    assert_eq!(t["containers"][0]["networkBindings"][0]["hostPort"], 8080);
    let c = ok(&api, "DescribeClusters", json!({"clusters": ["s1"]})).await;
    assert_eq!(c["clusters"][0]["runningTasksCount"], 1);

    // StopTask: the stop is pushed with the user's stop code.
    ok(
        &api,
        "StopTask",
        json!({"cluster": "s1", "task": task, "reason": "enough"}),
    )
    .await;
    let a = match next_message(&mut ws).await {
        ServerMessage::Tasks {
            full: false,
            mut tasks,
        } => tasks.remove(0),
        other => panic!("expected the stop, got {other:?}"),
    };
    assert_eq!(a.desired_status, DesiredStatus::Stopped);
    assert_eq!(a.version, 2);
    assert_eq!(a.stop_code, Some(TaskStopCode::UserInitiated));
    assert_eq!(a.stop_reason.as_deref(), Some("enough"));
    let mut stopped = report(2, &task, 2, TaskStatus::Stopped, ContainerStatus::Stopped);
    stopped.execution_stopped_at = Some(1.0e9 + 5.0);
    send(&mut ws, &AgentMessage::TaskState(stopped)).await;
    assert_eq!(next_message(&mut ws).await, ServerMessage::Ack { seq: 2 });
    send(
        &mut ws,
        &AgentMessage::Usage {
            samples: vec![flotilla_protocol::TaskUsage {
                task_arn: task.clone(),
                cpu_units: 3.0,
                memory_mib: 12.0,
                sampled_at: 1.0e9 + 4.0,
            }],
        },
    )
    .await;
    let d = ok(
        &api,
        "DescribeTasks",
        json!({"cluster": "s1", "tasks": [task]}),
    )
    .await;
    let t = &d["tasks"][0];
    assert_eq!(t["lastStatus"], "STOPPED");
    assert_eq!(t["desiredStatus"], "STOPPED");
    assert_eq!(t["stopCode"], "UserInitiated");
    assert_eq!(t["stoppedReason"], "enough");
    assert_eq!(t["executionStoppedAt"], 1.0e9 + 5.0);
    assert!(t["stoppedAt"].is_number());
    assert_eq!(t["containers"][0]["exitCode"], 0);
    let d = ok(
        &api,
        "DescribeContainerInstances",
        json!({"cluster": "s1", "containerInstances": [inst]}),
    )
    .await;
    let ci = &d["containerInstances"][0];
    assert_eq!(
        resource(ci, "remainingResources", "MEMORY")["integerValue"],
        1024
    );
    assert!(
        !resource(ci, "remainingResources", "PORTS")["stringSetValue"]
            .as_array()
            .unwrap()
            .contains(&json!("8080"))
    );
    assert_eq!(ci["runningTasksCount"], 0);

    // Silence: after MISSED_HEARTBEATS intervals the session ends and the instance shows
    // disconnected.
    wait_connected(&api, "s1", &inst, false).await;
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(closed);
    assert!(api.agents.usage(&task).is_some());

    // A new session resumes: connected again, and the full state no longer lists the stopped
    // task.
    let mut ws = connect(&addr, &inst, true).await.unwrap();
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Welcome { .. }
    ));
    assert_eq!(
        next_message(&mut ws).await,
        ServerMessage::Tasks {
            full: true,
            tasks: vec![]
        }
    );
    wait_connected(&api, "s1", &inst, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_never_connects_is_marked_disconnected() {
    let (api, _addr) = serve(api().with_timings(AgentTimings {
        heartbeat_interval: Duration::from_millis(50),
        stopped_task_retention: Duration::from_secs(3600),
    }))
    .await;
    cluster(&api, "s2").await;
    let inst = register(&api, "s2", 1024, 1024, "us-east-1a").await;
    wait_connected(&api, "s2", &inst, false).await;
    // Placement then reports AGENT.
    task_definition(&api, "f", 64, None).await;
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "s2", "taskDefinition": "f"}),
    )
    .await;
    assert_eq!(r["failures"][0]["reason"], "AGENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_tasks_are_swept_after_the_retention() {
    let (api, _addr) = serve(api().with_timings(AgentTimings {
        heartbeat_interval: Duration::from_secs(10),
        stopped_task_retention: Duration::from_millis(100),
    }))
    .await;
    cluster(&api, "s3").await;
    register(&api, "s3", 1024, 1024, "us-east-1a").await;
    task_definition(&api, "f", 64, None).await;
    let inst = ok(&api, "ListContainerInstances", json!({"cluster": "s3"})).await
        ["containerInstanceArns"][0]
        .as_str()
        .unwrap()
        .to_string();
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "s3", "taskDefinition": "f"}),
    )
    .await;
    let task = r["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    ok(
        &api,
        "DeregisterContainerInstance",
        json!({"cluster": "s3", "containerInstance": inst, "force": true}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let d = ok(
            &api,
            "DescribeTasks",
            json!({"cluster": "s3", "tasks": [task]}),
        )
        .await;
        if d["failures"].as_array().unwrap().len() == 1 {
            assert_eq!(d["failures"][0]["reason"], "MISSING");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stopped task was never swept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_pool_host_runs_fargate_tasks_of_every_cluster() {
    let (api, addr) = serve(api()).await;
    let pool = flotilla_protocol::MANAGED_POOL;
    let inst = register(&api, pool, 2048, 4096, "us-east-1a").await;
    ok(
        &api,
        "RegisterTaskDefinition",
        json!({"family": "fg", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
               "cpu": "256", "memory": "512",
               "containerDefinitions": [{"name": "app", "image": "busybox"}]}),
    )
    .await;
    let net = json!({"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}});
    let mut arns = Vec::new();
    for c in ["p1", "p2"] {
        cluster(&api, c).await;
        let r = ok(
            &api,
            "RunTask",
            json!({"cluster": c, "taskDefinition": "fg", "launchType": "FARGATE",
                   "networkConfiguration": net}),
        )
        .await;
        arns.push(r["tasks"][0]["taskArn"].as_str().unwrap().to_string());
    }
    let mut ws = connect(&addr, &inst, true).await.unwrap();
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Welcome { .. }
    ));
    // The full state holds the Fargate tasks of both clusters, each with its network.
    let tasks = match next_message(&mut ws).await {
        ServerMessage::Tasks { full: true, tasks } => tasks,
        other => panic!("expected the full state, got {other:?}"),
    };
    let mut got: Vec<String> = tasks.iter().map(|a| a.task_arn.clone()).collect();
    got.sort();
    let mut want = arns.clone();
    want.sort();
    assert_eq!(got, want);
    let net0 = tasks[0]
        .network
        .clone()
        .expect("an awsvpc task has a network");
    assert_eq!(net0.subnet_cidr, "10.213.0.0/16");
    assert_eq!(net0.network_name, "flotilla-awsvpc");
    let used = || async {
        api.store
            .list(flotilla_controllers::records::ADDRESSES, None, 0)
            .await
            .unwrap()
            .items
            .len()
    };
    assert_eq!(used().await, 2);

    // The pool host reports a task of cluster p2 STOPPED: applied, and its address freed.
    let t = &tasks[0];
    let mut stopped = report(
        1,
        &t.task_arn,
        1,
        TaskStatus::Stopped,
        ContainerStatus::Stopped,
    );
    stopped.containers[0].network_bindings.clear();
    send(&mut ws, &AgentMessage::TaskState(stopped)).await;
    assert_eq!(next_message(&mut ws).await, ServerMessage::Ack { seq: 1 });
    let cluster_of = flotilla_model::arn::embedded_cluster(&t.task_arn).unwrap();
    let d = ok(
        &api,
        "DescribeTasks",
        json!({"cluster": cluster_of, "tasks": [t.task_arn]}),
    )
    .await;
    assert_eq!(d["tasks"][0]["lastStatus"], "STOPPED");
    assert_eq!(d["tasks"][0]["attachments"][0]["status"], "DELETED");
    assert_eq!(used().await, 1);
}

/// A replica that serves the API and agent sessions but never leads: its controllers never run.
struct NeverLeads;

#[async_trait::async_trait]
impl Election for NeverLeads {
    async fn campaign(&self) -> Result<Term, StoreError> {
        futures::future::pending().await
    }
    async fn resign(&self, _term: Term) -> Result<(), StoreError> {
        Ok(())
    }
    async fn leader(&self) -> Result<Option<Leader>, StoreError> {
        Ok(None)
    }
}

fn heartbeat_every(interval: Duration) -> AgentTimings {
    AgentTimings {
        heartbeat_interval: interval,
        stopped_task_retention: Duration::from_secs(3600),
    }
}

/// Two replicas on one store, each serving the API and sessions: `a` runs the controllers
/// (it leads), `b` never does.
async fn two_replicas(timings: AgentTimings) -> (Arc<Api>, Arc<Api>, String) {
    two_replicas_on(Arc::new(MemoryStore::new()), timings).await
}

/// [`two_replicas`] on `store`.
async fn two_replicas_on(
    store: Arc<dyn Store>,
    timings: AgentTimings,
) -> (Arc<Api>, Arc<Api>, String) {
    let (a, _) = serve(
        api_with(store.clone())
            .with_timings(timings)
            .with_replica_id("a"),
    )
    .await;
    let (b, addr_b) = serve(
        api_with(store)
            .with_timings(timings)
            .with_replica_id("b")
            .with_election(Arc::new(NeverLeads)),
    )
    .await;
    (a, b, addr_b)
}

/// A session of `inst` at `addr`, past its Welcome and full state.
async fn open_session(addr: &str, inst: &str) -> Ws {
    let mut ws = connect(addr, inst, true).await.unwrap();
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Welcome { .. }
    ));
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Tasks { full: true, .. }
    ));
    ws
}

fn instance_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_keeps_an_agent_heard_by_another_replica_connected() {
    let timings = heartbeat_every(Duration::from_millis(200));
    let (interval, limit) = (timings.heartbeat_interval, timings.silence_limit());
    let (a, b, addr_b) = two_replicas(timings).await;
    assert_eq!(b.role(), Some(flotilla_controllers::Role::Campaigning));
    cluster(&a, "r1").await;
    let inst = register(&b, "r1", 1024, 1024, "us-east-1a").await;
    let idle = register(&b, "r1", 1024, 1024, "us-east-1b").await;
    let mut ws = open_session(&addr_b, &inst).await;

    // The agent heartbeats on b for five silence limits: a never marks it disconnected.
    let until = Instant::now() + limit * 5;
    while Instant::now() < until {
        send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
        tokio::time::sleep(interval).await;
        assert!(
            agent_connected(&a, "r1", &inst).await,
            "the leader marked an agent heard by another replica disconnected"
        );
    }
    let beat = a
        .store
        .get(&agent_beat_key("r1", instance_id(&inst)))
        .await
        .unwrap()
        .expect("the session's beat");
    let beat: BeatRecord = serde_json::from_slice(&beat.value).unwrap();
    assert_eq!(beat.replica.as_deref(), Some("b"));
    // Registered through b, never connected: a marked it.
    assert!(!agent_connected(&a, "r1", &idle).await);

    // Silence: the instance shows disconnected within the silence limit and a little.
    let silent = Instant::now();
    wait_connected(&a, "r1", &inst, false).await;
    let took = silent.elapsed();
    eprintln!("silent agent marked disconnected after {took:?} (silence limit {limit:?})");
    assert!(took < limit + interval * 2, "took {took:?}");

    // Deregistration removes the beat.
    ok(
        &b,
        "DeregisterContainerInstance",
        json!({"cluster": "r1", "containerInstance": inst, "force": true}),
    )
    .await;
    let key = agent_beat_key("r1", instance_id(&inst));
    assert!(a.store.get(&key).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_heals_a_wrong_disconnect_within_a_heartbeat() {
    let timings = heartbeat_every(Duration::from_millis(500));
    let interval = timings.heartbeat_interval;
    let (a, b, addr_b) = two_replicas(timings).await;
    cluster(&a, "r2").await;
    let inst = register(&b, "r2", 1024, 1024, "us-east-1a").await;
    let mut ws = open_session(&addr_b, &inst).await;
    send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
    tokio::time::sleep(interval).await;
    assert!(agent_connected(&a, "r2", &inst).await);

    // As a replica the agent left would, racing this session's connect.
    let store = a.store.as_ref();
    set_agent_connected(store, "r2", instance_id(&inst), false, &|| true, None)
        .await
        .unwrap();
    assert!(!agent_connected(&a, "r2", &inst).await);
    let wrong = Instant::now();
    send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
    while !agent_connected(&a, "r2", &inst).await {
        assert!(
            wrong.elapsed() < interval,
            "still disconnected a heartbeat later"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("healed after {:?}", wrong.elapsed());
}

/// A store that can be taken down: every read and write fails while `down` (as etcd answers
/// while it has no leader); open watches stay open and see nothing, as writes fail.
struct Outage {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
    /// While set, open watches deliver nothing (what they hold comes after), as a watch on a
    /// connection to a cut-off etcd member stays silent until its keep-alive fails.
    stalled: Arc<std::sync::atomic::AtomicBool>,
}

impl Outage {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("etcdserver: no leader".into()));
        }
        Ok(())
    }
    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Store for Outage {
    async fn get(&self, key: &str) -> Result<Option<flotilla_store::KeyValue>, StoreError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<flotilla_store::Page, StoreError> {
        self.check()?;
        self.inner.list(prefix, after, limit).await
    }
    async fn txn(
        &self,
        txn: flotilla_store::Txn,
    ) -> Result<flotilla_store::TxnOutcome, StoreError> {
        self.check()?;
        self.inner.txn(txn).await
    }
    async fn revision(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.revision().await
    }
    async fn watch(
        &self,
        prefix: &str,
        after_revision: u64,
    ) -> Result<flotilla_store::WatchStream, StoreError> {
        self.check()?;
        let inner = self.inner.watch(prefix, after_revision).await?;
        let stalled = self.stalled.clone();
        Ok(Box::pin(futures::stream::unfold(
            inner,
            move |mut inner| {
                let stalled = stalled.clone();
                async move {
                    while stalled.load(std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let next = inner.next().await?;
                    Some((next, inner))
                }
            },
        )))
    }
}

/// An outage of the store stops every replica's beats as well as the leader's writes: an agent
/// that kept heartbeating throughout is not declared lost when the store comes back, however the
/// outage's end falls against its silence deadline (the outages below end from well before to
/// just before the deadline the last beat before them set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_does_not_make_a_heartbeating_agent_lost() {
    let timings = heartbeat_every(Duration::from_millis(200));
    let (interval, limit) = (timings.heartbeat_interval, timings.silence_limit());
    let store = Arc::new(Outage {
        inner: MemoryStore::new(),
        down: Default::default(),
        stalled: Default::default(),
    });
    let (a, b, addr_b) = two_replicas_on(store.clone(), timings).await;
    cluster(&a, "o1").await;
    let inst = register(&b, "o1", 1024, 1024, "us-east-1a").await;
    let mut ws = open_session(&addr_b, &inst).await;
    let key = format!("container-instances/o1/{}", instance_id(&inst));
    let connected = || async {
        let kv = store.inner.get(&key).await.unwrap().expect("the instance");
        let rec: flotilla_control::instances::InstanceRecord =
            serde_json::from_slice(&kv.value).unwrap();
        rec.instance.agent_connected
    };
    for tenths in [15, 20, 24, 27, 29] {
        let outage = limit * tenths / 30;
        // Heard normally for a silence limit first.
        let until = Instant::now() + limit;
        while Instant::now() < until {
            send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
            tokio::time::sleep(interval).await;
            assert!(connected().await);
        }
        // The store goes away for `outage` while the agent goes on heartbeating.
        store.set_down(true);
        let back = Instant::now() + outage;
        while Instant::now() < back {
            send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
            tokio::time::sleep(interval.min(back - Instant::now())).await;
        }
        store.set_down(false);
        let until = Instant::now() + limit * 2;
        while Instant::now() < until {
            send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
            let next = Instant::now() + interval;
            while Instant::now() < next {
                assert!(
                    connected().await,
                    "a heartbeating agent was declared lost after a store outage of {outage:?} \
                     (silence limit {limit:?})"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Silence still counts once the store answers.
    wait_connected(&a, "o1", &inst, false).await;
}

/// A watch that stalls (its connection to an etcd member that was cut off stays silent for
/// seconds before it fails over) while every beat is still written: the leader reads an
/// instance's beat before judging it, so a heartbeating agent is never declared lost for its
/// watch's silence; a silent agent still is, once the watch flows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watch_does_not_make_a_heartbeating_agent_lost() {
    let timings = heartbeat_every(Duration::from_millis(200));
    let (interval, limit) = (timings.heartbeat_interval, timings.silence_limit());
    let store = Arc::new(Outage {
        inner: MemoryStore::new(),
        down: Default::default(),
        stalled: Default::default(),
    });
    let (a, b, addr_b) = two_replicas_on(store.clone(), timings).await;
    cluster(&a, "s1").await;
    let inst = register(&b, "s1", 1024, 1024, "us-east-1a").await;
    let mut ws = open_session(&addr_b, &inst).await;
    let until = Instant::now() + limit;
    while Instant::now() < until {
        send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
        tokio::time::sleep(interval).await;
    }
    assert!(agent_connected(&a, "s1", &inst).await);
    // Every watch silent for three silence limits; the agent heartbeats (on a task of its own:
    // an observer's call may wait while the watches are stalled, the agent does not), its beats
    // are written.
    let beating = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let heartbeats = {
        let beating = beating.clone();
        tokio::spawn(async move {
            while beating.load(std::sync::atomic::Ordering::SeqCst) {
                send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: 0 }).await;
                tokio::time::sleep(interval).await;
            }
            ws
        })
    };
    store
        .stalled
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let until = Instant::now() + limit * 3;
    while Instant::now() < until {
        tokio::time::sleep(interval).await;
        assert!(
            agent_connected(&a, "s1", &inst).await,
            "a heartbeating agent was declared lost while the leader's watch was stalled"
        );
    }
    // The agent falls silent, its session still open.
    beating.store(false, std::sync::atomic::Ordering::SeqCst);
    let _ws = heartbeats.await.unwrap();
    store
        .stalled
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // Silence still counts.
    wait_connected(&a, "s1", &inst, false).await;
}
