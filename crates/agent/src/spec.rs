//! From an ECS container definition to a [`ContainerSpec`]: what Docker is asked to create.
//!
//! What this is: pure translation of a [`TaskAssignment`] into container specs, task-scoped
//! volumes and the implicit dependencies (links), plus [`validate`], which rejects what Docker
//! cannot honour with a reason that says what is unsupported.
//!
//! What this is not: it calls no runtime and reads no clock or environment.
//!
//! Invariants: container and volume names are deterministic functions of the task id and the
//! definition's names, so a retried create finds what an earlier attempt made; every container
//! carries the labels of [`flotilla_protocol::labels`].

use crate::cgroup::TaskLimits;
use crate::runtime::{
    ContainerSpec, DeviceSpec, HealthCheckSpec, NetworkSpec, PortSpec, UlimitSpec, VolumeSpec,
};
use flotilla_model::shapes::{
    ContainerDefinition, Device, IpcMode, LogDriver, NetworkMode, PidMode, Scope,
    TransportProtocol, UlimitName, Volume,
};
use flotilla_protocol::{
    labels, ContainerSecrets, TaskAssignment, TaskNetwork, PAUSE_CONTAINER_NAME,
};
use std::collections::BTreeMap;

/// ECS's default stopTimeout, seconds.
pub const DEFAULT_STOP_TIMEOUT_S: u64 = 30;
/// Minimum CPU shares Docker accepts.
pub const MIN_CPU_SHARES: i64 = 2;
const MIB: i64 = 1024 * 1024;

/// Who the agent is, for labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The container instance id (last part of the ARN).
    pub instance_id: String,
    /// The cluster name.
    pub cluster: String,
    /// A managed-pool host: each container's cluster label is its task's own cluster.
    pub managed: bool,
}

/// The label that marks a Docker network Flotilla manages.
pub const MANAGED_NETWORK_LABEL: &str = "com.flotilla.managed-network";

/// Where a task's containers run, beyond their definition: decided by the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPlacement {
    /// The awsvpc task's pause container: containers join its network namespace.
    pub pause_id: Option<String>,
    /// The task's cgroup (`cgroup_parent`), when task limits are enforced by one.
    pub cgroup_parent: Option<String>,
    /// Task limits to apply to each container instead (no task cgroup available).
    pub per_container_limits: Option<TaskLimits>,
}

/// The cluster name of a task from its ARN (`arn:aws:ecs:R:A:task/CLUSTER/ID`); `None` for the
/// old format without the cluster.
pub fn task_cluster(task_arn: &str) -> Option<&str> {
    let resource = task_arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("task"), Some(cluster), Some(_)) => Some(cluster),
        _ => None,
    }
}

fn cluster_label(a: &TaskAssignment, id: &Identity) -> String {
    if id.managed {
        if let Some(c) = task_cluster(&a.task_arn) {
            return c.to_string();
        }
        return a
            .cluster_arn
            .rsplit('/')
            .next()
            .unwrap_or(&a.cluster_arn)
            .to_string();
    }
    id.cluster.clone()
}

fn base_labels(a: &TaskAssignment, id: &Identity, name: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(labels::INSTANCE.into(), id.instance_id.clone());
    labels.insert(labels::CLUSTER.into(), cluster_label(a, id));
    labels.insert(labels::TASK_ARN.into(), a.task_arn.clone());
    labels.insert(labels::CONTAINER_NAME.into(), name.to_string());
    labels.insert(
        labels::TASK_DEFINITION.into(),
        family_revision(&a.task_definition_arn).to_string(),
    );
    labels
}

/// The Docker network of an awsvpc task.
pub fn network_spec(n: &TaskNetwork) -> NetworkSpec {
    NetworkSpec {
        name: n.network_name.clone(),
        subnet: n.subnet_cidr.clone(),
        gateway: n.gateway.clone(),
        labels: BTreeMap::from([(MANAGED_NETWORK_LABEL.to_string(), "true".to_string())]),
    }
}

