//! Input validation driven by a service's model (the `model.json` its build script writes with
//! `flotilla-codegen`).
//!
//! [`Model::check_input`] walks a request's JSON against the operation's input shape and
//! returns the first [`Violation`]: a member of the wrong JSON type ([`ViolationKind::WrongType`],
//! which AWS answers with `SerializationException`), or a constraint of the model not met
//! ([`ViolationKind::Constraint`]: a required member missing, a length, a range, a pattern, an
//! enum), which each service answers with its own error (`ValidationException` in SSM,
//! `InvalidParameterException` in Secrets Manager). [`Violation::message`] renders it in AWS's
//! words ("1 validation error detected: Value 'x' at 'name' failed to satisfy constraint:
//! Member must have length less than or equal to 2048").
//!
//! The value of a member the model marks `sensitive` (a secret value) is never repeated in a
//! message: "Value at 'secretString' failed to satisfy constraint: ...".
//!
//! Unknown members are ignored, as AWS services do, so newer SDKs keep working.

use base64::Engine as _;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A service model, parsed once. Each shape's `pattern` is compiled on its first use: a model
/// has hundreds (SSM's alone over 300, many with Unicode classes), and compiling them all when
/// the server starts took most of its start-up.
pub struct Model {
    model: Value,
    /// Per shape with a `pattern`: the compiled expression once a value was checked against it
    /// (`None`: the pattern is not one Rust's `regex` reads, and is not enforced).
    patterns: HashMap<String, OnceLock<Option<regex::Regex>>>,
}

/// Which kind of rule a request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// A member's JSON type is not the model's (`SerializationException`).
    WrongType,
    /// A constraint of the model is not met (the service's validation error).
    Constraint,
}

/// The first rule a request broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which kind.
    pub kind: ViolationKind,
    /// Where, in AWS's notation: `name`, `tags.1.member.key`.
    pub path: String,
    /// The offending value as text, `None` for a sensitive member or a missing one.
    pub value: Option<String>,
    /// What the member must be: `Member must have length less than or equal to 2048`, or for
    /// a wrong type, `expected a string, got a number`.
    pub rule: String,
}

impl Violation {
    /// The message, in AWS's words.
    pub fn message(&self) -> String {
        match self.kind {
            ViolationKind::WrongType => {
                format!("Invalid type for parameter {}: {}.", self.path, self.rule)
            }
            ViolationKind::Constraint => {
                let value = match &self.value {
                    Some(v) => format!("Value '{v}' at"),
                    None if self.rule == MUST_NOT_BE_NULL => "Value null at".to_string(),
                    None => "Value at".to_string(),
                };
                format!(
                    "1 validation error detected: {value} '{}' failed to satisfy constraint: {}",
                    self.path, self.rule
                )
            }
        }
    }
}

const MUST_NOT_BE_NULL: &str = "Member must not be null";
/// Values longer than this are cut in messages.
const SHOWN_CHARS: usize = 256;

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

/// `Name` -> `name`, as AWS names members in validation messages.
fn member_path(path: &str, member: &str) -> String {
    let mut chars = member.chars();
    let first: String = chars
        .next()
        .map(|c| c.to_lowercase().collect())
        .unwrap_or_default();
    let m = format!("{first}{}", chars.as_str());
    if path.is_empty() {
        m
    } else {
        format!("{path}.{m}")
    }
}

fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(shown).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    };
    if s.chars().count() > SHOWN_CHARS {
        let cut: String = s.chars().take(SHOWN_CHARS).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Where the walk is: the path and whether the value is sensitive.
#[derive(Clone, Copy)]
struct At<'p> {
    path: &'p str,
    sensitive: bool,
}

impl Model {
    /// Parses a model (`model.json` or `service-2.json`).
    pub fn parse(json: &str) -> Result<Model, serde_json::Error> {
        let model: Value = serde_json::from_str(json)?;
        let mut patterns = HashMap::new();
        if let Some(shapes) = model["shapes"].as_object() {
            for (name, s) in shapes {
                if s.get("pattern").and_then(Value::as_str).is_some() {
                    patterns.insert(name.clone(), OnceLock::new());
                }
            }
        }
        Ok(Model { model, patterns })
    }

