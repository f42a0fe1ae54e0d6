//! Readiness: `GET /readyz` answers 200 when the store answers a cheap read (its revision)
//! within [`READY_TIMEOUT`], and 503 with the reason otherwise, so that a load balancer sends
//! requests only to replicas that can serve them. Liveness (`GET /healthz`) asks nothing of
//! the store: a replica cut off from its store is alive, only not ready.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::context::Api;

/// Longest wait for the store's answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /readyz`.
pub async fn readyz(State(api): State<Arc<Api>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, api.store.revision()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store failed: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the store did not answer within {} ms\n",
                READY_TIMEOUT.as_millis()
            ),
        )
            .into_response(),
    }
}
