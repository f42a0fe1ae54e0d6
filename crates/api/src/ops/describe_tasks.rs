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
use futures::StreamExt;

/// How many task records one call reads at once.
const CONCURRENT_READS: usize = 16;

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
    let keys: Vec<Option<String>> = refs
        .iter()
        .map(|r| match task_id_in(r, &cluster) {
            Some(id) if !super::foreign_arn(ctx, r) => Some(task_key(&cluster, id)),
            _ => None,
        })
        .collect();
    let reads = read_all(ctx.store(), keys).await;
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for (r, found) in refs.into_iter().zip(reads) {
        match found? {
            Some((t, _)) => tasks.push(t.view(include_tags)),
            None => failures.push(missing(named_arn(r, |n| ctx.arns().task(&cluster, n)))),
        }
    }
    Ok(DescribeTasksResponse {
        tasks: Some(tasks),
        failures: Some(failures),
    })
}

type Read = Result<Option<(TaskRecord, u64)>, EcsError>;

/// The records at `keys` (`None`: no record to read), in order, read concurrently: on etcd each
/// read is a round trip, and 100 of them one after the other made a call take a second under
/// load.
async fn read_all(store: &dyn flotilla_store::Store, keys: Vec<Option<String>>) -> Vec<Read> {
    futures::stream::iter(keys)
        .map(|key| read_one(store, key))
        .buffered(CONCURRENT_READS)
        .collect()
        .await
}

async fn read_one(store: &dyn flotilla_store::Store, key: Option<String>) -> Read {
    match key {
        Some(key) => get::<TaskRecord>(store, &key).await,
        None => Ok(None),
    }
}
