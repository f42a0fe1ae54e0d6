//! The push session with the server: one WebSocket at [`SESSION_PATH`], reconnected forever.
//!
//! What this is: [`run_session`] asks `DiscoverPollEndpoint` where the session lives, connects
//! (the upgrade `GET` signed with SigV4, including `host`), waits for `Welcome`, then: hands
//! `Tasks` to the [`Engine`], sends every engine report, keeps each task's latest report until
//! the server acknowledges its `seq` (and re-sends the unacknowledged ones after a reconnect),
//! sends a heartbeat every `heartbeat_interval_ms` and usage every `usage_interval`, and
//! forwards the owners' requests for their tasks' secrets and task role credentials, handing
//! each answer back to the owner that asked (kept in memory only), and starts ECS Exec's
//! commands ([`crate::exec`], each on a WebSocket of its own dialled back to the session's
//! replica). A broken
//! session is retried with exponential backoff with jitter and a cap ([`Backoff`]), reset after
//! a session that stayed up [`STABLE_SESSION`]; the instance is never re-registered by a
//! reconnect. With several server replicas, a session that cannot be opened or that drops moves
//! the client to the next replica ([`crate::endpoints::Endpoints::failed`]) before the backoff,
//! so the retry goes there; the reports kept until acknowledged are re-sent on whichever replica
//! answers (they all share one store), and the engine runs on untouched.
//!
//!
//! A session on another replica than the preferred one (the first URL: the agent's own zone's)
//! checks every [`HOME_PROBE_INTERVAL`] whether the preferred one is ready again (`/readyz`);
//! after [`HOME_PROBE_PASSES`] ready answers in a row the session ends and the next one opens
//! there at once, so agents spread back over the replicas after a replica returns, and an
//! agent's session does not depend on another zone's links for longer than it must.
//!
//! What this is not: registration (see [`crate::run`]) and not the engine: it decides nothing
//! about tasks.

use crate::client::{authority_of, now_secs, ApiError, EcsClient};
use crate::engine::Engine;
use flotilla_logs::query::LogResponse;
use flotilla_protocol::{
    AgentMessage, ServerMessage, TaskStateReport, INSTANCE_PARAM, PROTOCOL_VERSION, SESSION_PATH,
};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

/// How often a session away from the preferred replica checks whether it is back.
pub const HOME_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How many ready answers in a row bring the session back to the preferred replica.
pub const HOME_PROBE_PASSES: u32 = 3;

/// Exponential backoff with jitter and a cap (like the ECS agent's ACS reconnects).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles per failure up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            current: min,
        }
    }

    /// The next delay: the current step with ±20 % jitter (`unit` in [0, 1) is the random
    /// draw, passed in so tests are reproducible); then doubles the step, up to the cap.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let jitter = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
        let d = self.current.mul_f64(jitter).min(self.max);
        self.current = (self.current * 2).min(self.max);
        d
    }

    /// The next delay with a random draw.
    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng;
        let unit: f64 = rand::thread_rng().gen();
        self.next_with(unit)
    }

    /// Back to the minimum after a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// URI-encodes a query value (RFC 3986 unreserved characters kept).
pub fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A session that stayed up this long was healthy: the backoff starts again from its minimum.
/// A replica that welcomes the agent and drops it at once keeps backing off.
pub const STABLE_SESSION: Duration = Duration::from_secs(10);

/// A session failure (always retried).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    Ws(String),
    /// The server spoke an incompatible protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server answered nothing (not even a WebSocket pong) for this long: it is frozen or
    /// cut off, and the agent moves to another replica.
    #[error("the server was silent for {0:?}")]
    Silent(Duration),
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    client: &EcsClient,
    endpoint: &str,
    instance_arn: &str,
) -> Result<Ws, SessionError> {
    let query = format!("{INSTANCE_PARAM}={}", uri_encode(instance_arn));
    connect_signed(client, endpoint, SESSION_PATH, &query, &[]).await
}