/// The pause container of an awsvpc task: it owns the network namespace, with exactly the
/// address and MAC the control plane allocated.
pub fn pause_spec(
    a: &TaskAssignment,
    n: &TaskNetwork,
    id: &Identity,
    placement: &TaskPlacement,
) -> ContainerSpec {
    let hostname = n
        .private_dns_name
        .split('.')
        .next()
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    ContainerSpec {
        name: container_name(&a.task_arn, "pause"),
        image: crate::pause::IMAGE.to_string(),
        command: Some(vec![crate::pause::PATH.to_string()]),
        hostname,
        labels: base_labels(a, id, PAUSE_CONTAINER_NAME),
        network_mode: n.network_name.clone(),
        ipv4_address: Some(n.private_ipv4_address.clone()),
        mac_address: Some(n.mac_address.clone()),
        cgroup_parent: placement.cgroup_parent.clone(),
        cpu_shares: Some(MIN_CPU_SHARES),
        ..Default::default()
    }
}
/// A warm pause container of a managed-pool host: made before any task is placed, with the
/// address, MAC and hostname of a warm task network the server reserved for the host, and
/// `dns` as the task's pause container would have it; labelled with the instance, the pause's
/// container name and [`labels::WARM_ADDRESS`] (no task ARN: Docker labels are fixed at
/// creation, so an adopted one keeps these). No cgroup parent: no task is known yet.
pub fn warm_pause_spec(n: &TaskNetwork, id: &Identity, dns: Vec<String>) -> ContainerSpec {
    let hostname = n
        .private_dns_name
        .split('.')
        .next()
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    ContainerSpec {
        name: crate::warm::container_name(&n.private_ipv4_address),
        image: crate::pause::IMAGE.to_string(),
        command: Some(vec![crate::pause::PATH.to_string()]),
        hostname,
        labels: BTreeMap::from([
            (labels::INSTANCE.to_string(), id.instance_id.clone()),
            (labels::CLUSTER.to_string(), id.cluster.clone()),
            (
                labels::CONTAINER_NAME.to_string(),
                PAUSE_CONTAINER_NAME.to_string(),
            ),
            (
                labels::WARM_ADDRESS.to_string(),
                n.private_ipv4_address.clone(),
            ),
        ]),
        network_mode: n.network_name.clone(),
        ipv4_address: Some(n.private_ipv4_address.clone()),
        mac_address: Some(n.mac_address.clone()),
        cpu_shares: Some(MIN_CPU_SHARES),
        dns,
        ..Default::default()
    }
}

/// The id of a task: the last part of its ARN.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The Docker name of a container of a task.
pub fn container_name(task_arn: &str, container: &str) -> String {
    format!(
        "flotilla-{}-{}",
        sanitize(task_id(task_arn)),
        sanitize(container)
    )
}

/// The Docker name of a task-scoped volume.
pub fn task_volume_name(task_arn: &str, volume: &str) -> String {
    format!(
        "flotilla-{}-{}",
        sanitize(task_id(task_arn)),
        sanitize(volume)
    )
}

/// `family:revision` from a task definition ARN.
pub fn family_revision(task_definition_arn: &str) -> &str {
    task_definition_arn
        .rsplit('/')
        .next()
        .unwrap_or(task_definition_arn)
}

/// The name of a container definition (empty when missing; [`validate`] rejects that).
pub fn def_name(def: &ContainerDefinition) -> &str {
    def.name.as_deref().unwrap_or("")
}

/// Whether a container definition is essential (ECS default: true).
pub fn is_essential(def: &ContainerDefinition) -> bool {
    def.essential.unwrap_or(true)
}

/// Checks that the agent can run the task; the error says what is unsupported. The rules are
/// shared with the control plane, which applies them at RunTask ([`flotilla_protocol::runnable`]).
pub fn validate(a: &TaskAssignment) -> Result<(), String> {
    let containers: Vec<ContainerDefinition> =
        a.containers.iter().map(|c| c.definition.clone()).collect();
    // awsvpc runs only in the network the control plane allocated for the task.
    if a.network_mode == NetworkMode::Awsvpc && a.network.is_none() {
        return Err(
            "network mode awsvpc needs the task network the control plane allocates, and none was assigned"
                .into(),
        );
    }
    flotilla_protocol::runnable::check(
        a.pid_mode.as_deref(),
        a.ipc_mode.as_deref(),
        &a.volumes,
        &containers,
    )
}

fn volume_source(a: &TaskAssignment, v: &Volume) -> String {
    let name = v.name.as_deref().unwrap_or("");
    if let Some(host) = &v.host {
        if let Some(path) = host.source_path.as_deref() {
            return path.to_string();
        }
    }
    if let Some(dv) = &v.docker_volume_configuration {
        if matches!(dv.scope, Some(Scope::Shared)) {
            return name.to_string();
        }
    }
    task_volume_name(&a.task_arn, name)
}

/// The volumes the task needs created before its containers: task-scoped Docker volumes and
/// host volumes without a source path (ECS gives those a Docker-managed volume for the task's
/// lifetime), plus shared volumes with `autoprovision`.
pub fn task_volumes(a: &TaskAssignment, id: &Identity) -> Vec<VolumeSpec> {
    let mut out = Vec::new();
    for v in &a.volumes {
        let source = volume_source(a, v);
        if v.host.as_ref().is_some_and(|h| h.source_path.is_some()) {
            continue;
        }
        let mut labels = BTreeMap::new();
        labels.insert(labels::INSTANCE.to_string(), id.instance_id.clone());
        labels.insert(labels::TASK_ARN.to_string(), a.task_arn.clone());
        let mut spec = VolumeSpec {
            name: source,
            labels,
            ..Default::default()
        };
        if let Some(dv) = &v.docker_volume_configuration {
            spec.driver = dv.driver.clone();
            spec.driver_opts = dv.driver_opts.clone().unwrap_or_default();
            spec.labels.extend(dv.labels.clone().unwrap_or_default());
            if matches!(dv.scope, Some(Scope::Shared)) {
                // A shared volume outlives the task: not labelled as the task's.
                spec.labels.remove(labels::TASK_ARN);
                if dv.autoprovision != Some(true) {
                    continue;
                }
            }
        }
        out.push(spec);
    }
    out
}

