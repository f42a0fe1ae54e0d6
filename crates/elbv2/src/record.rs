//! The records Elastic Load Balancing keeps in the store, and ELB's rules for them (pure, no
//! store, no clock).
//!
//! - [`LoadBalancerRecord`] at `elbv2/load-balancers/NAME`: type (application or network),
//!   scheme, DNS name, zones, attributes, tags.
//! - [`ListenerRecord`] at `elbv2/listeners/LBNAME/ID`: port, protocol, the default action and
//!   every rule ([`RuleRecord`]: priority, conditions, action), so a listener's priorities are
//!   unique by one compare-and-swap.
//! - [`TargetGroupRecord`] at `elbv2/target-groups/NAME`: protocol, port, target type, the
//!   health check ([`HealthCheck`], ELB's defaults per protocol), attributes, tags, and
//!   `used_by`: the listeners that forward to it, written in the same transaction as those
//!   listeners, so "in use" is never stale.
//! - [`TargetsRecord`] at `elbv2/targets/NAME`: the group's registered targets and their
//!   health ([`crate::health::Target`]), apart from the group so health writes never contend
//!   with configuration writes.
//!
//! What is served: application load balancers with HTTP listeners and network load balancers
//! with TCP listeners; forward actions (one target group, or several weighted); rule conditions
//! `path-pattern` and `host-header`; target types `ip` and `instance`; target group protocols
//! HTTP and TCP. Everything else is refused by the rules here with a clear error.

use crate::error::Elbv2Error;
use crate::health::Thresholds;
use crate::shapes;
use crate::ErrorShape;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: Option<String>,
}

/// How many tags a resource may have.
pub const MAX_TAGS: usize = 50;

/// Adds (or overwrites) `new` on `tags`: a key twice in one request is `DuplicateTagKeys`,
/// more than [`MAX_TAGS`] in all `TooManyTags`.
pub fn add_tags(tags: &mut Vec<Tag>, new: &[shapes::Tag]) -> Result<(), Elbv2Error> {
    let mut seen = BTreeSet::new();
    for t in new {
        if !seen.insert(t.key.as_str()) {
            return Err(Elbv2Error::new(
                ErrorShape::DuplicateTagKeysException,
                format!("Tag key '{}' is duplicated", t.key),
            ));
        }
        if t.key.starts_with("aws:") {
            return Err(Elbv2Error::validation(format!(
                "Tag key '{}' cannot start with 'aws:'",
                t.key
            )));
        }
    }
    for t in new {
        match tags.iter_mut().find(|x| x.key == t.key) {
            Some(x) => x.value = t.value.clone(),
            None => tags.push(Tag {
                key: t.key.clone(),
                value: t.value.clone(),
            }),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Elbv2Error::new(
            ErrorShape::TooManyTagsException,
            format!("A resource can have at most {MAX_TAGS} tags"),
        ));
    }
    Ok(())
}

