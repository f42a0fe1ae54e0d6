//! What the in-process server tests share (`agent_server.rs`, `agent_failover.rs`): the key,
//! an `Api` on a given store with fast agent heartbeats, and a polling helper.

#![allow(dead_code)]

use flotilla_agent::client::EcsClient;
use flotilla_agent::Credentials;
use flotilla_api::{AgentTimings, Api, ApiConfig, SystemClock};
use flotilla_model::arn::ArnContext;
use flotilla_sigv4::Credential;
use flotilla_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AKID: &str = "AKIDAGENTTEST";
pub const SECRET: &str = "agent-secret";

/// An `Api` on `store` that knows [`AKID`] and wants a heartbeat every 500 ms.
pub fn api(store: Arc<dyn Store>) -> Api {
    Api::new(
        store,
        ApiConfig {
            arns: ArnContext {
                region: "us-east-1".into(),
                account: "123456789012".into(),
            },
            credentials: vec![Credential {
                access_key_id: AKID.into(),
                secret_access_key: SECRET.into(),
                session_token: None,
                principal_arn: "arn:aws:iam::123456789012:root".into(),
            }],
        },
        Arc::new(SystemClock),
    )
    .with_timings(AgentTimings {
        heartbeat_interval: Duration::from_millis(500),
        ..Default::default()
    })
}

/// The agent's side of [`AKID`].
pub fn creds() -> Credentials {
    Credentials {
        access_key_id: AKID.into(),
        secret_access_key: SECRET.into(),
        session_token: None,
    }
}

/// Polls `f` every 100 ms until it gives a value; panics after `secs`.
pub async fn until<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not reached within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `cluster` and registers `task_definition`.
pub async fn cluster_with(client: &EcsClient, cluster: &str, task_definition: Value) {
    client
        .call("CreateCluster", &json!({"clusterName": cluster}))
        .await
        .unwrap();
    client
        .call("RegisterTaskDefinition", &task_definition)
        .await
        .unwrap();
}

/// The cluster's container instances, described.
pub async fn instances(client: &EcsClient, cluster: &str) -> Vec<Value> {
    let list = client
        .call("ListContainerInstances", &json!({"cluster": cluster}))
        .await
        .unwrap();
    let arns = list["containerInstanceArns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if arns.is_empty() {
        return vec![];
    }
    let d = client
        .call(
            "DescribeContainerInstances",
            &json!({"cluster": cluster, "containerInstances": arns}),
        )
        .await
        .unwrap();
    d["containerInstances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
