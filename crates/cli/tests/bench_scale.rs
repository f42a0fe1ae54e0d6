//! `flotilla bench scale` at a tiny size: a real server (child process) and five hollow agents
//! in the bench's process run fifty tasks and a service, lose a host and replace its tasks; the
//! report says so. It checks outcomes only, never a figure of time.

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::process::Command;

/// Runs `flotilla bench scale ARGS --output json`; its report, and its stderr (progress).
fn bench(args: &[&str]) -> (serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["bench", "scale"])
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap_or_else(|e| panic!("could not run the bench: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bench failed:\n{stderr}");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{stderr}"));
    (report, stderr)
}

#[test]
fn a_tiny_bench_runs_every_task() {
    let (report, stderr) = bench(&[
        "--instances",
        "5",
        "--tasks",
        "50",
        "--services",
        "1",
        "--service-tasks",
        "10",
        "--lost-hosts",
        "1",
        "--heartbeat-seconds",
        "2",
        "--stall-seconds",
        "120",
    ]);
    assert_eq!(report["instances"], 5, "{report}");
    assert_eq!(report["placed"], 50, "{report}");
    assert_eq!(report["placement_failures"], 0, "{report}");
    assert_eq!(report["running"], 50, "{report}");
    assert_eq!(report["run_task"]["calls"], 5, "{report}");
    assert_eq!(report["services"]["tasks_per_service"], 10, "{report}");
    assert_eq!(report["lost_hosts"]["hosts"], 1, "{report}");
    assert!(
        report["lost_hosts"]["tasks_lost"].as_u64() >= Some(1),
        "{report}"
    );
    assert!(report["server_rss_bytes"].as_u64() > Some(0), "{report}");
    assert!(report["store_bytes"].as_u64() > Some(0), "{report}");
    // Progress went to stderr while it ran.
    assert!(stderr.contains("RUNNING"), "{stderr}");
}

/// A service of more tasks than one etcd transaction can create (etcd accepts 128 operations
/// in one by default) starts on etcd: the service loop places them in several transactions.
/// Before, its one transaction was refused on every pass and the service never started.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_larger_than_one_etcd_transaction_starts_on_etcd() {
    let etcd = support::EtcdServer::start().await;
    let endpoint = format!("127.0.0.1:{}", etcd.member.client_port);
    let (report, _) = tokio::task::spawn_blocking(move || {
        bench(&[
            "--instances",
            "5",
            "--tasks",
            "10",
            "--services",
            "1",
            "--service-tasks",
            "150",
            "--lost-hosts",
            "0",
            "--store",
            "etcd",
            "--etcd-endpoints",
            &endpoint,
            "--stall-seconds",
            "60",
        ])
    })
    .await
    .unwrap();
    assert_eq!(report["store"], "etcd", "{report}");
    assert_eq!(report["running"], 10, "{report}");
    assert_eq!(report["services"]["tasks_per_service"], 150, "{report}");
    drop(etcd);
}
