//! What the tasks on each instance of a cluster hold (`flotilla_control::instances::Held`),
//! for the readers that need it outside placement's cache: the replica's task index when it has
//! caught up with the store, else the task records themselves.
//!
//! Why here: what a task holds lives only in its record (the instance record no longer carries
//! reservations), so every reader of an instance's remaining resources gathers it the same way.

use crate::plane::Plane;
use crate::records::{self, task_prefix};
use flotilla_control::instances::Held;
use flotilla_control::keys::TASKS;
use flotilla_control::tasks::TaskRecord;
use flotilla_model::EcsError;
use flotilla_protocol::MANAGED_POOL;
use std::collections::HashMap;

/// What the tasks not STOPPED on each instance of `pool` (a cluster, or the managed pool)
/// hold, by instance id.
pub async fn by_instance(plane: &Plane, pool: &str) -> Result<HashMap<String, Held>, EcsError> {
    if let Some(feed) = plane.task_index().await {
        return Ok(feed.read(|ix| ix.held_by_hosts(pool)));
    }
    // A managed-pool host runs tasks of every cluster.
    let prefix = if pool == MANAGED_POOL {
        TASKS.to_string()
    } else {
        task_prefix(pool)
    };
    let tasks = records::list::<TaskRecord>(plane.store(), &prefix).await?;
    Ok(of_records(tasks.iter().map(|(_, t, _)| t), pool))
}

/// What these task records hold on the instances of `pool`, by instance id (stopped tasks and
/// tasks on other clusters' instances hold nothing there).
pub fn of_records<'a>(
    tasks: impl IntoIterator<Item = &'a TaskRecord>,
    pool: &str,
) -> HashMap<String, Held> {
    let mut out: HashMap<String, Held> = HashMap::new();
    for t in tasks {
        if t.is_stopped() || t.instance_cluster() != pool {
            continue;
        }
        out.entry(t.instance_id.clone())
            .or_default()
            .insert(t.arn().into(), t.reservation.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_control::instances::Reservation;
    use flotilla_control::tasks::Status;
    use flotilla_model::status::TaskStatus;

    fn task(id: &str, instance: &str, status: TaskStatus) -> TaskRecord {
        let mut t = TaskRecord {
            cluster: "c".into(),
            id: id.into(),
            instance_id: instance.into(),
            reservation: Reservation {
                task_arn: format!("arn:{id}").into(),
                cpu: 256,
                ..Reservation::default()
            },
            last_status: Status(status),
            ..TaskRecord::default()
        };
        t.task.task_arn = Some(format!("arn:{id}"));
        t
    }

    #[test]
    fn only_tasks_that_have_not_stopped_hold_on_their_instance() {
        let tasks = [
            task("t1", "i1", TaskStatus::Running),
            task("t2", "i1", TaskStatus::Stopped),
            task("t3", "i2", TaskStatus::Pending),
        ];
        let held = of_records(&tasks, "c");
        assert_eq!(held["i1"].len(), 1);
        assert_eq!(held["i1"]["arn:t1"].cpu, 256);
        assert_eq!(held["i2"].len(), 1);
        assert!(of_records(&tasks, "other").is_empty());
    }
}
