//! Several regions on one router (`flotilla_api::Regions`): each request goes to the `Api` of
//! the region its credential scope names; a region not served is refused with AWS's
//! `InvalidSignatureException` "Credential should be scoped to a valid region, not 'R'. ";
//! unsigned paths go to the primary region; with `with_any` a region is opened on its first
//! request, once however many requests race for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use flotilla_api::regions::OpenRegion;
use flotilla_api::{Api, ApiConfig, Regions, SystemClock};
use flotilla_model::arn::ArnContext;
use flotilla_sigv4::Signer;
use flotilla_store::MemoryStore;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::ServiceExt;

fn region_api(region: &str) -> Arc<Api> {
    let base = config();
    let config = ApiConfig {
        arns: ArnContext {
            region: region.into(),
            account: base.arns.account,
        },
        credentials: base.credentials,
    };
    Arc::new(Api::new(
        Arc::new(MemoryStore::new()),
        config,
        Arc::new(SystemClock),
    ))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An ECS operation through `router`, signed for `region`: status and JSON body.
async fn ecs(router: &axum::Router, region: &str, operation: &str, body: &str) -> (u16, Value) {
    let target = format!("AmazonEC2ContainerServiceV20141113.{operation}");
    let headers = [
        ("host", "flotilla"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let signer = Signer {
        region,
        access_key_id: AKID,
        secret_access_key: SECRET,
        session_token: None,
    };
    let signed = flotilla_sigv4::sign(
        &flotilla_sigv4::Request::post(&headers, body.as_bytes()),
        &signer,
        now(),
    );
    let mut req = Request::builder().method("POST").uri("/");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    for (k, v) in signed {
        req = req.header(k, v);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn each_region_answers_its_own_requests_and_others_are_refused() {
    let regions =
        Arc::new(Regions::new(region_api("us-east-1")).with_region(region_api("eu-west-1")));
    let router = regions.clone().router();
    for region in ["us-east-1", "eu-west-1"] {
        let (status, out) = ecs(&router, region, "CreateCluster", r#"{"clusterName":"web"}"#).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(
            out["cluster"]["clusterArn"],
            format!("arn:aws:ecs:{region}:{ACCOUNT}:cluster/web")
        );
    }
    let (_, out) = ecs(&router, "eu-west-1", "ListClusters", "{}").await;
    assert_eq!(
        out["clusterArns"],
        serde_json::json!([format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/web")])
    );
    let (status, out) = ecs(&router, "ap-south-1", "ListClusters", "{}").await;
    assert_eq!(status, 403);
    assert_eq!(out["__type"], "InvalidSignatureException");
    assert_eq!(
        out["message"],
        "Credential should be scoped to a valid region, not 'ap-south-1'. "
    );
    // Unsigned paths are the primary's.
    let resp = router
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(regions.apis().len(), 2);
}

/// Opens a region on a memory store, counting the openings.
struct Counting(AtomicUsize);

#[async_trait::async_trait]
impl OpenRegion for Counting {
    async fn open(&self, region: &str) -> Result<Arc<Api>, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(region_api(region))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_region_is_opened_once_on_its_first_request() {
    let opener = Arc::new(Counting(AtomicUsize::new(0)));
    let regions = Arc::new(Regions::new(region_api("us-east-1")).with_any(opener.clone()));
    let router = regions.clone().router();
    let calls = (0..8).map(|i| {
        let router = router.clone();
        async move {
            let body = format!(r#"{{"clusterName":"c{i}"}}"#);
            ecs(&router, "ap-southeast-2", "CreateCluster", &body).await
        }
    });
    for (status, out) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{out}");
    }
    assert_eq!(opener.0.load(Ordering::SeqCst), 1);
    let (_, out) = ecs(&router, "ap-southeast-2", "ListClusters", "{}").await;
    assert_eq!(out["clusterArns"].as_array().unwrap().len(), 8);
    let (_, out) = ecs(&router, "us-east-1", "ListClusters", "{}").await;
    assert_eq!(out["clusterArns"], serde_json::json!([]));
    // A name of no region's form is never opened.
    let (status, out) = ecs(&router, "../../x", "ListClusters", "{}").await;
    assert_eq!(
        (status, out["__type"].as_str()),
        (403, Some("InvalidSignatureException"))
    );
    assert_eq!(opener.0.load(Ordering::SeqCst), 1);
}
