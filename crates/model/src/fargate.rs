//! ECS's request rules for the FARGATE launch type: which platform version a
//! task runs on, what `networkConfiguration` RunTask, CreateService,
//! UpdateService and CreateTaskSet must carry, and what a RunTask with
//! `launchType: FARGATE` may ask for (placement, sizes, storage, ports).
//!
//! These are pure checks returning [`EcsError`] with the modeled error codes
//! and ECS's messages. They do **not** check that subnets or security groups
//! exist (Flotilla has no VPC to look them up in; only their id syntax is
//! checked), do not choose a capacity provider (`flotilla_scheduler::capacity`)
//! and do not allocate addresses (`flotilla_scheduler::ipam`). The rules a
//! task definition must meet at registration live in
//! [`crate::task_definition`]; this module reuses them
//! ([`check_fargate_size`], [`check_ephemeral_storage`], [`check_host_port`])
//! rather than restating them.

use crate::error::{EcsError, ErrorCode};
use crate::shapes::{
    Compatibility, NetworkConfiguration, NetworkMode, OSFamily, PlacementConstraint,
    PlacementStrategy, TaskDefinition, TaskOverride,
};
use crate::task_definition::{
    check_ephemeral_storage, check_fargate_size, check_host_port, parse_task_cpu, parse_task_memory,
};

/// The platform version `LATEST` (and an absent `platformVersion`) stands for on Linux.
pub const LATEST_LINUX: &str = "1.4.0";
/// The Linux platform versions Flotilla runs.
pub const LINUX_VERSIONS: &[&str] = &["1.4.0", "1.3.0"];
/// `platformFamily` of a Linux task.
pub const PLATFORM_FAMILY_LINUX: &str = "Linux";
/// The most subnets an `awsvpcConfiguration` may list.
pub const MAX_SUBNETS: usize = 16;
/// The most security groups an `awsvpcConfiguration` may list.
pub const MAX_SECURITY_GROUPS: usize = 5;

/// The platform version a Fargate task or service runs on: absent or
/// `LATEST` is [`LATEST_LINUX`]; `1.4.0` and `1.3.0` are themselves.
///
/// Anything else is a `PlatformUnknownException`, "The specified platform
/// does not exist.": the code the model declares for RunTask, CreateService,
/// UpdateService and CreateTaskSet, and ECS's observed message.
pub fn resolve_platform_version(requested: Option<&str>) -> Result<String, EcsError> {
    match requested {
        None | Some("LATEST") => Ok(LATEST_LINUX.to_string()),
        Some(v) if LINUX_VERSIONS.contains(&v) => Ok(v.to_string()),
        Some(_) => Err(EcsError::new(
            ErrorCode::PlatformUnknownException,
            "The specified platform does not exist.",
        )),
    }
}

/// Whether platform version `version` (already resolved) can run a task of
/// `cpu` units with `ephemeral_storage_gib` of storage: 8 and 16 vCPU tasks
/// and configurable ephemeral storage need 1.4.0. Otherwise a
/// `PlatformTaskDefinitionIncompatibilityException` with ECS's message.
pub fn check_platform_supports(
    version: &str,
    cpu: u32,
    ephemeral_storage_gib: Option<i32>,
) -> Result<(), EcsError> {
    if version == "1.3.0" && (cpu > 4096 || ephemeral_storage_gib.is_some()) {
        return Err(EcsError::new(
            ErrorCode::PlatformTaskDefinitionIncompatibilityException,
            "One or more of the requested capabilities are not supported.",
        ));
    }
    Ok(())
}

/// `platformFamily` as ECS reports it on tasks and services: `Linux` for a
/// task definition without a `runtimePlatform` or with `LINUX`, else the
/// operating system family's wire name (`WINDOWS_SERVER_2022_CORE`, ...).
pub fn platform_family(td: &TaskDefinition) -> String {
    match td
        .runtime_platform
        .as_ref()
        .and_then(|r| r.operating_system_family)
    {
        None | Some(OSFamily::Linux) => PLATFORM_FAMILY_LINUX.to_string(),
        Some(other) => other.as_str().to_string(),
    }
}

