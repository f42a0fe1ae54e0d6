//! Write contention is Flotilla's problem, not the caller's: many clients registering revisions
//! of one task definition family at once all succeed, with distinct, consecutive revisions. Each
//! call is a SigV4-signed `POST /` over a real socket to the axum router, on both stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use flotilla_api::server::TARGET_PREFIX;
use flotilla_sigv4::{sign, Request, Signer};
use flotilla_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How many clients register at once.
const CLIENTS: usize = 64;
/// How long each client keeps registering.
const DURATION: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// One signed ECS call over HTTP/1.1 (`Connection: close`); the status and the JSON body.
async fn post(addr: &str, op: &str, input: &Value) -> (u16, Value) {
    let body = input.to_string();
    let target = format!("{TARGET_PREFIX}{op}");
    let headers = [
        ("host", addr),
        ("content-type", CONTENT_TYPE),
        ("x-amz-target", target.as_str()),
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut req = format!(
        "POST / HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(sign(
            &Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: body.as_bytes(),
            },
            &Signer {
                region: REGION,
                access_key_id: AKID,
                secret_access_key: SECRET,
                session_token: None,
            },
            now,
        ))
    {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, serde_json::from_str(body).expect("a JSON body"))
}

async fn register_revisions(store: Arc<dyn Store>) {
    let (_api, addr) = serve(api_with(store)).await;
    let family = "contended";
    let input = json!({"family": family, "containerDefinitions": [
        {"name": "app", "image": "busybox", "memory": 64}]});
    let deadline = tokio::time::Instant::now() + DURATION;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, input) = (addr.clone(), input.clone());
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                let mut failures = Vec::new();
                while tokio::time::Instant::now() < deadline {
                    match post(&addr, "RegisterTaskDefinition", &input).await {
                        (200, out) => revisions.push(
                            out["taskDefinition"]["revision"]
                                .as_i64()
                                .expect("a revision"),
                        ),
                        (status, out) => failures.push(format!("HTTP {status}: {out}")),
                    }
                }
                (revisions, failures)
            })
        })
        .collect();
    let mut revisions = Vec::new();
    let mut failures = Vec::new();
    for c in clients {
        let (r, f) = c.await.unwrap();
        revisions.extend(r);
        failures.extend(f);
    }
    let calls = revisions.len() + failures.len();
    eprintln!(
        "{CLIENTS} clients, {DURATION:?}: {calls} RegisterTaskDefinition calls, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert!(calls >= CLIENTS, "every client made at least one call");
    revisions.sort_unstable();
    let expected: Vec<i64> = (1..=i64::try_from(calls).unwrap()).collect();
    assert!(
        revisions == expected,
        "revisions are distinct and exactly 1..={calls}"
    );

    // ListTaskDefinitions agrees, page by page.
    let mut listed = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut input = json!({"familyPrefix": family, "maxResults": 100});
        if let Some(t) = &next {
            input["nextToken"] = json!(t);
        }
        let (status, out) = post(&addr, "ListTaskDefinitions", &input).await;
        assert_eq!(status, 200, "{out}");
        for arn in out["taskDefinitionArns"].as_array().unwrap() {
            let (f, rev) = arn.as_str().unwrap().rsplit_once(':').unwrap();
            assert!(f.ends_with(&format!("task-definition/{family}")), "{arn}");
            listed.push(rev.parse::<i64>().unwrap());
        }
        match out["nextToken"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    assert!(listed == expected, "ListTaskDefinitions lists 1..={calls}");
}

on_both_stores!(
    concurrent_registrations_of_one_family_all_succeed_memory_store,
    concurrent_registrations_of_one_family_all_succeed_sqlite_store,
    register_revisions
);
