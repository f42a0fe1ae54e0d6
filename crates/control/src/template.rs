//! The task template: everything needed to create the tasks of one RunTask or StartTask request
//! or of one service's scale-up, checked once ([`build`]) from the cluster, the task definition
//! record and the request's members, then handed to the placement writer.
//!
//! ECS's errors kept: an INACTIVE task definition is `ClientException` "TaskDefinition is
//! inactive" (a service may keep using its revision); a task definition that does not support
//! the launch type is a `ClientException`; what the container agent cannot run is refused here,
//! not reported later as a failed start.

use crate::launch::placement_error;
use crate::tags::validate_tags;
use crate::tasks::{resolve, task_spec, Resolved};
use flotilla_model::fargate;
use flotilla_model::shapes::{
    AwsVpcConfiguration, Compatibility, LaunchType, NetworkConfiguration, NetworkMode,
    PropagateTags, RegisterTaskDefinitionResponse, Tag, TaskDefinition, TaskDefinitionStatus,
    TaskOverride,
};
use flotilla_model::EcsError;
use flotilla_scheduler as sched;

/// Everything needed to create the tasks of one RunTask/StartTask request.
#[derive(Debug, Clone)]
pub struct TaskTemplate {
    /// Cluster name.
    pub cluster: String,
    /// The task definition (ACTIVE).
    pub task_definition: TaskDefinition,
    /// Overrides applied.
    pub resolved: Resolved,
    /// The overrides as given (reported as `overrides`).
    pub overrides: TaskOverride,
    /// The task group.
    pub group: String,
    /// `startedBy`.
    pub started_by: Option<String>,
    /// EC2 or EXTERNAL.
    pub launch_type: LaunchType,
    /// The task's tags.
    pub tags: Vec<Tag>,
    /// `enableExecuteCommand`.
    pub enable_execute_command: bool,
    /// The resource side, for placement.
    pub spec: sched::TaskSpec,
    /// For the FARGATE launch type: the platform.
    pub fargate: Option<FargatePlatform>,
    /// For `awsvpc` tasks: the request's `awsvpcConfiguration`; each task gets an address on
    /// the managed task network.
    pub awsvpc: Option<AwsVpcConfiguration>,
    /// The capacity provider of each new task, in placement order (empty: launch type only).
    pub providers: Vec<String>,
}

/// The platform a FARGATE task runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct FargatePlatform {
    /// The resolved platform version (`LATEST` is `1.4.0`).
    pub platform_version: String,
    /// The ephemeral storage, GiB (20 unless the task definition or overrides ask for more).
    pub ephemeral_storage_gib: i32,
}

/// The members RunTask and StartTask share.
pub struct Common<'a> {
    /// `cluster`.
    pub cluster: Option<&'a str>,
    /// `taskDefinition`.
    pub task_definition: &'a str,
    /// `overrides`.
    pub overrides: Option<&'a TaskOverride>,
    /// `group`.
    pub group: Option<&'a str>,
    /// `startedBy`.
    pub started_by: Option<&'a str>,
    /// `tags`.
    pub tags: Option<&'a [Tag]>,
    /// `propagateTags`.
    pub propagate_tags: Option<PropagateTags>,
    /// `enableECSManagedTags`: the task gets `aws:ecs:clusterName` (and, for a service's task,
    /// `aws:ecs:serviceName`).
    pub enable_ecs_managed_tags: bool,
    /// The service whose task this is (for `aws:ecs:serviceName`).
    pub service_name: Option<&'a str>,
    /// The launch type.
    pub launch_type: LaunchType,
    /// `enableExecuteCommand`.
    pub enable_execute_command: bool,
    /// Whether an INACTIVE task definition may be used (a service keeps scaling with the
    /// revision it was deployed with after it is deregistered, as in ECS).
    pub allow_inactive: bool,
    /// `platformVersion` (FARGATE only).
    pub platform_version: Option<&'a str>,
    /// `networkConfiguration` (required for `awsvpc` task definitions, refused otherwise).
    pub network_configuration: Option<&'a NetworkConfiguration>,
}

