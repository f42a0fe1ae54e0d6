//! UpdateService: changes a service's desired count, deployment configuration, placement and
//! other settings; a new task definition or `forceNewDeployment` starts a new deployment
//! (PRIMARY, IN_PROGRESS; the previous ones become ACTIVE and are drained by the service loop as
//! the new one becomes healthy). An unknown service is `ServiceNotFoundException`, a DRAINING or
//! INACTIVE one `ServiceNotActiveException`. New `loadBalancers` or `serviceRegistries` (checked
//! as CreateService checks them, against the task definition the service moves to) start a new
//! deployment, as in ECS. A service with task sets (`EXTERNAL`, `CODE_DEPLOY`) takes only what
//! starts no deployment (desired count, which every set's computed count follows, grace period,
//! deployment configuration, ...); the rest is refused with ECS's "Unable to update ..." message.

use crate::context::Ctx;
use flotilla_control::launch::{constraints, strategies};
use flotilla_control::services::{
    apply_task_set_update, apply_update, check_task_set_update, deployment_id, service_key,
    service_name_in, service_not_active, service_not_found, ServiceRecord, ServiceStatus,
};
use flotilla_control::template::Common;
use flotilla_controllers::records::{get, to_bytes, Attempt};
use flotilla_controllers::templates::{prepare, resolve_launch};
use flotilla_model::shapes::{
    CapacityProviderStrategyItem, UpdateServiceRequest, UpdateServiceResponse,
};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// UpdateService: the request's own rules, the task definition and launch it moves to (checked
/// once), then the change applied to the record (`flotilla_control::services::apply_update`).
pub async fn update_service(
    ctx: &Ctx<'_>,
    req: UpdateServiceRequest,
) -> Result<UpdateServiceResponse, EcsError> {
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[&req.service]).await?;
    let name = service_name_in(&req.service, &cluster)
        .filter(|_| !super::foreign_arn(ctx, &req.service))
        .ok_or_else(service_not_found)?
        .to_string();
    crate::shared::unserved::refuse(&crate::shared::unserved::ServiceOptions::of_update(&req))?;
    let new_strategy = req
        .capacity_provider_strategy
        .as_deref()
        .filter(|c| !c.is_empty());
    if let Some(s) = new_strategy {
        resolve_launch(ctx.plane(), Some(&cluster), None, Some(s)).await?;
    }
    if req.desired_count.is_some_and(|d| d < 0) {
        return Err(EcsError::invalid_parameter(
            "desiredCount must be 0 or more.",
        ));
    }
    if let Some(s) = &req.placement_strategy {
        strategies(s)?;
    }
    if let Some(c) = &req.placement_constraints {
        constraints(c)?;
    }
    let key = service_key(&cluster, &name);
    if let Some((rec, _)) = get::<ServiceRecord>(ctx.store(), &key).await? {
        if rec.uses_task_sets() {
            check_task_set_update(rec.controller(), &req)?;
        }
    }
    let new_td = new_task_definition(ctx, &req, &cluster, &key, new_strategy).await?;
    let now = flotilla_control::timestamp(ctx.now);
    let (rec, new_deployment) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
                return Err(service_not_found());
            };
            if rec.status != ServiceStatus::Active {
                return Err(service_not_active());
            }
            if rec.uses_task_sets() {
                apply_task_set_update(&mut rec, &req, now)?;
                let txn = Txn::new()
                    .when(Compare::ModRevision(key.clone(), rev))
                    .put(key.clone(), to_bytes(&rec)?);
                return Ok(Attempt::Commit(txn, (rec, false)));
            }
            let id = deployment_id(rand::random::<u64>());
            let started = apply_update(&mut rec, &req, new_td.as_deref(), id, now)?;
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .put(key.clone(), to_bytes(&rec)?);
            Ok(Attempt::Commit(txn, (rec, started)))
        })
        .await?;
    tracing::info!(service = %name, cluster = %cluster, new_deployment, "service updated");
    Ok(UpdateServiceResponse {
        service: Some(rec.view(false)),
    })
}

/// Checks the task definition, launch and network the service moves to (ACTIVE, compatible,
/// valid), once, before the write; the new task definition's ARN when the request names one.
async fn new_task_definition(
    ctx: &Ctx<'_>,
    req: &UpdateServiceRequest,
    cluster: &str,
    key: &str,
    new_strategy: Option<&[CapacityProviderStrategyItem]>,
) -> Result<Option<String>, EcsError> {
    let launch_changes = new_strategy.is_some()
        || req.network_configuration.is_some()
        || req.platform_version.is_some();
    // A deployment configuration's strategy is checked against the load balancers too.
    let traffic_changes = req.load_balancers.is_some()
        || req.service_registries.is_some()
        || req.deployment_configuration.is_some();
    if req.task_definition.is_none() && !launch_changes && !traffic_changes {
        return Ok(None);
    }
    let Some((rec, _)) = get::<ServiceRecord>(ctx.store(), key).await? else {
        return Err(service_not_found());
    };
    let mut launch = rec.launch();
    if let Some(s) = new_strategy {
        launch.strategy = s.to_vec();
        launch.launch_type = flotilla_control::launch::strategy_launch_type(s)?;
    }
    let current_td = rec.service.task_definition.clone().unwrap_or_default();
    let td = req.task_definition.as_deref().unwrap_or(&current_td);
    let t = prepare(
        ctx.plane(),
        &Common {
            cluster: Some(cluster),
            allow_inactive: req.task_definition.is_none(),
            platform_version: req
                .platform_version
                .as_deref()
                .or(rec.service.platform_version.as_deref()),
            network_configuration: req
                .network_configuration
                .as_ref()
                .or(rec.service.network_configuration.as_ref()),
            ..Common::new(td, launch.launch_type)
        },
    )
    .await?;
    let s = &rec.service;
    crate::shared::traffic::check(
        ctx,
        req.load_balancers
            .as_deref()
            .or(s.load_balancers.as_deref())
            .unwrap_or(&[]),
        req.service_registries
            .as_deref()
            .or(s.service_registries.as_deref())
            .unwrap_or(&[]),
        s.role_arn.as_deref(),
        &t.task_definition,
    )
    .await?;
    let config = flotilla_control::services::deployment_configuration(
        req.deployment_configuration.as_ref(),
        s.deployment_configuration.as_ref(),
    )?;
    crate::shared::traffic::check_blue_green(
        ctx,
        &config,
        req.load_balancers
            .as_deref()
            .or(s.load_balancers.as_deref())
            .unwrap_or(&[]),
        &t.task_definition,
    )
    .await?;
    Ok(req
        .task_definition
        .as_ref()
        .and(t.task_definition.task_definition_arn))
}
