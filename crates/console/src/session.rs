//! The console's signed session: after a sign-in with an access key pair, the browser holds a
//! cookie naming the access key and when the session ends, signed with HMAC-SHA256 under a key
//! only the server holds ([`SessionKey`]). Nothing secret is in the cookie: not the secret
//! key, not the server's key.
//!
//! - [`issue`] makes a cookie value; [`verify`] checks its signature (in constant time) and its
//!   expiry at the time it is given, so a value altered in any byte, made with another key or
//!   past its end is refused ([`SessionError`]).
//! - [`csrf_token`] is the token every form of a signed-in page carries: an HMAC of the session
//!   cookie's value under the same key, so a page of another site, which can neither read the
//!   cookie nor the page, cannot make one ([`check_csrf`]).
//! - [`set_cookie`] is the `Set-Cookie` header: `HttpOnly` (no script reads it),
//!   `SameSite=Strict` (no other site's page sends it), `Path=/console`, and a `Max-Age`.
//!
//! What it is not: a session store. A session is valid until it expires or its access key is no
//! longer one of the server's (the edge checks that on every request); signing out clears the
//! browser's cookie.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE_NAME: &str = "flotilla_console";
/// How long a session lasts, seconds (12 hours).
pub const SESSION_SECONDS: u64 = 12 * 60 * 60;
/// The format tag of a cookie value.
const FORMAT: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// The server-held key sessions and CSRF tokens are signed with. `Debug` never shows it.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// A key from 32 bytes (derived from the installation's secrets key, or random).
    pub fn new(bytes: [u8; 32]) -> Self {
        SessionKey(bytes)
    }

    fn mac(&self, purpose: &str, data: &str) -> HmacSha256 {
        // HMAC accepts a key of any length: this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(data.as_bytes());
        mac
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(***)")
    }
}

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The access key that signed in.
    pub access_key_id: String,
    /// When the session ends, epoch seconds.
    pub expires_at: u64,
}

/// Why a cookie value is not a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a value [`issue`] makes.
    #[error("the session cookie is malformed")]
    Malformed,
    /// The signature does not match (altered, or made with another key).
    #[error("the session cookie's signature does not match")]
    BadSignature,
    /// The session has ended.
    #[error("the session has expired")]
    Expired,
}

/// A new session of `access_key_id` from `now` (epoch seconds) for [`SESSION_SECONDS`], made
/// unique by `nonce` (random bytes the caller draws): the cookie value.
pub fn issue(key: &SessionKey, access_key_id: &str, now: f64, nonce: [u8; 16]) -> String {
    let expires = now.max(0.0) as u64 + SESSION_SECONDS;
    let body = format!(
        "{FORMAT}.{}.{expires}.{}",
        B64.encode(access_key_id.as_bytes()),
        B64.encode(nonce)
    );
    let sig = B64.encode(key.mac("session", &body).finalize().into_bytes());
    format!("{body}.{sig}")
}

/// The session a cookie value holds, if it is one [`issue`] made with `key` and it has not
/// expired at `now`.
pub fn verify(key: &SessionKey, value: &str, now: f64) -> Result<Session, SessionError> {
    let (body, sig) = value.rsplit_once('.').ok_or(SessionError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| SessionError::Malformed)?;
    key.mac("session", body)
        .verify_slice(&sig)
        .map_err(|_| SessionError::BadSignature)?;
    let mut parts = body.split('.');
    let (Some(FORMAT), Some(akid), Some(expires), Some(_nonce), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SessionError::Malformed);
    };
    let akid = B64
        .decode(akid)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(SessionError::Malformed)?;
    let expires_at: u64 = expires.parse().map_err(|_| SessionError::Malformed)?;
    if now >= expires_at as f64 {
        return Err(SessionError::Expired);
    }
    Ok(Session {
        access_key_id: akid,
        expires_at,
    })
}

/// The CSRF token of the session whose cookie value is `value`.
pub fn csrf_token(key: &SessionKey, value: &str) -> String {
    B64.encode(key.mac("csrf", value).finalize().into_bytes())
}

/// Whether `token` is the CSRF token of the session `value` (compared in constant time).
pub fn check_csrf(key: &SessionKey, value: &str, token: &str) -> bool {
    B64.decode(token)
        .is_ok_and(|t| key.mac("csrf", value).verify_slice(&t).is_ok())
}

