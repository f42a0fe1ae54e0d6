//! Task role credentials: the temporary keys Flotilla issues for a task's `taskRoleArn`, as the
//! pure rules the server applies (the edge seals, stores and looks them up).
//!
//! What this is: the shape of a key (`ASIA` and 16 base-32 characters, a 40-character secret,
//! a session token), drawn from random bytes the caller passes in ([`KeyMaterial::from_random`]);
//! the record stored at `task-credentials/ACCESS_KEY_ID` ([`TaskCredentialRecord`], the secret
//! and the token only sealed); the list of keys a task holds ([`IssuedKey`], kept in its
//! [`crate::tasks::TaskRecord`] so the transaction that records it STOPPED deletes them all);
//! and the decisions: hand out the current key or issue a new one ([`decide`]), which keys have
//! expired ([`expired`]), whether a key is still valid ([`validity`]), and the principal a key
//! signs as ([`principal_arn`]).
//!
//! What this is not: sealing (the caller seals with the server's secrets key), signature
//! verification (`flotilla_sigv4`), or any I/O, clock or randomness.
//!
//! Invariant: a key is valid from its issue until its expiration or until its task is STOPPED,
//! whichever comes first; a task asking again within the first half of its newest key's life
//! gets that key back, so reconnecting agents do not multiply keys.

use serde::{Deserialize, Serialize};

/// Prefix of the task credential records (`task-credentials/ACCESS_KEY_ID`).
pub const TASK_CREDENTIALS: &str = "task-credentials/";
/// Every issued access key id starts with this, as AWS's temporary keys do.
pub const ACCESS_KEY_PREFIX: &str = "ASIA";
/// Base-32 characters after the prefix (80 random bits).
pub const ACCESS_KEY_RANDOM_CHARS: usize = 16;
/// How long issued credentials are valid unless the server is told otherwise.
pub const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
/// The shortest lifetime the server accepts (the agent refreshes at 60 % of it).
pub const MIN_LIFETIME_SECONDS: u64 = 30;
/// How many random bytes [`KeyMaterial::from_random`] takes.
pub const RANDOM_BYTES: usize = 10 + 30 + 48;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The key of a credential record.
pub fn credential_key(access_key_id: &str) -> String {
    format!("{TASK_CREDENTIALS}{access_key_id}")
}

/// Whether `access_key_id` has the shape of a key Flotilla issues for tasks (checked before any
/// store read, so an unknown key of another shape costs nothing).
pub fn looks_like_task_key(access_key_id: &str) -> bool {
    access_key_id
        .strip_prefix(ACCESS_KEY_PREFIX)
        .is_some_and(|rest| {
            rest.len() == ACCESS_KEY_RANDOM_CHARS && rest.bytes().all(|b| BASE32.contains(&b))
        })
}

/// Base-32 (RFC 4648's alphabet, no padding) of `bytes`; also names agent keys and join tokens
/// ([`crate::agent_identity`]).
pub(crate) fn base32(bytes: &[u8]) -> String {
    // 5 bits per character, most significant first.
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for b in bytes {
        buffer = (buffer << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Standard base-64 of `bytes` (a multiple of 3 bytes: no padding).
pub(crate) fn base64(bytes: &[u8]) -> String {
    // Standard alphabet; callers pass multiples of 3 bytes, so there is no padding.
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A new key: access key id, secret access key and session token. `Debug` shows only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// `ASIA` and 16 base-32 characters.
    pub access_key_id: String,
    /// 40 characters.
    pub secret_access_key: String,
    /// 64 characters.
    pub session_token: String,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A key from [`RANDOM_BYTES`] bytes of a cryptographic generator.
    pub fn from_random(random: &[u8; RANDOM_BYTES]) -> KeyMaterial {
        let (id, rest) = random.split_at(10);
        let (secret, token) = rest.split_at(30);
        KeyMaterial {
            access_key_id: format!("{ACCESS_KEY_PREFIX}{}", base32(id)),
            secret_access_key: base64(secret),
            session_token: base64(token),
        }
    }
}

/// A key a task holds, as its task record lists it (no secret): what the STOPPED transition
/// deletes and what [`decide`] chooses from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedKey {
    /// The access key id (the record is at [`credential_key`]).
    pub access_key_id: String,
    /// Issue time, epoch seconds.
    pub issued_at: f64,
    /// Expiration, epoch seconds.
    pub expiration: f64,
}

/// A stored key: who it belongs to and its secret parts, sealed with the server's secrets key
/// (bound to this record by [`seal_context`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCredentialRecord {
    /// The access key id.
    pub access_key_id: String,
    /// The task ARN.
    pub task_arn: String,
    /// The task's role.
    pub role_arn: String,
    /// The principal requests signed with the key act as ([`principal_arn`]).
    pub principal_arn: String,
    /// Issue time, epoch seconds.
    pub issued_at: f64,
    /// Expiration, epoch seconds.
    pub expiration: f64,
    /// The secret access key, sealed.
    pub sealed_secret_access_key: String,
    /// The session token, sealed.
    pub sealed_session_token: String,
}

/// Which secret part of a key a sealed value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedPart {
    /// The secret access key.
    SecretAccessKey,
    /// The session token.
    SessionToken,
}

