//! [`DockerRuntime`]: the [`Runtime`] trait over the Docker Engine API (bollard, unix socket).
//!
//! What this is: a thin translation between the runtime-neutral types of [`crate::runtime`] and
//! the Docker API, with the API version negotiated down to what the engine speaks (Docker 20.10
//! speaks 1.41).
//!
//! What this is not: policy. It never retries, pulls on its own or decides anything.
//!
//! Invariant: Docker's errors become [`RuntimeError`] variants by HTTP status (404 -> NotFound,
//! 409 -> Conflict), never by searching message text.

use crate::runtime::{
    Binding, ContainerInfo, ContainerSpec, ContainerStats, ContainerSummary, ExecSpec, ExecState,
    ExecStreams, Health, ImageInfo, NetworkInfo, NetworkSpec, OutputLine, OutputStream,
    OutputStreamOf, RegistryAuth, Runtime, RuntimeError, RuntimeVersion, Signal, VolumeSpec,
};
use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, DeviceMapping, EndpointIpamConfig,
    EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig, HostConfigLogConfig, Ipam,
    IpamConfig, NetworkCreateRequest, NetworkingConfig, PortBinding, ResourcesUlimits,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions, RenameContainerOptions,
    StatsOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The default Docker socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The Docker engine.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    socket: String,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime").finish_non_exhaustive()
    }
}

fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn message_of(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn other(e: BollardError) -> RuntimeError {
    match status_of(&e) {
        Some(404) => RuntimeError::NotFound(message_of(&e)),
        Some(409) => RuntimeError::Conflict(message_of(&e)),
        _ => RuntimeError::Other(message_of(&e)),
    }
}

fn secs_to_ns(s: u32) -> i64 {
    i64::from(s) * 1_000_000_000
}

impl DockerRuntime {
    /// Connects to the engine at a unix socket path and negotiates the API version.
    pub async fn connect(socket: &str) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_unix(socket, 300, bollard::API_DEFAULT_VERSION)
            .map_err(|e| RuntimeError::Other(format!("connect to {socket}: {e}")))?
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::Other(format!("negotiate API version: {e}")))?;
        Ok(Self {
            docker,
            socket: socket.to_string(),
        })
    }

    /// Every container (running or not) matching one Docker list filter.
    async fn containers_where(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<bollard::models::ContainerSummary>, RuntimeError> {
        let filters = HashMap::from([(filter.to_string(), vec![value.to_string()])]);
        self.docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(other)
    }

    /// Creates a container with a fixed MAC address. Engines before API 1.44 (Docker 20.10
    /// speaks 1.41) read it only from the top-level `MacAddress`, which bollard's typed body no
    /// longer has: the body is sent as JSON with that member added.
    async fn create_with_mac(
        &self,
        spec: &ContainerSpec,
        mac: &str,
    ) -> Result<String, RuntimeError> {
        let mut body = serde_json::to_value(Self::create_body(spec))
            .map_err(|e| RuntimeError::Create(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.insert("MacAddress".into(), serde_json::Value::String(mac.into()));
        }
        let (status, json, message) = self
            .post_json(&format!("/containers/create?name={}", spec.name), &body)
            .await?;
        match status {
            201 => Ok(json
                .get("Id")
                .and_then(|i| i.as_str())
                .unwrap_or_default()
                .to_string()),
            409 => Err(RuntimeError::Conflict(message)),
            _ => Err(RuntimeError::Create(message)),
        }
    }

    /// POSTs JSON to the engine at the negotiated API version, over the same socket: for
    /// members bollard's typed bodies do not have. Returns status, body and Docker's message.
    async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value, String), RuntimeError> {
        use http_body_util::BodyExt;
        let bytes = serde_json::to_vec(body).map_err(|e| RuntimeError::Other(e.to_string()))?;
        let version = self.docker.client_version();
        let path = format!(
            "/v{}.{}{path}",
            version.major_version, version.minor_version
        );
        let io = |e: &dyn std::fmt::Display| RuntimeError::Other(format!("{}: {e}", self.socket));
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| io(&e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| io(&e))?;
        tokio::spawn(conn);
        let req = hyper::Request::post(path)
            .header("Host", "docker")
            .header("Content-Type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
            .map_err(|e| io(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| io(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io(&e))?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = json
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string();
        Ok((status, json, message))
    }

    fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed = Vec::new();
        for p in &spec.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            exposed.push(key.clone());
            port_bindings
                .entry(key)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: None,
                    host_port: p.host_port.map(|h| h.to_string()),
                });
        }
        for p in &spec.exposed_ports {
            exposed.push(format!("{}/{}", p.container_port, p.protocol));
        }
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let map = |m: &BTreeMap<String, String>| {
            (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        let host_config = HostConfig {
            network_mode: Some(spec.network_mode.clone()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            cpu_shares: spec.cpu_shares,
            memory: spec.memory_bytes,
            memory_reservation: spec.memory_reservation_bytes,
            memory_swap: spec.memory_swap_bytes,
            memory_swappiness: spec.memory_swappiness,
            ulimits: (!spec.ulimits.is_empty()).then(|| {
                spec.ulimits
                    .iter()
                    .map(|u| ResourcesUlimits {
                        name: Some(u.name.clone()),
                        soft: Some(u.soft),
                        hard: Some(u.hard),
                    })
                    .collect()
            }),
            cap_add: non_empty(&spec.cap_add),
            cap_drop: non_empty(&spec.cap_drop),
            init: spec.init.then_some(true),
            tmpfs: map(&spec.tmpfs),
            shm_size: spec.shm_size_bytes,
            devices: (!spec.devices.is_empty()).then(|| {
                spec.devices
                    .iter()
                    .map(|d| DeviceMapping {
                        path_on_host: Some(d.host_path.clone()),
                        path_in_container: Some(d.container_path.clone()),
                        cgroup_permissions: Some(d.permissions.clone()),
                    })
                    .collect()
            }),
            binds: non_empty(&spec.binds),
            volumes_from: non_empty(&spec.volumes_from),
            links: non_empty(&spec.links),
            extra_hosts: non_empty(&spec.extra_hosts),
            dns: non_empty(&spec.dns),
            dns_search: non_empty(&spec.dns_search),
            readonly_rootfs: spec.readonly_rootfs.then_some(true),
            privileged: spec.privileged.then_some(true),
            security_opt: non_empty(&spec.security_opt),
            sysctls: map(&spec.sysctls),
            log_config: spec
                .log_driver
                .as_ref()
                .map(|(driver, opts)| HostConfigLogConfig {
                    typ: Some(driver.clone()),
                    config: map(opts),
                }),
            pid_mode: spec.pid_mode.map(|m| m.as_str().to_string()),
            ipc_mode: spec.ipc_mode.map(|m| m.as_str().to_string()),
            cgroup_parent: spec.cgroup_parent.clone(),
            ..Default::default()
        };
        let networking_config =
            (spec.ipv4_address.is_some() || spec.mac_address.is_some()).then(|| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network_mode.clone(),
                    EndpointSettings {
                        ipam_config: spec.ipv4_address.as_ref().map(|ip| EndpointIpamConfig {
                            ipv4_address: Some(ip.clone()),
                            ..Default::default()
                        }),
                        mac_address: spec.mac_address.clone(),
                        ..Default::default()
                    },
                )])),
            });
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.command.clone(),
            env: non_empty(&spec.env),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            hostname: spec.hostname.clone(),
            labels: map(&spec.labels),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            network_disabled: spec.network_disabled.then_some(true),
            open_stdin: spec.open_stdin.then_some(true),
            tty: spec.tty.then_some(true),
            stop_timeout: spec.stop_timeout_s,
            healthcheck: spec.health_check.as_ref().map(|h| HealthConfig {
                test: Some(h.test.clone()),
                interval: Some(secs_to_ns(h.interval_s)),
                timeout: Some(secs_to_ns(h.timeout_s)),
                retries: Some(i64::from(h.retries)),
                start_period: Some(secs_to_ns(h.start_period_s)),
                start_interval: None,
            }),
            host_config: Some(host_config),
            networking_config,
            ..Default::default()
        }
    }
}

fn parse_port_key(key: &str) -> Option<(u16, String)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Some((port.parse().ok()?, proto.to_string()))
}

