//! CreateService: stores a REPLICA service with its first deployment (PRIMARY, IN_PROGRESS);
//! the service loop (`flotilla_controllers::service_loop`) then starts its tasks.
//!
//! Checked as ECS does: the cluster is ACTIVE, the task definition exists and is ACTIVE and fits
//! the launch (a launch type, or a capacity provider strategy: the request's, else the
//! cluster's default; FARGATE services follow ECS's Fargate rules), `desiredCount` is given, the placement
//! strategies and constraints parse, the deployment configuration is within range (defaults
//! 200/100), tags are valid. A name already used by an ACTIVE or DRAINING service of the cluster
//! is `InvalidParameterException` "Creation of service was not idempotent.", unless the request
//! repeats that service's `clientToken`, which answers the existing service. An INACTIVE
//! service's name can be reused. DAEMON services run one task on every ACTIVE instance with a
//! connected agent (no placement strategies, as ECS; placement constraints not supported yet;
//! deployment defaults 100/0). `loadBalancers` and `serviceRegistries` are checked as ECS
//! checks them (`crate::shared::traffic`) and kept; the service loop registers the tasks.
//! `availabilityZoneRebalancing` defaults to ENABLED for services that can be rebalanced
//! (`flotilla_control::service_scheduler::rebalance::compatible`), DISABLED for the others;
//! ENABLED asked for one that cannot is refused with the reason.
//!
//! With the `EXTERNAL` or `CODE_DEPLOY` deployment controller the service has task sets
//! instead of deployments ([`create_task_set_service`]): an EXTERNAL service starts with none
//! (task definition, launch and network optional; load balancers refused, as ECS refuses them:
//! they belong to task sets), a CODE_DEPLOY one with a PRIMARY set at scale 100 made of its task
//! definition, launch, network and load balancers (required, as CodeDeploy shifts traffic).

use crate::context::Ctx;
use flotilla_control::launch::{constraints, strategies, Launch};
use flotilla_control::service_scheduler::rebalance;
use flotilla_control::services::{
    deployment_configuration, deployment_id, new_deployment, service_key, ServiceRecord,
    ServiceStatus,
};
use flotilla_control::tags::validate_tags;
use flotilla_control::task_sets::TaskSetRecord;
use flotilla_control::template::{Common, TaskTemplate};
use flotilla_controllers::records::{get, to_bytes, Attempt};
use flotilla_controllers::templates::{prepare, resolve_launch};
use flotilla_model::shapes::{
    AvailabilityZoneRebalancing, CreateServiceRequest, CreateServiceResponse,
    DeploymentConfiguration, DeploymentController, DeploymentControllerType, LaunchType,
    PropagateTags, SchedulingStrategy, Service, Tag,
};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_store::{Compare, Txn};

