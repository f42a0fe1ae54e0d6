//! [`SsmError`]: an SSM error (one of the model's error shapes and a message).

use crate::ErrorShape;
use flotilla_edge::json::validate::{Violation, ViolationKind};
use flotilla_edge::json::JsonError;
use flotilla_store::StoreError;

/// An error answered to a SSM client. Its message never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsmError {
    /// Which error.
    pub kind: Kind,
    /// What went wrong.
    pub message: String,
}

/// Which error an [`SsmError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the model's error shapes.
    Modeled(ErrorShape),
    /// The protocol's `SerializationException`: a member of the wrong JSON type.
    Serialization,
}

impl SsmError {
    /// The `__type` on the wire.
    pub fn wire_type(&self) -> &'static str {
        match self.kind {
            Kind::Modeled(s) => s.wire_type(),
            Kind::Serialization => "SerializationException",
        }
    }
}

impl std::fmt::Display for SsmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.wire_type(), self.message)
    }
}

impl std::error::Error for SsmError {}

impl SsmError {
    /// An error of `shape`.
    pub fn new(shape: ErrorShape, message: impl Into<String>) -> Self {
        SsmError {
            kind: Kind::Modeled(shape),
            message: message.into(),
        }
    }
    /// `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::ValidationException, message)
    }
    /// `ParameterNotFound`.
    pub fn not_found(name: &str) -> Self {
        Self::new(
            ErrorShape::ParameterNotFound,
            format!("Parameter {name} not found."),
        )
    }
    /// `InternalServerError` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InternalServerError, message)
    }
}

impl From<StoreError> for SsmError {
    fn from(e: StoreError) -> Self {
        SsmError::internal(format!("the store failed: {e}"))
    }
}

impl From<Violation> for SsmError {
    fn from(v: Violation) -> Self {
        match v.kind {
            ViolationKind::WrongType => SsmError {
                kind: Kind::Serialization,
                message: v.message(),
            },
            ViolationKind::Constraint => SsmError::validation(v.message()),
        }
    }
}

impl From<SsmError> for JsonError {
    fn from(e: SsmError) -> Self {
        match e.kind {
            Kind::Serialization => JsonError::serialization(e.message),
            Kind::Modeled(shape) => JsonError::new(
                shape.wire_type(),
                shape.http_status(),
                shape.message_member(),
                e.message,
            ),
        }
    }
}
