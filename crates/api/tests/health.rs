//! `GET /readyz` (the store answers, or a 503 with the reason) and the leadership and store
//! latency series of `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use flotilla_store::{
    KeyValue, MemoryStore, Page, SoleLeader, Store, StoreError, Txn, TxnOutcome, WatchStream,
};

/// A store that never answers, or always fails.
struct Broken {
    hang: bool,
}

impl Broken {
    async fn answer<T>(&self) -> Result<T, StoreError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[async_trait]
impl Store for Broken {
    async fn get(&self, _: &str) -> Result<Option<KeyValue>, StoreError> {
        self.answer().await
    }
    async fn list(&self, _: &str, _: Option<&str>, _: usize) -> Result<Page, StoreError> {
        self.answer().await
    }
    async fn txn(&self, _: Txn) -> Result<TxnOutcome, StoreError> {
        self.answer().await
    }
    async fn revision(&self) -> Result<u64, StoreError> {
        self.answer().await
    }
    async fn watch(&self, _: &str, _: u64) -> Result<WatchStream, StoreError> {
        self.answer().await
    }
}

async fn readyz(store: Arc<dyn Store>) -> (StatusCode, String) {
    let api = Arc::new(common::api_with(store));
    let resp = flotilla_api::health::readyz(State(api)).await;
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn readyz_says_whether_the_store_answers() {
    let check = |(status, body): (StatusCode, String), want: StatusCode, says: &str| {
        assert_eq!(status, want, "{body}");
        assert!(body.contains(says), "{body}");
    };
    check(
        readyz(Arc::new(MemoryStore::new())).await,
        StatusCode::OK,
        "ready",
    );
    check(
        readyz(Arc::new(Broken { hang: false })).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "store unreachable: connection refused",
    );
    check(
        readyz(Arc::new(Broken { hang: true })).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "did not answer within 1000 ms",
    );
}

#[tokio::test]
async fn metrics_show_the_leadership_and_store_latency() {
    let api = common::api().with_election(Arc::new(SoleLeader::new("me")));
    api.start_background();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !api.metrics.encode().contains("\nflotilla_leader 1\n") {
        assert!(std::time::Instant::now() < deadline, "never leader");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    common::ok(&api, "ListClusters", serde_json::json!({})).await;
    let text = api.metrics.encode();
    assert!(text.contains("\nflotilla_leader_term 1\n"), "{text}");
    assert!(
        text.contains("flotilla_store_request_duration_seconds_count{request=\"list\"}"),
        "{text}"
    );
    api.stop_background().await;
    assert_eq!(api.role(), None);
    assert!(api.metrics.encode().contains("\nflotilla_leader 0\n"));
}

/// `FlotillaAdmin.Status` on an embedded store: this server is the one replica and leads at
/// term 1; the store is reachable with no members; instances are counted per zone.
#[tokio::test]
async fn status_on_the_embedded_store() {
    use flotilla_api::admin::{admin, ReplicaInfo};
    use serde_json::json;
    let me = ReplicaInfo {
        id: "h1/127.0.0.1:8080".into(),
        url: "http://127.0.0.1:8080".into(),
        started_at: 5.0,
    };
    let api = common::api()
        .with_election(Arc::new(SoleLeader::new(me.id.clone())))
        .with_replica(Arc::new(flotilla_store::Embedded("memory")), me);
    common::cluster(&api, "c1").await;
    common::register(&api, "c1", 1024, 2048, "us-east-1a").await;
    common::register(&api, "c1", 1024, 2048, "us-east-1b").await;
    let b = common::register(&api, "c1", 1024, 2048, "us-east-1b").await;
    let id = b.rsplit('/').next().unwrap();
    flotilla_controllers::agents::set_agent_connected(
        api.store.as_ref(),
        "c1",
        id,
        false,
        &|| true,
        None,
    )
    .await
    .unwrap();
    let out = admin(&api, "Status", &json!({})).await.unwrap();
    assert_eq!(
        out,
        json!({
            "replica": {"id": "h1/127.0.0.1:8080", "url": "http://127.0.0.1:8080", "startedAt": 5.0},
            "leads": true,
            "leader": {"id": "h1/127.0.0.1:8080", "term": 1},
            "leaderKnown": true,
            "replicas": [{"id": "h1/127.0.0.1:8080", "url": "http://127.0.0.1:8080",
                          "startedAt": 5.0, "leader": true}],
            "store": {"kind": "memory", "reachable": true, "members": null},
            "zones": [{"zone": "us-east-1a", "connected": 1, "disconnected": 0},
                      {"zone": "us-east-1b", "connected": 1, "disconnected": 1}],
            // No managed-pool host: no warm task networks.
            "warmNetworks": []
        })
    );
    // Without the replica's identity nothing is invented.
    let bare = admin(&common::api(), "Status", &json!({})).await.unwrap();
    assert_eq!(bare["replica"], json!(null));
    assert_eq!(bare["replicas"], json!(null));
    assert_eq!(bare["store"]["kind"], json!(null));
}
