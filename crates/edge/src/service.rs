//! [`Service`]: one AWS service behind the edge, and what passes between them.
//!
//! How to add a service: give it its own crate (its generated model, its handlers, its store
//! keys), implement [`Service`] (a JSON service implements [`crate::json::JsonApi`] and wraps
//! itself in [`crate::json::AwsJson`]), and register it with `flotilla_api::Api::with_service`
//! where the server is built (`crates/cli/src/serve.rs`). Nothing else in the edge changes.

use flotilla_sigv4::{AuthError, Caller};

/// How a request names the service it is for, besides its credential scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The JSON protocols: `X-Amz-Target: <prefix>.<Operation>` (the model's `targetPrefix`,
    /// without the dot), e.g. `secretsmanager`, `AmazonSSM`, `Logs_20140328`.
    Target(&'static str),
    /// The awsQuery protocol: no target; a form body whose `Action` names the operation
    /// (`crate::query::action`). The edge routes such a request to the service its SigV4
    /// credential scope names.
    Action,
}

/// One verified request, as the service sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Who signed it (access key, principal, the region of the credential scope).
    pub caller: &'a Caller,
    /// The operation name (`GetSecretValue`), from the marker; the service checks it is one
    /// of its own.
    pub operation: &'a str,
    /// The request body as received (already checked against the edge's size limit).
    pub body: &'a [u8],
    /// The request time, seconds since the epoch, read once by the edge.
    pub now: f64,
    /// The `x-amzn-RequestId` the edge answers with.
    pub request_id: &'a str,
}

/// Whether a request succeeded, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with the operation's output.
    Ok,
    /// Answered with this error type (the wire `__type`).
    Error(String),
}

/// A service's answer: status, content type and body, exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// What it says, for metrics and logs (never the body itself: it may hold a secret).
    pub outcome: Outcome,
    /// For an error, its message, for the request's log line. A service never puts a secret
    /// value in an error message.
    pub error_message: Option<String>,
}

/// Something the edge refused before the service saw the request. The service renders it in
/// its own error shape ([`Service::reject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeError {
    /// The signature could not be verified ([`AuthError::code`] says which AWS error).
    Auth(AuthError),
    /// The request is signed for another service than the one its marker names: AWS answers
    /// `InvalidSignatureException` "Credential should be scoped to correct service: 'NAME'. ".
    WrongScope {
        /// The signing name of the service the marker names.
        expected: &'static str,
    },
    /// The marker names no operation of the service (or there is no marker).
    UnknownOperation {
        /// What the request named (the whole `X-Amz-Target`), empty when nothing.
        target: String,
    },
    /// Not `POST /`.
    NotPost {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// The body is larger than the edge accepts, or could not be read.
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The service is not served in the request's region by this installation (an
    /// installation serving several regions may serve a service in one of them only): the
    /// message says where it is served. Rendered as the protocol's unknown-operation error
    /// (awsQuery's `InvalidAction`: "not valid for this web service"), as AWS answers an
    /// action a region does not offer.
    NotInRegion {
        /// What is served where.
        message: String,
    },
    /// The caller's key is not allowed the call (an agent's own key calling a service that
    /// serves users): AWS's `AccessDeniedException` (awsQuery: `AccessDenied`), the message in
    /// IAM's words.
    AccessDenied {
        /// "User: ARN is not authorized to perform: ACTION on resource: ARN ...".
        message: String,
    },
    /// The edge failed itself while checking the request (the store did not answer a lookup
    /// of a temporary key): the service's own 5xx, never a crash or a refusal of the caller.
    Internal {
        /// What failed (no secret).
        message: String,
    },
}

impl std::fmt::Display for EdgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EdgeError::Auth(e) => write!(f, "{e}"),
            EdgeError::WrongScope { expected } => {
                // AWS's wording, trailing space included.
                write!(
                    f,
                    "Credential should be scoped to correct service: '{expected}'. "
                )
            }
            EdgeError::UnknownOperation { target } if target.is_empty() => {
                f.write_str("The request has no X-Amz-Target header naming the operation.")
            }
            EdgeError::UnknownOperation { target } => {
                write!(f, "'{target}' is not an operation of this service.")
            }
            EdgeError::NotPost { method, path } => {
                write!(f, "The API is served at POST /, not {method} {path}.")
            }
            EdgeError::BodyTooLarge { limit } => write!(
                f,
                "The request body is larger than {limit} bytes or could not be read."
            ),
            EdgeError::Internal { message }
            | EdgeError::NotInRegion { message }
            | EdgeError::AccessDenied { message } => {
                write!(f, "{message}")
            }
        }
    }
}

/// One AWS service served behind the edge.
#[async_trait::async_trait]
pub trait Service: Send + Sync {
    /// The service's name in messages and logs: `Secrets Manager`.
    fn title(&self) -> &'static str;
    /// The service name in the SigV4 credential scope: `secretsmanager`, `ssm`, `logs`.
    fn signing_name(&self) -> &'static str;
    /// How a request names this service.
    fn marker(&self) -> Marker;
    /// Whether `name` is an operation of this service's model (served or not): the edge
    /// labels metrics with it, and with `unknown` otherwise.
    fn has_operation(&self, name: &str) -> bool;
    /// Serves one verified request.
    async fn call(&self, call: Call<'_>) -> Reply;
    /// Renders an error the edge found, in this service's shape.
    fn reject(&self, error: &EdgeError) -> Reply;
}
