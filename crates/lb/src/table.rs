//! What the data plane serves: listeners, their rules, and target groups with their backends.
//!
//! Pure data, built by whoever owns the records (the integrator maps Elastic Load Balancing v2
//! records onto it) and handed whole to [`crate::DataPlane::apply`]. It serialises as JSON so a
//! table can also be served from a file (`examples/lb_serve.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Everything the data plane serves at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub listeners: Vec<Listener>,
    /// Target groups by id (the id a [`WeightedGroup`] names).
    pub target_groups: BTreeMap<String, TargetGroup>,
}

/// One bound port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    /// Stable identity across reloads: a listener whose id, bind and protocol stay the same keeps
    /// its socket and its connections while its rules change.
    pub id: String,
    pub bind: SocketAddr,
    pub protocol: ListenerProtocol,
    /// In priority order, the default rule last. HTTP listeners take the first rule whose
    /// conditions match; TCP listeners use the last rule (their default action).
    pub rules: Vec<Rule>,
    /// How long a request may wait for its target's response headers before the client gets a
    /// 504 (ALB's `idle_timeout.timeout_seconds`); `None` takes the plane's default (60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerProtocol {
    /// Application load balancer: HTTP/1.1, routed per request.
    Http,
    /// Network load balancer: bytes spliced per connection.
    Tcp,
}

/// A listener rule: all its conditions must match (an empty list matches anything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// `host-header` values; `*` matches any run of characters, `?` exactly one; case-insensitive;
    /// the request's `:port` is ignored. One of them must match.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `path-pattern` values, matched case-sensitively against the path (not the query string).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Where matching requests go: one target group chosen by weight per request.
    pub forward: Vec<WeightedGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedGroup {
    pub target_group: String,
    /// Relative share of requests (ALB: 0-999). A group with weight 0 gets none, unless every
    /// group of the rule has weight 0, in which case they share equally.
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub id: String,
    pub algorithm: Algorithm,
    /// The ramp of a newly serving backend's share (0 = off; ALB: 30-900).
    #[serde(default)]
    pub slow_start_seconds: u32,
    pub targets: Vec<Backend>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    RoundRobin,
    /// HTTP: the backend with the fewest requests in flight; TCP: the fewest open connections.
    LeastOutstandingRequests,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    pub addr: SocketAddr,
    pub routing: Routing,
    /// When the backend began serving, in seconds since the Unix epoch: slow start ramps its
    /// share from this moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_since: Option<f64>,
}

/// What the data plane may send a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Routing {
    /// Healthy: gets new requests and connections.
    Serve,
    /// Deregistering: no new requests; requests in flight and their connections finish; its
    /// idle pooled connections are closed.
    Drain,
    /// Failing its health checks: gets nothing, unless no backend of its group is `Serve`; then
    /// the group fails open and every `Unhealthy` backend serves (ALB's behaviour).
    Unhealthy,
    /// Not routable for any other reason (initial, unused, unavailable): gets nothing, ever.
    Skip,
}
