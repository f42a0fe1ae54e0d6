//! Encryption at rest of secret values: a Secrets Manager secret's versions and a SecureString
//! parameter's values are stored only as [`Sealed`] text, never in clear.
//!
//! - [`Key`]: the installation's 256-bit key, read from a key file ([`Key::parse`]: the key as
//!   base64 on one line) or made from 32 random bytes ([`Key::from_bytes`]); its [`Key::id`]
//!   (a fingerprint, not the key) is stored beside every value it sealed, so a server started
//!   with another key says so instead of calling the data tampered. `Debug` never shows it.
//! - [`seal()`] seals with ChaCha20-Poly1305 (an authenticated cipher, RustCrypto's `chacha20poly1305`)
//!   with a fresh random 96-bit nonce per value (the caller draws it: this crate has no ambient
//!   randomness) and the value's *context* as associated data (the record it belongs to, e.g.
//!   `secretsmanager:ARN:VERSION-ID`), so a sealed value moved to another record, or altered by
//!   one bit, does not open.
//! - [`open()`] is the reverse; [`SealError`] says why not (another key, tampered, malformed),
//!   never with the value.
//!
//! A sealed value is text: `fs1.<key id>.<base64(nonce || ciphertext || tag)>`.
//!
//! **Architecture Invariant:** pure: no I/O, no clock, no randomness of its own.

#![warn(missing_docs)]

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The key's length in bytes.
pub const KEY_BYTES: usize = 32;
/// The nonce's length in bytes.
pub const NONCE_BYTES: usize = 12;
/// The format tag of a sealed value.
const FORMAT: &str = "fs1";

/// The key that seals every secret value of an installation (every replica has the same one).
#[derive(Clone)]
pub struct Key {
    bytes: Zeroizing<[u8; KEY_BYTES]>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64.
    #[error("the secrets key must be {KEY_BYTES} bytes encoded as base64 on one line (e.g. `head -c 32 /dev/urandom | base64`); this is not base64")]
    NotBase64,
    /// The key has another length.
    #[error("the secrets key must be {KEY_BYTES} bytes encoded as base64 on one line (e.g. `head -c 32 /dev/urandom | base64`); this one has {0} bytes")]
    Length(usize),
}

impl Key {
    /// A key from its bytes (32 random bytes for a new key).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Key {
        Key {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A key from a key file's text: base64 of 32 bytes, surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::NotBase64)?,
        );
        let bytes: [u8; KEY_BYTES] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(decoded.len()))?;
        Ok(Key::from_bytes(bytes))
    }

    /// The key file's text for this key (base64 and a newline).
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut s = base64::engine::general_purpose::STANDARD.encode(*self.bytes);
        s.push('\n');
        Zeroizing::new(s)
    }

    /// The key's id: the first 8 bytes of SHA-256 over a label and the key, in hex. It tells
    /// keys apart and reveals nothing about the key.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"flotilla-seal key id\0");
        h.update(*self.bytes);
        hex::encode(&h.finalize()[..8])
    }

    /// A key for another purpose derived from this one (HMAC-SHA256 of a label and `purpose`
    /// under this key), e.g. the console's session key: every replica with the installation's
    /// key derives the same one, and it reveals nothing about this key.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; KEY_BYTES]> {
        use hmac::Mac as _;
        // HMAC accepts a key of any length: this cannot fail.
        let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&*self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"flotilla-seal derive\0");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

/// A value sealed by [`seal`], as stored: `fs1.<key id>.<base64(nonce || ciphertext || tag)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

impl Sealed {
    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stored text, to [`open`].
    pub fn from_stored(text: String) -> Sealed {
        Sealed(text)
    }
}

/// Why a sealed value does not open. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// It was sealed with another key than the server's.
    #[error("the value was sealed with the secrets key {sealed_with}, but this server has the key {current}: give the server the key it was stored with")]
    OtherKey {
        /// The id of the key that sealed it.
        sealed_with: String,
        /// The id of the server's key.
        current: String,
    },
    /// The ciphertext, its tag or its context do not match: the stored value was altered or
    /// moved to another record.
    #[error("the stored value fails authentication: it was altered or belongs to another record")]
    Tampered,
    /// Not a sealed value.
    #[error("the stored value is not a sealed value")]
    Malformed,
}

