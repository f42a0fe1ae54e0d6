//! The server end of the agent session (`flotilla_protocol`): one WebSocket per container
//! instance at [`flotilla_protocol::SESSION_PATH`]`?containerInstance=ARN`.
//!
//! The upgrade request is verified with SigV4 exactly like an API call (GET, its query, an
//! empty body), and must name a registered, not INACTIVE, container instance (see below for
//! whose keys may). Then:
//! 1. the session becomes the instance's current one here (an older one ends) and the instance
//!    is marked `agentConnected: true`; it puts the instance's beat (`agent-beats/CLUSTER/ID`,
//!    [`flotilla_controllers::agents::beat`]), from which the leader, on whatever replica,
//!    knows the agent is alive;
//! 2. the server sends `Welcome`, then `Tasks { full: true }` with every task assigned to the
//!    instance that is not STOPPED, listed at store revision N;
//! 3. it watches the cluster's task records from N and pushes an assignment whenever its
//!    version grows (that is, whenever the task's desired state changed) — a push, never a poll.
//!    The watch is the replica's one task feed ([`flotilla_controllers::task_feed`]): the
//!    session subscribes to its host's changes and reads its host's tasks (the index says
//!    which) from the store, so a task write is decoded once per replica, not once per
//!    session; only when the feed cannot say in time does the session list and watch the
//!    cluster's task records itself;
//! 4. it applies each `TaskState` report to its task record ([`flotilla_control::tasks::apply_report`],
//!    releasing the task's reservation in the same transaction when it reaches STOPPED), then
//!    answers `Ack`; `Usage` samples are kept in memory ([`flotilla_controllers::agents::Agents`]);
//!    `GetSecrets` is answered with the task's secrets, read then and sent on this session only
//!    ([`crate::secrets`]); `GetCredentials` with its task role's credentials
//!    ([`crate::task_credentials`]); ECS Exec's orders for the agent are sent as they come
//!    (`ServerMessage::Exec`, [`crate::exec`]); `ReserveWarmNetworks` is answered with the
//!    instance's warm task networks (`flotilla_controllers::fargate::reserve_warm`);
//! 5. as it hears the agent it puts the beat again, at most once per 3/4 heartbeat interval
//!    (agents heartbeat once per interval), and sets `agentConnected` back to true if the
//!    record says false while the session is alive (a disconnect written by a replica the
//!    agent left, racing this session's connect, heals within a heartbeat);
//! 6. a session silent for `MISSED_HEARTBEATS` heartbeat intervals, closed, or replaced ends;
//!    if it was the instance's current session, the instance is marked `agentConnected: false`,
//!    unless the agent closed it with [`flotilla_protocol::MOVING_CLOSE_CODE`]: it is moving to
//!    another replica, whose session marks it connected (and if it never gets there, its beats
//!    run out and the leader's liveness loop disconnects it).
//!
//! Who may open it: a configured key (an agent started with API keys), or the agent key of the
//! instance it names (an agent that joined with a token, `crate::agent_identity`); another
//! instance's session is AccessDeniedException. A session opened with an agent key watches that
//! key's record and ends when it is deleted (DeregisterContainerInstance revokes it), so a
//! deregistered instance's agent loses its session at once and cannot open another.
//!
//! A managed-pool host (cluster `flotilla_protocol::MANAGED_POOL`) runs the Fargate tasks of
//! every cluster: its session lists and watches all task records (`tasks/`) and keeps those that
//! run on this pool host (`TaskRecord::instance_cluster`); its reports name tasks of any cluster
//! (the cluster is read from the task ARN).
//!
//! What it is not: placement or desired state. The session only carries what the API wrote.

use crate::context::Api;
use crate::server::error_body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::agents::{beat, set_agent_connected, BeatState};
use flotilla_controllers::records::{get, instance_key, task_prefix, TASKS};
use flotilla_controllers::reports::apply_task_states;
use flotilla_model::{EcsError, ErrorCode};
use flotilla_protocol::{
    AgentMessage, ServerMessage, TaskAssignment, INSTANCE_PARAM, MANAGED_POOL, PROTOCOL_VERSION,
};
use flotilla_scheduler::InstanceStatus;
use flotilla_store::Event;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::Instrument;

