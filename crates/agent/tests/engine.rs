//! The task engine against the real Docker engine: assignments in, reports out.
//!
//! Needs Docker at /var/run/docker.sock and the image `flotilla/busybox:latest`
//! (`scripts/images`); fails loudly without them. Tests run one at a time (a global lock) and
//! remove their containers by label, also when they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: any failure must fail the test loudly.

mod common;

use common::{
    assert_essential_exit, assert_oom_killed, container, ctr, dependency_chain, docker_inspect,
    essential_exit_task, http_get, stop, task, Harness, IMAGE,
};
use flotilla_agent::runtime::Runtime;
use flotilla_model::shapes::{
    ContainerCondition, ContainerDefinition, ContainerDependency, HealthCheck, LinuxParameters,
    PortMapping, TaskStopCode,
};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_protocol::labels;
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn started_at(id: &str) -> time_ns::Ts {
    time_ns::parse(&docker_inspect(id, "{{.State.StartedAt}}"))
}

/// RFC 3339 with nanoseconds -> comparable tuple, without a date library.
mod time_ns {
    pub type Ts = (String, u64);
    pub fn parse(s: &str) -> Ts {
        // 2024-01-01T00:00:00.123456789Z
        let (secs, frac) = s.trim_end_matches('Z').split_once('.').unwrap_or((s, "0"));
        let frac = format!("{frac:0<9}");
        (secs.to_string(), frac[..9].parse().unwrap_or(0))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_run_answer_http_and_stop() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "web").await;
    let (engine, mut reports) = h.engine().await;
    let mut web = container("web", &["httpd", "-f", "-p", "8080", "-h", "/www"]);
    web.port_mappings = Some(vec![PortMapping {
        container_port: Some(8080),
        host_port: Some(0),
        ..Default::default()
    }]);
    let a = task("web1", vec![web, container("sidecar", &["sleep", "300"])]);
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    let web = ctr(&running, "web");
    assert_eq!(web.last_status, ContainerStatus::Running);
    let binding = web
        .network_bindings
        .iter()
        .find(|b| b.container_port == Some(8080))
        .expect("a binding for 8080");
    let port = binding.host_port.unwrap();
    assert!(port > 0);
    let answer =
        tokio::task::spawn_blocking(move || http_get("127.0.0.1", u16::try_from(port).unwrap()))
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    assert!(running.pull_started_at.is_some() && running.pull_stopped_at.is_some());
    assert!(running.started_at.is_some());

    // Usage: one sample per task; CPU needs two samples of a container.
    let first = engine.sample_usage().await;
    let u = first
        .iter()
        .find(|u| u.task_arn == a.task_arn)
        .expect("a usage sample");
    assert!(u.memory_mib > 0.0, "{u:?}");
    let second = engine.sample_usage().await;
    assert!(second
        .iter()
        .any(|u| u.task_arn == a.task_arn && u.cpu_units >= 0.0));

