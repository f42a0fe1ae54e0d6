//! Task role credentials through the real router: issued on the session of the agent that runs
//! the task (reused in their first half-life), accepted with their session token by ECS and
//! Secrets Manager, refused without it, once expired and once the task is STOPPED; never
//! opening an agent session; a store failure during the lookup answered with each service's
//! own 5xx.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use async_trait::async_trait;
use common::*;
use common::{connect_session as connect, epoch_now as now, SessionWs as Ws};
use flotilla_control::task_credentials::{credential_key, TaskCredentialRecord};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_protocol::{
    AgentMessage, ContainerStateReport, CredentialsOutcome, RoleCredentials, ServerMessage,
    TaskStateReport,
};
use flotilla_sigv4::{Request, Signer};
use flotilla_store::{
    KeyValue, MemoryStore, Page, Store, StoreError, Txn, TxnOutcome, WatchStream,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const ROLE: &str = "arn:aws:iam::123456789012:role/app";
const DEADLINE: Duration = Duration::from_secs(10);

/// A store that fails every read while `down`.
struct Switchable {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Switchable {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn list(&self, p: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list(p, after, limit).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        self.check()?;
        self.inner.txn(txn).await
    }
    async fn revision(&self) -> Result<u64, StoreError> {
        self.inner.revision().await
    }
    async fn watch(&self, p: &str, from: u64) -> Result<WatchStream, StoreError> {
        self.inner.watch(p, from).await
    }
}

fn signer<'a>(akid: &'a str, secret: &'a str, token: Option<&'a str>) -> Signer<'a> {
    Signer {
        region: REGION,
        access_key_id: akid,
        secret_access_key: secret,
        session_token: token,
    }
}

async fn next_message(ws: &mut Ws) -> ServerMessage {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a message before the deadline")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            match flotilla_protocol::decode(t.as_str()).unwrap() {
                ServerMessage::LogGroups { .. } => continue,
                m => return m,
            }
        }
    }
}

async fn ask(ws: &mut Ws, request_id: u64, task_arn: &str) -> CredentialsOutcome {
    let msg = AgentMessage::GetCredentials {
        request_id,
        task_arn: task_arn.into(),
    };
    ws.send(Message::text(flotilla_protocol::encode(&msg).unwrap()))
        .await
        .unwrap();
    loop {
        if let ServerMessage::Credentials {
            request_id: id,
            outcome,
            ..
        } = next_message(ws).await
        {
            assert_eq!(id, request_id);
            return outcome;
        }
    }
}

fn issued(o: CredentialsOutcome) -> RoleCredentials {
    match o {
        CredentialsOutcome::Issued { credentials } => credentials,
        CredentialsOutcome::Failed { reason } => panic!("refused: {reason}"),
    }
}

/// POSTs `body` to `target` (signed for `service` with `s`): status and JSON body.
async fn post(addr: &str, service: &str, target: &str, body: &str, s: &Signer<'_>) -> (u16, Value) {
    let ct = "application/x-amz-json-1.1";
    let headers = [
        ("host", addr),
        ("content-type", ct),
        ("x-amz-target", target),
    ];
    let signed =
        flotilla_sigv4::sign_for(service, &Request::post(&headers, body.as_bytes()), s, now());
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .header("content-type", ct)
        .header("x-amz-target", target)
        .body(body.to_string());
    for (k, v) in signed {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn list_clusters(addr: &str, s: &Signer<'_>) -> (u16, Value) {
    post(
        addr,
        "ecs",
        "AmazonEC2ContainerServiceV20141113.ListClusters",
        "{}",
        s,
    )
    .await
}

fn key() -> flotilla_seal::Key {
    flotilla_seal::Key::from_bytes([7; 32])
}

/// A served API with a cluster, an instance, a task definition with a role and one without,
/// and the instance's session open past its full state.
async fn setup(store: Arc<dyn Store>) -> (Arc<flotilla_api::Api>, String, String, Ws) {
    let (api, addr) = serve(
        api_with(store)
            .with_secrets(key())
            .with_task_credentials_lifetime(600),
    )
    .await;
    cluster(&api, "c").await;
    let inst = register(&api, "c", 1024, 1024, "us-east-1a").await;
    for (family, role) in [("withrole", Some(ROLE)), ("norole", None)] {
        let mut td = json!({"family": family, "containerDefinitions": [
            {"name": "app", "image": "busybox", "memory": 16, "command": ["sleep", "100"]}]});
        if let Some(r) = role {
            td["taskRoleArn"] = json!(r);
        }
        ok(&api, "RegisterTaskDefinition", td).await;
    }
    let mut ws = connect(&addr, &inst, &signer(AKID, SECRET, None))
        .await
        .unwrap();
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Welcome { .. }
    ));
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Tasks { full: true, .. }
    ));
    (api, addr, inst, ws)
}

