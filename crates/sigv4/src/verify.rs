//! Verification of a received request.
//!
//! Every request carries `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
//! SignedHeaders=..., Signature=...` and `X-Amz-Date`. [`verify`] rebuilds the canonical request
//! from the headers the client signed and the body, derives the signing key from the configured
//! secret and compares signatures in constant time.
//!
//! Outcomes follow AWS ([`AuthError::code`]): no credentials is
//! `MissingAuthenticationTokenException`; an unknown access key is `UnrecognizedClientException`;
//! a wrong signature is `InvalidSignatureException`; a request dated more than 15 minutes away
//! from the server clock is `InvalidSignatureException` with "Signature expired"; a session token
//! that does not belong to the key is `UnrecognizedClientException` ("The security token included
//! in the request is invalid."); temporary credentials past their expiration are
//! `ExpiredTokenException` ("The security token included in the request is expired", which
//! the caller decides: the credential does not say when it expires). All are HTTP 403.
//!
//! What this module is not: it reads no clock (the caller passes `now`) and knows no service's
//! error type (the server turns an [`AuthError`] into its own).

use crate::canonical::{compute_signature, constant_time_eq, parse_amz_date, SigningInput};

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
    /// The service name in the credential scope (`ecs`, `secretsmanager`, `ssm`): the edge
    /// checks it names the service the request is for.
    pub service: String,
    /// The principal ARN of the key.
    pub principal_arn: String,
}

/// Why a request is not authenticated. The message is AWS's wording; [`AuthError::code`] is the
/// error the server answers (always HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    MissingToken,
    /// An `Authorization` header of another scheme than SigV4.
    #[error("Only AWS4-HMAC-SHA256 (Signature Version 4) is supported.")]
    UnsupportedScheme,
    /// `Credential`, `SignedHeaders` or `Signature` is missing.
    #[error(
        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters."
    )]
    IncompleteAuthorization,
    /// The credential is not `AKID/DATE/REGION/SERVICE/aws4_request`.
    #[error("Credential should be scoped to a valid region and service: '{credential}'.")]
    BadScope {
        /// The `Credential` parameter as received.
        credential: String,
    },
    /// The access key is unknown, or the session token does not belong to it.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// No `X-Amz-Date` header.
    #[error("The request must contain an 'X-Amz-Date' header.")]
    MissingDate,
    /// An `X-Amz-Date` that is not `YYYYMMDDTHHMMSSZ`.
    #[error("Invalid X-Amz-Date '{amz_date}': expected YYYYMMDDTHHMMSSZ.")]
    BadDate {
        /// The header as received.
        amz_date: String,
    },
    /// The request is dated more than [`MAX_SKEW_SECONDS`] away from the server clock.
    #[error("Signature expired: {amz_date} is now earlier or later than 15 minutes from the server time. Check your clock.")]
    Expired {
        /// The header as received.
        amz_date: String,
    },
    /// The credential scope's date is not the day of `X-Amz-Date`.
    #[error("Date in Credential scope does not match YYYYMMDD from X-Amz-Date: '{date}' vs '{amz_date}'.")]
    ScopeDateMismatch {
        /// The scope's date.
        date: String,
        /// The header as received.
        amz_date: String,
    },
    /// A header named in `SignedHeaders` is not in the request.
    #[error("The request signature we calculated does not match the signature you provided: signed header '{name}' is missing.")]
    MissingSignedHeader {
        /// The header's name.
        name: String,
    },
    /// The signature is not the one the key gives.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    SignatureMismatch,
    /// Temporary credentials past their expiration.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// The credential scope names a region the endpoint does not serve (AWS's wording,
    /// trailing space included). [`verify`] does not check regions: the server does, since
    /// only it knows which it serves.
    #[error("Credential should be scoped to a valid region, not '{region}'. ")]
    WrongRegion {
        /// The scope's region.
        region: String,
    },
}

