//! What the agent registers: resources, attributes, version info, identity document.
//!
//! What this is: [`registration_request`], a pure function from the configuration, the saved
//! identity and the engine's facts to the `RegisterContainerInstance` request, the way the ECS
//! agent fills it (CPU 1024 units per core, MEMORY in MiB less the reservation, the reserved
//! PORTS and PORTS_UDP, `ecs.*` attributes and Docker capability attributes).
//!
//! What this is not: it reads nothing from the host itself (the engine's `version()` tells the
//! CPU count and memory) and sends nothing.

use crate::config::{AgentConfig, ECS_RESERVED_PORTS};
use crate::runtime::RuntimeVersion;
use crate::state::InstanceIdentity;
use flotilla_model::shapes::{Attribute, RegisterContainerInstanceRequest, Resource, VersionInfo};

/// The lowest Docker remote API capability ECS advertises.
pub const MIN_DOCKER_API_MINOR: u32 = 17;
/// The highest Docker remote API capability this agent advertises.
pub const MAX_DOCKER_API_MINOR: u32 = 44;

/// The ECS name of an architecture (`x86_64`, `arm64`).
pub fn ecs_architecture(engine_arch: &str) -> &str {
    match engine_arch {
        "aarch64" | "arm64" => "arm64",
        "x86_64" | "amd64" | "" => "x86_64",
        other => other,
    }
}

fn attr(name: &str, value: Option<&str>) -> Attribute {
    Attribute {
        name: name.to_string(),
        value: value.map(str::to_string),
        ..Default::default()
    }
}