/// Seals `plaintext` for the record `context` with `key` and the random `nonce` (draw a fresh
/// one from a cryptographic generator for every value: a repeated nonce under one key breaks
/// the cipher).
pub fn seal(key: &Key, nonce: [u8; NONCE_BYTES], context: &[u8], plaintext: &[u8]) -> Sealed {
    let cipher = ChaCha20Poly1305::new((&*key.bytes).into());
    // Encryption with an in-memory buffer cannot fail (only a plaintext over 256 GiB could).
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .unwrap_or_default();
    let mut blob = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&ciphertext);
    Sealed(format!(
        "{FORMAT}.{}.{}",
        key.id(),
        base64::engine::general_purpose::STANDARD.encode(blob)
    ))
}

/// Opens a value sealed for the record `context`.
pub fn open(key: &Key, context: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let mut parts = sealed.0.splitn(3, '.');
    let (Some(FORMAT), Some(key_id), Some(blob)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SealError::Malformed);
    };
    let current = key.id();
    if key_id != current {
        return Err(SealError::OtherKey {
            sealed_with: key_id.to_string(),
            current,
        });
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| SealError::Malformed)?;
    if blob.len() < NONCE_BYTES + 16 {
        return Err(SealError::Malformed);
    }
    let (nonce, ciphertext) = blob.split_at(NONCE_BYTES);
    let cipher = ChaCha20Poly1305::new((&*key.bytes).into());
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from_bytes([b; KEY_BYTES])
    }

    #[test]
    fn derived_keys_depend_on_the_key_and_the_purpose() {
        let a = key(7).derive("console session");
        assert_eq!(*a, *key(7).derive("console session"));
        assert_ne!(*a, *key(8).derive("console session"));
        assert_ne!(*a, *key(7).derive("something else"));
        assert_ne!(*a, [7; KEY_BYTES]);
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let k = key(7);
        let s = seal(&k, [1; NONCE_BYTES], b"secret:a:v1", b"hunter2");
        assert!(!s.as_str().contains("hunter2"));
        assert_eq!(open(&k, b"secret:a:v1", &s).unwrap().as_slice(), b"hunter2");
        assert_eq!(open(&k, b"secret:b:v1", &s), Err(SealError::Tampered));
        let other = key(8);
        assert!(matches!(
            open(&other, b"secret:a:v1", &s),
            Err(SealError::OtherKey { .. })
        ));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = key(3);
        let s = seal(&k, [9; NONCE_BYTES], b"ctx", b"a value");
        let (head, blob) = s.as_str().rsplit_once('.').unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .unwrap();
        for i in 0..bytes.len() * 8 {
            let mut t = bytes.clone();
            t[i / 8] ^= 1 << (i % 8);
            let tampered = Sealed::from_stored(format!(
                "{head}.{}",
                base64::engine::general_purpose::STANDARD.encode(&t)
            ));
            assert_eq!(
                open(&k, b"ctx", &tampered),
                Err(SealError::Tampered),
                "bit {i}"
            );
        }
    }

    #[test]
    fn nonces_make_equal_values_look_different() {
        let k = key(1);
        let a = seal(&k, [1; NONCE_BYTES], b"c", b"same");
        let b = seal(&k, [2; NONCE_BYTES], b"c", b"same");
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_values_and_keys_are_refused_clearly() {
        let k = key(1);
        for bad in ["", "fs1", "fs2.x.y", "fs1.0000.!!!", "fs1.x.AAAA"] {
            let got = open(&k, b"c", &Sealed::from_stored(bad.into()));
            assert!(
                matches!(got, Err(SealError::Malformed | SealError::OtherKey { .. })),
                "{bad}: {got:?}"
            );
        }
        assert!(matches!(
            Key::parse("not base64!"),
            Err(KeyError::NotBase64)
        ));
        assert!(matches!(Key::parse("AAAA"), Err(KeyError::Length(3))));
        let text = key(5).to_file_text();
        assert_eq!(Key::parse(&text).unwrap().id(), key(5).id());
        assert!(!format!("{:?}", key(5)).contains(&*text.trim().to_string()));
    }
}
