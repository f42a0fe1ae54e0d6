//! `flotilla service ...`: create, update and deploy ECS services and watch them, through the
//! same ECS API every client uses. `deploy` draws the rollout (old and new deployments' counts
//! and the service events) until the service is steady or the deployment fails.

use crate::client::EcsClient;
use crate::verbs::{print_table, Output};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `flotilla service` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ServiceCommand {
    /// Create a service, from flags or from a CreateService JSON file (as for
    /// `aws ecs create-service --cli-input-json`).
    Create(CreateArgs),
    /// Change a service: task definition, desired count, deployment configuration.
    Update(UpdateArgs),
    /// Roll a service to a task definition and watch until it is steady (exit 0) or the
    /// deployment fails (exit 1).
    Deploy(DeployArgs),
    /// List the services of a cluster.
    Ls(ClusterArgs),
    /// The tasks of a service.
    Ps(ServiceArgs),
    /// The service's events, newest first.
    Events(EventsArgs),
}

/// Where to talk to and how to print.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// The cluster.
    #[arg(long, default_value = "default")]
    cluster: String,
    #[command(flatten)]
    endpoint: crate::client::EndpointArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// A service in a cluster.
#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The service name.
    service: String,
}

/// Flags of `service create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The service name (not needed with --file when the file has serviceName).
    service: Option<String>,
    /// A CreateService request as JSON; flags given as well override its members.
    #[arg(long)]
    file: Option<PathBuf>,
    /// family, family:revision or ARN.
    #[arg(long)]
    task_definition: Option<String>,
    /// How many tasks to keep running.
    #[arg(long)]
    desired_count: Option<i64>,
    /// minimumHealthyPercent of the deployment configuration.
    #[arg(long)]
    min_healthy_percent: Option<i64>,
    /// maximumPercent of the deployment configuration.
    #[arg(long)]
    max_percent: Option<i64>,
    /// Turn the deployment circuit breaker on, with rollback.
    #[arg(long)]
    circuit_breaker: bool,
}

/// Flags of `service update`.
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// An UpdateService request as JSON; flags given as well override its members.
    #[arg(long)]
    file: Option<PathBuf>,
    /// A new task definition (starts a deployment).
    #[arg(long)]
    task_definition: Option<String>,
    /// A new desired count.
    #[arg(long)]
    desired_count: Option<i64>,
    /// Start a new deployment even if nothing changed.
    #[arg(long)]
    force_new_deployment: bool,
}

/// Flags of `service deploy`.
#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// The task definition to roll to.
    #[arg(long)]
    task_definition: String,
    /// Give up watching after this many seconds (the deployment goes on).
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
}

/// Flags of `service events`.
#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// How many events to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if !v.is_object() {
        bail!("{} must hold a JSON object", path.display());
    }
    Ok(v)
}

fn client(c: &ClusterArgs) -> anyhow::Result<EcsClient> {
    c.endpoint.client()
}

/// Runs a `flotilla service` subcommand.
pub async fn run(cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Create(a) => create(a).await,
        ServiceCommand::Update(a) => update(a).await,
        ServiceCommand::Deploy(a) => deploy(a).await,
        ServiceCommand::Ls(a) => ls(a).await,
        ServiceCommand::Ps(a) => ps(a).await,
        ServiceCommand::Events(a) => events(a).await,
    }
}

fn print_service(s: &Value, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        print_table(SERVICE_HEADERS, &[service_row(s)]);
    }
    Ok(())
}

/// The columns of a service row (`service_row`).
const SERVICE_HEADERS: &[&str] = &[
    "SERVICE",
    "STATUS",
    "DESIRED",
    "RUNNING",
    "PENDING",
    "TASK DEFINITION",
];

fn short_td(arn: &Value) -> String {
    arn.as_str()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_else(|| "-".into())
}

