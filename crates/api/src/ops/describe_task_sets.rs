//! DescribeTaskSets: the task sets of a service (all, or those named by id or ARN; one not
//! found is a failure with reason `MISSING`), with their tags on `include: [TAGS]`. The service
//! must exist (`ServiceNotFoundException`), use task sets (`InvalidParameterException`, ECS's
//! message) and not be INACTIVE (`ServiceNotActiveException`).

use crate::context::Ctx;
use crate::shared::missing;
use crate::shared::task_sets::{service_key_of, task_set_service};
use flotilla_control::task_sets::{find, task_set_arn, view};
use flotilla_model::shapes::{DescribeTaskSetsRequest, DescribeTaskSetsResponse, TaskSetField};
use flotilla_model::EcsError;

/// DescribeTaskSets.
pub async fn describe_task_sets(
    ctx: &Ctx<'_>,
    req: DescribeTaskSetsRequest,
) -> Result<DescribeTaskSetsResponse, EcsError> {
    let cluster = super::request_cluster(ctx, Some(&req.cluster), &[&req.service]).await?;
    let key = service_key_of(ctx, &cluster, &req.service)?;
    let (rec, _) = task_set_service(ctx, &key, true).await?;
    let tags = req
        .include
        .as_ref()
        .is_some_and(|i| i.contains(&TaskSetField::Tags));
    let cluster_arn = rec.service.cluster_arn.clone().unwrap_or_default();
    let show = |i: usize| view(&rec.task_sets[i], rec.arn(), &cluster_arn, tags);
    let mut sets = Vec::new();
    let mut failures = Vec::new();
    match &req.task_sets {
        None => sets.extend((0..rec.task_sets.len()).rev().map(show)),
        Some(named) => {
            for n in named {
                match find(&rec.task_sets, n) {
                    Some(i) => sets.push(show(i)),
                    None if n.starts_with("arn:") => failures.push(missing(n.clone())),
                    None => {
                        failures.push(missing(task_set_arn(ctx.arns(), &cluster, rec.name(), n)))
                    }
                }
            }
        }
    }
    Ok(DescribeTaskSetsResponse {
        task_sets: Some(sets),
        failures: Some(failures),
    })
}
