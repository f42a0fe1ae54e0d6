//! ECS's rules for task definitions: what RegisterTaskDefinition accepts, how it normalizes the
//! request, and what it computes (`compatibilities`, `requiresAttributes`).
//!
//! [`validate_and_build`] turns a RegisterTaskDefinitionRequest into the TaskDefinition that will be
//! stored, or a `ClientException` naming the container and the field to fix, worded after ECS's
//! own messages where they are known. It is pure: the caller hands in the ARN, revision, time and
//! principal.

use crate::error::EcsError;
use crate::shapes::{
    Attribute, Compatibility, ContainerDefinition, NetworkMode, RegisterTaskDefinitionRequest,
    TaskDefinition, TaskDefinitionStatus, TransportProtocol,
};
use std::collections::{BTreeSet, HashSet};

mod container_rules;
use container_rules::{check_container, Known};
// The tests below name it through `use super::*`, as they did when the container rules lived here.
#[cfg(test)]
use crate::shapes::ContainerCondition;

/// The most containers a task definition may hold (ECS service quota, not adjustable).
pub const MAX_CONTAINERS: usize = 10;

/// Fargate's valid task sizes: (cpu units, allowed memory MiB).
pub fn fargate_memory_allowed(cpu: u32, memory: u32) -> bool {
    match cpu {
        256 => matches!(memory, 512 | 1024 | 2048),
        512 => (1024..=4096).contains(&memory) && memory.is_multiple_of(1024),
        1024 => (2048..=8192).contains(&memory) && memory.is_multiple_of(1024),
        2048 => (4096..=16384).contains(&memory) && memory.is_multiple_of(1024),
        4096 => (8192..=30720).contains(&memory) && memory.is_multiple_of(1024),
        8192 => (16384..=61440).contains(&memory) && memory.is_multiple_of(4096),
        16384 => (32768..=122880).contains(&memory) && memory.is_multiple_of(8192),
        _ => false,
    }
}

/// `Ok` if (cpu units, memory MiB) is a Fargate task size; else the `ClientException` ECS answers
/// RegisterTaskDefinition with, also used for RunTask's cpu/memory overrides.
pub fn check_fargate_size(cpu: u32, memory: u32) -> Result<(), EcsError> {
    if fargate_memory_allowed(cpu, memory) {
        Ok(())
    } else {
        Err(client(format!(
            "No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid combinations."
        )))
    }
}

/// The smallest and largest Fargate ephemeral storage, in GiB (`EphemeralStorage.sizeInGiB`).
pub const EPHEMERAL_STORAGE_GIB: std::ops::RangeInclusive<i32> = 21..=200;

/// `Ok` if `size_in_gib` is a valid `ephemeralStorage.sizeInGiB` (21 to 200), in a task
/// definition or a task override; else a `ClientException`.
pub fn check_ephemeral_storage(size_in_gib: i32) -> Result<(), EcsError> {
    if EPHEMERAL_STORAGE_GIB.contains(&size_in_gib) {
        Ok(())
    } else {
        Err(client(format!(
            "Invalid 'ephemeralStorage.sizeInGiB' setting: {size_in_gib}. The valid range is 21 to 200 GiB."
        )))
    }
}

/// In `awsvpc` and `host` network modes a port mapping's `hostPort`, if set and not 0, must equal
/// its `containerPort`; else a `ClientException` naming the container. Other modes always pass.
pub fn check_host_port(
    network_mode: NetworkMode,
    container: &str,
    pm: &crate::shapes::PortMapping,
) -> Result<(), EcsError> {
    if !matches!(network_mode, NetworkMode::Awsvpc | NetworkMode::Host) {
        return Ok(());
    }
    match (pm.container_port, pm.host_port) {
        (Some(cp), Some(hp)) if hp != cp && hp != 0 => Err(client(format!(
            "When networkMode={network_mode}, the containerPort ({cp}) and hostPort ({hp}) must be the same (container '{container}')."
        ))),
        _ => Ok(()),
    }
}

/// Parses task-level cpu: `"1024"`, `"1 vCPU"`, `"0.25 vcpu"`. Returns CPU units.
pub fn parse_task_cpu(s: &str) -> Option<u32> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(num) = lower.strip_suffix("vcpu") {
        let v: f64 = num.trim().parse().ok()?;
        let units = v * 1024.0;
        if units <= 0.0 || units.fract() != 0.0 || units > f64::from(u32::MAX) {
            return None;
        }
        return Some(units as u32);
    }
    t.parse().ok()
}