    /// The compiled `pattern` of the shape `name` (`shape`), compiled on its first use.
    fn pattern(&self, name: &str, shape: &Value) -> Option<&regex::Regex> {
        self.patterns
            .get(name)?
            .get_or_init(|| {
                let p = shape["pattern"].as_str()?;
                regex::Regex::new(&format!("^(?:{p})$")).ok()
            })
            .as_ref()
    }

    /// A model with no operations (every request is an unknown operation).
    pub fn empty() -> Model {
        Model {
            model: serde_json::json!({"operations": {}, "shapes": {}}),
            patterns: HashMap::new(),
        }
    }

    /// Whether the model has this operation.
    pub fn has_operation(&self, operation: &str) -> bool {
        self.model["operations"].get(operation).is_some()
    }

    /// The operations of the model, by name.
    pub fn operations(&self) -> Vec<&str> {
        self.model["operations"]
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Checks `input` (a JSON object) against the input shape of `operation`.
    pub fn check_input(&self, operation: &str, input: &Value) -> Result<(), Violation> {
        let Some(shape) = self.model["operations"][operation]["input"]["shape"].as_str() else {
            return Ok(());
        };
        self.check(
            shape,
            input,
            At {
                path: "",
                sensitive: false,
            },
        )
    }

    /// Checks then deserializes a request into its generated type.
    pub fn parse_input<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        input: Value,
    ) -> Result<T, Violation> {
        self.check_input(operation, &input)?;
        serde_json::from_value(input).map_err(|e| Violation {
            kind: ViolationKind::WrongType,
            path: "input".into(),
            value: None,
            rule: format!("could not read the request: {e}"),
        })
    }

    fn type_error(at: At<'_>, expected: &str, got: &Value) -> Violation {
        Violation {
            kind: ViolationKind::WrongType,
            path: if at.path.is_empty() {
                "input".into()
            } else {
                at.path.to_string()
            },
            value: None,
            rule: format!("expected {expected}, got {}", describe(got)),
        }
    }

    fn constraint(at: At<'_>, v: &Value, rule: String) -> Violation {
        Violation {
            kind: ViolationKind::Constraint,
            path: at.path.to_string(),
            value: (!at.sensitive).then(|| shown(v)),
            rule,
        }
    }

