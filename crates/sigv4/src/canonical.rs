//! What signing and verifying compute alike: the `X-Amz-Date` format, the canonical request,
//! the string to sign, the derived signing key and the signature itself.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// Parses `YYYYMMDDTHHMMSSZ` into epoch seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let dt = time::PrimitiveDateTime::parse(s, AMZ_DATE).ok()?;
    Some(dt.assume_utc().unix_timestamp())
}

/// Formats epoch seconds as `YYYYMMDDTHHMMSSZ` (empty for a time out of range).
pub fn format_amz_date(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(AMZ_DATE).ok())
        .unwrap_or_default()
}

/// Everything a SigV4 signature covers.
pub(crate) struct SigningInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// `name:value\n` per signed header, names lowercase, in the order of `signed_headers`.
    pub canonical_headers: &'a str,
    /// Lowercase header names joined by `;`.
    pub signed_headers: &'a str,
    pub body: &'a [u8],
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    /// `YYYYMMDD`, the date of the credential scope.
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub secret: &'a str,
}

/// The signature of a request.
pub(crate) fn compute_signature(i: &SigningInput<'_>) -> [u8; 32] {
    // The canonical request is hashed as it is written, never held whole; so is the string to
    // sign, straight into the HMAC.
    let mut body_hash = [0u8; 64];
    hex_into(&Sha256::digest(i.body), &mut body_hash);
    let mut canonical_request = Sha256::new();
    for part in [
        i.method.as_bytes(),
        b"\n",
        if i.path.is_empty() { "/" } else { i.path }.as_bytes(),
        b"\n",
        canonical_query(i.query).as_bytes(),
        b"\n",
        i.canonical_headers.as_bytes(),
        b"\n",
        i.signed_headers.as_bytes(),
        b"\n",
        &body_hash,
    ] {
        canonical_request.update(part);
    }
    let mut request_hash = [0u8; 64];
    hex_into(&canonical_request.finalize(), &mut request_hash);
    let key = signing_key(i.secret, i.date, i.region, i.service);
    hmac_parts(
        &key,
        &[
            b"AWS4-HMAC-SHA256\n",
            i.amz_date.as_bytes(),
            b"\n",
            i.date.as_bytes(),
            b"/",
            i.region.as_bytes(),
            b"/",
            i.service.as_bytes(),
            b"/aws4_request\n",
            &request_hash,
        ],
    )
}

/// Lowercase hex of a 32-byte digest.
fn hex_into(digest: &[u8], out: &mut [u8; 64]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// The query string with its parameters sorted (they are already URI-encoded).
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

/// The HMAC-SHA256 of the concatenated `parts` under `key`.
fn hmac_parts(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // An HMAC takes a key of any length: this never fails.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    hmac_parts(key, &[data])
}

/// The derived signing key of a secret for a day, region and service: four HMACs, the same for
/// every request of that scope, so each thread keeps the last one it derived.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    /// (secret, date, region, service) and its key.
    type Derived = (String, String, String, String, [u8; 32]);
    thread_local! {
        static LAST: std::cell::RefCell<Option<Derived>> = const { std::cell::RefCell::new(None) };
    }
    let cached = LAST.with(|last| match &*last.borrow() {
        Some((s, d, r, v, key)) if s == secret && d == date && r == region && v == service => {
            Some(*key)
        }
        _ => None,
    });
    if let Some(key) = cached {
        return key;
    }
    let key = derive_signing_key(secret, date, region, service);
    LAST.with(|last| {
        *last.borrow_mut() = Some((
            secret.to_string(),
            date.to_string(),
            region.to_string(),
            service.to_string(),
            key,
        ));
    });
    key
}

fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_parts(
        &[b"AWS4".as_slice(), secret.as_bytes()].concat(),
        &[date.as_bytes()],
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Compares two signatures in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        let s = format_amz_date(1_795_000_000);
        assert_eq!(s.len(), 16);
        assert_eq!(parse_amz_date(&s), Some(1_795_000_000));
        assert_eq!(parse_amz_date("2026-01-01"), None);
    }

    #[test]
    fn the_kept_signing_key_is_the_one_of_its_scope() {
        let a = signing_key("secret", "20260101", "us-east-1", "ecs");
        assert_eq!(
            a,
            derive_signing_key("secret", "20260101", "us-east-1", "ecs")
        );
        // Another secret, day, region or service is derived afresh, then kept in turn.
        for (s, d, r, v) in [
            ("other", "20260101", "us-east-1", "ecs"),
            ("secret", "20260102", "us-east-1", "ecs"),
            ("secret", "20260102", "eu-west-1", "ecs"),
            ("secret", "20260102", "eu-west-1", "logs"),
        ] {
            assert_eq!(signing_key(s, d, r, v), derive_signing_key(s, d, r, v));
            assert_eq!(signing_key(s, d, r, v), derive_signing_key(s, d, r, v));
            assert_ne!(signing_key(s, d, r, v), a);
        }
    }

    #[test]
    fn digests_are_written_in_lowercase_hex() {
        let digest = Sha256::digest(b"flotilla");
        let mut out = [0u8; 64];
        hex_into(&digest, &mut out);
        assert_eq!(out.as_slice(), hex::encode(digest).as_bytes());
    }

    #[test]
    fn query_parameters_are_sorted() {
        assert_eq!(canonical_query("b=2&a=1&c"), "a=1&b=2&c=");
        assert_eq!(canonical_query(""), "");
    }
}
