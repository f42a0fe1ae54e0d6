//! UpdateCapacityProvider: merges the request's `autoScalingGroupProvider` settings over the
//! stored provider's (`flotilla_control::capacity_providers::apply_update`); the update is
//! complete when the answer is sent.

use crate::context::Ctx;
use crate::shared::capacity_providers::addressed;
use flotilla_control::capacity_providers::{self as cp, CapacityProviderRecord};
use flotilla_controllers::records::{get, replace, Attempt};
use flotilla_model::shapes::{UpdateCapacityProviderRequest, UpdateCapacityProviderResponse};
use flotilla_model::{EcsError, ErrorCode};

/// UpdateCapacityProvider.
pub async fn update_capacity_provider(
    ctx: &Ctx<'_>,
    req: UpdateCapacityProviderRequest,
) -> Result<UpdateCapacityProviderResponse, EcsError> {
    if req.managed_instances_provider.is_some() {
        return Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            "Amazon ECS Managed Instances capacity providers are not supported by this Flotilla server.",
        ));
    }
    let name = addressed(ctx, &req.name, req.cluster.as_deref())?;
    let key = cp::key(&name);
    let rec = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<CapacityProviderRecord>(ctx.store(), &key).await?
            else {
                return Err(cp::not_found(&name));
            };
            if !rec.is_active() {
                return Err(cp::not_found(&name));
            }
            cp::apply_update(&mut rec, req.auto_scaling_group_provider.as_ref())?;
            Ok(Attempt::Commit(replace(&key, rev, &rec)?, rec))
        })
        .await?;
    tracing::info!(capacity_provider = %name, "capacity provider updated");
    Ok(UpdateCapacityProviderResponse {
        capacity_provider: Some(rec.provider),
    })
}
