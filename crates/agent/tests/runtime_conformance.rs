//! The conformance test of the [`Runtime`] trait: one set of cases, generic over the runtime,
//! run against the Docker engine (`docker::*`) and the in-memory model (`memory::*`, on paused
//! time), so the model the engine's decision tests use behaves as Docker does.
//!
//! The Docker half needs Docker at /var/run/docker.sock and the image `flotilla/busybox:latest`
//! (`scripts/images`), and fails loudly without them. Each case labels its containers with an
//! instance id of its own and removes them, also when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: any failure must fail the test loudly.

mod common;

use common::{Cleanup, IMAGE};
use flotilla_agent::runtime::memory::MemoryRuntime;
use flotilla_agent::runtime::{
    ContainerSpec, ExecSpec, ExecState, Health, HealthCheckSpec, OutputStream, PortSpec, Runtime,
    RuntimeError, Signal,
};
use flotilla_protocol::labels;
use std::time::Duration;
use tokio::time::Instant;

/// The runtime under test and the names of one case.
struct Env<R> {
    rt: R,
    instance: String,
    _cleanup: Option<Cleanup>,
}

impl<R: Runtime> Env<R> {
    /// A container of the busybox image running `command`, labelled for this case.
    fn spec(&self, name: &str, command: &[&str], init: bool) -> ContainerSpec {
        ContainerSpec {
            name: format!("{}-{name}", self.instance),
            image: IMAGE.into(),
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            labels: [
                (labels::INSTANCE.to_string(), self.instance.clone()),
                (labels::CONTAINER_NAME.to_string(), name.to_string()),
            ]
            .into(),
            network_mode: "bridge".into(),
            init,
            ..ContainerSpec::default()
        }
    }

    async fn run(&self, spec: &ContainerSpec) -> String {
        let id = self.rt.create(spec).await.unwrap();
        self.rt.start(&id).await.unwrap();
        id
    }

    /// Inspects `id` until `f` holds, up to 30 s (of tokio's clock: paused for the model).
    async fn until(&self, id: &str, f: impl Fn(&flotilla_agent::runtime::ContainerInfo) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = self.rt.inspect(id).await.unwrap();
            if f(&info) {
                return;
            }
            assert!(Instant::now() < deadline, "never true: {info:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn docker_env(case: &str) -> Env<flotilla_agent::docker::DockerRuntime> {
    let rt = common::docker_runtime().await;
    let instance = format!("conf-{}-{case}", std::process::id());
    Env {
        rt,
        _cleanup: Some(Cleanup::instance(&instance)),
        instance,
    }
}

fn memory_env(case: &str) -> Env<MemoryRuntime> {
    let rt = MemoryRuntime::new();
    rt.add_image(IMAGE);
    Env {
        rt,
        instance: format!("conf-{case}"),
        _cleanup: None,
    }
}

/// Runs each case on both runtimes: `docker::case` and `memory::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod docker {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = super::docker_env(stringify!($case)).await;
                    super::$case(&env).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $case() {
                    let env = super::memory_env(stringify!($case));
                    super::$case(&env).await;
                }
            )*
        }
    };
}

conformance!(
    create_start_inspect_stop_remove,
    list_finds_containers_by_label,
    an_exit_code_is_kept,
    stop_escalates_to_kill_after_the_timeout,
    signals_end_what_handles_them,
    a_missing_image_cannot_be_pulled_or_used,
    a_name_is_used_once,
    a_running_container_is_renamed,
    ports_are_published_while_running,
    health_checks_decide_health,
    an_exited_container_starts_again,
    a_network_of_a_stopped_container_cannot_be_joined,
    an_exec_streams_stdout_and_stderr_apart_and_ends_with_its_code,
    an_exec_with_a_terminal_has_one_stream_and_a_size,
    an_exec_reads_its_stdin_to_its_end,
    an_exec_needs_a_running_container,
);

