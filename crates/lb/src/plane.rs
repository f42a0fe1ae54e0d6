//! The data plane: binds the table's listeners, serves them, and swaps in a new table without
//! dropping connections.
//!
//! `apply` compiles the table into per-listener snapshots (`state::ListenerRt`) and stores each
//! into the `ArcSwap` its listener serves from, so the next request routes by the new table
//! while requests in flight finish on the old one. Listeners are keyed by id: one whose bind or
//! protocol changed is closed and bound anew; a removed one stops accepting and its connections
//! close once their request in flight is answered (TCP connections run to their end).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex, Notify};
use tokio::task::JoinHandle;

use crate::http::{self, HttpCtx};
use crate::metrics::{BackendMetrics, Metrics, MetricsSnapshot};
use crate::routing::Conditions;
use crate::state::{BackendState, GroupRt, ListenerRt, Member, RuleRt};
use crate::table::{ListenerProtocol, Routing, Table};
use crate::tcp::{self, TcpCtx};
use crate::workers::{self, OnWorker, Workers};

/// The plane's settings; a listener's `idle_timeout_seconds` overrides `idle_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long connecting to a backend may take before it counts as unreachable.
    pub connect_timeout: Duration,
    /// How long a request waits for its backend's response headers (then 504), and how long a
    /// client's keep-alive connection may sit idle before it is closed.
    pub idle_timeout: Duration,
    /// How long `shutdown` waits for open connections to finish before it cuts them.
    pub shutdown_grace: Duration,
    /// Threads serving connections, each a single-threaded runtime (see `workers`).
    pub workers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A listener the table asked for but that could not be bound; the rest of the table is served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("listener {listener} cannot bind {addr}: {message}")]
pub struct BindError {
    pub listener: String,
    pub addr: SocketAddr,
    pub kind: io::ErrorKind,
    pub message: String,
}

/// Where a listener's connections are in their life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serve,
    /// Stop accepting; HTTP connections close after the request in flight.
    Close,
    /// Cut every connection now.
    Stop,
}

/// Serves a [`Table`]; cheap to share behind an `Arc`, every method takes `&self`.
pub struct DataPlane {
    config: Config,
    workers: Arc<Workers>,
    metrics: Arc<Metrics>,
    conns: Arc<Conns>,
    /// For `metrics`: the backends the current table names.
    backends: ArcSwap<Vec<Arc<BackendState>>>,
    /// Serialises `apply` and `shutdown` (held across binds and joins; never on the request path).
    state: Mutex<PlaneState>,
}

#[derive(Default)]
struct PlaneState {
    listeners: HashMap<String, Running>,
    backends: HashMap<SocketAddr, Arc<BackendState>>,
    ticks: HashMap<String, Arc<AtomicU64>>,
    /// Phase senders of closed listeners whose connections may still be open.
    retired: Vec<watch::Sender<Phase>>,
}

struct Running {
    bind: SocketAddr,
    /// What `bind` resolved to (differs when it asked for port 0).
    bound: SocketAddr,
    protocol: ListenerProtocol,
    routes: Arc<ArcSwap<ListenerRt>>,
    phase: watch::Sender<Phase>,
    accept: JoinHandle<()>,
}

/// Client connections open, for `shutdown` to wait on.
#[derive(Default)]
struct Conns {
    open: AtomicUsize,
    none_open: Notify,
}

struct ConnGuard {
    conns: Arc<Conns>,
    metrics: Arc<Metrics>,
}

impl ConnGuard {
    fn new(conns: &Arc<Conns>, metrics: &Arc<Metrics>) -> Self {
        conns.open.fetch_add(1, Ordering::SeqCst);
        metrics.client_connections.fetch_add(1, Ordering::Relaxed);
        metrics
            .client_connections_total
            .fetch_add(1, Ordering::Relaxed);
        ConnGuard {
            conns: conns.clone(),
            metrics: metrics.clone(),
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.metrics
            .client_connections
            .fetch_sub(1, Ordering::Relaxed);
        if self.conns.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.conns.none_open.notify_waiters();
        }
    }
}

impl Default for DataPlane {
    fn default() -> Self {
        DataPlane::new(Config::default())
    }
}

