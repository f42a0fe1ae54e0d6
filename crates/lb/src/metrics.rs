//! Plain counters of the data plane, read as a [`MetricsSnapshot`] the integrator renders (for
//! instance into Prometheus). Relaxed atomics: each counter is exact, a snapshot is not a
//! consistent cut across counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of all listeners together.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub requests: AtomicU64,
    /// Responses by class: index 0 is 1xx, 4 is 5xx.
    pub responses: [AtomicU64; 5],
    /// 5xx answered by the data plane itself (502 no target reachable, 503 no target, 504 timeout).
    pub lb_502: AtomicU64,
    pub lb_503: AtomicU64,
    pub lb_504: AtomicU64,
    /// Client connections open now, HTTP and TCP.
    pub client_connections: AtomicU64,
    pub client_connections_total: AtomicU64,
}

impl Metrics {
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Relaxed);
    }
}

/// One backend's counters (a backend shared by several groups is counted once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendMetrics {
    pub addr: SocketAddr,
    /// HTTP requests in flight to it, or TCP connections open to it.
    pub active: u64,
    /// HTTP requests and TCP connections it was given.
    pub requests: u64,
    /// Connections to it that failed (refused, unreachable, timed out).
    pub connect_failures: u64,
    /// Idle keep-alive connections pooled for it.
    pub idle_connections: u64,
}

/// What [`crate::DataPlane::metrics`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    pub requests: u64,
    pub responses_1xx: u64,
    pub responses_2xx: u64,
    pub responses_3xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    pub lb_502: u64,
    pub lb_503: u64,
    pub lb_504: u64,
    pub client_connections: u64,
    pub client_connections_total: u64,
    /// Backends of the current table, by address.
    pub backends: Vec<BackendMetrics>,
}

impl Metrics {
    pub fn snapshot(&self, backends: Vec<BackendMetrics>) -> MetricsSnapshot {
        let r = |i: usize| self.responses[i].load(Relaxed);
        MetricsSnapshot {
            requests: self.requests.load(Relaxed),
            responses_1xx: r(0),
            responses_2xx: r(1),
            responses_3xx: r(2),
            responses_4xx: r(3),
            responses_5xx: r(4),
            lb_502: self.lb_502.load(Relaxed),
            lb_503: self.lb_503.load(Relaxed),
            lb_504: self.lb_504.load(Relaxed),
            client_connections: self.client_connections.load(Relaxed),
            client_connections_total: self.client_connections_total.load(Relaxed),
            backends,
        }
    }
}
