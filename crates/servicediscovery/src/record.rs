//! Cloud Map's records as stored, and their rules (pure: no store, no clock, no randomness;
//! callers pass times and random draws in).
//!
//! - [`NamespaceRecord`]: an HTTP, private DNS or public DNS namespace; its `service_count` is
//!   kept here, changed in the same transaction as the service it counts.
//! - [`ServiceRecord`]: a service of a namespace, its DNS configuration ([`DnsSettings`]: A,
//!   AAAA and SRV records with their TTLs, MULTIVALUE or WEIGHTED) and whether it has a custom
//!   health check; its `instance_count` and `instances_revision` change with every instance
//!   change (the revision `DiscoverInstancesRevision` answers).
//! - [`InstanceRecord`]: an instance, its attributes and its custom health status.
//! - [`OperationRecord`]: an asynchronous operation of AWS, recorded SUCCESS at once.
//!
//! What this is not: the store layout ([`crate::keys`]) or the handlers ([`crate::service`]).

use crate::error::SdError;
use crate::shapes::{
    self, CustomHealthStatus, DnsConfig, DnsRecord, HealthCheckCustomConfig, HealthStatus,
    NamespaceType, OperationStatus, OperationType, RecordType, RoutingPolicy, ServiceType, Tag,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The attribute with an instance's IPv4 address (its A records).
pub const IPV4: &str = "AWS_INSTANCE_IPV4";
/// The attribute with an instance's IPv6 address (its AAAA records).
pub const IPV6: &str = "AWS_INSTANCE_IPV6";
/// The attribute with an instance's port (its SRV records).
pub const PORT: &str = "AWS_INSTANCE_PORT";
/// The attribute with an instance's initial custom health status.
pub const INIT_HEALTH: &str = "AWS_INIT_HEALTH_STATUS";
/// At most this many attributes per instance, as Cloud Map allows.
pub const MAX_ATTRIBUTES: usize = 30;
/// The attributes' keys and values together, at most (characters).
pub const MAX_ATTRIBUTES_SIZE: usize = 5000;
/// At most this many tags per resource.
pub const MAX_TAGS: usize = 50;

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// `ns-` and 16 characters.
    pub id: String,
    /// `arn:aws:servicediscovery:REGION:ACCOUNT:namespace/ID`.
    pub arn: String,
    /// Its name (a DNS domain for DNS namespaces).
    pub name: String,
    /// HTTP, DNS_PRIVATE or DNS_PUBLIC.
    pub kind: NamespaceType,
    /// Its description.
    pub description: Option<String>,
    /// When it was created (epoch seconds).
    pub created: f64,
    /// The request id it was created with.
    pub creator_request_id: Option<String>,
    /// The VPC a private DNS namespace was created for (accepted as given).
    pub vpc: Option<String>,
    /// The SOA record's TTL (DNS namespaces).
    pub soa_ttl: Option<i64>,
    /// How many services it has.
    pub service_count: u32,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

impl NamespaceRecord {
    /// Whether names in it are answered by DNS.
    pub fn is_dns(&self) -> bool {
        self.kind != NamespaceType::Http
    }

    /// The name as DNS compares it: lower case, no trailing dot.
    pub fn dns_name(&self) -> String {
        dns_name(&self.name)
    }

    fn properties(&self) -> shapes::NamespaceProperties {
        shapes::NamespaceProperties {
            dns_properties: Some(shapes::DnsProperties {
                hosted_zone_id: self.is_dns().then(|| hosted_zone_id(&self.id)),
                soa: self.soa_ttl.map(|ttl| shapes::SOA { ttl }),
            }),
            http_properties: Some(shapes::HttpProperties {
                http_name: Some(self.name.clone()),
            }),
        }
    }

    /// The `Namespace` shape.
    pub fn shape(&self, account: &str) -> shapes::Namespace {
        shapes::Namespace {
            id: Some(self.id.clone()),
            arn: Some(self.arn.clone()),
            resource_owner: Some(account.to_string()),
            name: Some(self.name.clone()),
            r#type: Some(self.kind),
            description: self.description.clone(),
            service_count: Some(i32::try_from(self.service_count).unwrap_or(i32::MAX)),
            properties: Some(self.properties()),
            create_date: Some(self.created),
            creator_request_id: self.creator_request_id.clone(),
        }
    }

    /// The `NamespaceSummary` shape.
    pub fn summary(&self, account: &str) -> shapes::NamespaceSummary {
        shapes::NamespaceSummary {
            id: Some(self.id.clone()),
            arn: Some(self.arn.clone()),
            resource_owner: Some(account.to_string()),
            name: Some(self.name.clone()),
            r#type: Some(self.kind),
            description: self.description.clone(),
            service_count: Some(i32::try_from(self.service_count).unwrap_or(i32::MAX)),
            properties: Some(self.properties()),
            create_date: Some(self.created),
        }
    }
}

/// The Route 53 hosted zone id shown for a DNS namespace (there is no hosted zone: a stable
/// id derived from the namespace's).
pub fn hosted_zone_id(namespace_id: &str) -> String {
    let tail: String = namespace_id
        .trim_start_matches("ns-")
        .to_ascii_uppercase()
        .chars()
        .take(14)
        .collect();
    format!("Z{tail}")
}

/// A name as DNS compares it: lower case, no trailing dot.
pub fn dns_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// Checks a namespace's name for its type, with Cloud Map's rules: a DNS namespace is a domain
/// name (labels of letters, digits, hyphens; at most 253 characters); an HTTP namespace 1 to
/// 1,024 printable ASCII characters without spaces (the model's `^(?!arn:)[!-~]{1,1024}$`),
/// not an ARN.
pub fn check_namespace_name(kind: NamespaceType, name: &str) -> Result<(), SdError> {
    if name.starts_with("arn:") {
        return Err(SdError::invalid(format!(
            "Namespace name {name} is not valid: it must not be an ARN."
        )));
    }
    if kind == NamespaceType::Http {
        if name.is_empty() || name.len() > 1024 || !name.bytes().all(|b| (b'!'..=b'~').contains(&b))
        {
            return Err(SdError::invalid(format!(
                "Namespace name {name:?} is not valid: 1 to 1,024 printable ASCII characters without spaces."
            )));
        }
        return Ok(());
    }
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 || !trimmed.split('.').all(is_dns_label) {
        return Err(SdError::invalid(format!(
            "Namespace name {name} is not a valid domain name: labels of letters, digits and hyphens separated by dots, each 1-63 characters, 253 in all."
        )));
    }
    Ok(())
}

/// Checks a service's name as the model's pattern says (labels of letters, digits, `-` and `_`,
/// each 1-63 characters and not starting or ending with `-`, separated by dots, 127 in all).
pub fn check_service_name(name: &str) -> Result<(), SdError> {
    if name.is_empty() || name.len() > 127 || !name.split('.').all(is_dns_label) {
        return Err(SdError::invalid(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: labels of letters, digits, '-' and '_' (1-63 characters, not starting or ending with '-'), separated by dots, at most 127 characters"
        )));
    }
    Ok(())
}

