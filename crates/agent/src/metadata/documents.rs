//! The documents of the task metadata endpoint v4 and of the credentials endpoint, in the ECS
//! agent's JSON shapes, built from a snapshot of the task ([`TaskView`]) that its owner
//! publishes.
//!
//! - `${ECS_CONTAINER_METADATA_URI_V4}`: the container ([`container_document`]): `DockerId`,
//!   `Name`, `DockerName`, `Image`, `ImageID`, `Labels`, `DesiredStatus`, `KnownStatus`,
//!   `Limits` (`CPU` units, `Memory` MiB), `CreatedAt`, `StartedAt`, `FinishedAt`, `ExitCode`,
//!   `Type`, `ContainerARN`, `LogDriver`, `LogOptions`, `Networks`, `Ports`, `Health`;
//! - `.../task`: the task ([`task_document`]): `Cluster`, `TaskARN`, `Family`, `Revision`,
//!   `ServiceName`, `DesiredStatus`, `KnownStatus`, `Limits` (`CPU` in vCPUs, `Memory` MiB),
//!   `PullStartedAt`, `PullStoppedAt`, `ExecutionStoppedAt`, `AvailabilityZone`, `LaunchType`,
//!   `Containers`;
//! - `/v2/credentials/ID` ([`credentials_document`]): `RoleArn`, `AccessKeyId`,
//!   `SecretAccessKey`, `Token`, `Expiration`, what the AWS SDKs' container credentials
//!   provider reads.
//!
//! What this is not: the HTTP server or the stats (Docker's own document, passed through).
//! Pure: no clock, no I/O.

use flotilla_protocol::{RoleCredentials, TaskNetwork};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A task as the endpoint shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// The task ARN.
    pub task_arn: String,
    /// The cluster's name (or ARN, as the assignment gives it).
    pub cluster: String,
    /// The task definition family.
    pub family: String,
    /// The task definition revision.
    pub revision: String,
    /// `RUNNING` or `STOPPED`.
    pub desired_status: String,
    /// The task's lifecycle status (`PENDING`, `RUNNING`, ...).
    pub known_status: String,
    /// The service that started it.
    pub service_name: Option<String>,
    /// Task-level CPU units.
    pub cpu: Option<u32>,
    /// Task-level memory, MiB.
    pub memory: Option<u32>,
    /// Pull start, epoch seconds.
    pub pull_started_at: Option<f64>,
    /// Pull end, epoch seconds.
    pub pull_stopped_at: Option<f64>,
    /// When every container had stopped, epoch seconds.
    pub execution_stopped_at: Option<f64>,
    /// The host's availability zone.
    pub availability_zone: Option<String>,
    /// `EC2` or `FARGATE`.
    pub launch_type: String,
    /// The task's network.
    pub network: NetworkView,
    /// The containers, in task definition order.
    pub containers: Vec<ContainerMeta>,
}

/// The network of a task, as the endpoint shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkView {
    /// Docker's bridge: each container's own address.
    Bridge,
    /// The host's network.
    Host,
    /// The task's own interface.
    Awsvpc(Box<TaskNetwork>),
    /// No network.
    None,
}

