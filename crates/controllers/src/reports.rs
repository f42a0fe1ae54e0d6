//! The writer of agent reports: a report of a task's observed state applied to its record, and
//! what a task gives back when it stops (its network address, its task role credentials), in
//! the same transaction. What it held on its instance needs no write: that is derived from the
//! task records (`flotilla_control::instances::Held`), so a STOPPED record releases it.
//!
//! Unfenced on purpose: reports arrive through agent sessions, which every replica serves
//! (leader or not), and they record what an agent observed rather than a controller's decision;
//! a replica that no longer leads must still apply them.

use crate::plane::Plane;
use crate::records::{address_key, get, replace, task_id_in, task_key, Attempt};
use flotilla_control::tasks::{apply_report, TaskRecord};
use flotilla_model::EcsError;
use flotilla_protocol::{TaskStateReport, MANAGED_POOL};
use flotilla_store::Txn;

/// Applies one report to its task (and, when the task reaches STOPPED, releases its network
/// address and credentials in the same transaction). Reports about tasks that
/// are unknown or assigned to another instance are ignored (and still acknowledged). `cluster`
/// is the instance's cluster; a managed-pool host reports tasks of any cluster.
pub async fn apply_task_state(
    plane: &Plane,
    cluster: &str,
    instance_id: &str,
    report: &TaskStateReport,
) -> Result<(), EcsError> {
    let task_cluster = if cluster == MANAGED_POOL {
        match flotilla_model::arn::embedded_cluster(&report.task_arn) {
            Some(c) => c,
            None => return Ok(()),
        }
    } else {
        cluster
    };
    let Some(tid) = task_id_in(&report.task_arn, task_cluster) else {
        return Ok(());
    };
    let key = task_key(task_cluster, tid);
    let store = plane.store();
    // The task's status before and after, when the report changed it.
    let changed = plane
        .cas(&key, || async {
            let Some((rec, rev)) = get::<TaskRecord>(store, &key).await? else {
                return Ok(Attempt::Done(None));
            };
            if !runs_on(&rec, cluster, instance_id) {
                return Ok(Attempt::Done(None));
            }
            let now = flotilla_control::timestamp(plane.clock.now());
            let next = apply_report(&rec, report, now);
            if next == rec {
                return Ok(Attempt::Done(None));
            }
            let mut txn = replace(&key, rev, &next)?;
            if next.is_stopped() {
                txn = release_on_stop(txn, &rec);
            }
            Ok(Attempt::Commit(txn, Some((rec.last_status, next))))
        })
        .await?;
    if let Some((before, next)) = changed {
        if next.last_status != before {
            tracing::info!(task = %next.arn(), last_status = next.last_status.0.as_ecs_str(), "task status changed");
        }
    }
    Ok(())
}

/// Adds to `txn` what a task gives back when it stops: its network address and its task role
/// credentials (their records deleted, so the keys are refused from the moment it is STOPPED).
pub fn release_on_stop(mut txn: Txn, rec: &TaskRecord) -> Txn {
    if let Some(net) = rec.network() {
        txn = txn.delete(address_key(&net.private_ipv4_address));
    }
    for k in &rec.credentials {
        txn = txn.delete(flotilla_control::task_credentials::credential_key(
            &k.access_key_id,
        ));
    }
    txn
}

/// Whether a task runs on the instance `id` of `cluster` (a pool host's tasks are of any cluster).
pub fn runs_on(t: &TaskRecord, cluster: &str, id: &str) -> bool {
    t.instance_id == id && t.instance_cluster() == cluster
}
