//! The HTTP edge: `POST /` for the ECS API, `GET /metrics` for Prometheus, `GET /healthz` (alive),
//! `GET /readyz` (the store answers, [`crate::health`]), and
//! the agent session WebSocket at `flotilla_protocol::SESSION_PATH` (see [`crate::session`]),
//! ECS Exec's WebSockets (`flotilla_protocol::exec`'s paths, see [`crate::exec`]), and the web
//! console under `/console/` ([`crate::console`]).
//!
//! For every API request it assigns the `x-amzn-RequestId`, routes it to its service
//! ([`crate::routing`]: ECS, or a service registered with [`Api::with_service`], by the
//! `X-Amz-Target` prefix and the SigV4 scope's service name), verifies the SigV4 signature and
//! that its scope names that service, and answers in that service's shape. For ECS it reads
//! the body as JSON (an empty body is `{}`), dispatches on `X-Amz-Target`, and writes either
//! the operation's output with status 200 or `{"__type", "message"}` with the error's status;
//! another service gets a [`flotilla_edge::Call`] and its [`flotilla_edge::Reply`] is sent as
//! is. Every request is authorized by the signing key's policy, if it has one
//! ([`crate::authorize`]), once its operation is known. It records one metric sample and one
//! tracing span per request. Flotilla's own
//! operations (not ECS's; `X-Amz-Target: FlotillaAdmin.*`, see [`crate::admin::admin`]) go the
//! ECS way.