    let asked = Instant::now();
    engine.assign(vec![stop(a.clone())], false);
    let stopped = reports
        .until(&a.task_arn, 20, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert!(
        asked.elapsed() < Duration::from_secs(5 + 3),
        "stop took {:?}",
        asked.elapsed()
    );
    for c in &stopped.containers {
        assert_eq!(c.last_status, ContainerStatus::Stopped);
        assert!(c.exit_code.is_some(), "{c:?}");
        assert!(c.network_bindings.is_empty());
    }
    assert_eq!(stopped.stop_code, Some(TaskStopCode::UserInitiated));
    assert_eq!(stopped.stopped_reason.as_deref(), Some("stopped by test"));
    assert!(stopped.execution_stopped_at.is_some());
    assert_eq!(
        reports.statuses(&a.task_arn),
        vec![
            TaskStatus::Pending,
            TaskStatus::Activating,
            TaskStatus::Running,
            TaskStatus::Stopping,
            TaskStatus::Stopped
        ]
    );
    // Reports are idempotent: sequence numbers grow, and an old version is ignored.
    let seqs: Vec<u64> = reports.all.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    engine.assign(vec![a.clone()], false);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), reports.rx.recv())
            .await
            .is_err(),
        "an older assignment must change nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_orders_container_starts() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "deps").await;
    let (engine, mut reports) = h.engine().await;
    let a = dependency_chain(
        "deps1",
        &["sh", "-c", "sleep 1; exit 0"],
        HealthCheck {
            command: vec!["CMD-SHELL".into(), "test -e /tmp".into()],
            interval: Some(1),
            timeout: Some(1),
            retries: Some(1),
            start_period: None,
        },
    );
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 40, |r| r.last_status == TaskStatus::Running)
        .await;
    let id = |n: &str| ctr(&running, n).runtime_id.clone().unwrap();
    let init_finished = time_ns::parse(&docker_inspect(&id("init"), "{{.State.FinishedAt}}"));
    assert_eq!(ctr(&running, "init").exit_code, Some(0));
    assert!(started_at(&id("init")) < init_finished);
    assert!(started_at(&id("after-success")) >= init_finished);
    assert!(started_at(&id("after-complete")) >= init_finished);
    assert!(started_at(&id("after-healthy")) > started_at(&id("after-success")));
    assert!(started_at(&id("after-healthy")) > started_at(&id("checked")));
    assert_eq!(
        ctr(&running, "checked").health_status,
        Some(flotilla_model::shapes::HealthStatus::Healthy)
    );
    // `checked` is essential and healthy; the others have no check: task health UNKNOWN.
    assert_eq!(
        running.health_status,
        Some(flotilla_model::shapes::HealthStatus::Unknown)
    );
    engine.assign(vec![stop(a.clone())], false);
    reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn essential_exit_stops_the_task_and_cleanup_removes_it() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "essential").await;
    let mut cfg = h.config();
    cfg.cleanup_delay = Duration::from_secs(1);
    let (engine, mut reports) = h.engine_with(cfg).await;
    let a = essential_exit_task("ess1", &["sh", "-c", "sleep 1; exit 3"]);
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_essential_exit(&stopped, &reports);
    // Cleanup removes the containers after the delay.
    let side_id = ctr(&stopped, "side").runtime_id.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.runtime.inspect(&side_id).await.is_ok() {
        assert!(Instant::now() < deadline, "containers not cleaned up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(engine.task_arns().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_the_task_with_cannot_pull() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "pull").await;
    let (engine, mut reports) = h.engine().await;
    let mut c = container("app", &["true"]);
    c.image = Some("flotilla/does-not-exist:latest".into());
    let a = task("pull1", vec![c]);
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stop_code, Some(TaskStopCode::TaskFailedToStart));
    let reason = ctr(&stopped, "app").reason.clone().unwrap_or_default();
    assert!(reason.starts_with("CannotPullContainerError: "), "{reason}");
    assert!(
        reason.contains("flotilla/does-not-exist:latest"),
        "{reason}"
    );
    assert!(stopped.pull_started_at.is_some() && stopped.pull_stopped_at.is_some());
    assert!(ctr(&stopped, "app").runtime_id.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_is_oom_killed() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "oom").await;
    let (engine, mut reports) = h.engine().await;
    let mut c = ContainerDefinition {
        name: Some("hog".into()),
        image: Some(IMAGE.into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "x=$(head -c 64m /dev/zero | tr '\\0' a); sleep 1".into(),
        ]),
        ..Default::default()
    };
    c.memory = Some(16);
    let a = task("oom1", vec![c]);
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_oom_killed(&stopped, "hog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_policy_restarts_an_exited_container_in_place() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "policy").await;
    let (engine, mut reports) = h.engine().await;
    let mut flaky = container("flaky", &["sh", "-c", "sleep 1; exit 2"]);
    flaky.restart_policy = Some(flotilla_model::shapes::ContainerRestartPolicy {
        enabled: true,
        ignored_exit_codes: Some(vec![0]),
        restart_attempt_period: Some(0),
    });
    let a = task("pol1", vec![flaky]);
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    let id = ctr(&running, "flaky").runtime_id.clone().unwrap();
    let first = docker_inspect(&id, "{{.State.StartedAt}}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while docker_inspect(&id, "{{.State.StartedAt}}") == first {
        assert!(Instant::now() < deadline, "never restarted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Restarted in place: same container, the task never stopped.
    assert!(!reports
        .all
        .iter()
        .any(|r| r.task_arn == a.task_arn && r.last_status >= TaskStatus::Stopping));
    engine.assign(vec![stop(a.clone())], false);
    let stopped = reports
        .until(&a.task_arn, 20, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(
        ctr(&stopped, "flaky").runtime_id.as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_adopts_containers_and_reports_what_changed() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "restart").await;
    let (engine, mut reports) = h.engine().await;
    let keep = container("keep", &["sleep", "300"]);
    let mut victim = container("victim", &["sleep", "300"]);
    victim.essential = Some(false);
    let a = task("rst1", vec![keep, victim]);
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    let keep_id = ctr(&running, "keep").runtime_id.clone().unwrap();
    let victim_id = ctr(&running, "victim").runtime_id.clone().unwrap();
    let keep_started = docker_inspect(&keep_id, "{{.State.StartedAt}}");

    // The agent dies; while it is down, one container is killed.
    drop(engine);
    drop(reports);
    let out = std::process::Command::new("docker")
        .args(["kill", &victim_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let (engine, mut reports) = h.engine().await;
    let after = reports
        .until(&a.task_arn, 20, |r| {
            ctr(r, "victim").last_status == ContainerStatus::Stopped
        })
        .await;
    assert_eq!(ctr(&after, "victim").exit_code, Some(137));
    assert!(
        reports
            .all
            .iter()
            .all(|r| r.last_status == TaskStatus::Running),
        "a resumed task reports what it observes, never PENDING again: {:?}",
        reports.statuses(&a.task_arn)
    );
    assert_eq!(ctr(&after, "keep").last_status, ContainerStatus::Running);
    assert_eq!(
        ctr(&after, "keep").runtime_id.as_deref(),
        Some(keep_id.as_str())
    );
    assert_eq!(after.last_status, TaskStatus::Running);
    assert_eq!(
        docker_inspect(&keep_id, "{{.State.StartedAt}}"),
        keep_started
    );
    assert_eq!(docker_inspect(&keep_id, "{{.State.Running}}"), "true");

    // The restarted engine still owns the task: it can stop it.
    engine.assign(vec![stop(a.clone())], false);
    reports
        .until(&a.task_arn, 20, |r| r.last_status == TaskStatus::Stopped)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_begun_before_a_crash_is_finished_after_it() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "stopcrash").await;
    let (engine, mut reports) = h.engine().await;
    // No init: `sleep` as PID 1 ignores SIGTERM, so the stop lasts the whole stopTimeout.
    let mut slow = container("slow", &["sleep", "300"]);
    slow.linux_parameters = None;
    slow.stop_timeout = Some(3);
    let a = task("stc1", vec![slow]);
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
        .until(&a.task_arn, 20, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stop_code, Some(TaskStopCode::UserInitiated));
    assert_eq!(stopped.stopped_reason.as_deref(), Some("stopped by test"));
    assert_eq!(ctr(&stopped, "slow").exit_code, Some(137));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_task_list_stops_what_it_does_not_name() {
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "full").await;
    let (engine, mut reports) = h.engine().await;
    let keep = task("full-keep", vec![container("app", &["sleep", "300"])]);
    let drop_me = task("full-drop", vec![container("app", &["sleep", "300"])]);
    engine.assign(vec![keep.clone(), drop_me.clone()], true);
    for t in [&keep, &drop_me] {
        reports
            .until(&t.task_arn, 30, |r| r.last_status == TaskStatus::Running)
            .await;
    }
    engine.assign(vec![keep.clone()], true);
    reports
        .until(&drop_me.task_arn, 20, |r| {
            r.last_status == TaskStatus::Stopped
        })
        .await;
    assert!(!reports
        .all
        .iter()
        .any(|r| r.task_arn == keep.task_arn && r.last_status > TaskStatus::Running));
    engine.assign(vec![], true);
    reports
        .until(&keep.task_arn, 20, |r| r.last_status == TaskStatus::Stopped)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_definition_options_reach_docker() {
    use flotilla_model::shapes::{
        DockerVolumeConfiguration, HostEntry, HostVolumeProperties, KeyValuePair, MountPoint,
        Scope, Tmpfs, Ulimit, UlimitName, Volume, VolumeFrom,
    };
    let _serial = SERIAL.lock().await;
    let h = Harness::new("test", "options").await;
    let (engine, mut reports) = h.engine().await;
    let host_dir = tempfile::tempdir().unwrap();
    let mut writer = container("writer", &["sh", "-c", "touch /data/x /host/y"]);
    writer.essential = Some(false);
    writer.mount_points = Some(vec![
        MountPoint {
            source_volume: Some("data".into()),
            container_path: Some("/data".into()),
            read_only: None,
        },
        MountPoint {
            source_volume: Some("host".into()),
            container_path: Some("/host".into()),
            read_only: None,
        },
    ]);
    let script = "set -e; [ \"$FOO\" = bar ]; [ \"$(pwd)\" = /tmp ]; [ \"$(hostname)\" = myhost ]; \
                  grep -q extra.example /etc/hosts; [ \"$(id -u)\" = 65534 ]; [ \"$(ulimit -n)\" = 1000 ]; \
                  if touch /rootfile 2>/dev/null; then exit 9; fi; touch /scratch/ok; test -f /data/x; test -f /host/y";
    let mut checker = container("checker", &["sh", "-c", script]);
    checker.depends_on = Some(vec![ContainerDependency {
        container_name: "writer".into(),
        condition: ContainerCondition::Success,
    }]);
    checker.volumes_from = Some(vec![VolumeFrom {
        source_container: Some("writer".into()),
        read_only: Some(true),
    }]);
    checker.environment = Some(vec![KeyValuePair {
        name: Some("FOO".into()),
        value: Some("bar".into()),
    }]);
    checker.working_directory = Some("/tmp".into());
    checker.hostname = Some("myhost".into());
    checker.extra_hosts = Some(vec![HostEntry {
        hostname: "extra.example".into(),
        ip_address: "10.1.2.3".into(),
    }]);
    checker.user = Some("65534".into());
    checker.ulimits = Some(vec![Ulimit {
        name: UlimitName::Nofile,
        soft_limit: 1000,
        hard_limit: 1000,
    }]);
    checker.readonly_root_filesystem = Some(true);
    checker.linux_parameters = Some(LinuxParameters {
        init_process_enabled: Some(true),
        tmpfs: Some(vec![Tmpfs {
            container_path: "/scratch".into(),
            size: 8,
            mount_options: None,
        }]),
        ..Default::default()
    });
    checker.docker_labels = Some([("team".to_string(), "blue".to_string())].into());
    checker.cpu = 128;
    let mut a = task("opts1", vec![writer, checker]);
    a.volumes = vec![
        Volume {
            name: Some("data".into()),
            docker_volume_configuration: Some(DockerVolumeConfiguration {
                scope: Some(Scope::Task),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: Some("host".into()),
            host: Some(HostVolumeProperties {
                source_path: Some(host_dir.path().to_string_lossy().into_owned()),
            }),
            ..Default::default()
        },
    ];
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    let checker = ctr(&stopped, "checker");
    assert_eq!(checker.exit_code, Some(0), "{stopped:#?}");
    assert!(host_dir.path().join("y").exists());
    let id = checker.runtime_id.clone().unwrap();
    assert_eq!(
        docker_inspect(&id, "{{index .Config.Labels \"team\"}}"),
        "blue"
    );
    assert_eq!(docker_inspect(&id, "{{.HostConfig.CpuShares}}"), "128");
    assert_eq!(
        docker_inspect(
            &id,
            &format!("{{{{index .Config.Labels \"{}\"}}}}", labels::TASK_ARN)
        ),
        a.task_arn
    );
}