/// The session WebSocket's read buffer, bytes (see [`upgrade`]).
pub const SESSION_READ_BUFFER: usize = 8 * 1024;

fn error_response(e: &EcsError, status: StatusCode) -> Response {
    let mut resp = Response::new(axum::body::Body::from(error_body(e)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(flotilla_sigv4::target::JSON_CONTENT_TYPE),
    );
    resp
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of one query parameter, decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k).as_deref() == Some(name))
            .then(|| percent_decode(v))
            .flatten()
    })
}

/// `GET SESSION_PATH`: verifies the signature and the instance, then upgrades.
pub async fn upgrade(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = uri.query().unwrap_or("");
    // The configured keys and agent keys open a session: a task's role key never speaks for an
    // agent, and an agent key only for its own instance (below).
    let keys = crate::server::Keys::Agents;
    let caller =
        match crate::server::authenticate_keys(&api, &method, &uri, &headers, b"", keys).await {
            Ok(c) => c,
            Err(e) => {
                let status =
                    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::FORBIDDEN);
                return error_response(&e, status);
            }
        };
    let not_found = |what: &str| {
        error_response(
            &EcsError::new(ErrorCode::ClientException, what.to_string()),
            StatusCode::NOT_FOUND,
        )
    };
    let Some(arn) = query_param(query, INSTANCE_PARAM) else {
        return error_response(
            &EcsError::invalid_parameter(format!(
                "The session needs the {INSTANCE_PARAM} query parameter (a container instance ARN)."
            )),
            StatusCode::BAD_REQUEST,
        );
    };
    let parsed = flotilla_model::arn::parse(&arn).filter(|p| {
        p.resource_type == "container-instance"
            && p.region == api.config.arns.region
            && p.account == api.config.arns.account
    });
    let (Some(_), Some(cluster), Some(id)) = (
        parsed,
        flotilla_model::arn::embedded_cluster(&arn),
        flotilla_model::arn::resource_name(&arn, "container-instance"),
    ) else {
        return not_found("The container instance ARN is not one of this server (expected the long format arn:aws:ecs:REGION:ACCOUNT:container-instance/CLUSTER/ID).");
    };
    let agent_key = match crate::agent_identity::authorize_session(&caller, &arn) {
        Ok(k) => k,
        Err(e) => return error_response(&e, StatusCode::FORBIDDEN),
    };
    // A key whose policy does not allow `ecs:Poll` on this instance opens no session.
    if let Err(refusal) = crate::authorize::action(&api, &caller, "ecs:Poll", &arn) {
        return error_response(&refusal.to_ecs(), StatusCode::BAD_REQUEST);
    }
    let (cluster, id) = (cluster.to_string(), id.to_string());
    match get::<InstanceRecord>(api.store.as_ref(), &instance_key(&cluster, &id)).await {
        Ok(Some((rec, _))) if rec.status() != InstanceStatus::Inactive => {}
        Ok(_) => return not_found(
            "The container instance is not registered (or was deregistered); register it again.",
        ),
        Err(e) => return error_response(&e, StatusCode::INTERNAL_SERVER_ERROR),
    }
    match ws {
        // A small read buffer: tungstenite zero-fills the whole buffer before every read of
        // the socket (128 KiB by default), which with a thousand sessions was a fifth of the
        // server's CPU (`flotilla bench scale`); session messages are small, and a larger
        // frame still grows the buffer as it needs.
        Ok(ws) => ws
            .read_buffer_size(SESSION_READ_BUFFER)
            .on_upgrade(move |socket| run(api, socket, cluster, id, agent_key)),
        Err(rejection) => rejection.into_response(),
    }
}

/// How a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// The agent closed it to move to another replica (its preferred one): it is not lost, and
    /// its new session marks it connected; if it never arrives, the beats run out.
    Moving,
    /// Anything else: the connection dropped, the agent went silent or shut down, a newer
    /// session replaced it, or the store failed.
    Ended(String),
}

impl From<String> for SessionEnd {
    fn from(reason: String) -> Self {
        SessionEnd::Ended(reason)
    }
}

impl From<&str> for SessionEnd {
    fn from(reason: &str) -> Self {
        SessionEnd::Ended(reason.to_string())
    }
}

