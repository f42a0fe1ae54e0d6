//! The agent's ECS API client: `RegisterContainerInstance` and `DiscoverPollEndpoint`, signed
//! with SigV4 ([`flotilla_sigv4::sign`]) over HTTP/1.1, in TLS for an `https://` server
//! (verified with the [`ClientTls`] given: a CA file, else the system's roots).
//!
//! Several server replicas ([`Endpoints`]): each call goes to the current one; a call that gets
//! no answer or a 5xx moves the cursor to the next replica, so the caller's retry (after its
//! backoff) goes there.
//!
//! What this is not: a general SDK (two calls). Every server URL is `http://` or `https://`.
//!
//! Invariant: credentials never appear in logs or errors.

use crate::config::Credentials;
use crate::endpoints::Endpoints;
use bytes::Bytes;
use flotilla_model::shapes::{
    ContainerInstance, DiscoverPollEndpointRequest, DiscoverPollEndpointResponse,
    RegisterContainerInstanceRequest, RegisterContainerInstanceResponse,
};
use flotilla_sigv4::target::{ecs_target, json_headers};
use flotilla_sigv4::{Request, Signer};
use flotilla_tls::ClientTls;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Idle HTTP connections kept per replica.
const MAX_IDLE_PER_REPLICA: usize = 16;

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
    #[error("server URL {0:?}: expected http://HOST[:PORT] or https://HOST[:PORT]")]
    BadUrl(String),
    /// The TLS configuration (CA file, system roots) could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
}

impl ApiError {
    /// Whether retrying may help (transport errors, throttling, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Service { status, code, .. } => {
                *status >= 500 || code.contains("Throttling") || *status == 429
            }
            ApiError::Transport(_) | ApiError::BadResponse(_) => true,
            ApiError::BadUrl(_) | ApiError::Tls(_) => false,
        }
    }

    /// Whether another replica may do better: no answer, or a 5xx. Never a 4xx (the request is
    /// wrong everywhere) and never throttling (the same replica will answer later).
    pub fn is_replica_failure(&self) -> bool {
        match self {
            ApiError::Service { status, .. } => *status >= 500,
            ApiError::Transport(_) => true,
            ApiError::BadResponse(_) | ApiError::BadUrl(_) | ApiError::Tls(_) => false,
        }
    }
}

/// An error with its causes (hyper's own says only "client error (Connect)"; the cause says
/// which certificate was refused, or which address).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// The client.
#[derive(Clone)]
pub struct EcsClient {
    endpoints: Endpoints,
    /// `(scheme, host[:port])` of each of `endpoints`, in the same order.
    authorities: Arc<[(String, String)]>,
    credentials: Credentials,
    region: String,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Whom `https://` and `wss://` connections trust.
    tls: Option<ClientTls>,
}

impl std::fmt::Debug for EcsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsClient")
            .field("endpoints", &self.endpoints.urls())
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

/// `host[:port]` of an `http(s)://` or `ws(s)://` URL.
pub fn authority_of(url: &str) -> Result<(Uri, String), ApiError> {
    let uri: Uri = url.parse().map_err(|_| ApiError::BadUrl(url.to_string()))?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| ApiError::BadUrl(url.to_string()))?;
    Ok((uri, authority))
}

impl EcsClient {
    /// A client of the server at `server_url` (`http://HOST:PORT` or `https://HOST:PORT`, or
    /// several such URLs separated by commas: the replicas of one server); `https://` servers
    /// are verified with the system's roots.
    pub fn new(server_url: &str, credentials: Credentials, region: &str) -> Result<Self, ApiError> {
        let endpoints =
            Endpoints::parse(server_url).ok_or_else(|| ApiError::BadUrl(server_url.to_string()))?;
        Self::with_endpoints(endpoints, credentials, region)
    }

    /// A client of these replicas (each `http://HOST:PORT` or `https://HOST:PORT`); `https://`
    /// ones are verified with the system's roots.
    pub fn with_endpoints(
        endpoints: Endpoints,
        credentials: Credentials,
        region: &str,
    ) -> Result<Self, ApiError> {
        Self::with_tls(endpoints, credentials, region, None)
    }

