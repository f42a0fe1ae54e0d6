//! CloudWatch Logs at the edge: where a stream's events are asked for.
//!
//! The Logs service (`flotilla_logs_service::Logs`) keeps metadata in the store and asks a
//! stream's owner for its events. This module is how a replica reaches owners other than
//! itself ([`EdgeOwners`], its `Owners`):
//! - an agent whose session this replica holds: through the session ([`AgentLogs`]: a
//!   `ServerMessage::Log` with an id, answered by `AgentMessage::Log` with that id);
//! - an agent whose session another replica holds (its beat record names the replica), and a
//!   PutLogEvents stream of another replica: Flotilla's own `FlotillaAdmin.LogQuery` on that
//!   replica (its URL from its `replicas/ID` record), signed with this server's first
//!   credential (replicas of a region share their credentials); that replica answers only from
//!   what it holds itself ([`local_query`]), so a request never travels twice;
//! - an owner nobody can reach: `ServiceUnavailableException` saying where the events are and
//!   when they are readable again, never an empty page.
//!
//! [`SessionLogs`] is a session's part: it takes the reads of its agent's streams, and pushes
//! the log groups (`ServerMessage::LogGroups`) when the session opens and whenever one changes.

use crate::admin::ReplicaInfo;
use flotilla_control::keys::{agent_beat_key, instance_key, BeatRecord, REPLICAS};
use flotilla_logs::names::GROUPS;
use flotilla_logs::query::{LogRequest, LogResponse};
use flotilla_logs::{LogsError, LogsErrorCode};
use flotilla_logs_service::{Logs, Owner, Owners};
use flotilla_protocol::ServerMessage;
use flotilla_sigv4::Credential;
use flotilla_store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long an owner has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);

/// A read on its way to an agent: the request and where its answer goes.
pub type Pending = (LogRequest, oneshot::Sender<Result<LogResponse, String>>);

/// The agent sessions this replica holds, for reads of their hosts' streams, and the one watch
/// of the log groups that tells them all when the list changed.
pub struct AgentLogs {
    sessions: Mutex<HashMap<String, (u64, mpsc::Sender<Pending>)>>,
    groups: Arc<flotilla_controllers::prefix_changes::PrefixChanges>,
}

