//! A small ECS API client for the human verbs: signs requests with SigV4 and posts them to the
//! endpoint, turning ECS errors into readable messages.
//!
//! Endpoint: `--endpoint`, else `AWS_ENDPOINT_URL_ECS`, else `AWS_ENDPOINT_URL`, else
//! `http://127.0.0.1:8080`; any of them may list the server's replicas separated by commas. A
//! call goes to the replica that last answered; when it cannot connect, the next one is tried,
//! each at most once per call. An answer, even an error (4xx or 5xx), is never retried
//! elsewhere: the request may have been applied. Credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (`AWS_SESSION_TOKEN`), else the `[default]` profile of `AWS_SHARED_CREDENTIALS_FILE`, else the
//! file `flotilla dev` writes in its default data directory.
//!
//! TLS: an `https://` endpoint is verified with `--ca-file`, else `FLOTILLA_CA_FILE`, else
//! `AWS_CA_BUNDLE` (as the aws CLI reads it), else the system's roots. A certificate it does
//! not trust fails the connection with the verifier's reason; like a replica that cannot be
//! connected to, the next replica is tried (the request was not sent).

use anyhow::{anyhow, bail, Context};
use flotilla_agent::endpoints::Endpoints;
use flotilla_sigv4::target::{admin_target, ecs_target, json_headers, ECS_SERVICE};
use flotilla_sigv4::{Request, Signer};
use serde_json::Value;

/// The `--endpoint` flag of the human verbs.
#[derive(clap::Args, Debug)]
pub struct EndpointArgs {
    /// The Flotilla endpoint, or its replicas' URLs separated by commas (each is tried in turn
    /// when the current one cannot be reached) [default: AWS_ENDPOINT_URL_ECS,
    /// AWS_ENDPOINT_URL, http://127.0.0.1:8080].
    #[arg(long)]
    endpoint: Option<String>,
    /// The CA certificates (PEM) an https:// endpoint's certificate is verified with
    /// [default: FLOTILLA_CA_FILE, AWS_CA_BUNDLE, else the system's roots].
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
}

impl EndpointArgs {
    /// A client of that endpoint, with credentials from the environment.
    pub fn client(&self) -> anyhow::Result<EcsClient> {
        EcsClient::from_env(self.endpoint.as_deref())?
            .with_ca_file(crate::tls::ca_file(self.ca_file.as_deref()).as_deref())
    }
}

fn parse_endpoints(list: &str) -> anyhow::Result<Endpoints> {
    Endpoints::parse(list).ok_or_else(|| anyhow!("no endpoint URL in '{list}'"))
}

/// A signed ECS API client.
pub struct EcsClient {
    http: reqwest::Client,
    /// Whom `https://` and `wss://` connections trust (`None`: no endpoint is `https://`).
    tls: Option<flotilla_tls::ClientTls>,
    endpoints: Endpoints,
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
    /// A client for a known endpoint (or comma-separated replicas) and key.
    pub fn new(
        endpoint: String,
        region: String,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    ) -> anyhow::Result<Self> {
        Ok(EcsClient {
            http: reqwest::Client::new(),
            tls: None,
            endpoints: parse_endpoints(&endpoint)?,
            region,
            access_key_id,
            secret_access_key,
            session_token,
        })
    }

