//! A policy document as IAM writes it, parsed from its JSON with IAM's rules and clear errors.
//!
//! ```json
//! {"Version": "2012-10-17",
//!  "Statement": [{"Sid": "ReadProd", "Effect": "Allow",
//!                 "Action": ["ecs:Describe*", "ecs:List*"],
//!                 "Resource": "arn:aws:ecs:*:*:cluster/prod"}]}
//! ```
//!
//! `Statement` is a list or a single object; `Action`/`NotAction` and `Resource`/`NotResource`
//! a string or a list of them; exactly one of each pair. An identity-based policy names no
//! `Principal`. `Condition` takes the operators of [`crate::condition::Operator`]; an operator
//! Flotilla does not evaluate is refused when the policy is read, never ignored (ignoring a
//! condition of an Allow would grant more than its author meant).

use crate::condition::{Condition, Operator};
use serde_json::{Map, Value};

/// The policy language versions IAM accepts.
pub const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// Why a policy document was refused. The message names the statement and the element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(message.into()))
}

/// A statement's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `Allow`.
    Allow,
    /// `Deny`.
    Deny,
}

/// Patterns and whether the statement names them (`Action`) or everything but them
/// (`NotAction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    /// `Action`, `Resource`: the statement applies to what one of the patterns matches.
    Only(Vec<String>),
    /// `NotAction`, `NotResource`: the statement applies to what none of them matches.
    AllBut(Vec<String>),
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Action` or `NotAction`: `service:Name` patterns (or `*`), matched ignoring case.
    pub actions: Patterns,
    /// `Resource` or `NotResource`: ARN patterns (or `*`), matched with case.
    pub resources: Patterns,
    /// `Condition`: every one must hold.
    pub conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `Version` (IAM's default, `2008-10-17`, when absent).
    pub version: String,
    /// `Statement`, in order.
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Reads a policy document from its JSON text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| PolicyError(format!("the policy is not valid JSON: {e}")))?;
        Policy::from_value(&value)
    }

    /// Reads a policy document from its JSON value.
    pub fn from_value(value: &Value) -> Result<Policy, PolicyError> {
        let Some(doc) = value.as_object() else {
            return err("the policy must be a JSON object with Version and Statement");
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return err(format!(
                    "the policy has an unknown element '{key}' (expected Version, Id, Statement)"
                ));
            }
        }
        let version = match doc.get("Version") {
            None => VERSIONS[1].to_string(),
            Some(Value::String(v)) if VERSIONS.contains(&v.as_str()) => v.clone(),
            Some(v) => {
                return err(format!(
                    "the policy's Version must be \"2012-10-17\" (or \"2008-10-17\"), got {v}"
                ))
            }
        };
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(Value::Object(_)) => vec![&doc["Statement"]],
            Some(Value::Array(_)) => return err("the policy's Statement list is empty"),
            Some(_) => return err("the policy's Statement must be an object or a list of objects"),
            None => return err("the policy has no Statement"),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| statement(i + 1, s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            version,
            statements,
        })
    }
}

fn statement(n: usize, value: &Value) -> Result<Statement, PolicyError> {
    let Some(s) = value.as_object() else {
        return err(format!("statement {n} is not a JSON object"));
    };
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return err(format!("statement {n}: Sid must be a string")),
    };
    let at = || match &sid {
        Some(sid) => format!("statement {n} ({sid})"),
        None => format!("statement {n}"),
    };
    for key in s.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource"
            | "Condition" => {}
            "Principal" | "NotPrincipal" => {
                return err(format!(
                    "{}: an identity-based policy has no {key} (the key the policy is given to is the principal)",
                    at()
                ))
            }
            _ => return err(format!("{}: unknown element '{key}'", at())),
        }
    }
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(e) => {
            return err(format!(
                "{}: Effect must be \"Allow\" or \"Deny\", got {e}",
                at()
            ))
        }
        None => return err(format!("{}: Effect is missing", at())),
    };
    let actions = pair(s, "Action", "NotAction", &at)?;
    for a in patterns_of(&actions) {
        let valid = a == "*"
            || a.split_once(':').is_some_and(|(service, name)| {
                !service.is_empty()
                    && !name.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return err(format!(
                "{}: action '{a}' is not of the form service:Action (e.g. ecs:RunTask, ecs:Describe*, or *)",
                at()
            ));
        }
    }
    let resources = pair(s, "Resource", "NotResource", &at)?;
    for r in patterns_of(&resources) {
        if r != "*" && !r.starts_with("arn:") {
            return err(format!(
                "{}: resource '{r}' must be an ARN (arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE, wildcards allowed) or *",
                at()
            ));
        }
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(ops)) => conditions(ops, &at)?,
        Some(_) => return err(format!("{}: Condition must be an object", at())),
    };
    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
        conditions,
    })
}

fn patterns_of(p: &Patterns) -> &[String] {
    match p {
        Patterns::Only(v) | Patterns::AllBut(v) => v,
    }
}

/// `Action`/`NotAction` (or `Resource`/`NotResource`): exactly one, a string or a non-empty
/// list of strings.
fn pair(
    s: &Map<String, Value>,
    only: &str,
    all_but: &str,
    at: &dyn Fn() -> String,
) -> Result<Patterns, PolicyError> {
    match (s.get(only), s.get(all_but)) {
        (Some(_), Some(_)) => err(format!("{}: has both {only} and {all_but}", at())),
        (None, None) => err(format!("{}: needs {only} or {all_but}", at())),
        (Some(v), None) => Ok(Patterns::Only(strings(v, only, at)?)),
        (None, Some(v)) => Ok(Patterns::AllBut(strings(v, all_but, at)?)),
    }
}

fn strings(v: &Value, element: &str, at: &dyn Fn() -> String) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => err(format!(
                    "{}: {element} has a value that is not a string: {other}",
                    at()
                )),
            })
            .collect(),
        Value::Array(_) => err(format!("{}: {element} is an empty list", at())),
        other => err(format!(
            "{}: {element} must be a string or a list of strings, got {other}",
            at()
        )),
    }
}

fn conditions(
    ops: &Map<String, Value>,
    at: &dyn Fn() -> String,
) -> Result<Vec<Condition>, PolicyError> {
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let Some(operator) = Operator::parse(op_name) else {
            return err(format!(
                "{}: condition operator '{op_name}' is not one Flotilla evaluates ({})",
                at(),
                Operator::NAMES.join(", ")
            ));
        };
        let Some(keys) = keys.as_object() else {
            return err(format!(
                "{}: condition {op_name} must map condition keys to values",
                at()
            ));
        };
        for (key, values) in keys {
            let values = match values {
                Value::Array(list) => list.iter().map(scalar).collect::<Option<Vec<_>>>(),
                v => scalar(v).map(|s| vec![s]),
            };
            let Some(values) = values.filter(|v| !v.is_empty()) else {
                return err(format!(
                    "{}: condition {op_name} {key} must be a string (or number or boolean) or a non-empty list of them",
                    at()
                ));
            };
            if operator == Operator::Null && values.iter().any(|v| v != "true" && v != "false") {
                return err(format!(
                    "{}: condition Null {key} must be true or false",
                    at()
                ));
            }
            out.push(Condition {
                operator,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match Policy::parse(text) {
            Err(e) => e.0,
            Ok(p) => panic!("accepted: {p:?}"),
        }
    }

    #[test]
    fn statement_as_object_or_list_and_strings_or_lists() {
        let one = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:*","Resource":"*"}}"#,
        )
        .unwrap();
        assert_eq!(one.statements.len(), 1);
        assert_eq!(
            one.statements[0].actions,
            Patterns::Only(vec!["ecs:*".into()])
        );
        let two = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"a","Effect":"Allow","Action":["ecs:Describe*","ecs:List*"],"Resource":["arn:aws:ecs:*:*:cluster/prod"]},
                {"Effect":"Deny","NotAction":"ecs:List*","NotResource":"arn:aws:ecs:*:*:cluster/prod",
                 "Condition":{"StringEquals":{"aws:RequestedRegion":["us-east-1", "eu-west-1"]}, "Bool":{"aws:SecureTransport": false}}}]}"#,
        )
        .unwrap();
        assert_eq!(two.statements[0].sid.as_deref(), Some("a"));
        assert_eq!(two.statements[1].effect, Effect::Deny);
        assert!(matches!(two.statements[1].actions, Patterns::AllBut(_)));
        assert_eq!(two.statements[1].conditions.len(), 2);
        assert_eq!(two.statements[1].conditions[0].key, "aws:requestedregion");
        assert_eq!(
            two.statements[1].conditions[1].values,
            vec!["false".to_string()]
        );
        // No Version is IAM's old default.
        let old = Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#)
            .unwrap();
        assert_eq!(old.version, "2008-10-17");
    }

    #[test]
    fn bad_documents_are_refused_saying_where_and_why() {
        assert!(refused("{").contains("not valid JSON"));
        assert!(refused("[]").contains("JSON object"));
        assert!(refused(r#"{"Version":"2012-10-17"}"#).contains("no Statement"));
        assert!(refused(r#"{"Version":"2012-10-17","Statement":[]}"#).contains("empty"));
        assert!(refused(
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#
        )
        .contains("Version"));
        assert!(
            refused(r#"{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#)
                .contains("Effect must be")
        );
        assert!(
            refused(r#"{"Statement":{"Action":"*","Resource":"*"}}"#).contains("Effect is missing")
        );
        assert!(
            refused(r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#)
                .contains("needs Action or NotAction")
        );
        assert!(refused(
            r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}"#
        )
        .contains("both Action and NotAction"));
        assert!(refused(r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#)
            .contains("needs Resource or NotResource"));
        assert!(refused(
            r#"{"Statement":{"Sid":"x","Effect":"Allow","Action":"RunTask","Resource":"*"}}"#
        )
        .contains("statement 1 (x): action 'RunTask'"));
        assert!(refused(
            r#"{"Statement":{"Effect":"Allow","Action":"ecs:RunTask","Resource":"cluster/prod"}}"#
        )
        .contains("must be an ARN"));
        assert!(
            refused(r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#)
                .contains("empty list")
        );
        assert!(
            refused(r#"{"Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}"#)
                .contains("not a string")
        );
        assert!(refused(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#
        )
        .contains("no Principal"));
        assert!(
            refused(r#"{"Statement":{"Effect":"Allow","Actions":"*","Resource":"*"}}"#)
                .contains("unknown element 'Actions'")
        );
        assert!(refused(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"}}}}"#).contains("DateGreaterThan"));
        assert!(refused(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"ecs:cluster":"maybe"}}}}"#).contains("true or false"));
        assert!(
            refused(r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}, 3]}"#)
                .contains("statement 2 is not")
        );
    }
}