/// CreateService: the request's own rules, then its launch and task template, then the record,
/// created unless an ACTIVE or DRAINING service holds the name.
pub async fn create_service(
    ctx: &Ctx<'_>,
    req: CreateServiceRequest,
) -> Result<CreateServiceResponse, EcsError> {
    let daemon = check_request(&req)?;
    crate::shared::unserved::refuse(&crate::shared::unserved::ServiceOptions::of_create(&req))?;
    if req
        .deployment_controller
        .as_ref()
        .is_some_and(|c| c.r#type != DeploymentControllerType::Ecs)
    {
        return create_task_set_service(ctx, req).await;
    }
    let launch = resolve_launch(
        ctx.plane(),
        req.cluster.as_deref(),
        req.launch_type,
        req.capacity_provider_strategy.as_deref(),
    )
    .await?;
    // A daemon runs on every instance: no strategy (Fargate's or custom providers') says where.
    if daemon && (launch.launch_type == LaunchType::Fargate || !launch.strategy.is_empty()) {
        return Err(EcsError::invalid_parameter(
            "The daemon scheduling strategy does not support the FARGATE launch type or capacity providers.",
        ));
    }
    let desired = desired_count(&req, daemon)?;
    let template = task_template(ctx, &req, &launch).await?;
    let base = daemon.then(|| DeploymentConfiguration {
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
    crate::shared::traffic::check(
        ctx,
        req.load_balancers.as_deref().unwrap_or(&[]),
        req.service_registries.as_deref().unwrap_or(&[]),
        req.role.as_deref(),
        &template.task_definition,
    )
    .await?;
    crate::shared::traffic::check_blue_green(
        ctx,
        &config,
        req.load_balancers.as_deref().unwrap_or(&[]),
        &template.task_definition,
    )
    .await?;
    let rebalancing = rebalancing(&req, daemon, &launch, &config)?;
    let shape = Shape {
        daemon,
        desired,
        launch: &launch,
        template: &template,
        config: &config,
        tags: &tags,
        rebalancing,
    };
    let rec = store_service(ctx, &req, &shape.template.cluster, shape.desired, || {
        new_record(ctx, &req, &shape)
    })
    .await?;
    Ok(CreateServiceResponse {
        service: Some(rec.view(false)),
    })
}

/// `availabilityZoneRebalancing`: as asked, ENABLED refused for a service that cannot be
/// rebalanced; when not asked, ENABLED for the services that can be, as ECS defaults it.
fn rebalancing(
    req: &CreateServiceRequest,
    daemon: bool,
    launch: &Launch,
    config: &DeploymentConfiguration,
) -> Result<AvailabilityZoneRebalancing, EcsError> {
    let shape = rebalance::Shape {
        scheduling: if daemon {
            SchedulingStrategy::Daemon
        } else {
            SchedulingStrategy::Replica
        },
        launch_type: launch.strategy.is_empty().then_some(launch.launch_type),
        maximum_percent: u32::try_from(config.maximum_percent.unwrap_or(200)).unwrap_or(0),
        strategies: req.placement_strategy.as_deref().unwrap_or(&[]),
        constraints: req.placement_constraints.as_deref().unwrap_or(&[]),
        providers: launch.strategy.len(),
    };
    let fits = rebalance::compatible(shape);
    match (req.availability_zone_rebalancing, fits) {
        (Some(AvailabilityZoneRebalancing::Enabled), Err(why)) => Err(why.error()),
        (Some(r), _) => Ok(r),
        (None, Ok(())) => Ok(AvailabilityZoneRebalancing::Enabled),
        (None, Err(_)) => Ok(AvailabilityZoneRebalancing::Disabled),
    }
}

/// The request's own rules (name, DAEMON limits, deployment controller); whether it is DAEMON.
fn check_request(req: &CreateServiceRequest) -> Result<bool, EcsError> {
    if !flotilla_model::arn::is_valid_name(&req.service_name) {
        return Err(EcsError::invalid_parameter(
            "Service name must be 1 to 255 letters (uppercase and lowercase), numbers, hyphens and underscores.",
        ));
    }
    let daemon = req.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    if daemon && given(&req.placement_strategy) {
        return Err(EcsError::invalid_parameter(
            "Placement strategies are not supported with DAEMON scheduling strategy.",
        ));
    }
    if daemon && given(&req.placement_constraints) {
        return Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            "Placement constraints on DAEMON services are not supported by this Flotilla server yet.",
        ));
    }
    if daemon
        && req
            .deployment_controller
            .as_ref()
            .is_some_and(|c| c.r#type != DeploymentControllerType::Ecs)
    {
        return Err(EcsError::invalid_parameter(
            "The DAEMON scheduling strategy does not support the CODE_DEPLOY or EXTERNAL deployment controllers.",
        ));
    }
    Ok(daemon)
}

/// Whether a list member was given with at least one item.
fn given<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|p| !p.is_empty())
}

/// The desired count: required for REPLICA, 0 to start with for DAEMON (the loop sets it).
fn desired_count(req: &CreateServiceRequest, daemon: bool) -> Result<i32, EcsError> {
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
    Ok(desired)
}

