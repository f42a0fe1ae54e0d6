//! PutClusterCapacityProviders: replaces a cluster's capacity providers (FARGATE, FARGATE_SPOT
//! and ACTIVE custom providers) and its default capacity provider strategy (Fargate or custom
//! providers, not both). A provider a service of the cluster still names in its strategy cannot
//! be removed (`ResourceInUseException`, ECS's message).
//!
//! The write compares the cluster record and the record of every custom provider it lists, so a
//! provider deleted meanwhile is never associated (DeleteCapacityProvider compares the clusters).

use crate::context::Ctx;
use crate::shared::capacity_providers::{all, state};
use flotilla_control::capacity_providers as cp;
use flotilla_control::clusters::validate_capacity_providers;
use flotilla_control::keys::foreign_arn;
use flotilla_control::services::{service_prefix, ServiceRecord, ServiceStatus};
use flotilla_controllers::records::{active_cluster, cluster_key, list, to_bytes, Attempt};
use flotilla_model::shapes::{
    PutClusterCapacityProvidersRequest, PutClusterCapacityProvidersResponse,
};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// PutClusterCapacityProviders.
pub async fn put_cluster_capacity_providers(
    ctx: &Ctx<'_>,
    req: PutClusterCapacityProvidersRequest,
) -> Result<PutClusterCapacityProvidersResponse, EcsError> {
    if foreign_arn(ctx.arns(), &req.cluster) {
        return Err(EcsError::cluster_not_found());
    }
    let name = flotilla_control::keys::cluster_name(Some(&req.cluster))?;
    let providers = &req.capacity_providers;
    let mut c = ctx
        .plane()
        .cas(&cluster_key(&name), || async {
            let (mut c, rev) = active_cluster(ctx.store(), Some(&req.cluster)).await?;
            let stored = all(ctx).await?;
            validate_capacity_providers(providers, &req.default_capacity_provider_strategy, |n| {
                state(&stored, n)
            })?;
            let cluster = c.cluster_name.clone().unwrap_or_default();
            let removed: Vec<String> = c
                .capacity_providers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| !providers.contains(p))
                .collect();
            if !removed.is_empty() {
                let services =
                    list::<ServiceRecord>(ctx.store(), &service_prefix(&cluster)).await?;
                let used = services.iter().any(|(_, s, _)| {
                    s.status != ServiceStatus::Inactive
                        && s.service
                            .capacity_provider_strategy
                            .iter()
                            .flatten()
                            .any(|i| removed.contains(&i.capacity_provider))
                });
                if used {
                    return Err(cp::in_use());
                }
            }
            c.capacity_providers = Some(providers.clone());
            c.default_capacity_provider_strategy =
                Some(req.default_capacity_provider_strategy.clone());
            let key = cluster_key(&cluster);
            let mut txn = Txn::new().when(Compare::ModRevision(key.clone(), rev));
            for p in providers {
                if let Some((_, prev)) = stored.get(p) {
                    txn = txn.when(Compare::ModRevision(cp::key(p), *prev));
                }
            }
            let txn = txn.put(key, to_bytes(&c)?);
            Ok(Attempt::Commit(txn, c))
        })
        .await?;
    crate::shared::cluster_counts::fill_counts(ctx.plane(), &mut c).await?;
    Ok(PutClusterCapacityProvidersResponse { cluster: Some(c) })
}
