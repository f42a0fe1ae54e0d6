//! A version's value, sealed at rest with the installation's [`Key`] and bound to the secret's
//! ARN and the version id (so a sealed value copied to another secret or version does not
//! open), and opened again for GetSecretValue and ECS `secrets`.

use crate::error::SmError;
use crate::record::{ValueKind, Version};
use crate::ErrorShape;
use base64::Engine as _;
use flotilla_seal::{Key, Sealed};
use zeroize::Zeroize;

/// A secret value in clear, only in memory. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// `SecretString`.
    String(String),
    /// `SecretBinary` (the bytes, not base64).
    Binary(Vec<u8>),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::String(_) => f.write_str("SecretValue::String(***)"),
            SecretValue::Binary(_) => f.write_str("SecretValue::Binary(***)"),
        }
    }
}

impl SecretValue {
    /// From a request's `SecretString` or `SecretBinary` (base64): exactly one of them.
    pub fn from_request(
        string: Option<String>,
        binary: Option<String>,
    ) -> Result<Option<SecretValue>, SmError> {
        match (string, binary) {
            (Some(_), Some(_)) => Err(SmError::invalid_parameter(
                "You can't specify both a binary secret value and a string secret value in the same secret.",
            )),
            (Some(s), None) => Ok(Some(SecretValue::String(s))),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(|b| Some(SecretValue::Binary(b)))
                .map_err(|_| SmError::invalid_parameter("SecretBinary must be base64-encoded.")),
            (None, None) => Ok(None),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ValueKind {
        match self {
            SecretValue::String(_) => ValueKind::String,
            SecretValue::Binary(_) => ValueKind::Binary,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(s) => s.as_bytes(),
            SecretValue::Binary(b) => b,
        }
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        match self {
            SecretValue::String(s) => s.zeroize(),
            SecretValue::Binary(b) => b.zeroize(),
        }
    }
}

/// What a sealed value is bound to: the secret's ARN and the version id.
fn context(arn: &str, version_id: &str) -> Vec<u8> {
    format!("secretsmanager\0{arn}\0{version_id}").into_bytes()
}

/// Seals `value` as version `version_id` of the secret `arn`, with a fresh random nonce.
pub fn seal(key: &Key, arn: &str, version_id: &str, value: &SecretValue) -> String {
    let nonce: [u8; flotilla_seal::NONCE_BYTES] = rand::random();
    flotilla_seal::seal(key, nonce, &context(arn, version_id), value.bytes())
        .as_str()
        .to_string()
}

/// Opens version `v` of the secret `arn`. A value that does not open is `DecryptionFailure`
/// (the server has another key, or the store was altered), never its bytes.
pub fn open(key: &Key, arn: &str, v: &Version) -> Result<SecretValue, SmError> {
    let bytes = flotilla_seal::open(
        key,
        &context(arn, &v.id),
        &Sealed::from_stored(v.sealed.clone()),
    )
    .map_err(|e| {
        SmError::new(
            ErrorShape::DecryptionFailure,
            format!("Secrets Manager can't decrypt the protected secret text: {e}."),
        )
    })?;
    Ok(match v.kind {
        ValueKind::Binary => SecretValue::Binary(bytes.to_vec()),
        ValueKind::String => {
            SecretValue::String(String::from_utf8(bytes.to_vec()).map_err(|_| {
                SmError::new(
                    ErrorShape::DecryptionFailure,
                    "The stored secret text is not UTF-8.",
                )
            })?)
        }
    })
}
