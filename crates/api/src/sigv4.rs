//! AWS Signature Version 4 verification for the ECS API.
//!
//! Every request carries `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/ecs/aws4_request,
//! SignedHeaders=..., Signature=...` and `X-Amz-Date`. [`verify`] rebuilds the canonical request
//! from the headers the client signed and the body, derives the signing key from the configured
//! secret and compares signatures in constant time.
//!
//! Outcomes follow AWS: no credentials is `MissingAuthenticationTokenException`; an unknown access
//! key is `UnrecognizedClientException`; a wrong signature is `InvalidSignatureException`; a
//! request dated more than 15 minutes away from the server clock is `InvalidSignatureException`
//! with "Signature expired"; a session token that does not belong to the key is
//! `UnrecognizedClientException` ("The security token included in the request is invalid.").
//! All are HTTP 403.
//!
//! What this module is not: it does not sign requests (clients do) and it reads no clock (the
//! caller passes `now`).

use flotilla_model::{EcsError, ErrorCode};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// One configured credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// For temporary credentials: the session token that must accompany the key.
    pub session_token: Option<String>,
    /// The principal ARN reported as `registeredBy` and the like.
    pub principal_arn: String,
}

/// The most a request's `X-Amz-Date` may differ from the server clock.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// What a verified request told us about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key that signed.
    pub access_key_id: String,
    /// The region in the credential scope.
    pub region: String,
    /// The principal ARN of the key.
    pub principal_arn: String,
}

fn auth_error(code: ErrorCode, msg: impl Into<String>) -> EcsError {
    EcsError::new(code, msg)
}

/// Parses `YYYYMMDDTHHMMSSZ` into epoch seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let dt = time::PrimitiveDateTime::parse(s, &fmt).ok()?;
    Some(dt.assume_utc().unix_timestamp())
}

/// Verifies a request. `headers` are (name, value) pairs as received (any case); `path` is the
/// request path and `query` the raw query string.
pub fn verify<'a>(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_epoch: i64,
    lookup: impl Fn(&str) -> Option<&'a Credential>,
) -> Result<Caller, EcsError> {
    let header = |name: &str| -> Option<&str> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let Some(auth) = header("authorization") else {
        return Err(auth_error(
            ErrorCode::MissingAuthenticationTokenException,
            "Missing Authentication Token",
        ));
    };
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(auth_error(
            ErrorCode::InvalidSignatureException,
            "Only AWS4-HMAC-SHA256 (Signature Version 4) is supported.",
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(auth_error(
            ErrorCode::InvalidSignatureException,
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(auth_error(
            ErrorCode::InvalidSignatureException,
            format!("Credential should be scoped to a valid region and service: '{credential}'."),
        ));
    }
    let (akid, date, region, service) = (scope[0], scope[1], scope[2], scope[3]);
    let Some(cred) = lookup(akid) else {
        return Err(auth_error(
            ErrorCode::UnrecognizedClientException,
            "The security token included in the request is invalid.",
        ));
    };
    match (&cred.session_token, header("x-amz-security-token")) {
        (Some(expected), Some(got)) if expected == got => {}
        (None, None) => {}
        _ => {
            return Err(auth_error(
                ErrorCode::UnrecognizedClientException,
                "The security token included in the request is invalid.",
            ))
        }
    }
    let Some(amz_date) = header("x-amz-date") else {
        return Err(auth_error(
            ErrorCode::InvalidSignatureException,
            "The request must contain an 'X-Amz-Date' header.",
        ));
    };
    let Some(req_time) = parse_amz_date(amz_date) else {
        return Err(auth_error(
            ErrorCode::InvalidSignatureException,
            format!("Invalid X-Amz-Date '{amz_date}': expected YYYYMMDDTHHMMSSZ."),
        ));
    };
    if (now_epoch - req_time).abs() > MAX_SKEW_SECONDS {
        return Err(auth_error(
            ErrorCode::InvalidSignatureExceptionSkew,
            format!(
                "Signature expired: {amz_date} is now earlier or later than 15 minutes from the server time. Check your clock."
            ),
        ));
    }
    if !amz_date.starts_with(date) {
        return Err(auth_error(
            ErrorCode::InvalidSignatureException,
            format!("Date in Credential scope does not match YYYYMMDD from X-Amz-Date: '{date}' vs '{amz_date}'."),
        ));
    }
    // Canonical request.
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            return Err(auth_error(
                ErrorCode::InvalidSignatureException,
                format!("The request signature we calculated does not match the signature you provided: signed header '{name}' is missing."),
            ));
        }
        let joined: Vec<String> = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!(
            "{}:{}\n",
            name.to_ascii_lowercase(),
            joined.join(",")
        ));
    }
    let expected = compute_signature(&SigningInput {
        method,
        path,
        query,
        canonical_headers: &canonical_headers,
        signed_headers,
        body,
        amz_date,
        date,
        region,
        service,
        secret: &cred.secret_access_key,
    });
    let Ok(given) = hex::decode(signature) else {
        return Err(signature_mismatch());
    };
    if !constant_time_eq(&expected, &given) {
        return Err(signature_mismatch());
    }
    Ok(Caller {
        access_key_id: akid.to_string(),
        region: region.to_string(),
        principal_arn: cred.principal_arn.clone(),
    })
}

/// Everything a SigV4 signature covers.
struct SigningInput<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    canonical_headers: &'a str,
    signed_headers: &'a str,
    body: &'a [u8],
    amz_date: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    secret: &'a str,
}

