//! The table compiled for serving, and the runtime state that outlives a reload: per backend its
//! counters and pool of idle keep-alive connections, per target group its round-robin counter.
//!
//! A listener serves from an `ArcSwap<ListenerRt>`: a request loads the current snapshot without
//! a lock or an allocation, and `apply` swaps in a new one; the `BackendState`s a snapshot points
//! to are shared by every snapshot that names the same address.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::routing::{self, Conditions};
use crate::table::Algorithm;
use crate::upstream::BackendConn;

/// At most this many idle connections are pooled per backend; more are closed.
const MAX_IDLE: usize = 512;

/// A pooled connection idle longer than this is closed rather than used: backends commonly
/// close idle keep-alive connections after a few seconds, and one they closed costs a retry.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One worker's idle connections to a backend, each with the moment it went idle.
type Pool = Mutex<Vec<(BackendConn, Instant)>>;

/// One backend address, shared by every group and snapshot that names it.
#[derive(Debug)]
pub(crate) struct BackendState {
    pub addr: SocketAddr,
    /// HTTP requests in flight, or TCP connections open (least outstanding requests reads it).
    pub outstanding: AtomicU64,
    pub requests: AtomicU64,
    pub connect_failures: AtomicU64,
    /// False while no group serves it (drain, unhealthy, skip, removed): its idle connections
    /// are closed and connections that finish are not pooled.
    pub pooling: AtomicBool,
    /// Idle keep-alive connections per worker (a connection belongs to the runtime that made
    /// it), the most recently used last. Nothing polls them while they sit here; the request
    /// that takes one drives it from then on.
    idle: Box<[Pool]>,
}

impl BackendState {
    /// `workers`: how many pools to keep, one per worker.
    pub fn new(addr: SocketAddr, workers: usize) -> Self {
        BackendState {
            addr,
            outstanding: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            pooling: AtomicBool::new(true),
            idle: (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// The most recently used idle connection, unless it idled too long.
    pub fn take_idle(&self) -> Option<BackendConn> {
        let mut idle = self.pool().lock().unwrap_or_else(|e| e.into_inner());
        let (conn, since) = idle.pop()?;
        if since.elapsed() > POOL_IDLE_TIMEOUT {
            // The rest are older still.
            idle.clear();
            return None;
        }
        Some(conn)
    }

    /// Pools a connection whose response has been read to its end.
    pub fn put_idle(&self, conn: BackendConn) {
        if !self.pooling.load(Relaxed) {
            return;
        }
        let mut idle = self.pool().lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    /// Stops pooling and closes the idle connections.
    pub fn stop_pooling(&self) {
        self.pooling.store(false, Relaxed);
        for pool in self.idle.iter() {
            let drained = std::mem::take(&mut *pool.lock().unwrap_or_else(|e| e.into_inner()));
            drop(drained);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle
            .iter()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// The calling worker's pool.
    fn pool(&self) -> &Pool {
        &self.idle[crate::workers::current() % self.idle.len()]
    }
}

/// Counts a request (or TCP connection) against its backend while it lives.
#[derive(Debug)]
pub(crate) struct Outstanding(pub Arc<BackendState>);

impl Outstanding {
    pub fn new(b: Arc<BackendState>) -> Self {
        b.outstanding.fetch_add(1, Relaxed);
        b.requests.fetch_add(1, Relaxed);
        Outstanding(b)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Relaxed);
    }
}

/// A backend that may get new requests, with its slow-start origin.
#[derive(Debug)]
pub(crate) struct Member {
    pub state: Arc<BackendState>,
    pub serving_since: Option<f64>,
}

/// A target group as served: the backends that get new requests.
#[derive(Debug)]
pub(crate) struct GroupRt {
    pub algorithm: Algorithm,
    pub slow_start_seconds: u32,
    /// The `Serve` backends, or, when there are none, the `Unhealthy` ones (failing open).
    pub members: Vec<Member>,
    /// Whether some member may still be in slow start (else shares are all 1 without a clock).
    pub ramping: bool,
    /// Survives reloads, so round robin continues where it was.
    pub tick: Arc<AtomicU64>,
}

impl GroupRt {
    /// The member for the next request, not `exclude` (a member that just refused).
    pub fn pick(&self, exclude: Option<usize>) -> Option<usize> {
        let n = self.members.len();
        let tick = self.tick.fetch_add(1, Relaxed);
        let now = if self.ramping { now_seconds() } else { 0.0 };
        let all_ramping = self.ramping
            && self.members.iter().all(|m| {
                routing::slow_start_factor(now, m.serving_since, self.slow_start_seconds) < 1.0
            });
        // ALB applies slow start only beside a backend that is already at full share.
        let share = |i: usize| {
            if !self.ramping || all_ramping {
                1.0
            } else {
                routing::slow_start_factor(
                    now,
                    self.members[i].serving_since,
                    self.slow_start_seconds,
                )
            }
        };
        match self.algorithm {
            Algorithm::RoundRobin if !self.ramping || all_ramping => {
                routing::round_robin(n, tick, exclude)
            }
            Algorithm::RoundRobin => {
                routing::pick_by_share(n, share, rand::random::<f64>(), exclude)
            }
            Algorithm::LeastOutstandingRequests => routing::least_outstanding(
                n,
                |i| self.members[i].state.outstanding.load(Relaxed),
                share,
                (tick % n.max(1) as u64) as usize,
                exclude,
            ),
        }
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A rule as served.
#[derive(Debug)]
pub(crate) struct RuleRt {
    pub conditions: Conditions,
    pub groups: Vec<Arc<GroupRt>>,
    pub weights: Vec<u32>,
}

impl RuleRt {
    /// The group for one request (weighted), or `None` for a rule that forwards nowhere.
    pub fn group(&self) -> Option<&Arc<GroupRt>> {
        match self.groups.len() {
            0 => None,
            1 => self.groups.first(),
            _ => routing::pick_weighted(&self.weights, rand::random::<u64>())
                .and_then(|i| self.groups.get(i)),
        }
    }
}

/// A listener's routes as served.
#[derive(Debug)]
pub(crate) struct ListenerRt {
    pub rules: Vec<RuleRt>,
    pub idle_timeout: Duration,
}

impl ListenerRt {
    /// The rule for a request: the first whose conditions match.
    pub fn route(&self, host: &str, path: &str) -> Option<&RuleRt> {
        self.rules.iter().find(|r| r.conditions.matches(host, path))
    }

    /// The default rule (TCP listeners use only it).
    pub fn default_rule(&self) -> Option<&RuleRt> {
        self.rules.last()
    }
}
