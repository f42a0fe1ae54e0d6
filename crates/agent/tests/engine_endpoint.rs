//! The task engine's side of the task metadata and credentials endpoint, on the in-memory
//! runtime with paused time and a recording NAT redirector: the containers' variables, the
//! rules installed before they start and removed when the task stops, the role's credentials
//! asked for before the containers are created and refreshed at 60 % of their life, and the
//! tasks that cannot get them failing to start. The same runs on Docker with real rules in the
//! end-to-end suite (`tests/test_task_role.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{container, task, MemoryHarness, Reports};
use flotilla_agent::engine::{CredentialsRequest, Engine, TaskEndpointSetup};
use flotilla_agent::metadata::redirect::{Chain, RecordingRedirector};
use flotilla_agent::metadata::{Reach, CREDENTIALS_VARIABLE, METADATA_VARIABLE};
use flotilla_agent::spec::container_name;
use flotilla_model::shapes::{NetworkMode, TaskStopCode};
use flotilla_model::status::TaskStatus;
use flotilla_protocol::{CredentialsOutcome, RoleCredentials, SecretText, TaskAssignment};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROLE: &str = "arn:aws:iam::000000000000:role/app";

struct Setup {
    h: MemoryHarness,
    rules: Arc<RecordingRedirector>,
    cgroup2: tempfile::TempDir,
}

fn setup(name: &str) -> Setup {
    Setup {
        h: MemoryHarness::memory(name),
        rules: Arc::new(RecordingRedirector::default()),
        cgroup2: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    async fn engine(&self, host: Result<PathBuf, String>) -> (Engine, Reports) {
        let mut cfg = self.h.config();
        cfg.task_endpoint = Some(TaskEndpointSetup {
            names: None,
            protection: None,
            upstreams: Vec::new(),
            redirector: self.rules.clone(),
            reach: Some(Reach {
                bridge: Ok(Ipv4Addr::new(172, 17, 0, 1)),
                host,
                awsvpc: Ok(()),
            }),
        });
        self.h.engine_with(cfg).await
    }
}

/// Answers the engine's credential requests as the server would: key `n` is issued now and
/// valid for 100 s (`refuse`: with this reason instead). Returns the keys handed out.
fn answer_credentials(
    engine: &Engine,
    refuse: Option<&'static str>,
) -> Arc<Mutex<Vec<RoleCredentials>>> {
    let mut rx = engine.credential_requests().unwrap();
    let issued = Arc::new(Mutex::new(Vec::new()));
    // The server's clock, on tokio's (paused) clock as the engine's is.
    let (epoch, start) = (
        flotilla_agent::engine::now_epoch(),
        tokio::time::Instant::now(),
    );
    let out = issued.clone();
    tokio::spawn(async move {
        while let Some(CredentialsRequest { reply, .. }) = rx.recv().await {
            let outcome = match refuse {
                Some(reason) => CredentialsOutcome::Failed {
                    reason: reason.into(),
                },
                None => {
                    let now = epoch + start.elapsed().as_secs_f64();
                    let mut all = out.lock().unwrap();
                    let c = RoleCredentials {
                        role_arn: ROLE.into(),
                        access_key_id: format!("ASIAKEY{}", all.len()),
                        secret_access_key: SecretText("s".into()),
                        session_token: SecretText("t".into()),
                        issued_at: now,
                        expiration: now + 100.0,
                    };
                    all.push(c.clone());
                    CredentialsOutcome::Issued { credentials: c }
                }
            };
            let _ = reply.send(outcome);
        }
    });
    issued
}

fn host_task(id: &str) -> TaskAssignment {
    let mut a = task(id, vec![container("app", &["sleep", "3000"])]);
    a.network_mode = NetworkMode::Host;
    a.task_role_arn = Some(ROLE.into());
    a
}

fn env_of(s: &Setup, a: &TaskAssignment) -> Vec<String> {
    s.h.runtime
        .spec_of(&container_name(&a.task_arn, "app"))
        .unwrap()
        .env
}

fn var<'e>(env: &'e [String], name: &str) -> Option<&'e str> {
    env.iter()
        .find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
}

async fn get(engine: &Engine, path: &str) -> (u16, serde_json::Value) {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    engine
        .task_endpoint()
        .unwrap()
        .answer("GET", path, &[], lo, lo)
        .await
}