impl DataPlane {
    /// A plane serving nothing until the first `apply`; starts its worker threads (they end
    /// when the plane is dropped).
    pub fn new(config: Config) -> Self {
        DataPlane {
            workers: Arc::new(Workers::start(config.workers)),
            config,
            metrics: Arc::default(),
            conns: Arc::default(),
            backends: ArcSwap::from_pointee(Vec::new()),
            state: Mutex::new(PlaneState::default()),
        }
    }

    /// Serves `table` from now on (a hot reload when something is served already); returns the
    /// listeners that could not be bound.
    pub async fn apply(&self, table: Table) -> Vec<BindError> {
        let mut st = self.state.lock().await;
        let st = &mut *st;
        let compiled = self.compile(&table, st);

        let wanted: HashMap<&str, (SocketAddr, ListenerProtocol)> = table
            .listeners
            .iter()
            .map(|l| (l.id.as_str(), (l.bind, l.protocol)))
            .collect();
        let gone: Vec<String> = st
            .listeners
            .iter()
            .filter(|(id, r)| wanted.get(id.as_str()) != Some(&(r.bind, r.protocol)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(r) = st.listeners.remove(&id) {
                st.retired.push(close(r).await);
            }
        }
        st.retired.retain(|p| p.receiver_count() > 0);

        let mut errors = Vec::new();
        for (index, (l, rt)) in table.listeners.iter().zip(compiled).enumerate() {
            if let Some(r) = st.listeners.get(&l.id) {
                r.routes.store(Arc::new(rt));
                continue;
            }
            if l.bind.port() != 0 && st.listeners.values().any(|r| r.bind == l.bind) {
                errors.push(BindError {
                    listener: l.id.clone(),
                    addr: l.bind,
                    kind: io::ErrorKind::AddrInUse,
                    message: "another listener of the table has this address".into(),
                });
                continue;
            }
            match std::net::TcpListener::bind(l.bind)
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
            {
                Ok(socket) => {
                    let bound = socket.local_addr().unwrap_or(l.bind);
                    let routes = Arc::new(ArcSwap::from_pointee(rt));
                    let (phase, phase_rx) = watch::channel(Phase::Serve);
                    let on = index % self.workers.len();
                    let accept =
                        self.spawn_accept(on, socket, bound, l.protocol, routes.clone(), phase_rx);
                    st.listeners.insert(
                        l.id.clone(),
                        Running {
                            bind: l.bind,
                            bound,
                            protocol: l.protocol,
                            routes,
                            phase,
                            accept,
                        },
                    );
                }
                Err(e) => errors.push(BindError {
                    listener: l.id.clone(),
                    addr: l.bind,
                    kind: e.kind(),
                    message: e.to_string(),
                }),
            }
        }
        errors
    }

    /// The address a listener is bound to (useful when the table asked for port 0).
    pub async fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        let st = self.state.lock().await;
        st.listeners.get(listener).map(|r| r.bound)
    }

