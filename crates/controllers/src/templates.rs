//! The reads behind every task creation: the cluster and task definition a RunTask, StartTask or
//! service names, turned into a checked task template (`flotilla_control::template::build`), and
//! the launch a request resolves to given its cluster (`flotilla_control::launch::resolve`).

use crate::plane::Plane;
use crate::records::{active_cluster, load_task_definition};
use flotilla_control::keys::foreign_arn;
use flotilla_control::launch::{self, Launch};
use flotilla_control::task_definitions::parse_ref;
use flotilla_control::template::{self, Common, TaskTemplate};
use flotilla_model::shapes::{CapacityProviderStrategyItem, LaunchType};
use flotilla_model::EcsError;

/// Looks up and checks what a RunTask/StartTask request (or a service's scale-up) names, and
/// builds the task template.
pub async fn prepare(plane: &Plane, c: &Common<'_>) -> Result<TaskTemplate, EcsError> {
    if c.cluster.is_some_and(|v| foreign_arn(&plane.arns, v)) {
        return Err(EcsError::cluster_not_found());
    }
    let (cluster, _) = active_cluster(plane.store(), c.cluster).await?;
    let cluster = cluster.cluster_name.unwrap_or_default();
    let r = parse_ref(c.task_definition)?;
    let not_found = || EcsError::client("TaskDefinition not found.");
    if foreign_arn(&plane.arns, c.task_definition) {
        return Err(not_found());
    }
    let (rec, _) = load_task_definition(plane.store(), &r)
        .await?
        .ok_or_else(not_found)?;
    template::build(cluster, &rec, c)
}

/// Decides how a RunTask/CreateService request launches its tasks
/// (`flotilla_control::launch::resolve`), reading the cluster when the request gives no launch
/// type.
pub async fn resolve_launch(
    plane: &Plane,
    cluster: Option<&str>,
    launch_type: Option<LaunchType>,
    strategy: Option<&[CapacityProviderStrategyItem]>,
) -> Result<Launch, EcsError> {
    // A launch type decides alone (or, with a strategy beside it, is refused): no read.
    if launch_type.is_some() {
        return launch::resolve(None, launch_type, strategy);
    }
    if cluster.is_some_and(|v| foreign_arn(&plane.arns, v)) {
        return Err(EcsError::cluster_not_found());
    }
    let (c, _) = active_cluster(plane.store(), cluster).await?;
    launch::resolve(Some(&c), launch_type, strategy)
}
