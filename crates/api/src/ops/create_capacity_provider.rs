//! CreateCapacityProvider: a custom provider, a set of hosts (agents started with
//! `--capacity-provider NAME` join it). The `autoScalingGroupProvider` is stored as given, with
//! ECS's defaults; Flotilla does not call Auto Scaling (see `flotilla_control::capacity_providers`).
//! A name in use by an ACTIVE provider, or by FARGATE and FARGATE_SPOT, is refused with ECS's
//! message; an INACTIVE (deleted) provider's name may be taken again.

use crate::context::Ctx;
use flotilla_control::capacity_providers::{self as cp, CapacityProviderRecord};
use flotilla_control::tags::validate_tags;
use flotilla_controllers::records::{get, list, to_bytes, Attempt};
use flotilla_model::shapes::{CreateCapacityProviderRequest, CreateCapacityProviderResponse};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_store::{Compare, Txn};

/// CreateCapacityProvider.
pub async fn create_capacity_provider(
    ctx: &Ctx<'_>,
    req: CreateCapacityProviderRequest,
) -> Result<CreateCapacityProviderResponse, EcsError> {
    if req.managed_instances_provider.is_some() {
        return Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            "Amazon ECS Managed Instances capacity providers are not supported by this Flotilla server; create an Auto Scaling group provider (autoScalingGroupProvider) and join hosts to it with `flotilla agent --capacity-provider NAME`.",
        ));
    }
    if req.cluster.is_some() {
        return Err(EcsError::invalid_parameter(
            "The cluster parameter is only supported for Amazon ECS Managed Instances capacity providers.",
        ));
    }
    cp::validate_name(&req.name)?;
    let tags = req.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    let rec = cp::create(
        &req.name,
        ctx.arns().capacity_provider(&req.name),
        req.auto_scaling_group_provider.as_ref(),
        tags,
    )?;
    let key = cp::key(&req.name);
    let created = ctx
        .plane()
        .cas(&key, || async {
            let existing = get::<CapacityProviderRecord>(ctx.store(), &key).await?;
            let compare = match &existing {
                Some((r, _)) if r.is_active() => return Err(cp::already_exists()),
                Some((_, rev)) => Compare::ModRevision(key.clone(), *rev),
                None => Compare::Absent(key.clone()),
            };
            // One provider per Auto Scaling group, as ECS has it.
            let group = rec
                .provider
                .auto_scaling_group_provider
                .as_ref()
                .map(|a| a.auto_scaling_group_arn.clone());
            let others = list::<CapacityProviderRecord>(ctx.store(), cp::PREFIX).await?;
            let mut txn = Txn::new().when(compare);
            for (okey, other, rev) in &others {
                if other.is_active() {
                    let same = other
                        .provider
                        .auto_scaling_group_provider
                        .as_ref()
                        .map(|a| a.auto_scaling_group_arn.clone());
                    if same == group {
                        return Err(cp::group_in_use());
                    }
                    txn = txn.when(Compare::ModRevision(okey.clone(), *rev));
                }
            }
            let txn = txn.put(key.clone(), to_bytes(&rec)?);
            Ok(Attempt::Commit(txn, rec.clone()))
        })
        .await?;
    tracing::info!(capacity_provider = %req.name, "capacity provider created");
    Ok(CreateCapacityProviderResponse {
        capacity_provider: Some(created.provider),
    })
}