fn service_row(s: &Value) -> Vec<String> {
    vec![
        s["serviceName"].as_str().unwrap_or("-").to_string(),
        s["status"].as_str().unwrap_or("-").to_string(),
        s["desiredCount"].to_string(),
        s["runningCount"].to_string(),
        s["pendingCount"].to_string(),
        short_td(&s["taskDefinition"]),
    ]
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let ecs = client(&a.cluster)?;
    let mut req = match &a.file {
        Some(p) => read_json(p)?,
        None => json!({}),
    };
    req["cluster"] = json!(a.cluster.cluster);
    if let Some(n) = &a.service {
        req["serviceName"] = json!(n);
    }
    if req.get("serviceName").is_none() {
        bail!("name the service: `flotilla service create NAME ...` or serviceName in --file");
    }
    if let Some(td) = &a.task_definition {
        req["taskDefinition"] = json!(td);
    }
    if let Some(n) = a.desired_count {
        req["desiredCount"] = json!(n);
    }
    if let Some(m) = a.min_healthy_percent {
        req["deploymentConfiguration"]["minimumHealthyPercent"] = json!(m);
    }
    if let Some(m) = a.max_percent {
        req["deploymentConfiguration"]["maximumPercent"] = json!(m);
    }
    if a.circuit_breaker {
        req["deploymentConfiguration"]["deploymentCircuitBreaker"] =
            json!({"enable": true, "rollback": true});
    }
    let out = ecs.call("CreateService", req).await?;
    print_service(&out["service"], a.cluster.output)
}

async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    let ecs = client(&a.service.cluster)?;
    let mut req = match &a.file {
        Some(p) => read_json(p)?,
        None => json!({}),
    };
    req["cluster"] = json!(a.service.cluster.cluster);
    req["service"] = json!(a.service.service);
    if let Some(td) = &a.task_definition {
        req["taskDefinition"] = json!(td);
    }
    if let Some(n) = a.desired_count {
        req["desiredCount"] = json!(n);
    }
    if a.force_new_deployment {
        req["forceNewDeployment"] = json!(true);
    }
    let out = ecs.call("UpdateService", req).await?;
    print_service(&out["service"], a.service.cluster.output)
}

async fn describe(ecs: &EcsClient, cluster: &str, service: &str) -> anyhow::Result<Value> {
    let out = ecs
        .call(
            "DescribeServices",
            json!({"cluster": cluster, "services": [service]}),
        )
        .await?;
    match out["services"].as_array().and_then(|a| a.first()) {
        Some(s) => Ok(s.clone()),
        None => bail!("service '{service}' was not found in cluster '{cluster}'"),
    }
}

/// One line per deployment: `PRIMARY rev 3  ##########.....  running 4/6 pending 2 failed 0`.
fn deployment_line(d: &Value) -> String {
    let desired = d["desiredCount"].as_i64().unwrap_or(0);
    let running = d["runningCount"].as_i64().unwrap_or(0);
    let width = 20usize;
    let filled = if desired > 0 {
        ((running.min(desired) as usize) * width) / desired as usize
    } else {
        width
    };
    format!(
        "{:<8} {:<22} [{}{}] running {}/{} pending {} failed {} {}",
        d["status"].as_str().unwrap_or("-"),
        short_td(&d["taskDefinition"]),
        "#".repeat(filled),
        ".".repeat(width - filled),
        running,
        desired,
        d["pendingCount"].as_i64().unwrap_or(0),
        d["failedTasks"].as_i64().unwrap_or(0),
        d["rolloutState"].as_str().unwrap_or(""),
    )
}