/// Opens a WebSocket at `path?query` of the replica `endpoint`, its upgrade `GET` signed with
/// SigV4 (including `host`), with `extra` headers (not signed). The session and ECS Exec's
/// dial-back ([`crate::exec`]) open theirs this way.
pub(crate) async fn connect_signed(
    client: &EcsClient,
    endpoint: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
) -> Result<Ws, SessionError> {
    let (_, authority) = authority_of(endpoint)?;
    let scheme = if endpoint.starts_with("https://") {
        "wss"
    } else {
        "ws"
    };
    let url = format!("{scheme}://{authority}{path}?{query}");
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| SessionError::Ws(e.to_string()))?;
    let signed = flotilla_sigv4::sign(
        &flotilla_sigv4::Request {
            method: "GET",
            path,
            query,
            headers: &[("host", &authority)],
            body: b"",
        },
        &client.signer(),
        now_secs(),
    );
    for (k, v) in signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied())
    {
        let name: HeaderName = k
            .parse()
            .map_err(|_| SessionError::Ws(format!("header {k}")))?;
        let value =
            HeaderValue::from_str(v).map_err(|_| SessionError::Ws(format!("header {k}")))?;
        req.headers_mut().insert(name, value);
    }
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            // A small read buffer: tungstenite zero-fills the whole buffer (128 KiB by
            // default) before every read; the server's messages are small, and a larger one
            // grows it as needed.
            Some(
                tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(8 * 1024),
            ),
            false,
            Some(client.ws_connector()),
        ),
    )
    .await
    .map_err(|_| SessionError::Ws("connect timed out".into()))?
    .map_err(|e| SessionError::Ws(crate::client::chain(&e)))?;
    Ok(ws)
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reports not yet acknowledged, latest per task.
#[derive(Debug, Default)]
pub struct Unacked {
    by_task: HashMap<String, TaskStateReport>,
}

impl Unacked {
    /// Keeps a report (replacing an older one of the same task).
    pub fn push(&mut self, r: TaskStateReport) {
        match self.by_task.get(&r.task_arn) {
            Some(old) if old.seq > r.seq => {}
            _ => {
                self.by_task.insert(r.task_arn.clone(), r);
            }
        }
    }

    /// Forgets reports up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        self.by_task.retain(|_, r| r.seq > seq);
    }

    /// What to re-send, in seq order.
    pub fn pending(&self) -> Vec<TaskStateReport> {
        let mut v: Vec<TaskStateReport> = self.by_task.values().cloned().collect();
        v.sort_by_key(|r| r.seq);
        v
    }
}

/// Of `reports` (in the order the engine made them), the latest of each task, in seq order: a
/// report is the task's whole observed state, so a newer one says all an older one did.
pub fn latest_per_task(reports: Vec<TaskStateReport>) -> Vec<TaskStateReport> {
    let mut latest = Unacked::default();
    for r in reports {
        latest.push(r);
    }
    let mut out: Vec<TaskStateReport> = latest.by_task.into_values().collect();
    out.sort_by_key(|r| r.seq);
    out
}

/// What the session needs.
pub struct SessionParams<'a> {
    /// The API client.
    pub client: &'a EcsClient,
    /// Cluster.
    pub cluster: &'a str,
    /// This instance.
    pub instance_arn: &'a str,
    /// The engine.
    pub engine: &'a Engine,
    /// How often usage is sent.
    pub usage_interval: Duration,
}