async fn run(
    api: Arc<Api>,
    socket: WebSocket,
    cluster: String,
    id: String,
    agent_key: Option<String>,
) {
    let key = instance_key(&cluster, &id);
    let sid = api.agents.open(&key);
    let span = tracing::info_span!("agent_session", container_instance = %id, cluster = %cluster, session = sid);
    async {
        tracing::info!("agent session opened");
        let end = session_loop(&api, socket, &cluster, &id, &key, sid, agent_key.as_deref()).await;
        if let Some(logs) = api.agent_logs() {
            logs.unregister(&key, sid);
        }
        api.exec.unregister(&key, sid);
        let closed = api.agents.close(&key, sid);
        let reason = match end {
            SessionEnd::Moving => {
                tracing::info!("agent session ended: the agent moves to its preferred replica");
                return;
            }
            SessionEnd::Ended(reason) => reason,
        };
        tracing::info!(reason = %reason, "agent session ended");
        if closed {
            let no_session = || !api.agents.has_session(&key);
            // Unfenced: every replica serves agent sessions, leader or not.
            let store = api.store.as_ref();
            if let Err(e) =
                set_agent_connected(store, &cluster, &id, false, &no_session, None).await
            {
                tracing::warn!(error = %e, "could not mark the agent disconnected");
            }
        }
    }
    .instrument(span)
    .await;
}

type Sink = SplitSink<WebSocket, Message>;

async fn send(tx: &mut Sink, msg: &ServerMessage) -> Result<(), String> {
    let text = flotilla_protocol::encode(msg).map_err(|e| format!("encode: {e}"))?;
    tx.send(Message::Text(text.into()))
        .await
        .map_err(|e| format!("send failed: {e}"))
}

/// The prefix of the task records a session watches: its cluster's, or every cluster's for a
/// managed-pool host (which runs the Fargate tasks of all clusters).
fn watched_prefix(cluster: &str) -> String {
    if cluster == MANAGED_POOL {
        TASKS.to_string()
    } else {
        task_prefix(cluster)
    }
}

/// Whether a task runs on the instance `cluster`/`id`.
use flotilla_controllers::reports::runs_on;

/// The assignments of every task of the instance that is not STOPPED, and the store revision
/// they were read at.
async fn full_state(
    api: &Api,
    cluster: &str,
    id: &str,
) -> Result<(Vec<(String, TaskAssignment)>, u64), EcsError> {
    let page = api
        .store
        .list(&watched_prefix(cluster), None, 0)
        .await
        .map_err(flotilla_controllers::records::store_error)?;
    let mut out = Vec::new();
    for kv in page.items {
        let Ok(t) = serde_json::from_slice::<TaskRecord>(&kv.value) else {
            continue;
        };
        if runs_on(&t, cluster, id) && !t.is_stopped() {
            if let Some(a) = t.assignment {
                out.push((kv.key, a));
            }
        }
    }
    Ok((out, page.revision))
}

/// Where a session hears of its host's task changes: the replica's task feed, or (when the
/// feed cannot say in time) its own watch of the cluster's task records.
enum Changes {
    Feed(flotilla_controllers::task_feed::Subscription),
    Watch(flotilla_store::WatchStream),
}

/// One change for the session.
enum Change {
    Put(String, Option<Box<TaskAssignment>>),
    Delete(String),
    Resync,
}

impl Changes {
    async fn next(&mut self, cluster: &str, id: &str) -> Change {
        use flotilla_controllers::task_feed::FeedEvent;
        match self {
            Changes::Feed(sub) => match sub.events.recv().await {
                Some(FeedEvent::Put { key, assignment }) => Change::Put(key, assignment),
                Some(FeedEvent::Delete { key }) => Change::Delete(key),
                Some(FeedEvent::Resync) | None => Change::Resync,
            },
            Changes::Watch(w) => loop {
                match w.next().await {
                    Some(Ok(Event::Put(kv))) => {
                        let Ok(t) = serde_json::from_slice::<TaskRecord>(&kv.value) else {
                            continue;
                        };
                        if runs_on(&t, cluster, id) {
                            return Change::Put(kv.key, t.assignment.map(Box::new));
                        }
                    }
                    Some(Ok(Event::Delete { key, .. })) => return Change::Delete(key),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "task watch failed; resynchronising");
                        return Change::Resync;
                    }
                    None => return Change::Resync,
                }
            },
        }
    }
}

