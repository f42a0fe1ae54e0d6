//! The agent's ECS API client: `RegisterContainerInstance` and `DiscoverPollEndpoint`, signed
//! with SigV4 ([`flotilla_sigv4::sign`]) over plain HTTP/1.1.
//!
//! What this is not: a general SDK (two calls), and not TLS: `server_url` must be `http://`.
//!
//! Invariant: credentials never appear in logs or errors.

use crate::config::Credentials;
use bytes::Bytes;
use flotilla_model::shapes::{
    ContainerInstance, DiscoverPollEndpointRequest, DiscoverPollEndpointResponse,
    RegisterContainerInstanceRequest, RegisterContainerInstanceResponse,
};
use flotilla_sigv4::target::{ecs_target, json_headers};
use flotilla_sigv4::{Request, Signer};
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an ECS error.
    #[error("{code} (HTTP {status}): {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// `__type`, e.g. `ClusterNotFoundException`.
        code: String,
        /// `message`.
        message: String,
    },
    /// The request did not get an answer.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer was not what the model says.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The server URL is not usable.
    #[error("server URL {0:?}: expected http://HOST[:PORT]")]
    BadUrl(String),
}

impl ApiError {
    /// Whether retrying may help (transport errors, throttling, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Service { status, code, .. } => {
                *status >= 500 || code.contains("Throttling") || *status == 429
            }
            ApiError::Transport(_) | ApiError::BadResponse(_) => true,
            ApiError::BadUrl(_) => false,
        }
    }
}

/// The client.
#[derive(Clone)]
pub struct EcsClient {
    base: Uri,
    authority: String,
    credentials: Credentials,
    region: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for EcsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Epoch seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `host[:port]` of an `http://` or `ws://` URL.
pub fn authority_of(url: &str) -> Result<(Uri, String), ApiError> {
    let uri: Uri = url.parse().map_err(|_| ApiError::BadUrl(url.to_string()))?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| ApiError::BadUrl(url.to_string()))?;
    Ok((uri, authority))
}

impl EcsClient {
    /// A client of the server at `server_url` (`http://HOST:PORT`).
    pub fn new(server_url: &str, credentials: Credentials, region: &str) -> Result<Self, ApiError> {
        let (base, authority) = authority_of(server_url)?;
        if base.scheme_str() != Some("http") {
            return Err(ApiError::BadUrl(server_url.to_string()));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        Ok(Self {
            base,
            authority,
            credentials,
            region: region.to_string(),
            http: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Calls one ECS operation with a JSON body.
    pub async fn call(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::BadResponse(e.to_string()))?;
        let target = ecs_target(operation);
        let headers = json_headers(&self.authority, &target);
        let signed =
            flotilla_sigv4::sign(&Request::post(&headers, &body), &self.signer(), now_secs());
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(format!("http://{}/", self.authority));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in signed {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_secs(30), self.http.request(req))
            .await
            .map_err(|_| ApiError::Transport(format!("{operation}: timed out")))?
            .map_err(|e| ApiError::Transport(format!("{operation}: {e}")))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?
            .to_bytes();
        let value: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadResponse(format!("{operation}: HTTP {status}: {e}")))?
        };
        if status >= 300 {
            let code = value["__type"]
                .as_str()
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
                .unwrap_or_else(|| "UnknownError".into());
            let message = value["message"]
                .as_str()
                .or_else(|| value["Message"].as_str())
                .unwrap_or("")
                .to_string();
            return Err(ApiError::Service {
                status,
                code,
                message,
            });
        }
        Ok(value)
    }

    /// `RegisterContainerInstance`.
    pub async fn register(
        &self,
        req: &RegisterContainerInstanceRequest,
    ) -> Result<ContainerInstance, ApiError> {
        let body = serde_json::to_value(req).map_err(|e| ApiError::BadResponse(e.to_string()))?;
        let v = self.call("RegisterContainerInstance", &body).await?;
        let resp: RegisterContainerInstanceResponse =
            serde_json::from_value(v).map_err(|e| ApiError::BadResponse(e.to_string()))?;
        resp.container_instance
            .filter(|c| c.container_instance_arn.is_some())
            .ok_or_else(|| ApiError::BadResponse("no containerInstance in the answer".into()))
    }

    /// `DiscoverPollEndpoint`: the base URL of the session endpoint.
    pub async fn discover_poll_endpoint(
        &self,
        cluster: &str,
        container_instance_arn: &str,
    ) -> Result<String, ApiError> {
        let body = serde_json::to_value(DiscoverPollEndpointRequest {
            container_instance: Some(container_instance_arn.to_string()),
            cluster: Some(cluster.to_string()),
        })
        .map_err(|e| ApiError::BadResponse(e.to_string()))?;
        let v = self.call("DiscoverPollEndpoint", &body).await?;
        let resp: DiscoverPollEndpointResponse =
            serde_json::from_value(v).map_err(|e| ApiError::BadResponse(e.to_string()))?;
        resp.endpoint
            .ok_or_else(|| ApiError::BadResponse("no endpoint in the answer".into()))
    }

    /// The key and region that sign its calls (and the session upgrade).
    pub fn signer(&self) -> Signer<'_> {
        Signer {
            region: &self.region,
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            session_token: self.credentials.session_token.as_deref(),
        }
    }
}
