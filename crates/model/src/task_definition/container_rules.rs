//! The rules of one container definition, checked in order for each container of a
//! RegisterTaskDefinition request ([`check_container`]): its size, port mappings, links, mounts,
//! `dependsOn`, Fargate's container rules, its health check and its `repositoryCredentials`.

use super::{check_host_port, client, TaskLevel};
use crate::error::EcsError;
use crate::shapes::{
    ContainerCondition, ContainerDefinition, HealthCheck, NetworkMode, TransportProtocol,
};
use std::collections::HashSet;

/// What a container may refer to: the other containers and the task's volumes.
pub(super) struct Known<'a> {
    pub containers: &'a [ContainerDefinition],
    pub names: &'a HashSet<&'a str>,
    pub volumes: &'a HashSet<String>,
}

/// One container's rules, in order; `host_ports` collects the host ports of the containers
/// checked so far, so that no two mappings of the task share one.
pub(super) fn check_container(
    c: &ContainerDefinition,
    task: &TaskLevel,
    known: &Known<'_>,
    host_ports: &mut HashSet<(i32, &'static str)>,
) -> Result<(), EcsError> {
    let name = c.name.as_deref().unwrap_or("");
    check_container_size(c, name, task)?;
    check_port_mappings(c, name, task.network_mode, host_ports)?;
    check_links(c, name, task.network_mode, known.names)?;
    check_mounts(c, name, known)?;
    check_depends_on(c, name, known.containers)?;
    if task.fargate {
        check_fargate_container(c, name)?;
    }
    if let Some(hc) = &c.health_check {
        check_health_check(hc, name)?;
    }
    if let Some(rc) = &c.repository_credentials {
        check_repository_credentials(&rc.credentials_parameter, c.image.as_deref(), name)?;
    }
    Ok(())
}

/// Container cpu and memory: not negative, at least 6 MiB, `memory` >= `memoryReservation`, one
/// of them unless the task has memory, cpu within the task's.
fn check_container_size(
    c: &ContainerDefinition,
    name: &str,
    task: &TaskLevel,
) -> Result<(), EcsError> {
    if c.cpu < 0 {
        return Err(client(format!(
            "Invalid 'cpu' setting for container '{name}': it must not be negative."
        )));
    }
    if let Some(m) = c.memory {
        if m < 6 {
            return Err(client(format!(
                "Invalid 'memory' setting for container '{name}': {m} MiB. The minimum is 6 MiB."
            )));
        }
    }
    if let Some(r) = c.memory_reservation {
        if r < 6 {
            return Err(client(format!("Invalid 'memoryReservation' setting for container '{name}': {r} MiB. The minimum is 6 MiB.")));
        }
        if let Some(m) = c.memory {
            if m < r {
                return Err(client(format!(
                    "Invalid 'memory' setting for container '{name}': 'memory' ({m}) must be greater than or equal to 'memoryReservation' ({r})."
                )));
            }
        }
    }
    if task.memory.is_none() && c.memory.is_none() && c.memory_reservation.is_none() {
        return Err(client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
        )));
    }
    if let Some(cpu) = task.cpu {
        if c.cpu as u64 > u64::from(cpu) {
            return Err(client(format!(
                "Invalid 'cpu' setting for container '{name}': {} CPU units is more than the task's {cpu}.",
                c.cpu
            )));
        }
    }
    Ok(())
}

