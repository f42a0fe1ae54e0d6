//! ECS's rules for how a service's tasks receive traffic: its `loadBalancers` (Elastic Load
//! Balancing v2 target groups) and its `serviceRegistries` (Cloud Map services), and what each
//! task becomes in them.
//!
//! - [`check_load_balancers`] / [`check_service_registries`]: the request's own rules against
//!   the task definition, with ECS's messages (what needs the target groups or Cloud Map
//!   services themselves is checked by the caller, which can read them).
//! - [`task_targets`]: the targets a RUNNING task is registered as (awsvpc: its IP and the
//!   container port; bridge and host: its instance and the host port Docker bound).
//! - [`task_instance`]: the Cloud Map instance a task is registered as, with the attributes
//!   ECS gives it.
//!
//! Pure: the caller passes the task record and the instance's EC2 id.

use crate::tasks::TaskRecord;
use flotilla_model::shapes::{
    ContainerDefinition, LoadBalancer, NetworkMode, ServiceRegistry, TaskDefinition,
};
use flotilla_model::EcsError;
use std::collections::BTreeMap;

/// The most target groups a service may name (ECS's limit).
pub const MAX_LOAD_BALANCERS: usize = 5;

/// One target a task is registered as in a target group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LbTarget {
    /// The target group.
    pub target_group_arn: String,
    /// The target's id: an IP address (target type `ip`) or an EC2 instance id (`instance`).
    pub id: String,
    /// The port traffic goes to.
    pub port: u16,
}

/// How a target group registers targets, as the service's validation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    /// Targets are IP addresses (awsvpc tasks).
    Ip,
    /// Targets are EC2 instances with a port (bridge and host tasks).
    Instance,
}

impl TargetType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Ip => "ip",
            TargetType::Instance => "instance",
        }
    }
}

/// The network mode a task definition runs with (bridge when unset, as on EC2).
pub fn network_mode(td: &TaskDefinition) -> NetworkMode {
    td.network_mode.unwrap_or(NetworkMode::Bridge)
}

fn container<'a>(td: &'a TaskDefinition, name: &str) -> Option<&'a ContainerDefinition> {
    td.container_definitions
        .iter()
        .flatten()
        .find(|c| c.name.as_deref() == Some(name))
}

fn has_container_port(c: &ContainerDefinition, port: i32) -> bool {
    c.port_mappings
        .iter()
        .flatten()
        .any(|p| p.container_port == Some(port))
}

/// The request's `loadBalancers` against the task definition, as ECS checks them: at most
/// five, each an ELBv2 target group (Classic Load Balancers are not served) with a container of
/// the task definition and one of its container ports, no repeat, and a `role` only where ECS
/// takes one (not with awsvpc, whose tasks need no role to be registered).
pub fn check_load_balancers(
    lbs: &[LoadBalancer],
    td: &TaskDefinition,
    role: Option<&str>,
) -> Result<(), EcsError> {
    if lbs.len() > MAX_LOAD_BALANCERS {
        return Err(EcsError::invalid_parameter(format!(
            "loadBalancers can have at most {MAX_LOAD_BALANCERS} elements."
        )));
    }
    if lbs.is_empty() {
        if role.is_some_and(|r| !r.is_empty()) {
            return Err(EcsError::invalid_parameter(
                "You cannot specify an IAM role for services that do not use a load balancer.",
            ));
        }
        return Ok(());
    }
    if role.is_some_and(|r| !r.is_empty()) && network_mode(td) == NetworkMode::Awsvpc {
        return Err(EcsError::invalid_parameter(
            "You cannot specify an IAM role for services that require a service linked role.",
        ));
    }
    let mut seen = Vec::new();
    for lb in lbs {
        if lb.load_balancer_name.is_some() && lb.target_group_arn.is_none() {
            return Err(EcsError::invalid_parameter(
                "Classic Load Balancers (loadBalancerName) are not served by Flotilla: name an Application or Network Load Balancer target group with targetGroupArn.",
            ));
        }
        if lb.load_balancer_name.is_some() {
            return Err(EcsError::invalid_parameter(
                "loadBalancerName and targetGroupArn cannot both be specified.",
            ));
        }
        let Some(tg) = lb.target_group_arn.as_deref().filter(|t| !t.is_empty()) else {
            return Err(EcsError::invalid_parameter(
                "targetGroupArn is required for a load balancer of a service.",
            ));
        };
        let Some(name) = lb.container_name.as_deref() else {
            return Err(EcsError::invalid_parameter(
                "containerName is required for a load balancer of a service.",
            ));
        };
        let Some(port) = lb.container_port else {
            return Err(EcsError::invalid_parameter(
                "containerPort is required for a load balancer of a service.",
            ));
        };
        let Some(c) = container(td, name) else {
            return Err(EcsError::invalid_parameter(format!(
                "The container {name} does not exist in the task definition."
            )));
        };
        if !has_container_port(c, port) {
            return Err(EcsError::invalid_parameter(format!(
                "The container {name} did not have a container port {port} defined."
            )));
        }
        let key = (tg.to_string(), name.to_string(), port);
        if seen.contains(&key) {
            return Err(EcsError::invalid_parameter(format!(
                "The load balancer with target group {tg}, container {name} and port {port} is named twice."
            )));
        }
        seen.push(key);
    }
    Ok(())
}