/// The task template the service's tasks will have (so a bad task definition, launch or
/// placement is refused now, not at the first scale-up).
async fn task_template(
    ctx: &Ctx<'_>,
    req: &CreateServiceRequest,
    launch: &Launch,
) -> Result<TaskTemplate, EcsError> {
    let Some(td_ref) = req.task_definition.as_deref() else {
        return Err(EcsError::invalid_parameter(
            "A task definition is required for a service with the ECS deployment controller.",
        ));
    };
    let template = prepare(
        ctx.plane(),
        &Common {
            cluster: req.cluster.as_deref(),
            enable_execute_command: req.enable_execute_command,
            platform_version: req.platform_version.as_deref(),
            network_configuration: req.network_configuration.as_ref(),
            ..Common::new(td_ref, launch.launch_type)
        },
    )
    .await?;
    let given_constraints = req.placement_constraints.as_deref().unwrap_or(&[]);
    let given_strategies = req.placement_strategy.as_deref().unwrap_or(&[]);
    if template.fargate.is_some() {
        flotilla_model::fargate::validate_fargate_run(
            &template.task_definition,
            None,
            given_constraints,
            given_strategies,
        )?;
    }
    strategies(given_strategies)?;
    constraints(given_constraints)?;
    Ok(template)
}

/// What the checks decided, for building the record.
struct Shape<'a> {
    daemon: bool,
    desired: i32,
    launch: &'a Launch,
    template: &'a TaskTemplate,
    config: &'a DeploymentConfiguration,
    tags: &'a [Tag],
    rebalancing: AvailabilityZoneRebalancing,
}

/// Creates the service record (or answers the existing one for a repeated `clientToken`).
async fn store_service(
    ctx: &Ctx<'_>,
    req: &CreateServiceRequest,
    cluster: &str,
    desired: i32,
    build: impl Fn() -> ServiceRecord,
) -> Result<ServiceRecord, EcsError> {
    let name = &req.service_name;
    let key = service_key(cluster, name);
    let (rec, created) = ctx
        .plane()
        .cas(&key, || async {
            let existing = get::<ServiceRecord>(ctx.store(), &key).await?;
            let compare = match &existing {
                Some((old, _)) if old.status != ServiceStatus::Inactive => {
                    if req.client_token.is_some() && old.client_token == req.client_token {
                        return Ok(Attempt::Done((old.clone(), false)));
                    }
                    return Err(EcsError::invalid_parameter(
                        "Creation of service was not idempotent.",
                    ));
                }
                Some((_, rev)) => Compare::ModRevision(key.clone(), *rev),
                None => Compare::Absent(key.clone()),
            };
            let rec = build();
            let txn = Txn::new().when(compare).put(key.clone(), to_bytes(&rec)?);
            Ok(Attempt::Commit(txn, (rec, true)))
        })
        .await?;
    if created {
        tracing::info!(service = %name, cluster = %cluster, desired, "service created");
    }
    Ok(rec)
}