/// Port mappings as the network mode allows them, ports in range, no host port taken twice.
fn check_port_mappings(
    c: &ContainerDefinition,
    name: &str,
    network_mode: NetworkMode,
    host_ports: &mut HashSet<(i32, &'static str)>,
) -> Result<(), EcsError> {
    for pm in c.port_mappings.iter().flatten() {
        let proto = match pm.protocol.unwrap_or(TransportProtocol::Tcp) {
            TransportProtocol::Tcp => "tcp",
            TransportProtocol::Udp => "udp",
        };
        match network_mode {
            NetworkMode::None => {
                return Err(client(format!(
                "Port mappings are not allowed with the 'none' network mode (container '{name}')."
            )))
            }
            NetworkMode::Awsvpc | NetworkMode::Host => {
                check_host_port(network_mode, name, pm)?;
            }
            NetworkMode::Bridge => {}
        }
        match (pm.container_port, &pm.container_port_range) {
            (Some(cp), _) if !(1..=65535).contains(&cp) => {
                return Err(client(format!("Invalid containerPort {cp} for container '{name}': the valid range is 1 to 65535.")))
            }
            (None, None) => {
                return Err(client(format!("A port mapping of container '{name}' needs a 'containerPort' or a 'containerPortRange'.")))
            }
            _ => {}
        }
        let effective_host = match network_mode {
            NetworkMode::Awsvpc | NetworkMode::Host => pm.container_port,
            _ => pm.host_port.filter(|p| *p != 0),
        };
        if let Some(hp) = effective_host {
            if !(1..=65535).contains(&hp) {
                return Err(client(format!(
                    "Invalid hostPort {hp} for container '{name}': the valid range is 0 to 65535."
                )));
            }
            if !host_ports.insert((hp, proto)) {
                return Err(client(format!(
                    "Host port {hp}/{proto} is used by more than one port mapping in this task definition (container '{name}')."
                )));
            }
        }
    }
    Ok(())
}

/// Links only in `bridge` mode, each to another container of the task.
fn check_links(
    c: &ContainerDefinition,
    name: &str,
    network_mode: NetworkMode,
    names: &HashSet<&str>,
) -> Result<(), EcsError> {
    if c.links.as_ref().is_some_and(|l| !l.is_empty()) && network_mode != NetworkMode::Bridge {
        return Err(client(format!(
            "Links are supported only with the 'bridge' network mode (container '{name}' uses {network_mode})."
        )));
    }
    for link in c.links.iter().flatten() {
        let target = link.split(':').next().unwrap_or("");
        if !names.contains(target) || target == name {
            return Err(client(format!("Container '{name}' links to '{target}', which is not another container of this task definition.")));
        }
    }
    Ok(())
}

/// `mountPoints` name a volume of the task and a path; `volumesFrom` another container.
fn check_mounts(c: &ContainerDefinition, name: &str, known: &Known<'_>) -> Result<(), EcsError> {
    for mp in c.mount_points.iter().flatten() {
        let src = mp.source_volume.as_deref().unwrap_or("");
        if !known.volumes.contains(src) {
            return Err(client(format!(
                "Invalid 'mountPoints' for container '{name}': sourceVolume '{src}' is not a volume of this task definition."
            )));
        }
        if mp.container_path.as_deref().unwrap_or("").is_empty() {
            return Err(client(format!(
                "Invalid 'mountPoints' for container '{name}': containerPath is required."
            )));
        }
    }
    for vf in c.volumes_from.iter().flatten() {
        let src = vf.source_container.as_deref().unwrap_or("");
        if !known.names.contains(src) || src == name {
            return Err(client(format!(
                "Invalid 'volumesFrom' for container '{name}': sourceContainer '{src}' is not another container of this task definition."
            )));
        }
    }
    Ok(())
}

/// `dependsOn` names another container of the task, one with a health check for HEALTHY, a
/// non-essential one for SUCCESS.
fn check_depends_on(
    c: &ContainerDefinition,
    name: &str,
    containers: &[ContainerDefinition],
) -> Result<(), EcsError> {
    for d in c.depends_on.iter().flatten() {
        let target = d.container_name.as_str();
        if target == name {
            return Err(client(format!(
                "Container '{name}' cannot depend on itself."
            )));
        }
        let Some(tc) = containers
            .iter()
            .find(|x| x.name.as_deref() == Some(target))
        else {
            return Err(client(format!(
                "Invalid 'dependsOn' for container '{name}': container '{target}' is not in this task definition."
            )));
        };
        if d.condition == ContainerCondition::Healthy && tc.health_check.is_none() {
            return Err(client(format!(
                "Container '{name}' depends on '{target}' being HEALTHY, but '{target}' has no healthCheck."
            )));
        }
        // A container that must exit cannot be essential in ECS.
        if d.condition == ContainerCondition::Success && tc.essential.unwrap_or(true) {
            return Err(client(format!(
                "Container '{name}' depends on '{target}' with condition SUCCESS, so '{target}' must not be essential."
            )));
        }
    }
    Ok(())
}

/// Fargate's container rules: not privileged, no links.
fn check_fargate_container(c: &ContainerDefinition, name: &str) -> Result<(), EcsError> {
    if c.privileged == Some(true) {
        return Err(client(format!(
            "Fargate does not support privileged containers (container '{name}')."
        )));
    }
    if c.links.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(client(format!(
            "Fargate does not support links (container '{name}')."
        )));
    }
    Ok(())
}

