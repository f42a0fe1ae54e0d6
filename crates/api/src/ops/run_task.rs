//! RunTask: places `count` (1 to 10) tasks of an ACTIVE task definition on the cluster's
//! container instances with the request's placement strategies and constraints (plus the task
//! definition's `memberOf` constraints), through the one placement writer
//! ([`crate::placement::place`]). Tasks that do not fit are reported in `failures` with ECS's
//! reasons (`RESOURCE:MEMORY`, `AGENT`, `ATTRIBUTE`, ...).
//!
//! Also here: the task template shared with StartTask ([`prepare`]): cluster and task definition
//! lookup, overrides, group, tags and `propagateTags`.
//!
//! ECS's errors kept: an unknown task definition is `ClientException` "TaskDefinition not
//! found.", an INACTIVE one "TaskDefinition is inactive"; a cluster without container instances
//! is `InvalidParameterException` "No Container Instances were found in your cluster."; a
//! `clientToken` reused with another request is `ConflictException`. Launch types other than
//! EC2 and EXTERNAL (and capacity provider strategies) are `UnsupportedFeatureException` until
//! Flotilla runs them.

use super::describe_task_definition::{load, parse_ref};
use super::tags::validate_tags;
use crate::context::Ctx;
use crate::placement::{self, Committed, FargatePlatform, Target, TaskTemplate, Token};
use crate::records::{active_cluster, client_token_key, get, task_id_in, task_key};
use crate::tasks::{resolve, task_spec, TaskRecord};
use flotilla_model::fargate;
use flotilla_model::shapes::{
    CapacityProviderStrategyItem, Compatibility, LaunchType, NetworkConfiguration, NetworkMode,
    PlacementConstraint, PlacementStrategy, PropagateTags, RunTaskRequest, RunTaskResponse, Tag,
    TaskDefinitionStatus, TaskOverride,
};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_scheduler::{self as sched, capacity};
use sha2::Digest;
use std::collections::BTreeMap;

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

/// Looks up and checks what a RunTask/StartTask request names, and builds the task template.
pub async fn prepare(ctx: &Ctx<'_>, c: &Common<'_>) -> Result<TaskTemplate, EcsError> {
    if c.cluster.is_some_and(|v| super::foreign_arn(ctx, v)) {
        return Err(EcsError::cluster_not_found());
    }
    let (cluster, _) = active_cluster(ctx.store(), c.cluster).await?;
    let cluster = cluster.cluster_name.unwrap_or_default();
    let r = parse_ref(c.task_definition)?;
    let not_found = || EcsError::client("TaskDefinition not found.");
    if super::foreign_arn(ctx, c.task_definition) {
        return Err(not_found());
    }
    let (rec, _) = load(ctx.store(), &r).await?.ok_or_else(not_found)?;
    let td = rec.task_definition.clone().ok_or_else(not_found)?;
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
    if let Some(sb) = c.started_by {
        let ok = !sb.is_empty()
            && sb.len() <= 128
            && sb
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-/_".contains(ch));
        if !ok {
            return Err(EcsError::invalid_parameter(format!(
                "Invalid startedBy '{sb}': up to 128 letters, numbers, hyphens, forward slashes and underscores."
            )));
        }
    }
    let resolved = resolve(&td, c.overrides)?;
    // What the agent could not run is refused here, not reported later as a failed start.
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
    })?;
    let network_mode = td.network_mode.unwrap_or(NetworkMode::Bridge);
    fargate::validate_network_configuration(Some(network_mode), c.network_configuration)?;
    let awsvpc = c
        .network_configuration
        .and_then(|n| n.awsvpc_configuration.clone())
        .filter(|_| network_mode == NetworkMode::Awsvpc);
    let fargate_platform = if c.launch_type == LaunchType::Fargate {
        fargate::validate_fargate_run(&td, c.overrides, &[], &[])?;
        Some(FargatePlatform {
            platform_version: fargate::resolve_platform_version(c.platform_version)?,
            ephemeral_storage_gib: c
                .overrides
                .and_then(|o| o.ephemeral_storage.as_ref())
                .or(td.ephemeral_storage.as_ref())
                .map_or(DEFAULT_EPHEMERAL_STORAGE_GIB, |e| e.size_in_gi_b),
        })
    } else {
        if c.platform_version.is_some() {
            return Err(EcsError::invalid_parameter(format!(
                "The platform version must be null when specifying an {} launch type.",
                c.launch_type.as_str()
            )));
        }
        None
    };
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

/// The ephemeral storage of a Fargate task that asks for none, GiB (as ECS reports it).
pub const DEFAULT_EPHEMERAL_STORAGE_GIB: i32 = 20;

