//! ListTasks: the cluster's task ARNs filtered by `containerInstance`, `family`, `startedBy`,
//! `serviceName` (group `service:NAME`; a service the cluster never had is
//! `ServiceNotFoundException`), `launchType` and `desiredStatus` (default RUNNING;
//! STOPPED lists the stopped tasks still retained; PENDING lists nothing, as in ECS),
//! paginated (default and max 100). As ECS documents, `startedBy` cannot be combined with the
//! other filters (`desiredStatus` aside).
//!
//! The page is read from the replica's task index (`Plane::task_index`: one summary per task,
//! in id order, caught up with the store first), from just after the token's task, so a page
//! costs its own tasks, not the cluster's; only when the index cannot say in time are the task
//! records read from the store. Either way the token is the last task's key.

use crate::context::Ctx;
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{self, instance_id_in, task_prefix};
use flotilla_model::shapes::{DesiredStatus, LaunchType, ListTasksRequest, ListTasksResponse};
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
    let filter = Filter {
        desired,
        instance: instance.as_deref(),
        family: req.family.as_deref(),
        started_by: req.started_by.as_deref(),
        group: service_group.as_deref(),
        launch_type: req.launch_type,
    };
    if let Some(index) = ctx.plane().task_index().await {
        let size = crate::paginate::page_size(req.max_results, 100, 100)?;
        let prefix = task_prefix(&cluster);
        let after = crate::paginate::decode_token(req.next_token.as_deref())?;
        let after_id = after
            .as_deref()
            .map(|k| k.strip_prefix(prefix.as_str()).unwrap_or(k));
        let (task_arns, last, more) = index.read(|ix| {
            let mut page = Vec::new();
            let mut last = None;
            let mut matching = ix.tasks(&cluster, after_id).filter(|(_, t)| {
                filter.matches(
                    t.desired,
                    t.is_stopped(),
                    &t.instance_id,
                    &t.family,
                    t.started_by.as_deref(),
                    t.group.as_deref(),
                    t.launch_type,
                )
            });
            for (id, t) in matching.by_ref().take(size) {
                page.push(t.arn.to_string());
                last = Some(id.to_string());
            }
            (page, last, matching.next().is_some())
        });
        let next_token = last
            .filter(|_| more)
            .map(|id| crate::paginate::encode_token(&format!("{prefix}{id}")));
        return Ok(ListTasksResponse {
            task_arns: Some(task_arns),
            next_token,
        });
    }
    let items = records::list::<TaskRecord>(ctx.store(), &task_prefix(&cluster))
        .await?
        .into_iter()
        .filter(|(_, t, _)| {
            filter.matches(
                t.desired(),
                t.is_stopped(),
                &t.instance_id,
                &t.reservation.family,
                t.task.started_by.as_deref(),
                t.task.group.as_deref(),
                t.task.launch_type,
            )
        })
        .map(|(k, r, _)| (k, r.arn().to_string()));
    let (task_arns, next_token) =
        crate::paginate::arns(items, req.next_token.as_deref(), req.max_results, 100)?;
    Ok(ListTasksResponse {
        task_arns,
        next_token,
    })
}

/// ListTasks' filters.
struct Filter<'a> {
    desired: DesiredStatus,
    instance: Option<&'a str>,
    family: Option<&'a str>,
    started_by: Option<&'a str>,
    group: Option<&'a str>,
    launch_type: Option<LaunchType>,
}

impl Filter<'_> {
    #[allow(clippy::too_many_arguments)]
    fn matches(
        &self,
        desired: Desired,
        stopped: bool,
        instance: &str,
        family: &str,
        started_by: Option<&str>,
        group: Option<&str>,
        launch_type: Option<LaunchType>,
    ) -> bool {
        let status = match self.desired {
            DesiredStatus::Running => desired == Desired::Running && !stopped,
            DesiredStatus::Stopped => desired == Desired::Stopped || stopped,
            DesiredStatus::Pending => false,
        };
        status
            && self.instance.is_none_or(|i| i == instance)
            && self.family.is_none_or(|f| f == family)
            && self.started_by.is_none_or(|s| Some(s) == started_by)
            && self.group.is_none_or(|g| Some(g) == group)
            && self.launch_type.is_none_or(|l| Some(l) == launch_type)
    }
}
