//! How a replica reads the other replicas' metric series: [`ReplicaPeers`] asks every replica
//! recorded under `replicas/` (but this one) with Flotilla's own `FlotillaAdmin.MetricQuery`,
//! signed with this server's first credential as Logs' forwarding is; each answers from its own
//! series only ([`flotilla_cloudwatch::reader::answer_locally`]), so nothing is forwarded twice.
//! A replica that does not answer fails the query (a figure missing part of its samples would
//! be wrong, not partial).

use crate::admin::ReplicaInfo;
use flotilla_cloudwatch::reader::{PeerAnswer, PeerQuery, Peers};
use flotilla_control::keys::REPLICAS;
use flotilla_metrics::MetricsError;
use flotilla_sigv4::Credential;
use flotilla_store::Store;
use std::sync::Arc;
use std::time::Duration;

const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The other replicas of a region.
pub struct ReplicaPeers {
    store: Arc<dyn Store>,
    me: String,
    region: String,
    credential: Option<Credential>,
    http: reqwest::Client,
}

impl ReplicaPeers {
    /// The replicas recorded in `store`, other than `me`, called in `region` with `credential`.
    pub fn new(
        store: Arc<dyn Store>,
        me: String,
        region: String,
        credential: Option<Credential>,
    ) -> Self {
        ReplicaPeers {
            store,
            me,
            region,
            credential,
            http: reqwest::Client::new(),
        }
    }

    /// Builder: the HTTP client of calls to other replicas (with their TLS trust:
    /// [`crate::transport::Transport::http_client`]).
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    async fn ask_one(&self, r: &ReplicaInfo, q: &PeerQuery) -> Result<PeerAnswer, MetricsError> {
        let unavailable = |e: String| {
            MetricsError::Unavailable(format!(
                "server replica {} at {} holds part of the region's metrics and did not answer ({e}); try again",
                r.id, r.url
            ))
        };
        let Some(cred) = &self.credential else {
            return Err(unavailable(
                "this server has no credential to ask it".into(),
            ));
        };
        let body = serde_json::to_vec(q).map_err(|e| unavailable(e.to_string()))?;
        let answer = crate::peer_call::call(
            &self.http,
            &r.url,
            &self.region,
            cred,
            "MetricQuery",
            body,
            ASK_TIMEOUT,
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;
        let (status, bytes) = (answer.status, answer.body);
        if !status.is_success() {
            return Err(unavailable(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("an unreadable answer: {e}")))
    }
}

#[async_trait::async_trait]
impl Peers for ReplicaPeers {
    async fn ask_all(&self, q: &PeerQuery) -> Result<Vec<PeerAnswer>, MetricsError> {
        let page = self
            .store
            .list(REPLICAS, None, 0)
            .await
            .map_err(|e| MetricsError::Unavailable(format!("the store did not answer: {e}")))?;
        let others: Vec<ReplicaInfo> = page
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<ReplicaInfo>(&kv.value).ok())
            .filter(|r| r.id != self.me)
            .collect();
        let answers = futures::future::join_all(others.iter().map(|r| self.ask_one(r, q))).await;
        answers.into_iter().collect()
    }
}
