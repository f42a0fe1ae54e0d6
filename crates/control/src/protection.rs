//! Task scale-in protection (GetTaskProtection, UpdateTaskProtection, the agent's
//! `task-protection/v1/state` endpoint), as ECS defines it.
//!
//! A task's protection is stored on its record ([`crate::tasks::TaskRecord::protection`]) as the
//! time it expires. It is evaluated against the clock: a protection whose time has passed is
//! no protection ([`Protection::active`]), exactly as ECS clears `protectionEnabled` when it
//! lapses. Only tasks of a service may be protected ([`check`]: a standalone task is ECS's
//! `TASK_NOT_VALID` failure); the service scheduler never stops a protected task to scale in or
//! to replace it in a deployment (`service_scheduler`), so a service may stay above its desired
//! count until the protection expires or is removed.

use crate::tasks::TaskRecord;
use flotilla_model::shapes::ProtectedTask;
use flotilla_model::EcsError;
use serde::{Deserialize, Serialize};

/// The protection of a task that was not given `expiresInMinutes` (2 hours).
pub const DEFAULT_MINUTES: i32 = 120;
/// The longest protection (48 hours).
pub const MAX_MINUTES: i32 = 2880;
/// The most tasks one UpdateTaskProtection names.
pub const MAX_UPDATE_TASKS: usize = 10;
/// The most tasks one GetTaskProtection names.
pub const MAX_GET_TASKS: usize = 100;

/// A task's scale-in protection, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Protection {
    /// When it expires (epoch seconds, millisecond precision).
    pub expires_at: f64,
}

impl Protection {
    /// Whether it still protects at `now`.
    pub fn active(&self, now: f64) -> bool {
        now < self.expires_at
    }
}

/// Whether `record` is protected at `now` (it has a protection that has not expired).
pub fn is_protected(record: &TaskRecord, now: f64) -> bool {
    record.protection.is_some_and(|p| p.active(now))
}

/// What UpdateTaskProtection asks for one task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Protect until this time.
    Protect {
        /// Epoch seconds.
        until: f64,
    },
    /// Remove the protection.
    Unprotect,
}

/// The change a request asks: `protectionEnabled` with `expiresInMinutes` (1 to 2,880, 120 when
/// absent; ignored when protection is being removed, as ECS ignores it), from `now`.
pub fn change(
    enabled: bool,
    expires_in_minutes: Option<i32>,
    now: f64,
) -> Result<Change, EcsError> {
    if !enabled {
        return Ok(Change::Unprotect);
    }
    let minutes = expires_in_minutes.unwrap_or(DEFAULT_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(EcsError::invalid_parameter(format!(
            "expiresInMinutes must be between 1 and {MAX_MINUTES} minutes; {minutes} was given."
        )));
    }
    Ok(Change::Protect {
        until: crate::timestamp(now + f64::from(minutes) * 60.0),
    })
}

/// Why a task's protection cannot be read or changed: the `reason` of its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such task in the cluster.
    Missing,
    /// The task is not one of a service's (or, for an update, it has stopped or is stopping).
    NotValid,
}

impl Refusal {
    /// The failure's `reason`, in ECS's words.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "MISSING",
            Refusal::NotValid => "TASK_NOT_VALID",
        }
    }
}

/// Whether `record`'s protection may be read (`updating`: false) or changed (true): only a
/// service's task, and a change only while it is meant to run.
pub fn check(record: &TaskRecord, updating: bool) -> Result<(), Refusal> {
    let of_service = record
        .task
        .group
        .as_deref()
        .is_some_and(|g| g.starts_with("service:"));
    if !of_service {
        return Err(Refusal::NotValid);
    }
    if updating
        && (record.is_stopped() || record.desired() == flotilla_protocol::DesiredStatus::Stopped)
    {
        return Err(Refusal::NotValid);
    }
    Ok(())
}

