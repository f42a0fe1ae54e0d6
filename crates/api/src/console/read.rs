//! What each console page reads, as API calls ([`Client`]): lists followed by Describe calls in
//! the batch sizes ECS allows, answers read into the model's types; and the utilization series
//! from the region's metrics ([`flotilla_metrics::MetricReader`], the in-process interface of
//! CloudWatch's metrics).

use super::client::{ApiError, Client};
use flotilla_console::chart::Series;
use flotilla_console::pages::task::{ContainerLogs, LogLine, LogSource};
use flotilla_console::pages::Utilization;
use flotilla_metrics::ecs::EcsMetric;
use flotilla_metrics::{MetricId, MetricReader, StatQuery, Statistic};
use flotilla_model::shapes::{Cluster, ContainerInstance, Service, Task, TaskDefinition};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The most items a list on a page reads.
const LIST_LIMIT: usize = 500;
/// How many stopped tasks a page lists (the newest).
const STOPPED_SHOWN: usize = 20;
/// How many periods of utilization a chart shows.
const CHART_PERIODS: u32 = 60;
/// How many log events of a container the task page shows (the newest).
const LOG_EVENTS: u32 = 100;

fn decode<T: DeserializeOwned>(v: &Value) -> Result<Vec<T>, ApiError> {
    serde_json::from_value(v.clone()).map_err(|e| ApiError {
        code: "ConsoleError".into(),
        message: format!("could not read the answer: {e}"),
        status: 500,
    })
}

/// One cluster by name (`ClusterNotFoundException` when there is none, as DescribeClusters'
/// failures say).
pub async fn cluster(c: &Client, name: &str) -> Result<Cluster, ApiError> {
    let out = c
        .ecs("DescribeClusters", json!({"clusters": [name]}))
        .await?;
    decode::<Cluster>(&out["clusters"])?
        .into_iter()
        .find(|c| c.status.as_deref() != Some("INACTIVE"))
        .ok_or_else(|| ApiError {
            code: "ClusterNotFoundException".into(),
            message: "Cluster not found.".into(),
            status: 400,
        })
}

/// Every cluster.
pub async fn clusters(c: &Client) -> Result<Vec<Cluster>, ApiError> {
    let arns = c
        .list_all("ListClusters", json!({}), "clusterArns", LIST_LIMIT)
        .await?;
    let mut all = Vec::new();
    for chunk in arns.chunks(100) {
        let out = c
            .ecs("DescribeClusters", json!({"clusters": chunk}))
            .await?;
        all.extend(decode::<Cluster>(&out["clusters"])?);
    }
    all.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    Ok(all)
}

/// The container instances of a cluster.
pub async fn instances(c: &Client, cluster: &str) -> Result<Vec<ContainerInstance>, ApiError> {
    let arns = c
        .list_all(
            "ListContainerInstances",
            json!({"cluster": cluster}),
            "containerInstanceArns",
            LIST_LIMIT,
        )
        .await?;
    let mut all = Vec::new();
    for chunk in arns.chunks(100) {
        let out = c
            .ecs(
                "DescribeContainerInstances",
                json!({"cluster": cluster, "containerInstances": chunk}),
            )
            .await?;
        all.extend(decode::<ContainerInstance>(&out["containerInstances"])?);
    }
    Ok(all)
}

/// The services of a cluster, by name.
pub async fn services(c: &Client, cluster: &str) -> Result<Vec<Service>, ApiError> {
    let arns = c
        .list_all(
            "ListServices",
            json!({"cluster": cluster}),
            "serviceArns",
            LIST_LIMIT,
        )
        .await?;
    let mut all = Vec::new();
    for chunk in arns.chunks(10) {
        let out = c
            .ecs(
                "DescribeServices",
                json!({"cluster": cluster, "services": chunk}),
            )
            .await?;
        all.extend(decode::<Service>(&out["services"])?);
    }
    all.sort_by(|a, b| a.service_name.cmp(&b.service_name));
    Ok(all)
}

/// One service (`ServiceNotFoundException` when there is none).
pub async fn service(c: &Client, cluster: &str, name: &str) -> Result<Service, ApiError> {
    let out = c
        .ecs(
            "DescribeServices",
            json!({"cluster": cluster, "services": [name]}),
        )
        .await?;
    decode::<Service>(&out["services"])?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError {
            code: "ServiceNotFoundException".into(),
            message: "Service not found.".into(),
            status: 400,
        })
}

