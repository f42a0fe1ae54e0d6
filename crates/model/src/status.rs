//! The ECS lifecycle states of tasks and containers, as ordered enums.
//!
//! ECS shows `lastStatus`/`desiredStatus` as strings; inside Flotilla they are these enums, and
//! only [`TaskStatus::as_ecs_str`] / [`ContainerStatus::as_ecs_str`] turn them into the wire
//! strings. Both derive `Ord` in lifecycle order, so "the status only moves forward" is a
//! comparison: `new >= old`.

use serde::{Deserialize, Serialize};

/// A task's lifecycle, in order (ECS: PROVISIONING -> PENDING -> ACTIVATING -> RUNNING ->
/// DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Resources (e.g. the task's network) are being set up.
    Provisioning,
    /// Placed; waiting for the agent to act.
    Pending,
    /// Images are being pulled and containers created.
    Activating,
    /// The essential containers run.
    Running,
    /// Steps before stopping.
    Deactivating,
    /// Containers are being stopped.
    Stopping,
    /// Resources are being released.
    Deprovisioning,
    /// Everything has stopped.
    Stopped,
}

impl TaskStatus {
    /// The wire string.
    pub fn as_ecs_str(&self) -> &'static str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Activating => "ACTIVATING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Deactivating => "DEACTIVATING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
        }
    }
    /// Parses the wire string.
    pub fn parse(s: &str) -> Option<Self> {
        [
            TaskStatus::Provisioning,
            TaskStatus::Pending,
            TaskStatus::Activating,
            TaskStatus::Running,
            TaskStatus::Deactivating,
            TaskStatus::Stopping,
            TaskStatus::Deprovisioning,
            TaskStatus::Stopped,
        ]
        .into_iter()
        .find(|t| t.as_ecs_str() == s)
    }
}

/// A container's lifecycle, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerStatus {
    /// Not started yet (pulling, created, waiting for dependencies).
    Pending,
    /// Started.
    Running,
    /// Exited or never started.
    Stopped,
}

impl ContainerStatus {
    /// The wire string.
    pub fn as_ecs_str(&self) -> &'static str {
        match self {
            ContainerStatus::Pending => "PENDING",
            ContainerStatus::Running => "RUNNING",
            ContainerStatus::Stopped => "STOPPED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_is_ordered_and_round_trips() {
        assert!(TaskStatus::Provisioning < TaskStatus::Pending);
        assert!(TaskStatus::Running < TaskStatus::Stopping);
        assert!(TaskStatus::Deprovisioning < TaskStatus::Stopped);
        for s in [
            "PROVISIONING",
            "PENDING",
            "ACTIVATING",
            "RUNNING",
            "DEACTIVATING",
            "STOPPING",
            "DEPROVISIONING",
            "STOPPED",
        ] {
            assert_eq!(TaskStatus::parse(s).map(|t| t.as_ecs_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&TaskStatus::parse(s)).unwrap(),
                format!("\"{s}\"")
            );
        }
        assert!(ContainerStatus::Pending < ContainerStatus::Stopped);
    }
}