/// The tags as the model shows them.
pub fn tags_view(tags: &[Tag]) -> Vec<shapes::Tag> {
    tags.iter()
        .map(|t| shapes::Tag {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect()
}

/// A name of a load balancer or target group: at most 32 alphanumerics and hyphens, not
/// beginning or ending with a hyphen. `what` is "Load balancer" or "Target group".
pub fn check_name(name: &str, what: &str) -> Result<(), Elbv2Error> {
    if name.is_empty() || name.len() > 32 {
        return Err(Elbv2Error::validation(format!(
            "{what} name '{name}' cannot be longer than '32' characters or empty"
        )));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Elbv2Error::validation(format!(
            "{what} name '{name}' can only contain characters that are alphanumeric characters or hyphens(-)"
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(Elbv2Error::validation(format!(
            "{what} name '{name}' cannot begin or end with '-' character"
        )));
    }
    if what == "Load balancer" && name.starts_with("internal-") {
        return Err(Elbv2Error::validation(format!(
            "Load balancer name '{name}' cannot begin with 'internal-'"
        )));
    }
    Ok(())
}

/// A load balancer's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbKind {
    /// `application`: HTTP listeners, rules.
    Application,
    /// `network`: TCP listeners.
    Network,
}

impl LbKind {
    /// The ARN's kind (`app`, `net`).
    pub fn arn_kind(self) -> &'static str {
        match self {
            LbKind::Application => "app",
            LbKind::Network => "net",
        }
    }
    /// The model's type.
    pub fn shape(self) -> shapes::LoadBalancerTypeEnum {
        match self {
            LbKind::Application => shapes::LoadBalancerTypeEnum::Application,
            LbKind::Network => shapes::LoadBalancerTypeEnum::Network,
        }
    }
    /// The listener protocol served on it.
    pub fn listener_protocol(self) -> Protocol {
        match self {
            LbKind::Application => Protocol::Http,
            LbKind::Network => Protocol::Tcp,
        }
    }
}

/// A protocol Flotilla serves (listeners, target groups, health checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// HTTP.
    Http,
    /// TCP.
    Tcp,
}

impl Protocol {
    /// The model's value.
    pub fn shape(self) -> shapes::ProtocolEnum {
        match self {
            Protocol::Http => shapes::ProtocolEnum::Http,
            Protocol::Tcp => shapes::ProtocolEnum::Tcp,
        }
    }
    /// The protocol a model value names, or why it is not served (`what`: "target group",
    /// "listener", "health check").
    pub fn served(p: shapes::ProtocolEnum, what: &str) -> Result<Self, Elbv2Error> {
        match p {
            shapes::ProtocolEnum::Http => Ok(Protocol::Http),
            shapes::ProtocolEnum::Tcp => Ok(Protocol::Tcp),
            other => Err(Elbv2Error::new(
                ErrorShape::UnsupportedProtocolException,
                format!(
                    "Protocol '{other}' is not served by Flotilla for a {what}: use HTTP (application load balancers) or TCP (network load balancers); Flotilla manages no certificates, so HTTPS and TLS are not available"
                ),
            )),
        }
    }
}

/// A stored load balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerRecord {
    /// The name (unique in the region).
    pub name: String,
    /// The ARN.
    pub arn: String,
    /// The id (the ARN's last part).
    pub id: String,
    /// application or network.
    pub kind: LbKind,
    /// `internet-facing` or `internal`.
    pub scheme: String,
    /// The DNS name.
    pub dns_name: String,
    /// When it was created.
    pub created: f64,
    /// The VPC it is said to be in.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Its zones: (zone name, subnet id).
    #[serde(default)]
    pub zones: Vec<(String, String)>,
    /// Its security groups (application load balancers).
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Its attributes, every key set.
    pub attributes: BTreeMap<String, String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// The hosted zone id Flotilla's load balancer DNS names are shown in.
pub const HOSTED_ZONE_ID: &str = "ZFLOTILLAELB01";

/// The DNS name of a load balancer: `NAME-DIGITS.REGION.elb.flotilla.internal`, with
/// `internal-` before an internal one's, as ELB does.
pub fn dns_name(name: &str, digits: u64, region: &str, internal: bool) -> String {
    let prefix = if internal { "internal-" } else { "" };
    format!(
        "{prefix}{name}-{:010}.{region}.elb.flotilla.internal",
        digits % 10_000_000_000
    )
}

impl LoadBalancerRecord {
    /// As the model shows it.
    pub fn view(&self) -> shapes::LoadBalancer {
        shapes::LoadBalancer {
            load_balancer_arn: Some(self.arn.clone()),
            dns_name: Some(self.dns_name.clone()),
            canonical_hosted_zone_id: Some(HOSTED_ZONE_ID.into()),
            created_time: Some(self.created),
            load_balancer_name: Some(self.name.clone()),
            scheme: shapes::LoadBalancerSchemeEnum::parse(&self.scheme),
            vpc_id: self.vpc_id.clone(),
            state: Some(shapes::LoadBalancerState {
                code: Some(shapes::LoadBalancerStateEnum::Active),
                reason: None,
            }),
            r#type: Some(self.kind.shape()),
            availability_zones: Some(
                self.zones
                    .iter()
                    .map(|(zone, subnet)| shapes::AvailabilityZone {
                        zone_name: Some(zone.clone()),
                        subnet_id: Some(subnet.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            security_groups: (self.kind == LbKind::Application)
                .then(|| self.security_groups.clone()),
            ip_address_type: Some(shapes::IpAddressType::Ipv4),
            ..Default::default()
        }
    }
}

/// A load balancer's attributes and their defaults, per type.
pub fn lb_attribute_defaults(kind: LbKind) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        ("deletion_protection.enabled", "false"),
        ("access_logs.s3.enabled", "false"),
        ("access_logs.s3.bucket", ""),
        ("access_logs.s3.prefix", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    match kind {
        LbKind::Application => {
            m.insert("idle_timeout.timeout_seconds".into(), "60".into());
            m.insert("routing.http2.enabled".into(), "true".into());
            m.insert(
                "routing.http.drop_invalid_header_fields.enabled".into(),
                "false".into(),
            );
        }
        LbKind::Network => {
            m.insert("load_balancing.cross_zone.enabled".into(), "false".into());
        }
    }
    m
}

fn boolean(key: &str, value: &str) -> Result<(), Elbv2Error> {
    match value {
        "true" | "false" => Ok(()),
        _ => Err(Elbv2Error::validation(format!(
            "The value of '{key}' must be 'true' or 'false', not '{value}'"
        ))),
    }
}

fn integer_in(key: &str, value: &str, lo: i64, hi: i64) -> Result<(), Elbv2Error> {
    match value.parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(()),
        _ => Err(Elbv2Error::validation(format!(
            "The value of '{key}' must be an integer between {lo} and {hi}, not '{value}'"
        ))),
    }
}

/// Applies ModifyLoadBalancerAttributes' changes to `attrs` (every key of a load balancer of
/// `kind`), or refuses an unknown key or bad value.
pub fn apply_lb_attributes(
    kind: LbKind,
    attrs: &mut BTreeMap<String, String>,
    changes: &[(String, String)],
) -> Result<(), Elbv2Error> {
    for (key, value) in changes {
        if !attrs.contains_key(key) {
            return Err(Elbv2Error::validation(format!(
                "Load balancer attribute key '{key}' is not recognized for a load balancer of type '{}' (Flotilla serves: {})",
                kind.shape(),
                attrs.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        match key.as_str() {
            "idle_timeout.timeout_seconds" => integer_in(key, value, 1, 4000)?,
            "access_logs.s3.enabled" => {
                boolean(key, value)?;
                if value == "true" {
                    return Err(Elbv2Error::invalid_configuration(
                        "Flotilla does not write access logs to S3: leave 'access_logs.s3.enabled' false",
                    ));
                }
            }
            "access_logs.s3.bucket" | "access_logs.s3.prefix" => {}
            _ => boolean(key, value)?,
        }
    }
    for (key, value) in changes {
        attrs.insert(key.clone(), value.clone());
    }
    Ok(())
}

/// A target group's target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Targets are container instances, by EC2 instance id.
    Instance,
    /// Targets are IPv4 addresses.
    Ip,
}

/// A target group's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Whether checks run.
    pub enabled: bool,
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// `traffic-port` or a port number.
    pub port: String,
    /// The path (HTTP checks).
    #[serde(default)]
    pub path: Option<String>,
    /// Seconds between checks (5-300).
    pub interval: u32,
    /// Seconds a check may take (2-120, less than the interval).
    pub timeout: u32,
    /// Consecutive passes to become healthy (2-10).
    pub healthy: u32,
    /// Consecutive failures to become unhealthy (2-10).
    pub unhealthy: u32,
    /// The HTTP codes that pass (HTTP checks): `200`, `200,202`, `200-299`.
    #[serde(default)]
    pub matcher: Option<String>,
}

impl HealthCheck {
    /// ELB's defaults for a target group of `protocol` checked with `check`.
    pub fn defaults(protocol: Protocol, check: Protocol) -> Self {
        let http = check == Protocol::Http;
        HealthCheck {
            enabled: true,
            protocol: check,
            port: "traffic-port".into(),
            path: http.then(|| "/".to_string()),
            interval: 30,
            timeout: match (protocol, check) {
                (Protocol::Http, _) => 5,
                (Protocol::Tcp, Protocol::Http) => 6,
                (Protocol::Tcp, Protocol::Tcp) => 10,
            },
            healthy: 5,
            unhealthy: 2,
            matcher: http.then(|| {
                if protocol == Protocol::Http {
                    "200".to_string()
                } else {
                    "200-399".to_string()
                }
            }),
        }
    }

    /// The thresholds for the state machine.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            healthy: self.healthy,
            unhealthy: self.unhealthy,
        }
    }

    /// Checks the whole health check for a group of `group` protocol: ranges, the timeout
    /// below the interval, the port, path and matcher only where they apply.
    pub fn check(&self, group: Protocol) -> Result<(), Elbv2Error> {
        if group == Protocol::Http && self.protocol == Protocol::Tcp {
            return Err(Elbv2Error::validation(
                "Health check protocol 'TCP' is not supported for target groups with the 'HTTP' protocol",
            ));
        }
        let range = |what: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Elbv2Error::validation(format!(
                    "{what} must be between {lo} and {hi}, not '{v}'"
                )))
            }
        };
        range("Health check interval", self.interval, 5, 300)?;
        range("Health check timeout", self.timeout, 2, 120)?;
        range("Healthy threshold count", self.healthy, 2, 10)?;
        range("Unhealthy threshold count", self.unhealthy, 2, 10)?;
        if self.timeout >= self.interval {
            return Err(Elbv2Error::validation(format!(
                "Health check timeout '{}' must be smaller than the interval '{}'",
                self.timeout, self.interval
            )));
        }
        if self.port != "traffic-port" {
            match self.port.parse::<u32>() {
                Ok(p) if (1..=65535).contains(&p) => {}
                _ => {
                    return Err(Elbv2Error::validation(format!(
                    "Health check port '{}' must be 'traffic-port' or a port between 1 and 65535",
                    self.port
                )))
                }
            }
        }
        match self.protocol {
            Protocol::Tcp => {
                if self.path.is_some() {
                    return Err(Elbv2Error::validation(
                        "Health check path cannot be set with the TCP health check protocol",
                    ));
                }
                if self.matcher.is_some() {
                    return Err(Elbv2Error::validation(
                        "Health check matcher HTTP code cannot be set with the TCP health check protocol",
                    ));
                }
            }
            Protocol::Http => {
                if let Some(p) = &self.path {
                    if !p.starts_with('/') {
                        return Err(Elbv2Error::validation(format!(
                            "Health check path '{p}' must begin with a '/' character"
                        )));
                    }
                }
                let (lo, hi) = if group == Protocol::Http {
                    (200, 499)
                } else {
                    (200, 599)
                };
                if let Some(m) = &self.matcher {
                    parse_matcher(m, lo, hi)?;
                }
            }
        }
        Ok(())
    }

    /// Whether an HTTP status passes the matcher.
    pub fn matches(&self, status: u16) -> bool {
        let m = self.matcher.as_deref().unwrap_or("200");
        parse_matcher(m, 100, 599)
            .map(|ranges| ranges.iter().any(|(a, b)| (*a..=*b).contains(&status)))
            .unwrap_or(false)
    }

    /// As the model shows it.
    pub fn matcher_view(&self) -> Option<shapes::Matcher> {
        self.matcher.as_ref().map(|m| shapes::Matcher {
            http_code: Some(m.clone()),
            grpc_code: None,
        })
    }
}

/// A matcher's code ranges: `200`, `200,202`, `200-299`, each code within `lo..=hi`.
pub fn parse_matcher(m: &str, lo: u16, hi: u16) -> Result<Vec<(u16, u16)>, Elbv2Error> {
    let bad = || {
        Elbv2Error::validation(format!(
            "Health check matcher HTTP code '{m}' must be codes between {lo} and {hi}, as '200', '200,202' or '200-299'"
        ))
    };
    let mut out = Vec::new();
    for part in m.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if a > b || a < lo || b > hi {
            return Err(bad());
        }
        out.push((a, b));
    }
    Ok(out)
}

