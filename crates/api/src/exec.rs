//! ECS Exec at the edge: the sessions `ExecuteCommand` creates, and the WebSockets that carry a
//! command's streams from the client to the agent that runs the task, on whatever replicas
//! they are.
//!
//! How an exec travels (see ARCHITECTURE.md, "ECS Exec"):
//! 1. `ExecuteCommand` (SigV4, on any replica A) checks the task and container as ECS does and
//!    creates a session here, in A's memory only ([`ExecHub::create_session`]): an id, a token
//!    (only its SHA-256 is kept) bound to the caller's access key, valid once for
//!    [`SESSION_TTL`]. Its `streamUrl` is A's own address (the `Host` the caller reached).
//! 2. The client opens `GET STREAM_PATH/<id>` at A, SigV4-signed by the same key, with the token
//!    ([`stream_upgrade`]). A reads the task record again (it may have stopped) and finds the
//!    agent: if A holds its session, A orders the command over it ([`ExecHub::order`]);
//!    otherwise A opens a WebSocket to the replica B whose session heard the agent last (its
//!    beat record; B's URL from its `replicas/ID` record), signed with A's credential
//!    ([`RELAY_PATH`]), and B does the same for its own session ([`relay_upgrade`]), never
//!    relaying further.
//! 3. The agent dials back to the replica that holds its session ([`agent_upgrade`]: SigV4, the
//!    order's id and nonce, the instance it was sent to), and that socket is spliced with the
//!    client's (or the relay's): frames pass unchanged until the agent's exit code or error.
//!
//! What this is not: the command's rules (`flotilla_control::exec`) or its frames
//! (`flotilla_protocol::exec`).

use crate::context::Api;
use crate::server::error_body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flotilla_control::keys::{agent_beat_key, instance_key, task_key, BeatRecord, REPLICAS};
use flotilla_control::tasks::TaskRecord;
use flotilla_model::{EcsError, ErrorCode};
use flotilla_protocol::exec::{
    ExecOrder, Frame, RelayRequest, StreamOptions, NONCE_HEADER, RELAY_PATH, SESSION_PREFIX,
    TOKEN_HEADER,
};
use flotilla_protocol::{SecretText, INSTANCE_PARAM};
use futures::stream::BoxStream;
use futures::{Sink, SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as TMessage;

/// How long a session `ExecuteCommand` created may wait to be opened.
pub const SESSION_TTL: Duration = Duration::from_secs(120);
/// How long the agent has to dial back after an order.
pub const DIAL_BACK_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many sessions wait to be opened on one replica.
pub const MAX_PENDING: usize = 4096;

/// What a session runs.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    /// The task's cluster (its record's).
    pub cluster: String,
    /// The task id.
    pub task_id: String,
    /// The container.
    pub container_name: String,
    /// The command, as words.
    pub argv: Vec<String>,
}

struct Pending {
    token: [u8; 32],
    access_key_id: String,
    expires: Instant,
    target: ExecTarget,
}