use crate::context::{Api, Ctx};
use crate::ops;
use crate::routing::{self, Route};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use flotilla_edge::{Call, EdgeError, Outcome, Reply, Service};
use flotilla_model::{EcsError, ErrorCode, Operation};
use flotilla_sigv4 as sigv4;
use flotilla_sigv4::target::JSON_CONTENT_TYPE as CONTENT_TYPE;
pub use flotilla_sigv4::target::{ADMIN_TARGET_PREFIX, ECS_TARGET_PREFIX as TARGET_PREFIX};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The HTTP router of the API.
pub fn router(api: Arc<Api>) -> Router {
    api.start_background();
    Router::new()
        .route(
            flotilla_protocol::SESSION_PATH,
            get(crate::session::upgrade),
        )
        .route(
            &format!("{}/{{id}}", flotilla_protocol::exec::AGENT_PATH),
            get(crate::exec::agent_upgrade),
        )
        .route(
            &format!("{}/{{id}}", flotilla_protocol::exec::STREAM_PATH),
            get(crate::exec::stream_upgrade),
        )
        .route(
            flotilla_protocol::exec::RELAY_PATH,
            get(crate::exec::relay_upgrade),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(crate::health::readyz))
        .fallback(any(handle_http))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(api.clone())
        .merge(crate::console::routes(api))
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    api.metrics.set_agent_sessions(api.agents.sessions());
    match crate::capacity_metrics::reservations(api.plane.store()).await {
        Ok(values) => api.metrics.set_reservations(&values),
        Err(e) => tracing::warn!(error = %e, "could not read capacity provider reservations"),
    }
    let (tasks, instances) = crate::usage_gauges::local(&api).await;
    api.metrics.set_local_usage(&tasks, &instances);
    match crate::usage_gauges::ecs(api.plane.metrics.as_ref(), api.plane.clock.now()).await {
        Ok(figures) => api.metrics.set_ecs_usage(&figures),
        Err(e) => {
            api.metrics.set_ecs_usage(&[]);
            tracing::warn!(error = %e, "could not read the AWS/ECS figures for /metrics");
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        api.metrics.encode(),
    )
        .into_response()
}

fn respond(request_id: &str, status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// Why a request could not be authenticated.
#[derive(Debug)]
pub(crate) enum AuthFailure {
    /// The caller is refused ([`sigv4::AuthError`]: AWS's code and wording).
    Refused(sigv4::AuthError),
    /// The server failed while finding the key (the store did not answer): a 5xx, not the
    /// caller's fault.
    Internal(String),
}

/// Which keys may sign a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// The configured keys, the task role keys and the agent keys Flotilla issued (every API
    /// call; an agent key is then held to its own instance's calls, [`crate::agent_identity`]).
    All,
    /// The configured keys only (the relay between replicas).
    Configured,
    /// The configured keys and agent keys (the agent session and ECS Exec's dial-back: a task's
    /// key never opens one).
    Agents,
}

/// Verifies a request's SigV4 signature at the API's clock against the configured credentials,
/// then (for a key of a task's shape that is not configured) the task role credentials
/// Flotilla issued ([`crate::task_credentials`]), which must carry their session token and be
/// unexpired, or (for a key of an agent's shape) the agent keys issued when agents joined
/// ([`crate::agent_identity`]). Every API call goes through it; the agent session's upgrade
/// with [`Keys::Agents`].
pub(crate) async fn authenticate_caller(
    api: &Api,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    keys: Keys,
) -> Result<sigv4::Caller, AuthFailure> {
    // The names and values as they are (a value that is not UTF-8 is copied, lossily).
    let pairs: Vec<(&str, std::borrow::Cow<'_, str>)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let creds = &api.config.credentials;
    let configured = |akid: &str| creds.iter().find(|c| c.access_key_id == akid);
    // The configured keys first: an ordinary key never costs a store read.
    let akid = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::access_key_id);
    let temporary = match akid {
        Some(akid)
            if keys == Keys::All
                && configured(akid).is_none()
                && flotilla_control::task_credentials::looks_like_task_key(akid) =>
        {
            crate::task_credentials::lookup(api, akid)
                .await
                .map_err(|e| AuthFailure::Internal(e.message))?
                .map(|(c, expiration)| (c, Some(expiration)))
        }
        Some(akid)
            if keys != Keys::Configured
                && configured(akid).is_none()
                && flotilla_control::agent_identity::looks_like_agent_key(akid) =>
        {
            crate::agent_identity::lookup(api, akid)
                .await
                .map_err(|e| AuthFailure::Internal(e.message))?
                .map(|c| (c, None))
        }
        _ => None,
    };
    let now = api.clock.now();
    let caller = sigv4::verify_pairs(
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        &pairs,
        body,
        now as i64,
        |akid| configured(akid).or_else(|| temporary.as_ref().map(|(c, _)| c)),
    )
    .map_err(AuthFailure::Refused)?;
    // One `Api` serves one region: a request scoped to another is refused as AWS refuses a
    // wrongly scoped credential (an installation serving several regions routes each request
    // to its region's `Api` first, `crate::regions`).
    if caller.region != api.config.arns.region {
        return Err(AuthFailure::Refused(sigv4::AuthError::WrongRegion {
            region: caller.region,
        }));
    }
    if let Some((_, Some(expiration))) = &temporary {
        if flotilla_control::task_credentials::validity(*expiration, now)
            == flotilla_control::task_credentials::Validity::Expired
        {
            return Err(AuthFailure::Refused(sigv4::AuthError::ExpiredToken));
        }
    }
    Ok(caller)
}

/// [`authenticate_caller`] for ECS: the failure as the ECS error it is answered with.
pub async fn authenticate(
    api: &Api,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<sigv4::Caller, EcsError> {
    authenticate_keys(api, method, uri, headers, body, Keys::All).await
}

/// [`authenticate`] with only some keys (the agent session, the relay).
pub(crate) async fn authenticate_keys(
    api: &Api,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    keys: Keys,
) -> Result<sigv4::Caller, EcsError> {
    authenticate_caller(api, method, uri, headers, body, keys)
        .await
        .map_err(|f| match f {
            AuthFailure::Refused(e) => auth_error(e),
            AuthFailure::Internal(m) => EcsError::server(m),
        })
}

/// The ECS error an authentication failure is answered with (AWS's code and wording).
fn auth_error(e: sigv4::AuthError) -> EcsError {
    let code = match e.code() {
        sigv4::AuthCode::MissingAuthenticationToken => {
            ErrorCode::MissingAuthenticationTokenException
        }
        sigv4::AuthCode::UnrecognizedClient => ErrorCode::UnrecognizedClientException,
        sigv4::AuthCode::InvalidSignature => ErrorCode::InvalidSignatureException,
        sigv4::AuthCode::SignatureExpired => ErrorCode::InvalidSignatureExceptionSkew,
        sigv4::AuthCode::ExpiredToken => ErrorCode::ExpiredTokenException,
    };
    EcsError::new(code, e.to_string())
}

/// The wire form of an error.
pub fn error_body(e: &EcsError) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"__type": e.code.wire_type(), "message": e.message}))
        .unwrap_or_default()
}

/// An API request from the listener: [`handle`] with the peer's address (when the server
/// was started with it, `into_make_service_with_connect_info`) for the audit log.
async fn handle_http(State(api): State<Arc<Api>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let source = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    handle_from(api, source, parts.method, parts.uri, parts.headers, body).await
}

/// An API request made inside the server (the web console's calls): no peer address.
pub(crate) async fn handle(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle_from(api, None, method, uri, headers, body).await
}