/// Runs `argv` in container `id` to its end: what it wrote to each stream, and its exit code.
async fn exec_to_end<R: Runtime>(
    env: &Env<R>,
    id: &str,
    argv: &[&str],
    tty: bool,
    stdin: Option<&[u8]>,
    size: Option<(u16, u16)>,
) -> (String, String, i64) {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let spec = ExecSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin: stdin.is_some(),
    };
    let exec = env.rt.exec_create(id, &spec).await.unwrap();
    assert_eq!(
        env.rt.exec_inspect(&exec).await.unwrap(),
        ExecState {
            running: false,
            exit_code: None
        },
        "created, not started"
    );
    let mut streams = env.rt.exec_start(&exec).await.unwrap();
    if let Some((cols, rows)) = size {
        env.rt.exec_resize(&exec, cols, rows).await.unwrap();
    }
    if let Some(input) = stdin {
        streams.input.write_all(input).await.unwrap();
        streams.input.shutdown().await.unwrap();
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(piece) = streams.output.next().await {
        let (stream, bytes) = piece.unwrap();
        match stream {
            OutputStream::Stdout => out.extend(bytes),
            OutputStream::Stderr => err.extend(bytes),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        let state = env.rt.exec_inspect(&exec).await.unwrap();
        if !state.running {
            break state.exit_code.expect("an exit code once ended");
        }
        assert!(Instant::now() < deadline, "the exec never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        code,
    )
}

async fn an_exec_streams_stdout_and_stderr_apart_and_ends_with_its_code<R: Runtime>(env: &Env<R>) {
    let id = env.run(&env.spec("exec", &["sleep", "300"], true)).await;
    let got = exec_to_end(
        env,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
        None,
        None,
    )
    .await;
    assert_eq!(got, ("out\n".into(), "err\n".into(), 3));
    let (out, _, code) = exec_to_end(env, &id, &["nope"], false, None, None).await;
    assert_eq!(code, 126);
    assert!(out.contains("executable file not found"), "{out}");
    let (_, err, code) = exec_to_end(env, &id, &["stty", "size"], false, None, None).await;
    assert_eq!(code, 1);
    assert!(err.contains("Inappropriate ioctl"), "{err}");
}

async fn an_exec_with_a_terminal_has_one_stream_and_a_size<R: Runtime>(env: &Env<R>) {
    let id = env.run(&env.spec("exec", &["sleep", "300"], true)).await;
    // The size is set once the exec started (as Docker's CLI sets it); the command sleeps a
    // moment so it reads the size after.
    let got = exec_to_end(
        env,
        &id,
        &["sh", "-c", "sleep 1; echo out; echo err >&2; stty size"],
        true,
        None,
        Some((101, 33)),
    )
    .await;
    assert_eq!(got, ("out\r\nerr\r\n33 101\r\n".into(), String::new(), 0));
}

async fn an_exec_reads_its_stdin_to_its_end<R: Runtime>(env: &Env<R>) {
    let id = env.run(&env.spec("exec", &["sleep", "300"], true)).await;
    let got = exec_to_end(env, &id, &["cat"], false, Some(b"one\ntwo\n"), None).await;
    assert_eq!(got, ("one\ntwo\n".into(), String::new(), 0));
    let got = exec_to_end(env, &id, &["sh"], false, Some(b"echo hi; exit 4\n"), None).await;
    assert_eq!(got, ("hi\n".into(), String::new(), 4));
}

async fn an_exec_needs_a_running_container<R: Runtime>(env: &Env<R>) {
    let spec = ExecSpec {
        argv: vec!["true".into()],
        tty: false,
        stdin: false,
    };
    let id = env
        .rt
        .create(&env.spec("exec", &["sleep", "300"], true))
        .await
        .unwrap();
    assert!(matches!(
        env.rt.exec_create(&id, &spec).await,
        Err(RuntimeError::Conflict(_))
    ));
    assert!(matches!(
        env.rt.exec_create("no-such-container", &spec).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(matches!(
        env.rt.exec_inspect("no-such-exec").await,
        Err(RuntimeError::NotFound(_))
    ));
}

async fn create_start_inspect_stop_remove<R: Runtime>(env: &Env<R>) {
    let spec = env.spec("web", &["sleep", "300"], true);
    let id = env.rt.create(&spec).await.unwrap();
    let created = env.rt.inspect(&id).await.unwrap();
    assert!(created.created_only && !created.running, "{created:#?}");
    assert_eq!(created.started_at, None);
    assert_eq!(created.name, spec.name);
    assert_eq!(
        env.rt.inspect(&spec.name).await.unwrap().id,
        id,
        "found by name"
    );

    env.rt.start(&id).await.unwrap();
    env.rt.start(&id).await.unwrap(); // Starting a running container is fine.
    let running = env.rt.inspect(&id).await.unwrap();
    assert!(running.running && !running.created_only, "{running:#?}");
    assert!(running.started_at.is_some());
    assert_eq!(running.health, Health::None);
    assert!(env.rt.stats(&id).await.unwrap().memory_bytes > 0);

    env.rt.stop(&id, Duration::from_secs(10)).await.unwrap();
    let stopped = env.rt.inspect(&id).await.unwrap();
    assert!(!stopped.running && !stopped.created_only, "{stopped:#?}");
    assert_eq!(
        stopped.exit_code,
        Signal::Term.exit_code(),
        "init forwards SIGTERM"
    );
    assert!(stopped.finished_at.is_some());
    env.rt.stop(&id, Duration::from_secs(10)).await.unwrap(); // Already stopped is fine.

    env.rt.remove(&id).await.unwrap();
    assert!(matches!(
        env.rt.inspect(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
    env.rt.remove(&id).await.unwrap(); // Absent is fine.
    env.rt.stop(&id, Duration::from_secs(1)).await.unwrap(); // Gone is fine.
}

async fn list_finds_containers_by_label<R: Runtime>(env: &Env<R>) {
    let a = env
        .rt
        .create(&env.spec("a", &["sleep", "300"], true))
        .await
        .unwrap();
    let b = env.run(&env.spec("b", &["sleep", "300"], true)).await;
    let mut found = env.rt.list(labels::INSTANCE, &env.instance).await.unwrap();
    found.sort_by(|x, y| x.name.cmp(&y.name));
    let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [a.as_str(), b.as_str()],
        "created and running both listed"
    );
    assert_eq!(found[0].labels.get(labels::CONTAINER_NAME).unwrap(), "a");
    assert_eq!(found[0].image, IMAGE);
    assert_eq!(found[0].name, format!("{}-a", env.instance));
    let labels = env.rt.inspect(&b).await.unwrap().labels;
    assert_eq!(labels.get(labels::INSTANCE), Some(&env.instance));
    assert!(env
        .rt
        .list(labels::INSTANCE, "nobody-has-this")
        .await
        .unwrap()
        .is_empty());
    assert!(env.rt.image_in_use(IMAGE).await.unwrap());
}

async fn an_exit_code_is_kept<R: Runtime>(env: &Env<R>) {
    let id = env
        .run(&env.spec("exits", &["sh", "-c", "exit 3"], false))
        .await;
    assert_eq!(env.rt.wait(&id).await.unwrap(), 3);
    let info = env.rt.inspect(&id).await.unwrap();
    assert!(
        !info.running && !info.created_only && !info.oom_killed,
        "{info:#?}"
    );
    assert_eq!(info.exit_code, 3);
    assert!(info.started_at.is_some() && info.finished_at.is_some());
    assert_eq!(
        env.rt.wait(&id).await.unwrap(),
        3,
        "waiting on an exited container"
    );
}

async fn stop_escalates_to_kill_after_the_timeout<R: Runtime>(env: &Env<R>) {
    // `sleep` as PID 1 without an init ignores SIGTERM: only the kill ends it.
    let id = env
        .run(&env.spec("stubborn", &["sleep", "300"], false))
        .await;
    let begun = Instant::now();
    env.rt.stop(&id, Duration::from_secs(2)).await.unwrap();
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "killed before the timeout: {took:?}"
    );
    let info = env.rt.inspect(&id).await.unwrap();
    assert!(!info.running);
    assert_eq!(info.exit_code, Signal::Kill.exit_code());
}

async fn signals_end_what_handles_them<R: Runtime>(env: &Env<R>) {
    let polite = env.run(&env.spec("polite", &["sleep", "300"], true)).await;
    env.rt.kill(&polite, Signal::Term).await.unwrap();
    assert_eq!(env.rt.wait(&polite).await.unwrap(), 143);

    let stubborn = env
        .run(&env.spec("stubborn", &["sleep", "300"], false))
        .await;
    env.rt.kill(&stubborn, Signal::Term).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.rt.inspect(&stubborn).await.unwrap().running,
        "SIGTERM ignored"
    );
    env.rt.kill(&stubborn, Signal::Kill).await.unwrap();
    assert_eq!(env.rt.wait(&stubborn).await.unwrap(), 137);

    assert!(
        matches!(
            env.rt.kill(&stubborn, Signal::Kill).await,
            Err(RuntimeError::Conflict(_))
        ),
        "a stopped container cannot be signalled"
    );
    assert!(matches!(
        env.rt
            .kill("no-such-container-anywhere", Signal::Kill)
            .await,
        Err(RuntimeError::NotFound(_))
    ));
}

async fn a_missing_image_cannot_be_pulled_or_used<R: Runtime>(env: &Env<R>) {
    // A registry nobody listens on: refused at once, no Internet needed.
    let image = "127.0.0.1:1/flotilla/missing:1";
    assert_eq!(env.rt.inspect_image(image).await.unwrap(), None);
    match env.rt.pull(image, None).await {
        Err(e @ RuntimeError::Pull { .. }) => {
            assert_eq!(e.ecs_name(), "CannotPullContainerError");
            assert!(e
                .to_string()
                .starts_with(&format!("CannotPullContainerError: pull image {image}: ")));
        }
        other => panic!("expected a pull error, got {other:?}"),
    }
    let mut spec = env.spec("missing", &["sleep", "1"], false);
    spec.image = image.into();
    assert!(matches!(
        env.rt.create(&spec).await,
        Err(RuntimeError::Create(_))
    ));
    assert!(env.rt.inspect_image(IMAGE).await.unwrap().is_some());
}

async fn a_name_is_used_once<R: Runtime>(env: &Env<R>) {
    let spec = env.spec("once", &["sleep", "300"], true);
    let id = env.rt.create(&spec).await.unwrap();
    assert!(matches!(
        env.rt.create(&spec).await,
        Err(RuntimeError::Conflict(_))
    ));
    env.rt.remove(&id).await.unwrap();
    env.rt.create(&spec).await.unwrap();
}

async fn a_running_container_is_renamed<R: Runtime>(env: &Env<R>) {
    let spec = env.spec("warm", &["sleep", "300"], true);
    let id = env.run(&spec).await;
    let new = format!("{}-adopted", env.instance);
    env.rt.rename(&id, &new).await.unwrap();
    let info = env.rt.inspect(&new).await.unwrap();
    assert_eq!(
        (info.id.as_str(), info.name.as_str()),
        (id.as_str(), new.as_str())
    );
    assert!(info.running, "a rename does not stop it");
    assert!(matches!(
        env.rt.inspect(&spec.name).await,
        Err(RuntimeError::NotFound(_))
    ));
    // The old name is free again; the new one is taken.
    let other = env.rt.create(&spec).await.unwrap();
    assert!(matches!(
        env.rt.rename(&other, &new).await,
        Err(RuntimeError::Conflict(_))
    ));
    assert!(matches!(
        env.rt
            .rename(&format!("{}-missing", env.instance), "x")
            .await,
        Err(RuntimeError::NotFound(_))
    ));
    env.rt.remove(&other).await.unwrap();
    env.rt.remove(&id).await.unwrap();
}

async fn ports_are_published_while_running<R: Runtime>(env: &Env<R>) {
    let mut spec = env.spec("ports", &["sleep", "300"], true);
    spec.ports = vec![PortSpec {
        container_port: 8080,
        host_port: None,
        protocol: "tcp".into(),
    }];
    let id = env.run(&spec).await;
    let info = env.rt.inspect(&id).await.unwrap();
    let b = info
        .bindings
        .iter()
        .find(|b| b.container_port == 8080)
        .unwrap_or_else(|| panic!("no binding: {info:#?}"));
    assert!(b.host_port > 0);
    assert_eq!(b.protocol, "tcp");
    env.rt.stop(&id, Duration::from_secs(10)).await.unwrap();
    assert!(env.rt.inspect(&id).await.unwrap().bindings.is_empty());
}

async fn health_checks_decide_health<R: Runtime>(env: &Env<R>) {
    let check = |line: &str| HealthCheckSpec {
        test: vec!["CMD-SHELL".into(), line.into()],
        interval_s: 1,
        timeout_s: 5,
        retries: 2,
        start_period_s: 0,
    };
    let mut good = env.spec("good", &["sleep", "300"], true);
    good.health_check = Some(check("exit 0"));
    let mut bad = env.spec("bad", &["sleep", "300"], true);
    bad.health_check = Some(check("exit 1"));
    let good = env.run(&good).await;
    let bad = env.run(&bad).await;
    assert_eq!(
        env.rt.inspect(&good).await.unwrap().health,
        Health::Starting
    );
    env.until(&good, |i| i.health == Health::Healthy).await;
    env.until(&bad, |i| i.health == Health::Unhealthy).await;
    assert!(
        env.rt.inspect(&bad).await.unwrap().running,
        "unhealthy still runs"
    );
}

async fn an_exited_container_starts_again<R: Runtime>(env: &Env<R>) {
    let id = env
        .run(&env.spec("again", &["sh", "-c", "sleep 1; exit 2"], false))
        .await;
    assert_eq!(env.rt.wait(&id).await.unwrap(), 2);
    let first = env.rt.inspect(&id).await.unwrap().started_at;
    env.rt.start(&id).await.unwrap();
    let again = env.rt.inspect(&id).await.unwrap();
    assert!(again.running, "{again:#?}");
    assert_ne!(again.started_at, first);
    assert_eq!(env.rt.wait(&id).await.unwrap(), 2);
}

async fn a_network_of_a_stopped_container_cannot_be_joined<R: Runtime>(env: &Env<R>) {
    let holder = env
        .rt
        .create(&env.spec("holder", &["sleep", "300"], true))
        .await
        .unwrap();
    let mut joiner = env.spec("joiner", &["sleep", "300"], true);
    joiner.network_mode = format!("container:{holder}");
    let joiner = env.rt.create(&joiner).await.unwrap();
    assert!(matches!(
        env.rt.start(&joiner).await,
        Err(RuntimeError::Start(_))
    ));
    env.rt.start(&holder).await.unwrap();
    env.rt.start(&joiner).await.unwrap();
    assert!(env.rt.inspect(&joiner).await.unwrap().running);
}
