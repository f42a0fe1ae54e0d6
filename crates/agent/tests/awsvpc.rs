//! awsvpc tasks, task-level limits and Spot stops against the real Docker engine.
//!
//! Needs Docker at /var/run/docker.sock and `flotilla/busybox:latest` (`scripts/images`). Each
//! test uses its own instance id, Docker network and /24 subnet, and removes its containers and
//! network when it ends, also when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: any failure must fail the test loudly.

mod common;

use common::{container, ctr, docker, docker_inspect, http_get, stop, task, Harness, IMAGE};
use flotilla_model::shapes::{
    ContainerDefinition, HealthCheck, HealthStatus, NetworkMode, PortMapping, TaskStopCode,
};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_protocol::{labels, TaskAssignment, TaskNetwork, PAUSE_CONTAINER_NAME};
use std::time::{Duration, Instant};

/// The common harness with a Docker network and /24 subnet of its own.
struct VpcHarness {
    harness: Harness,
    /// The third octet of this test's subnet, 10.231.N.0/24.
    net: u8,
    /// The Docker network awsvpc tasks join; removed when the harness is dropped.
    network_name: String,
}

impl std::ops::Deref for VpcHarness {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.harness
    }
}

impl VpcHarness {
    async fn new(name: &str, net: u8) -> Self {
        let network_name = format!("flotilla-test-{}-{name}", std::process::id());
        VpcHarness {
            harness: Harness::new("vpc", name)
                .await
                .removing_network(&network_name),
            net,
            network_name,
        }
    }

    fn network(&self, host: u8) -> TaskNetwork {
        let n = self.net;
        TaskNetwork {
            attachment_id: format!("att-{host}"),
            network_interface_id: format!("eni-{host:017x}"),
            private_ipv4_address: format!("10.231.{n}.{host}"),
            mac_address: format!("0a:58:0a:e7:{n:02x}:{host:02x}"),
            subnet_cidr: format!("10.231.{n}.0/24"),
            gateway: format!("10.231.{n}.1"),
            network_name: self.network_name.clone(),
            subnet_id: "subnet-test".into(),
            private_dns_name: format!("ip-10-231-{n}-{host}.ec2.internal"),
        }
    }
}

fn awsvpc(id: &str, defs: Vec<ContainerDefinition>, network: TaskNetwork) -> TaskAssignment {
    let mut a = task(id, defs);
    a.network_mode = NetworkMode::Awsvpc;
    a.network = Some(network);
    a
}

fn pause_of(instance: &str, task_arn: &str) -> Option<String> {
    let out = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={}={instance}", labels::INSTANCE),
        "--filter",
        &format!("label={}={task_arn}", labels::TASK_ARN),
        "--filter",
        &format!("label={}={PAUSE_CONTAINER_NAME}", labels::CONTAINER_NAME),
    ]);
    (!out.is_empty()).then_some(out)
}