/// A service's DNS records: which types, their TTLs, and the routing policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    /// MULTIVALUE (every healthy instance) or WEIGHTED (one of them).
    pub routing: RoutingPolicy,
    /// The record types with their TTLs, in the order given.
    pub records: Vec<(RecordType, u32)>,
}

impl DnsSettings {
    /// The settings of a `DnsConfig`, checked: at least one record, each type once, A, AAAA
    /// and SRV only (CNAME is refused: Flotilla answers addresses and ports), TTLs that fit.
    pub fn from_config(c: &DnsConfig) -> Result<DnsSettings, SdError> {
        Ok(DnsSettings {
            routing: c.routing_policy.unwrap_or(RoutingPolicy::Multivalue),
            records: check_records(&c.dns_records)?,
        })
    }

    /// The TTL of a record type, if the service has it.
    pub fn ttl(&self, t: RecordType) -> Option<u32> {
        self.records
            .iter()
            .find(|(r, _)| *r == t)
            .map(|(_, ttl)| *ttl)
    }

    /// The `DnsConfig` shape.
    pub fn shape(&self, namespace_id: &str) -> DnsConfig {
        DnsConfig {
            namespace_id: Some(namespace_id.to_string()),
            routing_policy: Some(self.routing),
            dns_records: self
                .records
                .iter()
                .map(|(t, ttl)| DnsRecord {
                    r#type: *t,
                    ttl: i64::from(*ttl),
                })
                .collect(),
        }
    }
}

