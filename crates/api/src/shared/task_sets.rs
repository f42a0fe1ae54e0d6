//! What the task set operations share (CreateTaskSet, DescribeTaskSets, UpdateTaskSet,
//! DeleteTaskSet, UpdateServicePrimaryTaskSet, and CreateService for `CODE_DEPLOY`, which makes
//! the first set): building a checked set, and finding the service a request names with ECS's
//! refusals.

use crate::context::Ctx;
use flotilla_control::services::{
    deployment_id, service_key, service_name_in, service_not_active, service_not_found,
    ServiceRecord, ServiceStatus,
};
use flotilla_control::task_sets::{
    computed_desired_count, not_external, task_set_arn, TaskSetRecord, TaskSetStatus,
};
use flotilla_control::template::Common;
use flotilla_controllers::records::get;
use flotilla_controllers::templates::{prepare, resolve_launch};
use flotilla_model::shapes::{
    CapacityProviderStrategyItem, LaunchType, LoadBalancer, NetworkConfiguration, ServiceRegistry,
    Tag,
};
use flotilla_model::EcsError;

/// What a new task set is made of (CreateTaskSet's members, or CreateService's for the first
/// set of a `CODE_DEPLOY` service).
pub struct SetRequest<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// The service's name.
    pub service: &'a str,
    /// The task definition (family, family:revision or ARN).
    pub task_definition: &'a str,
    /// `launchType`.
    pub launch_type: Option<LaunchType>,
    /// `capacityProviderStrategy`.
    pub strategy: Option<&'a [CapacityProviderStrategyItem]>,
    /// `platformVersion`.
    pub platform_version: Option<&'a str>,
    /// `networkConfiguration`.
    pub network: Option<&'a NetworkConfiguration>,
    /// `loadBalancers`.
    pub load_balancers: &'a [LoadBalancer],
    /// `serviceRegistries`.
    pub registries: &'a [ServiceRegistry],
    /// The service's role, if any.
    pub role: Option<&'a str>,
    /// `scale.value` (checked).
    pub scale: f64,
    /// The service's desired count.
    pub desired: u32,
    /// `externalId`.
    pub external_id: Option<&'a str>,
    /// The set's `startedBy`.
    pub started_by: Option<&'a str>,
    /// `clientToken`.
    pub client_token: Option<&'a str>,
    /// `tags` (checked).
    pub tags: &'a [Tag],
}

/// A new ACTIVE task set, its task definition, launch, network and traffic checked as a
/// service's are (so a bad one is refused now, not at its first task).
pub async fn new_task_set(ctx: &Ctx<'_>, r: &SetRequest<'_>) -> Result<TaskSetRecord, EcsError> {
    let launch = resolve_launch(ctx.plane(), Some(r.cluster), r.launch_type, r.strategy).await?;
    let template = prepare(
        ctx.plane(),
        &Common {
            cluster: Some(r.cluster),
            platform_version: r.platform_version,
            network_configuration: r.network,
            ..Common::new(r.task_definition, launch.launch_type)
        },
    )
    .await?;
    if template.fargate.is_some() {
        flotilla_model::fargate::validate_fargate_run(&template.task_definition, None, &[], &[])?;
    }
    crate::shared::traffic::check(
        ctx,
        r.load_balancers,
        r.registries,
        r.role,
        &template.task_definition,
    )
    .await?;
    let now = flotilla_control::timestamp(ctx.now);
    let id = deployment_id(rand::random::<u64>());
    let fargate = template.fargate.is_some();
    Ok(TaskSetRecord {
        arn: task_set_arn(ctx.arns(), r.cluster, r.service, &id),
        id,
        status: TaskSetStatus::Active,
        task_definition: template
            .task_definition
            .task_definition_arn
            .clone()
            .unwrap_or_default(),
        launch_type: launch.strategy.is_empty().then_some(launch.launch_type),
        capacity_provider_strategy: launch.strategy.clone(),
        platform_version: fargate.then(|| r.platform_version.unwrap_or("LATEST").to_string()),
        platform_family: fargate.then(|| crate::fargate::PLATFORM_FAMILY_LINUX.to_string()),
        network_configuration: r.network.cloned(),
        load_balancers: r.load_balancers.to_vec(),
        service_registries: r.registries.to_vec(),
        scale: r.scale,
        computed_desired_count: computed_desired_count(r.desired, r.scale),
        pending_count: 0,
        running_count: 0,
        steady: false,
        stability_at: now,
        external_id: r.external_id.map(str::to_string),
        started_by: r.started_by.map(str::to_string),
        client_token: r.client_token.map(str::to_string),
        tags: Some(r.tags.to_vec()),
        created_at: now,
        updated_at: now,
    })
}

/// The store key of the service a task set request names (name or ARN) in `cluster`;
/// `ServiceNotFoundException` when it cannot name one here.
pub fn service_key_of(ctx: &Ctx<'_>, cluster: &str, service: &str) -> Result<String, EcsError> {
    let foreign = service.starts_with("arn:")
        && flotilla_model::arn::parse(service)
            .is_some_and(|p| p.region != ctx.arns().region || p.account != ctx.arns().account);
    let name = service_name_in(service, cluster)
        .filter(|_| !foreign)
        .ok_or_else(service_not_found)?;
    Ok(service_key(cluster, name))
}

/// The service record a task set operation acts on, with ECS's refusals: unknown
/// (`ServiceNotFoundException`), not a task set service (`InvalidParameterException`), not
/// ACTIVE (`ServiceNotActiveException`; with `allow_draining`, only INACTIVE is refused).
pub async fn task_set_service(
    ctx: &Ctx<'_>,
    key: &str,
    allow_draining: bool,
) -> Result<(ServiceRecord, u64), EcsError> {
    let Some((rec, rev)) = get::<ServiceRecord>(ctx.store(), key).await? else {
        return Err(service_not_found());
    };
    check_service(&rec, allow_draining)?;
    Ok((rec, rev))
}

/// [`task_set_service`]'s checks on a record already read.
pub fn check_service(rec: &ServiceRecord, allow_draining: bool) -> Result<(), EcsError> {
    if rec.status == ServiceStatus::Inactive
        || (!allow_draining && rec.status != ServiceStatus::Active)
    {
        return Err(service_not_active());
    }
    if !rec.uses_task_sets() {
        return Err(not_external());
    }
    Ok(())
}