    /// Verifies `https://` endpoints with the CA file `ca` (`None`: the system's roots). A
    /// client none of whose endpoints is `https://`, and with no CA file, stays plain.
    pub fn with_ca_file(mut self, ca: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let urls: Vec<&str> = self.endpoints.urls().iter().map(String::as_str).collect();
        let Some(tls) = crate::tls::client_tls(urls, ca)? else {
            return Ok(self);
        };
        self.http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls.config()).clone())
            .build()
            .context("the HTTP client")?;
        self.tls = Some(tls);
        Ok(self)
    }

    /// The connector of WebSockets this client opens (`flotilla exec`'s stream): rustls with
    /// this client's trust.
    pub fn ws_connector(&self) -> anyhow::Result<tokio_tungstenite::Connector> {
        Ok(match &self.tls {
            Some(t) => tokio_tungstenite::Connector::Rustls(t.config()),
            None => tokio_tungstenite::Connector::Rustls(
                flotilla_tls::ClientTls::trust_nothing()?.config(),
            ),
        })
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
        let session_token = std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|s| !s.is_empty());
        Self::new(
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token,
        )
    }

    /// Calls one ECS operation.
    pub async fn call(&self, operation: &str, input: Value) -> anyhow::Result<Value> {
        self.call_target(&ecs_target(operation), operation, input, ECS_SERVICE)
            .await
    }

    /// Calls one CloudWatch Logs operation (signed for `logs`, on the same endpoint).
    pub async fn call_logs(&self, operation: &str, input: Value) -> anyhow::Result<Value> {
        self.call_target(
            &format!("Logs_20140328.{operation}"),
            operation,
            input,
            "logs",
        )
        .await
    }

    /// Calls one of Flotilla's own operations (`FlotillaAdmin.<operation>`).
    pub async fn call_admin(&self, operation: &str, input: Value) -> anyhow::Result<Value> {
        self.call_target(&admin_target(operation), operation, input, ECS_SERVICE)
            .await
    }

    /// `GET /metrics` of every replica of the endpoint: `(replica URL, text or why not)`.
    pub async fn metrics_texts(&self) -> Vec<(String, anyhow::Result<String>)> {
        let mut out = Vec::new();
        for (_, endpoint) in self.endpoints.rotation() {
            let url = format!("{}/metrics", endpoint.trim_end_matches('/'));
            let got = async {
                let resp = self.http.get(&url).send().await?.error_for_status()?;
                resp.text().await
            }
            .await
            .with_context(|| format!("reading {url}"));
            out.push((endpoint.to_string(), got));
        }
        out
    }

    /// Sends the call to each replica in turn, from the current one, until one answers.
    async fn call_target(
        &self,
        target: &str,
        operation: &str,
        input: Value,
        service: &str,
    ) -> anyhow::Result<Value> {
        let body = serde_json::to_vec(&input)?;
        let mut unreachable = Vec::new();
        for (replica, endpoint) in self.endpoints.rotation() {
            match self.send(endpoint, target, &body, service).await? {
                Ok(resp) => return answer(operation, resp).await,
                Err(e) => {
                    self.endpoints.failed(replica);
                    unreachable.push(format!("{endpoint}: {}", flotilla_agent::client::chain(&e)));
                }
            }
        }
        let why = unreachable.join("; ");
        if why.contains("certificate") {
            bail!(
                "could not reach Flotilla at {} over TLS: {why} (to trust the server's CA, give --ca-file FILE, FLOTILLA_CA_FILE or AWS_CA_BUNDLE)",
                self.endpoints
            )
        }
        bail!(
            "could not reach Flotilla at {} (is `flotilla dev` running?): {why}",
            self.endpoints
        )
    }

    /// Signs and sends one request to `endpoint`: the response, or `Err` when no connection
    /// could be made (the request was not sent, so another replica may take it).
    async fn send(
        &self,
        endpoint: &str,
        target: &str,
        body: &[u8],
        service: &str,
    ) -> anyhow::Result<Result<reqwest::Response, reqwest::Error>> {
        let url = reqwest::Url::parse(endpoint)
            .with_context(|| format!("invalid endpoint '{endpoint}'"))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => bail!("endpoint '{endpoint}' has no host"),
        };
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
        let signed = flotilla_sigv4::sign_for(service, &Request::post(&base, body), &signer, now);
        let mut req = self.http.post(url).body(body.to_vec());
        for (k, v) in base.iter().skip(1) {
            req = req.header(*k, *v);
        }
        for (k, v) in signed {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(resp) => Ok(Ok(resp)),
            Err(e) if e.is_connect() => Ok(Err(e)),
            Err(e) => Err(anyhow!(
                "calling Flotilla at {endpoint}: {}",
                flotilla_agent::client::chain(&e)
            )),
        }
    }

    /// The SigV4 headers of a `GET path?query` to `authority` (`host:port`), signed for ECS with
    /// this client's key now (ECS Exec's stream is opened this way).
    pub fn sign_get(&self, authority: &str, path: &str, query: &str) -> Vec<(String, String)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let signer = Signer {
            region: &self.region,
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: self.session_token.as_deref(),
        };
        flotilla_sigv4::sign(
            &Request {
                method: "GET",
                path,
                query,
                headers: &[("host", authority)],
                body: b"",
            },
            &signer,
            now,
        )
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

/// An error the service answered: what callers may look at (`anyhow::Error::downcast_ref`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {code}: {message}")]
pub struct ServiceError {
    /// The operation.
    pub operation: String,
    /// The error's `__type` (`ResourceNotFoundException`).
    pub code: String,
    /// Its message.
    pub message: String,
}

/// The answer's JSON, or the service's error ([`ServiceError`]) as a readable message.
async fn answer(operation: &str, resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(ServiceError {
            operation: operation.to_string(),
            code: value["__type"].as_str().unwrap_or("error").to_string(),
            message: value["message"].as_str().unwrap_or("").to_string(),
        }
        .into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering every request with `status` and an ECS error; counts requests.
    async fn answering(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let body = format!(r#"{{"__type":"E{status}","message":"no"}}"#);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        (url, hits)
    }

    fn client(endpoints: &str) -> EcsClient {
        EcsClient::new(
            endpoints.into(),
            "us-east-1".into(),
            "AK".into(),
            "S".into(),
            None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_call_tries_the_next_replica_only_when_it_cannot_connect() {
        let dead = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let (refusing, refusing_hits) = answering(400).await;
        let (failing, failing_hits) = answering(500).await;
        // Dead, then a 4xx: the 4xx is the answer, and that replica stays current.
        let c = client(&format!("{dead},{refusing},{failing}"));
        let e = c.call("ListClusters", Value::Null).await.unwrap_err();
        assert!(e.to_string().contains("E400"), "{e}");
        assert_eq!(c.endpoints.current().1, refusing);
        assert_eq!(failing_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        // A 5xx is an answer too: never sent again elsewhere.
        let c = client(&format!("{failing},{refusing}"));
        let e = c.call("ListClusters", Value::Null).await.unwrap_err();
        assert!(e.to_string().contains("E500"), "{e}");
        assert_eq!(refusing_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        // None reachable: one error naming every replica.
        let c = client(&format!("{dead}, {dead}"));
        let e = c.call("ListClusters", Value::Null).await.unwrap_err();
        assert!(e.to_string().contains("could not reach Flotilla"), "{e}");
        assert!(EcsClient::new(" ,".into(), "r".into(), "a".into(), "s".into(), None).is_err());
    }
}
