//! An HTTP listener's requests (application load balancer): route by host and path, pick a
//! target group by weight and a backend by its algorithm, forward over a pooled keep-alive
//! connection with the `X-Forwarded-*` headers, stream the response back.
//!
//! Failures answer as ALB does: 503 when the rule has no backend to serve, 502 when no backend
//! could be reached (one retry on another backend when connecting failed, since nothing was sent
//! yet) or a backend broke the exchange, 504 when the response headers did not come within the
//! idle timeout.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};

use crate::body::{Lease, ProxyBody};
use crate::metrics::Metrics;
use crate::state::{BackendState, ListenerRt, Outstanding};
use crate::upstream::BackendConn;

/// What every request of one HTTP listener shares.
pub(crate) struct HttpCtx {
    pub routes: Arc<ArcSwap<ListenerRt>>,
    pub metrics: Arc<Metrics>,
    pub connect_timeout: Duration,
    /// `X-Forwarded-Port`: the listener's port.
    pub port: HeaderValue,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Why a request got the data plane's own answer rather than a backend's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No rule matched, the rule forwards nowhere, or its group has no backend to serve.
    NoTarget,
    /// No backend could be connected to, or one broke the exchange.
    BadGateway,
    /// The backend sent no response headers within the idle timeout.
    Timeout,
}

impl Refusal {
    fn response(self, metrics: &Metrics) -> Response<ProxyBody> {
        let (status, text, counter) = match self {
            Refusal::NoTarget => (
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Temporarily Unavailable\n",
                &metrics.lb_503,
            ),
            Refusal::BadGateway => (
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway\n",
                &metrics.lb_502,
            ),
            Refusal::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Time-out\n",
                &metrics.lb_504,
            ),
        };
        counter.fetch_add(1, Relaxed);
        let mut r = Response::new(ProxyBody::local(text));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r.headers_mut()
            .insert(header::SERVER, HeaderValue::from_static("flotilla-lb"));
        r
    }
}

/// The client of a connection, as `X-Forwarded-For` names it.
#[derive(Clone)]
pub(crate) struct Peer(HeaderValue);

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        Peer(
            HeaderValue::from_str(&addr.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
        )
    }
}

/// Serves one request of a client connection from `peer`.
pub(crate) async fn handle(
    ctx: &HttpCtx,
    req: Request<Incoming>,
    peer: Peer,
) -> Response<ProxyBody> {
    ctx.metrics.requests.fetch_add(1, Relaxed);
    let resp = match forward(ctx, req, peer).await {
        Ok(r) => r,
        Err(refusal) => refusal.response(&ctx.metrics),
    };
    ctx.metrics.response(resp.status().as_u16());
    resp
}

async fn forward(
    ctx: &HttpCtx,
    mut req: Request<Incoming>,
    peer: Peer,
) -> Result<Response<ProxyBody>, Refusal> {
    let (group, idle_timeout) = {
        let routes = ctx.routes.load();
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        let group = routes
            .route(host, req.uri().path())
            .and_then(|r| r.group())
            .cloned();
        (group.ok_or(Refusal::NoTarget)?, routes.idle_timeout)
    };
    prepare(ctx, &mut req, peer);

    let mut exclude = None;
    for _attempt in 0..2 {
        let Some(i) = group.pick(exclude) else { break };
        let backend = &group.members[i].state;
        let outstanding = Outstanding::new(backend.clone());
        match send(backend, req, ctx.connect_timeout, idle_timeout).await {
            Attempt::Answered(resp, conn) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let lease = Lease {
                    outstanding,
                    conn: Some(conn),
                };
                return Ok(Response::from_parts(
                    parts,
                    ProxyBody::upstream(body, lease),
                ));
            }
            Attempt::Unsent(r) => {
                backend.connect_failures.fetch_add(1, Relaxed);
                req = r;
                exclude = Some(i);
                if group.members.len() < 2 {
                    break;
                }
            }
            Attempt::Failed(refusal) => return Err(refusal),
        }
    }
    Err(if exclude.is_some() {
        Refusal::BadGateway
    } else {
        Refusal::NoTarget
    })
}

/// What became of one attempt on one backend.
enum Attempt {
    Answered(Response<Incoming>, BackendConn),
    /// Connecting failed: the request was not sent and may go to another backend.
    Unsent(Request<Incoming>),
    Failed(Refusal),
}

async fn send(
    backend: &Arc<BackendState>,
    mut req: Request<Incoming>,
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Attempt {
    // A pooled connection the backend has closed gives the request back unsent (or is found
    // closed before): then the next pooled one, or a fresh connection to the same backend.
    loop {
        let (mut conn, fresh) = match backend.take_idle() {
            Some(c) => (c, false),
            None => match BackendConn::connect(backend.addr, connect_timeout).await {
                Ok(c) => (c, true),
                Err(_) => return Attempt::Unsent(req),
            },
        };
        if !conn.ready().await {
            if fresh {
                return Attempt::Unsent(req);
            }
            continue;
        }
        match tokio::time::timeout(idle_timeout, conn.send(req)).await {
            Err(_elapsed) => return Attempt::Failed(Refusal::Timeout),
            Ok(Ok(resp)) => return Attempt::Answered(resp, conn),
            Ok(Err(mut e)) => match e.take_message() {
                Some(r) if !fresh => req = r,
                Some(r) => return Attempt::Unsent(r),
                None => {
                    tracing::debug!(backend = %backend.addr, error = %e.into_error(), "backend broke the exchange");
                    return Attempt::Failed(Refusal::BadGateway);
                }
            },
        }
    }
}

/// The request as the backend sees it: HTTP/1.1 in origin form, hop-by-hop headers removed,
/// `Host` kept, `X-Forwarded-For` appended to, `X-Forwarded-Proto` and `-Port` set.
fn prepare(ctx: &HttpCtx, req: &mut Request<Incoming>, peer: Peer) {
    *req.version_mut() = Version::HTTP_11;
    if req.uri().authority().is_some() {
        let authority = req.uri().authority().map(|a| a.as_str().to_owned());
        let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let origin = Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/"));
        *req.uri_mut() = origin;
        if let Some(a) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
            req.headers_mut().entry(header::HOST).or_insert(a);
        }
    }
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => peer
            .0
            .to_str()
            .ok()
            .and_then(|ip| HeaderValue::from_str(&format!("{prior}, {ip}")).ok()),
        None => Some(peer.0),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    headers.insert(X_FORWARDED_PORT.clone(), ctx.port.clone());
}

/// Removes the headers that describe one hop (RFC 9110 7.6.1), and those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(conn) = headers.remove(header::CONNECTION) {
        if let Ok(list) = conn.to_str() {
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                    headers.remove(n);
                }
            }
        }
    }
    for h in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        if headers.contains_key(h) {
            headers.remove(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::HOST, HeaderValue::from_static("a.test"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::HOST));
    }
}