    /// Stops accepting on every listener, lets open connections finish their request in flight
    /// (waiting at most `shutdown_grace`), then cuts what is left and closes pooled connections.
    pub async fn shutdown(&self) {
        let mut st = self.state.lock().await;
        let running: Vec<Running> = st.listeners.drain().map(|(_, r)| r).collect();
        for r in running {
            let p = close(r).await;
            st.retired.push(p);
        }
        let wait = async {
            loop {
                let notified = self.conns.none_open.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.conns.open.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(self.config.shutdown_grace, wait).await;
        for p in st.retired.drain(..) {
            let _ = p.send(Phase::Stop);
        }
        for b in st.backends.values() {
            b.stop_pooling();
        }
        st.backends.clear();
        self.backends.store(Arc::new(Vec::new()));
    }

    /// The counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let backends = self
            .backends
            .load()
            .iter()
            .map(|b| BackendMetrics {
                addr: b.addr,
                active: b.outstanding.load(Ordering::Relaxed),
                requests: b.requests.load(Ordering::Relaxed),
                connect_failures: b.connect_failures.load(Ordering::Relaxed),
                idle_connections: b.idle_count() as u64,
            })
            .collect();
        self.metrics.snapshot(backends)
    }

    /// One `ListenerRt` per listener of the table, in order; updates the backend registry (and
    /// closes the pools of backends no group serves any more).
    fn compile(&self, table: &Table, st: &mut PlaneState) -> Vec<ListenerRt> {
        let mut backends: HashMap<SocketAddr, Arc<BackendState>> = HashMap::new();
        let mut serving: HashSet<SocketAddr> = HashSet::new();
        let mut ticks: HashMap<String, Arc<AtomicU64>> = HashMap::new();
        let mut groups: HashMap<&str, Arc<GroupRt>> = HashMap::new();
        let workers = self.workers.len();
        for (id, tg) in &table.target_groups {
            let mut state_of = |addr: SocketAddr| {
                backends
                    .entry(addr)
                    .or_insert_with(|| {
                        st.backends
                            .get(&addr)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(BackendState::new(addr, workers)))
                    })
                    .clone()
            };
            for t in &tg.targets {
                state_of(t.addr);
            }
            let routable = |r: Routing| tg.targets.iter().filter(move |t| t.routing == r);
            let chosen: Vec<_> = if routable(Routing::Serve).next().is_some() {
                routable(Routing::Serve).collect()
            } else {
                routable(Routing::Unhealthy).collect()
            };
            let members: Vec<Member> = chosen
                .into_iter()
                .map(|t| {
                    serving.insert(t.addr);
                    Member {
                        state: state_of(t.addr),
                        serving_since: t.serving_since,
                    }
                })
                .collect();
            let tick = st.ticks.get(id).cloned().unwrap_or_default();
            ticks.insert(id.clone(), tick.clone());
            let ramping =
                tg.slow_start_seconds > 0 && members.iter().any(|m| m.serving_since.is_some());
            groups.insert(
                id.as_str(),
                Arc::new(GroupRt {
                    algorithm: tg.algorithm,
                    slow_start_seconds: tg.slow_start_seconds,
                    members,
                    ramping,
                    tick,
                }),
            );
        }
        for (addr, b) in &backends {
            if serving.contains(addr) {
                b.pooling.store(true, Ordering::Relaxed);
            } else {
                b.stop_pooling();
            }
        }
        for (addr, b) in &st.backends {
            if !backends.contains_key(addr) {
                b.stop_pooling();
            }
        }
        let nowhere = Arc::new(GroupRt {
            algorithm: crate::table::Algorithm::RoundRobin,
            slow_start_seconds: 0,
            members: Vec::new(),
            ramping: false,
            tick: Arc::default(),
        });
        let listeners = table
            .listeners
            .iter()
            .map(|l| ListenerRt {
                rules: l
                    .rules
                    .iter()
                    .map(|r| RuleRt {
                        conditions: Conditions::new(&r.hosts, &r.paths),
                        groups: r
                            .forward
                            .iter()
                            .map(|f| {
                                groups
                                    .get(f.target_group.as_str())
                                    .cloned()
                                    .unwrap_or_else(|| nowhere.clone())
                            })
                            .collect(),
                        weights: r.forward.iter().map(|f| f.weight).collect(),
                    })
                    .collect(),
                idle_timeout: l
                    .idle_timeout_seconds
                    .map_or(self.config.idle_timeout, |s| {
                        Duration::from_secs(u64::from(s))
                    }),
            })
            .collect();
        let mut list: Vec<_> = backends.values().cloned().collect();
        list.sort_by_key(|b| b.addr);
        self.backends.store(Arc::new(list));
        st.backends = backends;
        st.ticks = ticks;
        listeners
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_accept(
        &self,
        on: usize,
        socket: std::net::TcpListener,
        bound: SocketAddr,
        protocol: ListenerProtocol,
        routes: Arc<ArcSwap<ListenerRt>>,
        mut phase: watch::Receiver<Phase>,
    ) -> JoinHandle<()> {
        let conns = self.conns.clone();
        let metrics = self.metrics.clone();
        let workers = self.workers.clone();
        let connect_timeout = self.config.connect_timeout;
        let serving = Arc::new(Serving {
            http: HttpCtx {
                routes: routes.clone(),
                metrics: metrics.clone(),
                connect_timeout,
                port: HeaderValue::from(bound.port()),
            },
            tcp: TcpCtx {
                routes: routes.clone(),
                connect_timeout,
            },
            protocol,
        });
        self.workers.spawn(on, async move {
            let socket = match TcpListener::from_std(socket) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(listener = %bound, error = %e, "listener socket");
                    return;
                }
            };
            loop {
                let accepted = tokio::select! {
                    biased;
                    changed = phase.changed() => match changed {
                        Ok(()) if *phase.borrow() == Phase::Serve => continue,
                        _ => break,
                    },
                    accepted = socket.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off rather than spin.
                        tracing::warn!(listener = %bound, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let guard = ConnGuard::new(&conns, &metrics);
                let w = workers.pick();
                let place = OnWorker::new(&workers, w);
                let (serving, phase, idle) =
                    (serving.clone(), phase.clone(), routes.load().idle_timeout);
                if w == workers::current() {
                    tokio::spawn(serve_conn(
                        stream,
                        peer,
                        serving,
                        idle,
                        phase,
                        (guard, place),
                    ));
                    continue;
                }
                // Hand the socket to the worker's own runtime (its I/O driver must own it).
                match stream.into_std() {
                    Ok(std_stream) => {
                        workers.spawn(w, async move {
                            match TcpStream::from_std(std_stream) {
                                Ok(stream) => {
                                    serve_conn(stream, peer, serving, idle, phase, (guard, place))
                                        .await
                                }
                                Err(e) => tracing::debug!(%peer, error = %e, "hand-over failed"),
                            }
                        });
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "hand-over failed"),
                }
            }
        })
    }
}

/// What every connection of one listener shares.
struct Serving {
    http: HttpCtx,
    tcp: TcpCtx,
    protocol: ListenerProtocol,
}

/// Serves one client connection on the current worker; the guards count it while it lives.
async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    serving: Arc<Serving>,
    idle: Duration,
    phase: watch::Receiver<Phase>,
    _guards: (ConnGuard, OnWorker),
) {
    match serving.protocol {
        ListenerProtocol::Http => serve_http(stream, peer, serving, idle, phase).await,
        ListenerProtocol::Tcp => serve_tcp(stream, peer, serving, phase).await,
    }
}

