//! ECS API benchmark: requests per second and p50/p99 latency of RegisterTaskDefinition and
//! DescribeTaskDefinition against a real `flotilla dev` process (release build, embedded SQLite
//! store with fsync on every commit), driven over HTTP by this separate process through the AWS
//! SDK for Rust, with 1 and 16 concurrent clients.
//!
//! `cargo run --release -p flotilla --example api_bench [-- SECONDS_PER_CASE]`

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ecs::types::ContainerDefinition;

#[path = "../tests/support/sdk.rs"]
mod support;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AKID: &str = "AKIDBENCH";
const SECRET: &str = "bench-secret";

fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    let bin = dir.join("flotilla");
    if !bin.exists() {
        println!("building the flotilla binary first ...");
        let release = dir.ends_with("release");
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "-p", "flotilla", "--bin", "flotilla"]);
        if release {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "cargo build failed");
    }
    bin
}

fn container(i: usize) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("web")
        .image("busybox")
        .memory(64)
        .environment(
            aws_sdk_ecs::types::KeyValuePair::builder()
                .name("N")
                .value(i.to_string())
                .build(),
        )
        .build()
}

async fn run_case(
    ecs: &aws_sdk_ecs::Client,
    op: &str,
    concurrency: usize,
    dur: Duration,
) -> (f64, Vec<f64>) {
    let deadline = Instant::now() + dur;
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    let started = Instant::now();
    for w in 0..concurrency {
        let ecs = ecs.clone();
        let op = op.to_string();
        let counter = counter.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t = Instant::now();
                if op == "register" {
                    ecs.register_task_definition()
                        .family(format!("bench-{w}"))
                        .container_definitions(container(i))
                        .send()
                        .await
                        .unwrap();
                } else {
                    ecs.describe_task_definition()
                        .task_definition("bench-seed")
                        .send()
                        .await
                        .unwrap();
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (all.len() as f64 / secs, all)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(server_binary())
        .args(["dev", "--no-agent", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AWS_ACCESS_KEY_ID", AKID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut endpoint = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(a) = line.unwrap().strip_prefix("listening on ") {
            endpoint = a.to_string();
            break;
        }
    }
    let ecs = support::sdk(&endpoint, AKID, SECRET, None);
    ecs.register_task_definition()
        .family("bench-seed")
        .container_definitions(container(0))
        .send()
        .await
        .unwrap();
    println!("flotilla API benchmark: server {endpoint} (separate process, SQLite synchronous=FULL), {secs} s per case, client aws-sdk-ecs");
    println!(
        "{:<28} {:>11} {:>12} {:>10} {:>10}",
        "operation", "concurrency", "requests/s", "p50 ms", "p99 ms"
    );
    for (op, name) in [
        ("describe", "DescribeTaskDefinition"),
        ("register", "RegisterTaskDefinition"),
    ] {
        for c in [1, 16] {
            let (rps, lat) = run_case(&ecs, op, c, Duration::from_secs(secs)).await;
            println!(
                "{name:<28} {c:>11} {rps:>12.0} {:>10.2} {:>10.2}",
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
