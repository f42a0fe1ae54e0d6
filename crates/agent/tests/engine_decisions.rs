//! The task engine's decisions on the in-memory runtime, on paused time: each test lives
//! minutes of tokio's clock in milliseconds of real time and needs no Docker.
//!
//! The same behaviours run on the real Docker engine in `engine.rs` and `awsvpc.rs`; the
//! in-memory runtime is checked against Docker by `runtime_conformance.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: any failure must fail the test loudly.

mod common;

use common::{
    assert_essential_exit, assert_oom_killed, container, ctr, dep, dependency_chain,
    essential_exit_task, stop, task, MemoryHarness, Reports,
};
use flotilla_agent::runtime::memory::{Call, Op};
use flotilla_agent::runtime::{Runtime, RuntimeError, Signal};
use flotilla_agent::spec::container_name;
use flotilla_model::shapes::{
    ContainerCondition, ContainerRestartPolicy, HealthCheck, HealthStatus, TaskStopCode,
};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_protocol::{TaskAssignment, TaskNetwork, TaskStateReport};
use std::time::Duration;
use tokio::time::Instant;

/// When the runtime was first asked to start the container `name` of task `a`.
fn started(h: &MemoryHarness, a: &TaskAssignment, name: &str) -> Instant {
    let docker_name = container_name(&a.task_arn, name);
    h.runtime
        .calls()
        .into_iter()
        .find(|(_, c)| {
            *c == Call::Start {
                name: docker_name.clone(),
            }
        })
        .unwrap_or_else(|| panic!("{name} never started"))
        .0
}

/// The calls the runtime received for the container `name` of task `a`.
fn calls_of(h: &MemoryHarness, a: &TaskAssignment, name: &str) -> Vec<(Instant, Call)> {
    let docker_name = container_name(&a.task_arn, name);
    h.runtime
        .calls()
        .into_iter()
        .filter(|(_, c)| match c {
            Call::Create { name }
            | Call::Start { name }
            | Call::Stop { name, .. }
            | Call::Kill { name, .. }
            | Call::Remove { name } => *name == docker_name,
            _ => false,
        })
        .collect()
}

fn health(command: &str) -> HealthCheck {
    HealthCheck {
        command: vec!["CMD-SHELL".into(), command.into()],
        interval: Some(5),
        timeout: Some(2),
        retries: Some(3),
        start_period: None,
    }
}

/// Waits until `a` is STOPPED as failed to start; its report and the reason of its container
/// `name`.
async fn failed_to_start(
    reports: &mut Reports,
    a: &TaskAssignment,
    name: &str,
) -> (TaskStateReport, String) {
    let stopped = reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stop_code, Some(TaskStopCode::TaskFailedToStart));
    let reason = ctr(&stopped, name).reason.clone().unwrap();
    (stopped, reason)
}

