//! [`SmError`]: a Secrets Manager error (one of the model's error shapes and a message), with
//! the service's known wording for the common ones.

use crate::ErrorShape;
use flotilla_edge::json::validate::{Violation, ViolationKind};
use flotilla_edge::json::JsonError;
use flotilla_store::StoreError;

/// An error answered to a Secrets Manager client. Its message never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmError {
    /// Which error.
    pub kind: Kind,
    /// What went wrong.
    pub message: String,
}

/// Which error an [`SmError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the model's error shapes.
    Modeled(ErrorShape),
    /// The protocol's `SerializationException`: a member of the wrong JSON type.
    Serialization,
}

impl SmError {
    /// The `__type` on the wire.
    pub fn wire_type(&self) -> &'static str {
        match self.kind {
            Kind::Modeled(s) => s.wire_type(),
            Kind::Serialization => "SerializationException",
        }
    }
}

impl std::fmt::Display for SmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.wire_type(), self.message)
    }
}

impl std::error::Error for SmError {}

impl SmError {
    /// An error of `shape`.
    pub fn new(shape: ErrorShape, message: impl Into<String>) -> Self {
        SmError {
            kind: Kind::Modeled(shape),
            message: message.into(),
        }
    }
    /// `ResourceNotFoundException` with AWS's wording.
    pub fn not_found() -> Self {
        Self::new(
            ErrorShape::ResourceNotFoundException,
            "Secrets Manager can't find the specified secret.",
        )
    }
    /// `InvalidParameterException`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InvalidParameterException, message)
    }
    /// `InvalidRequestException`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InvalidRequestException, message)
    }
    /// `InvalidRequestException` for a secret scheduled for deletion, AWS's wording.
    pub fn marked_for_deletion() -> Self {
        Self::invalid_request(
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
    }
    /// `InternalServiceError` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InternalServiceError, message)
    }
}

impl From<StoreError> for SmError {
    fn from(e: StoreError) -> Self {
        SmError::internal(format!("the store failed: {e}"))
    }
}

impl From<Violation> for SmError {
    fn from(v: Violation) -> Self {
        match v.kind {
            ViolationKind::WrongType => SmError {
                kind: Kind::Serialization,
                message: v.message(),
            },
            ViolationKind::Constraint => SmError::invalid_parameter(v.message()),
        }
    }
}

impl From<SmError> for JsonError {
    fn from(e: SmError) -> Self {
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
