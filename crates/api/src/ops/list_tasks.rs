//! ListTasks: the cluster's task ARNs filtered by `containerInstance`, `family`, `startedBy`,
//! `serviceName` (group `service:NAME`; a service the cluster never had is
//! `ServiceNotFoundException`), `launchType` and `desiredStatus` (default RUNNING;
//! STOPPED lists the stopped tasks still retained; PENDING lists nothing, as in ECS),
//! paginated (default and max 100). As ECS documents, `startedBy` cannot be combined with the
//! other filters (`desiredStatus` aside).

use crate::context::Ctx;
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{self, instance_id_in, task_prefix};
use flotilla_model::shapes::{DesiredStatus, ListTasksRequest, ListTasksResponse};
use flotilla_model::EcsError;
use flotilla_protocol::DesiredStatus as Desired;

/// ListTasks.
pub async fn list_tasks(
    ctx: &Ctx<'_>,
    req: ListTasksRequest,
) -> Result<ListTasksResponse, EcsError> {
    let mut named: Vec<&str> = Vec::new();
    if let Some(ci) = req.container_instance.as_deref() {
        named.push(ci);
    }
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &named).await?;
    flotilla_control::template::check_started_by(req.started_by.as_deref())?;
    if req.started_by.is_some()
        && (req.container_instance.is_some()
            || req.family.is_some()
            || req.service_name.is_some()
            || req.launch_type.is_some())
    {
        return Err(EcsError::invalid_parameter(
            "When you specify startedBy as the filter, it must be the only filter that you use.",
        ));
    }
    // An instance that cannot be in this cluster matches no task.
    let instance = req.container_instance.as_deref().map(|ci| {
        instance_id_in(ci, &cluster)
            .filter(|_| !super::foreign_arn(ctx, ci))
            .map_or_else(|| format!("\u{0}{ci}"), str::to_string)
    });
    if let Some(s) = req.service_name.as_deref() {
        let known = match flotilla_control::services::service_name_in(s, &cluster)
            .filter(|_| !super::foreign_arn(ctx, s))
        {
            Some(n) => records::get::<flotilla_control::services::ServiceRecord>(
                ctx.store(),
                &flotilla_control::services::service_key(&cluster, n),
            )
            .await?
            .is_some(),
            None => false,
        };
        if !known {
            return Err(flotilla_control::services::service_not_found());
        }
    }
    let desired = req.desired_status.unwrap_or(DesiredStatus::Running);
    let service_group = req.service_name.as_deref().map(|s| {
        format!(
            "service:{}",
            flotilla_model::arn::resource_name(s, "service").unwrap_or(s)
        )
    });
    let items = records::list::<TaskRecord>(ctx.store(), &task_prefix(&cluster))
        .await?
        .into_iter()
        .filter(|(_, t, _)| match desired {
            DesiredStatus::Running => t.desired() == Desired::Running && !t.is_stopped(),
            DesiredStatus::Stopped => t.desired() == Desired::Stopped || t.is_stopped(),
            DesiredStatus::Pending => false,
        })
        .filter(|(_, t, _)| instance.as_ref().is_none_or(|i| &t.instance_id == i))
        .filter(|(_, t, _)| {
            req.family
                .as_ref()
                .is_none_or(|f| &t.reservation.family == f)
        })
        .filter(|(_, t, _)| {
            req.started_by
                .as_ref()
                .is_none_or(|s| t.task.started_by.as_ref() == Some(s))
        })
        .filter(|(_, t, _)| {
            service_group
                .as_ref()
                .is_none_or(|g| t.task.group.as_ref() == Some(g))
        })
        .filter(|(_, t, _)| {
            req.launch_type
                .is_none_or(|l| t.task.launch_type == Some(l))
        })
        .map(|(k, r, _)| (k, r.arn().to_string()));
    let (task_arns, next_token) =
        crate::paginate::arns(items, req.next_token.as_deref(), req.max_results, 100)?;
    Ok(ListTasksResponse {
        task_arns,
        next_token,
    })
}