/// A stored target group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroupRecord {
    /// The name (unique in the region).
    pub name: String,
    /// The ARN.
    pub arn: String,
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// The port targets receive traffic on unless registered with their own.
    pub port: u16,
    /// The VPC it is said to be in.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// ip or instance.
    pub target_type: TargetKind,
    /// `HTTP1` etc., as given.
    #[serde(default)]
    pub protocol_version: Option<String>,
    /// The health check.
    pub health: HealthCheck,
    /// Its attributes, every key set.
    pub attributes: BTreeMap<String, String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The ARNs of the listeners that forward to it (default action or a rule).
    #[serde(default)]
    pub used_by: BTreeSet<String>,
    /// When it was created.
    pub created: f64,
}

/// The attribute keys of a target group, with their defaults.
pub fn tg_attribute_defaults(protocol: Protocol) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("deregistration_delay.timeout_seconds".into(), "300".into());
    if protocol == Protocol::Http {
        m.insert("slow_start.duration_seconds".into(), "0".into());
        m.insert("load_balancing.algorithm.type".into(), "round_robin".into());
    }
    m
}

/// Applies ModifyTargetGroupAttributes' changes, or refuses an unknown key or a bad value.
pub fn apply_tg_attributes(
    protocol: Protocol,
    attrs: &mut BTreeMap<String, String>,
    changes: &[(String, String)],
) -> Result<(), Elbv2Error> {
    for (key, value) in changes {
        if !attrs.contains_key(key) {
            return Err(Elbv2Error::validation(format!(
                "Target group attribute key '{key}' is not recognized for a target group of protocol '{}' (Flotilla serves: {})",
                protocol.shape(),
                attrs.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        match key.as_str() {
            "deregistration_delay.timeout_seconds" => integer_in(key, value, 0, 3600)?,
            "slow_start.duration_seconds" => match value.parse::<i64>() {
                Ok(0) | Ok(30..=900) => {}
                _ => {
                    return Err(Elbv2Error::validation(format!(
                        "The value of 'slow_start.duration_seconds' must be 0 or between 30 and 900, not '{value}'"
                    )))
                }
            },
            "load_balancing.algorithm.type" => match value.as_str() {
                "round_robin" | "least_outstanding_requests" => {}
                _ => {
                    return Err(Elbv2Error::validation(format!(
                        "The value of 'load_balancing.algorithm.type' must be 'round_robin' or 'least_outstanding_requests', not '{value}'"
                    )))
                }
            },
            _ => {}
        }
    }
    for (key, value) in changes {
        attrs.insert(key.clone(), value.clone());
    }
    Ok(())
}

impl TargetGroupRecord {
    /// The deregistration delay, in seconds.
    pub fn deregistration_delay(&self) -> f64 {
        self.attributes
            .get("deregistration_delay.timeout_seconds")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(300.0)
    }

    /// The load balancers of the listeners that use it.
    pub fn load_balancer_arns(&self) -> Vec<String> {
        let lbs: BTreeSet<String> = self
            .used_by
            .iter()
            .filter_map(|l| listener_to_lb_arn(l))
            .collect();
        lbs.into_iter().collect()
    }

    /// As the model shows it.
    pub fn view(&self) -> shapes::TargetGroup {
        let h = &self.health;
        shapes::TargetGroup {
            target_group_arn: Some(self.arn.clone()),
            target_group_name: Some(self.name.clone()),
            protocol: Some(self.protocol.shape()),
            port: Some(i32::from(self.port)),
            vpc_id: self.vpc_id.clone(),
            health_check_protocol: Some(h.protocol.shape()),
            health_check_port: Some(h.port.clone()),
            health_check_enabled: Some(h.enabled),
            health_check_interval_seconds: Some(h.interval as i32),
            health_check_timeout_seconds: Some(h.timeout as i32),
            healthy_threshold_count: Some(h.healthy as i32),
            unhealthy_threshold_count: Some(h.unhealthy as i32),
            health_check_path: h.path.clone(),
            matcher: h.matcher_view(),
            load_balancer_arns: Some(self.load_balancer_arns()),
            target_type: Some(match self.target_type {
                TargetKind::Instance => shapes::TargetTypeEnum::Instance,
                TargetKind::Ip => shapes::TargetTypeEnum::Ip,
            }),
            protocol_version: self.protocol_version.clone(),
            ip_address_type: Some(shapes::TargetGroupIpAddressTypeEnum::Ipv4),
            ..Default::default()
        }
    }
}

/// A listener ARN's load balancer ARN (`listener/app/N/ID/LID` -> `loadbalancer/app/N/ID`).
pub fn listener_to_lb_arn(listener: &str) -> Option<String> {
    let (base, rest) = listener.split_once(":listener/")?;
    let mut parts: Vec<&str> = rest.split('/').collect();
    parts.pop()?;
    Some(format!("{base}:loadbalancer/{}", parts.join("/")))
}

/// One target group a forward action sends to, and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weighted {
    /// The target group's ARN.
    pub target_group_arn: String,
    /// Its weight (0-999).
    pub weight: u32,
}

/// A forward action: where requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The groups and their weights.
    pub target_groups: Vec<Weighted>,
    /// Whether the request named a single `TargetGroupArn` (shown back as such).
    #[serde(default)]
    pub single: bool,
    /// Target group stickiness: (enabled, duration seconds).
    #[serde(default)]
    pub stickiness: Option<(bool, i32)>,
}

impl Forward {
    /// The ARNs of its groups.
    pub fn arns(&self) -> impl Iterator<Item = &str> {
        self.target_groups
            .iter()
            .map(|w| w.target_group_arn.as_str())
    }

    /// The actions as the model shows them.
    pub fn view(&self) -> Vec<shapes::Action> {
        vec![shapes::Action {
            r#type: shapes::ActionTypeEnum::Forward,
            target_group_arn: (self.target_groups.len() == 1)
                .then(|| self.target_groups[0].target_group_arn.clone()),
            order: Some(1),
            forward_config: Some(shapes::ForwardActionConfig {
                target_groups: Some(
                    self.target_groups
                        .iter()
                        .map(|w| shapes::TargetGroupTuple {
                            target_group_arn: Some(w.target_group_arn.clone()),
                            weight: Some(w.weight as i32),
                        })
                        .collect(),
                ),
                target_group_stickiness_config: Some(shapes::TargetGroupStickinessConfig {
                    enabled: Some(self.stickiness.is_some_and(|(e, _)| e)),
                    duration_seconds: self.stickiness.filter(|(e, _)| *e).map(|(_, d)| d),
                }),
            }),
            ..Default::default()
        }]
    }
}

/// The forward action `actions` asks for: exactly one action, of type `forward`, naming at
/// most 5 target groups (weights 0-999). Anything else is refused, naming what is served.
pub fn parse_actions(actions: &[shapes::Action]) -> Result<Forward, Elbv2Error> {
    let [action] = actions else {
        return Err(Elbv2Error::new(
            ErrorShape::TooManyActionsException,
            format!(
                "Flotilla serves exactly one action per listener or rule (a forward action), not {}",
                actions.len()
            ),
        ));
    };
    if action.r#type != shapes::ActionTypeEnum::Forward {
        return Err(Elbv2Error::new(
            ErrorShape::InvalidLoadBalancerActionException,
            format!(
                "Action type '{}' is not served by Flotilla: only 'forward' actions (to one target group, or to weighted target groups in ForwardConfig) are",
                action.r#type
            ),
        ));
    }
    let mut groups: Vec<Weighted> = Vec::new();
    let mut stickiness = None;
    if let Some(fc) = &action.forward_config {
        for t in fc.target_groups.iter().flatten() {
            let Some(arn) = &t.target_group_arn else {
                return Err(Elbv2Error::validation(
                    "A target group ARN must be specified for each target group of a forward config",
                ));
            };
            let weight = t.weight.unwrap_or(1);
            if !(0..=999).contains(&weight) {
                return Err(Elbv2Error::validation(format!(
                    "Target group weight '{weight}' must be between 0 and 999"
                )));
            }
            if groups.iter().any(|g| &g.target_group_arn == arn) {
                return Err(Elbv2Error::validation(format!(
                    "Target group '{arn}' is specified more than once in the forward config"
                )));
            }
            groups.push(Weighted {
                target_group_arn: arn.clone(),
                weight: weight as u32,
            });
        }
        if let Some(s) = &fc.target_group_stickiness_config {
            if s.enabled == Some(true) {
                let d = s.duration_seconds.unwrap_or(3600);
                if !(1..=604800).contains(&d) {
                    return Err(Elbv2Error::validation(format!(
                        "Target group stickiness duration '{d}' must be between 1 and 604800 seconds"
                    )));
                }
                stickiness = Some((true, d));
            }
        }
    }
    let single = action.target_group_arn.is_some();
    if let Some(arn) = &action.target_group_arn {
        match groups.as_slice() {
            [] => groups.push(Weighted {
                target_group_arn: arn.clone(),
                weight: 1,
            }),
            [g] if &g.target_group_arn == arn => {}
            _ => {
                return Err(Elbv2Error::validation(
                    "You cannot specify both a target group ARN and a forward config with other target groups",
                ))
            }
        }
    }
    if groups.is_empty() {
        return Err(Elbv2Error::validation(
            "A forward action must specify a target group ARN or a forward config with target groups",
        ));
    }
    if groups.len() > 5 {
        return Err(Elbv2Error::new(
            ErrorShape::TooManyTargetGroupsException,
            "A forward action can have at most 5 target groups",
        ));
    }
    Ok(Forward {
        target_groups: groups,
        single,
        stickiness,
    })
}

/// A rule condition Flotilla serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// `path-pattern`: the request path matches one of the patterns (`*` and `?` wildcards).
    PathPattern(Vec<String>),
    /// `host-header`: the Host matches one of the patterns (case-insensitive, wildcards).
    HostHeader(Vec<String>),
}

