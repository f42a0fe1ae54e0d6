//! A small ECS API client for the human verbs: signs requests with SigV4 and posts them to the
//! endpoint, turning ECS errors into readable messages.
//!
//! Endpoint: `--endpoint`, else `AWS_ENDPOINT_URL_ECS`, else `AWS_ENDPOINT_URL`, else
//! `http://127.0.0.1:8080`. Credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (`AWS_SESSION_TOKEN`), else the `[default]` profile of `AWS_SHARED_CREDENTIALS_FILE`, else the
//! file `flotilla dev` writes in its default data directory.

use anyhow::{anyhow, bail, Context};
use flotilla_sigv4::target::{admin_target, ecs_target, json_headers};
use flotilla_sigv4::{Request, Signer};
use serde_json::Value;

/// A signed ECS API client.
pub struct EcsClient {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// Reads the `[default]` profile's keys from an AWS shared-credentials file.
pub fn read_profile(path: &std::path::Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut in_default = false;
    let (mut akid, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_default = line == "[default]";
        } else if in_default {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "aws_access_key_id" => akid = Some(v.trim().to_string()),
                    "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
    }
    Some((akid?, secret?))
}

impl EcsClient {
    /// A client for a known endpoint and key.
    pub fn new(
        endpoint: String,
        region: String,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    ) -> Self {
        EcsClient {
            http: reqwest::Client::new(),
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token,
        }
    }

    /// Builds a client from flags and the environment.
    pub fn from_env(endpoint: Option<&str>) -> anyhow::Result<Self> {
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_ECS").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".to_string());
        let env_pair = match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => Some((a, s)),
            _ => None,
        };
        let (access_key_id, secret_access_key) = match env_pair {
            Some(p) => p,
            None => {
                let file = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|_| crate::config::default_data_dir().join("credentials"));
                read_profile(&file).ok_or_else(|| {
                    anyhow!(
                        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (flotilla dev prints them), or AWS_SHARED_CREDENTIALS_FILE (tried {})",
                        file.display()
                    )
                })?
            }
        };
        Ok(EcsClient {
            http: reqwest::Client::new(),
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }

    /// Calls one ECS operation.
    pub async fn call(&self, operation: &str, input: Value) -> anyhow::Result<Value> {
        self.call_target(&ecs_target(operation), operation, input)
            .await
    }

    /// Calls one of Flotilla's own operations (`FlotillaAdmin.<operation>`).
    pub async fn call_admin(&self, operation: &str, input: Value) -> anyhow::Result<Value> {
        self.call_target(&admin_target(operation), operation, input)
            .await
    }

    async fn call_target(
        &self,
        target: &str,
        operation: &str,
        input: Value,
    ) -> anyhow::Result<Value> {
        let url = reqwest::Url::parse(&self.endpoint)
            .with_context(|| format!("invalid endpoint '{}'", self.endpoint))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => bail!("endpoint '{}' has no host", self.endpoint),
        };
        let body = serde_json::to_vec(&input)?;
        let base = json_headers(&host, target);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let signer = Signer {
            region: &self.region,
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: self.session_token.as_deref(),
        };
        let signed = flotilla_sigv4::sign(&Request::post(&base, &body), &signer, now);
        let mut req = self.http.post(url).body(body);
        for (k, v) in base.iter().skip(1) {
            req = req.header(*k, *v);
        }
        for (k, v) in signed {
            req = req.header(k, v);
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "could not reach Flotilla at {} (is `flotilla dev` running?)",
                self.endpoint
            )
        })?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let ty = value["__type"].as_str().unwrap_or("error");
            let msg = value["message"].as_str().unwrap_or("");
            bail!("{operation} failed: {ty}: {msg}");
        }
        Ok(value)
    }

    /// Calls a paginated List operation and gathers every page's `key` items.
    pub async fn list_all(
        &self,
        operation: &str,
        mut input: Value,
        key: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            let page = self.call(operation, input.clone()).await?;
            out.extend(page[key].as_array().cloned().unwrap_or_default());
            match page["nextToken"].as_str() {
                Some(t) => input["nextToken"] = Value::String(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Calls a batch Describe operation for every item of `ids`, `batch` at a time (ECS caps
    /// the list per call), putting each batch in `input[ids_key]`, and gathers the `out_key`
    /// items of every answer.
    pub async fn describe_all(
        &self,
        operation: &str,
        mut input: Value,
        ids_key: &str,
        ids: &[Value],
        batch: usize,
        out_key: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(batch.max(1)) {
            input[ids_key] = Value::Array(chunk.to_vec());
            let page = self.call(operation, input.clone()).await?;
            out.extend(page[out_key].as_array().cloned().unwrap_or_default());
        }
        Ok(out)
    }
}
