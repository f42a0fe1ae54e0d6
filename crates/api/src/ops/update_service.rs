//! UpdateService: changes a service's desired count, deployment configuration, placement and
//! other settings; a new task definition or `forceNewDeployment` starts a new deployment
//! (PRIMARY, IN_PROGRESS; the previous ones become ACTIVE and are drained by the service loop as
//! the new one becomes healthy). An unknown service is `ServiceNotFoundException`, a DRAINING or
//! INACTIVE one `ServiceNotActiveException`.

use crate::context::Ctx;
use flotilla_control::launch::{constraints, strategies};
use flotilla_control::service_scheduler::DeploymentStatus;
use flotilla_control::services::{
    deployment_configuration, deployment_id, new_deployment, service_key, service_name_in,
    service_not_active, service_not_found, ServiceRecord, ServiceStatus,
};
use flotilla_control::template::Common;
use flotilla_controllers::records::{commit, contention, get, to_bytes, CAS_ATTEMPTS};
use flotilla_controllers::templates::{prepare, resolve_launch};
use flotilla_model::shapes::{UpdateServiceRequest, UpdateServiceResponse};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// UpdateService.
pub async fn update_service(
    ctx: &Ctx<'_>,
    req: UpdateServiceRequest,
) -> Result<UpdateServiceResponse, EcsError> {
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[&req.service]).await?;
    let name = service_name_in(&req.service, &cluster)
        .filter(|_| !super::foreign_arn(ctx, &req.service))
        .ok_or_else(service_not_found)?
        .to_string();
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
    let now = flotilla_control::timestamp(ctx.now);
    // The new task definition, launch and network, checked once (ACTIVE, compatible, valid).
    let mut new_td: Option<String> = None;
    let launch_changes = new_strategy.is_some()
        || req.network_configuration.is_some()
        || req.platform_version.is_some();
    if req.task_definition.is_some() || launch_changes {
        let Some((rec, _)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
            return Err(service_not_found());
        };
        let mut launch = rec.launch();
        if let Some(s) = new_strategy {
            launch.strategy = s.to_vec();
            launch.launch_type = flotilla_model::shapes::LaunchType::Fargate;
        }
        let current_td = rec.service.task_definition.clone().unwrap_or_default();
        let td = req.task_definition.as_deref().unwrap_or(&current_td);
        let t = prepare(
            ctx.plane(),
            &Common {
                cluster: Some(&cluster),
                task_definition: td,
                overrides: None,
                group: None,
                started_by: None,
                tags: None,
                propagate_tags: None,
                launch_type: launch.launch_type,
                enable_execute_command: false,
                allow_inactive: req.task_definition.is_none(),
                platform_version: req
                    .platform_version
                    .as_deref()
                    .or(rec.service.platform_version.as_deref()),
                network_configuration: req
                    .network_configuration
                    .as_ref()
                    .or(rec.service.network_configuration.as_ref()),
            },
        )
        .await?;
        if req.task_definition.is_some() {
            new_td = t.task_definition.task_definition_arn.clone();
        }
    }
    for _ in 0..CAS_ATTEMPTS {
        let Some((mut rec, rev)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
            return Err(service_not_found());
        };
        if rec.status != ServiceStatus::Active {
            return Err(service_not_active());
        }
        let s = &mut rec.service;
        if let Some(d) = req.desired_count {
            s.desired_count = d;
        }
        if req.deployment_configuration.is_some() {
            s.deployment_configuration = Some(deployment_configuration(
                req.deployment_configuration.as_ref(),
                s.deployment_configuration.as_ref(),
            )?);
        }
        let mut new_deployment_wanted = req.force_new_deployment;
        if let Some(strategy) = new_strategy {
            new_deployment_wanted |= s.capacity_provider_strategy.as_deref() != Some(strategy);
            s.capacity_provider_strategy = Some(strategy.to_vec());
            s.launch_type = None;
        }
        if let Some(n) = &req.network_configuration {
            new_deployment_wanted |= s.network_configuration.as_ref() != Some(n);
            s.network_configuration = Some(n.clone());
        }
        if let Some(p) = &req.platform_version {
            new_deployment_wanted |= s.platform_version.as_ref() != Some(p);
            s.platform_version = Some(p.clone());
        }
        if let Some(c) = &req.placement_constraints {
            new_deployment_wanted |= s.placement_constraints.as_ref() != Some(c);
            s.placement_constraints = Some(c.clone());
        }
        if let Some(p) = &req.placement_strategy {
            new_deployment_wanted |= s.placement_strategy.as_ref() != Some(p);
            s.placement_strategy = Some(p.clone());
        }
        if let Some(g) = req.health_check_grace_period_seconds {
            s.health_check_grace_period_seconds = Some(g);
        }
        if let Some(p) = req.propagate_tags {
            s.propagate_tags = Some(p);
        }
        if let Some(e) = req.enable_ecs_managed_tags {
            s.enable_ecs_managed_tags = e;
        }
        if let Some(e) = req.enable_execute_command {
            s.enable_execute_command = e;
        }
        let current_td = rec
            .deployments
            .first()
            .map(|d| d.task_definition.clone())
            .or_else(|| rec.service.task_definition.clone())
            .unwrap_or_default();
        let td = new_td.clone().unwrap_or_else(|| current_td.clone());
        new_deployment_wanted |= td != current_td;
        let desired = u32::try_from(rec.service.desired_count).unwrap_or(0);
        if new_deployment_wanted {
            for d in rec.deployments.iter_mut() {
                d.status = DeploymentStatus::Active;
                d.desired_count = 0;
                d.updated_at = now;
            }
            rec.deployments.insert(
                0,
                new_deployment(deployment_id(rand::random::<u64>()), &td, desired, now),
            );
            rec.service.task_definition = Some(td.clone());
            rec.steady = false;
        } else if let Some(p) = rec.deployments.first_mut() {
            if p.desired_count != desired {
                p.desired_count = desired;
                p.updated_at = now;
                rec.steady = false;
            }
        }
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .put(key.clone(), to_bytes(&rec)?);
        if commit(ctx.store(), txn).await? {
            tracing::info!(service = %name, cluster = %cluster, new_deployment = new_deployment_wanted, "service updated");
            return Ok(UpdateServiceResponse {
                service: Some(rec.view(false)),
            });
        }
    }
    Err(contention())
}
