//! DescribeTasks: up to 100 tasks by id or ARN, as their records show them (observed status
//! from the agent's reports, desired status, times, stop code and reason, containers with exit
//! codes, network bindings and runtime ids); tags with `include: TAGS`. Unknown tasks (and
//! stopped tasks removed after the retention time) are `MISSING` failures.

use crate::context::Ctx;
use crate::shared::{missing, named_arn};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{get, task_id_in, task_key};
use flotilla_model::shapes::{DescribeTasksRequest, DescribeTasksResponse, TaskField};
use flotilla_model::EcsError;

/// DescribeTasks.
pub async fn describe_tasks(
    ctx: &Ctx<'_>,
    req: DescribeTasksRequest,
) -> Result<DescribeTasksResponse, EcsError> {
    let refs: Vec<&str> = req.tasks.iter().map(String::as_str).collect();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &refs).await?;
    if refs.is_empty() {
        return Err(EcsError::invalid_parameter("Tasks cannot be empty."));
    }
    if refs.len() > 100 {
        return Err(EcsError::invalid_parameter(format!(
            "DescribeTasks accepts at most 100 tasks; {} were given.",
            refs.len()
        )));
    }
    let include_tags = req
        .include
        .as_ref()
        .is_some_and(|i| i.contains(&TaskField::Tags));
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        let found = match task_id_in(r, &cluster) {
            Some(id) if !super::foreign_arn(ctx, r) => {
                get::<TaskRecord>(ctx.store(), &task_key(&cluster, id)).await?
            }
            _ => None,
        };
        match found {
            Some((t, _)) => tasks.push(t.view(include_tags)),
            None => failures.push(missing(named_arn(r, |n| ctx.arns().task(&cluster, n)))),
        }
    }
    Ok(DescribeTasksResponse {
        tasks: Some(tasks),
        failures: Some(failures),
    })
}
