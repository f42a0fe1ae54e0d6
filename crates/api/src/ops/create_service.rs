//! CreateService: stores a REPLICA service with its first deployment (PRIMARY, IN_PROGRESS);
//! the service loop ([`crate::service_loop`]) then starts its tasks.
//!
//! Checked as ECS does: the cluster is ACTIVE, the task definition exists and is ACTIVE and fits
//! the launch type (EC2 or EXTERNAL; FARGATE and capacity provider strategies are
//! `UnsupportedFeatureException`, as in RunTask), `desiredCount` is given, the placement
//! strategies and constraints parse, the deployment configuration is within range (defaults
//! 200/100), tags are valid. A name already used by an ACTIVE or DRAINING service of the cluster
//! is `InvalidParameterException` "Creation of service was not idempotent.", unless the request
//! repeats that service's `clientToken`, which answers the existing service. An INACTIVE
//! service's name can be reused. DAEMON services run one task on every ACTIVE instance with a
//! connected agent (no placement strategies, as ECS; placement constraints not supported yet;
//! deployment defaults 100/0).

use crate::context::Ctx;
use flotilla_control::launch::{constraints, strategies};
use flotilla_control::services::{
    deployment_configuration, deployment_id, new_deployment, service_key, ServiceRecord,
    ServiceStatus,
};
use flotilla_control::tags::validate_tags;
use flotilla_control::template::Common;
use flotilla_controllers::records::{commit, contention, get, to_bytes, CAS_ATTEMPTS};
use flotilla_controllers::templates::{prepare, resolve_launch};
use flotilla_model::shapes::{
    CreateServiceRequest, CreateServiceResponse, DeploymentController, DeploymentControllerType,
    LaunchType, SchedulingStrategy, Service,
};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_store::{Compare, Txn};