#[tokio::test(start_paused = true)]
async fn depends_on_orders_container_starts() {
    let h = MemoryHarness::memory("deps");
    let (engine, mut reports) = h.engine().await;
    let a = dependency_chain("deps1", &["sh", "-c", "sleep 20; exit 0"], health("exit 0"));
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 120, |r| r.last_status == TaskStatus::Running)
        .await;
    assert_eq!(ctr(&running, "init").exit_code, Some(0));
    let init_done = started(&h, &a, "init") + Duration::from_secs(20);
    assert!(started(&h, &a, "after-success") >= init_done);
    assert!(started(&h, &a, "after-complete") >= init_done);
    assert!(
        started(&h, &a, "after-healthy") >= started(&h, &a, "checked") + Duration::from_secs(5)
    );
    assert!(started(&h, &a, "after-healthy") > started(&h, &a, "after-success"));
    assert_eq!(
        ctr(&running, "checked").health_status,
        Some(HealthStatus::Healthy)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_cannot_be_met_fails_the_task() {
    let h = MemoryHarness::memory("unmet");
    let (engine, mut reports) = h.engine().await;
    let mut init = container("init", &["sh", "-c", "exit 4"]);
    init.essential = Some(false);
    let mut app = container("app", &["sleep", "3000"]);
    app.depends_on = Some(vec![dep("init", ContainerCondition::Success)]);
    let a = task("unmet1", vec![init, app]);
    engine.assign(vec![a.clone()], false);
    let (_, reason) = failed_to_start(&mut reports, &a, "app").await;
    assert!(
        reason.starts_with("DependencyNotResolvedError: "),
        "{reason}"
    );
    assert!(calls_of(&h, &a, "app")
        .iter()
        .all(|(_, c)| !matches!(c, Call::Start { .. })));
}

#[tokio::test(start_paused = true)]
async fn an_essential_exit_stops_the_task_with_its_stop_code() {
    let h = MemoryHarness::memory("essential");
    let mut cfg = h.config();
    cfg.cleanup_delay = Duration::from_secs(600);
    let (engine, mut reports) = h.engine_with(cfg).await;
    let a = essential_exit_task("ess1", &["sh", "-c", "sleep 30; exit 3"]);
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 120, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_essential_exit(&stopped, &reports);
    // After the cleanup delay the containers are removed and the task forgotten.
    let deadline = Instant::now() + Duration::from_secs(1200);
    while !engine.task_arns().is_empty() {
        assert!(Instant::now() < deadline, "never cleaned up");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(h.runtime.container_names().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stop_timeout_sends_sigkill_after_sigterm_is_ignored() {
    let h = MemoryHarness::memory("timeout");
    let (engine, mut reports) = h.engine().await;
    let mut stubborn = container("stubborn", &["sleep", "3000"]);
    stubborn.linux_parameters = None; // PID 1 without an init ignores SIGTERM.
    stubborn.stop_timeout = Some(30);
    let a = task("tmo1", vec![stubborn]);
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    engine.assign(vec![stop(a.clone())], false);
    let stopped = reports
        .until(&a.task_arn, 120, |r| r.last_status == TaskStatus::Stopped)
        .await;
    let stopped_at = Instant::now();
    assert_eq!(ctr(&stopped, "stubborn").exit_code, Some(137));
    assert_eq!(stopped.stop_code, Some(TaskStopCode::UserInitiated));
    let calls = calls_of(&h, &a, "stubborn");
    let (asked, timeout) = calls
        .iter()
        .find_map(|(at, c)| match c {
            Call::Stop { timeout, .. } => Some((*at, *timeout)),
            _ => None,
        })
        .expect("a stop");
    assert_eq!(timeout, Duration::from_secs(30));
    assert!(stopped_at >= asked + timeout, "killed before the timeout");
}

#[tokio::test(start_paused = true)]
async fn a_spot_grace_period_sends_sigterm_then_sigkill() {
    let h = MemoryHarness::memory("grace");
    let (engine, mut reports) = h.engine().await;
    let mut stubborn = container("stubborn", &["sleep", "3000"]);
    stubborn.linux_parameters = None;
    let a = task("grace1", vec![stubborn]);
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    let mut s = stop(a.clone());
    s.stop_grace_seconds = Some(120);
    s.stop_code = Some(TaskStopCode::SpotInterruption);
    engine.assign(vec![s], false);
    let stopped = reports
        .until(&a.task_arn, 300, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(ctr(&stopped, "stubborn").exit_code, Some(137));
    assert_eq!(stopped.stop_code, Some(TaskStopCode::SpotInterruption));
    let kills: Vec<(Instant, Signal)> = calls_of(&h, &a, "stubborn")
        .into_iter()
        .filter_map(|(at, c)| match c {
            Call::Kill { signal, .. } => Some((at, signal)),
            _ => None,
        })
        .collect();
    assert_eq!(kills.len(), 2, "{kills:?}");
    assert_eq!((kills[0].1, kills[1].1), (Signal::Term, Signal::Kill));
    assert!(kills[1].0 >= kills[0].0 + Duration::from_secs(120));
}

#[tokio::test(start_paused = true)]
async fn a_restart_policy_restarts_an_exited_container_in_place() {
    let h = MemoryHarness::memory("policy");
    let (engine, mut reports) = h.engine().await;
    let mut flaky = container("flaky", &["sh", "-c", "sleep 60; exit 2"]);
    flaky.restart_policy = Some(ContainerRestartPolicy {
        enabled: true,
        ignored_exit_codes: Some(vec![0]),
        restart_attempt_period: Some(10),
    });
    let a = task("pol1", vec![flaky]);
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    tokio::time::sleep(Duration::from_secs(200)).await;
    let starts = calls_of(&h, &a, "flaky")
        .iter()
        .filter(|(_, c)| matches!(c, Call::Start { .. }))
        .count();
    assert!(starts >= 3, "restarted in place: {starts} starts");
    let creates = calls_of(&h, &a, "flaky")
        .iter()
        .filter(|(_, c)| matches!(c, Call::Create { .. }))
        .count();
    assert_eq!(creates, 1, "the same container");
    reports.until(&a.task_arn, 1, |_| true).await;
    assert!(!reports
        .all
        .iter()
        .any(|r| r.task_arn == a.task_arn && r.last_status >= TaskStatus::Stopping));
}

#[tokio::test(start_paused = true)]
async fn failing_health_checks_make_the_task_unhealthy() {
    let h = MemoryHarness::memory("health");
    let (engine, mut reports) = h.engine().await;
    let mut web = container("web", &["sleep", "3000"]);
    web.health_check = Some(health("exit 1"));
    let a = task("hc1", vec![web]);
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    assert_eq!(running.health_status, Some(HealthStatus::Unknown));
    let unhealthy = reports
        .until(&a.task_arn, 120, |r| {
            r.health_status == Some(HealthStatus::Unhealthy)
        })
        .await;
    assert_eq!(
        ctr(&unhealthy, "web").health_status,
        Some(HealthStatus::Unhealthy)
    );
    assert_eq!(
        unhealthy.last_status,
        TaskStatus::Running,
        "ECS stops it, not the agent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pull_failure_fails_the_task_with_cannot_pull() {
    let h = MemoryHarness::memory("pull");
    let (engine, mut reports) = h.engine().await;
    let mut app = container("app", &["true"]);
    app.image = Some("flotilla/does-not-exist:latest".into());
    let a = task("pull1", vec![app]);
    engine.assign(vec![a.clone()], false);
    let (stopped, reason) = failed_to_start(&mut reports, &a, "app").await;
    assert_eq!(
        reason,
        "CannotPullContainerError: pull image flotilla/does-not-exist:latest: pull access \
         denied for flotilla/does-not-exist, repository does not exist or may require 'docker \
         login': denied: requested access to the resource is denied"
    );
    assert_eq!(stopped.stopped_reason.as_deref(), Some(reason.as_str()));
    assert!(stopped.pull_started_at.is_some() && stopped.pull_stopped_at.is_some());
    assert!(ctr(&stopped, "app").runtime_id.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_restarted_engine_adopts_running_containers_without_restarting_them() {
    let h = MemoryHarness::memory("adopt");
    let (engine, mut reports) = h.engine().await;
    let keep = container("keep", &["sleep", "3000"]);
    let mut short = container("short", &["sh", "-c", "sleep 100; exit 5"]);
    short.essential = Some(false);
    let a = task("adopt1", vec![keep, short]);
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    let keep_id = ctr(&running, "keep").runtime_id.clone().unwrap();

    // The agent dies; while it is down, `short` exits.
    drop(engine);
    drop(reports);
    tokio::time::sleep(Duration::from_secs(200)).await;

    let (engine, mut reports) = h.engine().await;
    let after = reports
        .until(&a.task_arn, 60, |r| {
            ctr(r, "short").last_status == ContainerStatus::Stopped
        })
        .await;
    assert_eq!(ctr(&after, "short").exit_code, Some(5));
    assert_eq!(after.last_status, TaskStatus::Running);
    assert_eq!(
        ctr(&after, "keep").runtime_id.as_deref(),
        Some(keep_id.as_str())
    );
    assert!(
        reports
            .all
            .iter()
            .all(|r| r.last_status == TaskStatus::Running),
        "a resumed task never reports PENDING again"
    );
    let keep_calls = calls_of(&h, &a, "keep");
    assert_eq!(keep_calls.len(), 2, "one create, one start: {keep_calls:?}");

    engine.assign(vec![stop(a.clone())], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
}

#[tokio::test(start_paused = true)]
async fn an_awsvpc_task_reports_every_step_of_its_lifecycle() {
    let h = MemoryHarness::memory("awsvpc");
    let (engine, mut reports) = h.engine().await;
    let mut a = task("vpc1", vec![container("web", &["sleep", "3000"])]);
    a.network_mode = flotilla_model::shapes::NetworkMode::Awsvpc;
    a.network = Some(TaskNetwork {
        attachment_id: "att-1".into(),
        network_interface_id: "eni-1".into(),
        private_ipv4_address: "10.231.0.5".into(),
        mac_address: "0a:58:0a:e7:00:05".into(),
        subnet_cidr: "10.231.0.0/24".into(),
        gateway: "10.231.0.1".into(),
        network_name: "flotilla-mem".into(),
        subnet_id: "subnet-test".into(),
        private_dns_name: "ip-10-231-0-5.ec2.internal".into(),
    });
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    engine.assign(vec![stop(a.clone())], false);
    reports
        .until(&a.task_arn, 120, |r| r.last_status == TaskStatus::Stopped)
        .await;
    use TaskStatus::*;
    assert_eq!(
        reports.statuses(&a.task_arn),
        [
            Provisioning,
            Pending,
            Activating,
            Running,
            Stopping,
            Deprovisioning,
            Stopped
        ]
    );
    let created = h.runtime.calls();
    assert!(created.iter().any(|(_, c)| *c
        == Call::CreateNetwork {
            name: "flotilla-mem".into()
        }));
}

#[tokio::test(start_paused = true)]
async fn a_start_failure_fails_the_task_with_cannot_start() {
    let h = MemoryHarness::memory("start");
    h.runtime.inject(
        Op::Start,
        RuntimeError::Start("OCI runtime create failed: exec: \"nope\": not found".into()),
    );
    let (engine, mut reports) = h.engine().await;
    let a = task("start1", vec![container("app", &["nope"])]);
    engine.assign(vec![a.clone()], false);
    let (stopped, reason) = failed_to_start(&mut reports, &a, "app").await;
    assert_eq!(
        reason,
        "CannotStartContainerError: OCI runtime create failed: exec: \"nope\": not found"
    );
    assert_eq!(stopped.stopped_reason.as_deref(), Some(reason.as_str()));
}

#[tokio::test(start_paused = true)]
async fn an_oom_kill_is_reported_as_out_of_memory() {
    let h = MemoryHarness::memory("oom");
    h.runtime
        .script("hog", |s| s.oom_after = Some(Duration::from_secs(45)));
    let (engine, mut reports) = h.engine().await;
    let a = task("oom1", vec![container("hog", &["sleep", "3000"])]);
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 120, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_oom_killed(&stopped, "hog");
}

/// A task's `repositoryCredentials`, read by the server with its secrets, are the credentials of
/// its image's pull (before anything the host's Docker config holds); wrong ones or none fail
/// the pull with `CannotPullContainerError`, and a secret the server cannot read fails the task
/// with the server's reason before any pull.
#[tokio::test(start_paused = true)]
async fn repository_credentials_are_the_tasks_own_pull_credentials() {
    use flotilla_model::shapes::RepositoryCredentials;
    use flotilla_protocol::{ContainerSecrets, RegistryCredentials, SecretText, SecretsOutcome};

    const PRIVATE: &str = "127.0.0.1:5999/team/app:1";
    let h = MemoryHarness::memory("regcreds");
    h.runtime.add_private(PRIVATE, "puller", "right-pw");
    let mut cfg = h.config();
    // The host's Docker config gives a wrong password for that registry: the task's own win.
    let host_config = h.dir.path().join("docker-config.json");
    std::fs::write(
        &host_config,
        r#"{"auths": {"127.0.0.1:5999": {"username": "host-user", "password": "host-pw"}}}"#,
    )
    .unwrap();
    cfg.docker_config = Some(host_config);
    cfg.image_pull_behavior = flotilla_agent::config::ImagePullBehavior::Always;
    let (engine, mut reports) = h.engine_with(cfg).await;
    let mut requests = engine.secret_requests().unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        while let Some(r) = requests.recv().await {
            let id = r.task_arn.rsplit('/').next().unwrap_or("").to_string();
            log.lock().unwrap().push(id.clone());
            let creds = |password: &str| SecretsOutcome::Resolved {
                containers: vec![ContainerSecrets {
                    name: "app".into(),
                    environment: vec![],
                    log_options: vec![],
                    registry_auth: Some(RegistryCredentials {
                        username: SecretText("puller".into()),
                        password: SecretText(password.into()),
                    }),
                }],
            };
            let outcome = match id.as_str() {
                "good" => creds("right-pw"),
                "wrong" => creds("wrong-pw"),
                _ => SecretsOutcome::Failed {
                    reason: "unable to pull secrets or registry auth: execution resource \
                             retrieval failed: unable to get registry auth from asm: asm fetching \
                             secret from the service for gone: ResourceNotFoundException: Secrets \
                             Manager can't find the specified secret."
                        .into(),
                },
            };
            let _ = r.reply.send(outcome);
        }
    });
    let app = |with_credentials: bool| {
        let mut c = container("app", &["sleep", "3000"]);
        c.image = Some(PRIVATE.into());
        if with_credentials {
            c.repository_credentials = Some(RepositoryCredentials {
                credentials_parameter: "registry/creds".into(),
            });
        }
        c
    };
    let pulls_of = |user: &str| {
        h.runtime
            .calls()
            .into_iter()
            .filter(|(_, c)| {
                matches!(c, Call::Pull { image, user: Some(u) } if image == PRIVATE && u == user)
            })
            .count()
    };

    let good = task("good", vec![app(true)]);
    engine.assign(vec![good.clone()], false);
    reports
        .until(&good.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    assert_eq!((pulls_of("puller"), pulls_of("host-user")), (1, 0));

    let wrong = task("wrong", vec![app(true)]);
    engine.assign(vec![wrong.clone()], false);
    let (_, reason) = failed_to_start(&mut reports, &wrong, "app").await;
    assert_eq!(
        reason,
        format!("CannotPullContainerError: pull image {PRIVATE}: Head \"https://127.0.0.1:5999/v2/\": no basic auth credentials")
    );
    assert!(!reason.contains("wrong-pw"));

    // Without repositoryCredentials the host's config is used (and is wrong here); nothing is
    // asked of the server.
    let plain = task("plain", vec![app(false)]);
    engine.assign(vec![plain.clone()], false);
    let (_, reason) = failed_to_start(&mut reports, &plain, "app").await;
    assert!(reason.starts_with("CannotPullContainerError: "), "{reason}");
    assert_eq!(pulls_of("host-user"), 1);

    let gone = task("gone", vec![app(true)]);
    engine.assign(vec![gone.clone()], false);
    let stopped = reports
        .until(&gone.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stop_code, Some(TaskStopCode::TaskFailedToStart));
    let why = stopped.stopped_reason.unwrap();
    assert!(
        why.starts_with("ResourceInitializationError: unable to pull secrets or registry auth")
            && why.contains("for gone: ResourceNotFoundException"),
        "{why}"
    );
    assert!(
        stopped.pull_started_at.is_none(),
        "no pull without credentials"
    );
    assert_eq!(*asked.lock().unwrap(), ["good", "wrong", "gone"]);
}

fn warm_net(last: u8) -> TaskNetwork {
    TaskNetwork {
        attachment_id: String::new(),
        network_interface_id: String::new(),
        private_ipv4_address: format!("10.231.0.{last}"),
        mac_address: format!("0a:58:0a:e7:00:{last:02x}"),
        subnet_cidr: "10.231.0.0/24".into(),
        gateway: "10.231.0.1".into(),
        network_name: "flotilla-mem".into(),
        subnet_id: String::new(),
        private_dns_name: format!("ip-10-231-0-{last}.ec2.internal"),
    }
}

/// The id of the running container `name`, once it runs (up to 30 s of tokio's clock).
async fn running_id(h: &MemoryHarness, name: &str) -> String {
    use flotilla_agent::runtime::Runtime;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(i) = h.runtime.inspect(name).await {
            if i.running {
                return i.id;
            }
        }
        assert!(Instant::now() < deadline, "{name} never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn creates_of(h: &MemoryHarness, docker_name: &str) -> usize {
    h.runtime
        .calls()
        .iter()
        .filter(|(_, c)| {
            *c == Call::Create {
                name: docker_name.to_string(),
            }
        })
        .count()
}

/// A managed-pool host's warm pool: pause containers are made for the server's list; a task
/// whose address is one of them adopts it (no pause of its own is created; it takes the task's
/// pause name) and asks for a refill once it runs; a restarted engine keeps the warm container
/// not adopted and the adopted one stays its task's; an address the list drops goes after the
/// grace.
#[tokio::test(start_paused = true)]
async fn a_warm_pause_container_is_adopted_kept_across_restarts_and_refilled() {
    use flotilla_agent::runtime::Runtime;
    use flotilla_agent::warm::{container_name as warm_name, STALE_GRACE};
    let h = MemoryHarness::memory("warm");
    let mut cfg = h.config();
    cfg.warm_pool_size = Some(2);
    let (engine, mut reports) = h.engine_with(cfg.clone()).await;
    assert_eq!(engine.warm_pool_size(), Some(2));
    let mut refills = engine.warm_requests().unwrap();
    engine.set_warm_networks(vec![warm_net(5), warm_net(6)]);
    let warm5 = running_id(&h, &warm_name("10.231.0.5")).await;
    let warm6 = running_id(&h, &warm_name("10.231.0.6")).await;

    let mut a = task("warm1", vec![container("web", &["sleep", "3000"])]);
    a.network_mode = flotilla_model::shapes::NetworkMode::Awsvpc;
    a.network = Some(TaskNetwork {
        attachment_id: "att-1".into(),
        network_interface_id: "eni-1".into(),
        subnet_id: "subnet-test".into(),
        ..warm_net(5)
    });
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    let pause_name = container_name(&a.task_arn, "pause");
    assert_eq!(
        creates_of(&h, &pause_name),
        0,
        "the task made no pause container"
    );
    assert_eq!(
        running_id(&h, &pause_name).await,
        warm5,
        "adopted and renamed"
    );
    assert_eq!(
        refills.try_recv().ok(),
        Some(2),
        "a refill is asked once it runs"
    );

    // A restart (as a crash): the adopted pause stays the task's, the other stays warm.
    drop(engine);
    let (engine, mut reports) = h.engine_with(cfg).await;
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    engine.set_warm_networks(vec![warm_net(6), warm_net(7)]);
    running_id(&h, &warm_name("10.231.0.7")).await;
    assert_eq!(running_id(&h, &warm_name("10.231.0.6")).await, warm6);
    assert_eq!(
        creates_of(&h, &warm_name("10.231.0.6")),
        1,
        "kept, not made again"
    );
    assert_eq!(
        creates_of(&h, &warm_name("10.231.0.5")),
        1,
        "its address is the task's"
    );

    // The list drops 6: its container goes after the grace, not before.
    engine.set_warm_networks(vec![warm_net(7)]);
    tokio::time::sleep(STALE_GRACE / 2).await;
    assert!(h.runtime.inspect(&warm6).await.is_ok());
    tokio::time::sleep(STALE_GRACE).await;
    assert!(matches!(
        h.runtime.inspect(&warm6).await,
        Err(RuntimeError::NotFound(_))
    ));

    engine.assign(vec![stop(a.clone())], false);
    reports
        .until(&a.task_arn, 120, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert!(matches!(
        h.runtime.inspect(&warm5).await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_steady_task_is_not_inspected_until_a_container_changes() {
    let h = MemoryHarness::memory("quiet");
    let (engine, mut reports) = h.engine().await;
    let a = task("quiet1", vec![container("main", &["sleep", "3600"])]);
    engine.assign(vec![a.clone()], false);
    let running = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    let id = ctr(&running, "main").runtime_id.clone().unwrap();
    // The next inspect of anyone fails: a minute of polls (every 400 ms once RUNNING) leaves
    // it to this test, because nothing of the task changed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.runtime
        .inject(Op::Inspect, RuntimeError::Other("boom".into()));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        h.runtime.inspect(&id).await.is_err(),
        "the engine inspected an unchanged container"
    );
    // A change is seen at the next poll: the container is killed, and the task stops.
    h.runtime.kill(&id, Signal::Kill).await.unwrap();
    let stopped = reports
        .until(&a.task_arn, 5, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(ctr(&stopped, "main").exit_code, Some(137));
}
