//! The task scale-in protection endpoint, `$ECS_AGENT_URI/task-protection/v1/state`, as the ECS
//! agent serves it to a task's containers (`ECS_AGENT_URI` is `http://169.254.170.2/api/ID`,
//! with the container's endpoint id).
//!
//! `GET` answers the task's protection, `PUT` with `{"ProtectionEnabled": bool,
//! "ExpiresInMinutes": N}` changes it. The agent asks the server (GetTaskProtection and
//! UpdateTaskProtection for the one task, in its own cluster, through the agent's API client:
//! [`ProtectionSource`]) and answers in the ECS agent's shapes ([`render`]): `{"protection":
//! {"ExpirationDate", "ProtectionEnabled", "TaskArn"}}`, `{"failure": {"Arn", "Detail",
//! "Reason"}}` (200), or `{"error": {"Arn", "Code", "Message"}}` with the server's status (a
//! request the agent refuses itself: 400 `InvalidParameterException`; a task without role
//! credentials: 403 `AccessDeniedException`, as the ECS agent calls ECS with the task's role;
//! no answer in time: 504 `RequestCanceled`).
//!
//! What this is not: the protection's rules (the server's, `flotilla_control::protection`).

use serde_json::{json, Value};
use std::time::Duration;

/// The path after `/api/ID`.
pub const PATH: &str = "/task-protection/v1/state";
/// The variable with a container's agent API URI.
pub const AGENT_URI_VARIABLE: &str = "ECS_AGENT_URI";
/// How long the server is given to answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong calling the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with an error: its HTTP status, `__type` and message.
    Service {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// No answer (transport), or one that could not be read.
    Unreachable(String),
    /// No answer within [`CALL_TIMEOUT`].
    TimedOut,
}

/// Where the agent asks about protection: the server.
#[async_trait::async_trait]
pub trait ProtectionSource: Send + Sync + 'static {
    /// Calls `operation` (`GetTaskProtection` or `UpdateTaskProtection`) with `body`.
    async fn call(&self, operation: &str, body: Value) -> Result<Value, CallError>;
}

/// The server, through the agent's API client (signed with the agent's key).
pub struct ServerProtection {
    /// The agent's API client.
    pub client: crate::client::EcsClient,
}

#[async_trait::async_trait]
impl ProtectionSource for ServerProtection {
    async fn call(&self, operation: &str, body: Value) -> Result<Value, CallError> {
        match tokio::time::timeout(CALL_TIMEOUT, self.client.call(operation, &body)).await {
            Err(_) => Err(CallError::TimedOut),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(crate::client::ApiError::Service {
                status,
                code,
                message,
            })) => Err(CallError::Service {
                status,
                code,
                message,
            }),
            Ok(Err(e)) => Err(CallError::Unreachable(e.to_string())),
        }
    }
}

/// A request from a container, as the agent reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `GET`.
    Get,
    /// `PUT` with its fields.
    Update {
        /// `ProtectionEnabled`.
        enabled: bool,
        /// `ExpiresInMinutes`.
        expires_in_minutes: Option<i64>,
    },
}

/// The answer: HTTP status and body.
pub type Answer = (u16, Value);

fn error(status: u16, arn: &str, code: &str, message: &str) -> Answer {
    let mut e = serde_json::Map::new();
    if !arn.is_empty() {
        e.insert("Arn".into(), json!(arn));
    }
    e.insert("Code".into(), json!(code));
    e.insert("Message".into(), json!(message));
    (status, json!({ "error": e }))
}

/// The ECS agent's message for a `PUT` body it cannot decode.
pub const DECODE_FAILED: &str = "UpdateTaskProtection: failed to decode request";

/// Reads a `PUT` body as the ECS agent does (unknown fields refused; `ProtectionEnabled`
/// required), or the error to answer (`task_arn` names the task once it is known).
pub fn parse_update(body: &[u8], task_arn: &str) -> Result<Request, Answer> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(rename = "ProtectionEnabled")]
        protection_enabled: Option<bool>,
        #[serde(rename = "ExpiresInMinutes")]
        expires_in_minutes: Option<i64>,
    }
    let b: Body = serde_json::from_slice(body)
        .map_err(|_| error(400, "", "InvalidParameterException", DECODE_FAILED))?;
    let Some(enabled) = b.protection_enabled else {
        return Err(error(
            400,
            task_arn,
            "InvalidParameterException",
            "Invalid request: does not contain 'ProtectionEnabled' field",
        ));
    };
    Ok(Request::Update {
        enabled,
        expires_in_minutes: b.expires_in_minutes,
    })
}

/// The operation and body the agent sends the server for `request` about `task_arn` in
/// `cluster`.
pub fn server_call(request: &Request, cluster: &str, task_arn: &str) -> (&'static str, Value) {
    match request {
        Request::Get => (
            "GetTaskProtection",
            json!({ "cluster": cluster, "tasks": [task_arn] }),
        ),
        Request::Update {
            enabled,
            expires_in_minutes,
        } => {
            let mut b =
                json!({ "cluster": cluster, "tasks": [task_arn], "protectionEnabled": enabled });
            if let Some(m) = expires_in_minutes {
                // ECS's API takes a 32-bit integer; a value beyond it is out of range anyway.
                let m = i32::try_from(*m).unwrap_or(if *m < 0 { i32::MIN } else { i32::MAX });
                b["expiresInMinutes"] = json!(m);
            }
            ("UpdateTaskProtection", b)
        }
    }
}