/// Parses task-level memory: `"512"`, `"1GB"`, `"0.5 GB"`. Returns MiB.
pub fn parse_task_memory(s: &str) -> Option<u32> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(num) = lower.strip_suffix("gb") {
        let v: f64 = num.trim().parse().ok()?;
        let mib = v * 1024.0;
        if mib <= 0.0 || mib.fract() != 0.0 || mib > f64::from(u32::MAX) {
            return None;
        }
        return Some(mib as u32);
    }
    t.parse().ok()
}

/// What the caller supplies besides the request.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The ARN of the new revision.
    pub arn: String,
    /// The new revision number.
    pub revision: i32,
    /// Registration time.
    pub registered_at: f64,
    /// The principal ARN that registered it.
    pub registered_by: String,
}

fn client(msg: String) -> EcsError {
    EcsError::client(msg)
}

/// Validates a registration request as ECS does and builds the TaskDefinition to store.
///
/// The rules run in a fixed order, so that a request breaking several gets the same first error
/// every time: the family, the container count, the task size, Fargate's task rules, the
/// ephemeral storage, the volumes, the container names, then each container in turn
/// ([`check_container`]), and last the task-wide sums.
pub fn validate_and_build(
    req: &RegisterTaskDefinitionRequest,
    reg: &Registration,
) -> Result<TaskDefinition, EcsError> {
    check_family(&req.family)?;
    let containers = &req.container_definitions;
    check_names_and_images(containers)?;
    check_container_count(containers)?;
    let task = task_level(req)?;
    if task.fargate {
        check_fargate_task(req, &task)?;
    }
    if let Some(es) = &req.ephemeral_storage {
        check_ephemeral_storage(es.size_in_gi_b)?;
    }
    let volume_names = check_volumes(req, task.fargate)?;
    let names = check_container_names(containers)?;
    check_execution_role(req)?;
    let mut essential = 0;
    let mut container_memory_sum: u64 = 0;
    let mut host_ports = HashSet::new();
    let known = Known {
        containers,
        names: &names,
        volumes: &volume_names,
    };
    for c in containers {
        if c.essential.unwrap_or(true) {
            essential += 1;
        }
        container_memory_sum +=
            u64::try_from(c.memory.or(c.memory_reservation).unwrap_or(0)).unwrap_or(0);
        check_container(c, &task, &known, &mut host_ports)?;
    }
    check_task_sums(essential, container_memory_sum, task.memory)?;
    Ok(build(req, reg, &task))
}

/// The task-level facts the container rules depend on.
struct TaskLevel {
    /// `requiresCompatibilities` includes FARGATE.
    fargate: bool,
    /// The network mode, `bridge` when absent.
    network_mode: NetworkMode,
    /// Task-level cpu in CPU units.
    cpu: Option<u32>,
    /// Task-level memory in MiB.
    memory: Option<u32>,
}

