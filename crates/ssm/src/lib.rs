//! SSM Parameter Store, served by Flotilla on the ECS endpoint (`X-Amz-Target: AmazonSSM.*`,
//! SigV4 scope `ssm`), enough for the aws CLI, boto3 and ECS `secrets`.
//!
//! - [`shapes`]: the request and response types, generated from the vendored botocore model
//!   (`spec/service-2.json`) by `flotilla-codegen`; [`ErrorShape`]: its error shapes.
//! - [`record`] (pure): a parameter as stored ([`record::ParameterRecord`]: its versions, each
//!   a String, StringList or SecureString value) and Parameter Store's rules: names and
//!   hierarchies, `name:version` selectors, paths, versions.
//! - [`service`]: [`Ssm`], the operations, on the store under `ssm/parameters/NAME`; every
//!   write a compare-and-swap.
//! - SecureString values are sealed with the installation's [`flotilla_seal::Key`], bound to the
//!   parameter's name and version; read without `WithDecryption` they answer their encrypted
//!   form (base64), never the clear value.
//!
//! Operations served: PutParameter, GetParameter, GetParameters, GetParametersByPath,
//! DescribeParameters, GetParameterHistory, DeleteParameter, DeleteParameters. The rest of
//! Systems Manager answers `UnsupportedOperationException` naming the operation.

#![warn(missing_docs)]

/// Seconds since the Unix epoch, as SSM puts timestamps on the wire.
pub type Timestamp = f64;

/// Every shape of the SSM model, generated from `spec/service-2.json`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

#[allow(missing_docs, clippy::all)]
mod errors {
    include!(concat!(env!("OUT_DIR"), "/errors.rs"));
}

pub use errors::ErrorShape;

pub mod error;
pub mod record;
pub mod service;

pub use error::SsmError;
pub use service::Ssm;

/// The model without documentation, for input validation.
pub(crate) static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));
