//! The console's calls: every read and action of the console is an API request, signed with
//! SigV4 by the signed-in access key exactly as the aws CLI would sign it, and handed to the
//! same handler an HTTP request reaches ([`crate::server::handle`]): routing, signature
//! verification, the region and scope checks, model validation, the operation's handler and its
//! metrics. The console never reads the store or calls an operation's handler directly, so it
//! can do what the API lets that key do and nothing else, and answers the API's own errors.

use crate::context::Api;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use flotilla_sigv4::target::{ecs_target, ECS_SERVICE};
use flotilla_sigv4::Credential;
use serde_json::Value;
use std::sync::Arc;

/// The `Host` the console's requests are signed for (they never leave the process).
const HOST: &str = "console.flotilla.internal";
/// The largest answer read back.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// CloudWatch Logs' target prefix and signing name.
const LOGS_TARGET_PREFIX: &str = "Logs_20140328.";
const LOGS_SERVICE: &str = "logs";

/// An error the API answered (its `__type` and message), or the console's own failure to
/// make the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// `ClusterNotFoundException`, `InvalidParameterException`...
    pub code: String,
    /// The API's message.
    pub message: String,
    /// The HTTP status the API answered.
    pub status: u16,
}

/// Calls the API as one access key.
pub struct Client {
    api: Arc<Api>,
    credential: Credential,
}

impl Client {
    /// A client signing with `credential` (one of the server's configured keys).
    pub fn new(api: Arc<Api>, credential: Credential) -> Self {
        Client { api, credential }
    }

    /// Runs ECS operation `operation` on `input`.
    pub async fn ecs(&self, operation: &str, input: Value) -> Result<Value, ApiError> {
        self.call(ECS_SERVICE, &ecs_target(operation), input).await
    }

    /// Runs CloudWatch Logs operation `operation` on `input`.
    pub async fn logs(&self, operation: &str, input: Value) -> Result<Value, ApiError> {
        self.call(
            LOGS_SERVICE,
            &format!("{LOGS_TARGET_PREFIX}{operation}"),
            input,
        )
        .await
    }

    async fn call(
        &self,
        signing_name: &str,
        target: &str,
        input: Value,
    ) -> Result<Value, ApiError> {
        let failed = |message: String| ApiError {
            code: "ConsoleError".to_string(),
            message,
            status: 500,
        };
        let body = serde_json::to_vec(&input).map_err(|e| failed(e.to_string()))?;
        let headers = flotilla_sigv4::target::json_headers(HOST, target);
        let signer = flotilla_sigv4::Signer {
            region: &self.api.config.arns.region,
            access_key_id: &self.credential.access_key_id,
            secret_access_key: &self.credential.secret_access_key,
            session_token: self.credential.session_token.as_deref(),
        };
        let signed = flotilla_sigv4::sign_for(
            signing_name,
            &flotilla_sigv4::Request::post(&headers, &body),
            &signer,
            self.api.clock.now() as i64,
        );
        let mut map = HeaderMap::new();
        for (k, v) in headers
            .iter()
            .map(|(k, v)| (*k, *v))
            .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            let (Ok(name), Ok(value)) = (HeaderName::try_from(k), HeaderValue::from_str(v)) else {
                return Err(failed(format!("could not write the header {k}")));
            };
            map.insert(name, value);
        }
        let resp = crate::server::handle(
            State(self.api.clone()),
            Method::POST,
            Uri::from_static("/"),
            map,
            Body::from(body),
        )
        .await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| failed(format!("could not read the answer: {e}")))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("the answer is not JSON: {e}")))?;
        if status.is_success() {
            return Ok(value);
        }
        let code = value["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t))
            .unwrap_or("UnknownError");
        let message = value["message"]
            .as_str()
            .or_else(|| value["Message"].as_str())
            .unwrap_or_default();
        Err(ApiError {
            code: code.to_string(),
            message: message.to_string(),
            status: status.as_u16(),
        })
    }

    /// Every page of a List operation: `field` is the list member of its answer (`clusterArns`),
    /// at most `limit` items.
    pub async fn list_all(
        &self,
        operation: &str,
        mut input: Value,
        field: &str,
        limit: usize,
    ) -> Result<Vec<String>, ApiError> {
        let mut all = Vec::new();
        loop {
            let out = self.ecs(operation, input.clone()).await?;
            all.extend(
                out[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
            match out["nextToken"].as_str() {
                Some(token) if all.len() < limit => input["nextToken"] = Value::from(token),
                _ => break,
            }
        }
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ApiConfig;
    use flotilla_model::arn::ArnContext;
    use serde_json::json;

    struct Fixed;
    impl crate::Clock for Fixed {
        fn now(&self) -> f64 {
            1_700_000_000.0
        }
    }

    fn credential(secret: &str) -> Credential {
        Credential {
            access_key_id: "AKIDCONSOLE".into(),
            secret_access_key: secret.into(),
            session_token: None,
            principal_arn: "arn:aws:iam::000000000000:root".into(),
        }
    }

    fn api() -> Arc<Api> {
        let store: Arc<dyn flotilla_store::Store> = Arc::new(flotilla_store::MemoryStore::new());
        Arc::new(Api::new(
            store,
            ApiConfig {
                arns: ArnContext {
                    region: "us-east-1".into(),
                    account: "000000000000".into(),
                },
                credentials: vec![credential("right")],
            },
            Arc::new(Fixed),
        ))
    }

    #[tokio::test]
    async fn a_call_goes_through_the_api_and_answers_its_errors() {
        let api = api();
        let c = Client::new(api.clone(), credential("right"));
        let out = c
            .ecs("CreateCluster", json!({"clusterName": "console"}))
            .await
            .unwrap();
        assert_eq!(out["cluster"]["clusterName"], "console");
        let e = c
            .ecs(
                "DescribeServices",
                json!({"cluster": "nope", "services": ["x"]}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ClusterNotFoundException");
        assert_eq!(e.status, 400);
        // The model's validation runs too.
        let e = c
            .ecs("CreateService", json!({"serviceName": 5}))
            .await
            .unwrap_err();
        assert_eq!(e.code, "SerializationException", "{e:?}");
    }

    #[tokio::test]
    async fn a_call_is_signed_and_verified_like_any_other() {
        let c = Client::new(api(), credential("wrong"));
        let e = c.ecs("ListClusters", json!({})).await.unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException", "{e:?}");
        assert_eq!(e.status, 403);
    }

    #[tokio::test]
    async fn list_all_follows_next_tokens() {
        let api = api();
        let c = Client::new(api, credential("right"));
        for i in 0..3 {
            c.ecs("CreateCluster", json!({"clusterName": format!("c{i}")}))
                .await
                .unwrap();
        }
        let all = c
            .list_all("ListClusters", json!({"maxResults": 1}), "clusterArns", 100)
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        let two = c
            .list_all("ListClusters", json!({"maxResults": 1}), "clusterArns", 2)
            .await
            .unwrap();
        assert_eq!(two.len(), 2);
    }
}