/// The target type the task definition's network mode needs, and the message ECS gives when a
/// target group has the other one.
pub fn check_target_type(
    tg_arn: &str,
    tg_type: TargetType,
    td: &TaskDefinition,
) -> Result<(), EcsError> {
    let mode = network_mode(td);
    let wanted = if mode == NetworkMode::Awsvpc {
        TargetType::Ip
    } else {
        TargetType::Instance
    };
    if tg_type == wanted {
        return Ok(());
    }
    Err(EcsError::invalid_parameter(format!(
        "The provided target group {tg_arn} has target type {}, which is incompatible with the {} network mode specified in the task definition.",
        tg_type.as_str(),
        mode.as_str()
    )))
}

/// The request's `serviceRegistries` against the task definition, as ECS checks them: at most
/// one, a `registryArn`, `containerName` and `containerPort` together, the container and port
/// in the task definition, and `port` only with awsvpc (bridge and host name the container).
pub fn check_service_registries(
    regs: &[ServiceRegistry],
    td: &TaskDefinition,
) -> Result<(), EcsError> {
    if regs.len() > 1 {
        return Err(EcsError::invalid_parameter(
            "Only one service registry is supported per service.",
        ));
    }
    for r in regs {
        if r.registry_arn.as_deref().is_none_or(str::is_empty) {
            return Err(EcsError::invalid_parameter(
                "registryArn is required for a service registry.",
            ));
        }
        match (&r.container_name, r.container_port) {
            (Some(_), None) => {
                return Err(EcsError::invalid_parameter(
                    "When specifying 'containerName' you must also specify 'containerPort'.",
                ))
            }
            (None, Some(_)) => {
                return Err(EcsError::invalid_parameter(
                    "When specifying 'containerPort' you must also specify 'containerName'.",
                ))
            }
            (Some(name), Some(port)) => {
                let Some(c) = container(td, name) else {
                    return Err(EcsError::invalid_parameter(format!(
                        "The container {name} does not exist in the task definition."
                    )));
                };
                if !has_container_port(c, port) {
                    return Err(EcsError::invalid_parameter(format!(
                        "The container {name} did not have a container port {port} defined."
                    )));
                }
                if r.port.is_some() {
                    return Err(EcsError::invalid_parameter(
                        "You cannot specify both 'port' and 'containerName'/'containerPort' for a service registry.",
                    ));
                }
            }
            (None, None) => {}
        }
        if network_mode(td) != NetworkMode::Awsvpc && r.container_name.is_none() {
            return Err(EcsError::invalid_parameter(format!(
                "The {} network mode requires 'containerName' and 'containerPort' for a service registry.",
                network_mode(td).as_str()
            )));
        }
        if let Some(p) = r.port {
            if !(1..=65535).contains(&p) {
                return Err(EcsError::invalid_parameter(
                    "port of a service registry must be between 1 and 65535.",
                ));
            }
        }
    }
    Ok(())
}