async fn handle_from(
    api: Arc<Api>,
    source: Option<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let scope = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::scope_service);
    if let Route::Service(service) = routing::route(api.services(), &target, scope) {
        return handle_service(
            &api,
            service.as_ref(),
            request_id,
            started,
            source,
            method,
            uri,
            headers,
            body,
            &target,
        )
        .await;
    }
    let op_name = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or("unknown")
        .to_string();
    let span = tracing::info_span!("request", request_id = %request_id, operation = %op_name);
    let mut caller = None;
    let (result, body) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => (
            serve(&api, &method, &uri, &headers, &body, &target, &mut caller)
                .instrument(span.clone())
                .await,
            body,
        ),
        Err(_) => (
            Err(EcsError::client(format!(
                "The request body is larger than {MAX_BODY_BYTES} bytes or could not be read."
            ))),
            Default::default(),
        ),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let metric_op = if Operation::from_name(&op_name).is_some() {
        op_name.as_str()
    } else {
        "unknown"
    };
    audit(
        &api,
        Audited {
            request_id: &request_id,
            source,
            service: "ecs",
            operation: &ecs_audit_operation(&target),
            caller: caller.as_ref(),
            headers: &headers,
            body: &body,
            form: false,
            outcome: match &result {
                Ok(_) => crate::audit::Outcome::Ok,
                Err(e) => crate::audit::Outcome::Error(e.code.wire_type().to_string()),
            },
        },
    );
    match result {
        Ok(value) => {
            api.metrics.observe(metric_op, "ok", elapsed);
            span.in_scope(|| tracing::debug!(seconds = elapsed, "ok"));
            respond(&request_id, StatusCode::OK, value)
        }
        Err(e) => {
            api.metrics.observe(metric_op, e.code.wire_type(), elapsed);
            let status =
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            span.in_scope(|| {
                if status.is_server_error() {
                    tracing::error!(error = %e, "request failed");
                } else {
                    tracing::info!(error = %e, "request rejected");
                }
            });
            respond(&request_id, status, error_body(&e))
        }
    }
}

/// A request body as JSON; an empty one is `{}`.
fn parse_body(body: &[u8]) -> Result<serde_json::Value, EcsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| EcsError::serialization(format!("The request body is not valid JSON: {e}.")))
}

/// Serves one ECS (or FlotillaAdmin) request; `who` is set to the caller once verified.
async fn serve(
    api: &Api,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    target: &str,
    who: &mut Option<sigv4::Caller>,
) -> Result<Vec<u8>, EcsError> {
    let now = api.clock.now();
    if crate::agent_identity::is_join(target) {
        // The one unsigned call: its join token authenticates it.
        return crate::agent_identity::serve_join(api, method, uri, headers, body).await;
    }
    let caller = authenticate(api, method, uri, headers, body).await?;
    *who = Some(caller.clone());
    throttle_ecs(api, &caller, target)?;
    if let Some(expected) = routing::ecs_scope_mismatch(target, &caller.service) {
        return Err(EcsError::new(
            ErrorCode::InvalidSignatureException,
            EdgeError::WrongScope { expected }.to_string(),
        ));
    }
    if method != Method::POST || uri.path() != "/" {
        return Err(EcsError::new(
            ErrorCode::UnknownOperationException,
            format!(
                "The ECS API is served at POST /, not {method} {}.",
                uri.path()
            ),
        ));
    }
    if let Some(admin) = target.strip_prefix(ADMIN_TARGET_PREFIX) {
        let input = parse_body(body)?;
        if !input.is_object() {
            return Err(EcsError::serialization(
                "The request body must be a JSON object.",
            ));
        }
        crate::agent_identity::authorize_admin(api, &caller, admin, &input).await?;
        crate::authorize::admin(api, &caller, admin).map_err(|r| r.to_ecs())?;
        let output = crate::admin::admin_as(api, &caller, admin, &input).await?;
        return serde_json::to_vec(&output)
            .map_err(|e| EcsError::server(format!("could not encode the response: {e}")));
    }
    let Some(op) = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name)
    else {
        return Err(EcsError::new(
            ErrorCode::UnknownOperationException,
            if target.is_empty() {
                "The request has no X-Amz-Target header naming the operation.".to_string()
            } else {
                format!("'{target}' is not an operation of Amazon ECS (expected {TARGET_PREFIX}<Operation>).")
            },
        ));
    };
    let input = parse_body(body)?;
    crate::agent_identity::authorize_ecs(api, &caller, op.name(), &input).await?;
    crate::authorize::ecs(api, &caller, op.name(), &input)
        .await
        .map_err(|r| r.to_ecs())?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ctx = Ctx {
        api,
        caller,
        now,
        host,
    };
    ops::dispatch(&ctx, op, input).await
}

