//! The AWS JSON protocol (awsJson1_0 and awsJson1_1) for the services behind the edge.
//!
//! A request is `POST /` with `X-Amz-Target: <prefix>.<Operation>` and a JSON object body (an
//! empty body is `{}`); the answer is the operation's output as JSON with status 200, or
//! `{"__type": "<ErrorShape>", "<message member>": "..."}` with the error's status.
//!
//! A service implements [`JsonApi`] (its names, its operations, and `dispatch`: a JSON object
//! in, a JSON value or a [`JsonError`] out) and is served as [`AwsJson`]`(api)`, which does the
//! protocol: reading the body, refusing what is not JSON (`SerializationException`) or names no
//! operation of the model (`UnknownOperationException`), and writing the answer.

pub mod modeled;
pub mod validate;

use crate::service::{Call, EdgeError, Marker, Outcome, Reply, Service};
use flotilla_sigv4::Caller;
use serde_json::Value;

/// The content type of awsJson1_1 (ECS, Secrets Manager, SSM, CloudWatch Logs).
pub const JSON_1_1: &str = "application/x-amz-json-1.1";
/// The content type of awsJson1_0.
pub const JSON_1_0: &str = "application/x-amz-json-1.0";

/// An error answered to a JSON client: `{"__type": type_name, message_member: message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// The `__type`: an error shape of the service's model, or an AWS protocol error.
    pub type_name: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The message member's name as the model spells it (`Message` or `message`).
    pub message_member: &'static str,
    /// What went wrong and what to do about it. Never a secret value.
    pub message: String,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)
    }
}

impl std::error::Error for JsonError {}

impl JsonError {
    /// An error of the given shape.
    pub fn new(
        type_name: &'static str,
        status: u16,
        message_member: &'static str,
        message: impl Into<String>,
    ) -> Self {
        JsonError {
            type_name,
            status,
            message_member,
            message: message.into(),
        }
    }

    /// `SerializationException` (400): the body is not JSON, or a member has the wrong JSON
    /// type, as every AWS JSON service answers.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", 400, "message", message)
    }

    /// `UnknownOperationException` (400): the target names no operation of the service.
    pub fn unknown_operation(message: impl Into<String>) -> Self {
        Self::new("UnknownOperationException", 400, "message", message)
    }

    /// The body, as sent.
    pub fn body(&self) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert("__type".into(), Value::String(self.type_name.into()));
        m.insert(
            self.message_member.into(),
            Value::String(self.message.clone()),
        );
        serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
    }

    /// The error an edge refusal is answered with in every JSON service: the authentication
    /// errors with AWS's codes (HTTP 403), `InvalidSignatureException` for a credential scoped
    /// to another service, `UnknownOperationException` for an unknown target or path. A body
    /// too large is the service's own client error (`too_large`); a failure of the edge itself
    /// is `InternalFailure` (500), AWS's common error, unless the service has its own
    /// ([`AwsJson`] asks [`JsonApi::internal_error`]).
    pub fn from_edge(e: &EdgeError, title: &str, too_large: impl FnOnce(String) -> Self) -> Self {
        match e {
            EdgeError::Auth(a) => Self::new(a.code().wire_type(), 403, "message", a.to_string()),
            EdgeError::WrongScope { .. } => {
                Self::new("InvalidSignatureException", 403, "message", e.to_string())
            }
            EdgeError::UnknownOperation { target } if !target.is_empty() => {
                Self::unknown_operation(format!("'{target}' is not an operation of {title}."))
            }
            EdgeError::UnknownOperation { .. }
            | EdgeError::NotPost { .. }
            | EdgeError::NotInRegion { .. } => Self::unknown_operation(e.to_string()),
            EdgeError::BodyTooLarge { .. } => too_large(e.to_string()),
            EdgeError::AccessDenied { .. } => {
                Self::new("AccessDeniedException", 400, "message", e.to_string())
            }
            EdgeError::Internal { .. } => Self::internal_failure(e.to_string()),
        }
    }

    /// `InternalFailure` (500): AWS's common error for a failure of the service itself.
    pub fn internal_failure(message: impl Into<String>) -> Self {
        Self::new("InternalFailure", 500, "message", message)
    }
}

/// One request to a JSON service, its body read as a JSON object.
#[derive(Debug, Clone)]
pub struct JsonCall<'a> {
    /// Who signed it.
    pub caller: &'a Caller,
    /// The operation, one of the model's ([`JsonApi::has_operation`]).
    pub operation: &'a str,
    /// The body: a JSON object (`{}` for an empty body), not yet checked against the model.
    pub input: Value,
    /// The request time, seconds since the epoch.
    pub now: f64,
}

/// What a JSON service implements to be served by [`AwsJson`].
#[async_trait::async_trait]
pub trait JsonApi: Send + Sync {
    /// The service's name in messages: `Secrets Manager`.
    fn title(&self) -> &'static str;
    /// The service name in the SigV4 credential scope: `secretsmanager`.
    fn signing_name(&self) -> &'static str;
    /// The model's `targetPrefix`, without the dot: `secretsmanager`, `AmazonSSM`.
    fn target_prefix(&self) -> &'static str;
    /// The protocol's content type ([`JSON_1_1`] unless the model says `jsonVersion` 1.0).
    fn content_type(&self) -> &'static str {
        JSON_1_1
    }
    /// Whether `name` is an operation of the model.
    fn has_operation(&self, name: &str) -> bool;
    /// The service's own error for a request it cannot read (a body over the edge's limit).
    fn invalid_request(&self, message: String) -> JsonError;
    /// The service's own error for a failure of the edge or the service itself (a store that
    /// does not answer): AWS's common `InternalFailure` unless the model has its own.
    fn internal_error(&self, message: String) -> JsonError {
        JsonError::internal_failure(message)
    }
    /// Runs one operation.
    async fn dispatch(&self, call: JsonCall<'_>) -> Result<Value, JsonError>;
}

