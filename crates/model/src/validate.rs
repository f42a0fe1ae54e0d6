//! Input validation driven by the ECS model itself.
//!
//! Before a handler sees a request, [`check_input`] walks the raw JSON against the operation's
//! input shape in `spec/service-2.json` and rejects what the model forbids, with a message that
//! names the member path and says what is allowed:
//! - a member of the wrong JSON type: `SerializationException` (what AWS's JSON protocol answers);
//! - a missing required member, a value outside the model's `min`/`max`, a string not matching the
//!   model's `pattern`, a value that is not one of an enum's values: `InvalidParameterException`.
//!
//! Unknown members are ignored, as AWS services do, so newer SDKs keep working. After this check
//! the typed deserialization of the request cannot fail on shape grounds.
//!
//! What this module is not: ECS's semantic rules (memory per launch type, Fargate sizes, ...)
//! live with the resource they govern, e.g. [`crate::task_definition`].

use crate::error::EcsError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));

/// The parsed model, loaded once.
fn model() -> &'static Value {
    static MODEL: OnceLock<Value> = OnceLock::new();
    MODEL.get_or_init(|| serde_json::from_str(MODEL_JSON).unwrap_or(Value::Null))
}

/// The compiled `pattern` of the shape `name`, compiled on its first use (compiling the
/// model's every pattern at once is slow, and most are never needed); `None` when the shape has
/// none or it is not one Rust's `regex` reads.
fn pattern(name: &str) -> Option<&'static regex::Regex> {
    type Patterns = HashMap<String, OnceLock<Option<regex::Regex>>>;
    static P: OnceLock<Patterns> = OnceLock::new();
    let patterns = P.get_or_init(|| {
        let mut m = HashMap::new();
        if let Some(shapes) = model()["shapes"].as_object() {
            for (name, s) in shapes {
                if s.get("pattern").and_then(Value::as_str).is_some() {
                    m.insert(name.clone(), OnceLock::new());
                }
            }
        }
        m
    });
    patterns
        .get(name)?
        .get_or_init(|| {
            let p = model()["shapes"][name]["pattern"].as_str()?;
            regex::Regex::new(&format!("^(?:{p})$")).ok()
        })
        .as_ref()
}