/// A request routed to a service behind the edge: read the body, verify the signature and its
/// scope, hand the service the call, send its reply. Every refusal is the service's own
/// ([`Service::reject`]).
#[allow(clippy::too_many_arguments)] // One request's parts, passed on from the handler.
async fn handle_service(
    api: &Api,
    service: &dyn Service,
    request_id: String,
    started: Instant,
    source: Option<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    target: &str,
) -> Response {
    // The body first: an awsQuery service's operation is the form's `Action`.
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let operation = body
        .as_ref()
        .ok()
        .and_then(|b| routing::operation(service, target, b));
    let metric_op = match &operation {
        Some(op) if service.has_operation(op) => format!("{}:{op}", service.signing_name()),
        _ => "unknown".to_string(),
    };
    let span = tracing::info_span!("request", request_id = %request_id, operation = %metric_op);
    let mut who: Option<sigv4::Caller> = None;
    let reply = async {
        let body = match &body {
            Ok(b) => b,
            Err(_) => {
                return service.reject(&EdgeError::BodyTooLarge {
                    limit: MAX_BODY_BYTES,
                })
            }
        };
        let now = api.clock.now();
        let caller = match authenticate_caller(api, &method, &uri, &headers, body, Keys::All).await
        {
            Ok(c) => c,
            Err(AuthFailure::Refused(e)) => return service.reject(&EdgeError::Auth(e)),
            Err(AuthFailure::Internal(message)) => {
                return service.reject(&EdgeError::Internal { message })
            }
        };
        who = Some(caller.clone());
        if let Some(message) =
            crate::agent_identity::refuse_service(&caller, service, operation.as_deref())
        {
            return service.reject(&EdgeError::AccessDenied { message });
        }
        if let Some(op) = operation.as_deref() {
            if over_rate(api, &caller, service.signing_name(), op, &metric_op) {
                return service.reject(&EdgeError::Throttled);
            }
        }
        if method != Method::POST || uri.path() != "/" {
            return service.reject(&EdgeError::NotPost {
                method: method.to_string(),
                path: uri.path().to_string(),
            });
        }
        if operation.is_some() {
            if let Some(expected) = routing::scope_mismatch(service, &caller.service) {
                return service.reject(&EdgeError::WrongScope { expected });
            }
        }
        let Some(operation) = operation.as_deref() else {
            return service.reject(&EdgeError::UnknownOperation {
                target: target.to_string(),
            });
        };
        if let Err(refusal) = crate::authorize::edge(api, &caller, service, operation, body).await {
            return service.reject(&refusal.to_edge());
        }
        service
            .call(Call {
                caller: &caller,
                operation,
                body,
                now,
                request_id: &request_id,
            })
            .await
    }
    .instrument(span.clone())
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let audited_operation = match &operation {
        Some(op) if service.has_operation(op) => op.as_str(),
        _ => "unknown",
    };
    audit(
        api,
        Audited {
            request_id: &request_id,
            source,
            service: service.signing_name(),
            operation: audited_operation,
            caller: who.as_ref(),
            headers: &headers,
            body: body.as_deref().unwrap_or_default(),
            form: service.marker() == flotilla_edge::Marker::Action,
            outcome: match &reply.outcome {
                Outcome::Ok => crate::audit::Outcome::Ok,
                Outcome::Error(kind) => crate::audit::Outcome::Error(kind.clone()),
            },
        },
    );
    let Reply {
        status,
        content_type,
        body,
        outcome,
        error_message,
    } = reply;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    match &outcome {
        Outcome::Ok => {
            api.metrics.observe(&metric_op, "ok", elapsed);
            span.in_scope(|| tracing::debug!(seconds = elapsed, "ok"));
        }
        Outcome::Error(kind) => {
            api.metrics.observe(&metric_op, kind, elapsed);
            let message = error_message.unwrap_or_default();
            span.in_scope(|| {
                if status.is_server_error() {
                    tracing::error!(error = %kind, message = %message, "request failed");
                } else {
                    tracing::info!(error = %kind, message = %message, "request rejected");
                }
            });
        }
    }
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// Throttling, right after authentication: whether `caller` is over its rate for `operation`
/// of `service` (its bucket in [`Api::with_throttle`]'s limiter, per access key id and class
/// of operations); a throttled request is counted on `/metrics` by `metric_op`. Without a
/// limiter nothing is throttled. Only API calls come here: the agent session, ECS Exec, the
/// health and metrics endpoints never do.
fn over_rate(
    api: &Api,
    caller: &sigv4::Caller,
    service: &str,
    operation: &str,
    metric_op: &str,
) -> bool {
    let Some(limiter) = &api.throttle else {
        return false;
    };
    let now = api.clock.now();
    let decision = limiter.lock().unwrap_or_else(|e| e.into_inner()).check(
        &caller.access_key_id,
        service,
        operation,
        now,
    );
    match decision {
        flotilla_throttle::Decision::Admit => false,
        flotilla_throttle::Decision::Throttle { .. } => {
            api.metrics.throttled(metric_op);
            true
        }
    }
}

/// [`over_rate`] for an ECS request: `ThrottlingException` "Rate exceeded" (400), as ECS
/// answers. Flotilla's own operations (`FlotillaAdmin.*`: the agents' name lookups and log
/// streams, the replicas' calls to each other) are never throttled.
fn throttle_ecs(api: &Api, caller: &sigv4::Caller, target: &str) -> Result<(), EcsError> {
    let Some(op) = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name)
    else {
        return Ok(());
    };
    if over_rate(api, caller, "ecs", op.name(), op.name()) {
        return Err(EcsError::new(
            ErrorCode::ThrottlingException,
            flotilla_edge::service::RATE_EXCEEDED,
        ));
    }
    Ok(())
}