/// A health check has a command, and its timings are in ECS's ranges.
fn check_health_check(hc: &HealthCheck, name: &str) -> Result<(), EcsError> {
    if hc.command.is_empty() {
        return Err(client(format!(
            "Invalid 'healthCheck' for container '{name}': command must not be empty."
        )));
    }
    let limits = [
        ("interval", hc.interval, 5..=300, " seconds"),
        ("timeout", hc.timeout, 2..=120, " seconds"),
        ("retries", hc.retries, 1..=10, ""),
        ("startPeriod", hc.start_period, 0..=300, " seconds"),
    ];
    for (field, value, range, unit) in limits {
        if let Some(v) = value.filter(|v| !range.contains(v)) {
            return Err(client(format!(
                "Invalid 'healthCheck.{field}' for container '{name}': {v}. The valid range is {} to {}{unit}.",
                range.start(),
                range.end()
            )));
        }
    }
    Ok(())
}

/// `repositoryCredentials.credentialsParameter` names a Secrets Manager secret: its ARN (full or
/// partial), or its name when it is in the task's Region, as ECS accepts it; and private
/// registry credentials are not for Amazon ECR images (ECS refuses them with this message).
fn check_repository_credentials(
    parameter: &str,
    image: Option<&str>,
    name: &str,
) -> Result<(), EcsError> {
    if !is_secret_reference(parameter) {
        return Err(client(format!(
            "Invalid 'repositoryCredentials' for container '{name}': 'credentialsParameter' must be the ARN or the name of an AWS Secrets Manager secret."
        )));
    }
    if image.is_some_and(is_ecr_image) {
        return Err(client(
            "Private repository credentials are not a supported authentication method for ECR repositories.".into(),
        ));
    }
    Ok(())
}

/// A Secrets Manager secret's ARN (`arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`),
/// or a secret name (1 to 512 of `A-Za-z0-9/_+=.@-`).
fn is_secret_reference(parameter: &str) -> bool {
    let is_name = |n: &str| {
        !n.is_empty()
            && n.len() <= 512
            && n.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "/_+=.@-".contains(ch))
    };
    match parameter.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(
                parts[..],
                [partition, "secretsmanager", region, account, resource]
                    if !partition.is_empty() && !region.is_empty()
                        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
                        && resource.strip_prefix("secret:").is_some_and(is_name)
            )
        }
        None => is_name(parameter),
    }
}

/// An Amazon ECR image: `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]/...`.
fn is_ecr_image(image: &str) -> bool {
    let Some((host, _)) = image.split_once('/') else {
        return false;
    };
    let labels: Vec<&str> = host.split('.').collect();
    match labels[..] {
        [account, "dkr", ecr, region, "amazonaws", "com", ref rest @ ..] => {
            account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && matches!(ecr, "ecr" | "ecr-fips")
                && !region.is_empty()
                && matches!(rest, [] | ["cn"])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parameters_are_secret_arns_or_names() {
        for ok in [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry/hub-AbC123",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hub",
            "registry/hub",
            "hub_creds+1=@.x-y",
        ] {
            assert!(is_secret_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "arn:aws:ssm:us-east-1:123456789012:parameter/x",
            "arn:aws:secretsmanager:us-east-1:123456789012:hub",
            "arn:aws:secretsmanager:us-east-1:12345:secret:hub",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
        ] {
            assert!(!is_secret_reference(bad), "{bad:?}");
        }
        let long = "a".repeat(513);
        assert!(!is_secret_reference(&long));
    }

    #[test]
    fn ecr_images_take_no_private_registry_credentials() {
        for ecr in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
        ] {
            assert!(is_ecr_image(ecr), "{ecr}");
            assert!(check_repository_credentials("hub", Some(ecr), "c")
                .unwrap_err()
                .message
                .contains("not a supported authentication method for ECR"));
        }
        for other in [
            "registry.example.com/app",
            "127.0.0.1:5000/app",
            "library/busybox",
            "busybox",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io/app",
        ] {
            assert!(!is_ecr_image(other), "{other}");
        }
        assert!(check_repository_credentials("hub", Some("127.0.0.1:5000/app"), "c").is_ok());
        let e = check_repository_credentials("arn:aws:s3:::b", Some("x/y"), "web").unwrap_err();
        assert!(e.message.contains("container 'web'"), "{}", e.message);
    }
}
