//! The Logs service on the in-memory store, with this replica's events in a temporary log
//! store and an agent's in another one behind a fake `Owners` (which can be cut off).

#![allow(clippy::unwrap_used)] // Test fixtures fail loudly.

use flotilla_logs::names::Account;
use flotilla_logs::query::{LogRequest, LogResponse};
use flotilla_logs::{LogsError, LogsErrorCode};
use flotilla_logs_service::streams::open_agent_stream;
use flotilla_logs_service::{Logs, Owner, Owners};
use flotilla_logstore::{Limits, LogStore};
use flotilla_store::MemoryStore;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// An agent's host: its own store, reachable or not.
struct Agent {
    store: LogStore,
    reachable: AtomicBool,
}

#[async_trait::async_trait]
impl Owners for Agent {
    async fn ask(&self, owner: &Owner, request: LogRequest) -> Result<LogResponse, LogsError> {
        if !self.reachable.load(Ordering::SeqCst) {
            return Err(LogsError::unavailable(format!("{owner} is not connected")));
        }
        self.store.serve(request, 0).map_err(LogsError::unavailable)
    }
}

const NOW: i64 = 1_800_000_000_000;

struct Fixture {
    logs: Logs,
    agent: Arc<Agent>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn fixture() -> Fixture {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let agent = Arc::new(Agent {
        store: LogStore::open(b.path(), Limits::default()).unwrap(),
        reachable: AtomicBool::new(true),
    });
    let logs = Logs::new(
        Arc::new(MemoryStore::new()),
        Account {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        },
        Arc::new(LogStore::open(a.path(), Limits::default()).unwrap()),
        agent.clone(),
        Some("r1".into()),
        false,
    );
    Fixture {
        logs,
        agent,
        _dirs: (a, b),
    }
}

async fn call(logs: &Logs, op: &str, input: Value) -> Result<Value, LogsError> {
    logs.dispatch(op, input, NOW).await
}

fn agent_owner() -> Owner {
    Owner::Agent {
        cluster: "c".into(),
        instance: "i-1".into(),
    }
}

#[tokio::test]
async fn streams_of_a_server_and_an_agent_read_and_filter_together() {
    let f = fixture();
    call(&f.logs, "CreateLogGroup", json!({"logGroupName": "g"}))
        .await
        .unwrap();
    call(
        &f.logs,
        "CreateLogStream",
        json!({"logGroupName": "g", "logStreamName": "api"}),
    )
    .await
    .unwrap();
    call(
        &f.logs,
        "PutLogEvents",
        json!({"logGroupName": "g", "logStreamName": "api", "logEvents": [
            {"timestamp": NOW - 3, "message": "ERROR from the api"},
            {"timestamp": NOW - 1, "message": "INFO from the api"}]}),
    )
    .await
    .unwrap();
    // The agent opens its container's stream (twice: idempotent) and writes to its own store.
    let generation = open_agent_stream(&f.logs, agent_owner(), "g", "app/main/t1", false, NOW)
        .await
        .unwrap();
    assert_eq!(
        open_agent_stream(&f.logs, agent_owner(), "g", "app/main/t1", false, NOW)
            .await
            .unwrap(),
        generation
    );
    let other = Owner::Agent {
        cluster: "c".into(),
        instance: "i-2".into(),
    };
    let taken = open_agent_stream(&f.logs, other, "g", "app/main/t1", false, NOW).await;
    assert_eq!(
        taken.unwrap_err().code,
        LogsErrorCode::ResourceAlreadyExistsException
    );
    let sref = flotilla_logs::query::StreamRef {
        group: "g".into(),
        generation,
        stream: "app/main/t1".into(),
    };
    f.agent
        .store
        .append(
            &sref,
            &[flotilla_logs::query::NewEvent {
                timestamp: NOW - 2,
                message: "ERROR from the container".into(),
            }],
            NOW,
            None,
        )
        .unwrap();
    let got = call(
        &f.logs,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "app/main/t1", "startFromHead": true}),
    )
    .await
    .unwrap();
    assert_eq!(got["events"][0]["message"], "ERROR from the container");
    let found = call(
        &f.logs,
        "FilterLogEvents",
        json!({"logGroupName": "g", "filterPattern": "ERROR"}),
    )
    .await
    .unwrap();
    let msgs: Vec<&str> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    // Merged by time across the two owners.
    assert_eq!(msgs, ["ERROR from the api", "ERROR from the container"]);
    // PutLogEvents to a container's stream is refused.
    let e = call(
        &f.logs,
        "PutLogEvents",
        json!({"logGroupName": "g", "logStreamName": "app/main/t1", "logEvents": [{"timestamp": NOW, "message": "x"}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, LogsErrorCode::InvalidParameterException);

    // The agent cut off: an error naming where the events are, never an empty page.
    f.agent.reachable.store(false, Ordering::SeqCst);
    for (op, input) in [
        (
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "app/main/t1"}),
        ),
        ("FilterLogEvents", json!({"logGroupName": "g"})),
    ] {
        let e = call(&f.logs, op, input).await.unwrap_err();
        assert_eq!(e.code, LogsErrorCode::ServiceUnavailableException, "{op}");
        assert!(e.message.contains("i-1"), "{op}: {}", e.message);
    }
    // DescribeLogStreams still lists both (the unreachable one without event times).
    let streams = call(&f.logs, "DescribeLogStreams", json!({"logGroupName": "g"}))
        .await
        .unwrap();
    assert_eq!(streams["logStreams"].as_array().unwrap().len(), 2);
    assert!(streams["logStreams"][1].get("lastEventTimestamp").is_none());
}

#[tokio::test]
async fn a_group_deleted_and_created_again_is_empty() {
    let f = fixture();
    call(&f.logs, "CreateLogGroup", json!({"logGroupName": "g"}))
        .await
        .unwrap();
    call(
        &f.logs,
        "CreateLogStream",
        json!({"logGroupName": "g", "logStreamName": "s"}),
    )
    .await
    .unwrap();
    call(
        &f.logs,
        "PutLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "logEvents": [{"timestamp": NOW, "message": "old"}]}),
    )
    .await
    .unwrap();
    call(&f.logs, "DeleteLogGroup", json!({"logGroupName": "g"}))
        .await
        .unwrap();
    assert!(f.logs.local().streams().is_empty());
    call(&f.logs, "CreateLogGroup", json!({"logGroupName": "g"}))
        .await
        .unwrap();
    call(
        &f.logs,
        "CreateLogStream",
        json!({"logGroupName": "g", "logStreamName": "s"}),
    )
    .await
    .unwrap();
    let got = call(
        &f.logs,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "startFromHead": true}),
    )
    .await
    .unwrap();
    assert_eq!(got["events"], json!([]));
    // Served operations only.
    let e = call(&f.logs, "DeleteLogStream", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, LogsErrorCode::UnknownOperationException);
}