/// Stops a listener accepting and closes its socket; its connections get `Close`. Returns its
/// phase sender, to cut them later.
async fn close(r: Running) -> watch::Sender<Phase> {
    let _ = r.phase.send(Phase::Close);
    let _ = r.accept.await;
    r.phase
}

/// Waits for a phase past `Serve`; never returns if the sender is gone without one.
async fn next_phase(phase: &mut watch::Receiver<Phase>) -> Phase {
    loop {
        if phase.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        let p = *phase.borrow_and_update();
        if p != Phase::Serve {
            return p;
        }
    }
}

/// Serves one HTTP client connection until it closes, is idle for the idle timeout, or its
/// listener closes.
///
/// The idle timeout is watched per connection, not per request: a timer fires every `idle`,
/// and a connection that started no request since the previous firing is closed gracefully
/// (after the exchange in flight, if any). An idle connection so lives between one and two
/// idle timeouts, and a request costs no timer of its own for it.
async fn serve_http(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Serving>,
    idle: Duration,
    mut phase: watch::Receiver<Phase>,
) {
    let _ = stream.set_nodelay(true);
    let client = http::Peer::new(peer);
    let started = Arc::new(AtomicU64::new(0));
    let counter = started.clone();
    let svc = service_fn(move |req| {
        counter.fetch_add(1, Ordering::Relaxed);
        let (ctx, client) = (ctx.clone(), client.clone());
        async move { Ok::<_, Infallible>(http::handle(&ctx.http, req, client).await) }
    });
    // Vectored writes cost more than one copy for the small heads and bodies that dominate.
    let conn = hyper::server::conn::http1::Builder::new()
        .writev(false)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let watchdog = tokio::time::sleep(idle);
    tokio::pin!(watchdog);
    let mut seen = 0;
    let mut closing = *phase.borrow_and_update() != Phase::Serve;
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "client connection ended");
                }
                return;
            }
            () = watchdog.as_mut() => {
                let now = started.load(Ordering::Relaxed);
                if now == seen && !closing {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                seen = now;
                watchdog.as_mut().reset(tokio::time::Instant::now() + idle);
            }
            p = next_phase(&mut phase) => match p {
                Phase::Stop => return,
                _ if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ => {}
            }
        }
    }
}

async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Serving>,
    mut phase: watch::Receiver<Phase>,
) {
    let _ = stream.set_nodelay(true);
    let splice = tcp::serve(&ctx.tcp, stream, peer);
    tokio::pin!(splice);
    loop {
        tokio::select! {
            outcome = &mut splice => {
                tracing::trace!(%peer, ?outcome, "tcp connection ended");
                return;
            }
            p = next_phase(&mut phase) => if p == Phase::Stop { return },
        }
    }
}
