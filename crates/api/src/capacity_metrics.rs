//! `flotilla_capacity_provider_reservation`: for every ACTIVE cluster and each custom capacity
//! provider it lists, `CapacityProviderReservation` as ECS computes it for managed scaling
//! (`flotilla_control::capacity_providers::reservation`), read from the store as `/metrics` is
//! scraped, so any replica answers it and it is never stale.
//!
//! N is the provider's running container instances in the cluster, M those running at least one
//! task that is not a daemon service's; FARGATE and FARGATE_SPOT have no such metric (ECS
//! publishes it only for Auto Scaling group providers).

use flotilla_control::capacity_providers::{self as cp, CapacityProviderRecord};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::services::{service_prefix, ServiceRecord};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{instance_prefix, list, task_prefix, CLUSTERS};
use flotilla_model::shapes::{Cluster, SchedulingStrategy};
use flotilla_model::EcsError;
use flotilla_store::Store;
use std::collections::HashSet;

/// Every (cluster, provider, reservation %) of the store.
pub async fn reservations(store: &dyn Store) -> Result<Vec<(String, String, f64)>, EcsError> {
    let providers = list::<CapacityProviderRecord>(store, cp::PREFIX).await?;
    let mut out = Vec::new();
    for (_, c, _) in list::<Cluster>(store, CLUSTERS).await? {
        if c.status.as_deref() != Some("ACTIVE") {
            continue;
        }
        let name = c.cluster_name.clone().unwrap_or_default();
        let custom: Vec<&CapacityProviderRecord> = c
            .capacity_providers
            .iter()
            .flatten()
            .filter_map(|p| providers.iter().find(|(_, r, _)| r.name() == p))
            .map(|(_, r, _)| r)
            .filter(|r| r.is_active())
            .collect();
        if custom.is_empty() {
            continue;
        }
        let instances = list::<InstanceRecord>(store, &instance_prefix(&name)).await?;
        let tasks = list::<TaskRecord>(store, &task_prefix(&name)).await?;
        let held = flotilla_controllers::held::of_records(tasks.iter().map(|(_, t, _)| t), &name);
        let daemons: HashSet<String> = list::<ServiceRecord>(store, &service_prefix(&name))
            .await?
            .into_iter()
            .filter(|(_, s, _)| s.service.scheduling_strategy == Some(SchedulingStrategy::Daemon))
            .map(|(_, s, _)| format!("service:{}", s.name()))
            .collect();
        for r in custom {
            let min_step = r
                .provider
                .auto_scaling_group_provider
                .as_ref()
                .and_then(|a| a.managed_scaling.as_ref())
                .and_then(|s| s.minimum_scaling_step_size)
                .unwrap_or(cp::DEFAULT_MIN_STEP);
            let h = cp::hosts(
                instances.iter().map(|(_, i, _)| {
                    (
                        i,
                        held.get(&i.id)
                            .unwrap_or(&flotilla_control::instances::NOTHING_HELD),
                    )
                }),
                r.name(),
                &daemons,
            );
            let v = cp::reservation(h, u32::try_from(min_step).unwrap_or(1));
            out.push((name.clone(), r.name().to_string(), v));
        }
    }
    Ok(out)
}