#[tokio::test(start_paused = true)]
async fn a_host_task_gets_its_variables_rules_and_refreshed_credentials_until_it_stops() {
    let s = setup("endpoint-host");
    let (engine, mut reports) = s.engine(Ok(s.cgroup2.path().to_path_buf())).await;
    let issued = answer_credentials(&engine, None);
    let a = host_task("role1");
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;

    // Its variables, its cgroup as parent, and the rule matching that cgroup.
    let env = env_of(&s, &a);
    let meta = var(&env, METADATA_VARIABLE).unwrap();
    let cred = var(&env, CREDENTIALS_VARIABLE).unwrap();
    assert!(meta.starts_with("http://169.254.170.2/v4/"), "{meta}");
    assert!(cred.starts_with("/v2/credentials/"), "{cred}");
    assert_eq!(var(&env, "AWS_EXECUTION_ENV"), Some("AWS_ECS_EC2"));
    let spec =
        s.h.runtime
            .spec_of(&container_name(&a.task_arn, "app"))
            .unwrap();
    assert_eq!(spec.cgroup_parent.as_deref(), Some("/flotilla/role1"));
    assert!(s.cgroup2.path().join("flotilla/role1").is_dir());
    let rules = s.rules.rules();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].chain, Chain::Output);
    assert!(rules[0]
        .args
        .join(" ")
        .contains("-m cgroup --path flotilla/role1"));
    assert_eq!(rules[0].tag().unwrap().task_arn, a.task_arn);

    // The documents and the credentials, at the ids of its variables.
    let path = meta.trim_start_matches("http://169.254.170.2");
    let (status, doc) = get(&engine, &format!("{path}/task")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["TaskARN"], a.task_arn.as_str());
    assert_eq!(doc["Family"], "t");
    assert_eq!(doc["Revision"], "1");
    assert_eq!(doc["Containers"][0]["KnownStatus"], "RUNNING");
    let (status, c) = get(&engine, cred).await;
    assert_eq!(status, 200);
    assert_eq!(c["AccessKeyId"], "ASIAKEY0");
    assert_eq!(c["RoleArn"], ROLE);

    // Refreshed at 60 % of their 100 s life, without the task noticing.
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!(issued.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(issued.lock().unwrap().len(), 2);
    assert_eq!(get(&engine, cred).await.1["AccessKeyId"], "ASIAKEY1");

    // Stopped: the rule is gone and nothing is served any more.
    engine.assign(vec![common::stop(a.clone())], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert!(s.rules.rules().is_empty());
    assert_eq!(get(&engine, cred).await.0, 404);
    assert_eq!(get(&engine, path).await.0, 404);
}

#[tokio::test(start_paused = true)]
async fn a_bridge_container_gets_a_mac_its_rule_matches_and_no_credentials_without_a_role() {
    let s = setup("endpoint-bridge");
    let (engine, mut reports) = s.engine(Err("no cgroup v2".into())).await;
    let a = task("bridge1", vec![container("app", &["sleep", "3000"])]);
    engine.assign(vec![a.clone()], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Running)
        .await;
    let env = env_of(&s, &a);
    assert!(var(&env, METADATA_VARIABLE).is_some());
    assert_eq!(var(&env, CREDENTIALS_VARIABLE), None);
    let spec =
        s.h.runtime
            .spec_of(&container_name(&a.task_arn, "app"))
            .unwrap();
    let mac = spec.mac_address.expect("a bridge container gets a MAC");
    assert!(mac.starts_with("02:f1:"), "{mac}");
    let rules = s.rules.rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].chain, Chain::Prerouting);
    let text = rules[0].args.join(" ");
    assert!(text.contains(&format!("--mac-source {mac}")), "{text}");
    assert!(
        text.contains("-j DNAT --to-destination 172.17.0.1:"),
        "{text}"
    );
    // Not from the task's address (the in-memory runtime gives bridge containers none), so
    // refused as unknown.
    let path = var(&env, METADATA_VARIABLE)
        .unwrap()
        .trim_start_matches("http://169.254.170.2");
    let gw = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 1));
    let peer = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 9));
    let ep = engine.task_endpoint().unwrap();
    assert_eq!(ep.answer("GET", path, &[], peer, gw).await.0, 404);
    engine.assign(vec![common::stop(a.clone())], false);
    reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert!(s.rules.rules().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_task_with_a_role_fails_to_start_when_it_cannot_get_credentials() {
    // The endpoint cannot reach host tasks here.
    let s = setup("endpoint-unreachable");
    let (engine, mut reports) = s
        .engine(Err("no cgroup v2 hierarchy is mounted".into()))
        .await;
    let _ = answer_credentials(&engine, None);
    let a = host_task("role2");
    engine.assign(vec![a.clone()], false);
    let r = reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.stop_code, Some(TaskStopCode::TaskFailedToStart));
    assert_eq!(
        r.stopped_reason.as_deref(),
        Some("ResourceInitializationError: the task role's credentials cannot be served to this task at 169.254.170.2: no cgroup v2 hierarchy is mounted")
    );
    assert!(s.h.runtime.container_names().is_empty());

    // The server refuses.
    let s = setup("endpoint-refused");
    let (engine, mut reports) = s.engine(Ok(s.cgroup2.path().to_path_buf())).await;
    let _ = answer_credentials(&engine, Some("the task t has stopped"));
    let a = host_task("role3");
    engine.assign(vec![a.clone()], false);
    let r = reports
        .until(&a.task_arn, 60, |r| r.last_status == TaskStatus::Stopped)
        .await;
    assert_eq!(
        r.stopped_reason.as_deref(),
        Some("ResourceInitializationError: unable to get the task role's credentials: the task t has stopped")
    );
    assert!(s.rules.rules().is_empty());
}