/// One container as the endpoint shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerMeta {
    /// The name in the task definition.
    pub name: String,
    /// The id in the endpoint's URIs (`/v4/ID`).
    pub endpoint_id: Option<String>,
    /// The Docker id, once created.
    pub docker_id: Option<String>,
    /// The Docker name.
    pub docker_name: String,
    /// The image as the definition names it.
    pub image: String,
    /// The image id (`sha256:...`), once known.
    pub image_id: Option<String>,
    /// The container ARN.
    pub container_arn: String,
    /// The Docker labels ECS shows (its own `com.amazonaws.ecs.*` and the definition's).
    pub labels: BTreeMap<String, String>,
    /// `RUNNING` or `STOPPED`.
    pub desired_status: String,
    /// `PENDING`, `RUNNING`, `STOPPED`.
    pub known_status: String,
    /// CPU units.
    pub cpu: i32,
    /// Memory limit, MiB.
    pub memory: Option<i32>,
    /// RFC 3339, as Docker gives them.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// Exit code, once stopped.
    pub exit_code: Option<i32>,
    /// The address on Docker's bridge (bridge tasks).
    pub ip_address: Option<String>,
    /// Published ports: container port, protocol, host port, host ip.
    pub ports: Vec<(i32, String, i32, String)>,
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN`, for a container with a health check.
    pub health: Option<String>,
    /// The log driver and its options (secret options are never here).
    pub log_driver: Option<(String, BTreeMap<String, String>)>,
}

/// Seconds since the epoch as RFC 3339 with nanoseconds (`2020-10-02T00:43:06.202617438Z`),
/// as the ECS agent writes times.
pub fn rfc3339(epoch: f64) -> String {
    let secs = epoch.floor();
    let nanos = (((epoch - secs) * 1e9).round() as u32).min(999_999_999);
    match time::OffsetDateTime::from_unix_timestamp(secs as i64) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
        ),
        Err(_) => "1970-01-01T00:00:00.000000000Z".to_string(),
    }
}

/// Seconds since the epoch as RFC 3339 in whole seconds (`2017-03-08T17:17:17Z`), the
/// credentials' `Expiration` as the SDKs parse it.
pub fn rfc3339_seconds(epoch: f64) -> String {
    let s = rfc3339(epoch.floor());
    match s.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => s,
    }
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v);
    }
}

/// The `Networks` of a container.
fn networks(task: &TaskView, c: &ContainerMeta) -> Value {
    match &task.network {
        NetworkView::Bridge => json!([{
            "NetworkMode": "bridge",
            "IPv4Addresses": c.ip_address.iter().collect::<Vec<_>>(),
        }]),
        NetworkView::Host => json!([{ "NetworkMode": "host", "IPv4Addresses": [] }]),
        NetworkView::Awsvpc(n) => {
            let prefix = n.subnet_cidr.split_once('/').map_or("", |(_, p)| p);
            json!([{
                "NetworkMode": "awsvpc",
                "IPv4Addresses": [n.private_ipv4_address],
                "AttachmentIndex": 0,
                "MACAddress": n.mac_address,
                "IPv4SubnetCIDRBlock": n.subnet_cidr,
                "PrivateDNSName": n.private_dns_name,
                "SubnetGatewayIpv4Address": format!("{}/{prefix}", n.gateway),
            }])
        }
        NetworkView::None => json!([{ "NetworkMode": "none", "IPv4Addresses": [] }]),
    }
}

/// The container document (`${ECS_CONTAINER_METADATA_URI_V4}`).
pub fn container_document(task: &TaskView, c: &ContainerMeta) -> Value {
    let mut m = Map::new();
    put(&mut m, "DockerId", c.docker_id.clone().map(Value::from));
    m.insert("Name".into(), c.name.clone().into());
    m.insert("DockerName".into(), c.docker_name.clone().into());
    m.insert("Image".into(), c.image.clone().into());
    put(&mut m, "ImageID", c.image_id.clone().map(Value::from));
    m.insert("Labels".into(), json!(c.labels));
    m.insert("DesiredStatus".into(), c.desired_status.clone().into());
    m.insert("KnownStatus".into(), c.known_status.clone().into());
    let mut limits = Map::new();
    limits.insert("CPU".into(), c.cpu.into());
    put(&mut limits, "Memory", c.memory.map(Value::from));
    m.insert("Limits".into(), Value::Object(limits));
    put(&mut m, "CreatedAt", c.created_at.clone().map(Value::from));
    put(&mut m, "StartedAt", c.started_at.clone().map(Value::from));
    put(&mut m, "FinishedAt", c.finished_at.clone().map(Value::from));
    put(&mut m, "ExitCode", c.exit_code.map(Value::from));
    m.insert("Type".into(), "NORMAL".into());
    m.insert("ContainerARN".into(), c.container_arn.clone().into());
    if let Some((driver, options)) = &c.log_driver {
        m.insert("LogDriver".into(), driver.clone().into());
        m.insert("LogOptions".into(), json!(options));
    }
    m.insert("Networks".into(), networks(task, c));
    if !c.ports.is_empty() {
        let ports: Vec<Value> = c
            .ports
            .iter()
            .map(|(cp, proto, hp, ip)| {
                json!({"ContainerPort": cp, "Protocol": proto, "HostPort": hp, "HostIp": ip})
            })
            .collect();
        m.insert("Ports".into(), Value::Array(ports));
    }
    if let Some(h) = &c.health {
        m.insert("Health".into(), json!({ "status": h }));
    }
    Value::Object(m)
}

/// The task document (`${ECS_CONTAINER_METADATA_URI_V4}/task`).
pub fn task_document(task: &TaskView) -> Value {
    let mut m = Map::new();
    m.insert("Cluster".into(), task.cluster.clone().into());
    m.insert("TaskARN".into(), task.task_arn.clone().into());
    m.insert("Family".into(), task.family.clone().into());
    m.insert("Revision".into(), task.revision.clone().into());
    put(
        &mut m,
        "ServiceName",
        task.service_name.clone().map(Value::from),
    );
    m.insert("DesiredStatus".into(), task.desired_status.clone().into());
    m.insert("KnownStatus".into(), task.known_status.clone().into());
    let mut limits = Map::new();
    put(
        &mut limits,
        "CPU",
        task.cpu.map(|c| Value::from(f64::from(c) / 1024.0)),
    );
    put(&mut limits, "Memory", task.memory.map(Value::from));
    if !limits.is_empty() {
        m.insert("Limits".into(), Value::Object(limits));
    }
    put(
        &mut m,
        "PullStartedAt",
        task.pull_started_at.map(|t| rfc3339(t).into()),
    );
    put(
        &mut m,
        "PullStoppedAt",
        task.pull_stopped_at.map(|t| rfc3339(t).into()),
    );
    put(
        &mut m,
        "ExecutionStoppedAt",
        task.execution_stopped_at.map(|t| rfc3339(t).into()),
    );
    put(
        &mut m,
        "AvailabilityZone",
        task.availability_zone.clone().map(Value::from),
    );
    m.insert("LaunchType".into(), task.launch_type.clone().into());
    m.insert(
        "Containers".into(),
        Value::Array(
            task.containers
                .iter()
                .map(|c| container_document(task, c))
                .collect(),
        ),
    );
    Value::Object(m)
}

/// The credentials document (`/v2/credentials/ID`).
pub fn credentials_document(c: &RoleCredentials) -> Value {
    json!({
        "RoleArn": c.role_arn,
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key.0,
        "Token": c.session_token.0,
        "Expiration": rfc3339_seconds(c.expiration),
    })
}

/// The ECS agent's `Labels` of a container: its own `com.amazonaws.ecs.*` over the
/// definition's `dockerLabels`.
pub fn ecs_labels(
    docker_labels: &BTreeMap<String, String>,
    cluster: &str,
    container: &str,
    task_arn: &str,
    family: &str,
    revision: &str,
) -> BTreeMap<String, String> {
    let mut labels = docker_labels.clone();
    for (k, v) in [
        ("com.amazonaws.ecs.cluster", cluster),
        ("com.amazonaws.ecs.container-name", container),
        ("com.amazonaws.ecs.task-arn", task_arn),
        ("com.amazonaws.ecs.task-definition-family", family),
        ("com.amazonaws.ecs.task-definition-version", revision),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_protocol::SecretText;

    fn task(network: NetworkView) -> TaskView {
        TaskView {
            task_arn: "arn:aws:ecs:us-east-1:123:task/web/abc".into(),
            cluster: "web".into(),
            family: "app".into(),
            revision: "3".into(),
            desired_status: "RUNNING".into(),
            known_status: "RUNNING".into(),
            service_name: None,
            cpu: Some(256),
            memory: Some(512),
            pull_started_at: Some(1_600_000_000.5),
            pull_stopped_at: None,
            execution_stopped_at: None,
            availability_zone: Some("us-east-1a".into()),
            launch_type: "EC2".into(),
            network,
            containers: vec![ContainerMeta {
                name: "main".into(),
                docker_id: Some("d0c".into()),
                docker_name: "flotilla-abc-main".into(),
                image: "flotilla/busybox:latest".into(),
                container_arn: "arn:aws:ecs:us-east-1:123:container/web/abc/u".into(),
                desired_status: "RUNNING".into(),
                known_status: "RUNNING".into(),
                cpu: 10,
                memory: Some(64),
                ip_address: Some("172.17.0.5".into()),
                ports: vec![(80, "tcp".into(), 32768, "0.0.0.0".into())],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn the_task_document_has_ecs_members() {
        let t = task(NetworkView::Bridge);
        let d = task_document(&t);
        assert_eq!(d["TaskARN"], "arn:aws:ecs:us-east-1:123:task/web/abc");
        assert_eq!(d["Family"], "app");
        assert_eq!(d["Revision"], "3");
        assert_eq!(d["Limits"], json!({"CPU": 0.25, "Memory": 512}));
        assert_eq!(d["PullStartedAt"], "2020-09-13T12:26:40.500000000Z");
        assert_eq!(d["LaunchType"], "EC2");
        assert!(d.get("ServiceName").is_none());
        let c = &d["Containers"][0];
        assert_eq!(c["DockerId"], "d0c");
        assert_eq!(c["Limits"], json!({"CPU": 10, "Memory": 64}));
        assert_eq!(
            c["Networks"],
            json!([{"NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.5"]}])
        );
        assert_eq!(
            c["Ports"],
            json!([{"ContainerPort": 80, "Protocol": "tcp", "HostPort": 32768, "HostIp": "0.0.0.0"}])
        );
        assert_eq!(container_document(&t, &t.containers[0]), *c);
    }

    #[test]
    fn awsvpc_networks_show_the_interface() {
        let n = TaskNetwork {
            attachment_id: "a".into(),
            network_interface_id: "eni-0".into(),
            private_ipv4_address: "10.213.0.7".into(),
            mac_address: "0a:58:0a:d5:00:07".into(),
            subnet_cidr: "10.213.0.0/16".into(),
            gateway: "10.213.0.1".into(),
            network_name: "flotilla-awsvpc".into(),
            subnet_id: "subnet-1".into(),
            private_dns_name: "ip-10-213-0-7.ec2.internal".into(),
        };
        let mut t = task(NetworkView::Awsvpc(Box::new(n)));
        t.cpu = None;
        t.memory = None;
        let d = task_document(&t);
        assert!(d.get("Limits").is_none());
        let net = &d["Containers"][0]["Networks"][0];
        assert_eq!(net["IPv4Addresses"], json!(["10.213.0.7"]));
        assert_eq!(net["SubnetGatewayIpv4Address"], "10.213.0.1/16");
        assert_eq!(net["MACAddress"], "0a:58:0a:d5:00:07");
    }

    #[test]
    fn credentials_are_what_the_sdks_read() {
        let c = RoleCredentials {
            role_arn: "arn:aws:iam::1:role/app".into(),
            access_key_id: "ASIAX".into(),
            secret_access_key: SecretText("s".into()),
            session_token: SecretText("t".into()),
            issued_at: 0.0,
            expiration: 1_488_993_437.9,
        };
        assert_eq!(
            credentials_document(&c),
            json!({"RoleArn": "arn:aws:iam::1:role/app", "AccessKeyId": "ASIAX",
                   "SecretAccessKey": "s", "Token": "t", "Expiration": "2017-03-08T17:17:17Z"})
        );
    }

    #[test]
    fn ecs_labels_win_over_the_definitions() {
        let mine = BTreeMap::from([
            ("team".to_string(), "core".to_string()),
            (
                "com.amazonaws.ecs.cluster".to_string(),
                "spoofed".to_string(),
            ),
        ]);
        let l = ecs_labels(&mine, "web", "main", "arn", "app", "3");
        assert_eq!(l["com.amazonaws.ecs.cluster"], "web");
        assert_eq!(l["team"], "core");
        assert_eq!(l["com.amazonaws.ecs.task-definition-version"], "3");
    }
}