/// True for `subnet-` followed by 8 to 17 lowercase hex digits.
pub fn is_subnet_id(id: &str) -> bool {
    is_hex_id(id, "subnet-")
}

/// True for `sg-` followed by 8 to 17 lowercase hex digits.
pub fn is_security_group_id(id: &str) -> bool {
    is_hex_id(id, "sg-")
}

fn is_hex_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Checks a request's `networkConfiguration` against the task definition's
/// network mode (`None` is `bridge`, as at registration). All errors are
/// `InvalidParameterException`:
///
/// - awsvpc without `awsvpcConfiguration`: "Network Configuration must be
///   provided when networkMode 'awsvpc' is specified."
/// - no subnets: "subnets can not be empty."; more than 16: "subnets can
///   have at most 16 items."; more than 5 security groups: "securityGroups
///   can have at most 5 items."
/// - a malformed id: "Error retrieving subnet information for [ID]: The
///   subnet ID 'ID' is malformed." / "Error retrieving security group
///   information for [ID]: The security group ID 'ID' is malformed."
/// - any `networkConfiguration` with another mode: "Network Configuration
///   is not valid for the given networkMode of this task definition."
pub fn validate_network_configuration(
    network_mode: Option<NetworkMode>,
    config: Option<&NetworkConfiguration>,
) -> Result<(), EcsError> {
    fn invalid(message: impl Into<String>) -> EcsError {
        EcsError::invalid_parameter(message)
    }
    if network_mode.unwrap_or(NetworkMode::Bridge) != NetworkMode::Awsvpc {
        return match config {
            Some(_) => Err(invalid(
                "Network Configuration is not valid for the given networkMode of this task definition.",
            )),
            None => Ok(()),
        };
    }
    let Some(vpc) = config.and_then(|c| c.awsvpc_configuration.as_ref()) else {
        return Err(invalid(
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
        ));
    };
    if vpc.subnets.is_empty() {
        return Err(invalid("subnets can not be empty."));
    }
    if vpc.subnets.len() > MAX_SUBNETS {
        return Err(invalid(format!(
            "subnets can have at most {MAX_SUBNETS} items."
        )));
    }
    let groups = vpc.security_groups.as_deref().unwrap_or_default();
    if groups.len() > MAX_SECURITY_GROUPS {
        return Err(invalid(format!(
            "securityGroups can have at most {MAX_SECURITY_GROUPS} items."
        )));
    }
    if let Some(bad) = vpc.subnets.iter().find(|s| !is_subnet_id(s)) {
        return Err(invalid(format!(
            "Error retrieving subnet information for [{bad}]: The subnet ID '{bad}' is malformed."
        )));
    }
    if let Some(bad) = groups.iter().find(|s| !is_security_group_id(s)) {
        return Err(invalid(format!(
            "Error retrieving security group information for [{bad}]: The security group ID '{bad}' is malformed."
        )));
    }
    Ok(())
}

/// The task size a Fargate task runs with: the task definition's cpu and
/// memory with the overrides' applied. `Err` (`ClientException`) if an
/// override does not parse or either value is missing.
pub fn effective_size(
    td: &TaskDefinition,
    overrides: Option<&TaskOverride>,
) -> Result<(u32, u32), EcsError> {
    let cpu = match overrides.and_then(|o| o.cpu.as_deref()) {
        Some(s) => parse_task_cpu(s).ok_or_else(|| {
            EcsError::client(format!(
                "Invalid 'cpu' override for task: '{s}' is not a number of CPU units (e.g. 1024) or vCPUs (e.g. '1 vCPU')."
            ))
        })?,
        None => td.cpu.as_deref().and_then(parse_task_cpu).ok_or_else(|| {
            EcsError::client("Task-level 'cpu' and 'memory' are required for the Fargate launch type.")
        })?,
    };
    let memory = match overrides.and_then(|o| o.memory.as_deref()) {
        Some(s) => parse_task_memory(s).ok_or_else(|| {
            EcsError::client(format!(
                "Invalid 'memory' override for task: '{s}' is not a number of MiB (e.g. 512) or GB (e.g. '1GB')."
            ))
        })?,
        None => td.memory.as_deref().and_then(parse_task_memory).ok_or_else(|| {
            EcsError::client("Task-level 'cpu' and 'memory' are required for the Fargate launch type.")
        })?,
    };
    Ok((cpu, memory))
}