/// CreateService.
pub async fn create_service(
    ctx: &Ctx<'_>,
    req: CreateServiceRequest,
) -> Result<CreateServiceResponse, EcsError> {
    let name = req.service_name.clone();
    if !flotilla_model::arn::is_valid_name(&name) {
        return Err(EcsError::invalid_parameter(
            "Service name must be 1 to 255 letters (uppercase and lowercase), numbers, hyphens and underscores.",
        ));
    }
    let daemon = req.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    if daemon
        && req
            .placement_strategy
            .as_ref()
            .is_some_and(|p| !p.is_empty())
    {
        return Err(EcsError::invalid_parameter(
            "Placement strategies are not supported with DAEMON scheduling strategy.",
        ));
    }
    if daemon
        && req
            .placement_constraints
            .as_ref()
            .is_some_and(|p| !p.is_empty())
    {
        return Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            "Placement constraints on DAEMON services are not supported by this Flotilla server yet.",
        ));
    }
    if req
        .deployment_controller
        .as_ref()
        .is_some_and(|c| c.r#type != DeploymentControllerType::Ecs)
    {
        return Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            "Only the ECS (rolling update) deployment controller is supported by this Flotilla server.",
        ));
    }
    let launch = resolve_launch(
        ctx.plane(),
        req.cluster.as_deref(),
        req.launch_type,
        req.capacity_provider_strategy.as_deref(),
    )
    .await?;
    if daemon && launch.launch_type == LaunchType::Fargate {
        return Err(EcsError::invalid_parameter(
            "The daemon scheduling strategy does not support the FARGATE launch type or capacity providers.",
        ));
    }
    let given = if daemon { Some(0) } else { req.desired_count };
    let Some(desired) = given else {
        return Err(EcsError::invalid_parameter(
            "The desiredCount parameter is required for the REPLICA scheduling strategy.",
        ));
    };
    if desired < 0 {
        return Err(EcsError::invalid_parameter(
            "desiredCount must be 0 or more.",
        ));
    }
    let Some(td_ref) = req.task_definition.as_deref() else {
        return Err(EcsError::invalid_parameter(
            "A task definition is required for a service with the ECS deployment controller.",
        ));
    };
    let template = prepare(
        ctx.plane(),
        &Common {
            cluster: req.cluster.as_deref(),
            task_definition: td_ref,
            overrides: None,
            group: None,
            started_by: None,
            tags: None,
            propagate_tags: None,
            launch_type: launch.launch_type,
            enable_execute_command: req.enable_execute_command,
            allow_inactive: false,
            platform_version: req.platform_version.as_deref(),
            network_configuration: req.network_configuration.as_ref(),
        },
    )
    .await?;
    if template.fargate.is_some() {
        flotilla_model::fargate::validate_fargate_run(
            &template.task_definition,
            None,
            req.placement_constraints.as_deref().unwrap_or(&[]),
            req.placement_strategy.as_deref().unwrap_or(&[]),
        )?;
    }
    strategies(req.placement_strategy.as_deref().unwrap_or(&[]))?;
    constraints(req.placement_constraints.as_deref().unwrap_or(&[]))?;
    let base = daemon.then(|| flotilla_model::shapes::DeploymentConfiguration {
        maximum_percent: Some(100),
        minimum_healthy_percent: Some(0),
        ..Default::default()
    });
    let config = deployment_configuration(req.deployment_configuration.as_ref(), base.as_ref())?;
    let tags = req.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    if req.health_check_grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(EcsError::invalid_parameter(
            "healthCheckGracePeriodSeconds must be 0 or more.",
        ));
    }
    let cluster = template.cluster.clone();
    let td_arn = template
        .task_definition
        .task_definition_arn
        .clone()
        .unwrap_or_default();
    let now = flotilla_control::timestamp(ctx.now);
    let key = service_key(&cluster, &name);
    let desired_u = u32::try_from(desired).unwrap_or(0);
    for _ in 0..CAS_ATTEMPTS {
        let existing = get::<ServiceRecord>(ctx.store(), &key).await?;
        let compare = match &existing {
            Some((old, rev)) => {
                if old.status != ServiceStatus::Inactive {
                    if req.client_token.is_some() && old.client_token == req.client_token {
                        return Ok(CreateServiceResponse {
                            service: Some(old.view(false)),
                        });
                    }
                    return Err(EcsError::invalid_parameter(
                        "Creation of service was not idempotent.",
                    ));
                }
                Compare::ModRevision(key.clone(), *rev)
            }
            None => Compare::Absent(key.clone()),
        };
        let service = Service {
            service_arn: Some(ctx.arns().service(&cluster, &name)),
            service_name: Some(name.clone()),
            cluster_arn: Some(ctx.arns().cluster(&cluster)),
            load_balancers: Some(Vec::new()),
            service_registries: Some(Vec::new()),
            desired_count: desired,
            // A service launched by a capacity provider strategy shows the strategy, not a
            // launch type, as in ECS.
            launch_type: launch.strategy.is_empty().then_some(launch.launch_type),
            capacity_provider_strategy: (!launch.strategy.is_empty())
                .then(|| launch.strategy.clone()),
            platform_version: template.fargate.as_ref().map(|_| {
                req.platform_version
                    .clone()
                    .unwrap_or_else(|| "LATEST".to_string())
            }),
            platform_family: template
                .fargate
                .as_ref()
                .map(|_| crate::fargate::PLATFORM_FAMILY_LINUX.to_string()),
            network_configuration: req.network_configuration.clone(),
            task_definition: Some(td_arn.clone()),
            deployment_configuration: Some(config.clone()),
            role_arn: None,
            created_at: Some(now),
            placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
            placement_strategy: Some(req.placement_strategy.clone().unwrap_or_default()),
            health_check_grace_period_seconds: req.health_check_grace_period_seconds,
            scheduling_strategy: Some(if daemon {
                SchedulingStrategy::Daemon
            } else {
                SchedulingStrategy::Replica
            }),
            deployment_controller: Some(DeploymentController {
                r#type: DeploymentControllerType::Ecs,
            }),
            tags: Some(tags.clone()),
            created_by: Some(ctx.caller.principal_arn.clone()),
            enable_ecs_managed_tags: req.enable_ecs_managed_tags,
            propagate_tags: Some(
                req.propagate_tags
                    .unwrap_or(flotilla_model::shapes::PropagateTags::None),
            ),
            enable_execute_command: req.enable_execute_command,
            ..Service::default()
        };
        let mut rec = ServiceRecord {
            service,
            status: ServiceStatus::Active,
            cluster: cluster.clone(),
            client_token: req.client_token.clone(),
            deployments: vec![new_deployment(
                deployment_id(rand::random::<u64>()),
                &td_arn,
                desired_u,
                now,
            )],
            events: Vec::new(),
            steady: false,
            last_completed: None,
            ..ServiceRecord::default()
        };
        if let Some(d) = rec.deployments.first_mut() {
            d.rollout_state_reason = "ECS deployment ecs-svc in progress.".into();
        }
        let txn = Txn::new().when(compare).put(key.clone(), to_bytes(&rec)?);
        if commit(ctx.store(), txn).await? {
            tracing::info!(service = %name, cluster = %cluster, desired, "service created");
            rec.steady = false;
            return Ok(CreateServiceResponse {
                service: Some(rec.view(false)),
            });
        }
    }
    Err(contention())
}