/// Checks `input` against the input shape of `operation` (an operation name of the model).
pub fn check_input(operation: &str, input: &Value) -> Result<(), EcsError> {
    let Some(shape) = model()["operations"][operation]["input"]["shape"].as_str() else {
        return Ok(());
    };
    if !input.is_object() {
        return Err(EcsError::serialization(
            "The request body must be a JSON object.".to_string(),
        ));
    }
    check(shape, input, "")
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn path_join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn type_error(path: &str, expected: &str, got: &Value) -> EcsError {
    EcsError::serialization(format!(
        "Invalid type for parameter {path}: expected {expected}, got {}.",
        describe(got)
    ))
}

fn check(shape_name: &str, v: &Value, path: &str) -> Result<(), EcsError> {
    let shape = &model()["shapes"][shape_name];
    let ty = shape["type"].as_str().unwrap_or("");
    let shown = if path.is_empty() { "input" } else { path };
    match ty {
        "structure" => {
            if shape.get("document").is_some() {
                return Ok(());
            }
            let Some(obj) = v.as_object() else {
                return Err(type_error(shown, "an object", v));
            };
            if let Some(req) = shape["required"].as_array() {
                for r in req.iter().filter_map(Value::as_str) {
                    if obj.get(r).is_none_or(Value::is_null) {
                        return Err(EcsError::invalid_parameter(format!(
                            "Missing required parameter: {}.",
                            path_join(path, r)
                        )));
                    }
                }
            }
            let members = shape["members"].as_object();
            for (k, mv) in obj {
                if mv.is_null() {
                    continue;
                }
                if let Some(target) = members
                    .and_then(|m| m.get(k))
                    .and_then(|m| m["shape"].as_str())
                {
                    check(target, mv, &path_join(path, k))?;
                }
            }
            Ok(())
        }
        "list" => {
            let Some(items) = v.as_array() else {
                return Err(type_error(shown, "a list", v));
            };
            check_len(shape, items.len(), shown, "items")?;
            let member = shape["member"]["shape"].as_str().unwrap_or("");
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    return Err(type_error(&format!("{shown}[{i}]"), "a value", item));
                }
                check(member, item, &format!("{shown}[{i}]"))?;
            }
            Ok(())
        }
        "map" => {
            let Some(obj) = v.as_object() else {
                return Err(type_error(shown, "an object (map)", v));
            };
            let value_shape = shape["value"]["shape"].as_str().unwrap_or("");
            let key_shape = shape["key"]["shape"].as_str().unwrap_or("");
            for (k, mv) in obj {
                check(
                    key_shape,
                    &Value::String(k.clone()),
                    &format!("{shown} key"),
                )?;
                check(value_shape, mv, &format!("{shown}.{k}"))?;
            }
            Ok(())
        }
        "string" => {
            let Some(s) = v.as_str() else {
                return Err(type_error(shown, "a string", v));
            };
            if let Some(values) = shape["enum"].as_array() {
                if !values.iter().any(|e| e.as_str() == Some(s)) {
                    let allowed: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
                    return Err(EcsError::invalid_parameter(format!(
                        "Invalid value '{s}' for {shown}. Valid values are: {}.",
                        allowed.join(", ")
                    )));
                }
            }
            check_len(shape, s.chars().count(), shown, "characters")?;
            if let Some(re) = pattern(shape_name) {
                if !re.is_match(s) {
                    return Err(EcsError::invalid_parameter(format!(
                        "Invalid value '{s}' for {shown}: it must match the pattern {}.",
                        shape["pattern"].as_str().unwrap_or("")
                    )));
                }
            }
            Ok(())
        }
        "integer" | "long" => {
            let n = match v.as_i64() {
                Some(n) => n,
                None => return Err(type_error(shown, "an integer", v)),
            };
            if ty == "integer" && i32::try_from(n).is_err() {
                return Err(EcsError::invalid_parameter(format!(
                    "Invalid value {n} for {shown}: it must fit in a 32-bit integer."
                )));
            }
            check_range(shape, n as f64, shown)
        }
        "double" | "float" => match v.as_f64() {
            Some(n) => check_range(shape, n, shown),
            None => Err(type_error(shown, "a number", v)),
        },
        "boolean" => {
            if v.is_boolean() {
                Ok(())
            } else {
                Err(type_error(shown, "a boolean", v))
            }
        }
        "timestamp" => {
            if v.is_number() {
                Ok(())
            } else {
                Err(type_error(shown, "a timestamp (epoch seconds)", v))
            }
        }
        _ => Ok(()),
    }
}

fn check_len(shape: &Value, len: usize, path: &str, unit: &str) -> Result<(), EcsError> {
    if let Some(min) = shape["min"].as_u64() {
        if (len as u64) < min {
            return Err(EcsError::invalid_parameter(format!(
                "Invalid length for {path}: it has {len} {unit}, the minimum is {min}."
            )));
        }
    }
    if let Some(max) = shape["max"].as_u64() {
        if (len as u64) > max {
            return Err(EcsError::invalid_parameter(format!(
                "Invalid length for {path}: it has {len} {unit}, the maximum is {max}."
            )));
        }
    }
    Ok(())
}

fn check_range(shape: &Value, n: f64, path: &str) -> Result<(), EcsError> {
    if let Some(min) = shape["min"].as_f64() {
        if n < min {
            return Err(EcsError::invalid_parameter(format!(
                "Invalid value {n} for {path}: the minimum is {min}."
            )));
        }
    }
    if let Some(max) = shape["max"].as_f64() {
        if n > max {
            return Err(EcsError::invalid_parameter(format!(
                "Invalid value {n} for {path}: the maximum is {max}."
            )));
        }
    }
    Ok(())
}