/// The port a task's container is reached at for `container_port`: with awsvpc the container
/// port itself, with bridge the host port Docker bound (once the agent reported it), with host
/// the container port (which is the host's).
fn reach_port(task: &TaskRecord, container_name: &str, container_port: i32) -> Option<u16> {
    let mode = task
        .assignment
        .as_ref()
        .map_or(NetworkMode::Bridge, |a| a.network_mode);
    let port = match mode {
        NetworkMode::Bridge => task
            .task
            .containers
            .iter()
            .flatten()
            .filter(|c| c.name.as_deref() == Some(container_name))
            .flat_map(|c| c.network_bindings.iter().flatten())
            .find(|b| b.container_port == Some(container_port))
            .and_then(|b| b.host_port)?,
        _ => container_port,
    };
    u16::try_from(port).ok().filter(|p| *p > 0)
}

/// The targets a task is registered as, one per load balancer of its service: awsvpc tasks by
/// their IP address, the others by their instance's EC2 id and the port traffic reaches the
/// container at. A load balancer whose port is not known yet (no binding reported) gives none.
pub fn task_targets(
    lbs: &[LoadBalancer],
    task: &TaskRecord,
    ec2_instance_id: &str,
) -> Vec<LbTarget> {
    let mut out = Vec::new();
    for lb in lbs {
        let (Some(tg), Some(name), Some(cport)) = (
            lb.target_group_arn.as_deref(),
            lb.container_name.as_deref(),
            lb.container_port,
        ) else {
            continue;
        };
        let Some(port) = reach_port(task, name, cport) else {
            continue;
        };
        let id = match task.network() {
            Some(net) => net.private_ipv4_address.clone(),
            None if ec2_instance_id.is_empty() => continue,
            None => ec2_instance_id.to_string(),
        };
        out.push(LbTarget {
            target_group_arn: tg.to_string(),
            id,
            port,
        });
    }
    out
}

/// A task as a Cloud Map instance: its id (the task id) and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryInstance {
    /// The Cloud Map service's ARN (`registryArn`).
    pub service_arn: String,
    /// The instance id: the task id, as ECS registers it.
    pub instance_id: String,
    /// `AWS_INSTANCE_IPV4`, `AWS_INSTANCE_PORT` and ECS's own attributes.
    pub attributes: BTreeMap<String, String>,
}