/// The host's tasks that are not STOPPED and where to hear of their changes: from the task
/// feed (subscribed before the tasks are read, so no change falls between), else from a
/// listing of the cluster's task records and a watch from its revision.
async fn full_state_and_changes(
    api: &Api,
    cluster: &str,
    id: &str,
) -> Result<(Vec<(String, TaskAssignment)>, Changes), String> {
    if api.plane.task_index().await.is_some() {
        let sub = api.plane.tasks.subscribe(cluster, id);
        let mut out = Vec::new();
        for key in &sub.keys {
            let found = get::<TaskRecord>(api.store.as_ref(), key)
                .await
                .map_err(|e| format!("could not read task {key}: {e}"))?;
            if let Some((t, _)) = found {
                if runs_on(&t, cluster, id) && !t.is_stopped() {
                    if let Some(a) = t.assignment {
                        out.push((key.clone(), a));
                    }
                }
            }
        }
        return Ok((out, Changes::Feed(sub)));
    }
    let (tasks, rev) = full_state(api, cluster, id)
        .await
        .map_err(|e| format!("could not list tasks: {e}"))?;
    let w = api
        .store
        .watch(&watched_prefix(cluster), rev)
        .await
        .map_err(|e| format!("could not watch tasks: {e}"))?;
    Ok((tasks, Changes::Watch(w)))
}

/// A wait on the deletion of the record of the agent key a session was opened with, which ends
/// when the key is revoked (its instance deregistered); `Err` when it is revoked already. One
/// watch of the replica serves every session's wait (`Plane::agent_keys`).
async fn watch_agent_key(
    api: &Api,
    access_key_id: &str,
) -> Result<flotilla_controllers::deletions::Waiter, String> {
    let ckey = flotilla_control::agent_identity::agent_credential_key(access_key_id);
    // Wait first, then read: a revocation before the read is seen by it, one after reaches
    // the waiter.
    let waiter = api
        .plane
        .agent_keys
        .wait_for(&api.store, &ckey)
        .await
        .map_err(|e| format!("could not watch the agent's credentials: {e}"))?;
    match api.store.get(&ckey).await {
        Ok(Some(_)) => Ok(waiter),
        Ok(None) => Err(REVOKED.to_string()),
        Err(e) => Err(format!("could not read the agent's credentials: {e}")),
    }
}

const REVOKED: &str =
    "the agent's credentials were revoked (its container instance was deregistered)";

/// Waits until the agent key is revoked (or the replica's watch of agent keys fails: the agent
/// then reconnects, and its key is checked again); never, for a session opened with a
/// configured key.
async fn revocation(waiter: &mut Option<flotilla_controllers::deletions::Waiter>) -> String {
    use flotilla_controllers::deletions::Ended;
    let Some(w) = waiter.as_mut() else {
        return std::future::pending().await;
    };
    match w.ended().await {
        Ended::Deleted => REVOKED.to_string(),
        Ended::WatchFailed(why) => format!("the watch on the agent's credentials failed: {why}"),
    }
}

/// At most this many frames the agent sent are taken together ([`ready_frames`]).
const MAX_READY_FRAMES: usize = 256;

/// `first` and the frames after it that have arrived already (at most [`MAX_READY_FRAMES`]),
/// and whether the connection ended after them.
fn ready_frames(
    first: Message,
    rx: &mut futures::stream::SplitStream<WebSocket>,
) -> (Vec<Message>, bool) {
    use futures::FutureExt;
    let mut frames = vec![first];
    while frames.len() < MAX_READY_FRAMES {
        match rx.next().now_or_never() {
            Some(Some(Ok(m))) => frames.push(m),
            Some(Some(Err(_)) | None) => return (frames, true),
            None => break,
        }
    }
    (frames, false)
}

