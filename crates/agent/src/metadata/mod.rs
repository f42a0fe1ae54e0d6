//! The task metadata endpoint (v4) and the task role credentials endpoint, as the ECS agent
//! serves them at `169.254.170.2` inside each task's network.
//!
//! What this is: [`TaskEndpoint`], one HTTP listener per agent on a port of its own, reached by
//! each task through NAT rules the task's owner installs ([`redirect`]), and the registry of
//! what it serves: each task's snapshot ([`documents::TaskView`], published by its owner as it
//! changes), the ids in its containers' URIs and its role's credentials (in memory only).
//! Routes:
//! - `GET /v4/ID`, `/v4/ID/task`: the container and task documents ([`documents`]);
//! - `GET /v4/ID/stats`, `/v4/ID/task/stats`: Docker's stats of the container, or of every
//!   container of the task by Docker id, as Docker's Engine API gives them;
//! - `GET /v2/credentials/ID`: the role's credentials, what the AWS SDKs' container credentials
//!   provider reads (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`);
//! - `GET` and `PUT /api/ID/task-protection/v1/state`: the task's scale-in protection, asked of
//!   the server ([`protection`]; `ECS_AGENT_URI` is `/api/ID`).
//!
//! The ids are random UUIDs (122 bits), and a request is answered only if it comes from the
//! task the id belongs to, where that can be told: a bridge task's request from one of its
//! containers' addresses, an awsvpc task's from its address, a host task's through the
//! loopback redirect. Anything else is answered like an unknown id.
//!
//! Which tasks it can reach ([`Reach`], found when the agent starts): bridge tasks when Docker's
//! bridge gateway is an address of the agent's network namespace (so the agent and the engine
//! share it: an agent in another namespace, as in `scripts/region`, cannot reach the
//! containers); awsvpc tasks likewise; host tasks when the engine uses the cgroupfs driver and a
//! cgroup v2 hierarchy is mounted (the rule matches the task's cgroup). `iptables` must work in
//! every case. A task the endpoint cannot reach runs without the variables, unless it has a task
//! role: then it fails to start, saying why.
//!
//! The same port number serves DNS over UDP for the tasks it reaches ([`dns`], the task
//! resolver: Cloud Map names answered by the server, other names forwarded to the host's
//! resolvers), reached through a second NAT rule per task for UDP port 53 of `169.254.170.2`;
//! bridge containers and awsvpc pause containers get `169.254.170.2` as their DNS server.
//!
//! What this is not: the decisions of when to ask for credentials (the task's owner) or the
//! issuing of them (the server).

pub mod credentials;
pub mod dns;
pub mod documents;
pub mod protection;
pub mod redirect;

use crate::runtime::Runtime;
use bytes::Bytes;
use documents::{NetworkView, TaskView};
use flotilla_protocol::RoleCredentials;
use http_body_util::Full;
use redirect::{Redirector, Rule, Source, Tag};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use tracing::{debug, info, warn};

/// The base URI of the endpoint, as containers see it.
pub const BASE_URI: &str = "http://169.254.170.2";
/// The variable with a container's metadata URI.
pub const METADATA_VARIABLE: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The variable with the path of the task's credentials.
pub const CREDENTIALS_VARIABLE: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
/// The ports the endpoint listens on are drawn from here: below the range Docker draws host
/// ports for published container ports from (the kernel's ephemeral range, 32768 and up), so
/// the endpoint never takes one Docker is about to use.
pub const PORT_RANGE: std::ops::Range<u16> = 20000..32768;

/// How a task's traffic to `169.254.170.2` reaches the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// From Docker's bridge: a DNAT to its gateway, matching each container's MAC address.
    Bridge {
        /// The bridge's gateway.
        gateway: Ipv4Addr,
    },
    /// From the task network: a DNAT to its gateway, matching the task's MAC address.
    Awsvpc {
        /// The task network's gateway.
        gateway: Ipv4Addr,
        /// The task's MAC address.
        mac: String,
    },
    /// From the host's own network: a REDIRECT matching the task's cgroup (v2).
    Host {
        /// Where the cgroup v2 hierarchy is mounted.
        cgroup2: PathBuf,
    },
}

