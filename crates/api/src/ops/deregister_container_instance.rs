//! DeregisterContainerInstance: marks an instance INACTIVE (it stays describable) and drops its
//! custom attributes. An instance that still has tasks that are not STOPPED is refused with
//! ECS's `InvalidParameterException` "Found running tasks on the instance." unless `force` is
//! set; with `force` its tasks are orphaned: desired and last status STOPPED (the agent, while
//! connected, is told to stop them) and their reservations released, in the same transaction,
//! which also deletes the instance's agent beat, releases its warm task networks, and deletes
//! the records of its agent's own credentials (an agent that joined with a token): from then on
//! they are refused, and the session they hold is closed (`crate::session` watches their record).
//! A managed-pool host (cluster `.managed`, which no user cluster can be called) is
//! deregistered the same way, its tasks being the Fargate tasks of any cluster it runs.

use crate::context::Ctx;
use crate::shared::instance_views::{task_counts, view_of};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::tasks::{orphan, TaskRecord};
use flotilla_controllers::records::{
    self, agent_beat_key, get, instance_id_in, instance_key, task_key, task_prefix, to_bytes,
    Attempt, ATTRIBUTES,
};
use flotilla_model::shapes::{
    Attribute, DeregisterContainerInstanceRequest, DeregisterContainerInstanceResponse,
};
use flotilla_model::EcsError;
use flotilla_scheduler::InstanceStatus;
use flotilla_store::{Compare, Txn};

fn not_found(r: &str) -> EcsError {
    EcsError::invalid_parameter(format!(
        "The referenced container instance {r} was not found."
    ))
}

/// DeregisterContainerInstance.
pub async fn deregister_container_instance(
    ctx: &Ctx<'_>,
    req: DeregisterContainerInstanceRequest,
) -> Result<DeregisterContainerInstanceResponse, EcsError> {
    let r = req.container_instance.as_str();
    let named = records::cluster_for(req.cluster.as_deref(), &[r]);
    let pool = named.as_deref() == Some(flotilla_protocol::MANAGED_POOL);
    let cluster = if pool {
        flotilla_protocol::MANAGED_POOL.to_string()
    } else {
        super::request_cluster(ctx, req.cluster.as_deref(), &[r]).await?
    };
    // A pool host runs the Fargate tasks of every cluster, stored under their own clusters.
    let tasks_prefix = if pool {
        records::TASKS.to_string()
    } else {
        task_prefix(&cluster)
    };
    let Some(id) = instance_id_in(r, &cluster).filter(|_| !super::foreign_arn(ctx, r)) else {
        return Err(not_found(r));
    };
    let key = instance_key(&cluster, id);
    let force = req.force.unwrap_or(false);
    let now = flotilla_control::timestamp(ctx.now);
    // The instance as it is now, and how many tasks were orphaned if this call deregistered it.
    let (rec, orphaned) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<InstanceRecord>(ctx.store(), &key).await? else {
                return Err(not_found(r));
            };
            if rec.status() == InstanceStatus::Inactive {
                return Ok(Attempt::Done((rec, None)));
            }
            let tasks: Vec<(String, TaskRecord, u64)> =
                records::list::<TaskRecord>(ctx.store(), &tasks_prefix)
                    .await?
                    .into_iter()
                    .filter(|(_, t, _)| {
                        flotilla_controllers::reports::runs_on(t, &cluster, &rec.id)
                            && !t.is_stopped()
                    })
                    .collect();
            if !tasks.is_empty() && !force {
                return Err(EcsError::invalid_parameter(
                    "Found running tasks on the instance.",
                ));
            }
            let mut txn = Txn::new().when(Compare::ModRevision(key.clone(), rev));
            for (tkey, t, trev) in &tasks {
                let stopped = orphan(t, "Container instance deregistered", now);
                txn = txn
                    .when(Compare::ModRevision(tkey.clone(), *trev))
                    .put(task_key(&t.cluster, &t.id), to_bytes(&stopped)?);
                if let Some(net) = stopped.network() {
                    txn = txn.delete(flotilla_controllers::records::address_key(
                        &net.private_ipv4_address,
                    ));
                }
                for k in &stopped.credentials {
                    txn = txn.delete(flotilla_control::task_credentials::credential_key(
                        &k.access_key_id,
                    ));
                }
            }
            // Its agent's own credentials are revoked with it (`crate::agent_identity`).
            for akid in std::mem::take(&mut rec.agent_keys) {
                txn = txn.delete(flotilla_control::agent_identity::agent_credential_key(
                    &akid,
                ));
            }
            rec.set_status(InstanceStatus::Inactive);
            rec.touch();
            txn = txn
                .put(key.clone(), to_bytes(&rec)?)
                .delete(agent_beat_key(&cluster, id));
            txn =
                flotilla_controllers::fargate::release_warm(ctx.store(), &cluster, id, txn).await?;
            let prefix = format!("{ATTRIBUTES}{cluster}/{}/", rec.id);
            for (akey, _, _) in records::list::<Attribute>(ctx.store(), &prefix).await? {
                txn = txn.delete(akey);
            }
            let orphaned = tasks.len();
            Ok(Attempt::Commit(txn, (rec, Some(orphaned))))
        })
        .await?;
    if let Some(orphaned) = orphaned {
        tracing::info!(container_instance = %rec.arn(), cluster = %cluster, orphaned, "container instance deregistered");
    }
    let counts = task_counts(ctx, &cluster).await?;
    Ok(DeregisterContainerInstanceResponse {
        container_instance: Some(view_of(ctx, &rec, &counts, false).await?),
    })
}
