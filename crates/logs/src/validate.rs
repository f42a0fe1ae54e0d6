//! Requests checked against the Logs model before a handler sees them
//! (`flotilla_edge::json::validate::Model`): a wrong JSON type is `SerializationException`, a
//! missing required member or a value out of the model's range, length, pattern or enum is
//! `InvalidParameterException`, in AWS's words.

use crate::error::LogsError;
use flotilla_edge::json::validate::{Model, ViolationKind};
use serde_json::Value;
use std::sync::OnceLock;

static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));

/// The Logs model, parsed once.
pub fn model() -> Option<&'static Model> {
    static M: OnceLock<Option<Model>> = OnceLock::new();
    M.get_or_init(|| Model::parse(MODEL_JSON).ok()).as_ref()
}

/// Validates then deserializes a request into its generated type.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    operation: &str,
    input: Value,
) -> Result<T, LogsError> {
    let Some(model) = model() else {
        return Err(LogsError::unavailable("the Logs model could not be read"));
    };
    model
        .parse_input(operation, input)
        .map_err(|v| match v.kind {
            ViolationKind::WrongType => LogsError::serialization(v.message()),
            ViolationKind::Constraint => LogsError::invalid(v.message()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LogsErrorCode;
    use crate::shapes::CreateLogGroupRequest;
    use serde_json::json;

    #[test]
    fn the_model_decides_types_lengths_and_patterns() {
        let ok: CreateLogGroupRequest =
            parse_input("CreateLogGroup", json!({"logGroupName": "/ecs/web"})).unwrap();
        assert_eq!(ok.log_group_name, "/ecs/web");
        let code = |v| {
            parse_input::<CreateLogGroupRequest>("CreateLogGroup", v)
                .unwrap_err()
                .code
        };
        assert_eq!(
            code(json!({"logGroupName": 5})),
            LogsErrorCode::SerializationException
        );
        assert_eq!(
            code(json!({"logGroupName": "bad name"})),
            LogsErrorCode::InvalidParameterException
        );
        assert_eq!(code(json!({})), LogsErrorCode::InvalidParameterException);
    }
}