/// Checks a list of DNS records (see [`DnsSettings::from_config`]).
pub fn check_records(records: &[DnsRecord]) -> Result<Vec<(RecordType, u32)>, SdError> {
    if records.is_empty() {
        return Err(SdError::invalid(
            "DnsConfig.DnsRecords must name at least one record (A, AAAA or SRV).",
        ));
    }
    let mut out: Vec<(RecordType, u32)> = Vec::new();
    for r in records {
        if r.r#type == RecordType::Cname {
            return Err(SdError::invalid(
                "Flotilla serves A, AAAA and SRV records; CNAME records are not served.",
            ));
        }
        if out.iter().any(|(t, _)| *t == r.r#type) {
            return Err(SdError::invalid(format!(
                "DnsConfig.DnsRecords names the record type {} twice.",
                r.r#type
            )));
        }
        let ttl = u32::try_from(r.ttl)
            .ok()
            .filter(|t| i32::try_from(*t).is_ok())
            .ok_or_else(|| {
                SdError::invalid(format!(
                    "The TTL of the {} record must be between 0 and 2147483647.",
                    r.r#type
                ))
            })?;
        out.push((r.r#type, ttl));
    }
    Ok(out)
}

/// A service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// `srv-` and 16 characters.
    pub id: String,
    /// `arn:aws:servicediscovery:REGION:ACCOUNT:service/ID`.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// Its namespace's id.
    pub namespace_id: String,
    /// Its description.
    pub description: Option<String>,
    /// When it was created (epoch seconds).
    pub created: f64,
    /// The request id it was created with.
    pub creator_request_id: Option<String>,
    /// Its DNS records (a service of a DNS namespace that is not `Type: HTTP`).
    pub dns: Option<DnsSettings>,
    /// Its custom health check, when it has one (`HealthCheckCustomConfig`).
    pub custom_health: Option<HealthCheckCustomConfig>,
    /// How many instances it has.
    pub instance_count: u32,
    /// Grows with every change of its instances (registered, deregistered, health).
    pub instances_revision: i64,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

impl ServiceRecord {
    /// HTTP (no DNS records), DNS_HTTP (DNS records, discoverable by API too).
    pub fn kind(&self) -> ServiceType {
        if self.dns.is_some() {
            ServiceType::DnsHttp
        } else {
            ServiceType::Http
        }
    }

    /// Whether it has a custom health check (so its instances' health is what callers set).
    pub fn has_custom_health(&self) -> bool {
        self.custom_health.is_some()
    }

    fn custom_health_shape(&self) -> Option<HealthCheckCustomConfig> {
        self.custom_health.clone()
    }

    /// The `Service` shape.
    pub fn shape(&self, account: &str) -> shapes::Service {
        shapes::Service {
            id: Some(self.id.clone()),
            arn: Some(self.arn.clone()),
            resource_owner: Some(account.to_string()),
            name: Some(self.name.clone()),
            namespace_id: Some(self.namespace_id.clone()),
            description: self.description.clone(),
            instance_count: Some(i32::try_from(self.instance_count).unwrap_or(i32::MAX)),
            dns_config: self.dns.as_ref().map(|d| d.shape(&self.namespace_id)),
            r#type: Some(self.kind()),
            health_check_config: None,
            health_check_custom_config: self.custom_health_shape(),
            create_date: Some(self.created),
            creator_request_id: self.creator_request_id.clone(),
            created_by_account: Some(account.to_string()),
        }
    }

    /// The `ServiceSummary` shape.
    pub fn summary(&self, account: &str) -> shapes::ServiceSummary {
        shapes::ServiceSummary {
            id: Some(self.id.clone()),
            arn: Some(self.arn.clone()),
            resource_owner: Some(account.to_string()),
            name: Some(self.name.clone()),
            r#type: Some(self.kind()),
            description: self.description.clone(),
            instance_count: Some(i32::try_from(self.instance_count).unwrap_or(i32::MAX)),
            dns_config: self.dns.as_ref().map(|d| d.shape(&self.namespace_id)),
            health_check_config: None,
            health_check_custom_config: self.custom_health_shape(),
            create_date: Some(self.created),
            created_by_account: Some(account.to_string()),
        }
    }

    /// The health an instance shows: its custom status when the service has a custom health
    /// check, else UNKNOWN (Cloud Map's answer for a service without health checks).
    pub fn health_of(&self, i: &InstanceRecord) -> HealthStatus {
        if !self.has_custom_health() {
            return HealthStatus::Unknown;
        }
        match i.health {
            CustomHealthStatus::Healthy => HealthStatus::Healthy,
            CustomHealthStatus::Unhealthy => HealthStatus::Unhealthy,
        }
    }

    /// Whether DNS answers an instance: healthy, or the service checks no health.
    pub fn answers(&self, i: &InstanceRecord) -> bool {
        self.health_of(i) != HealthStatus::Unhealthy
    }
}

/// What a CreateService request asks for, checked against its namespace: DNS records only in a
/// DNS namespace (required there unless `Type: HTTP`), no Route 53 health checks.
pub fn service_settings(
    namespace: &NamespaceRecord,
    dns: Option<&DnsConfig>,
    http_only: bool,
    health: Option<&shapes::HealthCheckConfig>,
    custom: Option<&HealthCheckCustomConfig>,
) -> Result<(Option<DnsSettings>, Option<HealthCheckCustomConfig>), SdError> {
    if health.is_some() {
        return Err(SdError::invalid(
            "Flotilla does not run Route 53 health checks (HealthCheckConfig): use HealthCheckCustomConfig and UpdateInstanceCustomHealthStatus.",
        ));
    }
    let dns = match (namespace.is_dns(), dns, http_only) {
        (false, Some(_), _) => {
            return Err(SdError::invalid(format!(
                "DnsConfig is not allowed for a service of the HTTP namespace {}.",
                namespace.id
            )))
        }
        (_, Some(_), true) => {
            return Err(SdError::invalid(
                "A service of Type HTTP has no DnsConfig.",
            ))
        }
        (true, None, false) => {
            return Err(SdError::invalid(format!(
                "DnsConfig is required for a service of the DNS namespace {} (or Type HTTP for a service discovered by API calls only).",
                namespace.id
            )))
        }
        (_, Some(c), false) => {
            if let Some(ns) = c.namespace_id.as_deref() {
                if ns != namespace.id && ns != namespace.arn {
                    return Err(SdError::invalid(format!(
                        "DnsConfig.NamespaceId {ns} is not the service's namespace {}.",
                        namespace.id
                    )));
                }
            }
            Some(DnsSettings::from_config(c)?)
        }
        (_, None, _) => None,
    };
    Ok((dns, custom.cloned()))
}

/// An instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Its id, as the caller chose it.
    pub id: String,
    /// Its service's id.
    pub service_id: String,
    /// Its attributes (with `AWS_INIT_HEALTH_STATUS` taken out).
    pub attributes: BTreeMap<String, String>,
    /// Its custom health status (what DNS and DiscoverInstances read when the service has a
    /// custom health check).
    pub health: CustomHealthStatus,
    /// The request id it was registered with.
    pub creator_request_id: Option<String>,
}

