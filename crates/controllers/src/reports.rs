//! The writer of agent reports: a report of a task's observed state applied to its record, and
//! what a task gives back when it stops (its network address, its task role credentials), in
//! the same transaction. What it held on its instance needs no write: that is derived from the
//! task records (`flotilla_control::instances::Held`), so a STOPPED record releases it.
//!
//! Unfenced on purpose: reports arrive through agent sessions, which every replica serves
//! (leader or not), and they record what an agent observed rather than a controller's decision;
//! a replica that no longer leads must still apply them.

use crate::plane::Plane;
use crate::records::{address_key, commit, get, replace, task_id_in, task_key, to_bytes, Attempt};
use flotilla_control::tasks::{apply_report, TaskRecord};
use flotilla_model::status::TaskStatus;
use flotilla_model::EcsError;
use flotilla_protocol::{TaskStateReport, MANAGED_POOL};
use flotilla_store::{Compare, Txn};
use std::collections::BTreeMap;

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
    let Some(key) = report_key(cluster, report) else {
        return Ok(());
    };
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
        log_change(before.0, &next);
    }
    Ok(())
}

fn log_change(before: TaskStatus, next: &TaskRecord) {
    if next.last_status.0 != before {
        tracing::info!(task = %next.arn(), last_status = next.last_status.0.as_ecs_str(), "task status changed");
    }
}

/// The store key of the task a report is about, or `None` when the report names no task of
/// `cluster` (the instance's cluster; a managed-pool host reports tasks of any cluster).
fn report_key(cluster: &str, report: &TaskStateReport) -> Option<String> {
    let task_cluster = if cluster == MANAGED_POOL {
        flotilla_model::arn::embedded_cluster(&report.task_arn)?
    } else {
        cluster
    };
    let tid = task_id_in(&report.task_arn, task_cluster)?;
    Some(task_key(task_cluster, tid))
}

/// Applies the reports an agent sent together (in the order it sent them) in one transaction,
/// as [`apply_task_state`] applies each: one commit, and one revision, for all of them instead
/// of one each. If another writer changed one of the tasks meanwhile, it applies them one by one
/// (each serialized with the other writers of its task in this process, and retried).
pub async fn apply_task_states(
    plane: &Plane,
    cluster: &str,
    instance_id: &str,
    reports: &[TaskStateReport],
) -> Result<(), EcsError> {
    if let [one] = reports {
        return apply_task_state(plane, cluster, instance_id, one).await;
    }
    let store = plane.store();
    // Each task's record as read, and as the reports leave it.
    let mut tasks: BTreeMap<String, (TaskRecord, u64, TaskRecord)> = BTreeMap::new();
    let now = flotilla_control::timestamp(plane.clock.now());
    for report in reports {
        let Some(key) = report_key(cluster, report) else {
            continue;
        };
        if !tasks.contains_key(&key) {
            let Some((rec, rev)) = get::<TaskRecord>(store, &key).await? else {
                continue;
            };
            if !runs_on(&rec, cluster, instance_id) {
                continue;
            }
            tasks.insert(key.clone(), (rec.clone(), rev, rec));
        }
        if let Some((_, _, next)) = tasks.get_mut(&key) {
            *next = apply_report(next, report, now);
        }
    }
    let mut txn = Txn::new();
    let mut changed = Vec::new();
    for (key, (rec, rev, next)) in &tasks {
        if next == rec {
            continue;
        }
        txn = txn
            .when(Compare::ModRevision(key.clone(), *rev))
            .put(key.clone(), to_bytes(next)?);
        if next.is_stopped() {
            txn = release_on_stop(txn, rec);
        }
        changed.push((rec.last_status.0, next));
    }
    if changed.is_empty() {
        return Ok(());
    }
    if !commit(store, txn).await? {
        // Raced with another writer of one of them: each on its own, as it comes.
        for report in reports {
            apply_task_state(plane, cluster, instance_id, report).await?;
        }
        return Ok(());
    }
    for (before, next) in changed {
        log_change(before, next);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::SystemClock;
    use flotilla_model::arn::ArnContext;
    use flotilla_store::{MemoryStore, Store};
    use std::sync::Arc;

    fn arn(id: &str) -> String {
        format!("arn:aws:ecs:us-east-1:123456789012:task/c/{id}")
    }

    fn record(id: &str, instance: &str) -> TaskRecord {
        let mut t = TaskRecord {
            cluster: "c".into(),
            id: id.into(),
            instance_id: instance.into(),
            ..TaskRecord::default()
        };
        t.task.task_arn = Some(arn(id));
        t
    }

    fn report(seq: u64, id: &str, status: &str) -> TaskStateReport {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "task_arn": arn(id), "version": 1,
            "last_status": status, "containers": [],
        }))
        .unwrap()
    }

    async fn status(store: &dyn Store, id: &str) -> TaskStatus {
        let (t, _) = get::<TaskRecord>(store, &task_key("c", id))
            .await
            .unwrap()
            .unwrap();
        t.last_status.0
    }

    /// Reports sent together are one transaction: each task ends as its reports, in order,
    /// leave it; reports of unknown tasks and of another host's change nothing.
    #[tokio::test]
    async fn reports_taken_together_are_one_commit_and_apply_in_order() {
        let store = Arc::new(MemoryStore::new());
        let mut txn = Txn::new();
        for (id, host) in [("t1", "i1"), ("t2", "i1"), ("t3", "i2")] {
            txn = txn.put(task_key("c", id), to_bytes(&record(id, host)).unwrap());
        }
        store.txn(txn).await.unwrap();
        let plane = Plane::new(
            store.clone(),
            ArnContext {
                region: "us-east-1".into(),
                account: "123456789012".into(),
            },
            Arc::new(SystemClock),
        );
        let before = store.revision().await.unwrap();
        let reports = [
            report(1, "t1", "RUNNING"),
            report(2, "t2", "RUNNING"),
            report(3, "t1", "STOPPED"),
            report(4, "t3", "RUNNING"),
            report(5, "gone", "RUNNING"),
        ];
        apply_task_states(&plane, "c", "i1", &reports)
            .await
            .unwrap();
        assert_eq!(store.revision().await.unwrap(), before + 1, "one commit");
        assert_eq!(status(store.as_ref(), "t1").await, TaskStatus::Stopped);
        assert_eq!(status(store.as_ref(), "t2").await, TaskStatus::Running);
        assert_eq!(
            status(store.as_ref(), "t3").await,
            TaskStatus::Pending,
            "i2's task"
        );
        // Applied again, they change nothing (an agent resends what was not acknowledged).
        apply_task_states(&plane, "c", "i1", &reports)
            .await
            .unwrap();
        assert_eq!(store.revision().await.unwrap(), before + 1);
    }
}