/// The new service's record: the `Service` shape as ECS shows it and its first deployment.
fn new_record(ctx: &Ctx<'_>, req: &CreateServiceRequest, shape: &Shape<'_>) -> ServiceRecord {
    let (cluster, name) = (&shape.template.cluster, &req.service_name);
    let now = flotilla_control::timestamp(ctx.now);
    let td_arn = shape
        .template
        .task_definition
        .task_definition_arn
        .clone()
        .unwrap_or_default();
    let fargate = shape.template.fargate.is_some();
    let launch = shape.launch;
    let service = Service {
        service_arn: Some(ctx.arns().service(cluster, name)),
        service_name: Some(name.clone()),
        cluster_arn: Some(ctx.arns().cluster(cluster)),
        load_balancers: Some(req.load_balancers.clone().unwrap_or_default()),
        service_registries: Some(req.service_registries.clone().unwrap_or_default()),
        desired_count: shape.desired,
        // A service launched by a capacity provider strategy shows the strategy, not a
        // launch type, as in ECS.
        launch_type: launch.strategy.is_empty().then_some(launch.launch_type),
        capacity_provider_strategy: (!launch.strategy.is_empty()).then(|| launch.strategy.clone()),
        platform_version: fargate.then(|| {
            req.platform_version
                .clone()
                .unwrap_or_else(|| "LATEST".to_string())
        }),
        platform_family: fargate.then(|| crate::fargate::PLATFORM_FAMILY_LINUX.to_string()),
        network_configuration: req.network_configuration.clone(),
        task_definition: Some(td_arn.clone()),
        deployment_configuration: Some(shape.config.clone()),
        role_arn: crate::shared::traffic::role_arn(ctx, req.role.as_deref()),
        created_at: Some(now),
        placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
        placement_strategy: Some(req.placement_strategy.clone().unwrap_or_default()),
        health_check_grace_period_seconds: req.health_check_grace_period_seconds,
        scheduling_strategy: Some(if shape.daemon {
            SchedulingStrategy::Daemon
        } else {
            SchedulingStrategy::Replica
        }),
        deployment_controller: Some(DeploymentController {
            r#type: DeploymentControllerType::Ecs,
        }),
        tags: Some(shape.tags.to_vec()),
        created_by: Some(ctx.caller.principal_arn.clone()),
        enable_ecs_managed_tags: req.enable_ecs_managed_tags,
        propagate_tags: Some(req.propagate_tags.unwrap_or(PropagateTags::None)),
        enable_execute_command: req.enable_execute_command,
        availability_zone_rebalancing: Some(shape.rebalancing),
        ..Service::default()
    };
    let desired = u32::try_from(shape.desired).unwrap_or(0);
    let mut first = new_deployment(deployment_id(rand::random::<u64>()), &td_arn, desired, now);
    first.rollout_state_reason = "ECS deployment ecs-svc in progress.".into();
    ServiceRecord {
        service,
        status: ServiceStatus::Active,
        cluster: cluster.clone(),
        client_token: req.client_token.clone(),
        deployments: vec![first],
        events: Vec::new(),
        steady: false,
        last_completed: None,
        ..ServiceRecord::default()
    }
}