/// The `Set-Cookie` header value that stores `value` for `max_age` seconds.
pub fn set_cookie(value: &str, max_age: u64) -> String {
    format!("{COOKIE_NAME}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// The `Set-Cookie` header value that removes the session cookie (signing out).
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session cookie's value in a `Cookie` request header, if there is one.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Where to go after signing in: `next` when it is a console page of this server (a path under
/// `/console/`, not `//host` or a backslash trick that a browser reads as another site), else
/// the cluster list.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.bytes().any(|b| b.is_ascii_control()) =>
        {
            n
        }
        _ => "/console/clusters",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> SessionKey {
        SessionKey::new([b; 32])
    }

    const NOW: f64 = 1_700_000_000.0;

    #[test]
    fn an_issued_session_verifies_until_it_expires() {
        let v = issue(&key(1), "AKIDEXAMPLE", NOW, [7; 16]);
        let s = verify(&key(1), &v, NOW + 10.0).unwrap();
        assert_eq!(s.access_key_id, "AKIDEXAMPLE");
        assert_eq!(s.expires_at, NOW as u64 + SESSION_SECONDS);
        assert_eq!(
            verify(&key(1), &v, NOW + SESSION_SECONDS as f64),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn another_key_or_an_altered_value_is_refused() {
        let v = issue(&key(1), "AKIDEXAMPLE", NOW, [7; 16]);
        assert_eq!(verify(&key(2), &v, NOW), Err(SessionError::BadSignature));
        // Another access key spliced in, with the old signature.
        let parts: Vec<&str> = v.split('.').collect();
        let forged = format!(
            "{}.{}.{}.{}.{}",
            parts[0],
            B64.encode("AKIDOTHER"),
            parts[2],
            parts[3],
            parts[4]
        );
        assert_eq!(
            verify(&key(1), &forged, NOW),
            Err(SessionError::BadSignature)
        );
        // A later expiry.
        let later = format!(
            "{}.{}.{}.{}.{}",
            parts[0],
            parts[1],
            NOW as u64 + 10 * SESSION_SECONDS,
            parts[3],
            parts[4]
        );
        assert_eq!(
            verify(&key(1), &later, NOW),
            Err(SessionError::BadSignature)
        );
        for bad in ["", "x", "v1.a.b", "v1.a.b.c.%%%"] {
            assert!(verify(&key(1), bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = issue(&key(1), "AKIDEXAMPLE", NOW, [1; 16]);
        let b = issue(&key(1), "AKIDEXAMPLE", NOW, [2; 16]);
        let t = csrf_token(&key(1), &a);
        assert!(check_csrf(&key(1), &a, &t));
        assert!(!check_csrf(&key(1), &b, &t), "another session's token");
        assert!(!check_csrf(&key(2), &a, &t), "another server key");
        assert!(!check_csrf(&key(1), &a, ""));
        assert!(!check_csrf(&key(1), &a, "not base64!"));
    }

    #[test]
    fn cookies_are_http_only_and_same_site_strict() {
        let c = set_cookie("abc", 60);
        assert_eq!(
            c,
            "flotilla_console=abc; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(clear_cookie().ends_with("Max-Age=0"));
        assert_eq!(
            cookie_value("a=1; flotilla_console=v1.x.y; b=2"),
            Some("v1.x.y")
        );
        assert_eq!(cookie_value("flotilla_console="), None);
        assert_eq!(cookie_value("other=1"), None);
    }

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/console/clusters/web")),
            "/console/clusters/web"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil",
            "/console/\\evil",
            "/metrics",
            "/console/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/clusters", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/clusters");
    }

    proptest! {
        /// Any access key name round-trips, and flipping any one character of the value breaks
        /// it.
        #[test]
        fn sessions_round_trip_and_resist_tampering(akid in "[ -~]{1,40}", at in 0usize..200) {
            let v = issue(&key(3), &akid, NOW, [9; 16]);
            prop_assert_eq!(verify(&key(3), &v, NOW).unwrap().access_key_id, akid);
            let i = at % v.len();
            let mut bytes = v.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != v {
                prop_assert!(verify(&key(3), &tampered, NOW).is_err());
            }
        }
    }
}