/// The AWS error an [`AuthError`] is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCode {
    /// `MissingAuthenticationTokenException`.
    MissingAuthenticationToken,
    /// `UnrecognizedClientException`.
    UnrecognizedClient,
    /// `InvalidSignatureException`.
    InvalidSignature,
    /// `InvalidSignatureException` too ("Signature expired: ..."), told apart for metrics.
    SignatureExpired,
    /// `ExpiredTokenException`: temporary credentials past their expiration.
    ExpiredToken,
}

impl AuthCode {
    /// The `__type` on the wire.
    pub fn wire_type(self) -> &'static str {
        match self {
            AuthCode::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AuthCode::UnrecognizedClient => "UnrecognizedClientException",
            AuthCode::InvalidSignature | AuthCode::SignatureExpired => "InvalidSignatureException",
            AuthCode::ExpiredToken => "ExpiredTokenException",
        }
    }
}

impl AuthError {
    /// The AWS error this is answered with.
    pub fn code(&self) -> AuthCode {
        match self {
            AuthError::MissingToken => AuthCode::MissingAuthenticationToken,
            AuthError::UnrecognizedClient => AuthCode::UnrecognizedClient,
            AuthError::Expired { .. } => AuthCode::SignatureExpired,
            AuthError::ExpiredToken => AuthCode::ExpiredToken,
            _ => AuthCode::InvalidSignature,
        }
    }
}

/// The parameters of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Authorization<'h> {
    access_key_id: &'h str,
    date: &'h str,
    region: &'h str,
    service: &'h str,
    signed_headers: &'h str,
    signature: &'h str,
}

fn parse_authorization(auth: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(AuthError::UnsupportedScheme)?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
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
        return Err(AuthError::IncompleteAuthorization);
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(AuthError::BadScope {
            credential: credential.to_string(),
        });
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The access key id in the credential scope of an `Authorization` header, read without
/// verifying anything: the edge finds a temporary key's credential by it before verifying.
pub fn access_key_id(authorization: &str) -> Option<&str> {
    parse_authorization(authorization)
        .ok()
        .map(|a| a.access_key_id)
}

/// The service name in the credential scope of an `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`), read without
/// verifying anything: the edge routes a request that names no known operation by it, so even
/// its refusal has the right service's shape. `None` when the header is not SigV4.
pub fn scope_service(authorization: &str) -> Option<&str> {
    parse_authorization(authorization).ok().map(|a| a.service)
}

/// The region in the credential scope of an `Authorization` header, read without verifying
/// anything: a server serving several regions picks the region's API by it. `None` when the
/// header is not SigV4.
pub fn scope_region(authorization: &str) -> Option<&str> {
    parse_authorization(authorization).ok().map(|a| a.region)
}

/// Checks `X-Amz-Date` against the clock and the credential scope's date, and returns it.
fn check_date<'h>(
    amz_date: Option<&'h str>,
    scope_date: &str,
    now_epoch: i64,
) -> Result<&'h str, AuthError> {
    let amz_date = amz_date.ok_or(AuthError::MissingDate)?;
    let Some(req_time) = parse_amz_date(amz_date) else {
        return Err(AuthError::BadDate {
            amz_date: amz_date.to_string(),
        });
    };
    if (now_epoch - req_time).abs() > MAX_SKEW_SECONDS {
        return Err(AuthError::Expired {
            amz_date: amz_date.to_string(),
        });
    }
    if !amz_date.starts_with(scope_date) {
        return Err(AuthError::ScopeDateMismatch {
            date: scope_date.to_string(),
            amz_date: amz_date.to_string(),
        });
    }
    Ok(amz_date)
}