fn compute_signature(i: &SigningInput<'_>) -> Vec<u8> {
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        i.method,
        if i.path.is_empty() { "/" } else { i.path },
        canonical_query(i.query),
        i.canonical_headers,
        i.signed_headers,
        hex::encode(Sha256::digest(i.body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{}/{}/{}/aws4_request\n{}",
        i.amz_date,
        i.date,
        i.region,
        i.service,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = signing_key(i.secret, i.date, i.region, i.service);
    hmac(&key, string_to_sign.as_bytes())
}

/// Signs an ECS API request (`POST /`) the way the AWS SDKs do, for Flotilla's own clients (the
/// CLI verbs, the agent). Returns the headers to add: `x-amz-date`, optionally
/// `x-amz-security-token`, and `authorization`. `headers` are the other headers to sign
/// (lowercase names), e.g. `host`, `content-type`, `x-amz-target`.
pub fn sign(
    headers: &[(&str, &str)],
    body: &[u8],
    now_epoch: i64,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Vec<(String, String)> {
    sign_request(
        &RequestToSign {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        },
        now_epoch,
        region,
        access_key_id,
        secret_access_key,
        session_token,
    )
}

/// A request to sign with [`sign_request`].
pub struct RequestToSign<'a> {
    /// HTTP method, e.g. `GET` for the agent session's WebSocket upgrade.
    pub method: &'a str,
    /// Path, e.g. `/agent/v1/session`.
    pub path: &'a str,
    /// Raw query string without `?` (its parameters must already be URI-encoded).
    pub query: &'a str,
    /// Headers to sign (names in any case), e.g. `host`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (empty for GET).
    pub body: &'a [u8],
}

/// Signs any request to the Flotilla server with SigV4 (service `ecs`) and returns the headers
/// to add: `x-amz-date`, optionally `x-amz-security-token`, and `authorization`.
pub fn sign_request(
    req: &RequestToSign<'_>,
    now_epoch: i64,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Vec<(String, String)> {
    let (headers, body) = (req.headers, req.body);
    let amz_date = time::OffsetDateTime::from_unix_timestamp(now_epoch)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .ok()
        })
        .unwrap_or_default();
    let date = amz_date.get(..8).unwrap_or("").to_string();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    all.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = session_token {
        all.push(("x-amz-security-token".into(), t.to_string()));
    }
    all.sort();
    let signed_headers: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    let signed_headers = signed_headers.join(";");
    let canonical_headers: String = all.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signature = compute_signature(&SigningInput {
        method: req.method,
        path: req.path,
        query: req.query,
        canonical_headers: &canonical_headers,
        signed_headers: &signed_headers,
        body,
        amz_date: &amz_date,
        date: &date,
        region,
        service: "ecs",
        secret: secret_access_key,
    });
    let mut out = vec![("x-amz-date".to_string(), amz_date)];
    if let Some(t) = session_token {
        out.push(("x-amz-security-token".into(), t.to_string()));
    }
    out.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{date}/{region}/ecs/aws4_request, SignedHeaders={signed_headers}, Signature={}",
            hex::encode(signature)
        ),
    ));
    out
}

fn signature_mismatch() -> EcsError {
    auth_error(
        ErrorCode::InvalidSignatureException,
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    )
}

fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
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

    fn check(headers: &[(String, String)], body: &str, c: &Credential) -> Result<Caller, EcsError> {
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
            check(&h, "{\"a\":1}", &c).unwrap_err().code,
            ErrorCode::InvalidSignatureException
        );
        let h = signed("{}", NOW, "wrong", None);
        assert_eq!(
            check(&h, "{}", &c).unwrap_err().code,
            ErrorCode::InvalidSignatureException
        );
        let h = signed("{}", NOW - 16 * 60, &c.secret_access_key, None);
        let e = check(&h, "{}", &c).unwrap_err();
        assert_eq!(e.code.wire_type(), "InvalidSignatureException");
        assert!(e.message.contains("Signature expired"));
        let h = signed("{}", NOW - 14 * 60, &c.secret_access_key, None);
        assert!(check(&h, "{}", &c).is_ok());
    }

    #[test]
    fn unknown_key_and_missing_auth() {
        let c = cred(None);
        let h = signed("{}", NOW, &c.secret_access_key, None);
        let e = verify("POST", "/", "", &h, b"{}", NOW, |_| None).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnrecognizedClientException);
        let e = verify("POST", "/", "", &[], b"{}", NOW, |_| None).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingAuthenticationTokenException);
    }

    #[test]
    fn our_signer_is_accepted_by_our_verifier() {
        let c = cred(Some("TOK"));
        let base = [
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/x-amz-json-1.1"),
        ];
        let added = super::sign(
            &base,
            b"{}",
            NOW,
            "us-east-1",
            &c.access_key_id,
            &c.secret_access_key,
            Some("TOK"),
        );
        let mut headers: Vec<(String, String)> = base
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        headers.extend(added);
        assert!(check(&headers, "{}", &c).is_ok());
        assert!(check(&headers, "{ }", &c).is_err());
    }

    #[test]
    fn session_tokens() {
        let c = cred(Some("TOKEN123"));
        let h = signed("{}", NOW, &c.secret_access_key, Some("TOKEN123"));
        assert!(check(&h, "{}", &c).is_ok());
        let h = signed("{}", NOW, &c.secret_access_key, Some("OTHER"));
        assert_eq!(
            check(&h, "{}", &c).unwrap_err().code,
            ErrorCode::UnrecognizedClientException
        );
        let h = signed("{}", NOW, &c.secret_access_key, None);
        assert_eq!(
            check(&h, "{}", &c).unwrap_err().code,
            ErrorCode::UnrecognizedClientException
        );
    }
}