/// The operation an ECS request is audited as: the ECS operation, `FlotillaAdmin.NAME`, or
/// `unknown`.
fn ecs_audit_operation(target: &str) -> String {
    if let Some(op) = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name)
    {
        return op.name().to_string();
    }
    match target.strip_prefix(ADMIN_TARGET_PREFIX) {
        Some(name)
            if !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            format!("{ADMIN_TARGET_PREFIX}{name}")
        }
        _ => "unknown".to_string(),
    }
}

/// One answered request, as the audit log sees it.
struct Audited<'a> {
    request_id: &'a str,
    source: Option<SocketAddr>,
    service: &'a str,
    operation: &'a str,
    /// The verified caller, if the signature was verified.
    caller: Option<&'a sigv4::Caller>,
    headers: &'a HeaderMap,
    body: &'a [u8],
    /// An awsQuery form body (else JSON).
    form: bool,
    outcome: crate::audit::Outcome,
}

/// Writes the audit record of a mutating or denied call ([`crate::audit`]), when the server
/// keeps an audit log.
fn audit(api: &Api, a: Audited<'_>) {
    let Some(log) = &api.audit else {
        return;
    };
    if !crate::audit::is_recorded(a.operation, &a.outcome) {
        return;
    }
    let claimed = a
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::access_key_id);
    let record = crate::audit::Record {
        time: api.clock.now(),
        request_id: a.request_id,
        region: &api.config.arns.region,
        access_key_id: a.caller.map(|c| c.access_key_id.as_str()).or(claimed),
        principal: a.caller.map(|c| c.principal_arn.as_str()),
        source: a.source,
        service: a.service,
        operation: a.operation,
        resource: if a.form {
            crate::audit::identifiers_form(a.body)
        } else {
            crate::audit::identifiers_json(a.body)
        },
        outcome: a.outcome,
    };
    log.write(crate::audit::line(&record));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_ecs_s_throttling_classes_is_an_ecs_operation() {
        for (class, _, _, ops) in flotilla_throttle::classes::ECS_CLASSES {
            for op in *ops {
                assert!(
                    Operation::from_name(op).is_some(),
                    "{class} names {op}, which is no ECS operation"
                );
            }
        }
    }

    #[test]
    fn requests_are_audited_by_their_operation() {
        assert_eq!(
            ecs_audit_operation(&format!("{TARGET_PREFIX}RunTask")),
            "RunTask"
        );
        assert_eq!(
            ecs_audit_operation(&format!("{ADMIN_TARGET_PREFIX}ReclaimSpot")),
            "FlotillaAdmin.ReclaimSpot"
        );
        assert_eq!(
            ecs_audit_operation(&format!("{TARGET_PREFIX}Nope")),
            "unknown"
        );
        assert_eq!(
            ecs_audit_operation(&format!("{ADMIN_TARGET_PREFIX}a\"b")),
            "unknown"
        );
        assert_eq!(ecs_audit_operation(""), "unknown");
    }
}