/// Holds the session until `shutdown` completes, sending the engine's `reports`.
pub async fn run_session(
    p: SessionParams<'_>,
    reports: &mut UnboundedReceiver<TaskStateReport>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut unacked = Unacked::default();
    let mut asks = OwnerAsks {
        secrets: Asks::new(p.engine.secret_requests()),
        credentials: Asks::new(p.engine.credential_requests()),
        warm: p.engine.warm_requests(),
    };
    loop {
        let (replica, _) = p.client.endpoints().current();
        let mut welcomed = None;
        let result = one_session(
            &p,
            reports,
            &mut unacked,
            &mut asks,
            &mut welcomed,
            &mut shutdown,
        )
        .await;
        // Answers to requests sent on the session that ended will not come: their owners ask
        // again.
        asks.secrets.pending.clear();
        asks.credentials.pending.clear();
        if matches!(result, Ok(Ended::Shutdown)) {
            return;
        }
        if matches!(result, Ok(Ended::Home)) {
            p.client.endpoints().prefer_first();
            info!(container_instance = %p.instance_arn, home = %p.client.endpoints().current().1, "the preferred replica is ready again; moving the session back to it");
            continue;
        }
        if welcomed.is_some_and(|at: Instant| at.elapsed() >= STABLE_SESSION) {
            backoff.reset();
        }
        // Whatever broke, the next attempt goes to the next replica (a no-op with one server,
        // or when the failed API call already moved on).
        p.client.endpoints().failed(replica);
        let delay = backoff.next_delay();
        let next = p.client.endpoints().current().1;
        match result {
            Ok(_) => {
                info!(container_instance = %p.instance_arn, next = %next, delay_ms = delay.as_millis() as u64, "session closed; reconnecting")
            }
            Err(e) => {
                warn!(container_instance = %p.instance_arn, error = %e, next = %next, delay_ms = delay.as_millis() as u64, "session failed; reconnecting")
            }
        }
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        // Keep collecting reports while disconnected.
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = &mut sleep => break,
                Some(r) = reports.recv() => unacked.push(r),
            }
        }
    }
}

/// An owner's request the session forwards to the server (its task's secrets, its role's
/// credentials), answered on the owner's channel.
trait OwnerAsk: Send {
    /// The server's answer.
    type Answer;
    /// The task and where the answer goes.
    fn parts(self) -> (String, tokio::sync::oneshot::Sender<Self::Answer>);
    /// Whether the owner stopped waiting.
    fn abandoned(&self) -> bool;
}

impl OwnerAsk for crate::engine::SecretsRequest {
    type Answer = flotilla_protocol::SecretsOutcome;
    fn parts(self) -> (String, tokio::sync::oneshot::Sender<Self::Answer>) {
        (self.task_arn, self.reply)
    }
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

impl OwnerAsk for crate::engine::CredentialsRequest {
    type Answer = flotilla_protocol::CredentialsOutcome;
    fn parts(self) -> (String, tokio::sync::oneshot::Sender<Self::Answer>) {
        (self.task_arn, self.reply)
    }
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The owners' requests of one kind, and those sent and not answered yet.
struct Asks<R: OwnerAsk> {
    requests: Option<tokio::sync::mpsc::UnboundedReceiver<R>>,
    pending: HashMap<u64, tokio::sync::oneshot::Sender<R::Answer>>,
    next_id: u64,
}

impl<R: OwnerAsk> Asks<R> {
    fn new(requests: Option<tokio::sync::mpsc::UnboundedReceiver<R>>) -> Self {
        Asks {
            requests,
            pending: HashMap::new(),
            next_id: 0,
        }
    }

    /// The next request of an owner still waiting (never, without a receiver).
    async fn next(&mut self) -> R {
        loop {
            let Some(rx) = self.requests.as_mut() else {
                return std::future::pending().await;
            };
            match rx.recv().await {
                Some(r) if !r.abandoned() => return r,
                Some(_) => continue,
                None => self.requests = None,
            }
        }
    }

    /// Keeps `r`'s reply until the answer with the returned id comes: (id, task ARN).
    fn sent(&mut self, r: R) -> (u64, String) {
        self.next_id += 1;
        let (task_arn, reply) = r.parts();
        self.pending.insert(self.next_id, reply);
        (self.next_id, task_arn)
    }

    /// Hands an answer to the owner that asked.
    fn answer(&mut self, id: u64, answer: R::Answer) {
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(answer);
        }
    }
}

/// What the owners ask of the server through the session.
struct OwnerAsks {
    secrets: Asks<crate::engine::SecretsRequest>,
    credentials: Asks<crate::engine::CredentialsRequest>,
    /// The warm pool's refill requests (a managed-pool host's).
    warm: Option<tokio::sync::mpsc::UnboundedReceiver<u32>>,
}

/// The next refill request of the warm pool (never, without one).
async fn next_refill(warm: &mut Option<tokio::sync::mpsc::UnboundedReceiver<u32>>) -> u32 {
    loop {
        let Some(rx) = warm.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Some(size) => {
                // Several tasks took one at once: one request covers them.
                while rx.try_recv().is_ok() {}
                return size;
            }
            None => *warm = None,
        }
    }
}

