//! The `Condition` element: the operators Flotilla evaluates and the request context they read.
//!
//! As in IAM: every condition of a statement must hold (AND); a condition holds when the
//! context value matches one of its values (OR), and a negated operator (`StringNotEquals`,
//! `ArnNotLike`, ...) holds when it matches none. A key absent from the request's context makes
//! a positive operator false and a negated one true; `Null` tests for that absence. Key names
//! are matched ignoring case, as IAM does.

use crate::pattern::{arn_matches, matches};
use std::collections::BTreeMap;

/// A condition operator Flotilla evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `StringEquals`.
    StringEquals,
    /// `StringNotEquals`.
    StringNotEquals,
    /// `StringEqualsIgnoreCase`.
    StringEqualsIgnoreCase,
    /// `StringNotEqualsIgnoreCase`.
    StringNotEqualsIgnoreCase,
    /// `StringLike` (`*` and `?`).
    StringLike,
    /// `StringNotLike`.
    StringNotLike,
    /// `ArnEquals` (IAM evaluates it as `ArnLike`).
    ArnEquals,
    /// `ArnLike`.
    ArnLike,
    /// `ArnNotEquals`.
    ArnNotEquals,
    /// `ArnNotLike`.
    ArnNotLike,
    /// `Bool`.
    Bool,
    /// `Null`: `true` holds when the key is absent, `false` when it is present.
    Null,
}

impl Operator {
    /// The operators' names, for a refusal's message.
    pub const NAMES: [&'static str; 12] = [
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "ArnEquals",
        "ArnLike",
        "ArnNotEquals",
        "ArnNotLike",
        "Bool",
        "Null",
    ];

    /// The operator of this name (as IAM spells it), if Flotilla evaluates it.
    pub fn parse(name: &str) -> Option<Operator> {
        use Operator::*;
        Some(match name {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "ArnEquals" => ArnEquals,
            "ArnLike" => ArnLike,
            "ArnNotEquals" => ArnNotEquals,
            "ArnNotLike" => ArnNotLike,
            "Bool" => Bool,
            "Null" => Null,
            _ => return None,
        })
    }

    fn negated(self) -> bool {
        use Operator::*;
        matches!(
            self,
            StringNotEquals | StringNotEqualsIgnoreCase | StringNotLike | ArnNotEquals | ArnNotLike
        )
    }

    /// Whether one context value matches one of the condition's values (before negation).
    fn value_matches(self, wanted: &str, actual: &str) -> bool {
        use Operator::*;
        match self {
            StringEquals | StringNotEquals => wanted == actual,
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
                wanted.to_lowercase() == actual.to_lowercase()
            }
            StringLike | StringNotLike => matches(wanted, actual),
            ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => {
                actual.starts_with("arn:") && arn_matches(wanted, actual)
            }
            Bool => wanted.eq_ignore_ascii_case(actual),
            Null => false,
        }
    }
}

/// One operator on one key: `"StringEquals": {"ecs:cluster": ["a", "b"]}` is one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The operator.
    pub operator: Operator,
    /// The context key, lower case.
    pub key: String,
    /// The values (any one may match).
    pub values: Vec<String>,
}

/// The request context: what a condition key is for this request (`ecs:cluster` is the
/// cluster's ARN). A key may have several values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context(BTreeMap<String, Vec<String>>);

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    /// With `key` (any case) set to `value` (added to its values).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Context {
        self.0
            .entry(key.to_ascii_lowercase())
            .or_default()
            .push(value.into());
        self
    }

    /// The values of `key` (lower case), if present.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.0.get(key).map(Vec::as_slice)
    }
}

impl Condition {
    /// Whether the condition holds for this context.
    pub fn holds(&self, context: &Context) -> bool {
        let present = context.get(&self.key);
        if self.operator == Operator::Null {
            let want_absent = self.values.iter().any(|v| v == "true");
            let want_present = self.values.iter().any(|v| v == "false");
            return (want_absent && present.is_none()) || (want_present && present.is_some());
        }
        let Some(actual) = present else {
            return self.operator.negated();
        };
        let any = actual.iter().any(|a| {
            self.values
                .iter()
                .any(|w| self.operator.value_matches(w, a))
        });
        if self.operator.negated() {
            !any
        } else {
            any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(op: Operator, key: &str, values: &[&str]) -> Condition {
        Condition {
            operator: op,
            key: key.to_ascii_lowercase(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn operators_as_iam_reads_them() {
        let prod = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
        let ctx = Context::new().with("ecs:Cluster", prod);
        assert!(cond(Operator::ArnEquals, "ecs:cluster", &[prod]).holds(&ctx));
        assert!(cond(
            Operator::ArnLike,
            "ecs:cluster",
            &["arn:aws:ecs:*:*:cluster/p*"]
        )
        .holds(&ctx));
        assert!(!cond(
            Operator::ArnLike,
            "ecs:cluster",
            &["arn:aws:ecs:*:*:cluster/dev"]
        )
        .holds(&ctx));
        assert!(cond(
            Operator::ArnNotEquals,
            "ecs:cluster",
            &["arn:aws:ecs:*:*:cluster/dev"]
        )
        .holds(&ctx));
        assert!(cond(Operator::StringEquals, "ecs:cluster", &["x", prod]).holds(&ctx));
        assert!(!cond(
            Operator::StringEquals,
            "ecs:cluster",
            &[&prod.to_uppercase()]
        )
        .holds(&ctx));
        assert!(cond(
            Operator::StringEqualsIgnoreCase,
            "ecs:cluster",
            &[&prod.to_uppercase()]
        )
        .holds(&ctx));
        assert!(cond(Operator::StringLike, "ecs:cluster", &["*/prod"]).holds(&ctx));
        assert!(!cond(Operator::StringNotLike, "ecs:cluster", &["*/prod"]).holds(&ctx));
        // A key the request does not have: positive operators fail, negated ones hold.
        assert!(!cond(Operator::StringEquals, "ecs:service", &["a"]).holds(&ctx));
        assert!(cond(Operator::StringNotEquals, "ecs:service", &["a"]).holds(&ctx));
        assert!(cond(Operator::Null, "ecs:service", &["true"]).holds(&ctx));
        assert!(!cond(Operator::Null, "ecs:cluster", &["true"]).holds(&ctx));
        assert!(cond(Operator::Null, "ecs:cluster", &["false"]).holds(&ctx));
        let secure = Context::new().with("aws:SecureTransport", "false");
        assert!(cond(Operator::Bool, "aws:securetransport", &["false"]).holds(&secure));
        assert!(!cond(Operator::Bool, "aws:securetransport", &["true"]).holds(&secure));
    }
}