/// How tasks are launched: a launch type, or a capacity provider strategy (whose providers,
/// FARGATE and FARGATE_SPOT, all launch on Fargate).
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The launch type the tasks get.
    pub launch_type: LaunchType,
    /// The capacity provider strategy; empty for a plain launch type.
    pub strategy: Vec<CapacityProviderStrategyItem>,
}

impl Launch {
    /// The capacity providers of `n` new tasks of a group that already runs `existing` tasks per
    /// provider (empty for a plain launch type), split by the strategy's base and weights.
    pub fn providers(&self, existing: &BTreeMap<String, u32>, n: u32) -> Vec<String> {
        if self.strategy.is_empty() {
            return Vec::new();
        }
        let items = capacity_items(&self.strategy);
        let counts: Vec<u32> = items
            .iter()
            .map(|i| existing.get(&i.capacity_provider).copied().unwrap_or(0))
            .collect();
        capacity::assign(&items, &counts, n)
            .map(|ix| {
                ix.into_iter()
                    .filter_map(|i| items.get(i).map(|it| it.capacity_provider.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The strategy as the pure capacity module takes it.
pub fn capacity_items(strategy: &[CapacityProviderStrategyItem]) -> Vec<capacity::StrategyItem> {
    strategy
        .iter()
        .map(|i| {
            capacity::StrategyItem::new(
                i.capacity_provider.clone(),
                u32::try_from(i.base).unwrap_or(0),
                u32::try_from(i.weight).unwrap_or(0),
            )
        })
        .collect()
}

/// Decides how a RunTask/CreateService request launches its tasks, as ECS does: an explicit
/// `launchType`; else an explicit `capacityProviderStrategy`; else the cluster's default
/// strategy; else EC2. Both together are refused; a strategy must be valid and name only
/// providers associated with the cluster.
pub async fn resolve_launch(
    ctx: &Ctx<'_>,
    cluster: Option<&str>,
    launch_type: Option<LaunchType>,
    strategy: Option<&[CapacityProviderStrategyItem]>,
) -> Result<Launch, EcsError> {
    let given = strategy.filter(|s| !s.is_empty());
    if launch_type.is_some() && given.is_some() {
        return Err(EcsError::invalid_parameter(
            "Specifying both a launch type and capacity provider strategy is not supported.",
        ));
    }
    if let Some(l) = launch_type {
        return Ok(Launch {
            launch_type: self::launch_type(Some(l))?,
            strategy: Vec::new(),
        });
    }
    if cluster.is_some_and(|v| super::foreign_arn(ctx, v)) {
        return Err(EcsError::cluster_not_found());
    }
    let (c, _) = active_cluster(ctx.store(), cluster).await?;
    let strategy = match given {
        Some(s) => s.to_vec(),
        None => c
            .default_capacity_provider_strategy
            .clone()
            .unwrap_or_default(),
    };
    if strategy.is_empty() {
        return Ok(Launch {
            launch_type: LaunchType::Ec2,
            strategy,
        });
    }
    let associated = c.capacity_providers.clone().unwrap_or_default();
    super::create_cluster::validate_strategy(&strategy, Some(&associated))?;
    Ok(Launch {
        launch_type: LaunchType::Fargate,
        strategy,
    })
}

/// The placement request of a template (constraints and strategies added by the caller).
pub fn placement_request(
    t: &TaskTemplate,
    count: u32,
) -> Result<sched::PlacementRequest, EcsError> {
    let family = t.task_definition.family.clone().unwrap_or_default();
    let mut req = sched::PlacementRequest::new(family, t.spec.clone(), count)
        .with_group(t.group.clone())
        .with_seed(rand::random::<u64>());
    req.revision = u32::try_from(t.task_definition.revision).unwrap_or(0);
    req.started_by = t.started_by.clone();
    for c in t.task_definition.placement_constraints.iter().flatten() {
        let kind = c.r#type.map_or("memberOf", |k| k.as_str());
        req.task_definition_constraints.push(
            sched::PlacementConstraint::from_ecs(kind, c.expression.as_deref())
                .map_err(placement::placement_error)?,
        );
    }
    Ok(req)
}

/// The request's constraints, as the scheduler takes them.
pub fn constraints(
    cs: &[PlacementConstraint],
) -> Result<Vec<sched::PlacementConstraint>, EcsError> {
    cs.iter()
        .map(|c| {
            let kind = c.r#type.map(|k| k.as_str()).ok_or_else(|| {
                EcsError::invalid_parameter("A placement constraint needs a type.")
            })?;
            sched::PlacementConstraint::from_ecs(kind, c.expression.as_deref())
                .map_err(placement::placement_error)
        })
        .collect()
}

/// The request's strategies, as the scheduler takes them.
pub fn strategies(ss: &[PlacementStrategy]) -> Result<Vec<sched::PlacementStrategy>, EcsError> {
    ss.iter()
        .map(|s| {
            let kind = s
                .r#type
                .map(|k| k.as_str())
                .ok_or_else(|| EcsError::invalid_parameter("A placement strategy needs a type."))?;
            sched::PlacementStrategy::from_ecs(kind, s.field.as_deref())
                .map_err(placement::placement_error)
        })
        .collect()
}

/// The launch type of a request: EC2 (default), EXTERNAL or FARGATE.
pub fn launch_type(l: Option<LaunchType>) -> Result<LaunchType, EcsError> {
    match l.unwrap_or(LaunchType::Ec2) {
        l @ (LaunchType::Ec2 | LaunchType::External | LaunchType::Fargate) => Ok(l),
        other => Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            format!(
                "The {} launch type is not supported by this Flotilla server yet; use EC2 or EXTERNAL.",
                other.as_str()
            ),
        )),
    }
}

/// Reads stored tasks by ARN (for a repeated client token).
pub async fn load_tasks(
    ctx: &Ctx<'_>,
    cluster: &str,
    arns: &[String],
) -> Result<Vec<TaskRecord>, EcsError> {
    let mut out = Vec::new();
    for arn in arns {
        if let Some(id) = task_id_in(arn, cluster) {
            if let Some((t, _)) = get::<TaskRecord>(ctx.store(), &task_key(cluster, id)).await? {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// RunTask.
pub async fn run_task(ctx: &Ctx<'_>, req: RunTaskRequest) -> Result<RunTaskResponse, EcsError> {
    let count = req.count.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(EcsError::invalid_parameter(format!(
            "Invalid count {count}: RunTask starts 1 to 10 tasks per call."
        )));
    }
    let launch = resolve_launch(
        ctx,
        req.cluster.as_deref(),
        req.launch_type,
        req.capacity_provider_strategy.as_deref(),
    )
    .await?;
    let mut template = prepare(
        ctx,
        &Common {
            cluster: req.cluster.as_deref(),
            task_definition: &req.task_definition,
            overrides: req.overrides.as_ref(),
            group: req.group.as_deref(),
            started_by: req.started_by.as_deref(),
            tags: req.tags.as_deref(),
            propagate_tags: req.propagate_tags,
            launch_type: launch.launch_type,
            enable_execute_command: req.enable_execute_command,
            allow_inactive: false,
            platform_version: req.platform_version.as_deref(),
            network_configuration: req.network_configuration.as_ref(),
        },
    )
    .await?;
    let count = u32::try_from(count).unwrap_or(1);
    template.providers = launch.providers(&Default::default(), count);
    let mut preq = placement_request(&template, count)?;
    let given_strategies = req.placement_strategy.as_deref().unwrap_or(&[]);
    let given_constraints = req.placement_constraints.as_deref().unwrap_or(&[]);
    if template.fargate.is_some() {
        fargate::validate_fargate_run(
            &template.task_definition,
            req.overrides.as_ref(),
            given_constraints,
            given_strategies,
        )?;
        preq.strategies = crate::fargate::pool_strategies();
        preq.task_definition_constraints.clear();
    } else {
        preq.strategies = strategies(given_strategies)?;
        preq.constraints = constraints(given_constraints)?;
    }
    let token = match &req.client_token {
        Some(t) => {
            let mut without = req.clone();
            without.client_token = None;
            let bytes = serde_json::to_vec(&without).unwrap_or_default();
            Some(Token {
                key: client_token_key(&template.cluster, t),
                digest: hex::encode(sha2::Sha256::digest(&bytes)),
            })
        }
        None => None,
    };
    match placement::place(ctx, &template, &Target::Run(Box::new(preq)), token.as_ref()).await? {
        Committed::Placed(tasks, failures) => Ok(RunTaskResponse {
            tasks: Some(tasks.iter().map(|t| t.view(true)).collect()),
            failures: Some(failures),
        }),
        Committed::TokenUsed(rec) => {
            if token.as_ref().map(|t| &t.digest) != Some(&rec.request_digest) {
                return Err(placement::token_conflict(&rec));
            }
            let tasks = load_tasks(ctx, &template.cluster, &rec.task_arns).await?;
            Ok(RunTaskResponse {
                tasks: Some(tasks.iter().map(|t| t.view(true)).collect()),
                failures: Some(rec.failures),
            })
        }
    }
}