async fn describe_tasks(c: &Client, cluster: &str, arns: &[String]) -> Result<Vec<Task>, ApiError> {
    let mut all = Vec::new();
    for chunk in arns.chunks(100) {
        let out = c
            .ecs("DescribeTasks", json!({"cluster": cluster, "tasks": chunk}))
            .await?;
        all.extend(decode::<Task>(&out["tasks"])?);
    }
    Ok(all)
}

/// The tasks of a cluster (of one service when `service` is given): every task not stopped, and
/// the newest stopped ones; newest first.
pub async fn tasks(
    c: &Client,
    cluster: &str,
    service: Option<&str>,
) -> Result<Vec<Task>, ApiError> {
    let mut input = json!({"cluster": cluster});
    if let Some(s) = service {
        input["serviceName"] = Value::from(s);
    }
    let mut running = input.clone();
    running["desiredStatus"] = Value::from("RUNNING");
    let mut stopped = input;
    stopped["desiredStatus"] = Value::from("STOPPED");
    let live = c
        .list_all("ListTasks", running, "taskArns", LIST_LIMIT)
        .await?;
    let done = c
        .list_all("ListTasks", stopped, "taskArns", LIST_LIMIT)
        .await?;
    let mut live = describe_tasks(c, cluster, &live).await?;
    let mut done = describe_tasks(c, cluster, &done).await?;
    let newest = |a: &Task, b: &Task| {
        b.created_at
            .unwrap_or(0.0)
            .total_cmp(&a.created_at.unwrap_or(0.0))
    };
    live.sort_by(newest);
    done.sort_by(|a, b| {
        b.stopped_at
            .unwrap_or(0.0)
            .total_cmp(&a.stopped_at.unwrap_or(0.0))
    });
    done.truncate(STOPPED_SHOWN);
    live.extend(done);
    Ok(live)
}