/// Checks a RunTask (or StartTask-like) request with `launchType: FARGATE`,
/// in this order:
///
/// 1. the task definition's `compatibilities` contains `FARGATE`, else
///    `ClientException` "Task definition does not support launch_type FARGATE.";
/// 2. no placement constraints, then no placement strategies
///    (`InvalidParameterException` "Placement constraints are not supported
///    with the FARGATE launch type." / "Placement strategies are not
///    supported with the FARGATE launch type.");
/// 3. task cpu/memory after `overrides` is a Fargate size
///    ([`effective_size`], then [`check_fargate_size`]'s `ClientException`);
/// 4. `ephemeralStorage.sizeInGiB` of the definition and of the overrides is
///    21 to 200 ([`check_ephemeral_storage`]);
/// 5. every port mapping's `hostPort`, if set, equals its `containerPort`
///    ([`check_host_port`], as at registration of an awsvpc definition).
pub fn validate_fargate_run(
    td: &TaskDefinition,
    overrides: Option<&TaskOverride>,
    placement_constraints: &[PlacementConstraint],
    placement_strategies: &[PlacementStrategy],
) -> Result<(), EcsError> {
    if !td
        .compatibilities
        .as_deref()
        .unwrap_or_default()
        .contains(&Compatibility::Fargate)
    {
        return Err(EcsError::client(
            "Task definition does not support launch_type FARGATE.",
        ));
    }
    if !placement_constraints.is_empty() {
        return Err(EcsError::invalid_parameter(
            "Placement constraints are not supported with the FARGATE launch type.",
        ));
    }
    if !placement_strategies.is_empty() {
        return Err(EcsError::invalid_parameter(
            "Placement strategies are not supported with the FARGATE launch type.",
        ));
    }
    let (cpu, memory) = effective_size(td, overrides)?;
    check_fargate_size(cpu, memory)?;
    for es in [
        td.ephemeral_storage.as_ref(),
        overrides.and_then(|o| o.ephemeral_storage.as_ref()),
    ]
    .into_iter()
    .flatten()
    {
        check_ephemeral_storage(es.size_in_gi_b)?;
    }
    for c in td.container_definitions.as_deref().unwrap_or_default() {
        let name = c.name.as_deref().unwrap_or("");
        for pm in c.port_mappings.as_deref().unwrap_or_default() {
            check_host_port(NetworkMode::Awsvpc, name, pm)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::{
        AwsVpcConfiguration, ContainerDefinition, EphemeralStorage, PlacementStrategyType,
        PortMapping, RuntimePlatform,
    };

    fn td() -> TaskDefinition {
        TaskDefinition {
            network_mode: Some(NetworkMode::Awsvpc),
            cpu: Some("256".into()),
            memory: Some("512".into()),
            compatibilities: Some(vec![Compatibility::Ec2, Compatibility::Fargate]),
            container_definitions: Some(vec![ContainerDefinition {
                name: Some("web".into()),
                port_mappings: Some(vec![PortMapping {
                    container_port: Some(80),
                    host_port: Some(80),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn vpc(subnets: &[&str], groups: &[&str]) -> NetworkConfiguration {
        NetworkConfiguration {
            awsvpc_configuration: Some(AwsVpcConfiguration {
                subnets: subnets.iter().map(|s| s.to_string()).collect(),
                security_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
                assign_public_ip: None,
            }),
        }
    }

    fn fails(r: Result<(), EcsError>, code: ErrorCode, message: &str) {
        let e = r.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (code, message));
    }

    #[test]
    fn platform_versions() {
        assert_eq!(resolve_platform_version(None).unwrap(), "1.4.0");
        assert_eq!(resolve_platform_version(Some("LATEST")).unwrap(), "1.4.0");
        assert_eq!(resolve_platform_version(Some("1.3.0")).unwrap(), "1.3.0");
        assert_eq!(resolve_platform_version(Some("1.4.0")).unwrap(), "1.4.0");
        for bad in ["1.4", "1.0.0", "latest", ""] {
            fails(
                resolve_platform_version(Some(bad)).map(drop),
                ErrorCode::PlatformUnknownException,
                "The specified platform does not exist.",
            );
        }
        assert!(check_platform_supports("1.4.0", 16384, Some(200)).is_ok());
        assert!(check_platform_supports("1.3.0", 4096, None).is_ok());
        fails(
            check_platform_supports("1.3.0", 8192, None),
            ErrorCode::PlatformTaskDefinitionIncompatibilityException,
            "One or more of the requested capabilities are not supported.",
        );
    }

    #[test]
    fn platform_family_is_linux_unless_windows() {
        assert_eq!(platform_family(&td()), "Linux");
        let mut w = td();
        w.runtime_platform = Some(RuntimePlatform {
            operating_system_family: Some(OSFamily::WindowsServer2019Core),
            cpu_architecture: None,
        });
        assert_eq!(platform_family(&w), "WINDOWS_SERVER_2019_CORE");
    }

    #[test]
    fn network_configuration_rules() {
        let awsvpc = Some(NetworkMode::Awsvpc);
        let ok = vpc(&["subnet-0123abcd"], &["sg-0123456789abcdef0"]);
        assert!(validate_network_configuration(awsvpc, Some(&ok)).is_ok());
        assert!(validate_network_configuration(None, None).is_ok());
        let ip = ErrorCode::InvalidParameterException;
        fails(
            validate_network_configuration(awsvpc, None),
            ip,
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
        );
        fails(
            validate_network_configuration(awsvpc, Some(&NetworkConfiguration::default())),
            ip,
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
        );
        fails(
            validate_network_configuration(awsvpc, Some(&vpc(&[], &[]))),
            ip,
            "subnets can not be empty.",
        );
        let many: Vec<String> = (0..17).map(|i| format!("subnet-{i:08x}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        fails(
            validate_network_configuration(awsvpc, Some(&vpc(&many, &[]))),
            ip,
            "subnets can have at most 16 items.",
        );
        assert!(validate_network_configuration(awsvpc, Some(&vpc(&many[..16], &[]))).is_ok());
        let sgs = [
            "sg-00000001",
            "sg-00000002",
            "sg-00000003",
            "sg-00000004",
            "sg-00000005",
            "sg-00000006",
        ];
        fails(
            validate_network_configuration(awsvpc, Some(&vpc(&["subnet-0123abcd"], &sgs))),
            ip,
            "securityGroups can have at most 5 items.",
        );
        fails(
            validate_network_configuration(awsvpc, Some(&vpc(&["subnet-0123abcd", "subnet-XYZ"], &[]))),
            ip,
            "Error retrieving subnet information for [subnet-XYZ]: The subnet ID 'subnet-XYZ' is malformed.",
        );
        fails(
            validate_network_configuration(awsvpc, Some(&vpc(&["subnet-0123abcd"], &["sg-1234"]))),
            ip,
            "Error retrieving security group information for [sg-1234]: The security group ID 'sg-1234' is malformed.",
        );
        fails(
            validate_network_configuration(Some(NetworkMode::Bridge), Some(&ok)),
            ip,
            "Network Configuration is not valid for the given networkMode of this task definition.",
        );
        fails(
            validate_network_configuration(None, Some(&ok)),
            ip,
            "Network Configuration is not valid for the given networkMode of this task definition.",
        );
    }

    #[test]
    fn id_syntax() {
        assert!(is_subnet_id("subnet-01234567"));
        assert!(is_subnet_id("subnet-0123456789abcdef0"));
        assert!(!is_subnet_id("subnet-0123456789abcdef01"));
        assert!(!is_subnet_id("subnet-0123456"));
        assert!(!is_subnet_id("subnet-0123456G"));
        assert!(!is_subnet_id("sg-01234567"));
        assert!(is_security_group_id("sg-abcdef01"));
        assert!(!is_security_group_id("sg-ABCDEF01"));
    }

    #[test]
    fn fargate_run_rules() {
        assert!(validate_fargate_run(&td(), None, &[], &[]).is_ok());
        let mut ec2_only = td();
        ec2_only.compatibilities = Some(vec![Compatibility::Ec2]);
        fails(
            validate_fargate_run(&ec2_only, None, &[], &[]),
            ErrorCode::ClientException,
            "Task definition does not support launch_type FARGATE.",
        );
        fails(
            validate_fargate_run(&td(), None, &[PlacementConstraint::default()], &[]),
            ErrorCode::InvalidParameterException,
            "Placement constraints are not supported with the FARGATE launch type.",
        );
        let spread = PlacementStrategy {
            r#type: Some(PlacementStrategyType::Spread),
            field: Some("attribute:ecs.availability-zone".into()),
        };
        fails(
            validate_fargate_run(&td(), None, &[], &[spread]),
            ErrorCode::InvalidParameterException,
            "Placement strategies are not supported with the FARGATE launch type.",
        );
    }

    #[test]
    fn overrides_must_give_a_fargate_size() {
        let o = |cpu: Option<&str>, memory: Option<&str>| TaskOverride {
            cpu: cpu.map(Into::into),
            memory: memory.map(Into::into),
            ..Default::default()
        };
        assert!(validate_fargate_run(&td(), Some(&o(None, Some("2GB"))), &[], &[]).is_ok());
        assert!(
            validate_fargate_run(&td(), Some(&o(Some("1 vCPU"), Some("2048"))), &[], &[]).is_ok()
        );
        assert_eq!(
            effective_size(&td(), Some(&o(Some("1 vCPU"), None))).unwrap(),
            (1024, 512)
        );
        fails(
            validate_fargate_run(&td(), Some(&o(Some("1024"), None)), &[], &[]),
            ErrorCode::ClientException,
            "No Fargate configuration exists for given values: 1024 CPU, 512 memory. See the Amazon ECS documentation for the valid combinations.",
        );
        let e = validate_fargate_run(&td(), Some(&o(Some("lots"), None)), &[], &[]).unwrap_err();
        assert_eq!(e.code, ErrorCode::ClientException);
        assert!(e.message.contains("'lots'"));
    }

    #[test]
    fn ephemeral_storage_in_definition_and_overrides() {
        let storage = |g| Some(EphemeralStorage { size_in_gi_b: g });
        let mut big = td();
        big.ephemeral_storage = storage(200);
        assert!(validate_fargate_run(&big, None, &[], &[]).is_ok());
        big.ephemeral_storage = storage(201);
        fails(
            validate_fargate_run(&big, None, &[], &[]),
            ErrorCode::ClientException,
            "Invalid 'ephemeralStorage.sizeInGiB' setting: 201. The valid range is 21 to 200 GiB.",
        );
        let o = TaskOverride {
            ephemeral_storage: storage(20),
            ..Default::default()
        };
        fails(
            validate_fargate_run(&td(), Some(&o), &[], &[]),
            ErrorCode::ClientException,
            "Invalid 'ephemeralStorage.sizeInGiB' setting: 20. The valid range is 21 to 200 GiB.",
        );
    }

    #[test]
    fn host_ports_must_match_container_ports() {
        let mut t = td();
        let pm = &mut t.container_definitions.as_mut().unwrap()[0]
            .port_mappings
            .as_mut()
            .unwrap()[0];
        pm.host_port = Some(8080);
        fails(
            validate_fargate_run(&t, None, &[], &[]),
            ErrorCode::ClientException,
            "When networkMode=awsvpc, the containerPort (80) and hostPort (8080) must be the same (container 'web').",
        );
    }
}