    fn check(&self, shape_name: &str, v: &Value, at: At<'_>) -> Result<(), Violation> {
        let shape = &self.model["shapes"][shape_name];
        let at = At {
            sensitive: at.sensitive || shape.get("sensitive") == Some(&Value::Bool(true)),
            ..at
        };
        match shape["type"].as_str().unwrap_or("") {
            "structure" => self.check_structure(shape, v, at),
            "list" => {
                let Some(items) = v.as_array() else {
                    return Err(Self::type_error(at, "a list", v));
                };
                check_len(shape, items.len(), v, at)?;
                let member = shape["member"]["shape"].as_str().unwrap_or("");
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{}.{}.member", at.path, i + 1);
                    let at = At { path: &path, ..at };
                    if item.is_null() {
                        return Err(Self::constraint(at, item, MUST_NOT_BE_NULL.into()));
                    }
                    self.check(member, item, at)?;
                }
                Ok(())
            }
            "map" => {
                let Some(obj) = v.as_object() else {
                    return Err(Self::type_error(at, "an object (map)", v));
                };
                check_len(shape, obj.len(), v, at)?;
                let value_shape = shape["value"]["shape"].as_str().unwrap_or("");
                let key_shape = shape["key"]["shape"].as_str().unwrap_or("");
                for (k, mv) in obj {
                    let path = format!("{}.{k}", at.path);
                    self.check(key_shape, &Value::String(k.clone()), at)?;
                    self.check(value_shape, mv, At { path: &path, ..at })?;
                }
                Ok(())
            }
            "string" => {
                let Some(s) = v.as_str() else {
                    return Err(Self::type_error(at, "a string", v));
                };
                check_len(shape, s.chars().count(), v, at)?;
                if let Some(values) = shape["enum"].as_array() {
                    if !values.iter().any(|e| e.as_str() == Some(s)) {
                        let allowed: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
                        return Err(Self::constraint(
                            at,
                            v,
                            format!(
                                "Member must satisfy enum value set: [{}]",
                                allowed.join(", ")
                            ),
                        ));
                    }
                }
                if let Some(re) = self.pattern(shape_name, shape) {
                    if !re.is_match(s) {
                        return Err(Self::constraint(
                            at,
                            v,
                            format!(
                                "Member must satisfy regular expression pattern: {}",
                                shape["pattern"].as_str().unwrap_or("")
                            ),
                        ));
                    }
                }
                Ok(())
            }
            "blob" => {
                let Some(s) = v.as_str() else {
                    return Err(Self::type_error(at, "a base64-encoded string", v));
                };
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) else {
                    return Err(Violation {
                        kind: ViolationKind::WrongType,
                        path: at.path.to_string(),
                        value: None,
                        rule: "expected a base64-encoded string".into(),
                    });
                };
                check_len(
                    shape,
                    bytes.len(),
                    v,
                    At {
                        sensitive: true,
                        ..at
                    },
                )
            }
            ty @ ("integer" | "long") => {
                let Some(n) = v.as_i64() else {
                    return Err(Self::type_error(at, "an integer", v));
                };
                if ty == "integer" && i32::try_from(n).is_err() {
                    return Err(Self::constraint(
                        at,
                        v,
                        "Member must fit in a 32-bit integer".into(),
                    ));
                }
                check_range(shape, n as f64, v, at)
            }
            "double" | "float" => match v.as_f64() {
                Some(n) => check_range(shape, n, v, at),
                None => Err(Self::type_error(at, "a number", v)),
            },
            "boolean" if !v.is_boolean() => Err(Self::type_error(at, "a boolean", v)),
            "timestamp" if !v.is_number() => {
                Err(Self::type_error(at, "a timestamp (epoch seconds)", v))
            }
            _ => Ok(()),
        }
    }

    fn check_structure(&self, shape: &Value, v: &Value, at: At<'_>) -> Result<(), Violation> {
        if shape.get("document").is_some() {
            return Ok(());
        }
        let Some(obj) = v.as_object() else {
            return Err(Self::type_error(at, "an object", v));
        };
        if let Some(req) = shape["required"].as_array() {
            for r in req.iter().filter_map(Value::as_str) {
                if obj.get(r).is_none_or(Value::is_null) {
                    return Err(Violation {
                        kind: ViolationKind::Constraint,
                        path: member_path(at.path, r),
                        value: None,
                        rule: MUST_NOT_BE_NULL.into(),
                    });
                }
            }
        }
        let members = shape["members"].as_object();
        for (k, mv) in obj {
            if mv.is_null() {
                continue;
            }
            let Some(member) = members.and_then(|m| m.get(k)) else {
                continue;
            };
            let target = member["shape"].as_str().unwrap_or("");
            let path = member_path(at.path, k);
            let sensitive = member.get("sensitive") == Some(&Value::Bool(true));
            self.check(
                target,
                mv,
                At {
                    path: &path,
                    sensitive: at.sensitive || sensitive,
                },
            )?;
        }
        Ok(())
    }
}

fn check_len(shape: &Value, len: usize, v: &Value, at: At<'_>) -> Result<(), Violation> {
    if let Some(min) = shape["min"].as_u64() {
        if (len as u64) < min {
            return Err(Model::constraint(
                at,
                v,
                format!("Member must have length greater than or equal to {min}"),
            ));
        }
    }
    if let Some(max) = shape["max"].as_u64() {
        if (len as u64) > max {
            return Err(Model::constraint(
                at,
                v,
                format!("Member must have length less than or equal to {max}"),
            ));
        }
    }
    Ok(())
}