impl<'a> Common<'a> {
    /// A request for `task_definition` with `launch_type` and nothing else given (no cluster,
    /// overrides, group, tags or network; an ACTIVE task definition required).
    pub fn new(task_definition: &'a str, launch_type: LaunchType) -> Self {
        Common {
            cluster: None,
            task_definition,
            overrides: None,
            group: None,
            started_by: None,
            tags: None,
            propagate_tags: None,
            enable_ecs_managed_tags: false,
            service_name: None,
            launch_type,
            enable_execute_command: false,
            allow_inactive: false,
            platform_version: None,
            network_configuration: None,
        }
    }
}

/// Checks a RunTask/StartTask/service request against the task definition record it names (read
/// by the caller from `cluster`'s store) and builds the task template.
pub fn build(
    cluster: String,
    rec: &RegisterTaskDefinitionResponse,
    c: &Common<'_>,
) -> Result<TaskTemplate, EcsError> {
    let td = usable_task_definition(rec, c)?;
    check_started_by(c.started_by)?;
    let resolved = resolve(&td, c.overrides)?;
    check_runnable(&td, &resolved)?;
    let network_mode = td.network_mode.unwrap_or(NetworkMode::Bridge);
    fargate::validate_network_configuration(Some(network_mode), c.network_configuration)?;
    let awsvpc = c
        .network_configuration
        .and_then(|n| n.awsvpc_configuration.clone())
        .filter(|_| network_mode == NetworkMode::Awsvpc);
    let fargate_platform = fargate_platform(&td, c)?;
    let tags = task_tags(rec, c, &cluster)?;
    let family = td.family.clone().unwrap_or_default();
    let spec = task_spec(&resolved, td.network_mode);
    Ok(TaskTemplate {
        cluster,
        group: c
            .group
            .map_or_else(|| format!("family:{family}"), str::to_string),
        started_by: c.started_by.map(str::to_string),
        launch_type: c.launch_type,
        tags,
        enable_execute_command: c.enable_execute_command,
        overrides: c.overrides.cloned().unwrap_or_default(),
        resolved,
        spec,
        task_definition: td,
        fargate: fargate_platform,
        awsvpc,
        providers: Vec::new(),
    })
}

/// The task definition, if it may be launched: ACTIVE (or INACTIVE where allowed) and
/// compatible with the launch type.
fn usable_task_definition(
    rec: &RegisterTaskDefinitionResponse,
    c: &Common<'_>,
) -> Result<TaskDefinition, EcsError> {
    let td = rec
        .task_definition
        .clone()
        .ok_or_else(|| EcsError::client("TaskDefinition not found."))?;
    if td.status != Some(TaskDefinitionStatus::Active)
        && !(c.allow_inactive && td.status == Some(TaskDefinitionStatus::Inactive))
    {
        return Err(EcsError::client("TaskDefinition is inactive"));
    }
    let compat = match c.launch_type {
        LaunchType::External => Compatibility::External,
        LaunchType::Fargate => Compatibility::Fargate,
        _ => Compatibility::Ec2,
    };
    if td
        .compatibilities
        .as_ref()
        .is_some_and(|cs| !cs.is_empty() && !cs.contains(&compat))
    {
        return Err(EcsError::client(format!(
            "Task definition does not support launch_type {}.",
            c.launch_type.as_str()
        )));
    }
    Ok(td)
}

/// `startedBy`: up to 128 printable characters, spaces included (deployment tools send values
/// such as `ECS Deploy`, which the real service accepts).
pub fn check_started_by(started_by: Option<&str>) -> Result<(), EcsError> {
    let Some(sb) = started_by else {
        return Ok(());
    };
    let ok = !sb.is_empty() && sb.chars().count() <= 128 && !sb.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(EcsError::invalid_parameter(format!(
            "Invalid startedBy {sb:?}: up to 128 printable characters."
        )))
    }
}