    /// A client of these replicas whose `https://` ones are verified with `tls` (`None`: the
    /// system's roots, loaded only when a replica is `https://`).
    pub fn with_tls(
        endpoints: Endpoints,
        credentials: Credentials,
        region: &str,
        tls: Option<ClientTls>,
    ) -> Result<Self, ApiError> {
        let mut authorities = Vec::new();
        for url in endpoints.urls() {
            let (base, authority) = authority_of(url)?;
            let scheme = match base.scheme_str() {
                Some(s @ ("http" | "https")) => s.to_string(),
                _ => return Err(ApiError::BadUrl(url.clone())),
            };
            authorities.push((scheme, authority));
        }
        let tls = match tls {
            Some(t) => Some(t),
            None if authorities.iter().any(|(s, _)| s == "https") => {
                Some(ClientTls::system().map_err(|e| ApiError::Tls(e.to_string()))?)
            }
            None => None,
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        connector.enforce_http(false);
        // Without a TLS configuration no replica is https://: a config that trusts nothing is
        // never used, and would refuse any server if it were.
        let config = match &tls {
            Some(t) => (*t.config()).clone(),
            None => (*ClientTls::trust_nothing()
                .map_err(|e| ApiError::Tls(e.to_string()))?
                .config())
            .clone(),
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self {
            endpoints,
            authorities: authorities.into(),
            credentials,
            region: region.to_string(),
            // An agent talks to a replica or two: a few idle connections are plenty (and a
            // process of thousands of hollow agents sharing this client, `bench scale`, would
            // otherwise keep one per agent's registration open).
            http: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(MAX_IDLE_PER_REPLICA)
                .build(https),
            tls,
        })
    }

    /// The connector of the WebSockets this client opens (the session, Exec's dial-back):
    /// rustls with this client's trust (a `ws://` URL stays plain; without a trust, as when no
    /// replica is `https://`, a `wss://` one is refused, trusting no one).
    pub fn ws_connector(&self) -> tokio_tungstenite::Connector {
        let tls = match &self.tls {
            Some(t) => Some(t.clone()),
            None => ClientTls::trust_nothing().ok(),
        };
        match tls {
            Some(t) => tokio_tungstenite::Connector::Rustls(t.config()),
            None => tokio_tungstenite::Connector::Plain,
        }
    }

    /// The replicas and the one in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Calls one ECS operation with a JSON body on the current replica; a failure another
    /// replica may not have ([`ApiError::is_replica_failure`]) makes the next one current.
    pub async fn call(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        self.call_target(&ecs_target(operation), body).await
    }

    /// Calls one of Flotilla's own operations (`FlotillaAdmin.<operation>`), like [`Self::call`].
    pub async fn call_admin(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        self.call_target(&flotilla_sigv4::target::admin_target(operation), body)
            .await
    }

    async fn call_target(
        &self,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let (replica, _) = self.endpoints.current();
        let (scheme, authority) = &self.authorities[replica];
        let result = self.call_on(scheme, authority, target, body).await;
        if let Err(e) = &result {
            if e.is_replica_failure() {
                self.endpoints.failed(replica);
            }
        }
        result
    }

    /// Whether replica `index` answers `GET /readyz` with 200 within two seconds (it is alive
    /// and reaches its store).
    pub async fn replica_ready(&self, index: usize) -> bool {
        let Some((scheme, authority)) = self.authorities.get(index) else {
            return false;
        };
        let Ok(req) = hyper::Request::builder()
            .method("GET")
            .uri(format!("{scheme}://{authority}/readyz"))
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.http.request(req)).await,
            Ok(Ok(resp)) if resp.status().as_u16() == 200
        )
    }

    async fn call_on(
        &self,
        scheme: &str,
        authority: &str,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let operation = target.rsplit('.').next().unwrap_or(target);
        let body = serde_json::to_vec(body).map_err(|e| ApiError::BadResponse(e.to_string()))?;
        let headers = json_headers(authority, target);
        let signed =
            flotilla_sigv4::sign(&Request::post(&headers, &body), &self.signer(), now_secs());
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(format!("{scheme}://{authority}/"));
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
            .map_err(|e| ApiError::Transport(format!("{operation}: {}", chain(&e))))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A port nothing listens on.
    async fn dead_url() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    /// A server that answers every request with `status` and an ECS error body.
    async fn answering(status: u16) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let body = r#"{"__type":"ServerException","message":"no"}"#;
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn a_call_moves_on_after_no_answer_or_a_5xx_and_never_after_a_4xx() {
        let (dead, bad, refusing) = (dead_url().await, answering(503).await, answering(400).await);
        let list = format!("{dead},{bad},{refusing}");
        let c = EcsClient::new(&list, Credentials::default(), "us-east-1").unwrap();
        let empty = serde_json::json!({});
        let call = || c.call("ListClusters", &empty);
        assert!(matches!(call().await, Err(ApiError::Transport(_))));
        assert_eq!(c.endpoints().current().1, bad);
        assert!(matches!(
            call().await,
            Err(ApiError::Service { status: 503, .. })
        ));
        assert_eq!(c.endpoints().current().1, refusing);
        assert!(matches!(
            call().await,
            Err(ApiError::Service { status: 400, .. })
        ));
        assert_eq!(c.endpoints().current().1, refusing, "a 4xx stays");
        assert!(EcsClient::new("ftp://x", Credentials::default(), "r").is_err());
        assert!(EcsClient::new(" , ", Credentials::default(), "r").is_err());
    }
}