impl Condition {
    /// The field name.
    pub fn field(&self) -> &'static str {
        match self {
            Condition::PathPattern(_) => "path-pattern",
            Condition::HostHeader(_) => "host-header",
        }
    }

    /// As the model shows it.
    pub fn view(&self) -> shapes::RuleCondition {
        match self {
            Condition::PathPattern(v) => shapes::RuleCondition {
                field: Some(self.field().into()),
                values: Some(v.clone()),
                path_pattern_config: Some(shapes::PathPatternConditionConfig {
                    values: Some(v.clone()),
                    regex_values: None,
                }),
                ..Default::default()
            },
            Condition::HostHeader(v) => shapes::RuleCondition {
                field: Some(self.field().into()),
                values: Some(v.clone()),
                host_header_config: Some(shapes::HostHeaderConditionConfig {
                    values: Some(v.clone()),
                    regex_values: None,
                }),
                ..Default::default()
            },
        }
    }
}

/// The conditions a rule asks for: `path-pattern` and `host-header`, each at most once, with
/// 1 to 5 values of at most 128 characters.
pub fn parse_conditions(
    conditions: &[shapes::RuleCondition],
) -> Result<Vec<Condition>, Elbv2Error> {
    if conditions.is_empty() {
        return Err(Elbv2Error::validation(
            "A rule must have at least one condition",
        ));
    }
    let mut out: Vec<Condition> = Vec::new();
    for c in conditions {
        let Some(field) = c.field.as_deref() else {
            return Err(Elbv2Error::validation("A condition must specify a field"));
        };
        let config = match field {
            "path-pattern" => c.path_pattern_config.as_ref().and_then(|p| p.values.clone()),
            "host-header" => c.host_header_config.as_ref().and_then(|p| p.values.clone()),
            other => {
                return Err(Elbv2Error::validation(format!(
                    "Condition field '{other}' is not served by Flotilla: use 'path-pattern' or 'host-header'"
                )))
            }
        };
        let values = match (c.values.clone(), config) {
            (Some(v), None) | (None, Some(v)) => v,
            (Some(_), Some(_)) => {
                return Err(Elbv2Error::validation(format!(
                    "A '{field}' condition cannot specify both Values and its config's Values"
                )))
            }
            (None, None) => Vec::new(),
        };
        if values.is_empty() || values.len() > 5 {
            return Err(Elbv2Error::validation(format!(
                "A '{field}' condition must have between 1 and 5 values"
            )));
        }
        if let Some(v) = values.iter().find(|v| v.is_empty() || v.len() > 128) {
            return Err(Elbv2Error::validation(format!(
                "Condition value '{v}' must be between 1 and 128 characters"
            )));
        }
        let cond = if field == "path-pattern" {
            Condition::PathPattern(values)
        } else {
            Condition::HostHeader(values)
        };
        if out.iter().any(|x| x.field() == cond.field()) {
            return Err(Elbv2Error::validation(format!(
                "A rule can have only one '{field}' condition"
            )));
        }
        out.push(cond);
    }
    Ok(out)
}