/// What the agent could not run is refused here, not reported later as a failed start.
fn check_runnable(td: &TaskDefinition, resolved: &Resolved) -> Result<(), EcsError> {
    flotilla_protocol::runnable::check(
        td.pid_mode.map(|m| m.as_str()),
        td.ipc_mode.map(|m| m.as_str()),
        td.volumes.as_deref().unwrap_or_default(),
        &resolved.containers,
    )
    .map_err(|why| {
        EcsError::invalid_parameter(format!(
            "Flotilla's container agent cannot run this task: {why}."
        ))
    })
}

/// The Fargate platform of a FARGATE launch (ECS's Fargate rules checked); `None` for other
/// launch types, which must not name a platform version.
fn fargate_platform(
    td: &TaskDefinition,
    c: &Common<'_>,
) -> Result<Option<FargatePlatform>, EcsError> {
    if c.launch_type != LaunchType::Fargate {
        if c.platform_version.is_some() {
            return Err(EcsError::invalid_parameter(format!(
                "The platform version must be null when specifying an {} launch type.",
                c.launch_type.as_str()
            )));
        }
        return Ok(None);
    }
    fargate::validate_fargate_run(td, c.overrides, &[], &[])?;
    Ok(Some(FargatePlatform {
        platform_version: fargate::resolve_platform_version(c.platform_version)?,
        ephemeral_storage_gib: c
            .overrides
            .and_then(|o| o.ephemeral_storage.as_ref())
            .or(td.ephemeral_storage.as_ref())
            .map_or(crate::launch::DEFAULT_EPHEMERAL_STORAGE_GIB, |e| {
                e.size_in_gi_b
            }),
    }))
}

/// The task's tags: the task definition's when `propagateTags` is TASK_DEFINITION, overridden
/// by the request's; with `enableECSManagedTags`, ECS's own `aws:ecs:clusterName` and (for a
/// service's task) `aws:ecs:serviceName` after them (AWS's tags: not counted against the
/// limit, and their reserved prefix is refused only from callers).
fn task_tags(
    rec: &RegisterTaskDefinitionResponse,
    c: &Common<'_>,
    cluster: &str,
) -> Result<Vec<Tag>, EcsError> {
    let mut tags: Vec<Tag> = Vec::new();
    if c.propagate_tags == Some(PropagateTags::TaskDefinition) {
        tags = rec.tags.clone().unwrap_or_default();
    }
    let given = c.tags.unwrap_or(&[]);
    validate_tags(given, 0)?;
    for t in given {
        match tags.iter_mut().find(|x| x.key == t.key) {
            Some(x) => x.value = t.value.clone(),
            None => tags.push(t.clone()),
        }
    }
    validate_tags(&tags, 0)?;
    if c.enable_ecs_managed_tags {
        tags.extend(managed_tags(cluster, c.service_name));
    }
    Ok(tags)
}

/// The tags ECS manages on a task of `cluster` (and of `service`).
pub fn managed_tags(cluster: &str, service: Option<&str>) -> Vec<Tag> {
    let tag = |k: &str, v: &str| Tag {
        key: Some(k.to_string()),
        value: Some(v.to_string()),
    };
    let mut out = vec![tag("aws:ecs:clusterName", cluster)];
    if let Some(s) = service {
        out.push(tag("aws:ecs:serviceName", s));
    }
    out
}

/// The placement request of a template (constraints and strategies added by the caller); `seed`
/// breaks the scheduler's ties.
pub fn placement_request(
    t: &TaskTemplate,
    count: u32,
    seed: u64,
) -> Result<sched::PlacementRequest, EcsError> {
    let family = t.task_definition.family.clone().unwrap_or_default();
    let mut req = sched::PlacementRequest::new(family, t.spec.clone(), count)
        .with_group(t.group.clone())
        .with_seed(seed);
    req.revision = u32::try_from(t.task_definition.revision).unwrap_or(0);
    req.started_by = t.started_by.clone();
    for c in t.task_definition.placement_constraints.iter().flatten() {
        let kind = c.r#type.map_or("memberOf", |k| k.as_str());
        req.task_definition_constraints.push(
            sched::PlacementConstraint::from_ecs(kind, c.expression.as_deref())
                .map_err(placement_error)?,
        );
    }
    Ok(req)
}