/// What a task is registered as in its service's Cloud Map service: the task id, its address
/// (awsvpc: its own; bridge and host: `host_address`, the instance's), the port (the registry's
/// `port`, or the container's as [`task_targets`] finds it) and the attributes ECS adds. `None`
/// while the address or port is not known.
pub fn task_instance(
    reg: &ServiceRegistry,
    task: &TaskRecord,
    service_name: &str,
    host_address: Option<&str>,
) -> Option<RegistryInstance> {
    let service_arn = reg.registry_arn.clone()?;
    let ip = match task.network() {
        Some(net) => net.private_ipv4_address.clone(),
        None => host_address?.to_string(),
    };
    let port = match (&reg.container_name, reg.container_port, reg.port) {
        (Some(name), Some(cport), _) => Some(reach_port(task, name, cport)?),
        (_, _, Some(p)) => u16::try_from(p).ok(),
        _ => None,
    };
    let mut attributes = BTreeMap::new();
    attributes.insert("AWS_INSTANCE_IPV4".to_string(), ip);
    if let Some(p) = port {
        attributes.insert("AWS_INSTANCE_PORT".to_string(), p.to_string());
    }
    if let Some(az) = &task.task.availability_zone {
        attributes.insert("AVAILABILITY_ZONE".to_string(), az.clone());
    }
    attributes.insert("ECS_CLUSTER_NAME".to_string(), task.cluster.clone());
    attributes.insert("ECS_SERVICE_NAME".to_string(), service_name.to_string());
    if let Some(family) = task
        .task
        .task_definition_arn
        .as_deref()
        .and_then(|a| a.rsplit('/').next())
        .and_then(|fr| fr.split(':').next())
    {
        attributes.insert("ECS_TASK_DEFINITION_FAMILY".to_string(), family.to_string());
    }
    Some(RegistryInstance {
        service_arn,
        instance_id: task.id.clone(),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_model::shapes::PortMapping;

    fn td(mode: Option<NetworkMode>) -> TaskDefinition {
        TaskDefinition {
            network_mode: mode,
            container_definitions: Some(vec![ContainerDefinition {
                name: Some("web".into()),
                port_mappings: Some(vec![PortMapping {
                    container_port: Some(8080),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn lb(tg: &str, name: &str, port: i32) -> LoadBalancer {
        LoadBalancer {
            target_group_arn: Some(tg.into()),
            container_name: Some(name.into()),
            container_port: Some(port),
            ..Default::default()
        }
    }

    fn message(r: Result<(), EcsError>) -> String {
        r.err().map(|e| e.message).unwrap_or_default()
    }

    #[test]
    fn load_balancers_name_a_container_and_one_of_its_ports() {
        let t = td(Some(NetworkMode::Awsvpc));
        assert!(check_load_balancers(&[lb("tg", "web", 8080)], &t, None).is_ok());
        assert_eq!(
            message(check_load_balancers(&[lb("tg", "api", 8080)], &t, None)),
            "The container api does not exist in the task definition."
        );
        assert_eq!(
            message(check_load_balancers(&[lb("tg", "web", 80)], &t, None)),
            "The container web did not have a container port 80 defined."
        );
        let six: Vec<_> = (0..6).map(|i| lb(&format!("tg{i}"), "web", 8080)).collect();
        assert!(check_load_balancers(&six, &t, None).is_err());
        let twice = [lb("tg", "web", 8080), lb("tg", "web", 8080)];
        assert!(check_load_balancers(&twice, &t, None).is_err());
    }

    #[test]
    fn a_role_only_where_ecs_takes_one() {
        let awsvpc = td(Some(NetworkMode::Awsvpc));
        assert_eq!(
            message(check_load_balancers(
                &[lb("tg", "web", 8080)],
                &awsvpc,
                Some("role")
            )),
            "You cannot specify an IAM role for services that require a service linked role."
        );
        let bridge = td(None);
        assert!(check_load_balancers(&[lb("tg", "web", 8080)], &bridge, Some("role")).is_ok());
        assert!(check_load_balancers(&[], &bridge, Some("role")).is_err());
    }

    #[test]
    fn classic_load_balancers_are_refused_clearly() {
        let classic = LoadBalancer {
            load_balancer_name: Some("old".into()),
            container_name: Some("web".into()),
            container_port: Some(8080),
            ..Default::default()
        };
        assert!(message(check_load_balancers(&[classic], &td(None), None)).contains("Classic"));
    }

    #[test]
    fn target_type_follows_the_network_mode() {
        assert!(check_target_type("tg", TargetType::Ip, &td(Some(NetworkMode::Awsvpc))).is_ok());
        assert!(check_target_type("tg", TargetType::Instance, &td(None)).is_ok());
        assert_eq!(
            message(check_target_type("tg", TargetType::Instance, &td(Some(NetworkMode::Awsvpc)))),
            "The provided target group tg has target type instance, which is incompatible with the awsvpc network mode specified in the task definition."
        );
    }

    #[test]
    fn service_registries_rules() {
        let reg = |name: Option<&str>, cport: Option<i32>, port: Option<i32>| ServiceRegistry {
            registry_arn: Some("arn:srv".into()),
            container_name: name.map(str::to_string),
            container_port: cport,
            port,
        };
        let awsvpc = td(Some(NetworkMode::Awsvpc));
        assert!(check_service_registries(&[reg(None, None, None)], &awsvpc).is_ok());
        assert!(check_service_registries(&[reg(Some("web"), Some(8080), None)], &awsvpc).is_ok());
        assert!(check_service_registries(&[reg(Some("web"), None, None)], &awsvpc).is_err());
        assert!(check_service_registries(&[reg(None, None, None)], &td(None)).is_err());
        assert!(check_service_registries(&[reg(Some("web"), Some(8080), None)], &td(None)).is_ok());
        let two = [reg(None, None, None), reg(None, None, None)];
        assert!(check_service_registries(&two, &awsvpc).is_err());
    }
}