/// One task (`InvalidParameterException` naming it when there is none, as DescribeTasks'
/// `MISSING` failure means).
pub async fn task(c: &Client, cluster: &str, id: &str) -> Result<Task, ApiError> {
    describe_tasks(c, cluster, &[id.to_string()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError {
            code: "InvalidParameterException".into(),
            message: format!("The task {id} does not exist in cluster {cluster}."),
            status: 400,
        })
}

/// The active task definitions, `family:revision`, newest revision of each family first.
pub async fn task_definitions(c: &Client) -> Result<Vec<String>, ApiError> {
    let arns = c
        .list_all(
            "ListTaskDefinitions",
            json!({"status": "ACTIVE", "sort": "DESC"}),
            "taskDefinitionArns",
            LIST_LIMIT,
        )
        .await?;
    Ok(arns
        .iter()
        .map(|a| flotilla_console::format::task_definition_name(a).to_string())
        .collect())
}

/// One task definition, typed and as answered (its JSON).
pub async fn task_definition(c: &Client, name: &str) -> Result<(TaskDefinition, Value), ApiError> {
    let out = c
        .ecs("DescribeTaskDefinition", json!({"taskDefinition": name}))
        .await?;
    let json = out["taskDefinition"].clone();
    let td = serde_json::from_value(json.clone()).map_err(|e| ApiError {
        code: "ConsoleError".into(),
        message: format!("could not read the answer: {e}"),
        status: 500,
    })?;
    Ok((td, json))
}

/// Each container's logs: for a container of `td` that logs with `awslogs`, the last events
/// of its stream (named as ECS names it: `PREFIX/CONTAINER/TASK-ID`, else the Docker
/// container's id), read with GetLogEvents.
pub async fn logs(c: &Client, task: &Task, td: &TaskDefinition) -> Vec<ContainerLogs> {
    let task_id = flotilla_console::format::short_arn(task.task_arn.as_deref().unwrap_or_default());
    let mut all = Vec::new();
    for def in td.container_definitions.as_deref().unwrap_or_default() {
        let name = def.name.clone().unwrap_or_default();
        let awslogs = def
            .log_configuration
            .as_ref()
            .filter(|l| l.log_driver.as_str() == "awslogs");
        let Some(log) = awslogs else {
            all.push(ContainerLogs {
                container: name,
                source: LogSource::NotKept,
            });
            continue;
        };
        let option = |k: &str| log.options.as_ref().and_then(|o| o.get(k)).cloned();
        let group = option("awslogs-group").unwrap_or_default();
        let runtime = task
            .containers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|c| c.name.as_deref() == Some(name.as_str()))
            .and_then(|c| c.runtime_id.clone());
        let prefix = option("awslogs-stream-prefix");
        if prefix.is_none() && runtime.is_none() {
            all.push(ContainerLogs {
                container: name,
                source: LogSource::Unavailable {
                    group,
                    stream: "-".into(),
                    message: "The container has not started yet: its stream is named after its Docker id.".into(),
                },
            });
            continue;
        }
        let stream = flotilla_logs::names::container_stream(
            prefix.as_deref(),
            &name,
            task_id,
            runtime.as_deref().unwrap_or_default(),
        );
        let source = match c
            .logs(
                "GetLogEvents",
                json!({"logGroupName": group, "logStreamName": stream, "limit": LOG_EVENTS, "startFromHead": false}),
            )
            .await
        {
            Ok(out) => LogSource::Lines {
                lines: out["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| LogLine {
                        timestamp: e["timestamp"].as_f64().unwrap_or(0.0) / 1000.0,
                        message: e["message"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect(),
                group,
                stream,
            },
            Err(e) => LogSource::Unavailable {
                group,
                stream,
                message: format!("{}: {}", e.code, e.message),
            },
        };
        all.push(ContainerLogs {
            container: name,
            source,
        });
    }
    all
}

/// The CPU and memory utilization of a cluster (`service` None) or a service over the last
/// [`CHART_PERIODS`] periods, averages per period.
pub async fn utilization(
    metrics: &dyn MetricReader,
    cluster: &str,
    service: Option<&str>,
    now: f64,
) -> Utilization {
    let period = metrics.resolution().max(1);
    let end = (now / f64::from(period)).floor() * f64::from(period) + f64::from(period);
    let start = end - f64::from(period * CHART_PERIODS);
    let id = |m: EcsMetric| -> MetricId {
        match service {
            Some(s) => m.of_service(cluster, s),
            None => m.of_cluster(cluster),
        }
    };
    let mut series = Vec::new();
    for (label, metric) in [
        ("CPU", EcsMetric::CpuUtilization),
        ("Memory", EcsMetric::MemoryUtilization),
    ] {
        let query = StatQuery {
            metric: id(metric),
            start,
            end,
            period,
        };
        match metrics.statistic(&query, Statistic::Average).await {
            Ok(points) => series.push(Series {
                label: label.to_string(),
                points,
            }),
            Err(flotilla_metrics::MetricsError::NotServed) => {
                return Utilization::Unavailable(
                    "this server does not record CloudWatch metrics.".into(),
                )
            }
            Err(e) => return Utilization::Unavailable(e.to_string()),
        }
    }
    Utilization::Series { start, end, series }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_metrics::{Datapoint, MetricFilter, MetricsError};

    /// A reader with one CPU series (the service's) at a 10-second resolution.
    struct OneSeries;

    #[async_trait::async_trait]
    impl MetricReader for OneSeries {
        fn resolution(&self) -> u32 {
            10
        }
        async fn datapoints(&self, _q: &StatQuery) -> Result<Vec<Datapoint>, MetricsError> {
            Ok(Vec::new())
        }
        async fn statistic(
            &self,
            q: &StatQuery,
            _stat: Statistic,
        ) -> Result<Vec<(f64, f64)>, MetricsError> {
            assert_eq!(q.period, 10);
            Ok(
                if q.metric.name == "CPUUtilization"
                    && q.metric.dimension("ServiceName") == Some("web")
                {
                    vec![(q.start, 40.0), (q.end - 10.0, 55.0)]
                } else {
                    vec![]
                },
            )
        }
        async fn list_metrics(&self, _f: &MetricFilter) -> Result<Vec<MetricId>, MetricsError> {
            Ok(Vec::new())
        }
        async fn alarms(&self) -> Result<Vec<flotilla_metrics::Alarm>, MetricsError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn a_services_utilization_is_its_metrics_averages_over_sixty_periods() {
        let u = utilization(&OneSeries, "prod", Some("web"), 1005.0).await;
        let Utilization::Series { start, end, series } = u else {
            panic!("{u:?}")
        };
        assert_eq!((start, end), (410.0, 1010.0));
        assert_eq!(series[0].label, "CPU");
        assert_eq!(series[0].points, vec![(410.0, 40.0), (1000.0, 55.0)]);
        assert!(series[1].points.is_empty());
    }

    #[tokio::test]
    async fn without_metrics_the_chart_says_so() {
        let u = utilization(&flotilla_metrics::NoMetrics, "prod", None, 1005.0).await;
        // NoMetrics answers no datapoints: an empty window, which the page says in words.
        let Utilization::Series { series, .. } = u else {
            panic!("{u:?}")
        };
        assert!(series.iter().all(|s| s.points.is_empty()));
    }
}