/// A stored rule (inside its listener's record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    /// The ARN.
    pub arn: String,
    /// Its priority (1-50000, unique in the listener).
    pub priority: u32,
    /// Its conditions (all must match).
    pub conditions: Vec<Condition>,
    /// Where matching requests go.
    pub action: Forward,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A stored listener with its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerRecord {
    /// The ARN.
    pub arn: String,
    /// The id (the ARN's last part).
    pub id: String,
    /// Its load balancer's ARN.
    pub load_balancer_arn: String,
    /// Its load balancer's name.
    pub load_balancer_name: String,
    /// HTTP (application) or TCP (network).
    pub protocol: Protocol,
    /// The port it listens on.
    pub port: u16,
    /// The default action.
    pub default_action: Forward,
    /// The default rule's ARN (DescribeRules shows it last, priority `default`).
    pub default_rule_arn: String,
    /// The rules, any order (shown by priority).
    #[serde(default)]
    pub rules: Vec<RuleRecord>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The default rule's tags.
    #[serde(default)]
    pub default_rule_tags: Vec<Tag>,
}

impl ListenerRecord {
    /// Every target group ARN its default action and rules forward to.
    pub fn target_groups(&self) -> BTreeSet<String> {
        self.default_action
            .arns()
            .chain(self.rules.iter().flat_map(|r| r.action.arns()))
            .map(str::to_string)
            .collect()
    }

