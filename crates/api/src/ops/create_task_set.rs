//! CreateTaskSet: a new ACTIVE task set in an `EXTERNAL` (or `CODE_DEPLOY`) service, whose
//! tasks the service loop starts: `computedDesiredCount = ceil(desiredCount * scale / 100)`
//! (scale 100 PERCENT by default). Its task definition, launch (the request's, else the
//! service's, else the cluster's default), network and load balancers are checked as a
//! service's are. ECS's refusals: an unknown service (`ServiceNotFoundException`), a service
//! with the ECS deployment controller (`InvalidParameterException`), one not ACTIVE
//! (`ServiceNotActiveException`), a sixth set. A repeated `clientToken` answers the set it made.

use crate::context::Ctx;
use crate::shared::task_sets::{check_service, new_task_set, service_key_of, SetRequest};
use flotilla_control::services::{service_not_found, ServiceRecord};
use flotilla_control::tags::validate_tags;
use flotilla_control::task_sets::{check_room, check_scale, computed_desired_count, view};
use flotilla_controllers::records::{get, replace, Attempt};
use flotilla_model::shapes::{CreateTaskSetRequest, CreateTaskSetResponse};
use flotilla_model::EcsError;

/// CreateTaskSet.
pub async fn create_task_set(
    ctx: &Ctx<'_>,
    req: CreateTaskSetRequest,
) -> Result<CreateTaskSetResponse, EcsError> {
    let cluster = super::request_cluster(ctx, Some(&req.cluster), &[&req.service]).await?;
    let key = service_key_of(ctx, &cluster, &req.service)?;
    let (rec, _) = crate::shared::task_sets::task_set_service(ctx, &key, false).await?;
    let scale = match &req.scale {
        Some(s) => check_scale(s)?,
        None => 100.0,
    };
    let tags = req.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    let given_launch = req.launch_type.is_some()
        || req
            .capacity_provider_strategy
            .as_ref()
            .is_some_and(|s| !s.is_empty());
    let s = &rec.service;
    let (launch_type, strategy) = if given_launch {
        (req.launch_type, req.capacity_provider_strategy.as_deref())
    } else {
        (s.launch_type, s.capacity_provider_strategy.as_deref())
    };
    let desired = u32::try_from(s.desired_count).unwrap_or(0);
    let set = new_task_set(
        ctx,
        &SetRequest {
            cluster: &cluster,
            service: rec.name(),
            task_definition: &req.task_definition,
            launch_type,
            strategy: strategy.filter(|s| !s.is_empty()),
            platform_version: req.platform_version.as_deref(),
            network: req.network_configuration.as_ref(),
            load_balancers: req.load_balancers.as_deref().unwrap_or(&[]),
            registries: req.service_registries.as_deref().unwrap_or(&[]),
            role: s.role_arn.as_deref(),
            scale,
            desired,
            external_id: req.external_id.as_deref(),
            started_by: None,
            client_token: req.client_token.as_deref(),
            tags: &tags,
        },
    )
    .await?;
    let (rec, set) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
                return Err(service_not_found());
            };
            check_service(&rec, false)?;
            if let Some(same) = rec
                .task_sets
                .iter()
                .find(|t| req.client_token.is_some() && t.client_token == req.client_token)
            {
                return Ok(Attempt::Done((rec.clone(), same.clone())));
            }
            check_room(&rec.task_sets)?;
            let mut set = set.clone();
            let desired = u32::try_from(rec.service.desired_count).unwrap_or(0);
            set.computed_desired_count = computed_desired_count(desired, set.scale);
            rec.task_sets.push(set.clone());
            rec.steady = false;
            let txn = replace(&key, rev, &rec)?;
            Ok(Attempt::Commit(txn, (rec, set)))
        })
        .await?;
    tracing::info!(service = %rec.name(), cluster = %cluster, task_set = %set.id, "task set created");
    Ok(CreateTaskSetResponse {
        task_set: Some(view(&set, rec.arn(), cluster_arn(&rec), true)),
    })
}

fn cluster_arn(rec: &ServiceRecord) -> &str {
    rec.service.cluster_arn.as_deref().unwrap_or("")
}