fn check_range(shape: &Value, n: f64, v: &Value, at: At<'_>) -> Result<(), Violation> {
    if let Some(min) = shape["min"].as_f64() {
        if n < min {
            return Err(Model::constraint(
                at,
                v,
                format!("Member must have value greater than or equal to {min}"),
            ));
        }
    }
    if let Some(max) = shape["max"].as_f64() {
        if n > max {
            return Err(Model::constraint(
                at,
                v,
                format!("Member must have value less than or equal to {max}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> Model {
        Model::parse(
            &json!({
                "operations": {"Put": {"input": {"shape": "PutRequest"}}},
                "shapes": {
                    "PutRequest": {"type": "structure", "required": ["Name"], "members": {
                        "Name": {"shape": "Name"},
                        "Value": {"shape": "Secret"},
                        "Type": {"shape": "Type"},
                        "Tags": {"shape": "Tags"},
                        "Max": {"shape": "Max"},
                        "Blob": {"shape": "Blob"}
                    }},
                    "Name": {"type": "string", "min": 1, "max": 8, "pattern": "[a-z/]+"},
                    "Secret": {"type": "string", "max": 4, "sensitive": true},
                    "Type": {"type": "string", "enum": ["String", "SecureString"]},
                    "Tags": {"type": "list", "member": {"shape": "Tag"}, "max": 2},
                    "Tag": {"type": "structure", "required": ["Key"], "members": {"Key": {"shape": "Name"}}},
                    "Max": {"type": "integer", "min": 1, "max": 50},
                    "Blob": {"type": "blob", "max": 2, "sensitive": true}
                }
            })
            .to_string(),
        )
        .unwrap()
    }

    fn check(v: Value) -> Option<Violation> {
        model().check_input("Put", &v).err()
    }

    #[test]
    fn a_pattern_is_compiled_on_its_first_use_and_an_unreadable_one_is_not_enforced() {
        let m = Model::parse(
            &json!({
                "operations": {"Put": {"input": {"shape": "PutRequest"}}},
                "shapes": {
                    "PutRequest": {"type": "structure", "members": {
                        "Name": {"shape": "Name"}, "Odd": {"shape": "Odd"}
                    }},
                    "Name": {"type": "string", "pattern": "[a-z]+"},
                    // Look-behind: not a pattern Rust's `regex` reads.
                    "Odd": {"type": "string", "pattern": "(?<=x)a"}
                }
            })
            .to_string(),
        )
        .unwrap();
        assert!(
            m.patterns.values().all(|p| p.get().is_none()),
            "parsing compiles nothing"
        );
        assert!(m.check_input("Put", &json!({"Name": "A"})).is_err());
        assert!(m.check_input("Put", &json!({"Name": "a"})).is_ok());
        assert!(matches!(m.patterns["Name"].get(), Some(Some(_))));
        assert!(m.check_input("Put", &json!({"Odd": "anything"})).is_ok());
        assert!(matches!(m.patterns["Odd"].get(), Some(None)));
    }

    #[test]
    fn a_valid_request_passes_and_unknown_members_are_ignored() {
        assert_eq!(check(json!({"Name": "a/b", "Other": 5, "Max": 50})), None);
    }

    #[test]
    fn constraints_are_reported_in_awss_words() {
        let v = check(json!({"Name": "toolongname"})).unwrap();
        assert_eq!(v.kind, ViolationKind::Constraint);
        assert_eq!(
            v.message(),
            "1 validation error detected: Value 'toolongname' at 'name' failed to satisfy constraint: Member must have length less than or equal to 8"
        );
        assert_eq!(
            check(json!({})).unwrap().message(),
            "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"
        );
        let v = check(json!({"Name": "a", "Type": "Number"})).unwrap();
        assert!(v.rule.contains("[String, SecureString]"), "{}", v.rule);
        let v = check(json!({"Name": "A!"})).unwrap();
        assert!(v
            .rule
            .starts_with("Member must satisfy regular expression pattern"));
        let v = check(json!({"Name": "a", "Tags": [{"Key": "a"}, {}]})).unwrap();
        assert_eq!(v.path, "tags.2.member.key");
        let v = check(json!({"Name": "a", "Max": 51})).unwrap();
        assert_eq!(v.rule, "Member must have value less than or equal to 50");
    }

    #[test]
    fn sensitive_values_are_never_repeated() {
        let v = check(json!({"Name": "a", "Value": "hunter2-secret"})).unwrap();
        assert_eq!(v.value, None);
        assert!(!v.message().contains("hunter2"), "{}", v.message());
        assert_eq!(
            v.message(),
            "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length less than or equal to 4"
        );
        let v = check(json!({"Name": "a", "Blob": "c2VjcmV0"})).unwrap();
        assert!(!v.message().contains("c2VjcmV0"), "{}", v.message());
    }

    #[test]
    fn wrong_types_are_type_errors() {
        for bad in [
            json!({"Name": 5}),
            json!({"Name": "a", "Tags": {}}),
            json!({"Name": "a", "Max": "1"}),
            json!({"Name": "a", "Blob": "***"}),
        ] {
            assert_eq!(check(bad).unwrap().kind, ViolationKind::WrongType);
        }
    }
}
