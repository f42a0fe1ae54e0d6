//! Health probes against real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use flotilla_lb::*;

fn check(protocol: HealthCheckProtocol, path: &str, matcher: &str) -> HealthCheck {
    HealthCheck {
        protocol,
        port: None,
        path: path.into(),
        matcher: matcher.parse().unwrap(),
        timeout: Duration::from_millis(500),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes() {
    let a = backend("a").await;
    let http = |path, m| check(HealthCheckProtocol::Http, path, m);
    assert_eq!(probe(&http("/", "200"), a.addr).await, ProbeResult::Passed);
    assert_eq!(
        probe(&http("/status?code=302", "200,302"), a.addr).await,
        ProbeResult::Passed
    );
    assert_eq!(
        probe(&http("/status?code=404", "200-299"), a.addr).await,
        ProbeResult::Failed(FailReason::ResponseCodeMismatch(404))
    );
    assert_eq!(
        probe(&http("/slow?ms=2000", "200"), a.addr).await,
        ProbeResult::Failed(FailReason::Timeout)
    );
    let dead = refused_addr().await;
    assert_eq!(
        probe(&http("/", "200"), dead).await,
        ProbeResult::Failed(FailReason::ConnectionRefused)
    );
    assert_eq!(
        probe(&check(HealthCheckProtocol::Tcp, "", "200"), a.addr).await,
        ProbeResult::Passed
    );
    assert_eq!(
        probe(&check(HealthCheckProtocol::Tcp, "", "200"), dead).await,
        ProbeResult::Failed(FailReason::ConnectionRefused)
    );
    // The check's own port instead of the target's.
    let mut on_port = http("/", "200");
    on_port.port = Some(a.addr.port());
    assert_eq!(probe(&on_port, dead).await, ProbeResult::Passed);
}
