//! The protocol constants both ends of a call share: which service an `X-Amz-Target` names, the
//! service name in the credential scope, and the content type of the JSON protocol.

/// The `X-Amz-Target` prefix of ECS operations: `AmazonEC2ContainerServiceV20141113.RunTask`.
pub const ECS_TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The `X-Amz-Target` prefix of Flotilla's own operations (not ECS's), signed like any call:
/// `FlotillaAdmin.ReclaimSpot`.
pub const ADMIN_TARGET_PREFIX: &str = "FlotillaAdmin.";

/// The service name in the SigV4 credential scope of every request Flotilla's clients sign.
pub const ECS_SERVICE: &str = "ecs";

/// The content type of the AWS JSON 1.1 protocol, in requests and in answers.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The `X-Amz-Target` of the ECS operation `operation` (e.g. `RunTask`).
pub fn ecs_target(operation: &str) -> String {
    format!("{ECS_TARGET_PREFIX}{operation}")
}

/// The `X-Amz-Target` of Flotilla's own operation `operation` (e.g. `ReclaimSpot`).
pub fn admin_target(operation: &str) -> String {
    format!("{ADMIN_TARGET_PREFIX}{operation}")
}

/// The headers a JSON protocol call signs besides the date: `host`, `content-type` and
/// `x-amz-target`, in that order.
pub fn json_headers<'a>(host: &'a str, target: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("host", host),
        ("content-type", JSON_CONTENT_TYPE),
        ("x-amz-target", target),
    ]
}