/// `name:value\n` for each signed header, repeated values joined by `,`, whitespace runs folded.
fn canonical_headers<K: AsRef<str>, V: AsRef<str>>(
    signed_headers: &str,
    headers: &[(K, V)],
) -> Result<String, AuthError> {
    let mut canonical = String::with_capacity(256);
    for name in signed_headers.split(';') {
        let mut found = false;
        for (k, v) in headers {
            if !k.as_ref().eq_ignore_ascii_case(name) {
                continue;
            }
            if found {
                canonical.push(',');
            } else {
                for c in name.chars() {
                    canonical.push(c.to_ascii_lowercase());
                }
                canonical.push(':');
                found = true;
            }
            for (i, word) in v.as_ref().split_whitespace().enumerate() {
                if i > 0 {
                    canonical.push(' ');
                }
                canonical.push_str(word);
            }
        }
        if !found {
            return Err(AuthError::MissingSignedHeader {
                name: name.to_string(),
            });
        }
        canonical.push('\n');
    }
    Ok(canonical)
}

/// Verifies a request. `headers` are (name, value) pairs as received (any case); `path` is the
/// request path and `query` the raw query string; `lookup` finds the credential of an access key.
pub fn verify<'a>(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_epoch: i64,
    lookup: impl Fn(&str) -> Option<&'a Credential>,
) -> Result<Caller, AuthError> {
    verify_pairs(method, path, query, headers, body, now_epoch, lookup)
}

/// [`verify`] with the headers as any pairs of strings (a server passes its header map's names
/// and values as they are, with no copy).
pub fn verify_pairs<'a, K: AsRef<str>, V: AsRef<str>>(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(K, V)],
    body: &[u8],
    now_epoch: i64,
    lookup: impl Fn(&str) -> Option<&'a Credential>,
) -> Result<Caller, AuthError> {
    let header = |name: &str| -> Option<&str> {
        headers
            .iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    };
    let auth = parse_authorization(header("authorization").ok_or(AuthError::MissingToken)?)?;
    let cred = lookup(auth.access_key_id).ok_or(AuthError::UnrecognizedClient)?;
    match (&cred.session_token, header("x-amz-security-token")) {
        (Some(expected), Some(got)) if expected == got => {}
        (None, None) => {}
        _ => return Err(AuthError::UnrecognizedClient),
    }
    let amz_date = check_date(header("x-amz-date"), auth.date, now_epoch)?;
    let canonical_headers = canonical_headers(auth.signed_headers, headers)?;
    let expected = compute_signature(&SigningInput {
        method,
        path,
        query,
        canonical_headers: &canonical_headers,
        signed_headers: auth.signed_headers,
        body,
        amz_date,
        date: auth.date,
        region: auth.region,
        service: auth.service,
        secret: &cred.secret_access_key,
    });
    let mut given = [0u8; 32];
    if hex::decode_to_slice(auth.signature, &mut given).is_err()
        || !constant_time_eq(&expected, &given)
    {
        return Err(AuthError::SignatureMismatch);
    }
    Ok(Caller {
        access_key_id: auth.access_key_id.to_string(),
        region: auth.region.to_string(),
        service: auth.service.to_string(),
        principal_arn: cred.principal_arn.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_service_is_read_without_verifying() {
        let h = "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(scope_service(h), Some("secretsmanager"));
        assert_eq!(scope_service("Basic dXNlcjpwYXNz"), None);
        assert_eq!(scope_region(h), Some("us-east-1"));
        assert_eq!(scope_region("Basic dXNlcjpwYXNz"), None);
        let wrong = AuthError::WrongRegion {
            region: "ap-south-1".into(),
        };
        assert_eq!(
            wrong.to_string(),
            "Credential should be scoped to a valid region, not 'ap-south-1'. "
        );
        assert_eq!(wrong.code().wire_type(), "InvalidSignatureException");
        assert_eq!(access_key_id(h), Some("AKID"));
        assert_eq!(
            AuthError::ExpiredToken.code().wire_type(),
            "ExpiredTokenException"
        );
        assert_eq!(
            scope_service("AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/ssm, SignedHeaders=host, Signature=00"),
            None
        );
    }
}