impl Default for AgentLogs {
    fn default() -> Self {
        AgentLogs {
            sessions: Mutex::default(),
            groups: flotilla_controllers::prefix_changes::PrefixChanges::new(GROUPS),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AgentLogs {
    /// Session `sid` of the instance at `key` takes its reads from the returned receiver.
    pub fn register(&self, key: &str, sid: u64) -> mpsc::Receiver<Pending> {
        let (tx, rx) = mpsc::channel(64);
        lock(&self.sessions).insert(key.to_string(), (sid, tx));
        rx
    }

    /// Session `sid` ended.
    pub fn unregister(&self, key: &str, sid: u64) {
        let mut s = lock(&self.sessions);
        if s.get(key).is_some_and(|(cur, _)| *cur == sid) {
            s.remove(key);
        }
    }

    /// Asks the agent of the instance at `key` through its session here; `None` when this
    /// replica holds no session of it.
    pub async fn ask(&self, key: &str, request: LogRequest) -> Option<Result<LogResponse, String>> {
        let tx = lock(&self.sessions).get(key).map(|(_, tx)| tx.clone())?;
        let (answer_tx, answer_rx) = oneshot::channel();
        if tx.send((request, answer_tx)).await.is_err() {
            return None;
        }
        Some(match tokio::time::timeout(ASK_TIMEOUT, answer_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the agent's session ended before it answered".into()),
            Err(_) => Err(format!("the agent did not answer within {ASK_TIMEOUT:?}")),
        })
    }
}

/// How this replica reaches the owners of streams.
pub struct EdgeOwners {
    store: Arc<dyn Store>,
    agents: Arc<AgentLogs>,
    replica: Option<String>,
    /// Other replicas share the store (else there is no other replica to ask).
    shared: bool,
    region: String,
    credential: Option<Credential>,
    http: reqwest::Client,
}

impl EdgeOwners {
    /// Owners reached through `agents` (sessions here) and, when replicas share the store
    /// (`shared`), the other replicas recorded in it, called with `credential` in `region`.
    pub fn new(
        store: Arc<dyn Store>,
        agents: Arc<AgentLogs>,
        replica: Option<String>,
        shared: bool,
        region: String,
        credential: Option<Credential>,
    ) -> Self {
        Self {
            store,
            agents,
            replica,
            shared,
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

    async fn replica_url(&self, id: &str) -> Result<Option<String>, LogsError> {
        let kv = self
            .store
            .get(&format!("{REPLICAS}{id}"))
            .await
            .map_err(flotilla_logs_service::records::store_error)?;
        Ok(kv
            .and_then(|kv| serde_json::from_slice::<ReplicaInfo>(&kv.value).ok())
            .map(|r| r.url))
    }

    /// `FlotillaAdmin.LogQuery` on another replica.
    async fn remote(
        &self,
        replica: &str,
        owner: &Owner,
        request: LogRequest,
    ) -> Result<LogResponse, LogsError> {
        let Some(url) = self.replica_url(replica).await? else {
            return Err(LogsError::unavailable(format!(
                "The events of this log stream are kept by {owner}, reached through server replica {replica}, which is not running; they are readable again once it is."
            )));
        };
        let Some(cred) = &self.credential else {
            return Err(LogsError::unavailable(format!(
                "The events of this log stream are kept by {owner}, reached through server replica {replica} at {url}; this server has no credential to ask it: ask {url} directly."
            )));
        };
        let body = serde_json::to_vec(&serde_json::json!({"owner": owner, "request": request}))
            .map_err(|e| LogsError::unavailable(format!("could not encode the request: {e}")))?;
        let unreachable = |e: String| {
            LogsError::unavailable(format!(
                "The events of this log stream are kept by {owner}, reached through server replica {replica} at {url}, which did not answer ({e}); ask {url} directly."
            ))
        };
        let answer = crate::peer_call::call(
            &self.http,
            &url,
            &self.region,
            cred,
            "LogQuery",
            body,
            ASK_TIMEOUT,
        )
        .await
        .map_err(|e| unreachable(e.to_string()))?;
        let (status, bytes) = (answer.status, answer.body);
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| unreachable(format!("an unreadable answer: {e}")));
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = v["message"].as_str().unwrap_or("").to_string();
        Err(match v["__type"].as_str() {
            Some("ResourceNotFoundException") => {
                LogsError::new(LogsErrorCode::ResourceNotFoundException, message)
            }
            _ => LogsError::unavailable(message),
        })
    }
}

/// Runs a request for an owner this replica holds itself: its own streams, or an agent whose
/// session is here. `None`: the owner is not here.
pub async fn local_query(
    logs: &Logs,
    agents: &AgentLogs,
    owner: &Owner,
    request: LogRequest,
    now_ms: i64,
) -> Option<Result<LogResponse, LogsError>> {
    match owner {
        Owner::Server { .. } if logs.is_me(owner) => Some(logs.ask_local(request, now_ms).await),
        Owner::Server { .. } => None,
        Owner::Agent { cluster, instance } => agents
            .ask(&instance_key(cluster, instance), request)
            .await
            .map(|r| r.map_err(|e| agent_failed(owner, &e))),
    }
}

fn agent_failed(owner: &Owner, e: &str) -> LogsError {
    LogsError::unavailable(format!(
        "The events of this log stream are kept by {owner}, which could not answer: {e}"
    ))
}

#[async_trait::async_trait]
impl Owners for EdgeOwners {
    async fn ask(&self, owner: &Owner, request: LogRequest) -> Result<LogResponse, LogsError> {
        match owner {
            Owner::Server { replica } => self.remote(replica, owner, request).await,
            Owner::Agent { cluster, instance } => {
                if let Some(r) = self
                    .agents
                    .ask(&instance_key(cluster, instance), request.clone())
                    .await
                {
                    return r.map_err(|e| agent_failed(owner, &e));
                }
                // Which replica heard the agent last?
                let beat = self
                    .store
                    .get(&agent_beat_key(cluster, instance))
                    .await
                    .map_err(flotilla_logs_service::records::store_error)?
                    .and_then(|kv| serde_json::from_slice::<BeatRecord>(&kv.value).ok());
                match beat.and_then(|b| b.replica) {
                    Some(r) if self.shared && Some(&r) != self.replica.as_ref() => {
                        self.remote(&r, owner, request).await
                    }
                    _ => Err(LogsError::unavailable(format!(
                        "The events of this log stream are kept on its host by {owner}, which is not connected to any server replica now; they are readable again once it reconnects."
                    ))),
                }
            }
        }
    }
}

/// A session's part in Logs: the reads of its agent's streams, and the log group list.
pub struct SessionLogs {
    reads: Option<mpsc::Receiver<Pending>>,
    pending: HashMap<u64, oneshot::Sender<Result<LogResponse, String>>>,
    next_id: AtomicU64,
    store: Arc<dyn Store>,
    /// The replica's one watch of the log groups.
    shared: Option<Arc<flotilla_controllers::prefix_changes::PrefixChanges>>,
    /// Following it, with the revision the list sent was read at.
    groups: Option<(flotilla_controllers::prefix_changes::Follower, u64)>,
    /// The list must be sent (at the start, after a change).
    stale: bool,
}

impl SessionLogs {
    /// The part of session `sid` of the instance at `key`; without `agents` (a server without
    /// Logs) it never has anything to send.
    pub fn open(store: Arc<dyn Store>, agents: Option<&AgentLogs>, key: &str, sid: u64) -> Self {
        Self {
            reads: agents.map(|a| a.register(key, sid)),
            pending: HashMap::new(),
            next_id: AtomicU64::new(1),
            store,
            shared: agents.map(|a| a.groups.clone()),
            groups: None,
            stale: agents.is_some(),
        }
    }

    /// The next message to send the agent: a read, or the log groups.
    pub async fn next(&mut self) -> ServerMessage {
        loop {
            if self.stale {
                // Followed before the list is read, so no change after the read is missed.
                let follower = match &self.shared {
                    Some(shared) => shared.follow(&self.store).await.ok(),
                    None => None,
                };
                match flotilla_logs_service::janitor::group_states(self.store.as_ref()).await {
                    Ok((revision, groups)) => {
                        // Cancelled before this completes, the list is simply made again.
                        self.groups = follower.map(|f| (f, revision));
                        self.stale = false;
                        return ServerMessage::LogGroups { revision, groups };
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the log groups for the agent");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                }
            }
            enum Next {
                Read(Option<Pending>),
                GroupsChanged,
            }
            let next = {
                let Some(reads) = self.reads.as_mut() else {
                    return std::future::pending().await;
                };
                let groups = async {
                    match self.groups.as_mut() {
                        // A change after the list, or the shared watch ended: list again.
                        Some((f, listed_at)) => {
                            f.changed_after(*listed_at).await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    r = reads.recv() => Next::Read(r),
                    _ = groups => Next::GroupsChanged,
                }
            };
            match next {
                Next::Read(Some((request, answer))) => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    self.pending.insert(id, answer);
                    return ServerMessage::Log { id, request };
                }
                Next::Read(None) => return std::future::pending().await,
                Next::GroupsChanged => self.stale = true,
            }
        }
    }

    /// The agent answered read `id`.
    pub fn answer(&mut self, id: u64, result: Result<LogResponse, String>) {
        if let Some(tx) = self.pending.remove(&id) {
            let _ = tx.send(result);
        }
    }
}
