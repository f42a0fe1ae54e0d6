//! What a request's scalable target names, checked as the service checks it: Flotilla scales
//! ECS services only (`ServiceNamespace` `ecs`, `ScalableDimension` `ecs:service:DesiredCount`,
//! `ResourceId` `service/CLUSTER/SERVICE`), and the store keys of targets, policies and
//! activities. Pure.

use crate::error::AasError;
use crate::shapes::{ScalableDimension, ServiceNamespace};

/// Prefix of every record of this service in the store.
pub const PREFIX: &str = "autoscaling/";
/// Prefix of scalable targets: `autoscaling/targets/ecs/CLUSTER/SERVICE`.
pub const TARGETS: &str = "autoscaling/targets/ecs/";
/// Prefix of scaling policies: `autoscaling/policies/ecs/CLUSTER/SERVICE/NAME`.
pub const POLICIES: &str = "autoscaling/policies/ecs/";
/// Prefix of scaling activities: `autoscaling/activities/ecs/CLUSTER/SERVICE/START-ID`.
pub const ACTIVITIES: &str = "autoscaling/activities/ecs/";

/// An ECS service as a scalable target names it (`service/CLUSTER/SERVICE`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId {
    /// The cluster's name.
    pub cluster: String,
    /// The service's name.
    pub service: String,
}

impl ServiceId {
    /// Parses `service/CLUSTER/SERVICE` (names, not ARNs, as Application Auto Scaling takes them).
    pub fn parse(resource_id: &str) -> Option<ServiceId> {
        let rest = resource_id.strip_prefix("service/")?;
        let (cluster, service) = rest.split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 255
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        (valid(cluster) && valid(service)).then(|| ServiceId {
            cluster: cluster.to_string(),
            service: service.to_string(),
        })
    }

    /// `service/CLUSTER/SERVICE`.
    pub fn resource_id(&self) -> String {
        format!("service/{}/{}", self.cluster, self.service)
    }

    /// The store key of its scalable target.
    pub fn target_key(&self) -> String {
        format!("{TARGETS}{}/{}", self.cluster, self.service)
    }

    /// The prefix of its policies' keys.
    pub fn policies_prefix(&self) -> String {
        format!("{POLICIES}{}/{}/", self.cluster, self.service)
    }

    /// The store key of its policy `name`.
    pub fn policy_key(&self, name: &str) -> String {
        format!("{}{name}", self.policies_prefix())
    }

    /// The prefix of its activities' keys.
    pub fn activities_prefix(&self) -> String {
        format!("{ACTIVITIES}{}/{}/", self.cluster, self.service)
    }

    /// The store key of an activity started at `start` (epoch seconds) with id `id`: keys sort
    /// by start time.
    pub fn activity_key(&self, start: f64, id: &str) -> String {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let millis = (start * 1000.0).round().max(0.0) as u64;
        format!("{}{millis:015}-{id}", self.activities_prefix())
    }
}

/// The words Application Auto Scaling uses for a resource it cannot scale.
const UNSUPPORTED: &str = "Unsupported service namespace, resource type or scalable dimension";

/// Checks the namespace (Flotilla scales ECS services only; another namespace is refused by
/// name, never accepted and ignored).
pub fn check_namespace(ns: ServiceNamespace) -> Result<(), AasError> {
    if ns == ServiceNamespace::Ecs {
        return Ok(());
    }
    Err(AasError::validation(format!(
        "{UNSUPPORTED}: this Flotilla server scales Amazon ECS services only (ServiceNamespace ecs), not '{}'.",
        ns.as_str()
    )))
}

/// Checks a whole target identity: namespace, dimension and `service/CLUSTER/SERVICE`.
pub fn check(
    ns: ServiceNamespace,
    resource_id: &str,
    dimension: ScalableDimension,
) -> Result<ServiceId, AasError> {
    check_namespace(ns)?;
    if dimension != ScalableDimension::EcsServiceDesiredCount {
        return Err(AasError::validation(format!(
            "{UNSUPPORTED}: an ECS service's scalable dimension is ecs:service:DesiredCount."
        )));
    }
    ServiceId::parse(resource_id).ok_or_else(|| {
        AasError::validation(format!(
            "{UNSUPPORTED}: an ECS service's ResourceId is service/CLUSTER/SERVICE, not '{resource_id}'."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_name_a_cluster_and_a_service() {
        let id = ServiceId::parse("service/default/web").unwrap();
        assert_eq!(id.cluster, "default");
        assert_eq!(id.service, "web");
        assert_eq!(id.resource_id(), "service/default/web");
        for bad in [
            "service/default",
            "service//web",
            "table/default/web",
            "service/default/web/x",
            "service/a b/web",
            "",
        ] {
            assert_eq!(ServiceId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn activity_keys_sort_by_start_time() {
        let id = ServiceId::parse("service/c/s").unwrap();
        let a = id.activity_key(999.5, "z");
        let b = id.activity_key(1000.0, "a");
        assert!(a < b);
        assert!(a.starts_with(&id.activities_prefix()));
    }

    #[test]
    fn other_namespaces_and_dimensions_are_refused_by_name() {
        let e = check(
            ServiceNamespace::Dynamodb,
            "table/t",
            ScalableDimension::DynamodbTableReadCapacityUnits,
        )
        .unwrap_err();
        assert!(e.message.contains("'dynamodb'"), "{}", e.message);
        assert!(check(
            ServiceNamespace::Ecs,
            "service/c/s",
            ScalableDimension::DynamodbTableReadCapacityUnits
        )
        .is_err());
        assert!(check(
            ServiceNamespace::Ecs,
            "service/c/s",
            ScalableDimension::EcsServiceDesiredCount
        )
        .is_ok());
    }
}
