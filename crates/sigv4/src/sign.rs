//! Signing: the one function every Flotilla client signs with (the agent's API calls and its
//! session's WebSocket upgrade, the CLI's verbs), the way the AWS SDKs do.

use crate::canonical::{compute_signature, format_amz_date, SigningInput};
use crate::target::ECS_SERVICE;

/// A request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
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

impl<'a> Request<'a> {
    /// An API call of the JSON protocol: `POST /` with `headers` (see
    /// [`crate::target::json_headers`]) and `body`.
    pub fn post(headers: &'a [(&'a str, &'a str)], body: &'a [u8]) -> Self {
        Request {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        }
    }
}

/// Who signs, and for which region: the credential scope is `KEY/DATE/REGION/ecs/aws4_request`.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The region of the credential scope.
    pub region: &'a str,
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// For temporary credentials: the session token, sent as `x-amz-security-token` and signed.
    pub session_token: Option<&'a str>,
}

/// Signs `req` at `now_epoch` (seconds) with SigV4 (service `ecs`) and returns the headers to
/// add to it: `x-amz-date`, `x-amz-security-token` if the signer has a session token, and
/// `authorization`.
pub fn sign(req: &Request<'_>, signer: &Signer<'_>, now_epoch: i64) -> Vec<(String, String)> {
    sign_for(ECS_SERVICE, req, signer, now_epoch)
}

/// [`sign`] for another service of the endpoint: `service` is the signing name in the
/// credential scope (`logs` for CloudWatch Logs).
pub fn sign_for(
    service: &str,
    req: &Request<'_>,
    signer: &Signer<'_>,
    now_epoch: i64,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now_epoch);
    let date = amz_date.get(..8).unwrap_or("").to_string();
    let mut all: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    all.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = signer.session_token {
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
        body: req.body,
        amz_date: &amz_date,
        date: &date,
        region: signer.region,
        service,
        secret: signer.secret_access_key,
    });
    let mut out = vec![("x-amz-date".to_string(), amz_date)];
    if let Some(t) = signer.session_token {
        out.push(("x-amz-security-token".into(), t.to_string()));
    }
    out.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{date}/{}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={}",
            signer.access_key_id,
            signer.region,
            hex::encode(signature)
        ),
    ));
    out
}