/// Whether a volume belongs to the task (removed at cleanup).
pub fn is_task_scoped(spec: &VolumeSpec) -> bool {
    spec.labels.contains_key(labels::TASK_ARN)
}

fn ulimit_name(n: &UlimitName) -> String {
    // The serde name is the Docker name.
    serde_json::to_value(n)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{n:?}").to_lowercase())
}

/// The names a container depends on implicitly (links need their target running).
pub fn link_targets(def: &ContainerDefinition) -> Vec<String> {
    def.links
        .iter()
        .flatten()
        .map(|l| l.split(':').next().unwrap_or(l).to_string())
        .collect()
}

/// What the task endpoint (`169.254.170.2`) adds to a container: its variables
/// (`ECS_CONTAINER_METADATA_URI_V4`, `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, ...), which win
/// over the definition's of the same name, and for a bridge container the MAC address the
/// agent's NAT rule matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSettings {
    /// Name and value.
    pub env: Vec<(String, String)>,
    /// The MAC address on Docker's bridge.
    pub mac_address: Option<String>,
    /// The DNS servers of a bridge container (the task resolver, `169.254.170.2`) unless its
    /// definition names its own `dnsServers`.
    pub dns: Vec<String>,
}

/// [`container_spec_with`] without the task endpoint.
pub fn container_spec(
    a: &TaskAssignment,
    def: &ContainerDefinition,
    id: &Identity,
    placement: &TaskPlacement,
    secrets: Option<&ContainerSecrets>,
) -> ContainerSpec {
    container_spec_with(a, def, id, placement, secrets, None)
}

/// Builds the Docker spec of one container of the task, step by step: identity and process,
/// network, mounts, resources, Linux parameters, security, health check and logging. Its
/// `secrets`, read by the server for this task, become environment variables and its
/// `secretOptions` log driver options; the task endpoint's settings are applied last.
pub fn container_spec_with(
    a: &TaskAssignment,
    def: &ContainerDefinition,
    id: &Identity,
    placement: &TaskPlacement,
    secrets: Option<&ContainerSecrets>,
    endpoint: Option<&EndpointSettings>,
) -> ContainerSpec {
    let name = def_name(def);
    let mut spec = ContainerSpec {
        name: container_name(&a.task_arn, name),
        image: def.image.clone().unwrap_or_default(),
        entrypoint: def.entry_point.clone(),
        command: def.command.clone(),
        env: environment(def),
        working_dir: def.working_directory.clone(),
        user: def.user.clone(),
        hostname: def.hostname.clone(),
        labels: container_labels(a, def, id, name),
        open_stdin: def.interactive == Some(true),
        tty: def.pseudo_terminal == Some(true),
        health_check: health_check(def),
        log_driver: log_driver(def),
        pid_mode: a
            .pid_mode
            .as_deref()
            .and_then(PidMode::parse)
            .filter(|m| *m == PidMode::Host),
        ipc_mode: a.ipc_mode.as_deref().and_then(IpcMode::parse),
        stop_timeout_s: Some(stop_timeout_s(def) as i64),
        cgroup_parent: placement.cgroup_parent.clone(),
        ..ContainerSpec::default()
    };
    apply_network(&mut spec, a, def, placement);
    apply_mounts(&mut spec, a, def);
    apply_resources(&mut spec, def, placement);
    apply_linux_parameters(&mut spec, def);
    apply_security(&mut spec, def);
    if let Some(secrets) = secrets {
        apply_secrets(&mut spec, secrets);
    }
    if let Some(endpoint) = endpoint {
        apply_endpoint(&mut spec, endpoint);
    }
    if placement.pause_id.is_some() {
        leave_network_to_pause(&mut spec);
    }
    spec
}

/// The endpoint's variables after everything else (they win over the definition's), and a
/// bridge container's MAC address.
fn apply_endpoint(spec: &mut ContainerSpec, e: &EndpointSettings) {
    for (name, value) in &e.env {
        spec.env
            .retain(|v| v.split_once('=').map(|(k, _)| k) != Some(name.as_str()));
        spec.env.push(format!("{name}={value}"));
    }
    if spec.network_mode == "bridge" {
        spec.mac_address.clone_from(&e.mac_address);
        if spec.dns.is_empty() {
            spec.dns.clone_from(&e.dns);
        }
    }
}

