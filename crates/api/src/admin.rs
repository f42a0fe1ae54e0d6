//! Flotilla's own operations, beside the ECS API, on the same endpoint and signature
//! (`X-Amz-Target: FlotillaAdmin.<op>`).

use crate::context::Api;
use flotilla_controllers::fargate::reclaim_spot;
use flotilla_model::EcsError;

/// Flotilla's own operations, beside the ECS API (`X-Amz-Target: FlotillaAdmin.<op>`, JSON in
/// and out, SigV4-signed like every call):
/// - `ReclaimSpot` `{"cluster"?: NAME, "count"?: N}` -> `{"tasks": [ARN, ...]}`: interrupts
///   FARGATE_SPOT tasks (`flotilla_controllers::fargate::reclaim_spot`).
pub async fn admin(
    api: &Api,
    op: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value, EcsError> {
    match op {
        "ReclaimSpot" => {
            let cluster = match input.get("cluster") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(c)) => Some(c.as_str()),
                Some(_) => {
                    return Err(EcsError::invalid_parameter(
                        "cluster must be a cluster name or ARN.",
                    ))
                }
            };
            let count = match input.get("count") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n >= 1 => Some(n),
                    _ => {
                        return Err(EcsError::invalid_parameter(
                            "count must be a whole number of at least 1.",
                        ))
                    }
                },
            };
            let tasks = reclaim_spot(&api.plane, cluster, count).await?;
            Ok(serde_json::json!({ "tasks": tasks }))
        }
        other => Err(EcsError::new(
            flotilla_model::ErrorCode::UnknownOperationException,
            format!(
                "'{ADMIN}{other}' is not a Flotilla operation (known: {ADMIN}ReclaimSpot).",
                ADMIN = crate::server::ADMIN_TARGET_PREFIX
            ),
        )),
    }
}