fn check_family(family: &str) -> Result<(), EcsError> {
    if !crate::arn::is_valid_name(family) {
        return Err(client(format!(
            "Family '{family}' is not valid: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )));
    }
    Ok(())
}

/// ECS reads a task's secrets and its private registry credentials with its execution role: a
/// container with `secrets` (even an empty list), `logConfiguration.secretOptions` or
/// `repositoryCredentials` needs `executionRoleArn`.
fn check_execution_role(req: &RegisterTaskDefinitionRequest) -> Result<(), EcsError> {
    if req
        .execution_role_arn
        .as_deref()
        .is_some_and(|r| !r.is_empty())
    {
        return Ok(());
    }
    for c in &req.container_definitions {
        if c.secrets.is_some() {
            return Err(client(
                "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'.".into(),
            ));
        }
        if c.log_configuration
            .as_ref()
            .is_some_and(|l| l.secret_options.is_some())
        {
            return Err(client(
                "When you are specifying log configuration secret options, you must also specify a value for 'executionRoleArn'.".into(),
            ));
        }
        if c.repository_credentials.is_some() {
            return Err(client(
                "Private repository authentication requires that the task definition specify a value for executionRoleArn.".into(),
            ));
        }
    }
    Ok(())
}

fn check_container_count(containers: &[ContainerDefinition]) -> Result<(), EcsError> {
    if containers.is_empty() {
        return Err(client("Container list cannot be empty.".into()));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(client(format!(
            "Too many containers: a task definition can have at most {MAX_CONTAINERS} containers, this one has {}.",
            containers.len()
        )));
    }
    Ok(())
}

/// The launch compatibility, network mode and task size, with the size parsed and range-checked.
fn task_level(req: &RegisterTaskDefinitionRequest) -> Result<TaskLevel, EcsError> {
    let requires: BTreeSet<Compatibility> = req
        .requires_compatibilities
        .iter()
        .flatten()
        .copied()
        .collect();
    let fargate = requires.contains(&Compatibility::Fargate);
    let network_mode = req.network_mode.unwrap_or(NetworkMode::Bridge);
    let cpu = match &req.cpu {
        Some(s) => Some(parse_task_cpu(s).ok_or_else(|| {
            client(format!("Invalid 'cpu' setting for task: '{s}' is not a number of CPU units (e.g. 1024) or vCPUs (e.g. '1 vCPU')."))
        })?),
        None => None,
    };
    let memory = match &req.memory {
        Some(s) => Some(parse_task_memory(s).ok_or_else(|| {
            client(format!("Invalid 'memory' setting for task: '{s}' is not a number of MiB (e.g. 512) or GB (e.g. '1GB')."))
        })?),
        None => None,
    };
    if let Some(cpu) = cpu {
        if !fargate && !(128..=196_608).contains(&cpu) {
            return Err(client(format!(
                "Invalid 'cpu' setting for task: {cpu} CPU units. The valid range is 128 to 196608."
            )));
        }
    }
    if let Some(mem) = memory {
        if mem < 6 {
            return Err(client(format!(
                "Invalid 'memory' setting for task: {mem} MiB. The minimum is 6 MiB."
            )));
        }
    }
    Ok(TaskLevel {
        fargate,
        network_mode,
        cpu,
        memory,
    })
}

/// Fargate's task rules: `awsvpc`, a task size from its table, no placement constraints, no
/// host pid or ipc namespace.
fn check_fargate_task(
    req: &RegisterTaskDefinitionRequest,
    task: &TaskLevel,
) -> Result<(), EcsError> {
    let network_mode = task.network_mode;
    if network_mode != NetworkMode::Awsvpc {
        return Err(client(format!(
            "Tasks using the Fargate launch type must use the 'awsvpc' network mode; this task definition uses '{network_mode}'."
        )));
    }
    let (Some(cpu), Some(mem)) = (task.cpu, task.memory) else {
        return Err(client(
            "Task-level 'cpu' and 'memory' are required for the Fargate launch type.".into(),
        ));
    };
    check_fargate_size(cpu, mem)?;
    if req
        .placement_constraints
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(client(
            "Fargate does not support placement constraints.".into(),
        ));
    }
    if req.pid_mode == Some(crate::shapes::PidMode::Host) {
        return Err(client(
            "Tasks using the Fargate launch type do not support pidMode 'host'. The supported value for pidMode is 'task'.".into(),
        ));
    }
    if req.ipc_mode.is_some() {
        return Err(client(
            "Tasks using the Fargate launch type do not support ipcMode.".into(),
        ));
    }
    Ok(())
}

/// Each volume named validly and once (and, on Fargate, no host `sourcePath`); returns the names.
fn check_volumes(
    req: &RegisterTaskDefinitionRequest,
    fargate: bool,
) -> Result<HashSet<String>, EcsError> {
    let mut volume_names = HashSet::new();
    for v in req.volumes.iter().flatten() {
        let Some(name) = v.name.as_deref() else {
            return Err(client("Volume name should not be null or empty.".into()));
        };
        if !crate::arn::is_valid_name(name) {
            return Err(client(format!("Invalid volume name '{name}': up to 255 letters, numbers, hyphens and underscores are allowed.")));
        }
        if !volume_names.insert(name.to_string()) {
            return Err(client(format!("Duplicate volume name '{name}'.")));
        }
        if fargate
            && v.host
                .as_ref()
                .and_then(|h| h.source_path.as_ref())
                .is_some()
        {
            return Err(client(format!(
                "Fargate does not support host volumes with a 'sourcePath' (volume '{name}')."
            )));
        }
    }
    Ok(volume_names)
}

/// Each container named validly and once, with an image; returns the names.
/// The volumes as ECS stores them: an `efsVolumeConfiguration` without `rootDirectory` gets
/// `/`, the root of the file system it mounts.
fn with_defaults(mut volumes: Vec<crate::shapes::Volume>) -> Vec<crate::shapes::Volume> {
    for v in &mut volumes {
        if let Some(efs) = v.efs_volume_configuration.as_mut() {
            efs.root_directory.get_or_insert_with(|| "/".to_string());
        }
    }
    volumes
}

/// Each container has a name and an image, checked first, as ECS checks them, with its messages.
fn check_names_and_images(containers: &[ContainerDefinition]) -> Result<(), EcsError> {
    for c in containers {
        if c.name.as_deref().unwrap_or("").is_empty() {
            return Err(client("Container.name should not be null or empty.".into()));
        }
        if c.image.as_deref().unwrap_or("").trim().is_empty() {
            return Err(client(
                "Container.image should not be null or empty.".into(),
            ));
        }
    }
    Ok(())
}

fn check_container_names(containers: &[ContainerDefinition]) -> Result<HashSet<&str>, EcsError> {
    let mut names = HashSet::new();
    for c in containers {
        let name = c.name.as_deref().unwrap_or("");
        if !crate::arn::is_valid_name(name) {
            return Err(client(format!(
                "Invalid container name '{name}': up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed."
            )));
        }
        if !names.insert(name) {
            return Err(client(format!("Duplicate container name '{name}': container names must be unique within a task definition.")));
        }
    }
    Ok(names)
}

/// At least one essential container; the containers' memory within the task's.
fn check_task_sums(
    essential: usize,
    container_memory_sum: u64,
    task_memory: Option<u32>,
) -> Result<(), EcsError> {
    if essential == 0 {
        return Err(client(
            "At least one essential container is required in a task definition.".into(),
        ));
    }
    if let Some(tm) = task_memory {
        if container_memory_sum > u64::from(tm) {
            return Err(client(format!(
                "The sum of the containers' memory ({container_memory_sum} MiB) is more than the task memory ({tm} MiB)."
            )));
        }
    }
    Ok(())
}

/// The TaskDefinition to store: the request with ECS's defaults filled in and the computed
/// members.
fn build(
    req: &RegisterTaskDefinitionRequest,
    reg: &Registration,
    task: &TaskLevel,
) -> TaskDefinition {
    let network_mode = task.network_mode;
    let mut td = TaskDefinition {
        task_definition_arn: Some(reg.arn.clone()),
        container_definitions: Some(normalize_containers(
            &req.container_definitions,
            network_mode,
        )),
        family: Some(req.family.clone()),
        // ECS treats an empty role ARN (what `aws ecs register-task-definition
        // --generate-cli-skeleton` leaves in) as no role: it is not echoed back and does not
        // make the task require the task-iam-role capability.
        task_role_arn: non_empty(&req.task_role_arn),
        execution_role_arn: non_empty(&req.execution_role_arn),
        network_mode: Some(network_mode),
        revision: reg.revision,
        volumes: Some(with_defaults(req.volumes.clone().unwrap_or_default())),
        status: Some(TaskDefinitionStatus::Active),
        requires_attributes: None,
        placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
        compatibilities: None,
        runtime_platform: req.runtime_platform.clone(),
        requires_compatibilities: req.requires_compatibilities.clone(),
        cpu: task.cpu.map(|c| c.to_string()),
        memory: task.memory.map(|m| m.to_string()),
        inference_accelerators: req.inference_accelerators.clone(),
        pid_mode: req.pid_mode,
        ipc_mode: req.ipc_mode,
        proxy_configuration: req.proxy_configuration.clone(),
        registered_at: Some(reg.registered_at),
        deregistered_at: None,
        delete_requested_at: None,
        registered_by: Some(reg.registered_by.clone()),
        ephemeral_storage: req.ephemeral_storage.clone(),
        enable_fault_injection: req.enable_fault_injection,
        trusted_execution_configuration: req.trusted_execution_configuration.clone(),
    };
    td.compatibilities = Some(compute_compatibilities(&td));
    td.requires_attributes = Some(compute_requires_attributes(&td));
    td
}

/// An optional string member, with the empty string read as absent.
fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|v| !v.is_empty()).cloned()
}