/// CreateService with the `EXTERNAL` or `CODE_DEPLOY` deployment controller: the service
/// record with its task sets (none for EXTERNAL; for CODE_DEPLOY the first, PRIMARY, scale 100).
async fn create_task_set_service(
    ctx: &Ctx<'_>,
    req: CreateServiceRequest,
) -> Result<CreateServiceResponse, EcsError> {
    let controller = req
        .deployment_controller
        .as_ref()
        .map_or(DeploymentControllerType::Ecs, |c| c.r#type);
    let code_deploy = controller == DeploymentControllerType::CodeDeploy;
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[]).await?;
    let desired = desired_count(&req, false)?;
    let lbs = req.load_balancers.clone().unwrap_or_default();
    let regs = req.service_registries.clone().unwrap_or_default();
    if !code_deploy && !lbs.is_empty() {
        return Err(EcsError::invalid_parameter(
            "LoadBalancers must be empty or null.",
        ));
    }
    if !code_deploy && !regs.is_empty() {
        return Err(EcsError::invalid_parameter(
            "ServiceRegistries must be empty or null.",
        ));
    }
    let config = deployment_configuration(req.deployment_configuration.as_ref(), None)?;
    let tags = req.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    if req.health_check_grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(EcsError::invalid_parameter(
            "healthCheckGracePeriodSeconds must be 0 or more.",
        ));
    }
    strategies(req.placement_strategy.as_deref().unwrap_or(&[]))?;
    constraints(req.placement_constraints.as_deref().unwrap_or(&[]))?;
    let strategy = req
        .capacity_provider_strategy
        .as_deref()
        .filter(|s| !s.is_empty());
    let launch_given = req.launch_type.is_some() || strategy.is_some();
    let launch = if launch_given || code_deploy {
        Some(resolve_launch(ctx.plane(), Some(&cluster), req.launch_type, strategy).await?)
    } else {
        None
    };
    let mut first = None;
    let mut td_arn = None;
    if code_deploy {
        let Some(td) = req.task_definition.as_deref() else {
            return Err(EcsError::invalid_parameter(
                "A task definition is required for a service with the CODE_DEPLOY deployment controller.",
            ));
        };
        if lbs.is_empty() {
            return Err(EcsError::invalid_parameter(
                "A load balancer is required for a service with the CODE_DEPLOY deployment controller.",
            ));
        }
        let launch = launch.as_ref();
        let set = crate::shared::task_sets::new_task_set(
            ctx,
            &crate::shared::task_sets::SetRequest {
                cluster: &cluster,
                service: &req.service_name,
                task_definition: td,
                launch_type: launch.map(|l| l.launch_type).filter(|_| strategy.is_none()),
                strategy,
                platform_version: req.platform_version.as_deref(),
                network: req.network_configuration.as_ref(),
                load_balancers: &lbs,
                registries: &regs,
                role: req.role.as_deref(),
                scale: 100.0,
                desired: u32::try_from(desired).unwrap_or(0),
                external_id: None,
                started_by: None,
                client_token: None,
                tags: &[],
            },
        )
        .await?;
        td_arn = Some(set.task_definition.clone());
        first = Some(set);
    } else if let Some(td) = req.task_definition.as_deref() {
        let launch_type = launch.as_ref().map_or(LaunchType::Ec2, |l| l.launch_type);
        let t = prepare(
            ctx.plane(),
            &Common {
                cluster: Some(&cluster),
                platform_version: req.platform_version.as_deref(),
                network_configuration: req.network_configuration.as_ref(),
                ..Common::new(td, launch_type)
            },
        )
        .await?;
        td_arn = t.task_definition.task_definition_arn;
    }
    let build = || {
        let now = flotilla_control::timestamp(ctx.now);
        let mut sets: Vec<TaskSetRecord> = first.iter().cloned().collect();
        let service = Service {
            service_arn: Some(ctx.arns().service(&cluster, &req.service_name)),
            service_name: Some(req.service_name.clone()),
            cluster_arn: Some(ctx.arns().cluster(&cluster)),
            load_balancers: Some(lbs.clone()),
            service_registries: Some(regs.clone()),
            desired_count: desired,
            launch_type: launch
                .as_ref()
                .filter(|l| l.strategy.is_empty())
                .map(|l| l.launch_type),
            capacity_provider_strategy: launch
                .as_ref()
                .filter(|l| !l.strategy.is_empty())
                .map(|l| l.strategy.clone()),
            network_configuration: req.network_configuration.clone(),
            task_definition: td_arn.clone(),
            deployment_configuration: Some(config.clone()),
            role_arn: crate::shared::traffic::role_arn(ctx, req.role.as_deref()),
            created_at: Some(now),
            placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
            placement_strategy: Some(req.placement_strategy.clone().unwrap_or_default()),
            health_check_grace_period_seconds: req.health_check_grace_period_seconds,
            scheduling_strategy: Some(SchedulingStrategy::Replica),
            deployment_controller: Some(DeploymentController { r#type: controller }),
            tags: Some(tags.clone()),
            created_by: Some(ctx.caller.principal_arn.clone()),
            enable_ecs_managed_tags: req.enable_ecs_managed_tags,
            propagate_tags: Some(req.propagate_tags.unwrap_or(PropagateTags::None)),
            enable_execute_command: req.enable_execute_command,
            ..Service::default()
        };
        let mut service = service;
        if let Some(p) = sets.first_mut() {
            flotilla_control::task_sets::make_primary(std::slice::from_mut(p), 0, now).ok();
            flotilla_control::task_sets::promote(&mut service, p);
        }
        ServiceRecord {
            service,
            status: ServiceStatus::Active,
            cluster: cluster.clone(),
            client_token: req.client_token.clone(),
            task_sets: sets,
            ..ServiceRecord::default()
        }
    };
    let rec = store_service(ctx, &req, &cluster, desired, build).await?;
    Ok(CreateServiceResponse {
        service: Some(rec.view(false)),
    })
}
