//! Requests checked against the Logs model before a handler sees them
//! (`flotilla_botocore::Validator`): a wrong JSON type is `SerializationException`, a missing
//! required member or a value out of the model's range, length, pattern or enum is
//! `InvalidParameterException`.

use crate::error::LogsError;
use flotilla_botocore::{InvalidKind, Validator};
use serde_json::Value;
use std::sync::OnceLock;

static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(MODEL_JSON))
}

/// Validates then deserializes a request into its generated type.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    operation: &str,
    input: Value,
) -> Result<T, LogsError> {
    validator()
        .check_input(operation, &input)
        .map_err(|e| match e.kind {
            InvalidKind::Serialization => LogsError::serialization(e.message),
            InvalidKind::Parameter => LogsError::invalid(e.message),
        })?;
    serde_json::from_value(input)
        .map_err(|e| LogsError::serialization(format!("Could not read the request: {e}.")))
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