/// ECS fills in defaults it reports back (`essential`, empty lists).
fn normalize_containers(
    containers: &[crate::shapes::ContainerDefinition],
    network_mode: NetworkMode,
) -> Vec<crate::shapes::ContainerDefinition> {
    containers
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.essential = Some(c.essential.unwrap_or(true));
            c.port_mappings.get_or_insert_with(Vec::new);
            c.environment.get_or_insert_with(Vec::new);
            c.mount_points.get_or_insert_with(Vec::new);
            c.volumes_from.get_or_insert_with(Vec::new);
            for pm in c.port_mappings.iter_mut().flatten() {
                pm.protocol.get_or_insert(TransportProtocol::Tcp);
                // ECS reports the host port it will use: the container port in awsvpc and host
                // mode, 0 (dynamic) when a bridge mapping leaves it out.
                if pm.container_port.is_some() {
                    match network_mode {
                        NetworkMode::Awsvpc | NetworkMode::Host => pm.host_port = pm.container_port,
                        _ => {
                            pm.host_port.get_or_insert(0);
                        }
                    }
                }
            }
            c
        })
        .collect()
}

/// The launch types a definition can run on, as ECS computes `compatibilities`.
pub fn compute_compatibilities(td: &TaskDefinition) -> Vec<Compatibility> {
    let mut out = vec![Compatibility::Ec2];
    let awsvpc = td.network_mode == Some(NetworkMode::Awsvpc);
    if !awsvpc {
        out.push(Compatibility::External);
    }
    let sized = match (
        td.cpu.as_deref().and_then(parse_task_cpu),
        td.memory.as_deref().and_then(parse_task_memory),
    ) {
        (Some(c), Some(m)) => fargate_memory_allowed(c, m),
        _ => false,
    };
    let containers = td.container_definitions.as_deref().unwrap_or_default();
    let fargate_ok = awsvpc
        && sized
        && containers
            .iter()
            .all(|c| c.privileged != Some(true) && c.links.as_ref().is_none_or(Vec::is_empty))
        && td.placement_constraints.as_ref().is_none_or(Vec::is_empty);
    if fargate_ok {
        out.push(Compatibility::Fargate);
    }
    out
}