    /// Its rules by priority.
    pub fn rules_by_priority(&self) -> Vec<&RuleRecord> {
        let mut r: Vec<&RuleRecord> = self.rules.iter().collect();
        r.sort_by_key(|r| r.priority);
        r
    }

    /// Refuses `priority` when another rule than `except` has it.
    pub fn check_priority_free(
        &self,
        priority: u32,
        except: Option<&str>,
    ) -> Result<(), Elbv2Error> {
        if self
            .rules
            .iter()
            .any(|r| r.priority == priority && Some(r.arn.as_str()) != except)
        {
            return Err(Elbv2Error::new(
                ErrorShape::PriorityInUseException,
                format!("Priority '{priority}' is currently in use"),
            ));
        }
        Ok(())
    }

    /// As the model shows it.
    pub fn view(&self) -> shapes::Listener {
        shapes::Listener {
            listener_arn: Some(self.arn.clone()),
            load_balancer_arn: Some(self.load_balancer_arn.clone()),
            port: Some(i32::from(self.port)),
            protocol: Some(self.protocol.shape()),
            default_actions: Some(self.default_action.view()),
            ..Default::default()
        }
    }

    /// Its rules as DescribeRules shows them: by priority, the default rule last.
    pub fn rules_view(&self) -> Vec<shapes::Rule> {
        let mut out: Vec<shapes::Rule> = self
            .rules_by_priority()
            .into_iter()
            .map(|r| shapes::Rule {
                rule_arn: Some(r.arn.clone()),
                priority: Some(r.priority.to_string()),
                conditions: Some(r.conditions.iter().map(Condition::view).collect()),
                actions: Some(r.action.view()),
                is_default: Some(false),
                ..Default::default()
            })
            .collect();
        out.push(shapes::Rule {
            rule_arn: Some(self.default_rule_arn.clone()),
            priority: Some("default".into()),
            conditions: Some(Vec::new()),
            actions: Some(self.default_action.view()),
            is_default: Some(true),
            ..Default::default()
        });
        out
    }
}