fn int_resource(name: &str, v: i64) -> Resource {
    Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        integer_value: i32::try_from(v).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

fn set_resource(name: &str, ports: &[u16]) -> Resource {
    let mut seen: Vec<u16> = Vec::new();
    for p in ports {
        if !seen.contains(p) {
            seen.push(*p);
        }
    }
    Resource {
        name: Some(name.into()),
        r#type: Some("STRINGSET".into()),
        string_set_value: Some(seen.iter().map(u16::to_string).collect()),
        ..Default::default()
    }
}

/// The minor versions of the Docker remote API capabilities to advertise, up to what the
/// engine speaks (`api_version` like `1.41`).
pub fn docker_api_minors(api_version: &str) -> Vec<u32> {
    let max = api_version
        .split_once('.')
        .and_then(|(major, minor)| (major == "1").then(|| minor.parse::<u32>().ok()).flatten())
        .unwrap_or(MIN_DOCKER_API_MINOR)
        .min(MAX_DOCKER_API_MINOR);
    (MIN_DOCKER_API_MINOR..=max).collect()
}

/// The identity document: `instanceId`, `availabilityZone`, `instanceType`, `region`.
pub fn identity_document(cfg: &AgentConfig, id: &InstanceIdentity) -> String {
    serde_json::json!({
        "instanceId": id.ec2_instance_id,
        "availabilityZone": cfg.availability_zone,
        "instanceType": cfg.instance_type,
        "region": cfg.region,
    })
    .to_string()
}

/// Builds the `RegisterContainerInstance` request.
pub fn registration_request(
    cfg: &AgentConfig,
    id: &InstanceIdentity,
    engine: &RuntimeVersion,
) -> RegisterContainerInstanceRequest {
    let memory_mib = i64::try_from(engine.mem_total_bytes / (1024 * 1024)).unwrap_or(i64::MAX);
    let memory_mib =
        (memory_mib - i64::try_from(cfg.reserved_memory_mib).unwrap_or(i64::MAX)).max(0);
    let mut ports: Vec<u16> = ECS_RESERVED_PORTS.to_vec();
    ports.extend(&cfg.reserved_ports);
    let mut attributes = vec![
        attr("ecs.os-type", Some("linux")),
        attr(
            "ecs.cpu-architecture",
            Some(ecs_architecture(&engine.architecture)),
        ),
        attr("ecs.availability-zone", Some(&cfg.availability_zone)),
        attr("ecs.instance-type", Some(&cfg.instance_type)),
        attr("ecs.capability.container-health-check", None),
        attr("ecs.capability.container-ordering", None),
        attr(
            "com.amazonaws.ecs.capability.logging-driver.json-file",
            None,
        ),
        attr("com.amazonaws.ecs.capability.logging-driver.none", None),
        attr("com.amazonaws.ecs.capability.privileged-container", None),
        attr("ecs.capability.docker-plugin.local", None),
        attr("ecs.capability.task-eni", None),
        attr("ecs.capability.task-cpu-mem-limit", None),
        attr(
            "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager",
            None,
        ),
    ];
    for minor in docker_api_minors(&engine.api_version) {
        attributes.push(attr(
            &format!("com.amazonaws.ecs.capability.docker-remote-api.1.{minor}"),
            None,
        ));
    }
    for (k, v) in &cfg.attributes {
        attributes.push(attr(k, Some(v)));
    }
    RegisterContainerInstanceRequest {
        cluster: Some(cfg.registration_cluster().to_string()),
        instance_identity_document: Some(identity_document(cfg, id)),
        total_resources: Some(vec![
            int_resource("CPU", i64::from(engine.ncpu) * 1024),
            int_resource("MEMORY", memory_mib),
            set_resource("PORTS", &ports),
            set_resource("PORTS_UDP", &cfg.reserved_ports_udp),
        ]),
        version_info: Some(VersionInfo {
            agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            agent_hash: None,
            docker_version: Some(engine.version.clone()),
        }),
        container_instance_arn: id.container_instance_arn.clone(),
        attributes: Some(attributes),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    fn identity() -> InstanceIdentity {
        InstanceIdentity {
            ec2_instance_id: "i-0123456789abcdef0".into(),
            container_instance_arn: Some("arn:ci".into()),
        }
    }

    fn engine() -> RuntimeVersion {
        RuntimeVersion {
            version: "20.10.24".into(),
            api_version: "1.41".into(),
            ncpu: 2,
            mem_total_bytes: 4096 * 1024 * 1024,
            architecture: "aarch64".into(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: "1".into(),
        }
    }

    #[test]
    fn registers_like_the_ecs_agent() {
        let mut cfg = AgentConfig::new("c", "http://x", "/tmp/x", Credentials::default());
        cfg.reserved_memory_mib = 256;
        cfg.reserved_ports = vec![8000, 22];
        cfg.attributes.insert("stack".into(), "prod".into());
        let r = registration_request(&cfg, &identity(), &engine());
        let res = r.total_resources.unwrap();
        assert_eq!(res[0].integer_value, 2048);
        assert_eq!(res[1].integer_value, 4096 - 256);
        assert_eq!(
            res[2].string_set_value.clone().unwrap(),
            vec!["22", "2375", "2376", "51678", "51679", "8000"]
        );
        assert_eq!(
            res[3].string_set_value.clone().unwrap(),
            Vec::<String>::new()
        );
        let attrs = r.attributes.unwrap();
        let get = |n: &str| attrs.iter().find(|a| a.name == n).map(|a| a.value.clone());
        assert_eq!(get("ecs.cpu-architecture"), Some(Some("arm64".into())));
        assert_eq!(get("stack"), Some(Some("prod".into())));
        assert!(get("com.amazonaws.ecs.capability.docker-remote-api.1.17").is_some());
        assert!(get("com.amazonaws.ecs.capability.docker-remote-api.1.41").is_some());
        assert!(get("com.amazonaws.ecs.capability.docker-remote-api.1.42").is_none());
        assert_eq!(r.container_instance_arn.as_deref(), Some("arn:ci"));
        let doc: serde_json::Value =
            serde_json::from_str(&r.instance_identity_document.unwrap()).unwrap();
        assert_eq!(doc["instanceId"], "i-0123456789abcdef0");
        assert_eq!(doc["region"], "us-east-1");
        assert_eq!(
            r.version_info.unwrap().docker_version.as_deref(),
            Some("20.10.24")
        );
    }

    #[test]
    fn a_managed_pool_host_reports_its_zone() {
        let mut cfg = AgentConfig::managed("http://a,http://b", "/tmp/x", Credentials::default());
        cfg.availability_zone = "us-east-1c".into();
        let r = registration_request(&cfg, &identity(), &engine());
        assert_eq!(r.cluster.as_deref(), Some(flotilla_protocol::MANAGED_POOL));
        let zone = r
            .attributes
            .unwrap()
            .into_iter()
            .find(|a| a.name == "ecs.availability-zone")
            .and_then(|a| a.value);
        assert_eq!(zone.as_deref(), Some("us-east-1c"));
        let doc: serde_json::Value =
            serde_json::from_str(&r.instance_identity_document.unwrap()).unwrap();
        assert_eq!(doc["availabilityZone"], "us-east-1c");
        assert_eq!(cfg.endpoints().unwrap().urls(), ["http://a", "http://b"]);
    }

    #[test]
    fn api_capabilities_stop_at_the_engine_version() {
        assert_eq!(docker_api_minors("1.41").last(), Some(&41));
        assert_eq!(docker_api_minors("1.53").last(), Some(&44));
        assert_eq!(docker_api_minors("garbage"), vec![17]);
    }
}
