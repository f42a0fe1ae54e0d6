//! One of Flotilla's own operations (`FlotillaAdmin.<operation>`) called on another replica of
//! the region, signed with one of this server's credentials as any client signs: how a replica
//! reads log events another one keeps (`crate::logs`) and the metric series another one records
//! (`crate::metrics_peers`).

use flotilla_sigv4::Credential;
use std::time::Duration;

/// The answer of the other replica: its HTTP status and body.
pub struct PeerAnswer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The body (JSON).
    pub body: Vec<u8>,
}

/// Calls `FlotillaAdmin.<operation>` with `body` on the replica at `url` (`http://host:port` or
/// `https://host:port`, verified with the trust `http` was built with),
/// in `region`, signed with `credential`; `Err` when no answer came within `timeout`.
pub async fn call(
    http: &reqwest::Client,
    url: &str,
    region: &str,
    credential: &Credential,
    operation: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<PeerAnswer, reqwest::Error> {
    let (scheme, authority) = crate::transport::split_url(url);
    let authority = authority.to_string();
    let target = flotilla_sigv4::target::admin_target(operation);
    let headers = flotilla_sigv4::target::json_headers(&authority, &target);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let signer = flotilla_sigv4::Signer {
        region,
        access_key_id: &credential.access_key_id,
        secret_access_key: &credential.secret_access_key,
        session_token: credential.session_token.as_deref(),
    };
    let signed = flotilla_sigv4::sign(
        &flotilla_sigv4::Request::post(&headers, &body),
        &signer,
        now,
    );
    let mut req = http
        .post(format!("{scheme}://{authority}/"))
        .timeout(timeout);
    for (k, v) in headers
        .iter()
        .map(|(k, v)| (*k, *v))
        .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        if k != "host" {
            req = req.header(k, v);
        }
    }
    let resp = req.body(body).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?.to_vec();
    Ok(PeerAnswer { status, body })
}