fn web_and_client() -> Vec<ContainerDefinition> {
    let web = ContainerDefinition {
        port_mappings: Some(vec![PortMapping {
            container_port: Some(80),
            host_port: Some(80),
            ..Default::default()
        }]),
        ..container("web", &["httpd", "-f", "-p", "80", "-h", "/www"])
    };
    let client = ContainerDefinition {
        // Healthy once it fetched the page from its task mate over localhost.
        health_check: Some(HealthCheck {
            command: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
            interval: Some(1),
            timeout: Some(1),
            retries: Some(1),
            start_period: None,
        }),
        ..container(
            "client",
            &[
                "sh",
                "-c",
                "while true; do wget -q -O /tmp/page http://localhost:80/ && grep -q flotilla /tmp/page && touch /tmp/ok; sleep 0.3; done",
            ],
        )
    };
    vec![web, client]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awsvpc_tasks_share_localhost_answer_on_their_address_and_report_each_step() {
    let h = VpcHarness::new("vpc", 11).await;
    let (engine, mut reports) = h.engine().await;
    let a = awsvpc("vpc-a", web_and_client(), h.network(7));
    let b = awsvpc("vpc-b", web_and_client(), h.network(8));
    engine.assign(vec![a.clone(), b.clone()], false);
    for t in [&a, &b] {
        let r = reports
            .until(&t.task_arn, 60, |r| {
                r.last_status == TaskStatus::Running
                    && ctr(r, "client").health_status == Some(HealthStatus::Healthy)
            })
            .await;
        for c in &r.containers {
            assert!(c.network_bindings.is_empty(), "awsvpc: {c:?}");
        }
        // The task's own address answers, port 80 in both tasks.
        let ip = t.network.as_ref().unwrap().private_ipv4_address.clone();
        let answer = tokio::task::spawn_blocking(move || http_get(&ip, 80))
            .await
            .unwrap();
        assert!(answer.contains("hello from flotilla"), "{answer}");
    }
    let pause = pause_of(&h.instance, &a.task_arn).expect("a pause container");
    let net = a.network.clone().unwrap();
    let inspect: serde_json::Value = serde_json::from_str(&docker(&["inspect", &pause])).unwrap();
    let inspect = &inspect[0];
    let endpoint = &inspect["NetworkSettings"]["Networks"][net.network_name.as_str()];
    assert_eq!(endpoint["IPAddress"], net.private_ipv4_address.as_str());
    assert_eq!(endpoint["MacAddress"], net.mac_address.as_str());
    assert_eq!(inspect["Config"]["Hostname"], "ip-10-231-11-7");
    assert_eq!(inspect["Config"]["Image"], "flotilla/pause:1");
    assert_eq!(inspect["Config"]["Cmd"][0], "/pause");
    let web_id = ctr(reports.of(&a.task_arn).last().unwrap(), "web")
        .runtime_id
        .clone()
        .unwrap();
    assert_eq!(
        docker_inspect(&web_id, "{{.HostConfig.NetworkMode}}"),
        format!("container:{pause}")
    );

    engine.assign(vec![stop(a.clone())], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stop_code, Some(TaskStopCode::UserInitiated));
    assert_eq!(
        reports.statuses(&a.task_arn),
        vec![
            TaskStatus::Provisioning,
            TaskStatus::Pending,
            TaskStatus::Activating,
            TaskStatus::Running,
            TaskStatus::Stopping,
            TaskStatus::Deprovisioning,
            TaskStatus::Stopped
        ]
    );
    // STOPPING is reported once SIGTERM is delivered, before the containers have exited.
    let first_stopping = reports
        .of(&a.task_arn)
        .into_iter()
        .find(|r| r.last_status == TaskStatus::Stopping)
        .unwrap()
        .clone();
    assert!(
        first_stopping
            .containers
            .iter()
            .any(|c| c.last_status == ContainerStatus::Running),
        "{first_stopping:#?}"
    );
    assert!(
        pause_of(&h.instance, &a.task_arn).is_none(),
        "STOPPED only once the pause container is gone"
    );
    // The other task is untouched.
    let ip = b.network.as_ref().unwrap().private_ipv4_address.clone();
    let answer = tokio::task::spawn_blocking(move || http_get(&ip, 80))
        .await
        .unwrap();
    assert!(answer.contains("hello from flotilla"), "{answer}");
    engine.assign(vec![stop(b.clone())], false);
    reports
        .until(&b.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(reports.statuses(&b.task_arn), reports.statuses(&a.task_arn));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_essential_exit_tears_an_awsvpc_task_down_in_order() {
    let h = VpcHarness::new("vpcexit", 12).await;
    let (engine, mut reports) = h.engine().await;
    let mut side = container("side", &["sleep", "300"]);
    side.essential = Some(false);
    let a = awsvpc(
        "vpc-exit",
        vec![container("main", &["sh", "-c", "sleep 1; exit 3"]), side],
        h.network(9),
    );
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(
        stopped.stop_code,
        Some(TaskStopCode::EssentialContainerExited)
    );
    assert_eq!(ctr(&stopped, "main").exit_code, Some(3));
    assert_eq!(ctr(&stopped, "side").exit_code, Some(143));
    let s = reports.statuses(&a.task_arn);
    assert_eq!(
        &s[s.len() - 3..],
        &[
            TaskStatus::Stopping,
            TaskStatus::Deprovisioning,
            TaskStatus::Stopped
        ]
    );
    assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
    assert!(pause_of(&h.instance, &a.task_arn).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_with_another_subnet_fails_the_task_to_start() {
    let h = VpcHarness::new("vpcsubnet", 13).await;
    docker(&[
        "network",
        "create",
        "--subnet",
        "10.231.14.0/24",
        &h.network_name,
    ]);
    let (engine, mut reports) = h.engine().await;
    let a = awsvpc(
        "vpc-subnet",
        vec![container("app", &["sleep", "300"])],
        h.network(5),
    );
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stop_code, Some(TaskStopCode::TaskFailedToStart));
    let reason = stopped.stopped_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("10.231.14.0/24") && reason.contains("10.231.13.0/24"),
        "{reason}"
    );
    assert_eq!(
        reports.statuses(&a.task_arn),
        vec![
            TaskStatus::Provisioning,
            TaskStatus::Stopping,
            TaskStatus::Deprovisioning,
            TaskStatus::Stopped
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_adopts_an_awsvpc_task_and_tears_it_down() {
    let h = VpcHarness::new("vpcrestart", 15).await;
    let (engine, mut reports) = h.engine().await;
    let a = awsvpc("vpc-rst", web_and_client(), h.network(20));
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    let pause = pause_of(&h.instance, &a.task_arn).unwrap();
    let started = docker_inspect(&pause, "{{.State.StartedAt}}");
    drop(engine);
    drop(reports);

    let (engine, mut reports) = h.engine().await;
    let r = reports
        .until(&a.task_arn, 20, |r| r.last_status == TaskStatus::Running)
        .await;
    assert!(r
        .containers
        .iter()
        .all(|c| c.last_status == ContainerStatus::Running));
    assert_eq!(
        pause_of(&h.instance, &a.task_arn).as_deref(),
        Some(pause.as_str())
    );
    assert_eq!(
        docker_inspect(&pause, "{{.State.StartedAt}}"),
        started,
        "the pause container is adopted, not restarted"
    );
    let ip = a.network.as_ref().unwrap().private_ipv4_address.clone();
    let answer = tokio::task::spawn_blocking(move || http_get(&ip, 80))
        .await
        .unwrap();
    assert!(answer.contains("hello from flotilla"), "{answer}");
    engine.assign(vec![stop(a.clone())], false);
    reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(
        reports.statuses(&a.task_arn),
        vec![
            TaskStatus::Running,
            TaskStatus::Stopping,
            TaskStatus::Deprovisioning,
            TaskStatus::Stopped
        ]
    );
    assert!(pause_of(&h.instance, &a.task_arn).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_begun_before_a_crash_is_finished_after_it() {
    let h = VpcHarness::new("vpcstopcrash", 16).await;
    let (engine, mut reports) = h.engine().await;
    // No init: `sleep` as PID 1 ignores SIGTERM, so the stop lasts the whole stopTimeout.
    let mut slow = container("slow", &["sleep", "300"]);
    slow.linux_parameters = None;
    slow.stop_timeout = Some(3);
    let a = awsvpc("vpc-stc", vec![slow], h.network(30));
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    engine.assign(vec![stop(a.clone())], false);
    reports
        .until(&a.task_arn, 10, |r| r.last_status == TaskStatus::Stopping)
        .await;
    drop(engine);
    drop(reports);
    let (_engine, mut reports) = h.engine().await;
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stopped_reason.as_deref(), Some("stopped by test"));
    assert_eq!(ctr(&stopped, "slow").exit_code, Some(137));
    assert!(pause_of(&h.instance, &a.task_arn).is_none());
    let s = reports.statuses(&a.task_arn);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_memory_is_oom_killed_by_the_task_limit() {
    let h = VpcHarness::new("taskoom", 17).await;
    let (engine, mut reports) = h.engine().await;
    let hog = ContainerDefinition {
        name: Some("hog".into()),
        image: Some(IMAGE.into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            // A string that doubles until the kernel kills the shell: the OOM comes in well
            // under a second. (A `head -c 600m /dev/zero | tail` pipe can make the kernel
            // reclaim for tens of seconds under a parent cgroup's limit before it kills.)
            "sleep 1; a=x; while true; do a=$a$a; done".into(),
        ]),
        ..Default::default()
    };
    let mut side = container("side", &["sleep", "300"]);
    side.essential = Some(false);
    for (id, mode, network) in [
        ("oom-bridge", NetworkMode::Bridge, None),
        ("oom-vpc", NetworkMode::Awsvpc, Some(h.network(40))),
    ] {
        let mut a = task(id, vec![hog.clone(), side.clone()]);
        a.network_mode = mode;
        a.network = network;
        a.memory = Some(128);
        a.cpu = Some(512);
        engine.assign(vec![a.clone()], false);
        let running = reports
            .until(&a.task_arn, 30, |r| {
                ctr(r, "side").last_status == ContainerStatus::Running
            })
            .await;
        let side_id = ctr(&running, "side").runtime_id.clone().unwrap();
        assert_eq!(
            docker_inspect(&side_id, "{{.HostConfig.CgroupParent}}"),
            format!("/flotilla/{id}")
        );
        // The limit is on the task, not on the containers.
        assert_eq!(docker_inspect(&side_id, "{{.HostConfig.Memory}}"), "0");
        let task_dir = std::path::Path::new("/sys/fs/cgroup/memory/flotilla").join(id);
        if task_dir.exists() {
            assert_eq!(
                std::fs::read_to_string(task_dir.join("memory.limit_in_bytes"))
                    .unwrap()
                    .trim(),
                (128u64 << 20).to_string()
            );
            assert_eq!(
                std::fs::read_to_string(
                    std::path::Path::new("/sys/fs/cgroup/cpu/flotilla")
                        .join(id)
                        .join("cpu.cfs_quota_us")
                )
                .unwrap()
                .trim(),
                "50000"
            );
        }
        let stopped = reports
            .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
            .await;
        let hog_report = ctr(&stopped, "hog");
        let hog_id = hog_report.runtime_id.clone().unwrap();
        eprintln!(
            "{id}: Docker State.OOMKilled = {}",
            docker_inspect(&hog_id, "{{.State.OOMKilled}}")
        );
        assert_eq!(hog_report.exit_code, Some(137), "{stopped:#?}");
        assert_eq!(
            hog_report.reason.as_deref(),
            Some(flotilla_agent::lifecycle::OOM_REASON)
        );
        assert_eq!(
            stopped.stop_code,
            Some(TaskStopCode::EssentialContainerExited)
        );
        assert!(
            !task_dir.exists(),
            "the task cgroup is removed once the task stopped"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_interruption_kills_after_the_grace_period() {
    let h = VpcHarness::new("spot", 18).await;
    let (engine, mut reports) = h.engine().await;
    // Ignores SIGTERM (PID 1 without a handler) although its stopTimeout is long.
    let mut stubborn = container("stubborn", &["sleep", "300"]);
    stubborn.linux_parameters = None;
    stubborn.stop_timeout = Some(120);
    let mut polite = container("polite", &["sleep", "300"]);
    polite.stop_timeout = Some(120);
    // `polite` depends on `stubborn`: without Spot it would wait for it.
    polite.depends_on = Some(vec![flotilla_model::shapes::ContainerDependency {
        container_name: "stubborn".into(),
        condition: flotilla_model::shapes::ContainerCondition::Start,
    }]);
    let a = task("spot1", vec![stubborn, polite]);
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    let mut s = stop(a.clone());
    s.stop_code = Some(TaskStopCode::SpotInterruption);
    s.stop_reason = Some("Your Spot Task was interrupted.".into());
    s.stop_grace_seconds = Some(2);
    let asked = Instant::now();
    engine.assign(vec![s], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(ctr(&stopped, "stubborn").exit_code, Some(137));
    assert_eq!(ctr(&stopped, "polite").exit_code, Some(143));
    assert_eq!(stopped.stop_code, Some(TaskStopCode::SpotInterruption));
    assert_eq!(
        stopped.stopped_reason.as_deref(),
        Some("Your Spot Task was interrupted.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_agents_on_one_engine_create_the_network_once() {
    let h = VpcHarness::new("vpcrace", 19).await;
    let other = VpcHarness::new("vpcrace2", 19).await;
    let (e1, mut r1) = h.engine().await;
    let (e2, mut r2) = other.engine().await;
    let a = awsvpc(
        "race-a",
        vec![container("app", &["sleep", "300"])],
        h.network(50),
    );
    let b = awsvpc(
        "race-b",
        vec![container("app", &["sleep", "300"])],
        h.network(51),
    );
    e1.assign(vec![a.clone()], false);
    e2.assign(vec![b.clone()], false);
    r1.until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    r2.until(&b.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    let named = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name=^{}$", h.network_name),
    ]);
    assert_eq!(named.lines().count(), 1, "{named}");
    for (e, r, t) in [(&e1, &mut r1, &a), (&e2, &mut r2, &b)] {
        e.assign(vec![stop(t.clone())], false);
        r.until(&t.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
            .await;
    }
    drop(other);
}
