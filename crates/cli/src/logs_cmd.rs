//! `flotilla logs [-f] TASK|SERVICE [--cluster C] [--container C] [--since 10m]`: the output of
//! a task's containers, or of every task of a service, like `docker logs [-f]`.
//!
//! It reads what every other client reads: the task's containers and their `awslogs` options
//! through the ECS API (DescribeTasks, DescribeTaskDefinition), then each container's stream
//! (`PREFIX/CONTAINER/TASK-ID` in its group) with CloudWatch Logs' GetLogEvents, paging forward
//! with `nextForwardToken`. With `-f` it polls every second for new events and, for a service,
//! for new tasks; the events of one round are printed by time, each line prefixed with its task
//! and container when there are several. `--output json` prints one JSON object per event.

use crate::client::{EcsClient, EndpointArgs, ServiceError};
use crate::verbs::Output;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

/// Flags of `flotilla logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// A task (its ARN or id) or a service (its name or ARN).
    target: String,
    /// Keep following: print new events as they come (and a service's new tasks).
    #[arg(long, short)]
    follow: bool,
    /// The cluster.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// Only this container of the task definition.
    #[arg(long)]
    container: Option<String>,
    /// Only events of the last DURATION: 30s, 10m, 2h, 1d.
    #[arg(long, value_parser = parse_since)]
    since: Option<Duration>,
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// `table` prints the messages (prefixed with task/container for several streams);
    /// `json` prints one JSON object per event.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// `30s`, `10m`, `2h`, `1d`.
fn parse_since(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30s, 10m, 2h or 1d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("'{s}' is not a duration like 30s, 10m, 2h or 1d")),
    };
    Ok(Duration::from_secs(secs))
}

/// One container's stream.
#[derive(Debug, Clone)]
struct Stream {
    task_id: String,
    container: String,
    group: String,
    name: String,
    /// Where to continue (`None`: from the start, or `--since`).
    token: Option<String>,
}