/// The answer to a container from the server's `result` about `task_arn` (pure).
pub fn render(result: Result<Value, CallError>, task_arn: &str) -> Answer {
    let v = match result {
        Ok(v) => v,
        Err(CallError::Service {
            status,
            code,
            message,
        }) => return error(status, task_arn, &code, &message),
        Err(CallError::TimedOut) => {
            return error(
                504,
                task_arn,
                "RequestCanceled",
                "Timed out calling ECS Task Protection API",
            )
        }
        Err(CallError::Unreachable(why)) => return error(500, task_arn, "ServerException", &why),
    };
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (failures, protected) = (list("failures"), list("protectedTasks"));
    if failures.len() > 1 || (failures.is_empty() && protected.len() != 1) {
        return error(
            500,
            task_arn,
            "ServerException",
            "Unexpected error occurred",
        );
    }
    if let Some(f) = failures.first() {
        return (
            200,
            json!({ "failure": {
                "Arn": f.get("arn").cloned().unwrap_or(Value::Null),
                "Detail": f.get("detail").cloned().unwrap_or(Value::Null),
                "Reason": f.get("reason").cloned().unwrap_or(Value::Null),
            }}),
        );
    }
    let p = &protected[0];
    let expiration = p
        .get("expirationDate")
        .and_then(Value::as_f64)
        .map_or(Value::Null, |t| json!(go_time(t)));
    (
        200,
        json!({ "protection": {
            "ExpirationDate": expiration,
            "ProtectionEnabled": p.get("protectionEnabled").and_then(Value::as_bool).unwrap_or(false),
            "TaskArn": p.get("taskArn").cloned().unwrap_or(Value::Null),
        }}),
    )
}

/// An epoch time as Go writes a `time.Time` in JSON (RFC 3339, fractional seconds without
/// trailing zeros), at the millisecond precision ECS gives.
pub fn go_time(epoch: f64) -> String {
    let ms = (epoch * 1000.0).round();
    let s = super::documents::rfc3339(ms.div_euclid(1000.0));
    let frac = ms.rem_euclid(1000.0) as u32;
    let whole = s.split('.').next().unwrap_or(&s).to_string();
    if frac == 0 {
        format!("{whole}Z")
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{}Z", f.trim_end_matches('0'))
    }
}

/// The ECS agent's answer when the task has no role credentials.
pub fn no_credentials(task_arn: &str) -> Answer {
    error(
        403,
        task_arn,
        "AccessDeniedException",
        "Invalid Request: no task IAM role credentials available for task",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:ecs:us-east-1:1:task/c/abc";

    #[test]
    fn put_bodies_are_read_as_the_ecs_agent_reads_them() {
        assert_eq!(
            parse_update(br#"{"ProtectionEnabled":true,"ExpiresInMinutes":5}"#, ARN),
            Ok(Request::Update {
                enabled: true,
                expires_in_minutes: Some(5)
            })
        );
        let (status, body) = parse_update(br#"{"ExpiresInMinutes":5}"#, ARN).unwrap_err();
        assert_eq!(status, 400);
        assert_eq!(
            body["error"]["Message"],
            "Invalid request: does not contain 'ProtectionEnabled' field"
        );
        assert_eq!(body["error"]["Arn"], ARN);
        for bad in [&b"{"[..], br#"{"ProtectionEnabled":true,"Other":1}"#] {
            let (status, body) = parse_update(bad, ARN).unwrap_err();
            assert_eq!(status, 400);
            assert_eq!(body["error"]["Code"], "InvalidParameterException");
            assert!(body["error"].get("Arn").is_none());
        }
    }

    #[test]
    fn server_answers_become_the_agent_shapes() {
        let ok = json!({"protectedTasks": [{"taskArn": ARN, "protectionEnabled": true,
            "expirationDate": 1_700_000_000.5}], "failures": []});
        let (status, body) = render(Ok(ok), ARN);
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"protection": {"ExpirationDate": "2023-11-14T22:13:20.5Z",
                "ProtectionEnabled": true, "TaskArn": ARN}})
        );
        let off = json!({"protectedTasks": [{"taskArn": ARN, "protectionEnabled": false}]});
        assert_eq!(
            render(Ok(off), ARN).1["protection"]["ExpirationDate"],
            Value::Null
        );
        let failed =
            json!({"protectedTasks": [], "failures": [{"arn": ARN, "reason": "TASK_NOT_VALID"}]});
        assert_eq!(
            render(Ok(failed), ARN),
            (
                200,
                json!({"failure": {"Arn": ARN, "Detail": null, "Reason": "TASK_NOT_VALID"}})
            )
        );
        let e = render(
            Err(CallError::Service {
                status: 400,
                code: "InvalidParameterException".into(),
                message: "bad".into(),
            }),
            ARN,
        );
        assert_eq!(
            e,
            (
                400,
                json!({"error": {"Arn": ARN, "Code": "InvalidParameterException", "Message": "bad"}})
            )
        );
        assert_eq!(render(Err(CallError::TimedOut), ARN).0, 504);
        assert_eq!(render(Ok(json!({})), ARN).0, 500);
    }

    #[test]
    fn calls_name_the_task_in_its_cluster() {
        let (op, body) = server_call(&Request::Get, "c", ARN);
        assert_eq!(op, "GetTaskProtection");
        assert_eq!(body, json!({"cluster": "c", "tasks": [ARN]}));
        let (op, body) = server_call(
            &Request::Update {
                enabled: true,
                expires_in_minutes: None,
            },
            "c",
            ARN,
        );
        assert_eq!(op, "UpdateTaskProtection");
        assert_eq!(
            body,
            json!({"cluster": "c", "tasks": [ARN], "protectionEnabled": true})
        );
        assert_eq!(go_time(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(go_time(1.25), "1970-01-01T00:00:01.25Z");
    }
}
