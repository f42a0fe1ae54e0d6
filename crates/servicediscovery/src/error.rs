//! [`SdError`]: a Cloud Map error (one of the model's error shapes, or AWS's common
//! `InternalFailure`, and a message; the type from [`flotilla_edge::modeled_error!`]), with Cloud
//! Map's wording for the common ones.
//!
//! Cloud Map's model has no server-fault shape, so [`Shape`] adds AWS's common `InternalFailure`
//! (500) to the generated [`ErrorShape`]s: a store that fails is never answered as the client's
//! fault.

use crate::ErrorShape;
use flotilla_store::StoreError;

/// Which error: one of the model's shapes, or AWS's common `InternalFailure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An error shape of the model.
    Modeled(ErrorShape),
    /// `InternalFailure` (500): Flotilla itself failed (the store did not answer).
    InternalFailure,
}

#[allow(non_upper_case_globals)]
impl Shape {
    /// The shape a broken constraint of the model is answered with.
    pub const InvalidInput: Shape = Shape::Modeled(ErrorShape::InvalidInput);

    /// The `__type` on the wire.
    pub fn wire_type(self) -> &'static str {
        match self {
            Shape::Modeled(s) => s.wire_type(),
            Shape::InternalFailure => "InternalFailure",
        }
    }
    /// The HTTP status.
    pub fn http_status(self) -> u16 {
        match self {
            Shape::Modeled(s) => s.http_status(),
            Shape::InternalFailure => 500,
        }
    }
    /// The message member's name.
    pub fn message_member(self) -> &'static str {
        match self {
            Shape::Modeled(s) => s.message_member(),
            Shape::InternalFailure => "message",
        }
    }
}

flotilla_edge::modeled_error! {
    /// An error answered to a Cloud Map client (and returned by [`crate::instances`]).
    SdError, shapes: Shape, constraint: InvalidInput
}

impl SdError {
    /// An error of one of the model's shapes.
    pub fn of(shape: ErrorShape, message: impl Into<String>) -> Self {
        Self::new(Shape::Modeled(shape), message)
    }
    /// The model's shape of this error, if it is one.
    pub fn shape(&self) -> Option<ErrorShape> {
        match self.kind {
            Kind::Modeled(Shape::Modeled(s)) => Some(s),
            _ => None,
        }
    }
    /// `InvalidInput`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::of(ErrorShape::InvalidInput, message)
    }
    /// `NamespaceNotFound`, Cloud Map's wording.
    pub fn namespace_not_found(id: &str) -> Self {
        Self::of(
            ErrorShape::NamespaceNotFound,
            format!("Namespace not found: {id}"),
        )
    }
    /// `ServiceNotFound`, Cloud Map's wording.
    pub fn service_not_found(id: &str) -> Self {
        Self::of(
            ErrorShape::ServiceNotFound,
            format!("Service not found: {id}"),
        )
    }
    /// `InstanceNotFound`, Cloud Map's wording.
    pub fn instance_not_found(id: &str) -> Self {
        Self::of(
            ErrorShape::InstanceNotFound,
            format!("Instance not found: {id}"),
        )
    }
    /// `ResourceInUse`.
    pub fn in_use(message: impl Into<String>) -> Self {
        Self::of(ErrorShape::ResourceInUse, message)
    }
    /// `ResourceNotFoundException` (a tagged resource's ARN).
    pub fn resource_not_found(arn: &str) -> Self {
        Self::of(
            ErrorShape::ResourceNotFoundException,
            format!("Resource not found: {arn}"),
        )
    }
    /// `InternalFailure` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Shape::InternalFailure, message)
    }
    /// Whether this is Flotilla's own failure (a 5xx), not the request's.
    pub fn is_internal(&self) -> bool {
        self.kind == Kind::Modeled(Shape::InternalFailure)
    }
}

impl From<StoreError> for SdError {
    fn from(e: StoreError) -> Self {
        SdError::internal(format!("the store failed: {e}"))
    }
}
