//! A harness for handler tests: an `Api` over a `MemoryStore`, and `call` to run one operation
//! by name on a JSON input, as the HTTP edge would after verifying the signature.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use flotilla_api::context::Ctx;
use flotilla_api::{ops, Api, ApiConfig, SystemClock};
use flotilla_model::arn::ArnContext;
use flotilla_model::{EcsError, Operation};
use flotilla_sigv4::{Caller, Credential};
use flotilla_store::{MemoryStore, Store};
use serde_json::{json, Value};
use std::sync::Arc;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
pub const AKID: &str = "AKIDTEST";
pub const SECRET: &str = "secret";

pub fn config() -> ApiConfig {
    ApiConfig {
        arns: ArnContext {
            region: REGION.into(),
            account: ACCOUNT.into(),
        },
        credentials: vec![Credential {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
            session_token: None,
            principal_arn: format!("arn:aws:iam::{ACCOUNT}:root"),
        }],
    }
}

pub fn api_with(store: Arc<dyn Store>) -> Api {
    Api::new(store, config(), Arc::new(SystemClock))
}

pub fn api() -> Api {
    api_with(Arc::new(MemoryStore::new()))
}

/// A `SqliteStore` in a fresh temporary directory (kept while the `TempDir` lives).
pub fn sqlite_store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = flotilla_store::SqliteStore::open(dir.path()).unwrap();
    (dir, Arc::new(store))
}

/// Two multi-threaded tests, `$memory` and `$sqlite`, that run `$check(store)` on a
/// `MemoryStore` and on a `SqliteStore`.
#[macro_export]
macro_rules! on_both_stores {
    ($memory:ident, $sqlite:ident, $check:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $memory() {
            $check(std::sync::Arc::new(flotilla_store::MemoryStore::new())).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $sqlite() {
            let (_dir, store) = $crate::common::sqlite_store();
            $check(store).await;
        }
    };
}

/// Serves `api`'s HTTP router on 127.0.0.1:0; returns the api and the address.
pub async fn serve(api: Api) -> (Arc<Api>, String) {
    let api = Arc::new(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = flotilla_api::router(api.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (api, addr)
}

pub async fn call(api: &Api, op: &str, input: Value) -> Result<Value, EcsError> {
    let ctx = Ctx {
        api,
        caller: Caller {
            access_key_id: AKID.into(),
            region: REGION.into(),
            service: "ecs".into(),
            principal_arn: format!("arn:aws:iam::{ACCOUNT}:root"),
        },
        now: api.clock.now(),
        host: Some("127.0.0.1:9999".into()),
    };
    let op = Operation::from_name(op).expect("known operation");
    let wire = ops::dispatch(&ctx, op, input).await?;
    Ok(serde_json::from_slice(&wire).expect("a response is JSON"))
}

pub async fn ok(api: &Api, op: &str, input: Value) -> Value {
    match call(api, op, input).await {
        Ok(v) => v,
        Err(e) => panic!("{op} failed: {e:?}"),
    }
}

pub async fn err(api: &Api, op: &str, input: Value) -> EcsError {
    match call(api, op, input).await {
        Ok(v) => panic!("{op} unexpectedly succeeded: {v}"),
        Err(e) => e,
    }
}

pub fn resources(cpu: i64, memory: i64) -> Value {
    json!([
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "2376", "51678"]},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []}
    ])
}

/// Registers an instance of `cpu`/`memory` in `cluster`; returns its ARN.
pub async fn register(api: &Api, cluster: &str, cpu: i64, memory: i64, az: &str) -> String {
    let doc = json!({"instanceId": format!("i-{az}"), "availabilityZone": az,
                     "instanceType": "t3.small", "region": REGION})
    .to_string();
    let out = ok(
        api,
        "RegisterContainerInstance",
        json!({"cluster": cluster, "totalResources": resources(cpu, memory),
               "instanceIdentityDocument": doc,
               "versionInfo": {"agentVersion": "0.1.0", "dockerVersion": "27.0"},
               "attributes": [{"name": "ecs.os-type", "value": "linux"}]}),
    )
    .await;
    out["containerInstance"]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn cluster(api: &Api, name: &str) {
    ok(api, "CreateCluster", json!({"clusterName": name})).await;
}

/// Registers `family` with one container of `memory` MiB (and optional static host port).
pub async fn task_definition(api: &Api, family: &str, memory: i64, host_port: Option<i64>) {
    let mut c = json!({"name": "app", "image": "busybox", "memory": memory, "cpu": 128,
                       "command": ["sleep", "100"]});
    if let Some(p) = host_port {
        c["portMappings"] = json!([{"containerPort": 80, "hostPort": p}]);
    }
    ok(
        api,
        "RegisterTaskDefinition",
        json!({"family": family, "containerDefinitions": [c],
               "tags": [{"key": "team", "value": "core"}]}),
    )
    .await;
}

pub fn resource(ci: &Value, kind: &str, name: &str) -> Value {
    ci[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap()
}

/// An agent session's WebSocket.
pub type SessionWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The system clock, in epoch seconds (what a SigV4 signature is dated with).
pub fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `s` percent-encoded as SigV4 encodes a query value.
pub fn percent_encode(s: &str) -> String {
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

/// Opens the agent session of container instance `instance` at `addr`, the upgrade signed by
/// `s` at the system clock.
pub async fn connect_session(
    addr: &str,
    instance: &str,
    s: &flotilla_sigv4::Signer<'_>,
) -> Result<SessionWs, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let path = flotilla_protocol::SESSION_PATH;
    let query = format!("containerInstance={}", percent_encode(instance));
    let mut req = format!("ws://{addr}{path}?{query}")
        .as_str()
        .into_client_request()
        .unwrap();
    let headers = flotilla_sigv4::sign(
        &flotilla_sigv4::Request {
            method: "GET",
            path,
            query: &query,
            headers: &[("host", addr)],
            body: b"",
        },
        s,
        epoch_now(),
    );
    for (k, v) in headers {
        req.headers_mut().insert(
            k.parse::<HeaderName>().unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}
