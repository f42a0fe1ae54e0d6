//! The awslogs driver in the task engine, on the in-memory runtime: a container's output goes
//! to its stream in the host's log store, an engine restart (an agent restart) neither loses
//! nor repeats a line, and a missing group fails the task as ECS does. The same runs on real
//! Docker with a real server in `tests/test_logs.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: any failure must fail the test loudly.

mod common;

use common::{container, task, MemoryHarness};
use flotilla_agent::logs::{LogStreams, OpenError, StreamOpener};
use flotilla_agent::runtime::OutputStream;
use flotilla_agent::spec::container_name;
use flotilla_logs::query::{Direction, ReadQuery, StreamRef};
use flotilla_model::shapes::{LogConfiguration, LogDriver, TaskStopCode};
use flotilla_model::status::TaskStatus;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A server whose only log group is `g` (generation 7).
struct OneGroup;

#[async_trait::async_trait]
impl StreamOpener for OneGroup {
    async fn open(&self, group: &str, _: &str, _: bool) -> Result<u64, OpenError> {
        if group == "g" {
            Ok(7)
        } else {
            Err(OpenError::GroupNotFound(
                "The specified log group does not exist.".into(),
            ))
        }
    }
}

fn awslogs(group: &str) -> LogConfiguration {
    LogConfiguration {
        log_driver: LogDriver::Awslogs,
        options: Some(BTreeMap::from([
            ("awslogs-group".to_string(), group.to_string()),
            ("awslogs-stream-prefix".to_string(), "p".to_string()),
        ])),
        secret_options: None,
    }
}

fn messages(engine: &flotilla_agent::engine::Engine, stream: &StreamRef) -> Vec<String> {
    engine
        .logs()
        .store()
        .read(&ReadQuery {
            stream: stream.clone(),
            direction: Direction::Forward,
            from: 0,
            start_time: None,
            end_time: None,
            limit: 1000,
        })
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.message)
        .collect()
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn output_goes_to_the_stream_and_a_restart_neither_loses_nor_repeats() {
    let h = MemoryHarness::memory("awslogs");
    let mut cfg = h.config();
    cfg.log_streams = LogStreams(Arc::new(OneGroup));
    let (engine, mut reports) = h.engine_with(cfg.clone()).await;
    let mut app = container("app", &["sleep", "3600"]);
    app.log_configuration = Some(awslogs("g"));
    let a = task("logs1", vec![app]);
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Running)
        .await;
    let name = container_name(&a.task_arn, "app");
    let stream = StreamRef {
        group: "g".into(),
        generation: 7,
        stream: format!("p/app/{}", a.task_arn.rsplit('/').next().unwrap()),
    };
    h.runtime
        .write_output(&name, OutputStream::Stdout, "one")
        .unwrap();
    h.runtime
        .write_output(&name, OutputStream::Stderr, "two")
        .unwrap();
    until("two lines", || messages(&engine, &stream).len() == 2).await;
    // The agent stops; the container writes on; a new engine on the same data resumes.
    drop(engine);
    h.runtime
        .write_output(&name, OutputStream::Stdout, "three")
        .unwrap();
    let (engine, _reports) = h.engine_with(cfg).await;
    until("three lines", || messages(&engine, &stream).len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&engine, &stream), ["one", "two", "three"]);
}

#[tokio::test]
async fn a_missing_group_fails_the_start_as_ecs_does() {
    let h = MemoryHarness::memory("nogroup");
    let mut cfg = h.config();
    cfg.log_streams = LogStreams(Arc::new(OneGroup));
    let (engine, mut reports) = h.engine_with(cfg).await;
    let mut app = container("app", &["sleep", "3600"]);
    app.log_configuration = Some(awslogs("missing"));
    let a = task("logs2", vec![app]);
    engine.assign(vec![a.clone()], false);
    let stopped = reports
        .until(&a.task_arn, 30, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(stopped.stop_code, Some(TaskStopCode::TaskFailedToStart));
    let reason = stopped.stopped_reason.unwrap();
    assert!(
        reason.starts_with("CannotStartContainerError: ")
            && reason
                .ends_with("ResourceNotFoundException: The specified log group does not exist."),
        "{reason}"
    );
}
