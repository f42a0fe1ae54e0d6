//! [`SsmError`]: an SSM error (one of the model's error shapes and a message, the type from
//! [`flotilla_edge::modeled_error!`]), with the service's wording for the common ones.

use crate::ErrorShape;
use flotilla_store::StoreError;

flotilla_edge::modeled_error! {
    /// An error answered to an SSM client. Its message never holds a secret value.
    SsmError, shapes: ErrorShape, constraint: ValidationException
}

impl SsmError {
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
