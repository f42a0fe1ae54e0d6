//! The verifier against requests signed by the official `aws-sigv4` crate, and our signer
//! against our verifier: what AWS's own SDKs send must pass, tampering and skew must not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: any failure must fail loudly.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use flotilla_sigv4::target::{ecs_target, json_headers};
use flotilla_sigv4::{verify, AuthCode, AuthError, Caller, Credential, Request, Signer};
use std::time::{Duration, UNIX_EPOCH};

const NOW: i64 = 1_795_000_000;

fn cred(token: Option<&str>) -> Credential {
    Credential {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: token.map(str::to_string),
        principal_arn: "arn:aws:iam::123456789012:root".into(),
    }
}

/// Signs a request with the official `aws-sigv4` crate and returns its headers.
fn signed(body: &str, at: i64, secret: &str, token: Option<&str>) -> Vec<(String, String)> {
    let creds = Credentials::new(
        "AKIDEXAMPLE",
        secret,
        token.map(str::to_string),
        None,
        "test",
    );
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("ecs")
        .time(UNIX_EPOCH + Duration::from_secs(at as u64))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let mut headers = vec![
        ("host".to_string(), "127.0.0.1:8080".to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        (
            "x-amz-target".to_string(),
            "AmazonEC2ContainerServiceV20141113.ListClusters".to_string(),
        ),
    ];
    let req = SignableRequest::new(
        "POST",
        "http://127.0.0.1:8080/",
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _sig) = sign(req, &params).unwrap().into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_string(), v.to_string()));
    }
    headers
}

fn check(headers: &[(String, String)], body: &str, c: &Credential) -> Result<Caller, AuthError> {
    verify("POST", "/", "", headers, body.as_bytes(), NOW, |k| {
        (k == c.access_key_id).then_some(c)
    })
}

#[test]
fn accepts_what_the_official_signer_produces() {
    let c = cred(None);
    let h = signed("{}", NOW, &c.secret_access_key, None);
    let caller = check(&h, "{}", &c).unwrap();
    assert_eq!(caller.region, "us-east-1");
}

#[test]
fn rejects_tampering_wrong_secret_and_skew() {
    let c = cred(None);
    let h = signed("{}", NOW, &c.secret_access_key, None);
    assert_eq!(
        check(&h, "{\"a\":1}", &c).unwrap_err().code(),
        AuthCode::InvalidSignature
    );
    let h = signed("{}", NOW, "wrong", None);
    assert_eq!(
        check(&h, "{}", &c).unwrap_err().code(),
        AuthCode::InvalidSignature
    );
    let h = signed("{}", NOW - 16 * 60, &c.secret_access_key, None);
    let e = check(&h, "{}", &c).unwrap_err();
    assert_eq!(e.code().wire_type(), "InvalidSignatureException");
    assert!(e.to_string().contains("Signature expired"));
    let h = signed("{}", NOW - 14 * 60, &c.secret_access_key, None);
    assert!(check(&h, "{}", &c).is_ok());
}

#[test]
fn unknown_key_and_missing_auth() {
    let c = cred(None);
    let h = signed("{}", NOW, &c.secret_access_key, None);
    let e = verify("POST", "/", "", &h, b"{}", NOW, |_| None).unwrap_err();
    assert_eq!(e.code(), AuthCode::UnrecognizedClient);
    let e = verify("POST", "/", "", &[], b"{}", NOW, |_| None).unwrap_err();
    assert_eq!(e.code(), AuthCode::MissingAuthenticationToken);
}

#[test]
fn our_signer_is_accepted_by_our_verifier() {
    let c = cred(Some("TOK"));
    let target = ecs_target("ListClusters");
    let base = json_headers("127.0.0.1:8080", &target);
    let signer = Signer {
        region: "us-east-1",
        access_key_id: &c.access_key_id,
        secret_access_key: &c.secret_access_key,
        session_token: Some("TOK"),
    };
    let added = flotilla_sigv4::sign(&Request::post(&base, b"{}"), &signer, NOW);
    let mut headers: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    headers.extend(added);
    assert!(check(&headers, "{}", &c).is_ok());
    assert!(check(&headers, "{ }", &c).is_err());
}

#[test]
fn our_signer_signs_a_get_with_a_query() {
    let c = cred(None);
    let host = [("host", "127.0.0.1:8080")];
    let req = Request {
        method: "GET",
        path: "/agent/v1/session",
        query: "b=2&a=1",
        headers: &host,
        body: b"",
    };
    let signer = Signer {
        region: "eu-west-1",
        access_key_id: &c.access_key_id,
        secret_access_key: &c.secret_access_key,
        session_token: None,
    };
    let mut headers = vec![("Host".to_string(), "127.0.0.1:8080".to_string())];
    headers.extend(flotilla_sigv4::sign(&req, &signer, NOW));
    let lookup = |k: &str| (k == c.access_key_id).then_some(&c);
    let caller = verify(
        "GET",
        "/agent/v1/session",
        "a=1&b=2",
        &headers,
        b"",
        NOW,
        lookup,
    );
    assert_eq!(caller.unwrap().region, "eu-west-1");
    let moved = verify(
        "GET",
        "/agent/v1/other",
        "a=1&b=2",
        &headers,
        b"",
        NOW,
        lookup,
    );
    assert_eq!(moved.unwrap_err(), AuthError::SignatureMismatch);
}

#[test]
fn session_tokens() {
    let c = cred(Some("TOKEN123"));
    let h = signed("{}", NOW, &c.secret_access_key, Some("TOKEN123"));
    assert!(check(&h, "{}", &c).is_ok());
    let h = signed("{}", NOW, &c.secret_access_key, Some("OTHER"));
    assert_eq!(
        check(&h, "{}", &c).unwrap_err().code(),
        AuthCode::UnrecognizedClient
    );
    let h = signed("{}", NOW, &c.secret_access_key, None);
    assert_eq!(
        check(&h, "{}", &c).unwrap_err().code(),
        AuthCode::UnrecognizedClient
    );
}

#[test]
fn messages_are_aws_wording() {
    let c = cred(None);
    let mut h = signed("{}", NOW, &c.secret_access_key, None);
    h.retain(|(k, _)| k != "x-amz-date");
    let e = check(&h, "{}", &c).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The request must contain an 'X-Amz-Date' header."
    );
    let bad = vec![("Authorization".to_string(), "Basic abc".to_string())];
    let e = check(&bad, "{}", &c).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Only AWS4-HMAC-SHA256 (Signature Version 4) is supported."
    );
    assert_eq!(e.code().wire_type(), "InvalidSignatureException");
}