struct Waiting {
    instance_key: String,
    nonce: [u8; 32],
    socket: oneshot::Sender<WebSocket>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// This replica's exec sessions, the agent sessions it can order commands through, and the
/// orders waiting for their agent's dial-back.
#[derive(Default)]
pub struct ExecHub {
    sessions: Mutex<HashMap<String, Pending>>,
    agents: Mutex<HashMap<String, (u64, mpsc::UnboundedSender<ExecOrder>)>>,
    waiting: Mutex<HashMap<String, Waiting>>,
}

impl ExecHub {
    /// A session for `target`, openable once by `access_key_id` within [`SESSION_TTL`]: its id
    /// (ECS's form) and token.
    pub fn create_session(
        &self,
        access_key_id: &str,
        target: ExecTarget,
    ) -> Result<(String, String), EcsError> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, p| p.expires > now);
        if sessions.len() >= MAX_PENDING {
            return Err(EcsError::new(
                ErrorCode::ServerException,
                format!("{MAX_PENDING} execute command sessions wait to be opened on this server; open or let them expire ({SESSION_TTL:?}) first."),
            ));
        }
        let id = format!("{SESSION_PREFIX}{}", &random_hex(9)[..17]);
        let token = {
            use base64::Engine;
            use rand::RngCore;
            let mut b = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut b);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        sessions.insert(
            id.clone(),
            Pending {
                token: digest(&token),
                access_key_id: access_key_id.to_string(),
                expires: now + SESSION_TTL,
                target,
            },
        );
        Ok((id, token))
    }

    /// Takes session `id` if `token` and the caller's key are its own.
    fn open_session(
        &self,
        id: &str,
        token: Option<&str>,
        access_key_id: &str,
    ) -> Result<ExecTarget, EcsError> {
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, p| p.expires > now);
        let Some(p) = sessions.get(id) else {
            return Err(EcsError::invalid_parameter(format!(
                "The execute command session {id} does not exist on this server, was opened already or expired ({SESSION_TTL:?} after ExecuteCommand): call ExecuteCommand again."
            )));
        };
        // The wrong token leaves the session to its owner.
        if token.map(digest) != Some(p.token) || p.access_key_id != access_key_id {
            return Err(EcsError::new(
                ErrorCode::AccessDeniedException,
                format!("The token in {TOKEN_HEADER} is not the token of execute command session {id}, or the request is not signed by the key that called ExecuteCommand."),
            ));
        }
        sessions
            .remove(id)
            .map(|p| p.target)
            .ok_or_else(|| EcsError::server("the session vanished"))
    }

    /// Session `sid` of the instance at `key` takes its orders from the returned receiver.
    pub fn register(&self, key: &str, sid: u64) -> mpsc::UnboundedReceiver<ExecOrder> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.agents).insert(key.to_string(), (sid, tx));
        rx
    }

    /// Session `sid` ended.
    pub fn unregister(&self, key: &str, sid: u64) {
        let mut a = lock(&self.agents);
        if a.get(key).is_some_and(|(cur, _)| *cur == sid) {
            a.remove(key);
        }
    }

    /// Orders the agent of the instance at `key`, through its session here, to run a command,
    /// and waits for its dial-back: `None` when this replica holds no session of it.
    async fn order(
        &self,
        key: &str,
        task_arn: &str,
        target: &ExecTarget,
        options: StreamOptions,
    ) -> Option<Result<WebSocket, String>> {
        let tx = lock(&self.agents).get(key).map(|(_, tx)| tx.clone())?;
        let id = random_hex(16);
        let nonce = random_hex(32);
        let (socket_tx, socket_rx) = oneshot::channel();
        lock(&self.waiting).insert(
            id.clone(),
            Waiting {
                instance_key: key.to_string(),
                nonce: digest(&nonce),
                socket: socket_tx,
            },
        );
        let order = ExecOrder {
            id: id.clone(),
            nonce: SecretText(nonce),
            task_arn: task_arn.to_string(),
            container_name: target.container_name.clone(),
            argv: target.argv.clone(),
            options,
        };
        if tx.send(order).is_err() {
            lock(&self.waiting).remove(&id);
            return None;
        }
        let answer = tokio::time::timeout(DIAL_BACK_TIMEOUT, socket_rx).await;
        lock(&self.waiting).remove(&id);
        Some(match answer {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(_)) => Err("the container agent's dial-back was refused".into()),
            Err(_) => Err(format!(
                "the container agent did not connect back within {DIAL_BACK_TIMEOUT:?}"
            )),
        })
    }

    /// The waiting order `id`, if the dial-back comes from its instance with its nonce.
    fn take_waiting(
        &self,
        id: &str,
        key: &str,
        nonce: Option<&str>,
    ) -> Option<oneshot::Sender<WebSocket>> {
        let mut w = lock(&self.waiting);
        let ok = w
            .get(id)
            .is_some_and(|o| o.instance_key == key && nonce.map(digest) == Some(o.nonce));
        ok.then(|| w.remove(id)).flatten().map(|o| o.socket)
    }
}