/// Splits `2024-05-01T13:45:10.123456789Z message` (Docker's `timestamps=1` prefix) into the
/// time in nanoseconds since the epoch and the rest.
fn split_timestamp(b: &[u8]) -> Option<(i64, &[u8])> {
    let space = b.iter().position(|c| *c == b' ')?;
    let ts = std::str::from_utf8(&b[..space]).ok()?;
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = i64::try_from(t.unix_timestamp_nanos()).ok()?;
    Some((ns, &b[space + 1..]))
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn version(&self) -> Result<RuntimeVersion, RuntimeError> {
        let v = self.docker.version().await.map_err(other)?;
        let info = self.docker.info().await.map_err(other)?;
        Ok(RuntimeVersion {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            ncpu: info.ncpu.and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
            mem_total_bytes: info
                .mem_total
                .and_then(|m| u64::try_from(m).ok())
                .unwrap_or(0),
            architecture: info.architecture.unwrap_or_default(),
            cgroup_driver: info
                .cgroup_driver
                .map(|d| d.to_string())
                .unwrap_or_default(),
            cgroup_version: info
                .cgroup_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
        })
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                digest: i.repo_digests.and_then(|d| d.into_iter().next()),
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(other(e)),
        }
    }

    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), RuntimeError> {
        let (name, tag) = split_tag(image);
        let options = CreateImageOptions {
            from_image: Some(name.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let creds = auth.map(|a| DockerCredentials {
            username: (!a.username.is_empty()).then(|| a.username.clone()),
            password: (!a.password.is_empty()).then(|| a.password.clone()),
            identitytoken: a.identity_token.clone(),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        let mut stream = self.docker.create_image(Some(options), None, creds);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(RuntimeError::Pull {
                    image: image.to_string(),
                    message: message_of(&e),
                });
            }
        }
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_image(image, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(other(e)),
        }
    }

    async fn image_in_use(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(!self.containers_where("ancestor", image).await?.is_empty())
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), RuntimeError> {
        let to_map = |m: &BTreeMap<String, String>| -> Option<HashMap<String, String>> {
            (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(spec.name.clone()),
                driver: spec.driver.clone(),
                driver_opts: to_map(&spec.driver_opts),
                labels: to_map(&spec.labels),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                RuntimeError::Create(format!("volume {}: {}", spec.name, message_of(&e)))
            })?;
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(other(e)),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        if let Some(mac) = &spec.mac_address {
            return self.create_with_mac(spec, mac).await;
        }
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match self
            .docker
            .create_container(Some(options), Self::create_body(spec))
            .await
        {
            Ok(r) => Ok(r.id),
            Err(e) if status_of(&e) == Some(409) => Err(RuntimeError::Conflict(message_of(&e))),
            Err(e) => Err(RuntimeError::Create(message_of(&e))),
        }
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) => Err(RuntimeError::Start(message_of(&e))),
        }
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        match self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(t),
                    signal: None,
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            // 304: already stopped; 404: gone.
            Err(e) if matches!(status_of(&e), Some(304) | Some(404)) => Ok(()),
            Err(e) => Err(RuntimeError::Stop(message_of(&e))),
        }
    }

    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        self.docker
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: signal.as_str().to_string(),
                }),
            )
            .await
            .map_err(other)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let c = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(other)?;
        let state = c.state.unwrap_or_default();
        let health = match state.health.as_ref().and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            _ => Health::None,
        };
        let mut bindings = Vec::new();
        let ip_address = c.network_settings.as_ref().and_then(|n| {
            n.networks
                .iter()
                .flatten()
                .filter_map(|(_, e)| e.ip_address.clone())
                .find(|a| !a.is_empty())
        });
        if let Some(ports) = c.network_settings.and_then(|n| n.ports) {
            for (key, list) in ports {
                let Some((container_port, protocol)) = parse_port_key(&key) else {
                    continue;
                };
                for b in list.unwrap_or_default() {
                    if let Some(host_port) = b.host_port.and_then(|p| p.parse().ok()) {
                        bindings.push(Binding {
                            host_ip: b.host_ip.unwrap_or_default(),
                            host_port,
                            container_port,
                            protocol: protocol.clone(),
                        });
                    }
                }
            }
        }
        bindings.sort_by(|a, b| {
            (a.container_port, &a.protocol, &a.host_ip).cmp(&(
                b.container_port,
                &b.protocol,
                &b.host_ip,
            ))
        });
        let nonzero_time = |t: Option<String>| t.filter(|t| !t.starts_with("0001-"));
        Ok(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            running: state.running.unwrap_or(false),
            created_only: state.status == Some(ContainerStateStatusEnum::CREATED),
            exit_code: state.exit_code.unwrap_or(0),
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.filter(|e| !e.is_empty()),
            started_at: nonzero_time(state.started_at),
            finished_at: nonzero_time(state.finished_at),
            health,
            bindings,
            image_id: c.image,
            labels: c
                .config
                .and_then(|c| c.labels)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ip_address,
            created_at: c.created.map(|t| t.to_string()),
        })
    }

    async fn follow_output(&self, id: &str, since_s: i64) -> Result<OutputStreamOf, RuntimeError> {
        // Fail now (not in the stream) when the container does not exist.
        self.docker
            .inspect_container(id, None)
            .await
            .map_err(other)?;
        let options = bollard::query_parameters::LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since: i32::try_from(since_s).unwrap_or(0),
            until: 0,
            timestamps: true,
            tail: "all".to_string(),
        };
        let stream = self.docker.logs(id, Some(options)).map(|item| {
            let (stream, bytes) = match item.map_err(other)? {
                bollard::container::LogOutput::StdErr { message } => {
                    (OutputStream::Stderr, message)
                }
                bollard::container::LogOutput::StdOut { message }
                | bollard::container::LogOutput::Console { message }
                | bollard::container::LogOutput::StdIn { message } => {
                    (OutputStream::Stdout, message)
                }
            };
            let (ns, rest) = split_timestamp(&bytes).ok_or_else(|| {
                RuntimeError::Other("a log line without the engine's timestamp".into())
            })?;
            Ok(OutputLine {
                ns,
                stream,
                bytes: rest.to_vec(),
            })
        });
        Ok(stream.boxed())
    }

    async fn wait(&self, id: &str) -> Result<i64, RuntimeError> {
        let mut s = self.docker.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".to_string(),
            }),
        );
        match s.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(other(e)),
            None => Err(RuntimeError::Other(format!("wait {id}: no answer"))),
        }
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let list = self
            .containers_where("label", &format!("{label}={value}"))
            .await?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                image: c.image.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    v: true,
                    force: true,
                    link: false,
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(other(e)),
        }
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        self.docker
            .rename_container(
                id,
                RenameContainerOptions {
                    name: name.to_string(),
                },
            )
            .await
            .map_err(other)
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        let mut s = self.docker.stats(
            id,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        match s.next().await {
            Some(Ok(r)) => {
                let cpu_total_ns = r
                    .cpu_stats
                    .and_then(|c| c.cpu_usage)
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0);
                let mem = r.memory_stats.unwrap_or_default();
                let cache = mem
                    .stats
                    .as_ref()
                    .and_then(|s| {
                        s.get("total_inactive_file")
                            .or_else(|| s.get("inactive_file"))
                    })
                    .copied()
                    .unwrap_or(0);
                Ok(ContainerStats {
                    cpu_total_ns,
                    memory_bytes: mem.usage.unwrap_or(0).saturating_sub(cache),
                })
            }
            Some(Err(e)) => Err(other(e)),
            None => Err(RuntimeError::Other(format!("stats {id}: no answer"))),
        }
    }

    async fn stats_document(&self, id: &str) -> Result<serde_json::Value, RuntimeError> {
        let mut s = self.docker.stats(
            id,
            Some(StatsOptions {
                stream: false,
                one_shot: false,
            }),
        );
        match s.next().await {
            Some(Ok(r)) => serde_json::to_value(r).map_err(|e| RuntimeError::Other(e.to_string())),
            Some(Err(e)) => Err(other(e)),
            None => Err(RuntimeError::Other(format!("stats {id}: no answer"))),
        }
    }

    async fn inspect_network(&self, name: &str) -> Result<Option<NetworkInfo>, RuntimeError> {
        match self.docker.inspect_network(name, None).await {
            Ok(n) => Ok(Some(network_info(n))),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(other(e)),
        }
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), RuntimeError> {
        let req = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(spec.subnet.clone()),
                    gateway: Some(spec.gateway.clone()),
                    ..Default::default()
                }]),
                options: None,
            }),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        // Before API 1.44 names are unique only when asked (`CheckDuplicate`), which bollard's
        // typed request no longer has: without it two agents racing would make two networks.
        let mut body = serde_json::to_value(req).map_err(|e| RuntimeError::Other(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.insert("CheckDuplicate".into(), serde_json::Value::Bool(true));
        }
        let (status, _, message) = self.post_json("/networks/create", &body).await?;
        match status {
            200 | 201 => Ok(()),
            409 => Err(RuntimeError::Conflict(message)),
            _ => Err(RuntimeError::Other(message)),
        }
    }

    async fn exec_create(&self, id: &str, spec: &ExecSpec) -> Result<String, RuntimeError> {
        let options = bollard::exec::CreateExecOptions::<String> {
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty),
            cmd: Some(spec.argv.clone()),
            ..Default::default()
        };
        let created = self.docker.create_exec(id, options).await.map_err(other)?;
        Ok(created.id)
    }

    async fn exec_start(&self, exec_id: &str) -> Result<ExecStreams, RuntimeError> {
        // The exec's own `Tty` decides the stream's framing; the start repeats it, as Docker's
        // CLI does.
        let tty = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(other)?
            .process_config
            .and_then(|p| p.tty)
            .unwrap_or(false);
        let started = self
            .docker
            .start_exec(
                exec_id,
                Some(bollard::exec::StartExecOptions {
                    detach: false,
                    tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(other)?;
        let bollard::exec::StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Other(format!(
                "exec {exec_id} started detached"
            )));
        };
        let output = output.map(|item| {
            Ok(match item.map_err(other)? {
                bollard::container::LogOutput::StdErr { message } => {
                    (OutputStream::Stderr, message.to_vec())
                }
                bollard::container::LogOutput::StdOut { message }
                | bollard::container::LogOutput::Console { message }
                | bollard::container::LogOutput::StdIn { message } => {
                    (OutputStream::Stdout, message.to_vec())
                }
            })
        });
        Ok(ExecStreams {
            output: output.boxed(),
            input,
        })
    }

    async fn exec_resize(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        self.docker
            .resize_exec(
                exec_id,
                bollard::exec::ResizeExecOptions {
                    height: rows,
                    width: cols,
                },
            )
            .await
            .map_err(other)
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecState, RuntimeError> {
        let e = self.docker.inspect_exec(exec_id).await.map_err(other)?;
        let running = e.running.unwrap_or(false);
        Ok(ExecState {
            running,
            exit_code: if running { None } else { e.exit_code },
        })
    }

    async fn import_image(
        &self,
        rootfs_tar: Vec<u8>,
        repo: &str,
        tag: &str,
        changes: &[String],
    ) -> Result<(), RuntimeError> {
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes: changes.to_vec(),
            ..Default::default()
        };
        let body = bollard::body_full(bytes::Bytes::from(rootfs_tar));
        let mut stream = self.docker.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(RuntimeError::Other(format!(
                    "import {repo}:{tag}: {}",
                    message_of(&e)
                )));
            }
        }
        Ok(())
    }
}

fn network_info(n: bollard::models::NetworkInspect) -> NetworkInfo {
    let configs = n.ipam.and_then(|i| i.config).unwrap_or_default();
    NetworkInfo {
        id: n.id.unwrap_or_default(),
        driver: n.driver.unwrap_or_default(),
        subnets: configs.iter().filter_map(|c| c.subnet.clone()).collect(),
        gateways: configs.iter().filter_map(|c| c.gateway.clone()).collect(),
        labels: n.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// Splits `name[:tag]` (a registry host may carry a port; a digest reference is kept whole).
pub fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_docker() {
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("flotilla/busybox:1"), ("flotilla/busybox", "1"));
        assert_eq!(
            split_tag("localhost:5000/x/y:2"),
            ("localhost:5000/x/y", "2")
        );
        assert_eq!(
            split_tag("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
    }
}
