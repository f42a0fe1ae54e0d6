//! Agent identity through the real router: a join token created by the operator, the unsigned
//! join that registers a new instance and issues the agent its own key, that key opening its own
//! instance's session and no other, refused the user API, and revoked by deregistration, which
//! also closes the session it holds. The token's and the key's secrets are never stored in clear.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use common::{connect_session as connect, epoch_now as now, SessionWs as Ws};
use flotilla_protocol::ServerMessage;
use flotilla_sigv4::{Request, Signer};
use flotilla_store::{MemoryStore, Store};
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn signer<'a>(akid: &'a str, secret: &'a str) -> Signer<'a> {
    Signer {
        region: REGION,
        access_key_id: akid,
        secret_access_key: secret,
        session_token: None,
    }
}

/// POSTs `body` to `target`, signed with `s` (or not): status and JSON body.
async fn post(addr: &str, target: &str, body: &Value, s: Option<&Signer<'_>>) -> (u16, Value) {
    let ct = "application/x-amz-json-1.1";
    let body = body.to_string();
    let headers = [
        ("host", addr),
        ("content-type", ct),
        ("x-amz-target", target),
    ];
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .header("content-type", ct)
        .header("x-amz-target", target)
        .body(body.clone());
    if let Some(s) = s {
        for (k, v) in flotilla_sigv4::sign(&Request::post(&headers, body.as_bytes()), s, now()) {
            req = req.header(k, v);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn kind(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or("")
}

/// Reads until the session ends (a close frame, an error or the end); panics after 10 s.
async fn ended(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the session to end")
        {
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_agent_speaks_only_for_its_instance_until_deregistered() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (api, addr) =
        serve(api_with(store.clone()).with_secrets(flotilla_seal::Key::from_bytes([7; 32]))).await;
    cluster(&api, "c").await;
    let other = register(&api, "c", 1024, 1024, "us-east-1a").await;
    let operator = signer(AKID, SECRET);
    let admin = |op: &str| format!("FlotillaAdmin.{op}");

    let (status, created) = post(
        &addr,
        &admin("CreateJoinToken"),
        &json!({"cluster": "c", "ttl": "1h"}),
        Some(&operator),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    let secret = token.split_once('.').unwrap().1.to_string();

    // The join is unsigned; the token authenticates it.
    let registration = json!({"totalResources": resources(1024, 1024)});
    let (status, joined) = post(
        &addr,
        &admin("RegisterAgent"),
        &json!({"joinToken": token, "registration": registration}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{joined}");
    let arn = joined["containerInstance"]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(arn, other);
    let akid = joined["credentials"]["accessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let key_secret = joined["credentials"]["secretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(akid.starts_with("AGNT"), "{akid}");
    let agent = signer(&akid, &key_secret);

    // Neither secret is in the store in clear.
    let all = store.list("", None, 0).await.unwrap();
    for kv in &all.items {
        let v = String::from_utf8_lossy(&kv.value);
        assert!(
            !v.contains(&secret) && !v.contains(&key_secret),
            "{}",
            kv.key
        );
    }

    // A wrong secret, and a join with the operator's signature but no token, are refused.
    let wrong = format!("{}.{}", token.split('.').next().unwrap(), "a".repeat(32));
    let (status, body) = post(
        &addr,
        &admin("RegisterAgent"),
        &json!({"joinToken": wrong}),
        None,
    )
    .await;
    assert_eq!(
        (status, kind(&body)),
        (403, "UnrecognizedClientException"),
        "{body}"
    );
    let (status, body) = post(&addr, &admin("RegisterAgent"), &json!({}), Some(&operator)).await;
    assert_eq!(
        (status, kind(&body)),
        (403, "UnrecognizedClientException"),
        "{body}"
    );

    // The user API is refused with IAM's words; its own instance's calls pass.
    let (status, body) = post(
        &addr,
        "AmazonEC2ContainerServiceV20141113.ListClusters",
        &json!({}),
        Some(&agent),
    )
    .await;
    assert_eq!(
        (status, kind(&body)),
        (403, "AccessDeniedException"),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().starts_with(&format!(
            "User: {arn} is not authorized to perform: ecs:ListClusters"
        )),
        "{body}"
    );
    let (status, body) = post(
        &addr,
        "AmazonEC2ContainerServiceV20141113.DiscoverPollEndpoint",
        &json!({"cluster": "c", "containerInstance": arn}),
        Some(&agent),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &addr,
        "AmazonEC2ContainerServiceV20141113.RegisterContainerInstance",
        &json!({"cluster": "c", "containerInstanceArn": other}),
        Some(&agent),
    )
    .await;
    assert_eq!(
        (status, kind(&body)),
        (403, "AccessDeniedException"),
        "{body}"
    );

    // Another instance's session is refused; its own opens.
    assert!(connect(&addr, &other, &agent).await.is_err());
    let mut ws = connect(&addr, &arn, &agent).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    let Message::Text(t) = first else {
        panic!("{first:?}")
    };
    assert!(matches!(
        flotilla_protocol::decode::<ServerMessage>(t.as_str()).unwrap(),
        ServerMessage::Welcome { .. }
    ));

    // Deregistration revokes the key: the open session ends, and nothing signed with it passes.
    ok(
        &api,
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": arn, "force": true}),
    )
    .await;
    ended(&mut ws).await;
    assert!(connect(&addr, &arn, &agent).await.is_err());
    let (status, body) = post(
        &addr,
        "AmazonEC2ContainerServiceV20141113.DiscoverPollEndpoint",
        &json!({"cluster": "c", "containerInstance": arn}),
        Some(&agent),
    )
    .await;
    assert_eq!(
        (status, kind(&body)),
        (403, "UnrecognizedClientException"),
        "{body}"
    );

    // A revoked token admits no one; the list shows it and one join.
    let id = created["id"].as_str().unwrap();
    let (status, _) = post(
        &addr,
        &admin("RevokeJoinToken"),
        &json!({"id": id}),
        Some(&operator),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(
        &addr,
        &admin("RegisterAgent"),
        &json!({"joinToken": token}),
        None,
    )
    .await;
    assert_eq!(
        (status, kind(&body)),
        (403, "UnrecognizedClientException"),
        "{body}"
    );
    let (_, listed) = post(&addr, &admin("ListJoinTokens"), &json!({}), Some(&operator)).await;
    assert_eq!(listed["tokens"][0]["state"], "REVOKED");
    assert_eq!(listed["tokens"][0]["joins"], 1);
    assert!(!listed.to_string().contains(&secret));
}
