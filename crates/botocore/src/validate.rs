//! Input validation driven by a botocore model itself.
//!
//! Before a handler sees a request, [`Validator::check_input`] walks the raw JSON against the
//! operation's input shape and rejects what the model forbids, with a message that names the
//! member path and says what is allowed:
//! - a member of the wrong JSON type: [`InvalidKind::Serialization`] (AWS's JSON protocol answers
//!   `SerializationException`);
//! - a missing required member, a value outside the model's `min`/`max`, a string not matching
//!   the model's `pattern`, a value that is not one of an enum's values:
//!   [`InvalidKind::Parameter`] (`InvalidParameterException` in every service Flotilla serves).
//!
//! Unknown members are ignored, as AWS services do, so newer SDKs keep working. After this check
//! the typed deserialization of the request cannot fail on shape grounds.
//!
//! What this module is not: a service's semantic rules, which live with the service.

use serde_json::Value;
use std::collections::HashMap;

/// Which way a request broke the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    /// A member of the wrong JSON type, or a body that is not an object.
    Serialization,
    /// A missing required member, or a value out of the model's range, length, pattern or enum.
    Parameter,
}

/// A request the model forbids: the kind and a message naming the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Which way.
    pub kind: InvalidKind,
    /// What to fix.
    pub message: String,
}

impl Invalid {
    fn serialization(message: impl Into<String>) -> Self {
        Self {
            kind: InvalidKind::Serialization,
            message: message.into(),
        }
    }

    fn parameter(message: impl Into<String>) -> Self {
        Self {
            kind: InvalidKind::Parameter,
            message: message.into(),
        }
    }
}

/// A model (as [`crate::generate`] writes `model.json`) and its compiled patterns.
#[derive(Debug)]
pub struct Validator {
    model: Value,
    patterns: HashMap<String, regex::Regex>,
}

impl Validator {
    /// Reads the model; a malformed one validates nothing (every operation is unknown).
    pub fn new(model_json: &str) -> Self {
        let model: Value = serde_json::from_str(model_json).unwrap_or(Value::Null);
        let mut patterns = HashMap::new();
        if let Some(shapes) = model["shapes"].as_object() {
            for (name, s) in shapes {
                if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                    if let Ok(re) = regex::Regex::new(&format!("^(?:{p})$")) {
                        patterns.insert(name.clone(), re);
                    }
                }
            }
        }
        Self { model, patterns }
    }

    /// The model.
    pub fn model(&self) -> &Value {
        &self.model
    }

    /// Checks `input` against the input shape of `operation` (an operation name of the model).
    pub fn check_input(&self, operation: &str, input: &Value) -> Result<(), Invalid> {
        let Some(shape) = self.model["operations"][operation]["input"]["shape"].as_str() else {
            return Ok(());
        };
        if !input.is_object() {
            return Err(Invalid::serialization(
                "The request body must be a JSON object.".to_string(),
            ));
        }
        self.check(shape, input, "")
    }

    fn check(&self, shape_name: &str, v: &Value, path: &str) -> Result<(), Invalid> {
        let shape = &self.model["shapes"][shape_name];
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
                            return Err(Invalid::parameter(format!(
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
                        self.check(target, mv, &path_join(path, k))?;
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
                    self.check(member, item, &format!("{shown}[{i}]"))?;
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
                    self.check(
                        key_shape,
                        &Value::String(k.clone()),
                        &format!("{shown} key"),
                    )?;
                    self.check(value_shape, mv, &format!("{shown}.{k}"))?;
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
                        return Err(Invalid::parameter(format!(
                            "Invalid value '{s}' for {shown}. Valid values are: {}.",
                            allowed.join(", ")
                        )));
                    }
                }
                check_len(shape, s.chars().count(), shown, "characters")?;
                if let Some(re) = self.patterns.get(shape_name) {
                    if !re.is_match(s) {
                        return Err(Invalid::parameter(format!(
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
                    return Err(Invalid::parameter(format!(
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

fn type_error(path: &str, expected: &str, got: &Value) -> Invalid {
    Invalid::serialization(format!(
        "Invalid type for parameter {path}: expected {expected}, got {}.",
        describe(got)
    ))
}

fn check_len(shape: &Value, len: usize, path: &str, unit: &str) -> Result<(), Invalid> {
    if let Some(min) = shape["min"].as_u64() {
        if (len as u64) < min {
            return Err(Invalid::parameter(format!(
                "Invalid length for {path}: it has {len} {unit}, the minimum is {min}."
            )));
        }
    }
    if let Some(max) = shape["max"].as_u64() {
        if (len as u64) > max {
            return Err(Invalid::parameter(format!(
                "Invalid length for {path}: it has {len} {unit}, the maximum is {max}."
            )));
        }
    }
    Ok(())
}

fn check_range(shape: &Value, n: f64, path: &str) -> Result<(), Invalid> {
    if let Some(min) = shape["min"].as_f64() {
        if n < min {
            return Err(Invalid::parameter(format!(
                "Invalid value {n} for {path}: the minimum is {min}."
            )));
        }
    }
    if let Some(max) = shape["max"].as_f64() {
        if n > max {
            return Err(Invalid::parameter(format!(
                "Invalid value {n} for {path}: the maximum is {max}."
            )));
        }
    }
    Ok(())
}