/// Which tasks the endpoint can reach, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Bridge tasks: the gateway of Docker's bridge.
    pub bridge: Result<Ipv4Addr, String>,
    /// Host tasks: the cgroup v2 mount.
    pub host: Result<PathBuf, String>,
    /// awsvpc tasks (their network's gateway is checked per task).
    pub awsvpc: Result<(), String>,
}

impl Reach {
    /// None at all, for `why`.
    pub fn none(why: &str) -> Reach {
        Reach {
            bridge: Err(why.to_string()),
            host: Err(why.to_string()),
            awsvpc: Err(why.to_string()),
        }
    }

    /// Finds what the endpoint can reach on this host (see the module docs).
    pub async fn detect(runtime: &dyn Runtime, redirector: &dyn Redirector) -> Reach {
        if let Err(e) = redirector.check().await {
            return Reach::none(&format!("NAT rules cannot be installed ({e})"));
        }
        let bridge = match runtime.inspect_network("bridge").await {
            Ok(Some(n)) => bridge_gateway(&n.gateways, &n.subnets),
            Ok(None) => Err("Docker has no bridge network".to_string()),
            Err(e) => Err(format!("Docker's bridge network: {e}")),
        };
        if let Ok(gw) = &bridge {
            if !is_local(*gw) {
                return Reach::none(&format!(
                    "the agent runs in another network namespace than the Docker engine (the bridge's gateway {gw} is not an address of the agent's)"
                ));
            }
        }
        let driver = runtime
            .version()
            .await
            .map(|v| v.cgroup_driver)
            .unwrap_or_default();
        let host = if driver != "cgroupfs" {
            Err(format!(
                "host tasks are matched by their cgroup, which needs Docker's cgroupfs driver (this engine's is {driver:?})"
            ))
        } else {
            std::fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|t| cgroup2_mount(&t))
                .ok_or_else(|| {
                    "host tasks are matched by their cgroup v2 path, and no cgroup v2 hierarchy is mounted".to_string()
                })
        };
        Reach {
            bridge,
            host,
            awsvpc: Ok(()),
        }
    }

    /// How `network` tasks are reached (`mac`: an awsvpc task's), or why they are not.
    pub fn route(
        &self,
        network: &flotilla_model::shapes::NetworkMode,
        awsvpc: Option<&flotilla_protocol::TaskNetwork>,
    ) -> Result<Route, String> {
        use flotilla_model::shapes::NetworkMode;
        match (network, awsvpc) {
            (_, Some(n)) => {
                self.awsvpc.clone()?;
                let gateway: Ipv4Addr = n.gateway.parse().map_err(|_| {
                    format!(
                        "the task network's gateway {:?} is not an IPv4 address",
                        n.gateway
                    )
                })?;
                Ok(Route::Awsvpc {
                    gateway,
                    mac: n.mac_address.clone(),
                })
            }
            (NetworkMode::Bridge, None) => {
                self.bridge.clone().map(|gateway| Route::Bridge { gateway })
            }
            (NetworkMode::Host, None) => self.host.clone().map(|cgroup2| Route::Host { cgroup2 }),
            _ => Err("the task has no network".to_string()),
        }
    }
}

/// Whether `ip` is an address of this network namespace (a socket can be bound to it).
pub fn is_local(ip: Ipv4Addr) -> bool {
    std::net::TcpListener::bind((ip, 0)).is_ok()
}

/// An IPv4 CIDR as (network, prefix length).
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Some((Ipv4Addr::from(u32::from(ip) & mask), len))
}

/// Whether `ip` is in the network `(net, len)`.
pub fn in_subnet(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net)
}

/// The gateway of Docker's bridge: the one its IPAM names, else (Docker's default bridge names
/// none) the address this namespace sends from toward the bridge's subnet, when that address is
/// in the subnet (it is the bridge's own; otherwise the subnet is not a network of this
/// namespace).
fn bridge_gateway(gateways: &[String], subnets: &[String]) -> Result<Ipv4Addr, String> {
    if let Some(gw) = gateways.iter().find_map(|g| g.parse::<Ipv4Addr>().ok()) {
        return Ok(gw);
    }
    let Some(subnet) = subnets.iter().find_map(|s| parse_cidr(s)) else {
        return Err("Docker's bridge network has no IPv4 subnet".to_string());
    };
    // A UDP "connection" sends nothing: it only asks the kernel which source it would use.
    let probe = Ipv4Addr::from(u32::from(subnet.0) + 2);
    let local = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((probe, 9)).and_then(|()| s.local_addr()));
    match local {
        Ok(SocketAddr::V4(a)) if in_subnet(*a.ip(), subnet) => Ok(*a.ip()),
        _ => Err(format!(
            "the agent runs in another network namespace than the Docker engine (no address of the bridge's subnet {}/{} here)",
            subnet.0, subnet.1
        )),
    }
}