/// How a session ended without an error.
enum Ended {
    /// The agent is shutting down (the socket was closed politely).
    Shutdown,
    /// The server closed the socket.
    Closed,
    /// The preferred replica is ready again: this session (on another one) ended to move there.
    Home,
}

async fn one_session<S: Future<Output = ()>>(
    p: &SessionParams<'_>,
    reports: &mut UnboundedReceiver<TaskStateReport>,
    unacked: &mut Unacked,
    asks: &mut OwnerAsks,
    welcomed: &mut Option<Instant>,
    shutdown: &mut std::pin::Pin<&mut S>,
) -> Result<Ended, SessionError> {
    let opened = tokio::select! {
        _ = shutdown.as_mut() => return Ok(Ended::Shutdown),
        r = open(p) => r?,
    };
    let (mut ws, heartbeat, endpoint) = opened;
    info!(container_instance = %p.instance_arn, endpoint = %endpoint, "session established");
    *welcomed = Some(Instant::now());
    for r in p.engine.current_reports() {
        unacked.push(r);
    }
    send_reports(&mut ws, unacked.pending()).await?;
    send(
        &mut ws,
        &AgentMessage::Heartbeat {
            sent_at_ms: epoch_ms(),
        },
    )
    .await?;
    if let Some(size) = p.engine.warm_pool_size() {
        // The server answers the host's warm task networks (0: it releases them).
        send(&mut ws, &AgentMessage::ReserveWarmNetworks { size }).await?;
    }
    // The server's reads of this host's logs run beside the loop; their answers come back
    // through this channel.
    let logs = p.engine.logs();
    let (log_tx, mut log_rx) = tokio::sync::mpsc::channel::<(u64, Result<LogResponse, String>)>(64);
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Every heartbeat also carries a WebSocket ping, which the server's WebSocket answers with a
    // pong even when it has nothing to say: a server silent for as long as the server itself
    // waits for an agent is frozen or cut off, and the session ends (the agent moves on).
    let silence_limit =
        heartbeat.saturating_mul(u32::try_from(flotilla_protocol::MISSED_HEARTBEATS).unwrap_or(3));
    let mut last_heard = Instant::now();
    // Away from the preferred replica: a probe on its own task (the loop below never waits on
    // it) says when the preferred one is ready again.
    let (replica, _) = p.client.endpoints().current();
    let (home_tx, mut home_rx) = tokio::sync::oneshot::channel::<()>();
    // On the preferred replica the sender stays here, unused, so `home_rx` never resolves.
    let mut home_tx = Some(home_tx);
    let _home_probe = (replica != 0)
        .then(|| home_tx.take())
        .flatten()
        .map(|home_tx| {
            let client = p.client.clone();
            AbortOnDrop(tokio::spawn(async move {
                let mut passes = 0u32;
                let mut tick = tokio::time::interval_at(
                    Instant::now() + HOME_PROBE_INTERVAL,
                    HOME_PROBE_INTERVAL,
                );
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    passes = if client.replica_ready(0).await {
                        passes + 1
                    } else {
                        0
                    };
                    if passes >= HOME_PROBE_PASSES {
                        let _ = home_tx.send(());
                        return;
                    }
                }
            }))
        });
    // Usage is sampled on its own task: Docker stats are slow, and the loop below must never
    // stall (a stalled loop misses heartbeats and the server drops the session).
    let (usage_tx, mut usage_rx) = tokio::sync::mpsc::channel(1);
    let sampler = p.engine.usage_sampler();
    let every = p.usage_interval.max(Duration::from_millis(100));
    let _sampling = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let samples = sampler.sample().await;
            if !samples.is_empty() && usage_tx.send(samples).await.is_err() {
                return;
            }
        }
    }));
    loop {
        tokio::select! {
            _ = shutdown.as_mut() => {
                // Say goodbye, so the server marks the instance disconnected at once.
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return Ok(Ended::Shutdown);
            }
            msg = ws.next() => {
                last_heard = Instant::now();
                match msg {
                Some(Ok(Message::Text(t))) => match flotilla_protocol::decode::<ServerMessage>(&t) {
                    Ok(ServerMessage::Tasks { full, tasks }) => {
                        debug!(full, count = tasks.len(), "tasks pushed");
                        p.engine.assign(tasks, full);
                    }
                    Ok(ServerMessage::Ack { seq }) => unacked.ack(seq),
                    Ok(ServerMessage::Secrets { request_id, outcome, .. }) => {
                        asks.secrets.answer(request_id, outcome);
                    }
                    Ok(ServerMessage::Credentials { request_id, outcome, .. }) => {
                        asks.credentials.answer(request_id, outcome);
                    }
                    Ok(ServerMessage::Log { id, request }) => {
                        let (logs, tx) = (logs.clone(), log_tx.clone());
                        tokio::spawn(async move {
                            let result = logs.serve(request).await;
                            let _ = tx.send((id, result)).await;
                        });
                    }
                    Ok(ServerMessage::LogGroups { revision, groups }) => {
                        let logs = logs.clone();
                        tokio::spawn(async move { logs.set_groups(revision, groups).await });
                    }
                    Ok(ServerMessage::Exec(order)) => {
                        // The command runs on a WebSocket of its own, dialled back to this
                        // replica; the session goes on at once.
                        let target = p.engine.exec_target(&order.task_arn, &order.container_name);
                        let ctx = crate::exec::ExecContext {
                            client: p.client.clone(),
                            endpoint: endpoint.clone(),
                            instance_arn: p.instance_arn.to_string(),
                            runtime: p.engine.runtime(),
                        };
                        tokio::spawn(crate::exec::serve(ctx, target, order));
                    }
                    Ok(ServerMessage::WarmNetworks { networks }) => {
                        debug!(count = networks.len(), "warm task networks reserved");
                        p.engine.set_warm_networks(networks);
                    }
                    Ok(ServerMessage::Welcome { .. }) => {}
                    Err(e) => warn!(error = %e, "undecodable server message"),
                },
                Some(Ok(Message::Ping(d))) => {
                    ws.send(Message::Pong(d)).await.map_err(|e| SessionError::Ws(e.to_string()))?;
                }
                Some(Ok(Message::Close(_))) | None => return Ok(Ended::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(SessionError::Ws(e.to_string())),
                }
            },
            Some(r) = reports.recv() => {
                // With it, every report already waiting: of a task that changed state several
                // times meanwhile, only its latest goes (each report is one write of the task's
                // record on the server, and a report carries the task's whole observed state).
                let mut ready = vec![r];
                while let Ok(more) = reports.try_recv() {
                    ready.push(more);
                }
                let latest = latest_per_task(ready);
                for r in &latest {
                    unacked.push(r.clone());
                }
                send_reports(&mut ws, latest).await?;
            }
            _ = beat.tick() => {
                if last_heard.elapsed() > silence_limit {
                    warn!(endpoint = %endpoint, silent_for = ?last_heard.elapsed(), "the server is silent; ending the session");
                    return Err(SessionError::Silent(last_heard.elapsed()));
                }
                send(&mut ws, &AgentMessage::Heartbeat { sent_at_ms: epoch_ms() }).await?;
                ws.send(Message::Ping(Vec::new().into()))
                    .await
                    .map_err(|e| SessionError::Ws(e.to_string()))?;
            }
            Some((id, result)) = log_rx.recv() => {
                send(&mut ws, &AgentMessage::Log { id, result }).await?;
            }
            Some(samples) = usage_rx.recv() => {
                send(&mut ws, &AgentMessage::Usage { samples }).await?;
            }
            request = asks.secrets.next() => {
                let (request_id, task_arn) = asks.secrets.sent(request);
                debug!(task = %task_arn, "asking for the task's secrets");
                send(&mut ws, &AgentMessage::GetSecrets { request_id, task_arn }).await?;
            }
            size = next_refill(&mut asks.warm) => {
                send(&mut ws, &AgentMessage::ReserveWarmNetworks { size }).await?;
            }
            request = asks.credentials.next() => {
                let (request_id, task_arn) = asks.credentials.sent(request);
                debug!(task = %task_arn, "asking for the task role's credentials");
                send(&mut ws, &AgentMessage::GetCredentials { request_id, task_arn }).await?;
            }
            Ok(()) = &mut home_rx => {
                let frame = CloseFrame {
                    code: CloseCode::from(flotilla_protocol::MOVING_CLOSE_CODE),
                    reason: "moving to the preferred replica".into(),
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
                return Ok(Ended::Home);
            }
        }
    }
}

/// Discovers the endpoint, connects and waits for `Welcome`: the socket, the heartbeat
/// interval and the endpoint.
async fn open(p: &SessionParams<'_>) -> Result<(Ws, Duration, String), SessionError> {
    let endpoint = p
        .client
        .discover_poll_endpoint(p.cluster, p.instance_arn)
        .await?;
    let mut ws = connect(p.client, &endpoint, p.instance_arn).await?;
    let heartbeat = match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match flotilla_protocol::decode::<ServerMessage>(&t) {
            Ok(ServerMessage::Welcome {
                heartbeat_interval_ms,
                protocol_version,
                ..
            }) => {
                if protocol_version != PROTOCOL_VERSION {
                    return Err(SessionError::Protocol(format!(
                        "server speaks protocol {protocol_version}, agent {PROTOCOL_VERSION}"
                    )));
                }
                Duration::from_millis(heartbeat_interval_ms.max(100))
            }
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )))
            }
        },
        other => return Err(SessionError::Ws(format!("no Welcome: {other:?}"))),
    };
    Ok((ws, heartbeat, endpoint))
}