impl InstanceRecord {
    /// Its IPv4 address, if it has a valid one.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.attributes.get(IPV4)?.parse().ok()
    }
    /// Its IPv6 address, if it has a valid one.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.attributes.get(IPV6)?.parse().ok()
    }
    /// Its port, if it has a valid one.
    pub fn port(&self) -> Option<u16> {
        self.attributes.get(PORT)?.parse().ok().filter(|p| *p > 0)
    }
}

/// Checks an instance's attributes for its service and takes out the initial health status:
/// the addresses and port the service's DNS records need (A: `AWS_INSTANCE_IPV4`; AAAA:
/// `AWS_INSTANCE_IPV6`; SRV: `AWS_INSTANCE_PORT` and an address), valid values where given, at
/// most 30 attributes and 5,000 characters, no alias or CNAME. Returns the attributes to store
/// and the initial status (`AWS_INIT_HEALTH_STATUS`, HEALTHY unless given).
pub fn check_attributes(
    service: &ServiceRecord,
    mut attributes: BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, CustomHealthStatus), SdError> {
    let init = match attributes.remove(INIT_HEALTH).as_deref() {
        None => CustomHealthStatus::Healthy,
        Some(v) if !service.has_custom_health() => {
            return Err(SdError::invalid(format!(
                "{INIT_HEALTH} ({v}) is allowed only for a service with HealthCheckCustomConfig."
            )))
        }
        Some("HEALTHY") => CustomHealthStatus::Healthy,
        Some("UNHEALTHY") => CustomHealthStatus::Unhealthy,
        Some(v) => {
            return Err(SdError::invalid(format!(
                "{INIT_HEALTH} must be HEALTHY or UNHEALTHY, not {v}."
            )))
        }
    };
    for refused in [
        "AWS_ALIAS_DNS_NAME",
        "AWS_INSTANCE_CNAME",
        "AWS_EC2_INSTANCE_ID",
    ] {
        if attributes.contains_key(refused) {
            return Err(SdError::invalid(format!(
                "Flotilla does not serve {refused}: register addresses with {IPV4}, {IPV6} and {PORT}."
            )));
        }
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(SdError::invalid(format!(
            "An instance has at most {MAX_ATTRIBUTES} attributes; this one has {}.",
            attributes.len()
        )));
    }
    let size: usize = attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_ATTRIBUTES_SIZE {
        return Err(SdError::invalid(format!(
            "The attributes' keys and values add up to {size} characters; at most {MAX_ATTRIBUTES_SIZE} are allowed."
        )));
    }
    if let Some(v) = attributes.get(IPV4) {
        if v.parse::<Ipv4Addr>().is_err() {
            return Err(SdError::invalid(format!(
                "{IPV4} must be an IPv4 address such as 192.0.2.44, not {v}."
            )));
        }
    }
    if let Some(v) = attributes.get(IPV6) {
        if v.parse::<Ipv6Addr>().is_err() {
            return Err(SdError::invalid(format!(
                "{IPV6} must be an IPv6 address, not {v}."
            )));
        }
    }
    if let Some(v) = attributes.get(PORT) {
        if v.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
            return Err(SdError::invalid(format!(
                "{PORT} must be a port between 1 and 65535, not {v}."
            )));
        }
    }
    if let Some(dns) = &service.dns {
        let has = |k: &str| attributes.contains_key(k);
        for (t, _) in &dns.records {
            match t {
                RecordType::A if !has(IPV4) => {
                    return Err(SdError::invalid(format!(
                        "The service {} has an A record: {IPV4} is required.",
                        service.id
                    )))
                }
                RecordType::Aaaa if !has(IPV6) => {
                    return Err(SdError::invalid(format!(
                        "The service {} has an AAAA record: {IPV6} is required.",
                        service.id
                    )))
                }
                RecordType::Srv if !has(PORT) => {
                    return Err(SdError::invalid(format!(
                        "The service {} has an SRV record: {PORT} is required.",
                        service.id
                    )))
                }
                RecordType::Srv if !has(IPV4) && !has(IPV6) => {
                    return Err(SdError::invalid(format!(
                        "The service {} has an SRV record: {IPV4} or {IPV6} is required.",
                        service.id
                    )))
                }
                _ => {}
            }
        }
    }
    Ok((attributes, init))
}