/// What a sealed part of a key is bound to, so a value moved to another record or part does
/// not open.
pub fn seal_context(access_key_id: &str, part: SealedPart) -> Vec<u8> {
    let part = match part {
        SealedPart::SecretAccessKey => "secret-access-key",
        SealedPart::SessionToken => "session-token",
    };
    format!("task-credentials\0{access_key_id}\0{part}").into_bytes()
}

/// What to answer a request for a task's credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum Issue {
    /// Hand out this key again: it is in the first half of its life.
    Reuse(IssuedKey),
    /// Issue a new key, valid from `now` to `expiration`.
    New {
        /// `now + lifetime`.
        expiration: f64,
    },
}

/// Reuse the newest key while more than half its life is left, else issue one.
pub fn decide(held: &[IssuedKey], now: f64, lifetime_seconds: u64) -> Issue {
    let lifetime = lifetime_seconds as f64;
    let newest = held
        .iter()
        .filter(|k| k.expiration > now)
        .max_by(|a, b| a.expiration.total_cmp(&b.expiration));
    match newest {
        Some(k) if k.expiration - now > (k.expiration - k.issued_at) / 2.0 => {
            Issue::Reuse(k.clone())
        }
        _ => Issue::New {
            expiration: now + lifetime,
        },
    }
}

/// The keys of `held` that have expired at `now` (their records are deleted with the next
/// issue).
pub fn expired(held: &[IssuedKey], now: f64) -> Vec<IssuedKey> {
    held.iter()
        .filter(|k| k.expiration <= now)
        .cloned()
        .collect()
}

/// Whether a key may sign a request at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Yes.
    Valid,
    /// Past its expiration (AWS answers `ExpiredTokenException`).
    Expired,
}

/// The validity of a key expiring at `expiration`.
pub fn validity(expiration: f64, now: f64) -> Validity {
    if now < expiration {
        Validity::Valid
    } else {
        Validity::Expired
    }
}