/// `secrets` as `NAME=VALUE` after the plain environment (so a secret wins over a variable of
/// the same name), `secretOptions` into the log driver's options.
fn apply_secrets(spec: &mut ContainerSpec, secrets: &ContainerSecrets) {
    for s in &secrets.environment {
        spec.env
            .retain(|e| e.split_once('=').map(|(k, _)| k) != Some(s.name.as_str()));
        spec.env.push(format!("{}={}", s.name, s.value.0));
    }
    if let Some((_, options)) = spec.log_driver.as_mut() {
        for s in &secrets.log_options {
            options.insert(s.name.clone(), s.value.0.clone());
        }
    }
}

/// The definition's `dockerLabels` with Flotilla's labels over them.
fn container_labels(
    a: &TaskAssignment,
    def: &ContainerDefinition,
    id: &Identity,
    name: &str,
) -> BTreeMap<String, String> {
    let mut labels = def.docker_labels.clone().unwrap_or_default();
    labels.extend(base_labels(a, id, name));
    labels
}

/// `KEY=VALUE` for each environment variable with a name.
fn environment(def: &ContainerDefinition) -> Vec<String> {
    def.environment
        .iter()
        .flatten()
        .filter_map(|kv| {
            Some(format!(
                "{}={}",
                kv.name.as_deref()?,
                kv.value.as_deref().unwrap_or("")
            ))
        })
        .collect()
}

/// Network mode, ports (published in bridge mode, exposed in host mode), links (bridge
/// only), extra hosts and DNS.
fn apply_network(
    spec: &mut ContainerSpec,
    a: &TaskAssignment,
    def: &ContainerDefinition,
    placement: &TaskPlacement,
) {
    spec.network_mode = match (&placement.pause_id, a.network_mode) {
        (Some(pause), _) => format!("container:{pause}"),
        (None, NetworkMode::Host) => "host".into(),
        (None, NetworkMode::None) => "none".into(),
        (None, NetworkMode::Bridge | NetworkMode::Awsvpc) => "bridge".into(),
    };
    for p in def.port_mappings.iter().flatten() {
        let Some(cp) = p.container_port.and_then(|c| u16::try_from(c).ok()) else {
            continue;
        };
        let protocol = match p.protocol {
            Some(TransportProtocol::Udp) => "udp",
            _ => "tcp",
        }
        .to_string();
        match a.network_mode {
            NetworkMode::Bridge => spec.ports.push(PortSpec {
                container_port: cp,
                host_port: p
                    .host_port
                    .and_then(|h| u16::try_from(h).ok())
                    .filter(|h| *h != 0),
                protocol,
            }),
            NetworkMode::Host => spec.exposed_ports.push(PortSpec {
                container_port: cp,
                host_port: Some(cp),
                protocol,
            }),
            _ => {}
        }
    }
    if a.network_mode == NetworkMode::Bridge {
        spec.links = def
            .links
            .iter()
            .flatten()
            .map(|l| {
                let (target, alias) = l.split_once(':').unwrap_or((l, l));
                format!("{}:{alias}", container_name(&a.task_arn, target))
            })
            .collect();
    }
    spec.extra_hosts = def
        .extra_hosts
        .iter()
        .flatten()
        .map(|h| format!("{}:{}", h.hostname, h.ip_address))
        .collect();
    spec.dns = def.dns_servers.clone().unwrap_or_default();
    spec.dns_search = def.dns_search_domains.clone().unwrap_or_default();
    spec.network_disabled = def.disable_networking == Some(true);
}

/// Binds of the task's volumes (`mountPoints`) and `volumesFrom`.
fn apply_mounts(spec: &mut ContainerSpec, a: &TaskAssignment, def: &ContainerDefinition) {
    let read_only = |ro: Option<bool>| if ro == Some(true) { ":ro" } else { "" };
    spec.binds = def
        .mount_points
        .iter()
        .flatten()
        .filter_map(|m| {
            let src = m.source_volume.as_deref().unwrap_or("");
            let v = a.volumes.iter().find(|v| v.name.as_deref() == Some(src))?;
            let target = m.container_path.as_deref().unwrap_or("");
            let ro = read_only(m.read_only);
            Some(format!("{}:{target}{ro}", volume_source(a, v)))
        })
        .collect();
    spec.volumes_from = def
        .volumes_from
        .iter()
        .flatten()
        .filter_map(|v| {
            let src = v.source_container.as_deref()?;
            let ro = read_only(v.read_only);
            Some(format!("{}{ro}", container_name(&a.task_arn, src)))
        })
        .collect();
}