/// An operation (Cloud Map's asynchronous changes; Flotilla's are SUCCESS at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// The operation id ([`operation_id`]).
    pub id: String,
    /// What it did.
    pub kind: OperationType,
    /// SUCCESS.
    pub status: OperationStatus,
    /// When it was created (epoch milliseconds).
    pub created_ms: i64,
    /// What it changed: `NAMESPACE`, `SERVICE`, `INSTANCE` -> id.
    pub targets: BTreeMap<String, String>,
}

impl OperationRecord {
    /// A successful operation of `kind` at `now` on `targets`, with the id `random` draws.
    pub fn success(
        kind: OperationType,
        now: f64,
        random: [u8; 31],
        targets: &[(&str, &str)],
    ) -> OperationRecord {
        let created_ms = millis(now);
        OperationRecord {
            id: operation_id(created_ms, random),
            kind,
            status: OperationStatus::Success,
            created_ms,
            targets: targets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The `Operation` shape.
    pub fn shape(&self, account: &str) -> shapes::Operation {
        let at = self.created_ms as f64 / 1000.0;
        shapes::Operation {
            id: Some(self.id.clone()),
            owner_account: Some(account.to_string()),
            r#type: Some(self.kind),
            status: Some(self.status),
            error_message: None,
            error_code: None,
            create_date: Some(at),
            update_date: Some(at),
            targets: Some(self.targets.clone()),
        }
    }
}

/// Epoch milliseconds of epoch seconds.
pub fn millis(now: f64) -> i64 {
    (now * 1000.0).round() as i64
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn base36(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[usize::try_from(n % 36).unwrap_or(0)];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

fn random_chars(random: &[u8]) -> String {
    random
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// A namespace id: `ns-` and 16 characters.
pub fn namespace_id(random: [u8; 16]) -> String {
    format!("ns-{}", random_chars(&random))
}

/// A service id: `srv-` and 16 characters.
pub fn service_id(random: [u8; 16]) -> String {
    format!("srv-{}", random_chars(&random))
}

/// An operation id in Cloud Map's shape (32 characters, `-`, 8 characters): the creation time in
/// base 36 first (so ids sort by time: the oldest are found and dropped first), then random
/// characters.
pub fn operation_id(created_ms: i64, random: [u8; 31]) -> String {
    let time = base36(u64::try_from(created_ms).unwrap_or(0), 9);
    format!(
        "{time}{}-{}",
        random_chars(&random[..23]),
        random_chars(&random[23..])
    )
}

/// The creation time (epoch ms) an operation id carries, if it is one of Flotilla's.
pub fn operation_time(id: &str) -> Option<i64> {
    let head = id.get(..9)?;
    head.bytes().try_fold(0i64, |acc, b| {
        let d = ALPHABET.iter().position(|a| *a == b)?;
        acc.checked_mul(36)?.checked_add(i64::try_from(d).ok()?)
    })
}

/// Tags as a map, checked: at most [`MAX_TAGS`] (`TooManyTagsException`).
pub fn add_tags(tags: &mut BTreeMap<String, String>, add: &[Tag]) -> Result<(), SdError> {
    let mut next = tags.clone();
    for t in add {
        next.insert(t.key.clone(), t.value.clone());
    }
    if next.len() > MAX_TAGS {
        return Err(SdError::of(
            crate::ErrorShape::TooManyTagsException,
            format!("A resource has at most {MAX_TAGS} tags."),
        ));
    }
    *tags = next;
    Ok(())
}

/// Tags as the model's list.
pub fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(kind: NamespaceType) -> NamespaceRecord {
        NamespaceRecord {
            id: "ns-abc".into(),
            arn: "arn:aws:servicediscovery:us-east-1:1:namespace/ns-abc".into(),
            name: "local".into(),
            kind,
            description: None,
            created: 1.0,
            creator_request_id: None,
            vpc: None,
            soa_ttl: Some(60),
            service_count: 0,
            tags: BTreeMap::new(),
        }
    }

    fn svc(records: &[(RecordType, u32)], custom: bool) -> ServiceRecord {
        ServiceRecord {
            id: "srv-1".into(),
            arn: "arn".into(),
            name: "web".into(),
            namespace_id: "ns-abc".into(),
            description: None,
            created: 1.0,
            creator_request_id: None,
            dns: (!records.is_empty()).then(|| DnsSettings {
                routing: RoutingPolicy::Multivalue,
                records: records.to_vec(),
            }),
            custom_health: custom.then(HealthCheckCustomConfig::default),
            instance_count: 0,
            instances_revision: 0,
            tags: BTreeMap::new(),
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_follow_the_namespace_type() {
        assert!(check_namespace_name(NamespaceType::DnsPrivate, "corp.local").is_ok());
        assert!(check_namespace_name(NamespaceType::DnsPrivate, "corp.local.").is_ok());
        assert!(check_namespace_name(NamespaceType::DnsPrivate, "bad name").is_err());
        assert!(check_namespace_name(NamespaceType::DnsPrivate, "-x.local").is_err());
        assert!(check_namespace_name(NamespaceType::Http, "any-name!~").is_ok());
        assert!(check_namespace_name(NamespaceType::Http, "any name").is_err());
        assert!(check_namespace_name(NamespaceType::Http, "").is_err());
        assert!(check_namespace_name(NamespaceType::Http, "\u{202e}x").is_err());
        assert!(check_namespace_name(NamespaceType::Http, "a\u{0}b").is_err());
        assert!(check_namespace_name(NamespaceType::Http, &"n".repeat(1025)).is_err());
        assert!(check_namespace_name(NamespaceType::Http, "arn:aws:x").is_err());
        assert!(check_service_name("web").is_ok());
        assert!(check_service_name("_http._tcp").is_ok());
        assert!(check_service_name("a-b_c.d").is_ok());
        assert!(check_service_name("-web").is_err());
        assert!(check_service_name("we b").is_err());
        assert!(check_service_name("").is_err());
        assert!(check_service_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn dns_records_are_checked() {
        let rec = |t, ttl| DnsRecord { r#type: t, ttl };
        assert_eq!(
            check_records(&[rec(RecordType::A, 60), rec(RecordType::Srv, 10)]).unwrap(),
            vec![(RecordType::A, 60), (RecordType::Srv, 10)]
        );
        assert!(check_records(&[]).is_err());
        assert!(check_records(&[rec(RecordType::Cname, 60)]).is_err());
        assert!(check_records(&[rec(RecordType::A, 60), rec(RecordType::A, 1)]).is_err());
        assert!(check_records(&[rec(RecordType::A, -1)]).is_err());
    }

    #[test]
    fn service_settings_follow_the_namespace() {
        let cfg = DnsConfig {
            namespace_id: None,
            routing_policy: None,
            dns_records: vec![DnsRecord {
                r#type: RecordType::A,
                ttl: 30,
            }],
        };
        let private = ns(NamespaceType::DnsPrivate);
        let (dns, custom) = service_settings(&private, Some(&cfg), false, None, None).unwrap();
        assert_eq!(dns.unwrap().routing, RoutingPolicy::Multivalue);
        assert_eq!(custom, None);
        assert!(service_settings(&private, None, false, None, None).is_err());
        assert_eq!(
            service_settings(&private, None, true, None, None).unwrap(),
            (None, None)
        );
        let http = ns(NamespaceType::Http);
        assert!(service_settings(&http, Some(&cfg), false, None, None).is_err());
        let check = shapes::HealthCheckConfig {
            r#type: shapes::HealthCheckType::Http,
            resource_path: None,
            failure_threshold: None,
        };
        let e = service_settings(&http, None, false, Some(&check), None).unwrap_err();
        assert!(e.message.contains("HealthCheckCustomConfig"));
        let custom = HealthCheckCustomConfig {
            failure_threshold: Some(1),
        };
        assert_eq!(
            service_settings(&http, None, false, None, Some(&custom))
                .unwrap()
                .1,
            Some(custom)
        );
    }

    #[test]
    fn attributes_must_carry_what_the_records_need() {
        let s = svc(&[(RecordType::A, 60), (RecordType::Srv, 60)], true);
        let ok = attrs(&[(IPV4, "10.0.0.1"), (PORT, "80"), ("color", "blue")]);
        let (kept, health) = check_attributes(&s, ok.clone()).unwrap();
        assert_eq!(kept, ok);
        assert_eq!(health, CustomHealthStatus::Healthy);
        let (_, health) = check_attributes(
            &s,
            attrs(&[(IPV4, "10.0.0.1"), (PORT, "80"), (INIT_HEALTH, "UNHEALTHY")]),
        )
        .unwrap();
        assert_eq!(health, CustomHealthStatus::Unhealthy);
        for bad in [
            attrs(&[(PORT, "80")]),
            attrs(&[(IPV4, "10.0.0.1")]),
            attrs(&[(IPV4, "10.0.0.300"), (PORT, "80")]),
            attrs(&[(IPV4, "10.0.0.1"), (PORT, "0")]),
            attrs(&[(IPV4, "10.0.0.1"), (PORT, "80"), (INIT_HEALTH, "MAYBE")]),
            attrs(&[
                (IPV4, "10.0.0.1"),
                (PORT, "80"),
                ("AWS_ALIAS_DNS_NAME", "x"),
            ]),
        ] {
            assert!(check_attributes(&s, bad.clone()).is_err(), "{bad:?}");
        }
        let plain = svc(&[(RecordType::A, 60)], false);
        assert!(check_attributes(
            &plain,
            attrs(&[(IPV4, "10.0.0.1"), (INIT_HEALTH, "HEALTHY")])
        )
        .is_err());
        let http = svc(&[], false);
        assert!(check_attributes(&http, attrs(&[("anything", "goes")])).is_ok());
        let many: BTreeMap<String, String> = (0..31)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(check_attributes(&http, many).is_err());
    }

    #[test]
    fn health_is_unknown_without_a_custom_check() {
        let i = InstanceRecord {
            id: "i".into(),
            service_id: "srv-1".into(),
            attributes: BTreeMap::new(),
            health: CustomHealthStatus::Unhealthy,
            creator_request_id: None,
        };
        let plain = svc(&[(RecordType::A, 60)], false);
        assert_eq!(plain.health_of(&i), HealthStatus::Unknown);
        assert!(plain.answers(&i));
        let custom = svc(&[(RecordType::A, 60)], true);
        assert_eq!(custom.health_of(&i), HealthStatus::Unhealthy);
        assert!(!custom.answers(&i));
    }

    #[test]
    fn operation_ids_have_cloud_maps_shape_and_sort_by_time() {
        let a = operation_id(1_700_000_000_000, [7; 31]);
        let b = operation_id(1_700_000_000_001, [200; 31]);
        assert_eq!(a.len(), 41, "{a}");
        assert_eq!(a.as_bytes()[32], b'-', "{a}");
        assert!(a < b);
        assert_eq!(operation_time(&a), Some(1_700_000_000_000));
        assert_eq!(namespace_id([0; 16]).len(), 19);
        assert!(service_id([35; 16]).starts_with("srv-"));
    }
}
