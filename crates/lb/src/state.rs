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
        let factor = |i: usize| {
            let m: &Member = &self.members[i];
            routing::slow_start_factor(now, m.serving_since, self.slow_start_seconds)
        };
        // ALB applies slow start only beside a backend that is already at full share.
        let weighted = self.ramping && {
            let ramping_now = (0..n).filter(|&i| factor(i) < 1.0).count();
            ramping_now > 0 && ramping_now < n
        };
        let share = |i: usize| if weighted { factor(i) } else { 1.0 };
        match self.algorithm {
            Algorithm::RoundRobin if !weighted => routing::round_robin(n, tick, exclude),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn group(algorithm: Algorithm, since: &[Option<f64>], slow_start_seconds: u32) -> GroupRt {
        let members: Vec<Member> = since
            .iter()
            .enumerate()
            .map(|(i, &s)| Member {
                state: Arc::new(BackendState::new(
                    SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                    1,
                )),
                serving_since: s,
            })
            .collect();
        let ramping = slow_start_seconds > 0 && members.iter().any(|m| m.serving_since.is_some());
        GroupRt {
            algorithm,
            slow_start_seconds,
            members,
            ramping,
            tick: Arc::default(),
        }
    }

    fn counts(g: &GroupRt, n: usize) -> Vec<usize> {
        let mut c = vec![0; g.members.len()];
        for _ in 0..n {
            c[g.pick(None).unwrap_or(0)] += 1;
        }
        c
    }

    #[test]
    fn a_backend_in_slow_start_gets_a_ramped_share() {
        let now = now_seconds();
        // Half way through a 100 s ramp beside a backend at full share: about 1/3 of requests.
        let g = group(Algorithm::RoundRobin, &[None, Some(now - 50.0)], 100);
        let c = counts(&g, 3000);
        assert!((800..1200).contains(&c[1]), "{c:?}");
        // Just started: almost nothing.
        let g = group(Algorithm::RoundRobin, &[None, Some(now)], 100);
        assert!(counts(&g, 3000)[1] < 100);
        // Ramp over: plain round robin.
        let g = group(Algorithm::RoundRobin, &[None, Some(now - 200.0)], 100);
        assert_eq!(counts(&g, 3000), [1500, 1500]);
        // Every backend new: no slow start (nothing would serve otherwise).
        let g = group(Algorithm::RoundRobin, &[Some(now), Some(now)], 100);
        assert_eq!(counts(&g, 3000), [1500, 1500]);
    }

    #[test]
    fn least_outstanding_counts_a_ramping_backend_busier() {
        let now = now_seconds();
        let g = group(
            Algorithm::LeastOutstandingRequests,
            &[None, Some(now - 10.0)],
            100,
        );
        // Both idle: the full-share backend wins; with 5 in flight on it, the ramping one (share
        // 0.1, so 1 in flight counts as 10) still loses, at 20 it wins.
        assert_eq!(g.pick(None), Some(0));
        g.members[0].state.outstanding.store(5, Relaxed);
        assert_eq!(g.pick(None), Some(0));
        g.members[0].state.outstanding.store(20, Relaxed);
        assert_eq!(g.pick(None), Some(1));
    }
}