/// The principal of a task's key, as STS names an assumed role's session:
/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE-NAME/TASK-ID` (the account of the role ARN, else
/// `account`; the role's name is its last path segment).
pub fn principal_arn(role_arn: &str, task_id: &str, account: &str) -> String {
    let mut parts = role_arn.splitn(6, ':');
    let (role_account, resource) = (parts.nth(4), parts.next());
    let account = role_account.filter(|a| !a.is_empty()).unwrap_or(account);
    let name = resource
        .and_then(|r| r.strip_prefix("role/"))
        .map(|r| r.rsplit('/').next().unwrap_or(r))
        .filter(|n| !n.is_empty())
        .unwrap_or("task-role");
    format!("arn:aws:sts::{account}:assumed-role/{name}/{task_id}")
}

/// Why a task gets no credentials (the reason the agent reports; never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The task does not exist or runs on another instance.
    NotAssigned,
    /// The task has stopped: its keys are revoked.
    Stopped,
    /// The task has no `taskRoleArn`.
    NoRole,
    /// The server has no secrets key to seal credentials with.
    NotServed,
}

impl Refusal {
    /// The reason, in words.
    pub fn reason(&self, task_arn: &str) -> String {
        match self {
            Refusal::NotAssigned => {
                format!("the task {task_arn} is not assigned to this container instance")
            }
            Refusal::Stopped => format!("the task {task_arn} has stopped"),
            Refusal::NoRole => format!("the task {task_arn} has no task role (taskRoleArn)"),
            Refusal::NotServed => {
                "this server issues no task role credentials (it has no secrets key to seal them with)"
                    .to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(id: &str, issued_at: f64, expiration: f64) -> IssuedKey {
        IssuedKey {
            access_key_id: id.into(),
            issued_at,
            expiration,
        }
    }

    #[test]
    fn keys_have_aws_shapes() {
        let k = KeyMaterial::from_random(&[0u8; RANDOM_BYTES]);
        assert_eq!(k.access_key_id, "ASIAAAAAAAAAAAAAAAAA");
        assert_eq!(k.secret_access_key.len(), 40);
        assert_eq!(k.session_token.len(), 64);
        let mut r = [0u8; RANDOM_BYTES];
        for (i, b) in r.iter_mut().enumerate() {
            *b = u8::try_from(i * 37 % 256).unwrap();
        }
        let k = KeyMaterial::from_random(&r);
        assert!(looks_like_task_key(&k.access_key_id), "{}", k.access_key_id);
        assert!(!format!("{k:?}").contains(&k.secret_access_key));
        assert!(!format!("{k:?}").contains(&k.session_token));
        assert_eq!(base32(&[0xff; 5]), "77777777");
        assert_eq!(base64(b"Man"), "TWFu");
    }

    #[test]
    fn only_issued_shapes_look_like_task_keys() {
        for (akid, want) in [
            ("ASIAABCDEFGHIJKLMNOP", true),
            ("ASIA234567ABCDEFGHIJ", true),
            ("AKIAABCDEFGHIJKLMNOP", false),
            ("ASIAABCDEFGHIJKLMNO", false),
            ("ASIAABCDEFGHIJKLMNOPQ", false),
            ("ASIAabcdefghijklmnop", false),
            ("ASIAABCDEFGHIJKLMN01", false),
            ("", false),
        ] {
            assert_eq!(looks_like_task_key(akid), want, "{akid}");
        }
    }

    #[test]
    fn the_newest_key_is_reused_in_the_first_half_of_its_life() {
        let held = [key("A", 0.0, 3600.0), key("B", 1800.0, 5400.0)];
        // B is newest: reused until 3600 (half of its 3600 s).
        assert_eq!(decide(&held, 2000.0, 3600), Issue::Reuse(held[1].clone()));
        assert_eq!(decide(&held, 3599.0, 3600), Issue::Reuse(held[1].clone()));
        assert_eq!(
            decide(&held, 3600.0, 3600),
            Issue::New { expiration: 7200.0 }
        );
        assert_eq!(decide(&[], 10.0, 60), Issue::New { expiration: 70.0 });
        // An expired key is never handed out.
        assert_eq!(
            decide(&[key("A", 0.0, 10.0)], 10.0, 60),
            Issue::New { expiration: 70.0 }
        );
    }

    #[test]
    fn expired_keys_are_listed_and_invalid() {
        let held = [key("A", 0.0, 100.0), key("B", 50.0, 150.0)];
        assert_eq!(expired(&held, 99.0), vec![]);
        assert_eq!(expired(&held, 100.0), vec![held[0].clone()]);
        assert_eq!(validity(100.0, 99.9), Validity::Valid);
        assert_eq!(validity(100.0, 100.0), Validity::Expired);
    }

    #[test]
    fn principals_name_the_role_and_the_task() {
        assert_eq!(
            principal_arn("arn:aws:iam::123456789012:role/app", "abc", "000000000000"),
            "arn:aws:sts::123456789012:assumed-role/app/abc"
        );
        assert_eq!(
            principal_arn("arn:aws:iam::123456789012:role/team/app", "abc", "0"),
            "arn:aws:sts::123456789012:assumed-role/app/abc"
        );
        assert_eq!(
            principal_arn("app", "abc", "000000000000"),
            "arn:aws:sts::000000000000:assumed-role/task-role/abc"
        );
    }

    #[test]
    fn contexts_differ_by_key_and_part() {
        let a = seal_context("ASIAA", SealedPart::SecretAccessKey);
        assert_ne!(a, seal_context("ASIAA", SealedPart::SessionToken));
        assert_ne!(a, seal_context("ASIAB", SealedPart::SecretAccessKey));
    }

    proptest! {
        #[test]
        fn every_drawn_key_looks_like_a_task_key(r in proptest::collection::vec(any::<u8>(), RANDOM_BYTES)) {
            let mut bytes = [0u8; RANDOM_BYTES];
            bytes.copy_from_slice(&r);
            let k = KeyMaterial::from_random(&bytes);
            prop_assert!(looks_like_task_key(&k.access_key_id));
            prop_assert_eq!(k.secret_access_key.len(), 40);
            prop_assert!(k.session_token.bytes().all(|b| BASE64.contains(&b)));
        }

        #[test]
        fn a_decision_never_hands_out_a_key_past_half_life_or_expired(
            issued in 0.0f64..10_000.0, life in 30u64..100_000, now in 0.0f64..200_000.0,
        ) {
            let k = key("A", issued, issued + life as f64);
            match decide(std::slice::from_ref(&k), now, life) {
                Issue::Reuse(r) => {
                    prop_assert!(r.expiration > now);
                    prop_assert!(r.expiration - now > life as f64 / 2.0);
                }
                Issue::New { expiration } => prop_assert_eq!(expiration, now + life as f64),
            }
        }
    }
}