async fn send(ws: &mut Ws, msg: &AgentMessage) -> Result<(), SessionError> {
    let text = flotilla_protocol::encode(msg).map_err(|e| SessionError::Protocol(e.to_string()))?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| SessionError::Ws(e.to_string()))
}

/// Sends `reports` with one flush at the end (one write to the socket where it can): the
/// server applies the reports it finds together in one transaction.
async fn send_reports(ws: &mut Ws, reports: Vec<TaskStateReport>) -> Result<(), SessionError> {
    for r in reports {
        let text = flotilla_protocol::encode(&AgentMessage::TaskState(r))
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        ws.feed(Message::text(text))
            .await
            .map_err(|e| SessionError::Ws(e.to_string()))?;
    }
    ws.flush()
        .await
        .map_err(|e| SessionError::Ws(e.to_string()))
}

/// Aborts a background task when the session that started it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let lows: Vec<u128> = (0..6).map(|_| b.next_with(0.0).as_millis()).collect();
        assert_eq!(lows, vec![400, 800, 1600, 3200, 3200, 3200]);
        b.reset();
        assert_eq!(b.next_with(0.99).as_millis(), 598);
        let mut c = Backoff::new(Duration::from_secs(8), Duration::from_secs(8));
        assert_eq!(c.next_with(1.0), Duration::from_secs(8));
    }

    #[test]
    fn unacked_keeps_the_latest_report_per_task_until_acked() {
        let r = |seq, task: &str| TaskStateReport {
            seq,
            task_arn: task.into(),
            version: 1,
            last_status: flotilla_model::status::TaskStatus::Running,
            containers: vec![],
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            health_status: None,
        };
        let mut u = Unacked::default();
        u.push(r(1, "a"));
        u.push(r(3, "a"));
        u.push(r(2, "a"));
        u.push(r(4, "b"));
        assert_eq!(
            u.pending().iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
        u.ack(3);
        assert_eq!(u.pending().len(), 1);
        let sent = latest_per_task(vec![r(5, "a"), r(6, "b"), r(7, "a"), r(8, "c"), r(9, "b")]);
        assert_eq!(
            sent.iter()
                .map(|r| (r.seq, r.task_arn.as_str()))
                .collect::<Vec<_>>(),
            vec![(7, "a"), (8, "c"), (9, "b")]
        );
        assert_eq!(uri_encode("arn:aws:ecs/x y"), "arn%3Aaws%3Aecs%2Fx%20y");
    }
}