fn error_response(e: &EcsError) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = Response::new(axum::body::Body::from(error_body(e)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(flotilla_sigv4::target::JSON_CONTENT_TYPE),
    );
    resp
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Binary frames in, until the peer closes.
type Rx = BoxStream<'static, Vec<u8>>;
/// Binary frames out.
type Tx = Pin<Box<dyn Sink<Vec<u8>, Error = ()> + Send>>;

/// A WebSocket the server accepted, as frames.
fn served(ws: WebSocket) -> (Tx, Rx) {
    let (tx, rx) = ws.split();
    let tx = tx
        .with(|b: Vec<u8>| {
            futures::future::ready(Ok::<_, axum::Error>(AxMessage::Binary(b.into())))
        })
        .sink_map_err(|_| ());
    let rx = rx
        .take_while(|m| {
            futures::future::ready(matches!(m, Ok(m) if !matches!(m, AxMessage::Close(_))))
        })
        .filter_map(|m| {
            futures::future::ready(match m {
                Ok(AxMessage::Binary(b)) => Some(b.to_vec()),
                _ => None,
            })
        });
    (Box::pin(tx), rx.boxed())
}

type ClientWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket this server opened (a relay to another replica), as frames.
fn opened(ws: ClientWs) -> (Tx, Rx) {
    let (tx, rx) = ws.split();
    let tx = tx
        .with(|b: Vec<u8>| {
            futures::future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(
                TMessage::Binary(b.into()),
            ))
        })
        .sink_map_err(|_| ());
    let rx = rx
        .take_while(|m| {
            futures::future::ready(matches!(m, Ok(m) if !matches!(m, TMessage::Close(_))))
        })
        .filter_map(|m| {
            futures::future::ready(match m {
                Ok(TMessage::Binary(b)) => Some(b.to_vec()),
                _ => None,
            })
        });
    (Box::pin(tx), rx.boxed())
}

/// Passes frames both ways until the agent's side sends its last frame (exit code or error)
/// or either side leaves; then closes both.
async fn splice(client: (Tx, Rx), agent: (Tx, Rx)) {
    let (mut ctx, mut crx) = client;
    let (mut atx, mut arx) = agent;
    let up = async {
        while let Some(m) = crx.next().await {
            if atx.send(m).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        while let Some(m) = arx.next().await {
            let last = Frame::decode(&m).is_ok_and(|f| f.is_final());
            if ctx.send(m).await.is_err() || last {
                break;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ctx.close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), atx.close()).await;
}

/// Tells the client why the command cannot run, and closes.
async fn refuse(client: (Tx, Rx), why: String) {
    let (mut tx, _) = client;
    let _ = tx.send(Frame::Error(why).encode()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), tx.close()).await;
}

/// The agent's side of an exec of `target`: through this replica's session of the agent, or,
/// when `relay` and another replica holds it, through that replica.
async fn agent_side(
    api: &Api,
    target: &ExecTarget,
    options: StreamOptions,
    relay: bool,
) -> Result<(Tx, Rx), String> {
    let key = task_key(&target.cluster, &target.task_id);
    let rec = match flotilla_controllers::records::get::<TaskRecord>(api.store.as_ref(), &key).await
    {
        Ok(Some((rec, _))) => rec,
        Ok(None) => return Err(format!("The task {} no longer exists.", target.task_id)),
        Err(e) => return Err(format!("The task could not be read: {e}")),
    };
    // It may have stopped (or its container) since ExecuteCommand.
    flotilla_control::exec::target(&rec, Some(&target.container_name)).map_err(|e| e.message)?;
    let (cluster, instance) = (rec.instance_cluster().to_string(), rec.instance_id.clone());
    let ikey = instance_key(&cluster, &instance);
    if let Some(ws) = api.exec.order(&ikey, rec.arn(), target, options).await {
        return ws.map(served);
    }
    let not_connected = || {
        format!(
            "{} The container agent of the task's container instance {instance} is not connected to any server replica now.",
            flotilla_control::exec::NOT_CONNECTED
        )
    };
    let shared = api.topology().is_some_and(|t| t.shared());
    if !relay || !shared {
        return Err(not_connected());
    }
    let beat = api
        .store
        .get(&agent_beat_key(&cluster, &instance))
        .await
        .map_err(|e| format!("The agent's beat could not be read: {e}"))?
        .and_then(|kv| serde_json::from_slice::<BeatRecord>(&kv.value).ok());
    let Some(replica) = beat
        .and_then(|b| b.replica)
        .filter(|r| Some(r) != api.plane.replica.as_ref())
    else {
        return Err(not_connected());
    };
    let url = api
        .store
        .get(&format!("{REPLICAS}{replica}"))
        .await
        .map_err(|e| format!("The replica record could not be read: {e}"))?
        .and_then(|kv| serde_json::from_slice::<crate::admin::ReplicaInfo>(&kv.value).ok())
        .map(|r| r.url)
        .ok_or_else(|| {
            format!("The container agent's session is held by server replica {replica}, which is not running.")
        })?;
    let request = RelayRequest {
        cluster: target.cluster.clone(),
        task_id: target.task_id.clone(),
        container_name: target.container_name.clone(),
        argv: target.argv.clone(),
        options,
    };
    let mut ws = connect_relay(api, &url)
        .await
        .map_err(|e| format!("The container agent's session is held by server replica {replica} at {url}, which could not be reached: {e}"))?;
    let text = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    ws.send(TMessage::text(text))
        .await
        .map_err(|e| format!("relay to {url}: {e}"))?;
    Ok(opened(ws))
}

/// Opens [`RELAY_PATH`] at the replica at `url`, signed with this server's first credential
/// (the replicas of a region share their credentials).
async fn connect_relay(api: &Api, url: &str) -> Result<ClientWs, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let cred = api
        .config
        .credentials
        .first()
        .ok_or("this server has no credential to sign with")?;
    let (scheme, authority) = crate::transport::split_url(url);
    let ws_scheme = if scheme == "https" { "wss" } else { "ws" };
    let authority = authority.to_string();
    let mut req = format!("{ws_scheme}://{authority}{RELAY_PATH}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let signer = flotilla_sigv4::Signer {
        region: &api.config.arns.region,
        access_key_id: &cred.access_key_id,
        secret_access_key: &cred.secret_access_key,
        session_token: cred.session_token.as_deref(),
    };
    let signed = flotilla_sigv4::sign(
        &flotilla_sigv4::Request {
            method: "GET",
            path: RELAY_PATH,
            query: "",
            headers: &[("host", &authority)],
            body: b"",
        },
        &signer,
        api.clock.now() as i64,
    );
    for (k, v) in signed {
        let name: axum::http::HeaderName = k.parse().map_err(|_| format!("header {k}"))?;
        let value = HeaderValue::from_str(&v).map_err(|_| format!("header {k}"))?;
        req.headers_mut().insert(name, value);
    }
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            Some(api.transport().ws_connector()),
        ),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// `GET STREAM_PATH/<sessionId>?tty=..&stdin=..&cols=..&rows=..`: a client opens the session