/// Applies the agent's `reports` (taken together, in the order it sent them) and acknowledges
/// them with one `Ack` of the last one's seq (acks are cumulative); empties `reports`.
async fn apply_reports(
    api: &Api,
    cluster: &str,
    id: &str,
    tx: &mut Sink,
    reports: &mut Vec<flotilla_protocol::TaskStateReport>,
) -> Result<(), SessionEnd> {
    let Some(last) = reports.last().map(|r| r.seq) else {
        return Ok(());
    };
    match apply_task_states(&api.plane, cluster, id, reports).await {
        Ok(()) => {
            reports.clear();
            send(tx, &ServerMessage::Ack { seq: last }).await?;
            Ok(())
        }
        // Never acknowledge past a report that was not applied. Ending the session makes the
        // agent reconnect and resend everything unacknowledged.
        Err(e) => {
            let tasks: Vec<&str> = reports.iter().map(|r| r.task_arn.as_str()).collect();
            Err(format!("could not apply the reports for {}: {e}", tasks.join(", ")).into())
        }
    }
}

/// Answers one message of the agent other than a report.
async fn handle(
    api: &Api,
    cluster: &str,
    id: &str,
    tx: &mut Sink,
    logs: &mut crate::logs::SessionLogs,
    msg: AgentMessage,
) -> Result<(), SessionEnd> {
    match msg {
        AgentMessage::Heartbeat { .. } => {}
        AgentMessage::TaskState(report) => {
            apply_reports(api, cluster, id, tx, &mut vec![report]).await?;
        }
        AgentMessage::Usage { samples } => api.agents.record_usage(samples),
        AgentMessage::GetSecrets {
            request_id,
            task_arn,
        } => {
            let outcome = crate::secrets::for_agent(api, cluster, id, &task_arn).await;
            let msg = ServerMessage::Secrets {
                request_id,
                task_arn,
                outcome,
            };
            send(tx, &msg).await?;
        }
        AgentMessage::GetCredentials {
            request_id,
            task_arn,
        } => {
            let outcome = crate::task_credentials::for_agent(api, cluster, id, &task_arn).await;
            let msg = ServerMessage::Credentials {
                request_id,
                task_arn,
                outcome,
            };
            send(tx, &msg).await?;
        }
        AgentMessage::Log { id, result } => logs.answer(id, result),
        AgentMessage::ReserveWarmNetworks { size } => {
            match flotilla_controllers::fargate::reserve_warm(&api.plane, cluster, id, size).await {
                Ok(networks) => {
                    tracing::debug!(
                        size,
                        reserved = networks.len(),
                        "warm task networks reserved"
                    );
                    send(tx, &ServerMessage::WarmNetworks { networks }).await?;
                }
                // The agent asks again when a task takes one or it reconnects.
                Err(e) => tracing::warn!(error = %e, "could not reserve warm task networks"),
            }
        }
    }
    Ok(())
}