/// A target group's registered targets and their health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetsRecord {
    /// The group's ARN (a group deleted and created again has another).
    pub target_group_arn: String,
    /// The targets.
    #[serde(default)]
    pub targets: Vec<crate::health::Target>,
}

/// Decodes a stored record.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Elbv2Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Elbv2Error::internal(format!("a stored load balancing record is unreadable: {e}"))
    })
}

/// Encodes a record for the store.
pub fn encode<T: Serialize>(r: &T) -> Result<Vec<u8>, Elbv2Error> {
    serde_json::to_vec(r)
        .map_err(|e| Elbv2Error::internal(format!("could not encode a load balancing record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_elbs_rules() {
        for ok in ["web", "a-b-1", &"x".repeat(32)] {
            assert!(check_name(ok, "Load balancer").is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a_b", "a.b", &"x".repeat(33), "internal-x"] {
            assert!(check_name(bad, "Load balancer").is_err(), "{bad}");
        }
        assert!(check_name("internal-x", "Target group").is_ok());
    }

    #[test]
    fn health_check_defaults_and_ranges_per_protocol() {
        let http = HealthCheck::defaults(Protocol::Http, Protocol::Http);
        assert_eq!(
            (http.interval, http.timeout, http.healthy, http.unhealthy),
            (30, 5, 5, 2)
        );
        assert_eq!(http.path.as_deref(), Some("/"));
        assert_eq!(http.matcher.as_deref(), Some("200"));
        assert!(http.check(Protocol::Http).is_ok());
        let tcp = HealthCheck::defaults(Protocol::Tcp, Protocol::Tcp);
        assert_eq!(
            (tcp.timeout, tcp.path.clone(), tcp.matcher.clone()),
            (10, None, None)
        );
        assert!(tcp.check(Protocol::Tcp).is_ok());
        let cases: Vec<(HealthCheck, Protocol)> = vec![
            (
                HealthCheck {
                    timeout: 30,
                    ..http.clone()
                },
                Protocol::Http,
            ),
            (
                HealthCheck {
                    interval: 4,
                    ..http.clone()
                },
                Protocol::Http,
            ),
            (
                HealthCheck {
                    healthy: 11,
                    ..http.clone()
                },
                Protocol::Http,
            ),
            (
                HealthCheck {
                    matcher: Some("600".into()),
                    ..http.clone()
                },
                Protocol::Http,
            ),
            (
                HealthCheck {
                    matcher: Some("299-200".into()),
                    ..http.clone()
                },
                Protocol::Http,
            ),
            (
                HealthCheck {
                    path: Some("x".into()),
                    ..http.clone()
                },
                Protocol::Http,
            ),
            (
                HealthCheck {
                    port: "0".into(),
                    ..http.clone()
                },
                Protocol::Http,
            ),
            (
                HealthCheck {
                    path: Some("/".into()),
                    ..tcp.clone()
                },
                Protocol::Tcp,
            ),
            (tcp.clone(), Protocol::Http),
        ];
        for (hc, group) in cases {
            assert_eq!(
                hc.check(group).unwrap_err().code(),
                "ValidationError",
                "{hc:?}"
            );
        }
        let m = HealthCheck {
            matcher: Some("200,301-302".into()),
            ..http
        };
        assert!(m.matches(200) && m.matches(302) && !m.matches(201));
    }

    #[test]
    fn target_group_attributes_keep_their_ranges() {
        let mut a = tg_attribute_defaults(Protocol::Http);
        let set = |a: &mut BTreeMap<String, String>, k: &str, v: &str| {
            apply_tg_attributes(Protocol::Http, a, &[(k.to_string(), v.to_string())])
        };
        assert!(set(&mut a, "deregistration_delay.timeout_seconds", "0").is_ok());
        assert!(set(&mut a, "deregistration_delay.timeout_seconds", "3601").is_err());
        assert!(set(&mut a, "slow_start.duration_seconds", "30").is_ok());
        assert!(set(&mut a, "slow_start.duration_seconds", "10").is_err());
        assert!(set(
            &mut a,
            "load_balancing.algorithm.type",
            "least_outstanding_requests"
        )
        .is_ok());
        assert!(set(&mut a, "load_balancing.algorithm.type", "random").is_err());
        assert!(set(&mut a, "stickiness.enabled", "true").is_err());
        assert_eq!(a["deregistration_delay.timeout_seconds"], "0");
        let mut t = tg_attribute_defaults(Protocol::Tcp);
        assert!(apply_tg_attributes(
            Protocol::Tcp,
            &mut t,
            &[("slow_start.duration_seconds".into(), "30".into())]
        )
        .is_err());
    }

    fn forward(arn: Option<&str>, weighted: &[(&str, i32)]) -> shapes::Action {
        shapes::Action {
            r#type: shapes::ActionTypeEnum::Forward,
            target_group_arn: arn.map(str::to_string),
            forward_config: (!weighted.is_empty()).then(|| shapes::ForwardActionConfig {
                target_groups: Some(
                    weighted
                        .iter()
                        .map(|(a, w)| shapes::TargetGroupTuple {
                            target_group_arn: Some(a.to_string()),
                            weight: Some(*w),
                        })
                        .collect(),
                ),
                target_group_stickiness_config: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_forward_actions_are_served() {
        let f = parse_actions(&[forward(Some("a"), &[])]).unwrap();
        assert_eq!(f.arns().collect::<Vec<_>>(), ["a"]);
        let f = parse_actions(&[forward(None, &[("a", 3), ("b", 1)])]).unwrap();
        assert_eq!(f.target_groups[1].weight, 1);
        assert_eq!(f.view()[0].target_group_arn, None);
        let redirect = shapes::Action {
            r#type: shapes::ActionTypeEnum::Redirect,
            ..Default::default()
        };
        assert_eq!(
            parse_actions(&[redirect]).unwrap_err().code(),
            "InvalidLoadBalancerAction"
        );
        assert_eq!(parse_actions(&[]).unwrap_err().code(), "TooManyActions");
        assert!(parse_actions(&[forward(Some("a"), &[("b", 1)])]).is_err());
        assert!(parse_actions(&[forward(None, &[("a", 1000)])]).is_err());
        assert!(parse_actions(&[forward(None, &[])]).is_err());
    }

    #[test]
    fn conditions_are_path_pattern_and_host_header() {
        let c = |field: &str, values: &[&str]| shapes::RuleCondition {
            field: Some(field.into()),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let got = parse_conditions(&[
            c("path-pattern", &["/api/*"]),
            c("host-header", &["a.example"]),
        ])
        .unwrap();
        assert_eq!(got[0], Condition::PathPattern(vec!["/api/*".into()]));
        assert!(parse_conditions(&[c("http-header", &["x"])]).is_err());
        assert!(parse_conditions(&[c("path-pattern", &[])]).is_err());
        assert!(
            parse_conditions(&[c("path-pattern", &["/a"]), c("path-pattern", &["/b"])]).is_err()
        );
        assert!(parse_conditions(&[]).is_err());
        let from_config = shapes::RuleCondition {
            field: Some("host-header".into()),
            host_header_config: Some(shapes::HostHeaderConditionConfig {
                values: Some(vec!["x.example".into()]),
                regex_values: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            parse_conditions(&[from_config]).unwrap(),
            vec![Condition::HostHeader(vec!["x.example".into()])]
        );
    }

    #[test]
    fn tags_refuse_duplicates_and_too_many() {
        let t = |k: &str| shapes::Tag {
            key: k.into(),
            value: Some("v".into()),
        };
        let mut tags = Vec::new();
        assert!(add_tags(&mut tags, &[t("a"), t("b")]).is_ok());
        assert_eq!(
            add_tags(&mut tags, &[t("c"), t("c")]).unwrap_err().code(),
            "DuplicateTagKeys"
        );
        let many: Vec<shapes::Tag> = (0..49).map(|i| t(&format!("k{i}"))).collect();
        assert_eq!(
            add_tags(&mut tags, &many).unwrap_err().code(),
            "TooManyTags"
        );
    }

    #[test]
    fn dns_names_and_listener_arns() {
        assert_eq!(
            dns_name("web", 42, "us-east-1", false),
            "web-0000000042.us-east-1.elb.flotilla.internal"
        );
        assert!(dns_name("web", 42, "us-east-1", true).starts_with("internal-web-"));
        assert_eq!(
            listener_to_lb_arn("arn:aws:elasticloadbalancing:r:1:listener/app/web/abc/def")
                .as_deref(),
            Some("arn:aws:elasticloadbalancing:r:1:loadbalancer/app/web/abc")
        );
    }
}
