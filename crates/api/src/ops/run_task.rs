//! RunTask: places `count` (1 to 10) tasks of an ACTIVE task definition on the cluster's
//! container instances with the request's placement strategies and constraints (plus the task
//! definition's `memberOf` constraints), through the one placement writer
//! ([`flotilla_controllers::placement::place`]). Tasks that do not fit are reported in `failures` with ECS's
//! reasons (`RESOURCE:MEMORY`, `AGENT`, `ATTRIBUTE`, ...).
//!
//! The launch (launch type, or capacity provider strategy split over FARGATE and FARGATE_SPOT) is
//! `flotilla_controllers::templates::resolve_launch`; the task template shared with StartTask and
//! the service loop is `flotilla_controllers::templates::prepare`. FARGATE tasks go to the managed
//! pool with Flotilla's own strategy.
//!
//! ECS's errors kept: an unknown task definition is `ClientException` "TaskDefinition not
//! found.", an INACTIVE one "TaskDefinition is inactive"; a cluster without container instances
//! is `InvalidParameterException` "No Container Instances were found in your cluster."; a
//! `clientToken` reused with another request is `ConflictException`. The MANAGED_INSTANCES
//! launch type is `UnsupportedFeatureException`.

use crate::context::Ctx;
use flotilla_control::launch::{constraints, strategies};
use flotilla_control::tasks::TaskRecord;
use flotilla_control::template::{placement_request, Common};
use flotilla_controllers::placement::{self, Committed, Target, Token};
use flotilla_controllers::records::{client_token_key, get, task_id_in, task_key};
use flotilla_controllers::templates::{prepare, resolve_launch};
use flotilla_model::fargate;
use flotilla_model::shapes::{RunTaskRequest, RunTaskResponse};
use flotilla_model::EcsError;
use sha2::Digest;

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
        ctx.plane(),
        req.cluster.as_deref(),
        req.launch_type,
        req.capacity_provider_strategy.as_deref(),
    )
    .await?;
    let mut template = prepare(
        ctx.plane(),
        &Common {
            cluster: req.cluster.as_deref(),
            task_definition: &req.task_definition,
            overrides: req.overrides.as_ref(),
            group: req.group.as_deref(),
            started_by: req.started_by.as_deref(),
            tags: req.tags.as_deref(),
            propagate_tags: req.propagate_tags,
            enable_ecs_managed_tags: req.enable_ecs_managed_tags,
            service_name: None,
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
    let mut preq = placement_request(&template, count, rand::random::<u64>())?;
    let given_strategies = req.placement_strategy.as_deref().unwrap_or(&[]);
    let given_constraints = req.placement_constraints.as_deref().unwrap_or(&[]);
    if template.fargate.is_some() {
        fargate::validate_fargate_run(
            &template.task_definition,
            req.overrides.as_ref(),
            given_constraints,
            given_strategies,
        )?;
        preq.strategies = flotilla_control::launch::pool_strategies();
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
    match placement::place(
        ctx.plane(),
        ctx.now,
        &template,
        &Target::Run(Box::new(preq)),
        token.as_ref(),
        None,
    )
    .await?
    .into_ecs()
    {
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
