//! DeleteCapacityProvider. FARGATE and FARGATE_SPOT are reserved (refused). A provider that an
//! ACTIVE cluster lists, or a service's strategy names, is not deleted: as the real service
//! answers, the call succeeds with the provider still ACTIVE, `updateStatus: DELETE_FAILED` and
//! the reason. Otherwise it is INACTIVE (`DELETE_COMPLETE`) at once, describable by name for the
//! stopped-task retention time, then MISSING; its name can be taken again.
//!
//! Race: the delete's transaction compares every ACTIVE cluster record it read, and
//! PutClusterCapacityProviders compares the records of the providers it associates, so a
//! provider is never both deleted and newly associated.

use crate::context::Ctx;
use crate::shared::capacity_providers::addressed;
use flotilla_control::capacity_providers::{self as cp, CapacityProviderRecord};
use flotilla_control::services::{ServiceRecord, ServiceStatus, SERVICES};
use flotilla_controllers::records::{get, list, to_bytes, Attempt, CLUSTERS};
use flotilla_model::shapes::{
    Cluster, DeleteCapacityProviderRequest, DeleteCapacityProviderResponse,
};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// DeleteCapacityProvider.
pub async fn delete_capacity_provider(
    ctx: &Ctx<'_>,
    req: DeleteCapacityProviderRequest,
) -> Result<DeleteCapacityProviderResponse, EcsError> {
    let name = addressed(ctx, &req.capacity_provider, req.cluster.as_deref())?;
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
            let mut txn = Txn::new().when(Compare::ModRevision(key.clone(), rev));
            let mut clusters = Vec::new();
            for (ckey, c, crev) in list::<Cluster>(ctx.store(), CLUSTERS).await? {
                if c.status.as_deref() != Some("ACTIVE") {
                    continue;
                }
                txn = txn.when(Compare::ModRevision(ckey, crev));
                if c.capacity_providers.unwrap_or_default().contains(&name) {
                    clusters.push(c.cluster_name.unwrap_or_default());
                }
            }
            let services: Vec<String> = list::<ServiceRecord>(ctx.store(), SERVICES)
                .await?
                .into_iter()
                .filter(|(_, s, _)| s.status != ServiceStatus::Inactive)
                .filter(|(_, s, _)| {
                    s.service
                        .capacity_provider_strategy
                        .iter()
                        .flatten()
                        .any(|i| i.capacity_provider == name)
                })
                .map(|(_, s, _)| format!("{}/{}", s.cluster, s.name()))
                .collect();
            let outcome = cp::decide_delete(&clusters, &services);
            cp::apply_delete(&mut rec, &outcome, ctx.now);
            let txn = txn.put(key.clone(), to_bytes(&rec)?);
            Ok(Attempt::Commit(txn, rec))
        })
        .await?;
    tracing::info!(capacity_provider = %name, update_status = ?rec.provider.update_status, "capacity provider delete");
    Ok(DeleteCapacityProviderResponse {
        capacity_provider: Some(rec.provider),
    })
}