/// Validates then deserializes a request into its generated type.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    operation: &str,
    input: Value,
) -> Result<T, EcsError> {
    check_input(operation, &input)?;
    serde_json::from_value(input)
        .map_err(|e| EcsError::serialization(format!("Could not read the request: {e}.")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn code(op: &str, v: Value) -> Option<ErrorCode> {
        check_input(op, &v).err().map(|e| e.code)
    }

    #[test]
    fn accepts_a_valid_request() {
        assert_eq!(
            code(
                "CreateCluster",
                json!({"clusterName": "a", "tags": [{"key": "k", "value": "v"}]})
            ),
            None
        );
    }

    #[test]
    fn wrong_types_are_serialization_errors() {
        assert_eq!(
            code("CreateCluster", json!({"clusterName": 5})),
            Some(ErrorCode::SerializationException)
        );
        assert_eq!(
            code("ListClusters", json!({"maxResults": "x"})),
            Some(ErrorCode::SerializationException)
        );
        assert_eq!(
            code(
                "RegisterTaskDefinition",
                json!({"family": "f", "containerDefinitions": {}})
            ),
            Some(ErrorCode::SerializationException)
        );
    }

    #[test]
    fn missing_required_and_bad_enum_are_invalid_parameter() {
        let e = check_input("RegisterTaskDefinition", &json!({"family": "f"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        assert!(e.message.contains("containerDefinitions"), "{}", e.message);
        let e = check_input(
            "RegisterTaskDefinition",
            &json!({"family": "f", "containerDefinitions": [], "networkMode": "weird"}),
        )
        .unwrap_err();
        assert!(e.message.contains("bridge"), "{}", e.message);
    }

    #[test]
    fn integer_overflow_and_pattern() {
        assert_eq!(
            code(
                "RegisterTaskDefinition",
                json!({"family": "f", "containerDefinitions": [{"name": "a", "memory": 99999999999u64}]})
            ),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(
            code(
                "TagResource",
                json!({"resourceArn": "x", "tags": [{"key": "bad\u{0007}", "value": "v"}]})
            ),
            Some(ErrorCode::InvalidParameterException)
        );
    }

    #[test]
    fn the_limits_overlay_bounds_what_the_model_leaves_unbounded() {
        // spec/limits.json: an empty cluster setting, a tag without a key.
        for settings in [json!([{}]), json!([{"name": "containerInsights"}])] {
            let e = check_input(
                "UpdateClusterSettings",
                &json!({"cluster": "c", "settings": settings}),
            )
            .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterException);
            assert!(e.message.contains("settings[0]."), "{}", e.message);
        }
        assert_eq!(
            code("TagResource", json!({"resourceArn": "x", "tags": [{}]})),
            Some(ErrorCode::InvalidParameterException)
        );
        // Every string at most 64 KiB, every list at most 1,000 items.
        let td = |command: Value| json!({"family": "f", "containerDefinitions": [{"name": "c", "image": "i", "command": command}]});
        assert_eq!(
            code("RegisterTaskDefinition", td(json!(["x".repeat(65536)]))),
            None
        );
        let e = check_input("RegisterTaskDefinition", &td(json!(["x".repeat(65537)]))).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        assert_eq!(
            e.message,
            "Invalid length for containerDefinitions[0].command[0]: it has 65537 characters, the maximum is 65536."
        );
        assert_eq!(
            code("RegisterTaskDefinition", td(json!(vec!["x"; 1000]))),
            None
        );
        let e = check_input("RegisterTaskDefinition", &td(json!(vec!["x"; 1001]))).unwrap_err();
        assert!(e.message.contains("the maximum is 1000"), "{}", e.message);
        // A member's documented limit, on its own copy of the shared shape.
        assert_eq!(
            code(
                "RunTask",
                json!({"taskDefinition": "t", "group": "g".repeat(256)})
            ),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(
            code(
                "RunTask",
                json!({"taskDefinition": "t", "group": "g".repeat(255)})
            ),
            None
        );
    }

    #[test]
    fn what_validation_accepts_always_reads_as_the_input_type() {
        for (op, input) in [
            (
                "CreateCluster",
                json!({"clusterName": "a", "settings": [{"name": "containerInsights", "value": "enabled"}]}),
            ),
            (
                "RunTask",
                json!({"taskDefinition": "t", "count": 1, "overrides": {}}),
            ),
            ("ListClusters", json!({})),
        ] {
            check_input(op, &input).unwrap();
            crate::Operation::from_name(op)
                .unwrap()
                .decode_input(input)
                .unwrap();
        }
    }
}