async fn run(api: &flotilla_api::Api, ws: &mut Ws, family: &str) -> String {
    let r = ok(
        api,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": family}),
    )
    .await;
    let arn = r["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    loop {
        if let ServerMessage::Tasks { tasks, .. } = next_message(ws).await {
            if let Some(a) = tasks.iter().find(|a| a.task_arn == arn) {
                let want = (family == "withrole").then(|| ROLE.to_string());
                assert_eq!(a.task_role_arn, want);
                return arn;
            }
        }
    }
}

fn stopped(seq: u64, task: &str) -> TaskStateReport {
    TaskStateReport {
        seq,
        task_arn: task.into(),
        version: 1,
        last_status: TaskStatus::Stopped,
        containers: vec![ContainerStateReport {
            name: "app".into(),
            runtime_id: Some("d0c".into()),
            last_status: ContainerStatus::Stopped,
            exit_code: Some(0),
            reason: None,
            network_bindings: vec![],
            health_status: None,
            image_digest: None,
            managed_agents: vec![],
        }],
        pull_started_at: None,
        pull_stopped_at: None,
        started_at: None,
        execution_stopped_at: Some(1.0e9),
        stop_code: None,
        stopped_reason: None,
        health_status: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_keys_work_everywhere_until_the_task_stops() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (api, addr, inst, mut ws) = setup(store.clone()).await;
    let task = run(&api, &mut ws, "withrole").await;

    let c = issued(ask(&mut ws, 1, &task).await);
    assert!(flotilla_control::task_credentials::looks_like_task_key(
        &c.access_key_id
    ));
    assert_eq!(c.role_arn, ROLE);
    assert!((c.expiration - c.issued_at - 600.0).abs() < 1e-6);
    // Asked again in the first half of its life: the same key.
    assert_eq!(issued(ask(&mut ws, 2, &task).await), c);

    // Stored sealed: neither secret part in the record.
    let kv = store
        .get(&credential_key(&c.access_key_id))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(kv.value.clone()).unwrap();
    assert!(!text.contains(&c.secret_access_key.0) && !text.contains(&c.session_token.0));
    let rec: TaskCredentialRecord = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(rec.task_arn, task);
    assert!(rec
        .principal_arn
        .starts_with("arn:aws:sts::123456789012:assumed-role/app/"));

    let (akid, secret, token) = (
        c.access_key_id.as_str(),
        c.secret_access_key.0.as_str(),
        c.session_token.0.as_str(),
    );
    let with_token = signer(akid, secret, Some(token));
    assert_eq!(list_clusters(&addr, &with_token).await.0, 200);
    let (status, body) = post(
        &addr,
        "secretsmanager",
        "secretsmanager.ListSecrets",
        "{}",
        &with_token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Without its token, or with another one: not valid.
    for s in [signer(akid, secret, None), signer(akid, secret, Some("x"))] {
        let (status, body) = list_clusters(&addr, &s).await;
        assert_eq!(status, 403);
        assert_eq!(body["__type"], "UnrecognizedClientException");
    }
    // A task's key never opens an agent session.
    match connect(&addr, &inst, &with_token).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected a 403, got {:?}", other.map(|_| ())),
    }

    // A task without a role gets none.
    let plain = run(&api, &mut ws, "norole").await;
    match ask(&mut ws, 3, &plain).await {
        CredentialsOutcome::Failed { reason } => {
            assert!(reason.contains("no task role"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Nor a task of another instance.
    let other = register(&api, "c", 1024, 1024, "us-east-1b").await;
    let mut ws2 = connect(&addr, &other, &signer(AKID, SECRET, None))
        .await
        .unwrap();
    next_message(&mut ws2).await;
    next_message(&mut ws2).await;
    match ask(&mut ws2, 1, &task).await {
        CredentialsOutcome::Failed { reason } => {
            assert!(
                reason.contains("not assigned to this container instance"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }

    // STOPPED: the key is revoked with the transition.
    let report = AgentMessage::TaskState(stopped(10, &task));
    ws.send(Message::text(flotilla_protocol::encode(&report).unwrap()))
        .await
        .unwrap();
    while next_message(&mut ws).await != (ServerMessage::Ack { seq: 10 }) {}
    assert!(store.get(&credential_key(akid)).await.unwrap().is_none());
    let (status, body) = list_clusters(&addr, &with_token).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("UnrecognizedClientException"))
    );
    assert_eq!(
        body["message"],
        "The security token included in the request is invalid."
    );
    match ask(&mut ws, 4, &task).await {
        CredentialsOutcome::Failed { reason } => {
            assert!(reason.contains("has stopped"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused_as_expired() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (api, addr, _inst, mut ws) = setup(store.clone()).await;
    let task = run(&api, &mut ws, "withrole").await;
    let c = issued(ask(&mut ws, 1, &task).await);
    // Age the key: issued 1000 s ago, expired 400 s ago.
    let k = credential_key(&c.access_key_id);
    let mut rec: TaskCredentialRecord =
        serde_json::from_slice(&store.get(&k).await.unwrap().unwrap().value).unwrap();
    rec.issued_at -= 1000.0;
    rec.expiration -= 1000.0;
    store
        .txn(Txn::new().put(k.clone(), serde_json::to_vec(&rec).unwrap()))
        .await
        .unwrap();
    let s = signer(
        &c.access_key_id,
        &c.secret_access_key.0,
        Some(&c.session_token.0),
    );
    let (status, body) = list_clusters(&addr, &s).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("ExpiredTokenException"))
    );
    let (status, body) = post(
        &addr,
        "secretsmanager",
        "secretsmanager.ListSecrets",
        "{}",
        &s,
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("ExpiredTokenException"))
    );
    assert_eq!(
        body["message"],
        "The security token included in the request is expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_during_the_lookup_is_each_services_5xx() {
    let store = Arc::new(Switchable {
        inner: MemoryStore::new(),
        down: AtomicBool::new(false),
    });
    let (api, addr, _inst, mut ws) = setup(store.clone()).await;
    let task = run(&api, &mut ws, "withrole").await;
    let c = issued(ask(&mut ws, 1, &task).await);
    let s = signer(
        &c.access_key_id,
        &c.secret_access_key.0,
        Some(&c.session_token.0),
    );
    store.down.store(true, Ordering::SeqCst);
    let (status, body) = list_clusters(&addr, &s).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (500, Some("ServerException")),
        "{body}"
    );
    assert!(!body.to_string().contains(&c.secret_access_key.0));
    let (status, body) = post(
        &addr,
        "secretsmanager",
        "secretsmanager.ListSecrets",
        "{}",
        &s,
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (500, Some("InternalServiceError")),
        "{body}"
    );
    let (status, body) = post(&addr, "ssm", "AmazonSSM.DescribeParameters", "{}", &s).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (500, Some("InternalServerError")),
        "{body}"
    );
    // A configured key is not looked up in the store at all: it is refused only for the
    // store's own failure later (here: an ECS call that reads it).
    let unknown = signer("AKIAUNKNOWN", "x", None);
    let (status, body) = list_clusters(&addr, &unknown).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("UnrecognizedClientException"))
    );
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(list_clusters(&addr, &s).await.0, 200);
}