/// The mount point of the cgroup v2 hierarchy in a `/proc/self/mountinfo`.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// The cgroup v2 path of a task (relative to the hierarchy's root), which its containers
/// have as parent: `flotilla/TASK-ID`.
pub fn task_cgroup(task_id: &str) -> String {
    format!("{}/{task_id}", crate::cgroup::PARENT)
}

/// What an owner publishes about its task.
#[derive(Debug, Clone)]
pub struct Published {
    /// The snapshot the documents are built from.
    pub view: TaskView,
    /// The id of the task's credentials URI, when it has a role.
    pub credentials_id: Option<String>,
}

#[derive(Default)]
struct Registry {
    tasks: HashMap<String, Published>,
    credentials: HashMap<String, RoleCredentials>,
    /// Endpoint id -> (task ARN, container name).
    containers: HashMap<String, (String, String)>,
    /// Credentials id -> task ARN.
    credential_ids: HashMap<String, String>,
}

/// The endpoint (see the module docs).
pub struct TaskEndpoint {
    port: u16,
    reach: Reach,
    instance_id: String,
    runtime: Arc<dyn Runtime>,
    redirector: Arc<dyn Redirector>,
    registry: Mutex<Registry>,
    accept: Mutex<Option<tokio::task::AbortHandle>>,
    /// The task resolver's UDP server, once [`TaskEndpoint::serve_dns`] started it.
    dns: Mutex<Option<tokio::task::AbortHandle>>,
    /// Where task protection is asked ([`TaskEndpoint::serve_protection`]); `None`: the path
    /// answers that it is not served.
    protection: Mutex<Option<Arc<dyn protection::ProtectionSource>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for TaskEndpoint {
    fn drop(&mut self) {
        if let Some(a) = lock(&self.accept).take() {
            a.abort();
        }
        if let Some(a) = lock(&self.dns).take() {
            a.abort();
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `/v4/ID`.
    Container(String),
    /// `/v4/ID/task`.
    Task(String),
    /// `/v4/ID/stats`.
    ContainerStats(String),
    /// `/v4/ID/task/stats`.
    TaskStats(String),
    /// `/v2/credentials/ID`.
    Credentials(String),
    /// `/api/ID/task-protection/v1/state`.
    Protection(String),
}

impl Ask {
    /// The route of a path, if it is one (ids of the wrong shape are not).
    pub fn parse(path: &str) -> Option<Ask> {
        let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        let id_ok = |id: &str| credentials::is_endpoint_id(id).then(|| id.to_string());
        if let Some(id) = path.strip_prefix("/v2/credentials/") {
            return id_ok(id).map(Ask::Credentials);
        }
        if let Some(rest) = path.strip_prefix("/api/") {
            let id = rest.strip_suffix(protection::PATH)?;
            return id_ok(id).map(Ask::Protection);
        }
        let rest = path.strip_prefix("/v4/")?;
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let id = id_ok(id)?;
        match tail {
            "" => Some(Ask::Container(id)),
            "task" => Some(Ask::Task(id)),
            "stats" => Some(Ask::ContainerStats(id)),
            "task/stats" => Some(Ask::TaskStats(id)),
            _ => None,
        }
    }
}

/// Whether a request from `peer` to `local` may read a task of `network` whose containers
/// have `addresses`: `Some(verdict)`, or `None` when the bridge containers' addresses must be
/// read again (a container that just started).
pub fn source_allowed(
    network: &NetworkView,
    addresses: &[IpAddr],
    peer: IpAddr,
    local: IpAddr,
) -> Option<bool> {
    match network {
        NetworkView::Host => Some(local.is_loopback()),
        NetworkView::Awsvpc(n) => Some(n.private_ipv4_address.parse::<IpAddr>().ok() == Some(peer)),
        NetworkView::Bridge if addresses.contains(&peer) => Some(true),
        NetworkView::Bridge if peer.is_loopback() => Some(false),
        NetworkView::Bridge => None,
        NetworkView::None => Some(false),
    }
}

type Answer = (u16, Value);

/// The ECS agent's answer to a protection request it cannot tie to a task.
fn protection_lookup_failed() -> Answer {
    (
        404,
        serde_json::json!({"error": {"Code": "ResourceNotFoundException",
            "Message": "Failed to find a task for the request"}}),
    )
}

fn not_found(what: &str) -> Answer {
    (
        404,
        serde_json::json!({ "error": format!("{what} not found") }),
    )
}

impl TaskEndpoint {
    /// Starts the endpoint: listens on a port of its own on every address (requests are then
    /// checked against their task), finds what it can reach (unless `reach` is given), and
    /// removes the NAT rules a previous run of this agent left, and those of other agents whose
    /// task has no container left.
    pub async fn start(
        runtime: Arc<dyn Runtime>,
        redirector: Arc<dyn Redirector>,
        instance_id: &str,
        reach: Option<Reach>,
    ) -> Result<Arc<TaskEndpoint>, String> {
        let listener = bind_in_range().await?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("the endpoint's address: {e}"))?
            .port();
        let reach = match reach {
            Some(r) => r,
            None => Reach::detect(runtime.as_ref(), redirector.as_ref()).await,
        };
        for (what, r) in [
            ("bridge", reach.bridge.as_ref().err()),
            ("host", reach.host.as_ref().err()),
            ("awsvpc", reach.awsvpc.as_ref().err()),
        ] {
            if let Some(why) = r {
                warn!(network_mode = what, reason = %why, "the task metadata and credentials endpoint cannot reach these tasks: they run without it (and fail to start when they have a task role)");
            }
        }
        let endpoint = Arc::new(TaskEndpoint {
            port,
            reach,
            instance_id: instance_id.to_string(),
            runtime,
            redirector,
            registry: Mutex::new(Registry::default()),
            accept: Mutex::new(None),
            dns: Mutex::new(None),
            protection: Mutex::new(None),
        });
        endpoint.sweep().await;
        let weak = Arc::downgrade(&endpoint);
        let accept = tokio::spawn(accept_loop(listener, weak));
        *lock(&endpoint.accept) = Some(accept.abort_handle());
        info!(port, "task metadata and credentials endpoint listening");
        Ok(endpoint)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves the task resolver ([`dns`]) on UDP at the endpoint's port number, answering
    /// Cloud Map names from `source` and forwarding the others to `upstreams`.
    pub async fn serve_dns(
        self: &Arc<Self>,
        source: Arc<dyn dns::NameSource>,
        upstreams: Vec<SocketAddr>,
    ) -> Result<(), String> {
        let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, self.port))
            .await
            .map_err(|e| {
                format!(
                    "the task resolver cannot listen on UDP port {}: {e}",
                    self.port
                )
            })?;
        if upstreams.is_empty() {
            warn!(
                "the host has no resolver in /etc/resolv.conf: tasks resolve only Cloud Map names"
            );
        }
        let resolver = Arc::new(dns::Resolver::new(source, upstreams));
        let task = tokio::spawn(dns::serve_udp(socket, resolver, Arc::downgrade(self)));
        *lock(&self.dns) = Some(task.abort_handle());
        info!(port = self.port, "task resolver listening (UDP)");
        Ok(())
    }

    /// Serves the task protection path, asking `source` (the server).
    pub fn serve_protection(&self, source: Arc<dyn protection::ProtectionSource>) {
        *lock(&self.protection) = Some(source);
    }

    /// Whether the task resolver is served (tasks then get `169.254.170.2` as DNS server).
    pub fn serves_dns(&self) -> bool {
        lock(&self.dns).is_some()
    }

    /// The rule that sends `source`'s DNS queries to the task resolver, tagged with `task_arn`.
    pub fn dns_rule(&self, task_arn: &str, source: &Source, gateway: Option<Ipv4Addr>) -> Rule {
        Rule::dns_to_endpoint(
            source,
            gateway,
            self.port,
            &Tag {
                instance_id: self.instance_id.clone(),
                task_arn: task_arn.to_string(),
            },
        )
    }

    /// Whether `peer` is an address of a task the endpoint serves (an awsvpc task's, a bridge
    /// container's; a bridge container that just started is inspected).
    pub async fn is_task_address(&self, peer: IpAddr) -> bool {
        let views: Vec<TaskView> = lock(&self.registry)
            .tasks
            .values()
            .map(|p| p.view.clone())
            .collect();
        let mut unknown = Vec::new();
        for v in &views {
            let known: Vec<IpAddr> = v
                .containers
                .iter()
                .filter_map(|c| c.ip_address.as_deref()?.parse().ok())
                .collect();
            match source_allowed(&v.network, &known, peer, IpAddr::V4(Ipv4Addr::UNSPECIFIED)) {
                Some(true) if v.network != NetworkView::Host => return true,
                None => unknown.extend(
                    v.containers
                        .iter()
                        .filter(|c| c.ip_address.is_none())
                        .filter_map(|c| c.docker_id.clone()),
                ),
                _ => {}
            }
        }
        for id in unknown {
            if let Ok(info) = self.runtime.inspect(&id).await {
                if info.ip_address.as_deref().and_then(|a| a.parse().ok()) == Some(peer) {
                    return true;
                }
            }
        }
        false
    }

    /// What it can reach.
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    async fn sweep(&self) {
        if self.reach.bridge.is_err() && self.reach.host.is_err() && self.reach.awsvpc.is_err() {
            return;
        }
        let rules = match self.redirector.list().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot list NAT rules to remove stale ones");
                return;
            }
        };
        let mut live = HashSet::new();
        let others: HashSet<String> = rules
            .iter()
            .filter_map(Rule::tag)
            .filter(|t| t.instance_id != self.instance_id)
            .map(|t| t.task_arn)
            .collect();
        for arn in others {
            match self
                .runtime
                .list(flotilla_protocol::labels::TASK_ARN, &arn)
                .await
            {
                Ok(found) if found.is_empty() => {}
                // Found, or unknown: kept.
                _ => {
                    live.insert(arn);
                }
            }
        }
        for r in redirect::stale(&rules, &self.instance_id, |arn| live.contains(arn)) {
            match self.redirector.remove(r).await {
                Ok(()) => debug!(rule = %r.args.join(" "), "stale NAT rule removed"),
                Err(e) => warn!(error = %e, "cannot remove a stale NAT rule"),
            }
        }
    }

    /// The rule that sends `source`'s traffic to this endpoint, tagged with `task_arn`.
    pub fn rule(&self, task_arn: &str, source: &Source, gateway: Option<Ipv4Addr>) -> Rule {
        Rule::to_endpoint(
            source,
            gateway,
            self.port,
            &Tag {
                instance_id: self.instance_id.clone(),
                task_arn: task_arn.to_string(),
            },
        )
    }

    /// Installs a rule.
    pub async fn install(&self, rule: &Rule) -> Result<(), String> {
        self.redirector.install(rule).await
    }

    /// Removes a rule.
    pub async fn remove(&self, rule: &Rule) -> Result<(), String> {
        self.redirector.remove(rule).await
    }

    /// Publishes (or replaces) a task's snapshot.
    pub fn publish(&self, p: Published) {
        let mut r = lock(&self.registry);
        let arn = p.view.task_arn.clone();
        r.containers.retain(|_, (t, _)| *t != arn);
        r.credential_ids.retain(|_, t| *t != arn);
        for c in &p.view.containers {
            if let Some(id) = &c.endpoint_id {
                r.containers
                    .insert(id.clone(), (arn.clone(), c.name.clone()));
            }
        }
        if let Some(id) = &p.credentials_id {
            r.credential_ids.insert(id.clone(), arn.clone());
        }
        r.tasks.insert(arn, p);
    }

    /// Sets a task's role credentials (served from now on).
    pub fn set_credentials(&self, task_arn: &str, c: RoleCredentials) {
        lock(&self.registry)
            .credentials
            .insert(task_arn.to_string(), c);
    }

    /// Forgets a task: its documents and credentials are not served any more.
    pub fn withdraw(&self, task_arn: &str) {
        let mut r = lock(&self.registry);
        r.tasks.remove(task_arn);
        r.credentials.remove(task_arn);
        r.containers.retain(|_, (t, _)| t != task_arn);
        r.credential_ids.retain(|_, t| t != task_arn);
    }

    /// Whether a task is published (tests).
    pub fn serves(&self, task_arn: &str) -> bool {
        lock(&self.registry).tasks.contains_key(task_arn)
    }

    /// Answers one request (`body`: what a `PUT` sent).
    pub async fn answer(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        peer: IpAddr,
        local: IpAddr,
    ) -> Answer {
        let Some(ask) = Ask::parse(path) else {
            return not_found("path");
        };
        let protection = matches!(ask, Ask::Protection(_));
        match method {
            "GET" => {}
            "PUT" if protection => {}
            _ if protection => {
                return (
                    405,
                    serde_json::json!({"error": "only GET and PUT are served"}),
                )
            }
            _ => return (405, serde_json::json!({"error": "only GET is served"})),
        }
        let id = match &ask {
            Ask::Container(id)
            | Ask::Task(id)
            | Ask::ContainerStats(id)
            | Ask::TaskStats(id)
            | Ask::Credentials(id)
            | Ask::Protection(id) => id.clone(),
        };
        if protection && method == "PUT" {
            // The ECS agent reads the body before it looks the task up.
            if let Err(a) = protection::parse_update(body, "") {
                if a.1["error"]["Message"] == protection::DECODE_FAILED {
                    return a;
                }
            }
        }
        // Resolve under the lock, act after it.
        let found = {
            let r = lock(&self.registry);
            let task_arn = match &ask {
                Ask::Credentials(_) => r.credential_ids.get(&id).cloned(),
                _ => r.containers.get(&id).map(|(t, _)| t.clone()),
            };
            task_arn.and_then(|arn| {
                let p = r.tasks.get(&arn)?.clone();
                let container = r.containers.get(&id).map(|(_, c)| c.clone());
                let creds = r.credentials.get(&arn).cloned();
                Some((p, container, creds))
            })
        };
        let Some((p, container, creds)) = found else {
            if protection {
                return protection_lookup_failed();
            }
            return not_found(if matches!(ask, Ask::Credentials(_)) {
                "credentials"
            } else {
                "container"
            });
        };
        if !self.allowed(&p.view, peer, local).await {
            debug!(task = %p.view.task_arn, peer = %peer, "endpoint request from outside the task refused");
            if protection {
                return protection_lookup_failed();
            }
            return not_found("container");
        }
        if protection {
            return self
                .protection(method, body, &p.view.task_arn, creds.is_some())
                .await;
        }
        let mut p = p;
        if !matches!(ask, Ask::Credentials(_)) {
            self.freshen(&mut p.view).await;
        }
        let view = &p.view;
        let meta = || {
            container
                .as_ref()
                .and_then(|n| view.containers.iter().find(|c| c.name == *n))
        };
        match ask {
            Ask::Protection(_) => protection_lookup_failed(),
            Ask::Credentials(_) => match creds {
                Some(c) => (200, documents::credentials_document(&c)),
                None => not_found("credentials"),
            },
            Ask::Container(_) => match meta() {
                Some(c) => (200, documents::container_document(view, c)),
                None => not_found("container"),
            },
            Ask::Task(_) => (200, documents::task_document(view)),
            Ask::ContainerStats(_) => match meta().and_then(|c| c.docker_id.clone()) {
                Some(id) => match self.runtime.stats_document(&id).await {
                    Ok(v) => (200, v),
                    Err(e) => (500, serde_json::json!({"error": e.to_string()})),
                },
                None => (200, Value::Null),
            },
            Ask::TaskStats(_) => {
                let mut out = serde_json::Map::new();
                for c in &view.containers {
                    if let Some(id) = &c.docker_id {
                        let v = self.runtime.stats_document(id).await.unwrap_or(Value::Null);
                        out.insert(id.clone(), v);
                    }
                }
                (200, Value::Object(out))
            }
        }
    }

    /// A task protection request of `task_arn` (whose role credentials the agent holds, or
    /// not), answered as the ECS agent answers it.
    async fn protection(
        &self,
        method: &str,
        body: &[u8],
        task_arn: &str,
        has_credentials: bool,
    ) -> Answer {
        let request = if method == "PUT" {
            match protection::parse_update(body, task_arn) {
                Ok(r) => r,
                Err(a) => return a,
            }
        } else {
            protection::Request::Get
        };
        if !has_credentials {
            return protection::no_credentials(task_arn);
        }
        let source = lock(&self.protection).clone();
        let Some(source) = source else {
            return (
                503,
                serde_json::json!({"error": {"Arn": task_arn, "Code": "ServerException",
                    "Message": "Task protection is not served by this agent"}}),
            );
        };
        let cluster = flotilla_model::arn::embedded_cluster(task_arn).unwrap_or_default();
        let (operation, call) = protection::server_call(&request, cluster, task_arn);
        let result = source.call(operation, call).await;
        protection::render(result, task_arn)
    }

    /// Fills in what the owner has not seen yet of a container that just started (its owner
    /// publishes before starting it, and observes it a moment later): its status, address and
    /// times, read now.
    async fn freshen(&self, view: &mut TaskView) {
        let bridge = view.network == NetworkView::Bridge;
        for c in &mut view.containers {
            let stale = c.known_status == "PENDING"
                || c.started_at.is_none()
                || (bridge && c.ip_address.is_none());
            let Some(id) = c.docker_id.clone().filter(|_| stale) else {
                continue;
            };
            if let Ok(info) = self.runtime.inspect(&id).await {
                if info.running {
                    c.known_status = "RUNNING".to_string();
                }
                c.ip_address = c.ip_address.take().or(info.ip_address);
                c.started_at = c.started_at.take().or(info.started_at);
                c.created_at = c.created_at.take().or(info.created_at);
                c.image_id = c.image_id.take().or(info.image_id);
            }
        }
    }

    async fn allowed(&self, view: &TaskView, peer: IpAddr, local: IpAddr) -> bool {
        let known: Vec<IpAddr> = view
            .containers
            .iter()
            .filter_map(|c| c.ip_address.as_deref()?.parse().ok())
            .collect();
        if let Some(v) = source_allowed(&view.network, &known, peer, local) {
            return v;
        }
        // A bridge container that just started: its address, read now.
        for c in &view.containers {
            if let Some(id) = &c.docker_id {
                if let Ok(info) = self.runtime.inspect(id).await {
                    if info.ip_address.as_deref().and_then(|a| a.parse().ok()) == Some(peer) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// Listens on a free port of [`PORT_RANGE`].
async fn bind_in_range() -> Result<tokio::net::TcpListener, String> {
    use rand::Rng;
    let mut last = String::new();
    for _ in 0..64 {
        let port = rand::thread_rng().gen_range(PORT_RANGE);
        match tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!(
        "no free port for the task endpoint in {PORT_RANGE:?}: {last}"
    ))
}

async fn accept_loop(listener: tokio::net::TcpListener, endpoint: Weak<TaskEndpoint>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "task endpoint accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let Some(ep) = endpoint.upgrade() else {
            return;
        };
        tokio::spawn(serve_connection(stream, peer, local, Arc::downgrade(&ep)));
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    endpoint: Weak<TaskEndpoint>,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let endpoint = endpoint.clone();
        async move {
            use http_body_util::BodyExt;
            let (parts, incoming) = req.into_parts();
            // A request body is small (a protection change); more than 64 KiB is not one.
            let body = http_body_util::Limited::new(incoming, 64 * 1024)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let (status, body) = match endpoint.upgrade() {
                Some(ep) => {
                    ep.answer(
                        parts.method.as_str(),
                        parts.uri.path(),
                        &body,
                        peer.ip(),
                        local.ip(),
                    )
                    .await
                }
                None => (503, serde_json::json!({"error": "the agent is stopping"})),
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let mut resp = hyper::Response::new(Full::new(Bytes::from(bytes)));
            *resp.status_mut() = hyper::StatusCode::from_u16(status)
                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    // A connection that says nothing for long is dropped.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), conn).await;
}

/// Removes the cgroup v2 directory of a host task (after its rule; absent is fine).
pub fn remove_task_cgroup(cgroup2: &Path, task_id: &str) {
    let dir = cgroup2.join(task_cgroup(task_id));
    if let Err(e) = std::fs::remove_dir(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            debug!(dir = %dir.display(), error = %e, "task cgroup not removed yet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_by_id_shape() {
        let id = "0b6f1f7e-3c1d-4a2b-9f00-0123456789ab";
        assert_eq!(
            Ask::parse(&format!("/v4/{id}")),
            Some(Ask::Container(id.into()))
        );
        assert_eq!(
            Ask::parse(&format!("/v4/{id}/")),
            Some(Ask::Container(id.into()))
        );
        assert_eq!(
            Ask::parse(&format!("/v4/{id}/task")),
            Some(Ask::Task(id.into()))
        );
        assert_eq!(
            Ask::parse(&format!("/v4/{id}/task/stats")),
            Some(Ask::TaskStats(id.into()))
        );
        assert_eq!(
            Ask::parse(&format!("/v4/{id}/stats?x=1")),
            Some(Ask::ContainerStats(id.into()))
        );
        assert_eq!(
            Ask::parse(&format!("/v2/credentials/{id}")),
            Some(Ask::Credentials(id.into()))
        );
        assert_eq!(Ask::parse("/v2/credentials/abc"), None);
        assert_eq!(
            Ask::parse(&format!("/api/{id}/task-protection/v1/state")),
            Some(Ask::Protection(id.into()))
        );
        assert_eq!(Ask::parse(&format!("/api/{id}/other")), None);
        assert_eq!(Ask::parse("/api/x/task-protection/v1/state"), None);
        assert_eq!(Ask::parse(&format!("/v4/{id}/nope")), None);
        assert_eq!(Ask::parse("/v3/x"), None);
    }

    #[test]
    fn sources_are_checked_per_network() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let lo = ip("127.0.0.1");
        assert_eq!(
            source_allowed(&NetworkView::Host, &[], ip("192.0.2.2"), lo),
            Some(true)
        );
        assert_eq!(
            source_allowed(&NetworkView::Host, &[], ip("172.17.0.3"), ip("172.17.0.1")),
            Some(false)
        );
        let known = [ip("172.17.0.3")];
        let gw = ip("172.17.0.1");
        assert_eq!(
            source_allowed(&NetworkView::Bridge, &known, ip("172.17.0.3"), gw),
            Some(true)
        );
        assert_eq!(
            source_allowed(&NetworkView::Bridge, &known, ip("172.17.0.4"), gw),
            None
        );
        assert_eq!(
            source_allowed(&NetworkView::Bridge, &known, lo, lo),
            Some(false)
        );
        assert_eq!(
            source_allowed(&NetworkView::None, &known, ip("172.17.0.3"), gw),
            Some(false)
        );
    }

    #[test]
    fn subnets_parse_and_contain() {
        let net = parse_cidr("172.17.0.0/16").unwrap();
        assert_eq!(net, (Ipv4Addr::new(172, 17, 0, 0), 16));
        assert_eq!(
            parse_cidr("10.213.5.7/16"),
            Some((Ipv4Addr::new(10, 213, 0, 0), 16))
        );
        assert!(in_subnet(Ipv4Addr::new(172, 17, 0, 1), net));
        assert!(!in_subnet(Ipv4Addr::new(172, 18, 0, 1), net));
        assert_eq!(parse_cidr("0.0.0.0/0"), Some((Ipv4Addr::UNSPECIFIED, 0)));
        assert!(in_subnet(
            Ipv4Addr::new(1, 2, 3, 4),
            (Ipv4Addr::UNSPECIFIED, 0)
        ));
        assert_eq!(parse_cidr("1.2.3.4/33"), None);
        assert_eq!(parse_cidr("x/8"), None);
        assert_eq!(
            bridge_gateway(&["172.17.0.1".into()], &[]),
            Ok(Ipv4Addr::new(172, 17, 0, 1))
        );
        assert!(bridge_gateway(&[], &[]).is_err());
    }

    #[test]
    fn the_cgroup2_mount_is_found_in_mountinfo() {
        let hybrid = "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
            35 30 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n\
            36 30 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let v1 = "36 30 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(cgroup2_mount(v1), None);
        assert_eq!(task_cgroup("abc"), "flotilla/abc");
    }

    #[test]
    fn routes_follow_the_network_mode_and_what_is_reachable() {
        use flotilla_model::shapes::NetworkMode;
        let gw = Ipv4Addr::new(172, 17, 0, 1);
        let reach = Reach {
            bridge: Ok(gw),
            host: Err("no cgroup v2".into()),
            awsvpc: Ok(()),
        };
        assert_eq!(
            reach.route(&NetworkMode::Bridge, None),
            Ok(Route::Bridge { gateway: gw })
        );
        assert_eq!(
            reach.route(&NetworkMode::Host, None),
            Err("no cgroup v2".into())
        );
        assert!(reach.route(&NetworkMode::None, None).is_err());
        assert!(Reach::none("x").route(&NetworkMode::Bridge, None).is_err());
    }
}
