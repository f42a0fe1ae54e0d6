//! AWS Signature Version 4 for Flotilla: the one signer its clients use (the agent, the CLI's
//! verbs) and the verifier the API server runs on every request, plus the `X-Amz-Target`
//! prefixes both ends agree on.
//!
//! - [`target`]: the protocol constants (target prefixes, the signing service name, the JSON
//!   content type).
//! - [`sign()`]: signs a request ([`Request`]) with a key ([`Signer`]).
//! - [`verify()`]: checks a received request against the configured [`Credential`]s and tells
//!   who the [`Caller`] is, or why not ([`AuthError`]).
//! - [`canonical`]: the canonical request, the string to sign and the signing key both share.
//!
//! **Architecture Invariant:** pure. No I/O, no clock (callers pass the time as epoch seconds),
//! no async runtime; the Cargo.toml allows only hashing, hex, date formatting and `thiserror`.

pub mod canonical;
mod sign;
pub mod target;
mod verify;

pub use sign::{sign, sign_for, Request, Signer};
pub use verify::{
    access_key_id, scope_region, scope_service, verify, verify_pairs, AuthCode, AuthError, Caller,
    Credential, MAX_SKEW_SECONDS,
};