/// `record` with `change` applied (the caller checked it first).
pub fn apply(record: &TaskRecord, change: Change) -> TaskRecord {
    let mut next = record.clone();
    next.protection = match change {
        Change::Protect { until } => Some(Protection { expires_at: until }),
        Change::Unprotect => None,
    };
    next
}

/// How ECS shows `record`'s protection at `now`: `protectionEnabled` with its `expirationDate`,
/// or `false` without one when it has none or it expired.
pub fn view(record: &TaskRecord, now: f64) -> ProtectedTask {
    let active = record.protection.filter(|p| p.active(now));
    ProtectedTask {
        task_arn: Some(record.arn().to_string()),
        protection_enabled: active.is_some(),
        expiration_date: active.map(|p| p.expires_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_model::shapes::Task;

    fn service_task() -> TaskRecord {
        TaskRecord {
            task: Task {
                task_arn: Some("arn:aws:ecs:r:1:task/c/abc".into()),
                group: Some("service:web".into()),
                ..Task::default()
            },
            assignment: Some(flotilla_protocol::TaskAssignment {
                task_arn: "arn:aws:ecs:r:1:task/c/abc".into(),
                cluster_arn: "c".into(),
                task_definition_arn: "td".into(),
                version: 1,
                desired_status: flotilla_protocol::DesiredStatus::Running,
                stop_reason: None,
                stop_code: None,
                network_mode: flotilla_model::shapes::NetworkMode::Bridge,
                cpu: None,
                memory: None,
                volumes: vec![],
                pid_mode: None,
                network: None,
                stop_grace_seconds: None,
                task_role_arn: None,
                service_name: Some("web".into()),
                enable_execute_command: false,
                ipc_mode: None,
                containers: vec![],
            }),
            ..TaskRecord::default()
        }
    }

    #[test]
    fn the_default_is_two_hours_and_the_range_is_checked() {
        assert_eq!(
            change(true, None, 1000.0).unwrap(),
            Change::Protect {
                until: 1000.0 + 7200.0
            }
        );
        assert_eq!(
            change(true, Some(2880), 0.0).unwrap(),
            Change::Protect { until: 172_800.0 }
        );
        for bad in [0, -1, 2881] {
            let e = change(true, Some(bad), 0.0).unwrap_err();
            assert_eq!(e.code, flotilla_model::ErrorCode::InvalidParameterException);
        }
        // Ignored when protection is removed.
        assert_eq!(change(false, Some(0), 0.0).unwrap(), Change::Unprotect);
    }

    #[test]
    fn protection_expires_with_the_clock() {
        let t = apply(&service_task(), change(true, Some(1), 100.0).unwrap());
        assert!(is_protected(&t, 100.0));
        assert!(is_protected(&t, 159.9));
        assert!(!is_protected(&t, 160.0));
        let v = view(&t, 120.0);
        assert!(v.protection_enabled);
        assert_eq!(v.expiration_date, Some(160.0));
        let v = view(&t, 200.0);
        assert!(!v.protection_enabled);
        assert_eq!(v.expiration_date, None);
        let off = apply(&t, Change::Unprotect);
        assert!(!is_protected(&off, 120.0));
    }

    #[test]
    fn only_running_service_tasks_may_be_protected() {
        let t = service_task();
        assert_eq!(check(&t, true), Ok(()));
        let mut standalone = t.clone();
        standalone.task.group = Some("family:web".into());
        assert_eq!(check(&standalone, false), Err(Refusal::NotValid));
        assert_eq!(check(&standalone, true), Err(Refusal::NotValid));
        let mut stopping = t.clone();
        stopping.assignment.as_mut().unwrap().desired_status =
            flotilla_protocol::DesiredStatus::Stopped;
        assert_eq!(check(&stopping, false), Ok(()));
        assert_eq!(check(&stopping, true), Err(Refusal::NotValid));
        assert_eq!(Refusal::NotValid.reason(), "TASK_NOT_VALID");
        assert_eq!(Refusal::Missing.reason(), "MISSING");
    }
}
