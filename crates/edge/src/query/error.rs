//! [`QueryError`]: an error answered to an awsQuery client, as the XML error document
//! `<ErrorResponse xmlns=NS><Error><Type>Sender</Type><Code>..</Code><Message>..</Message>
//! </Error><RequestId>..</RequestId></ErrorResponse>`.

use super::xml::escape;

/// An error of an awsQuery service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The `<Code>`: the model's `error.code` (`LoadBalancerNotFound`) or a common error
    /// (`ValidationError`, `InvalidAction`, `InternalFailure`, the authentication errors).
    pub code: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// Whether the caller is at fault (`<Type>Sender</Type>`, else `Receiver`).
    pub sender: bool,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for QueryError {}

impl QueryError {
    /// An error with this code, status and fault.
    pub fn new(code: &'static str, status: u16, sender: bool, message: impl Into<String>) -> Self {
        QueryError {
            code,
            status,
            sender,
            message: message.into(),
        }
    }

    /// `ValidationError` (400): a parameter is missing, malformed or out of range.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationError", 400, true, message)
    }

    /// `InvalidAction` (400): the `Action` names no operation of the service.
    pub fn invalid_action(message: impl Into<String>) -> Self {
        Self::new("InvalidAction", 400, true, message)
    }

    /// `MissingAction` (400): the form has no `Action`.
    pub fn missing_action(message: impl Into<String>) -> Self {
        Self::new("MissingAction", 400, true, message)
    }

    /// `InternalFailure` (500): the service failed.
    pub fn internal_failure(message: impl Into<String>) -> Self {
        Self::new("InternalFailure", 500, false, message)
    }

    /// The XML error document, in the service's namespace `xmlns`.
    pub fn body(&self, xmlns: &str, request_id: &str) -> Vec<u8> {
        format!(
            "<ErrorResponse xmlns=\"{}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            escape(xmlns),
            if self.sender { "Sender" } else { "Receiver" },
            escape(self.code),
            escape(&self.message),
            escape(request_id)
        )
        .into_bytes()
    }
}