/// The container instance attributes a definition needs, as ECS computes `requiresAttributes`.
pub fn compute_requires_attributes(td: &TaskDefinition) -> Vec<Attribute> {
    let mut names: BTreeSet<&'static str> = BTreeSet::new();
    let containers = td.container_definitions.as_deref().unwrap_or_default();
    for c in containers {
        if c.memory_reservation.is_some() {
            names.insert("com.amazonaws.ecs.capability.docker-remote-api.1.21");
        }
        if c.docker_labels.as_ref().is_some_and(|l| !l.is_empty()) {
            names.insert("com.amazonaws.ecs.capability.docker-remote-api.1.18");
        }
        if c.ulimits.as_ref().is_some_and(|l| !l.is_empty()) {
            names.insert("com.amazonaws.ecs.capability.docker-remote-api.1.18");
        }
        if c.health_check.is_some() {
            names.insert("ecs.capability.container-health-check");
            names.insert("com.amazonaws.ecs.capability.docker-remote-api.1.24");
        }
        if c.depends_on.as_ref().is_some_and(|d| !d.is_empty()) {
            names.insert("ecs.capability.container-ordering");
        }
        if c.repository_credentials.is_some() {
            names.insert(
                "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager",
            );
        }
        if let Some(lp) = &c.linux_parameters {
            if lp.init_process_enabled.is_some() {
                names.insert("com.amazonaws.ecs.capability.docker-remote-api.1.25");
            }
            if lp.tmpfs.as_ref().is_some_and(|t| !t.is_empty()) || lp.shared_memory_size.is_some() {
                names.insert("com.amazonaws.ecs.capability.docker-remote-api.1.22");
            }
        }
        if c.start_timeout.is_some() || c.stop_timeout.is_some() {
            names.insert("ecs.capability.container-ordering");
        }
        if let Some(lc) = &c.log_configuration {
            match lc.log_driver.as_str() {
                "awslogs" => names.insert("com.amazonaws.ecs.capability.logging-driver.awslogs"),
                "json-file" => {
                    names.insert("com.amazonaws.ecs.capability.logging-driver.json-file")
                }
                "syslog" => names.insert("com.amazonaws.ecs.capability.logging-driver.syslog"),
                "journald" => names.insert("com.amazonaws.ecs.capability.logging-driver.journald"),
                "gelf" => names.insert("com.amazonaws.ecs.capability.logging-driver.gelf"),
                "fluentd" => names.insert("com.amazonaws.ecs.capability.logging-driver.fluentd"),
                "splunk" => names.insert("com.amazonaws.ecs.capability.logging-driver.splunk"),
                _ => false,
            };
        }
    }
    if td.task_role_arn.is_some() {
        names.insert("com.amazonaws.ecs.capability.task-iam-role");
    }
    if td.network_mode == Some(NetworkMode::Awsvpc) {
        names.insert("ecs.capability.task-eni");
        names.insert("com.amazonaws.ecs.capability.docker-remote-api.1.18");
    }
    if td.ipc_mode.is_some() || td.pid_mode.is_some() {
        names.insert("ecs.capability.task-ipc-pid-mode");
    }
    names
        .into_iter()
        .map(|n| Attribute {
            name: n.to_string(),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::{ContainerDefinition, PortMapping};

    fn reg() -> Registration {
        Registration {
            arn: "arn".into(),
            revision: 1,
            registered_at: 1.0,
            registered_by: "me".into(),
        }
    }
    fn container(name: &str) -> ContainerDefinition {
        ContainerDefinition {
            name: Some(name.into()),
            image: Some("busybox".into()),
            memory: Some(64),
            ..Default::default()
        }
    }
    fn req(containers: Vec<ContainerDefinition>) -> RegisterTaskDefinitionRequest {
        RegisterTaskDefinitionRequest {
            family: "web".into(),
            container_definitions: containers,
            ..Default::default()
        }
    }
    fn err(r: &RegisterTaskDefinitionRequest) -> String {
        validate_and_build(r, &reg()).unwrap_err().message
    }

    #[test]
    fn a_plain_definition_registers_with_defaults() {
        let td = validate_and_build(&req(vec![container("a"), container("b")]), &reg()).unwrap();
        assert_eq!(td.network_mode, Some(NetworkMode::Bridge));
        assert_eq!(
            td.compatibilities,
            Some(vec![Compatibility::Ec2, Compatibility::External])
        );
        assert_eq!(td.container_definitions.unwrap()[0].essential, Some(true));
    }

    #[test]
    fn empty_role_arns_mean_no_role() {
        let mut r = req(vec![container("a")]);
        r.task_role_arn = Some(String::new());
        r.execution_role_arn = Some(String::new());
        let td = validate_and_build(&r, &reg()).unwrap();
        assert_eq!((td.task_role_arn, td.execution_role_arn), (None, None));
        assert_eq!(td.requires_attributes, Some(vec![]));
    }

    #[test]
    fn repository_credentials_need_an_execution_role_and_a_secret() {
        let mut c = container("a");
        c.image = Some("registry.example.com/app:1".into());
        c.repository_credentials = Some(crate::shapes::RepositoryCredentials {
            credentials_parameter: "registry/creds".into(),
        });
        let mut r = req(vec![c.clone()]);
        assert_eq!(
            err(&r),
            "Private repository authentication requires that the task definition specify a value for executionRoleArn."
        );
        r.execution_role_arn = Some("arn:aws:iam::123456789012:role/exec".into());
        let td = validate_and_build(&r, &reg()).unwrap();
        assert!(td.requires_attributes.unwrap().iter().any(|a| a.name
            == "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager"));
        let mut bad = c;
        bad.repository_credentials = Some(crate::shapes::RepositoryCredentials {
            credentials_parameter: "arn:aws:ssm:us-east-1:123456789012:parameter/x".into(),
        });
        r.container_definitions = vec![bad];
        assert!(err(&r).contains("'credentialsParameter' must be the ARN or the name"));
    }

    #[test]
    fn container_count_names_and_images() {
        assert!(err(&req(vec![])).contains("empty"));
        let eleven = (0..11).map(|i| container(&format!("c{i}"))).collect();
        assert!(err(&req(eleven)).contains("at most 10"));
        assert!(err(&req(vec![container("a"), container("a")])).contains("Duplicate"));
        let mut noimg = container("a");
        noimg.image = None;
        assert!(err(&req(vec![noimg])).contains("image"));
    }

    #[test]
    fn memory_rules() {
        let mut c = container("a");
        c.memory = None;
        assert!(err(&req(vec![c.clone()])).contains("memoryReservation"));
        let mut r = req(vec![c]);
        r.memory = Some("512".into());
        assert!(validate_and_build(&r, &reg()).is_ok());
        let mut c = container("a");
        c.memory_reservation = Some(128);
        assert!(err(&req(vec![c])).contains("greater than or equal"));
    }

    #[test]
    fn fargate_sizes_and_modes() {
        let mut r = req(vec![container("a")]);
        r.requires_compatibilities = Some(vec![Compatibility::Fargate]);
        r.network_mode = Some(NetworkMode::Awsvpc);
        r.cpu = Some("256".into());
        r.memory = Some("512".into());
        let td = validate_and_build(&r, &reg()).unwrap();
        assert!(td
            .compatibilities
            .unwrap()
            .contains(&Compatibility::Fargate));
        r.memory = Some("4096".into());
        assert!(err(&r).contains("No Fargate configuration"));
        r.memory = Some("1GB".into());
        r.cpu = Some(".5 vCPU".into());
        let td = validate_and_build(&r, &reg()).unwrap();
        assert_eq!(
            (td.cpu.as_deref(), td.memory.as_deref()),
            (Some("512"), Some("1024"))
        );
        r.network_mode = Some(NetworkMode::Bridge);
        assert!(err(&r).contains("awsvpc"));
    }

    #[test]
    fn ephemeral_storage_and_awsvpc_host_ports_at_registration() {
        let mut r = req(vec![container("a")]);
        r.ephemeral_storage = Some(crate::shapes::EphemeralStorage { size_in_gi_b: 21 });
        assert!(validate_and_build(&r, &reg()).is_ok());
        r.ephemeral_storage = Some(crate::shapes::EphemeralStorage { size_in_gi_b: 20 });
        assert_eq!(
            err(&r),
            "Invalid 'ephemeralStorage.sizeInGiB' setting: 20. The valid range is 21 to 200 GiB."
        );
        let mut a = container("a");
        a.port_mappings = Some(vec![PortMapping {
            container_port: Some(80),
            host_port: Some(80),
            ..Default::default()
        }]);
        let mut r = req(vec![a]);
        r.network_mode = Some(NetworkMode::Awsvpc);
        assert!(validate_and_build(&r, &reg()).is_ok());
        let pm = PortMapping {
            container_port: Some(80),
            host_port: Some(81),
            ..Default::default()
        };
        assert!(check_host_port(NetworkMode::Bridge, "a", &pm).is_ok());
        assert_eq!(
            check_host_port(NetworkMode::Awsvpc, "a", &pm).unwrap_err().message,
            "When networkMode=awsvpc, the containerPort (80) and hostPort (81) must be the same (container 'a')."
        );
    }

    #[test]
    fn fargate_table_matches_the_docs() {
        assert!(fargate_memory_allowed(256, 2048));
        assert!(!fargate_memory_allowed(256, 3072));
        assert!(fargate_memory_allowed(2048, 16384));
        assert!(fargate_memory_allowed(8192, 16384 + 4096));
        assert!(!fargate_memory_allowed(8192, 16384 + 1024));
        assert!(fargate_memory_allowed(16384, 122880));
        assert!(!fargate_memory_allowed(300, 512));
    }

    #[test]
    fn ports_links_volumes_depends_on() {
        let mut a = container("a");
        a.port_mappings = Some(vec![PortMapping {
            container_port: Some(80),
            host_port: Some(8080),
            ..Default::default()
        }]);
        let mut r = req(vec![a.clone()]);
        r.network_mode = Some(NetworkMode::Awsvpc);
        assert!(err(&r).contains("must be the same"));
        r.network_mode = Some(NetworkMode::None);
        assert!(err(&r).contains("none"));
        let mut b = container("b");
        b.port_mappings = a.port_mappings.clone();
        assert!(err(&req(vec![a, b])).contains("more than one"));
        let mut c = container("c");
        c.links = Some(vec!["nope".into()]);
        assert!(err(&req(vec![c])).contains("links"));
        let mut d = container("d");
        d.mount_points = Some(vec![crate::shapes::MountPoint {
            source_volume: Some("v".into()),
            container_path: Some("/x".into()),
            ..Default::default()
        }]);
        assert!(err(&req(vec![d])).contains("sourceVolume"));
        let mut e = container("e");
        e.depends_on = Some(vec![crate::shapes::ContainerDependency {
            container_name: "zzz".into(),
            condition: ContainerCondition::Start,
        }]);
        assert!(err(&req(vec![e])).contains("dependsOn"));
    }
}
