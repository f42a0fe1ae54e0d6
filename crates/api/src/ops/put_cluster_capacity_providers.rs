//! PutClusterCapacityProviders: replaces a cluster's capacity providers (FARGATE, FARGATE_SPOT)
//! and its default capacity provider strategy.

use crate::context::Ctx;
use crate::shared::cluster_writes::modify_cluster;
use flotilla_control::clusters::validate_capacity_providers;
use flotilla_model::shapes::{
    PutClusterCapacityProvidersRequest, PutClusterCapacityProvidersResponse,
};
use flotilla_model::EcsError;

/// PutClusterCapacityProviders.
pub async fn put_cluster_capacity_providers(
    ctx: &Ctx<'_>,
    req: PutClusterCapacityProvidersRequest,
) -> Result<PutClusterCapacityProvidersResponse, EcsError> {
    validate_capacity_providers(
        &req.capacity_providers,
        &req.default_capacity_provider_strategy,
    )?;
    let mut c = modify_cluster(ctx, Some(&req.cluster), |c| {
        c.capacity_providers = Some(req.capacity_providers.clone());
        c.default_capacity_provider_strategy = Some(req.default_capacity_provider_strategy.clone());
        Ok(())
    })
    .await?;
    crate::shared::cluster_counts::fill_counts(ctx.store(), &mut c).await?;
    Ok(PutClusterCapacityProvidersResponse { cluster: Some(c) })
}