/// `ExecuteCommand` created (SigV4 by the same key, the token in [`TOKEN_HEADER`]).
pub async fn stream_upgrade(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let caller = match crate::server::authenticate(&api, &method, &uri, &headers, b"").await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    // An agent's own key never opens a user's exec session.
    if flotilla_control::agent_identity::looks_like_agent_key(&caller.access_key_id) {
        return error_response(&crate::agent_identity::denied(
            &caller,
            "ecs:ExecuteCommand",
            "*",
        ));
    }
    let query = uri.query().unwrap_or("");
    let options = match StreamOptions::from_query(|k| crate::session::query_param(query, k)) {
        Ok(o) => o,
        Err(e) => return error_response(&EcsError::invalid_parameter(format!("{e}."))),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let target =
        match api
            .exec
            .open_session(&id, header(&headers, TOKEN_HEADER), &caller.access_key_id)
        {
            Ok(t) => t,
            Err(e) => return error_response(&e),
        };
    tracing::info!(session = %id, task = %target.task_id, container = %target.container_name, tty = options.tty, "execute command session opened");
    ws.on_upgrade(move |socket| async move {
        match agent_side(&api, &target, options, true).await {
            Ok(agent) => splice(served(socket), agent).await,
            Err(why) => refuse(served(socket), why).await,
        }
        tracing::info!(session = %id, "execute command session ended");
    })
}

/// `GET RELAY_PATH`: another replica runs a session's command through the agent session this
/// replica holds; its first message is a [`RelayRequest`]. Served only from what this replica
/// holds (never relayed again).
pub async fn relay_upgrade(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Replicas sign with configured keys; neither a task's role key nor an agent's opens it.
    let keys = crate::server::Keys::Configured;
    if let Err(e) = crate::server::authenticate_keys(&api, &method, &uri, &headers, b"", keys).await
    {
        return error_response(&e);
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.on_upgrade(move |mut socket| async move {
        let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
        let request = match first {
            Ok(Some(Ok(AxMessage::Text(t)))) => serde_json::from_str::<RelayRequest>(&t)
                .map_err(|e| format!("an unreadable relay request: {e}")),
            _ => Err("no relay request".to_string()),
        };
        let request = match request {
            Ok(r) => r,
            Err(why) => return refuse(served(socket), why).await,
        };
        let target = ExecTarget {
            cluster: request.cluster,
            task_id: request.task_id,
            container_name: request.container_name,
            argv: request.argv,
        };
        match agent_side(&api, &target, request.options, false).await {
            Ok(agent) => splice(served(socket), agent).await,
            Err(why) => refuse(served(socket), why).await,
        }
    })
}

/// `GET AGENT_PATH/<order id>?containerInstance=ARN`: the agent told to run a command dials
/// back (SigV4, the order's nonce in [`NONCE_HEADER`], from the instance it was sent to).
pub async fn agent_upgrade(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Agents sign with configured keys or their own (for their own instance only); a task's
    // role key never dials back.
    let keys = crate::server::Keys::Agents;
    let caller =
        match crate::server::authenticate_keys(&api, &method, &uri, &headers, b"", keys).await {
            Ok(c) => c,
            Err(e) => return error_response(&e),
        };
    let arn =
        crate::session::query_param(uri.query().unwrap_or(""), INSTANCE_PARAM).unwrap_or_default();
    if let Err(e) = crate::agent_identity::authorize_session(&caller, &arn) {
        return error_response(&e);
    }
    let key = match (
        flotilla_model::arn::embedded_cluster(&arn),
        flotilla_model::arn::resource_name(&arn, "container-instance"),
    ) {
        (Some(c), Some(i)) => instance_key(c, i),
        _ => {
            return error_response(&EcsError::invalid_parameter(format!(
            "The dial-back needs the {INSTANCE_PARAM} query parameter (a container instance ARN)."
        )))
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(waiting) = api
        .exec
        .take_waiting(&id, &key, header(&headers, NONCE_HEADER))
    else {
        return error_response(&EcsError::new(
            ErrorCode::AccessDeniedException,
            "No exec order of this id waits for this container instance with this nonce.",
        ));
    };
    ws.on_upgrade(move |socket| async move {
        // The order's waiter splices it (or it gave up, and the socket closes).
        let _ = waiting.send(socket);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ExecTarget {
        ExecTarget {
            cluster: "c".into(),
            task_id: "t".into(),
            container_name: "app".into(),
            argv: vec!["sh".into()],
        }
    }

    #[test]
    fn a_session_opens_once_with_its_token_and_key() {
        let hub = ExecHub::default();
        let (id, token) = hub.create_session("AK", target()).unwrap();
        assert!(
            id.starts_with(SESSION_PREFIX) && id.len() == SESSION_PREFIX.len() + 17,
            "{id}"
        );
        assert!(token.len() >= 40);
        let denied = |r: Result<ExecTarget, EcsError>| r.unwrap_err().code;
        assert_eq!(
            denied(hub.open_session(&id, Some("nope"), "AK")),
            ErrorCode::AccessDeniedException
        );
        assert_eq!(
            denied(hub.open_session(&id, None, "AK")),
            ErrorCode::AccessDeniedException
        );
        assert_eq!(
            denied(hub.open_session(&id, Some(&token), "OTHER")),
            ErrorCode::AccessDeniedException
        );
        // Wrong attempts leave it to its owner, who opens it once.
        assert_eq!(
            hub.open_session(&id, Some(&token), "AK").unwrap().task_id,
            "t"
        );
        assert_eq!(
            denied(hub.open_session(&id, Some(&token), "AK")),
            ErrorCode::InvalidParameterException
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_expires() {
        let hub = ExecHub::default();
        let (id, token) = hub.create_session("AK", target()).unwrap();
        tokio::time::advance(SESSION_TTL + Duration::from_secs(1)).await;
        assert_eq!(
            hub.open_session(&id, Some(&token), "AK").unwrap_err().code,
            ErrorCode::InvalidParameterException
        );
    }

    #[test]
    fn a_dial_back_needs_its_instance_and_nonce() {
        let hub = ExecHub::default();
        let (tx, _rx) = oneshot::channel();
        lock(&hub.waiting).insert(
            "x".into(),
            Waiting {
                instance_key: "container-instances/c/i".into(),
                nonce: digest("n"),
                socket: tx,
            },
        );
        assert!(hub
            .take_waiting("x", "container-instances/c/j", Some("n"))
            .is_none());
        assert!(hub
            .take_waiting("x", "container-instances/c/i", Some("m"))
            .is_none());
        assert!(hub
            .take_waiting("x", "container-instances/c/i", None)
            .is_none());
        assert!(hub
            .take_waiting("x", "container-instances/c/i", Some("n"))
            .is_some());
        assert!(hub
            .take_waiting("x", "container-instances/c/i", Some("n"))
            .is_none());
    }
}