async fn deploy(a: DeployArgs) -> anyhow::Result<()> {
    let c = &a.service.cluster;
    let ecs = client(c)?;
    let before = describe(&ecs, &c.cluster, &a.service.service).await?;
    let mut seen_events: std::collections::HashSet<String> = before["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect();
    let out = ecs
        .call(
            "UpdateService",
            json!({"cluster": c.cluster, "service": a.service.service, "taskDefinition": a.task_definition}),
        )
        .await?;
    let primary_id = out["service"]["deployments"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["status"] == "PRIMARY"))
        .and_then(|d| d["id"].as_str())
        .unwrap_or("")
        .to_string();
    println!(
        "deploying {} to {} (deployment {primary_id})",
        a.service.service, a.task_definition
    );
    let deadline = Instant::now() + Duration::from_secs(a.timeout_seconds);
    let mut last = String::new();
    loop {
        let s = describe(&ecs, &c.cluster, &a.service.service).await?;
        let mut events: Vec<&Value> = s["events"].as_array().into_iter().flatten().collect();
        events.reverse(); // oldest first
        for e in events {
            if let Some(id) = e["id"].as_str() {
                if seen_events.insert(id.to_string()) {
                    println!("  event: {}", e["message"].as_str().unwrap_or(""));
                }
            }
        }
        let deployments: Vec<Value> = s["deployments"].as_array().cloned().unwrap_or_default();
        let summary: Vec<String> = deployments.iter().map(deployment_line).collect();
        let joined = summary.join("\n");
        if joined != last {
            println!("{joined}");
            last = joined;
        }
        let primary = deployments.iter().find(|d| d["id"] == primary_id.as_str());
        match primary.and_then(|d| d["rolloutState"].as_str()) {
            Some("FAILED") => {
                let why = primary
                    .and_then(|d| d["rolloutStateReason"].as_str())
                    .unwrap_or("");
                bail!("the deployment failed: {why}");
            }
            _ if primary.is_none() && !primary_id.is_empty() => {
                bail!(
                    "deployment {primary_id} is no longer the service's (rolled back or replaced)"
                );
            }
            _ => {}
        }
        if deployments.len() == 1 && s["runningCount"] == s["desiredCount"] && primary.is_some() {
            println!(
                "{} is steady on {}",
                a.service.service,
                short_td(&s["taskDefinition"])
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "still deploying after {} s; it goes on in the background",
                a.timeout_seconds
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn ls(c: ClusterArgs) -> anyhow::Result<()> {
    let ecs = client(&c)?;
    let arns = ecs
        .list_all("ListServices", json!({"cluster": c.cluster}), "serviceArns")
        .await?;
    let services = ecs
        .describe_all(
            "DescribeServices",
            json!({"cluster": c.cluster}),
            "services",
            &arns,
            10,
            "services",
        )
        .await?;
    if c.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&services)?);
    } else {
        let rows: Vec<Vec<String>> = services.iter().map(service_row).collect();
        print_table(SERVICE_HEADERS, &rows);
    }
    Ok(())
}

async fn ps(a: ServiceArgs) -> anyhow::Result<()> {
    let c = &a.cluster;
    let ecs = client(c)?;
    let mut arns = Vec::new();
    for status in ["RUNNING", "STOPPED"] {
        arns.extend(
            ecs.list_all(
                "ListTasks",
                json!({"cluster": c.cluster, "serviceName": a.service, "desiredStatus": status}),
                "taskArns",
            )
            .await?,
        );
    }
    let tasks = ecs
        .describe_all(
            "DescribeTasks",
            json!({"cluster": c.cluster}),
            "tasks",
            &arns,
            100,
            "tasks",
        )
        .await?;
    if c.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let id = t["taskArn"]
                .as_str()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("-");
            let inst = t["containerInstanceArn"]
                .as_str()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("-");
            vec![
                id.to_string(),
                short_td(&t["taskDefinitionArn"]),
                t["lastStatus"].as_str().unwrap_or("-").to_string(),
                t["desiredStatus"].as_str().unwrap_or("-").to_string(),
                t["healthStatus"].as_str().unwrap_or("-").to_string(),
                inst.to_string(),
                t["stoppedReason"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "TASK",
            "TASK DEFINITION",
            "LAST",
            "DESIRED",
            "HEALTH",
            "INSTANCE",
            "STOPPED REASON",
        ],
        &rows,
    );
    Ok(())
}

async fn events(a: EventsArgs) -> anyhow::Result<()> {
    let c = &a.service.cluster;
    let ecs = client(c)?;
    let s = describe(&ecs, &c.cluster, &a.service.service).await?;
    let events: Vec<Value> = s["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .take(a.limit)
        .collect();
    if c.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e["createdAt"].to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    print_table(&["CREATED AT (epoch s)", "MESSAGE"], &rows);
    Ok(())
}
