//! Target health probes: one TCP connect, or one HTTP `GET` whose status must match the check's
//! success codes, within the check's timeout. The caller (the integrator) schedules probes and
//! counts thresholds; a probe only says what happened this once.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HeaderValue, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use crate::matcher::{Matcher, MatcherError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckProtocol {
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub protocol: HealthCheckProtocol,
    /// The port to probe; `None` is the target's own port (`traffic-port`).
    pub port: Option<u16>,
    /// HTTP only: the path (and query) requested.
    pub path: String,
    /// HTTP only: the codes that pass.
    pub matcher: Matcher,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Passed,
    Failed(FailReason),
}

/// Why a probe failed (ELB's `Target.Timeout`, `Target.FailedHealthChecks`,
/// `Target.ResponseCodeMismatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// No connection or no response within the timeout.
    Timeout,
    ConnectionRefused,
    /// The target answered with a code outside the matcher.
    ResponseCodeMismatch(u16),
    /// Anything else: unreachable, reset, not HTTP.
    Error(String),
}

/// Probes `target` once.
pub async fn probe(check: &HealthCheck, target: SocketAddr) -> ProbeResult {
    let addr = SocketAddr::new(target.ip(), check.port.unwrap_or(target.port()));
    match tokio::time::timeout(check.timeout, probe_inner(check, addr)).await {
        Ok(r) => r,
        Err(_) => ProbeResult::Failed(FailReason::Timeout),
    }
}

async fn probe_inner(check: &HealthCheck, addr: SocketAddr) -> ProbeResult {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return ProbeResult::Failed(FailReason::ConnectionRefused)
        }
        Err(e) => return ProbeResult::Failed(FailReason::Error(e.to_string())),
    };
    if check.protocol == HealthCheckProtocol::Tcp {
        return ProbeResult::Passed;
    }
    let (mut sender, conn) = match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
        TokioIo::new(stream),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return ProbeResult::Failed(FailReason::Error(e.to_string())),
    };
    let driver = tokio::spawn(conn);
    let path = if check.path.starts_with('/') {
        check.path.clone()
    } else {
        format!("/{}", check.path)
    };
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(
            HOST,
            HeaderValue::from_str(&addr.to_string())
                .unwrap_or(HeaderValue::from_static("localhost")),
        )
        .header(USER_AGENT, "ELB-HealthChecker/2.0")
        .body(Empty::new());
    let result = match req {
        Err(e) => ProbeResult::Failed(FailReason::Error(format!("bad health check path: {e}"))),
        Ok(req) => match sender.send_request(req).await {
            Ok(resp) => {
                let code = resp.status().as_u16();
                if check.matcher.matches(code) {
                    ProbeResult::Passed
                } else {
                    ProbeResult::Failed(FailReason::ResponseCodeMismatch(code))
                }
            }
            Err(e) => ProbeResult::Failed(FailReason::Error(e.to_string())),
        },
    };
    driver.abort();
    result
}