/// Whether `target` names a task rather than a service.
fn is_task(target: &str) -> bool {
    target.contains(":task/")
        || (target.len() == 32 && target.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn task_id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// What is being followed: a task, or a service's tasks.
struct Follow {
    client: EcsClient,
    cluster: String,
    service: Option<String>,
    tasks: Vec<String>,
    container: Option<String>,
    seen_tasks: HashSet<String>,
    definitions: HashMap<String, Value>,
    streams: Vec<Stream>,
    warned: HashSet<String>,
}

impl Follow {
    /// The service's tasks (running and recently stopped).
    async fn service_tasks(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let mut arns = Vec::new();
        for status in ["RUNNING", "STOPPED"] {
            let page = self
                .client
                .list_all(
                    "ListTasks",
                    json!({"cluster": self.cluster, "serviceName": service, "desiredStatus": status}),
                    "taskArns",
                )
                .await?;
            arns.extend(
                page.into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
        }
        Ok(arns)
    }

    /// Adds the streams of tasks not seen yet.
    async fn discover(&mut self) -> anyhow::Result<()> {
        let arns = match &self.service {
            Some(s) => self.service_tasks(s).await?,
            None => self.tasks.clone(),
        };
        let new: Vec<Value> = arns
            .iter()
            .filter(|a| !self.seen_tasks.contains(task_id(a).as_str()))
            .map(|a| Value::String(a.clone()))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let described = self
            .client
            .describe_all(
                "DescribeTasks",
                json!({"cluster": self.cluster}),
                "tasks",
                &new,
                100,
                "tasks",
            )
            .await?;
        if self.service.is_none() && described.is_empty() {
            bail!(
                "no task {} in cluster {}",
                self.tasks.join(", "),
                self.cluster
            );
        }
        for t in described {
            let arn = t["taskArn"].as_str().unwrap_or_default().to_string();
            let td_arn = t["taskDefinitionArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !self.definitions.contains_key(&td_arn) {
                let td = self
                    .client
                    .call("DescribeTaskDefinition", json!({"taskDefinition": td_arn}))
                    .await?;
                self.definitions
                    .insert(td_arn.clone(), td["taskDefinition"].clone());
            }
            let id = task_id(&arn);
            self.seen_tasks.insert(id.clone());
            let defs = self.definitions[&td_arn]["containerDefinitions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for d in defs {
                let name = d["name"].as_str().unwrap_or_default().to_string();
                if self.container.as_ref().is_some_and(|c| *c != name) {
                    continue;
                }
                let log = &d["logConfiguration"];
                if log["logDriver"].as_str() != Some("awslogs") {
                    if self.warned.insert(format!("{td_arn}/{name}")) {
                        eprintln!(
                            "flotilla logs: container {name} of {td_arn} has no awslogs log configuration; its output is not kept"
                        );
                    }
                    continue;
                }
                let group = log["options"]["awslogs-group"].as_str().unwrap_or_default();
                let stream = match log["options"]["awslogs-stream-prefix"].as_str() {
                    Some(p) => format!("{p}/{name}/{id}"),
                    None => {
                        // Without a prefix the stream is the Docker container's id.
                        let runtime = t["containers"]
                            .as_array()
                            .and_then(|cs| cs.iter().find(|c| c["name"].as_str() == Some(&name)))
                            .and_then(|c| c["runtimeId"].as_str());
                        match runtime {
                            Some(r) => r.to_string(),
                            None => continue,
                        }
                    }
                };
                self.streams.push(Stream {
                    task_id: id.clone(),
                    container: name,
                    group: group.to_string(),
                    name: stream,
                    token: None,
                });
            }
        }
        if let Some(c) = &self.container {
            if self.streams.is_empty() && self.service.is_none() {
                bail!("the task has no container {c} with the awslogs log driver");
            }
        }
        Ok(())
    }
}

/// One event, for printing.
struct Line {
    timestamp: i64,
    task_id: String,
    container: String,
    group: String,
    stream: String,
    message: String,
}

/// Reads every stream forward from its token until nothing is new; returns the events.
async fn drain(f: &mut Follow, since_ms: Option<i64>) -> anyhow::Result<Vec<Line>> {
    let mut out = Vec::new();
    for s in f.streams.iter_mut() {
        loop {
            let mut input = json!({
                "logGroupName": s.group,
                "logStreamName": s.name,
                "startFromHead": true,
            });
            if let Some(t) = &s.token {
                input["nextToken"] = json!(t);
            }
            if let Some(ms) = since_ms {
                input["startTime"] = json!(ms);
            }
            let page = match f.client.call_logs("GetLogEvents", input).await {
                Ok(p) => p,
                // The stream appears once its container starts.
                Err(e)
                    if e.downcast_ref::<ServiceError>()
                        .is_some_and(|s| s.code == "ResourceNotFoundException") =>
                {
                    break
                }
                Err(e) => return Err(e),
            };
            let events = page["events"].as_array().cloned().unwrap_or_default();
            for e in &events {
                out.push(Line {
                    timestamp: e["timestamp"].as_i64().unwrap_or(0),
                    task_id: s.task_id.clone(),
                    container: s.container.clone(),
                    group: s.group.clone(),
                    stream: s.name.clone(),
                    message: e["message"].as_str().unwrap_or_default().to_string(),
                });
            }
            let next = page["nextForwardToken"].as_str().map(str::to_string);
            let same = next == s.token;
            s.token = next;
            if same || events.is_empty() {
                break;
            }
        }
    }
    out.sort_by_key(|l| l.timestamp);
    Ok(out)
}

fn print(lines: &[Line], output: Output, prefix: Prefix) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    for l in lines {
        match output {
            Output::Json => {
                let v = json!({
                    "timestamp": l.timestamp,
                    "task": l.task_id,
                    "container": l.container,
                    "logGroupName": l.group,
                    "logStreamName": l.stream,
                    "message": l.message,
                });
                writeln!(w, "{v}")?;
            }
            Output::Table => match prefix {
                Prefix::None => writeln!(w, "{}", l.message)?,
                Prefix::Container => writeln!(w, "{} | {}", l.container, l.message)?,
                Prefix::Task => writeln!(
                    w,
                    "{}/{} | {}",
                    l.task_id.get(..8).unwrap_or(&l.task_id),
                    l.container,
                    l.message
                )?,
            },
        }
    }
    w.flush()?;
    Ok(())
}

/// What each printed line starts with.
#[derive(Debug, Clone, Copy)]
enum Prefix {
    None,
    Container,
    Task,
}

/// Runs `flotilla logs`.
pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client()?;
    let (service, tasks) = if is_task(&args.target) {
        (None, vec![args.target.clone()])
    } else {
        let found = client
            .call(
                "DescribeServices",
                json!({"cluster": args.cluster, "services": [args.target]}),
            )
            .await
            .context("looking the service up")?;
        match found["services"].as_array().and_then(|s| s.first()) {
            Some(s) => (
                Some(
                    s["serviceName"]
                        .as_str()
                        .unwrap_or(&args.target)
                        .to_string(),
                ),
                Vec::new(),
            ),
            None => bail!(
                "no task or service named {} in cluster {} (a task is its ARN or 32-digit id)",
                args.target,
                args.cluster
            ),
        }
    };
    let prefix_tasks = service.is_some();
    let mut f = Follow {
        client,
        cluster: args.cluster.clone(),
        service,
        tasks,
        container: args.container.clone(),
        seen_tasks: HashSet::new(),
        definitions: HashMap::new(),
        streams: Vec::new(),
        warned: HashSet::new(),
    };
    let since_ms = args.since.map(|d| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.saturating_sub(d).as_millis()).unwrap_or(0)
    });
    // Ctrl-C (SIGINT) ends following, also when the shell that started us ignores SIGINT for
    // its background jobs (the handler replaces an inherited SIG_IGN). Registered once, here,
    // so a signal that arrives while a page is being read is not missed.
    let mut interrupt = if args.follow {
        Some(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::interrupt(),
        )?)
    } else {
        None
    };
    let mut rounds = 0u64;
    loop {
        if rounds.is_multiple_of(5) {
            f.discover().await?;
        }
        rounds += 1;
        let lines = drain(&mut f, since_ms).await?;
        let containers: HashSet<&str> = f.streams.iter().map(|s| s.container.as_str()).collect();
        let prefix = if prefix_tasks {
            Prefix::Task
        } else if containers.len() > 1 {
            Prefix::Container
        } else {
            Prefix::None
        };
        print(&lines, args.output, prefix)?;
        if !args.follow {
            return Ok(());
        }
        let interrupted = async {
            match interrupt.as_mut() {
                Some(i) => {
                    i.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = interrupted => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_targets() {
        assert_eq!(parse_since("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_since("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_since("45").unwrap(), Duration::from_secs(45));
        assert!(parse_since("soon").is_err());
        assert!(parse_since("5w").is_err());
        assert!(is_task(
            "arn:aws:ecs:us-east-1:1:task/c/0123456789abcdef0123456789abcdef"
        ));
        assert!(is_task("0123456789abcdef0123456789abcdef"));
        assert!(!is_task("web"));
    }
}
