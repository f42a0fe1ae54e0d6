//! AWS Secrets Manager, served by Flotilla on the ECS endpoint (`X-Amz-Target: secretsmanager.*`,
//! SigV4 scope `secretsmanager`), enough for the aws CLI, boto3 and ECS `secrets`.
//!
//! - [`shapes`]: the request and response types, generated from the vendored botocore model
//!   (`spec/service-2.json`) by `flotilla-codegen`; [`ErrorShape`]: its error shapes.
//! - [`record`] (pure): a secret as stored ([`record::SecretRecord`]) and its rules: versions and
//!   their staging labels (AWSCURRENT, AWSPREVIOUS), deletion with a recovery window, tags.
//! - [`arn`] (pure): secret ARNs (`...:secret:NAME-XXXXXX`) and how a `SecretId` (a name, a
//!   full ARN or a partial ARN) finds its secret.
//! - [`service`]: [`SecretsManager`], the operations, on the [`flotilla_store::Store`] under
//!   `secretsmanager/secrets/NAME`; every write a compare-and-swap.
//! - [`values`]: sealing and opening a version's value with the installation's
//!   [`flotilla_seal::Key`], bound to the secret's ARN and the version id.
//! - [`resolve`]: a secret's value for an ECS task's `secrets` (what `GetSecretValue` would
//!   answer), for the agent session.
//!
//! **Architecture Invariant:** a secret's value is stored only sealed, and never appears in a
//! log line, an error message or a `Describe`/`List` answer; the generated types print
//! `*** Sensitive Data Redacted ***` for it in `Debug`.
//!
//! Operations served: CreateSecret, GetSecretValue, BatchGetSecretValue, PutSecretValue,
//! UpdateSecret, DescribeSecret, ListSecrets, ListSecretVersionIds, DeleteSecret, RestoreSecret,
//! TagResource, UntagResource, GetRandomPassword. The others (rotation, replication, resource
//! policies) answer `InvalidRequestException` naming the operation.

#![warn(missing_docs)]

/// Seconds since the Unix epoch, as Secrets Manager puts timestamps on the wire.
pub type Timestamp = f64;

/// Every shape of the Secrets Manager model, generated from `spec/service-2.json`.
#[allow(missing_docs, clippy::all, clippy::doc_lazy_continuation)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

#[allow(missing_docs, clippy::all)]
mod errors {
    include!(concat!(env!("OUT_DIR"), "/errors.rs"));
}

pub use errors::ErrorShape;

pub mod arn;
pub mod error;
pub mod record;
pub mod resolve;
pub mod service;
pub mod values;

pub use error::SmError;
pub use service::SecretsManager;

/// The model without documentation, for input validation.
pub(crate) static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));