/// CPU shares and memory: the container's own, else the task's where no task cgroup holds
/// them; swap from `maxSwap`; ulimits.
fn apply_resources(spec: &mut ContainerSpec, def: &ContainerDefinition, placement: &TaskPlacement) {
    let task_limits = placement.per_container_limits;
    spec.memory_bytes = def.memory.map(|m| i64::from(m) * MIB).or_else(|| {
        task_limits
            .and_then(|l| l.memory_mib)
            .map(|m| i64::from(m) * MIB)
    });
    spec.cpu_shares = Some(
        match (def.cpu, task_limits.and_then(|l| l.cpu)) {
            (0, Some(task_cpu)) => i64::from(task_cpu),
            (cpu, _) => i64::from(cpu),
        }
        .max(MIN_CPU_SHARES),
    );
    spec.memory_reservation_bytes = def.memory_reservation.map(|m| i64::from(m) * MIB);
    let lp = def.linux_parameters.clone().unwrap_or_default();
    spec.memory_swap_bytes = match (spec.memory_bytes, lp.max_swap) {
        (Some(m), Some(swap)) if swap >= 0 => Some(m + i64::from(swap) * MIB),
        _ => None,
    };
    spec.memory_swappiness = lp.swappiness.map(i64::from);
    spec.ulimits = def
        .ulimits
        .iter()
        .flatten()
        .map(|u| UlimitSpec {
            name: ulimit_name(&u.name),
            soft: i64::from(u.soft_limit),
            hard: i64::from(u.hard_limit),
        })
        .collect();
}

/// `linuxParameters`: capabilities, init, tmpfs, /dev/shm and devices.
fn apply_linux_parameters(spec: &mut ContainerSpec, def: &ContainerDefinition) {
    let lp = def.linux_parameters.clone().unwrap_or_default();
    let caps = lp.capabilities.clone().unwrap_or_default();
    spec.cap_add = caps.add.unwrap_or_default();
    spec.cap_drop = caps.drop.unwrap_or_default();
    spec.init = lp.init_process_enabled == Some(true);
    spec.tmpfs = lp
        .tmpfs
        .iter()
        .flatten()
        .map(|t| {
            let mut opts = vec![format!("size={}m", t.size)];
            opts.extend(t.mount_options.clone().unwrap_or_default());
            (t.container_path.clone(), opts.join(","))
        })
        .collect();
    spec.shm_size_bytes = lp.shared_memory_size.map(|s| i64::from(s) * MIB);
    spec.devices = lp
        .devices
        .iter()
        .flatten()
        .map(|d| DeviceSpec {
            host_path: d.host_path.clone(),
            container_path: d
                .container_path
                .clone()
                .unwrap_or_else(|| d.host_path.clone()),
            permissions: device_permissions(d),
        })
        .collect();
}

/// A device's permissions as Docker's `rwm` subset (all three when none are given).
fn device_permissions(d: &Device) -> String {
    let p: String = d
        .permissions
        .iter()
        .flatten()
        .filter_map(|p| {
            serde_json::to_value(p)
                .ok()
                .and_then(|v| v.as_str().and_then(|s| s.chars().next()))
        })
        .collect();
    if p.is_empty() {
        "rwm".to_string()
    } else {
        p
    }
}

/// Read-only root, privileged, security options and sysctls.
fn apply_security(spec: &mut ContainerSpec, def: &ContainerDefinition) {
    spec.readonly_rootfs = def.readonly_root_filesystem == Some(true);
    spec.privileged = def.privileged == Some(true);
    spec.security_opt = def.docker_security_options.clone().unwrap_or_default();
    spec.sysctls = def
        .system_controls
        .iter()
        .flatten()
        .filter_map(|s| Some((s.namespace.clone()?, s.value.clone()?)))
        .collect();
}

/// The health check with ECS's defaults (interval 30 s, timeout 5 s, 3 retries).
fn health_check(def: &ContainerDefinition) -> Option<HealthCheckSpec> {
    let secs =
        |v: Option<i32>, default: u32| v.and_then(|i| u32::try_from(i).ok()).unwrap_or(default);
    def.health_check.as_ref().map(|h| HealthCheckSpec {
        test: h.command.clone(),
        interval_s: secs(h.interval, 30),
        timeout_s: secs(h.timeout, 5),
        retries: secs(h.retries, 3),
        start_period_s: secs(h.start_period, 0),
    })
}

/// The log driver (`json-file` when unnamed) and its options. A container with the `awslogs`
/// driver keeps its output in Docker's `json-file` driver, bounded (3 files of 10 MiB), with
/// the task's delivery `mode` and `max-buffer-size`; the agent follows it into the host's log
/// store ([`crate::logs`]).
fn log_driver(def: &ContainerDefinition) -> Option<(String, BTreeMap<String, String>)> {
    def.log_configuration.as_ref().map(|l| {
        if l.log_driver == LogDriver::Awslogs {
            let given = l.options.clone().unwrap_or_default();
            let mut options = BTreeMap::from([
                ("max-size".to_string(), "10m".to_string()),
                ("max-file".to_string(), "3".to_string()),
            ]);
            for k in ["mode", "max-buffer-size"] {
                if let Some(v) = given.get(k) {
                    options.insert(k.to_string(), v.clone());
                }
            }
            return ("json-file".to_string(), options);
        }
        let driver = serde_json::to_value(l.log_driver)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "json-file".to_string());
        (driver, l.options.clone().unwrap_or_default())
    })
}