#[async_trait::async_trait]
impl<T: JsonApi + ?Sized> JsonApi for std::sync::Arc<T> {
    fn title(&self) -> &'static str {
        (**self).title()
    }
    fn signing_name(&self) -> &'static str {
        (**self).signing_name()
    }
    fn target_prefix(&self) -> &'static str {
        (**self).target_prefix()
    }
    fn content_type(&self) -> &'static str {
        (**self).content_type()
    }
    fn has_operation(&self, name: &str) -> bool {
        (**self).has_operation(name)
    }
    fn invalid_request(&self, message: String) -> JsonError {
        (**self).invalid_request(message)
    }
    fn internal_error(&self, message: String) -> JsonError {
        (**self).internal_error(message)
    }
    async fn dispatch(&self, call: JsonCall<'_>) -> Result<Value, JsonError> {
        (**self).dispatch(call).await
    }
}

/// A [`JsonApi`] served as a [`Service`].
pub struct AwsJson<A>(pub A);

impl<A: JsonApi> AwsJson<A> {
    fn reply(&self, result: Result<Value, JsonError>) -> Reply {
        let content_type = self.0.content_type();
        match result.and_then(|v| {
            serde_json::to_vec(&v).map_err(|e| {
                JsonError::new(
                    "InternalFailure",
                    500,
                    "message",
                    format!("could not encode the response: {e}"),
                )
            })
        }) {
            Ok(body) => Reply {
                status: 200,
                content_type,
                body,
                outcome: Outcome::Ok,
                error_message: None,
            },
            Err(e) => Reply {
                status: e.status,
                content_type,
                body: e.body(),
                outcome: Outcome::Error(e.type_name.to_string()),
                error_message: Some(e.message),
            },
        }
    }
}

/// A request body as a JSON object; an empty one is `{}`.
pub fn parse_body(body: &[u8]) -> Result<Value, JsonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        JsonError::serialization(format!("The request body is not valid JSON: {e}."))
    })?;
    if !v.is_object() {
        return Err(JsonError::serialization(
            "The request body must be a JSON object.",
        ));
    }
    Ok(v)
}

#[async_trait::async_trait]
impl<A: JsonApi> Service for AwsJson<A> {
    fn title(&self) -> &'static str {
        self.0.title()
    }

    fn signing_name(&self) -> &'static str {
        self.0.signing_name()
    }

    fn marker(&self) -> Marker {
        Marker::Target(self.0.target_prefix())
    }

    fn has_operation(&self, name: &str) -> bool {
        self.0.has_operation(name)
    }

    async fn call(&self, call: Call<'_>) -> Reply {
        if !self.0.has_operation(call.operation) {
            let target = format!("{}.{}", self.0.target_prefix(), call.operation);
            return self.reject(&EdgeError::UnknownOperation { target });
        }
        let input = match parse_body(call.body) {
            Ok(v) => v,
            Err(e) => return self.reply(Err(e)),
        };
        let result = self
            .0
            .dispatch(JsonCall {
                caller: call.caller,
                operation: call.operation,
                input,
                now: call.now,
            })
            .await;
        self.reply(result)
    }

    fn reject(&self, error: &EdgeError) -> Reply {
        let e = match error {
            EdgeError::Internal { .. } => self.0.internal_error(error.to_string()),
            _ => JsonError::from_edge(error, self.0.title(), |m| self.0.invalid_request(m)),
        };
        self.reply(Err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_use_the_models_message_member() {
        let e = JsonError::new("ParameterNotFound", 400, "message", "gone");
        assert_eq!(
            String::from_utf8(e.body()).unwrap(),
            r#"{"__type":"ParameterNotFound","message":"gone"}"#
        );
        let e = JsonError::new("ResourceNotFoundException", 400, "Message", "gone");
        assert_eq!(
            String::from_utf8(e.body()).unwrap(),
            r#"{"__type":"ResourceNotFoundException","Message":"gone"}"#
        );
    }

    #[test]
    fn a_credential_for_another_service_is_refused_with_awss_wording() {
        let e = JsonError::from_edge(
            &EdgeError::WrongScope {
                expected: "secretsmanager",
            },
            "Secrets Manager",
            JsonError::serialization,
        );
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert_eq!(e.status, 403);
        assert_eq!(
            e.message,
            "Credential should be scoped to correct service: 'secretsmanager'. "
        );
    }

    #[test]
    fn the_edges_own_failure_is_a_5xx_never_a_refusal() {
        let e = JsonError::from_edge(
            &EdgeError::Internal {
                message: "the store failed".into(),
            },
            "Secrets Manager",
            JsonError::serialization,
        );
        assert_eq!((e.type_name, e.status), ("InternalFailure", 500));
        assert_eq!(e.message, "the store failed");
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert_eq!(parse_body(b"  ").unwrap(), serde_json::json!({}));
        for bad in [&b"["[..], b"1", b"\"s\"", b"null", b"{"] {
            assert_eq!(
                parse_body(bad).unwrap_err().type_name,
                "SerializationException"
            );
        }
    }
}