async fn session_loop(
    api: &Api,
    socket: WebSocket,
    cluster: &str,
    id: &str,
    key: &str,
    sid: u64,
    agent_key: Option<&str>,
) -> SessionEnd {
    let mut revoked = match agent_key {
        Some(akid) => match watch_agent_key(api, akid).await {
            Ok(w) => Some(w),
            Err(e) => return e.into(),
        },
        None => None,
    };
    let current = || api.agents.is_current(key, sid);
    if let Err(e) = set_agent_connected(api.store.as_ref(), cluster, id, true, &current, None).await
    {
        return format!("could not mark the agent connected: {e}").into();
    }
    let interval = api.timings.heartbeat_interval;
    // At most one beat per this much time: heartbeats come once per interval, a little early
    // or late.
    let beat_every = interval.saturating_mul(3) / 4;
    let mut last_beat = Instant::now();
    let mut beats = BeatState::default();
    if let Err(e) = beat(&api.plane, cluster, id, &current, &mut beats).await {
        return format!("could not record the agent's beat: {e}").into();
    }
    let (mut tx, mut rx) = socket.split();
    let welcome = ServerMessage::Welcome {
        container_instance_arn: api.config.arns.container_instance(cluster, id),
        heartbeat_interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        protocol_version: PROTOCOL_VERSION,
    };
    if let Err(e) = send(&mut tx, &welcome).await {
        return e.into();
    }
    // Reads of this host's log streams, and the log groups, go through the session too.
    let mut logs = crate::logs::SessionLogs::open(
        api.store.clone(),
        api.agent_logs().map(|a| a.as_ref()),
        key,
        sid,
    );
    // ECS Exec's orders for this agent go through the session too.
    let mut exec_orders = api.exec.register(key, sid);
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut watch = None;
    let limit = api.timings.silence_limit();
    let mut tick = tokio::time::interval((interval / 2).max(std::time::Duration::from_millis(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let mut resync = false;
        // (Re)synchronise: full state, then watch from the revision it was read at.
        let Some(w) = watch.as_mut() else {
            let (tasks, changes) = match full_state_and_changes(api, cluster, id).await {
                Ok(v) => v,
                Err(e) => return e.into(),
            };
            sent = tasks.iter().map(|(k, a)| (k.clone(), a.version)).collect();
            let msg = ServerMessage::Tasks {
                full: true,
                tasks: tasks.into_iter().map(|(_, a)| a).collect(),
            };
            if let Err(e) = send(&mut tx, &msg).await {
                return e.into();
            }
            watch = Some(changes);
            continue;
        };
        tokio::select! {
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { return "connection closed".into() };
                last_heard = Instant::now();
                if last_beat.elapsed() >= beat_every {
                    last_beat = last_heard;
                    if let Err(e) = beat(&api.plane, cluster, id, &current, &mut beats).await {
                        tracing::warn!(error = %e, "could not record the agent's beat");
                    }
                }
                // With it, whatever else the agent sent that is here already: its reports are
                // applied together (one transaction, one Ack), in the order they came.
                let (frames, closed) = ready_frames(msg, &mut rx);
                let mut reports = Vec::new();
                for frame in frames {
                    let decoded = match frame {
                        Message::Text(text) => flotilla_protocol::decode::<AgentMessage>(&text),
                        Message::Close(f) => {
                            // What it reported before closing is applied (it cannot hear the
                            // Ack: it sends those reports again wherever it connects next).
                            let _ = apply_reports(api, cluster, id, &mut tx, &mut reports).await;
                            return match f {
                                Some(f) if f.code == flotilla_protocol::MOVING_CLOSE_CODE => SessionEnd::Moving,
                                _ => "closed by the agent".into(),
                            };
                        }
                        _ => continue,
                    };
                    match decoded {
                        Ok(AgentMessage::TaskState(report)) => reports.push(report),
                        Ok(other) => {
                            if let Err(end) = apply_reports(api, cluster, id, &mut tx, &mut reports).await {
                                return end;
                            }
                            if let Err(end) = handle(api, cluster, id, &mut tx, &mut logs, other).await {
                                return end;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "undecodable agent message ignored"),
                    }
                }
                if let Err(end) = apply_reports(api, cluster, id, &mut tx, &mut reports).await {
                    return end;
                }
                if closed {
                    return "connection closed".into();
                }
            }
            change = w.next(cluster, id) => match change {
                Change::Put(key, assignment) => {
                    let Some(a) = assignment else { continue };
                    if sent.get(&key).is_some_and(|v| *v >= a.version) {
                        continue;
                    }
                    sent.insert(key, a.version);
                    tracing::debug!(task = %a.task_arn, version = a.version, "pushing assignment");
                    if let Err(e) = send(&mut tx, &ServerMessage::Tasks { full: false, tasks: vec![*a] }).await {
                        return e.into();
                    }
                }
                Change::Delete(key) => {
                    sent.remove(&key);
                }
                Change::Resync => resync = true,
            },
            Some(order) = exec_orders.recv() => {
                tracing::debug!(task = %order.task_arn, exec = %order.id, "ordering an exec");
                if let Err(e) = send(&mut tx, &ServerMessage::Exec(order)).await {
                    return e.into();
                }
            }
            msg = logs.next() => {
                if let Err(e) = send(&mut tx, &msg).await {
                    return e.into();
                }
            }
            why = revocation(&mut revoked) => return why.into(),
            _ = tick.tick() => {
                if last_heard.elapsed() > limit {
                    return "no heartbeat".into();
                }
                if !api.agents.is_current(key, sid) {
                    return "replaced by a newer session".into();
                }
            }
        }
        if resync {
            watch = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let q =
            "a=1&containerInstance=arn%3Aaws%3Aecs%3Aus-east-1%3A1%3Acontainer-instance%2Fc%2Fx";
        assert_eq!(
            query_param(q, INSTANCE_PARAM).as_deref(),
            Some("arn:aws:ecs:us-east-1:1:container-instance/c/x")
        );
        assert_eq!(query_param(q, "b"), None);
        assert_eq!(query_param("x=%zz", "x"), None);
    }
}