/// The container's `awslogs` options, checked (`None` for another driver): `fargate` for a
/// managed-pool host, `region` the agent's.
pub fn awslogs_options(
    def: &ContainerDefinition,
    fargate: bool,
    region: Option<&str>,
) -> Option<Result<flotilla_logs::awslogs::AwslogsOptions, String>> {
    let l = def.log_configuration.as_ref()?;
    (l.log_driver == LogDriver::Awslogs).then(|| {
        flotilla_logs::awslogs::parse(&l.options.clone().unwrap_or_default(), fargate, region)
    })
}

/// In the pause container's network namespace, the pause container owns the network: Docker
/// refuses these options in `container:` network mode (the task's hostname is the pause
/// container's).
fn leave_network_to_pause(spec: &mut ContainerSpec) {
    spec.ports.clear();
    spec.exposed_ports.clear();
    spec.hostname = None;
    spec.dns.clear();
    spec.dns_search.clear();
    spec.extra_hosts.clear();
    spec.links.clear();
    spec.network_disabled = false;
}

/// The container's stop timeout, seconds (ECS default 30).
pub fn stop_timeout_s(def: &ContainerDefinition) -> u64 {
    def.stop_timeout
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(DEFAULT_STOP_TIMEOUT_S)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_model::shapes::{HostVolumeProperties, MountPoint, PortMapping};
    use flotilla_protocol::{ContainerAssignment, DesiredStatus};

    fn assignment(defs: Vec<ContainerDefinition>, mode: NetworkMode) -> TaskAssignment {
        TaskAssignment {
            task_arn: "arn:aws:ecs:us-east-1:1:task/c/abc123".into(),
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/c".into(),
            task_definition_arn: "arn:aws:ecs:us-east-1:1:task-definition/web:3".into(),
            version: 1,
            desired_status: DesiredStatus::Running,
            stop_reason: None,
            stop_code: None,
            network_mode: mode,
            cpu: None,
            memory: None,
            volumes: vec![
                Volume {
                    name: Some("data".into()),
                    host: Some(HostVolumeProperties {
                        source_path: Some("/srv/data".into()),
                    }),
                    ..Default::default()
                },
                Volume {
                    name: Some("scratch".into()),
                    ..Default::default()
                },
            ],
            pid_mode: None,
            network: None,
            stop_grace_seconds: None,
            task_role_arn: None,
            service_name: None,
            enable_execute_command: false,
            ipc_mode: None,
            containers: defs
                .into_iter()
                .map(|d| ContainerAssignment {
                    container_arn: "arn:c".into(),
                    definition: d,
                })
                .collect(),
        }
    }

    fn id() -> Identity {
        Identity {
            instance_id: "inst".into(),
            cluster: "c".into(),
            managed: false,
        }
    }

    fn net() -> TaskNetwork {
        TaskNetwork {
            attachment_id: "att".into(),
            network_interface_id: "eni-0123456789abcdef0".into(),
            private_ipv4_address: "10.213.0.7".into(),
            mac_address: "0a:58:0a:d5:00:07".into(),
            subnet_cidr: "10.213.0.0/16".into(),
            gateway: "10.213.0.1".into(),
            network_name: "flotilla-awsvpc".into(),
            subnet_id: "subnet-1".into(),
            private_dns_name: "ip-10-213-0-7.ec2.internal".into(),
        }
    }

    #[test]
    fn awsvpc_containers_join_the_pause_namespace() {
        let def = ContainerDefinition {
            name: Some("web".into()),
            image: Some("x".into()),
            hostname: Some("h".into()),
            port_mappings: Some(vec![PortMapping {
                container_port: Some(80),
                host_port: Some(80),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut a = assignment(vec![def.clone()], NetworkMode::Awsvpc);
        assert!(validate(&a).is_err_and(|e| e.contains("awsvpc")));
        a.network = Some(net());
        assert_eq!(validate(&a), Ok(()));
        let placement = TaskPlacement {
            pause_id: Some("p1".into()),
            cgroup_parent: Some("/flotilla/abc123".into()),
            per_container_limits: None,
        };
        let s = container_spec(&a, &def, &id(), &placement, None);
        assert_eq!(s.network_mode, "container:p1");
        assert!(s.ports.is_empty() && s.exposed_ports.is_empty());
        assert_eq!(s.hostname, None);
        assert_eq!(s.cgroup_parent.as_deref(), Some("/flotilla/abc123"));
        let p = pause_spec(&a, &net(), &id(), &placement);
        assert_eq!(p.network_mode, "flotilla-awsvpc");
        assert_eq!(p.ipv4_address.as_deref(), Some("10.213.0.7"));
        assert_eq!(p.mac_address.as_deref(), Some("0a:58:0a:d5:00:07"));
        assert_eq!(p.hostname.as_deref(), Some("ip-10-213-0-7"));
        assert_eq!(p.command, Some(vec!["/pause".to_string()]));
        assert_eq!(
            p.labels.get(labels::CONTAINER_NAME).map(String::as_str),
            Some(PAUSE_CONTAINER_NAME)
        );
        assert_eq!(p.cgroup_parent.as_deref(), Some("/flotilla/abc123"));
        assert_eq!(
            network_spec(&net())
                .labels
                .get(MANAGED_NETWORK_LABEL)
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn managed_hosts_label_the_task_cluster_and_fallback_limits_apply() {
        let def = ContainerDefinition {
            name: Some("web".into()),
            image: Some("x".into()),
            ..Default::default()
        };
        let a = assignment(vec![def.clone()], NetworkMode::Bridge);
        assert_eq!(task_cluster(&a.task_arn), Some("c"));
        assert_eq!(task_cluster("arn:aws:ecs:us-east-1:1:task/abc"), None);
        let mut managed = id();
        managed.managed = true;
        managed.cluster = flotilla_protocol::MANAGED_POOL.into();
        let mut a2 = a.clone();
        a2.task_arn = "arn:aws:ecs:us-east-1:1:task/prod/abc123".into();
        let s = container_spec(&a2, &def, &managed, &TaskPlacement::default(), None);
        assert_eq!(
            s.labels.get(labels::CLUSTER).map(String::as_str),
            Some("prod")
        );
        let s = container_spec(&a2, &def, &id(), &TaskPlacement::default(), None);
        assert_eq!(s.labels.get(labels::CLUSTER).map(String::as_str), Some("c"));
        let limits = TaskLimits {
            cpu: Some(512),
            memory_mib: Some(256),
        };
        let placement = TaskPlacement {
            per_container_limits: Some(limits),
            ..Default::default()
        };
        let s = container_spec(&a, &def, &id(), &placement, None);
        assert_eq!(s.memory_bytes, Some(256 * MIB));
        assert_eq!(s.cpu_shares, Some(512));
        let own = ContainerDefinition {
            memory: Some(64),
            cpu: 100,
            ..def
        };
        let s = container_spec(&a, &own, &id(), &placement, None);
        assert_eq!(s.memory_bytes, Some(64 * MIB));
        assert_eq!(s.cpu_shares, Some(100));
    }

    #[test]
    fn translates_a_web_container() {
        let def = ContainerDefinition {
            name: Some("web".into()),
            image: Some("flotilla/busybox:latest".into()),
            cpu: 0,
            memory: Some(64),
            memory_reservation: Some(32),
            port_mappings: Some(vec![PortMapping {
                container_port: Some(8080),
                host_port: Some(0),
                ..Default::default()
            }]),
            mount_points: Some(vec![
                MountPoint {
                    source_volume: Some("data".into()),
                    container_path: Some("/data".into()),
                    read_only: Some(true),
                },
                MountPoint {
                    source_volume: Some("scratch".into()),
                    container_path: Some("/scratch".into()),
                    read_only: None,
                },
            ]),
            links: Some(vec!["db:database".into()]),
            ..Default::default()
        };
        let a = assignment(vec![def.clone()], NetworkMode::Bridge);
        assert_eq!(validate(&a), Ok(()));
        let s = container_spec(&a, &def, &id(), &TaskPlacement::default(), None);
        assert_eq!(s.name, "flotilla-abc123-web");
        assert_eq!(s.cpu_shares, Some(2));
        assert_eq!(s.memory_bytes, Some(64 * MIB));
        assert_eq!(s.memory_reservation_bytes, Some(32 * MIB));
        assert_eq!(
            s.ports,
            vec![PortSpec {
                container_port: 8080,
                host_port: None,
                protocol: "tcp".into()
            }]
        );
        assert_eq!(
            s.binds,
            vec![
                "/srv/data:/data:ro".to_string(),
                "flotilla-abc123-scratch:/scratch".to_string()
            ]
        );
        assert_eq!(s.links, vec!["flotilla-abc123-db:database".to_string()]);
        assert_eq!(
            s.labels.get(labels::TASK_DEFINITION).map(String::as_str),
            Some("web:3")
        );
        assert_eq!(
            s.labels.get(labels::INSTANCE).map(String::as_str),
            Some("inst")
        );
        assert_eq!(s.stop_timeout_s, Some(30));
        let vols = task_volumes(&a, &id());
        assert_eq!(vols.len(), 1);
        assert_eq!(vols[0].name, "flotilla-abc123-scratch");
        assert!(is_task_scoped(&vols[0]));
    }

    #[test]
    fn rejects_what_docker_cannot_do() {
        let def = ContainerDefinition {
            name: Some("web".into()),
            image: Some("x".into()),
            ..Default::default()
        };
        let a = assignment(vec![def.clone()], NetworkMode::Awsvpc);
        assert!(validate(&a).is_err_and(|e| e.contains("awsvpc")));
        let with_secret = ContainerDefinition {
            secrets: Some(vec![]),
            ..def.clone()
        };
        let a = assignment(vec![with_secret], NetworkMode::Bridge);
        assert!(validate(&a).is_ok());
        let bad_mount = ContainerDefinition {
            mount_points: Some(vec![MountPoint {
                source_volume: Some("nope".into()),
                ..Default::default()
            }]),
            ..def
        };
        let a = assignment(vec![bad_mount], NetworkMode::Bridge);
        assert!(validate(&a).is_err_and(|e| e.contains("nope")));
    }

    #[test]
    fn host_mode_binds_container_ports() {
        let def = ContainerDefinition {
            name: Some("web".into()),
            image: Some("x".into()),
            port_mappings: Some(vec![PortMapping {
                container_port: Some(80),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let a = assignment(vec![def.clone()], NetworkMode::Host);
        let s = container_spec(&a, &def, &id(), &TaskPlacement::default(), None);
        assert_eq!(s.network_mode, "host");
        assert!(s.ports.is_empty());
        assert_eq!(s.exposed_ports.len(), 1);
    }

    #[test]
    fn secrets_become_environment_and_log_options() {
        use flotilla_model::shapes::{KeyValuePair, LogConfiguration, LogDriver};
        use flotilla_protocol::{SecretPair, SecretText};
        let def = ContainerDefinition {
            name: Some("app".into()),
            image: Some("x".into()),
            environment: Some(vec![KeyValuePair {
                name: Some("PW".into()),
                value: Some("plain".into()),
            }]),
            log_configuration: Some(LogConfiguration {
                log_driver: LogDriver::Splunk,
                options: Some([("splunk-url".to_string(), "u".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = assignment(vec![def.clone()], NetworkMode::Bridge);
        let pair = |n: &str, v: &str| SecretPair {
            name: n.into(),
            value: SecretText(v.into()),
        };
        let secrets = ContainerSecrets {
            name: "app".into(),
            environment: vec![pair("PW", "s3cret"), pair("TOKEN", "t0k")],
            log_options: vec![pair("splunk-token", "lt")],
            registry_auth: None,
        };
        let s = container_spec(&a, &def, &id(), &TaskPlacement::default(), Some(&secrets));
        assert!(
            s.env.contains(&"PW=s3cret".to_string()),
            "{:?}",
            s.env.len()
        );
        assert!(!s.env.contains(&"PW=plain".to_string()));
        assert!(s.env.contains(&"TOKEN=t0k".to_string()));
        let (_, options) = s.log_driver.unwrap();
        assert_eq!(options.get("splunk-token").map(String::as_str), Some("lt"));
        assert_eq!(options.get("splunk-url").map(String::as_str), Some("u"));
    }

    #[test]
    fn endpoint_variables_win_and_only_bridge_containers_get_the_mac() {
        let mut def = ContainerDefinition {
            name: Some("app".into()),
            image: Some("busybox".into()),
            ..Default::default()
        };
        def.environment = Some(vec![flotilla_model::shapes::KeyValuePair {
            name: Some("ECS_CONTAINER_METADATA_URI_V4".into()),
            value: Some("http://spoofed".into()),
        }]);
        let e = EndpointSettings {
            env: vec![(
                "ECS_CONTAINER_METADATA_URI_V4".into(),
                "http://169.254.170.2/v4/x".into(),
            )],
            mac_address: Some("02:f1:00:00:00:01".into()),
            dns: vec!["169.254.170.2".into()],
        };
        let id = Identity {
            instance_id: "i".into(),
            cluster: "c".into(),
            managed: false,
        };
        let bridge = assignment(vec![def.clone()], NetworkMode::Bridge);
        let spec = container_spec_with(
            &bridge,
            &def,
            &id,
            &TaskPlacement::default(),
            None,
            Some(&e),
        );
        assert_eq!(
            spec.env,
            vec!["ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/x".to_string()]
        );
        assert_eq!(spec.mac_address.as_deref(), Some("02:f1:00:00:00:01"));
        let host = assignment(vec![def.clone()], NetworkMode::Host);
        let spec = container_spec_with(&host, &def, &id, &TaskPlacement::default(), None, Some(&e));
        assert_eq!(spec.mac_address, None);
    }
}
