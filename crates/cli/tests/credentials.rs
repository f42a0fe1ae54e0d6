//! How `flotilla dev` and `flotilla server` get their credentials, and the /metrics endpoint.

#![allow(clippy::unwrap_used)] // Test helpers: any failure must fail the test loudly.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::{sdk, sdk_in};

/// Starts the binary with the given args and environment (credentials removed) and returns the
/// child, its stdout lines up to the "listening on" line, and the endpoint.
fn start(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, Vec<String>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    cmd.args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    let mut endpoint = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            endpoint = a.to_string();
            break;
        }
        lines.push(line);
    }
    assert!(!endpoint.is_empty(), "server did not start: {lines:?}");
    (child, lines, endpoint)
}

#[tokio::test]
async fn dev_generates_prints_and_keeps_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (mut child, lines, endpoint) = start(
        &[
            "dev",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
        ],
        &[],
    );
    let export = lines
        .iter()
        .find(|l| l.contains("export AWS_ACCESS_KEY_ID="))
        .expect("export line printed");
    let akid = export
        .split("AWS_ACCESS_KEY_ID=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let secret = export
        .split("AWS_SECRET_ACCESS_KEY=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let file = std::fs::read_to_string(dir.path().join("credentials")).unwrap();
    assert!(file.starts_with("[default]\n"), "{file}");
    assert!(file.contains(&format!("aws_access_key_id = {akid}")) && file.contains(&secret));

    let ecs = sdk(&endpoint, &akid, &secret, None);
    ecs.create_cluster()
        .cluster_name("gen")
        .send()
        .await
        .unwrap();
    let bad = sdk(&endpoint, &akid, "wrong-secret", None);
    let err = bad.list_clusters().send().await.unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("InvalidSignatureException")
    );

    // /metrics counts requests by operation and outcome.
    let text = reqwest::get(format!("{endpoint}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("flotilla_api_requests_total{operation=\"CreateCluster\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("outcome=\"InvalidSignatureException\""),
        "{text}"
    );
    assert!(
        text.contains("flotilla_api_request_duration_seconds_bucket"),
        "{text}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // A restart on the same data directory keeps the same key pair and the data.
    let (mut child, lines2, endpoint) = start(
        &[
            "dev",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
        ],
        &[],
    );
    assert!(lines2.iter().any(|l| l.contains(&akid)));
    let ecs = sdk(&endpoint, &akid, &secret, None);
    let out = ecs
        .describe_clusters()
        .clusters("gen")
        .send()
        .await
        .unwrap();
    assert_eq!(out.clusters().len(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn server_takes_several_keys_and_session_tokens_from_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flotilla.toml");
    std::fs::write(
        &config,
        r#"
region = "eu-west-1"
regions = ["ap-south-1"]
account = "123456789012"

[[credentials]]
access_key_id = "AKIDALICE"
secret_access_key = "alice-secret"
principal = "arn:aws:iam::123456789012:user/alice"

[[credentials]]
access_key_id = "ASIABOB"
secret_access_key = "bob-secret"
session_token = "bob-token"
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let (mut child, _, endpoint) = start(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let alice = sdk_in(&endpoint, "eu-west-1", "AKIDALICE", "alice-secret", None);
    let out = alice
        .create_cluster()
        .cluster_name("team")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.cluster.unwrap().cluster_arn.as_deref(),
        Some("arn:aws:ecs:eu-west-1:123456789012:cluster/team")
    );
    let td = alice
        .register_task_definition()
        .family("who")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("a")
                .image("busybox")
                .memory(32)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        td.task_definition.unwrap().registered_by.as_deref(),
        Some("arn:aws:iam::123456789012:user/alice")
    );

    let bob = sdk_in(
        &endpoint,
        "eu-west-1",
        "ASIABOB",
        "bob-secret",
        Some("bob-token"),
    );
    bob.list_clusters().send().await.unwrap();
    // The other region of the config file has its own clusters; a region not served is
    // refused as AWS refuses a wrongly scoped credential.
    let south = sdk_in(&endpoint, "ap-south-1", "AKIDALICE", "alice-secret", None);
    assert!(south
        .list_clusters()
        .send()
        .await
        .unwrap()
        .cluster_arns()
        .is_empty());
    let err = sdk(&endpoint, "AKIDALICE", "alice-secret", None)
        .list_clusters()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.meta().code(), Some("InvalidSignatureException"));
    assert_eq!(
        err.meta().message(),
        Some("Credential should be scoped to a valid region, not 'us-east-1'. ")
    );
    let bob_wrong_token = sdk_in(
        &endpoint,
        "eu-west-1",
        "ASIABOB",
        "bob-secret",
        Some("stolen"),
    );
    let err = bob_wrong_token.list_clusters().send().await.unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("UnrecognizedClientException")
    );
    let stranger = sdk_in(&endpoint, "eu-west-1", "AKIDNOBODY", "x", None);
    let err = stranger.list_clusters().send().await.unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("UnrecognizedClientException")
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn server_without_credentials_explains_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no credentials configured") && err.contains("[[credentials]]"),
        "{err}"
    );
}
