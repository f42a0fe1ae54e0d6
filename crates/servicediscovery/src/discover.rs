//! Which instances `DiscoverInstances` answers (pure).
//!
//! In order: the instances whose attributes hold every `QueryParameters` pair; then the health
//! filter (ignored for a service without a custom health check, as Cloud Map ignores it;
//! HEALTHY when the request names none); then `OptionalParameters`, applied only when some
//! instance left matches them all; then at most `MaxResults` (100 when not given). The caller
//! shuffles the instances first (Cloud Map answers them in random order).

use crate::record::{InstanceRecord, ServiceRecord};
use crate::shapes::{HealthStatus, HealthStatusFilter};
use std::collections::BTreeMap;

/// How many instances DiscoverInstances answers when `MaxResults` is not given.
pub const DEFAULT_MAX_RESULTS: usize = 100;

/// What a DiscoverInstances request filters on.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Every pair must match.
    pub required: BTreeMap<String, String>,
    /// Applied only when some instance matches them all.
    pub optional: BTreeMap<String, String>,
    /// The health filter (HEALTHY when `None`).
    pub health: Option<HealthStatusFilter>,
    /// At most this many ([`DEFAULT_MAX_RESULTS`] when `None`).
    pub max_results: Option<usize>,
}

fn matches(i: &InstanceRecord, pairs: &BTreeMap<String, String>) -> bool {
    pairs.iter().all(|(k, v)| i.attributes.get(k) == Some(v))
}

/// The instances of `service` (from `instances`, in their order) that `query` discovers.
pub fn discover<'a>(
    service: &ServiceRecord,
    instances: &'a [InstanceRecord],
    query: &Query,
) -> Vec<&'a InstanceRecord> {
    let mut found: Vec<&InstanceRecord> = instances
        .iter()
        .filter(|i| matches(i, &query.required))
        .collect();
    if service.has_custom_health() {
        let healthy = |i: &&InstanceRecord| service.health_of(i) == HealthStatus::Healthy;
        match query.health.unwrap_or(HealthStatusFilter::Healthy) {
            HealthStatusFilter::Healthy => found.retain(healthy),
            HealthStatusFilter::Unhealthy => found.retain(|i| !healthy(i)),
            HealthStatusFilter::All => {}
            HealthStatusFilter::HealthyOrElseAll => {
                if found.iter().any(healthy) {
                    found.retain(healthy);
                }
            }
        }
    }
    if !query.optional.is_empty() && found.iter().any(|i| matches(i, &query.optional)) {
        found.retain(|i| matches(i, &query.optional));
    }
    found.truncate(query.max_results.unwrap_or(DEFAULT_MAX_RESULTS));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DnsSettings;
    use crate::shapes::{CustomHealthStatus, RecordType, RoutingPolicy};

    fn service(custom: bool) -> ServiceRecord {
        ServiceRecord {
            id: "srv-1".into(),
            arn: "arn".into(),
            name: "web".into(),
            namespace_id: "ns-1".into(),
            description: None,
            created: 0.0,
            creator_request_id: None,
            dns: Some(DnsSettings {
                routing: RoutingPolicy::Multivalue,
                records: vec![(RecordType::A, 60)],
            }),
            custom_health: custom.then(crate::shapes::HealthCheckCustomConfig::default),
            instance_count: 0,
            instances_revision: 0,
            tags: BTreeMap::new(),
        }
    }

    fn instance(id: &str, healthy: bool, attrs: &[(&str, &str)]) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            service_id: "srv-1".into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            health: if healthy {
                CustomHealthStatus::Healthy
            } else {
                CustomHealthStatus::Unhealthy
            },
            creator_request_id: None,
        }
    }

    fn ids(v: Vec<&InstanceRecord>) -> Vec<&str> {
        v.into_iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn filters_apply_in_cloud_maps_order() {
        let all = vec![
            instance("a", true, &[("v", "1"), ("az", "x")]),
            instance("b", false, &[("v", "1"), ("az", "y")]),
            instance("c", true, &[("v", "2"), ("az", "y")]),
        ];
        let s = service(true);
        let q = |health, required: &[(&str, &str)], optional: &[(&str, &str)]| Query {
            required: required
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            optional: optional
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            health,
            max_results: None,
        };
        let check = |query: Query, want: &[&str]| assert_eq!(ids(discover(&s, &all, &query)), want);
        check(q(None, &[], &[]), &["a", "c"]);
        check(q(Some(HealthStatusFilter::All), &[], &[]), &["a", "b", "c"]);
        check(q(Some(HealthStatusFilter::Unhealthy), &[], &[]), &["b"]);
        check(
            q(Some(HealthStatusFilter::All), &[("v", "1")], &[]),
            &["a", "b"],
        );
        check(
            q(Some(HealthStatusFilter::All), &[("v", "1")], &[("az", "y")]),
            &["b"],
        );
        // Optional parameters that match nothing are ignored.
        check(
            q(Some(HealthStatusFilter::All), &[("v", "1")], &[("az", "z")]),
            &["a", "b"],
        );
        // No healthy instance with v=1 and az=y: fail open.
        check(
            q(
                Some(HealthStatusFilter::HealthyOrElseAll),
                &[("az", "y"), ("v", "1")],
                &[],
            ),
            &["b"],
        );
        check(
            q(Some(HealthStatusFilter::HealthyOrElseAll), &[], &[]),
            &["a", "c"],
        );
        let mut limited = q(Some(HealthStatusFilter::All), &[], &[]);
        limited.max_results = Some(2);
        check(limited, &["a", "b"]);
        // Without a custom health check the filter is ignored.
        let plain = service(false);
        let unhealthy = q(Some(HealthStatusFilter::Unhealthy), &[], &[]);
        assert_eq!(ids(discover(&plain, &all, &unhealthy)), ["a", "b", "c"]);
    }
}
