//! ECS's cluster query language: parse once, evaluate against instances.
//!
//! What it is: the language of `memberOf` placement constraints and of
//! ListContainerInstances' `filter` — [`Query::parse`] (or [`parse`]) turns
//! text into a [`Query`], [`Query::matches`] says whether one
//! [`ContainerInstance`] satisfies it. What it is not: placement; this module
//! knows nothing of strategies or resources.
//!
//! Invariants: an expression longer than [`MAX_EXPRESSION_LENGTH`] (2000)
//! characters is refused; every [`QueryError`] names the byte position of the
//! problem and what was expected there; a parsed [`Query`] evaluates without
//! failing.

pub mod ast;
mod eval;
pub mod lexer;
mod parser;
mod timestamp;

use std::fmt;

pub use ast::{Condition, Expr, Operand, Operator, Subject, Value};
pub use eval::wildcard_match;
pub use timestamp::parse_timestamp;

use crate::snapshot::ContainerInstance;

/// ECS's limit on the length of a cluster query expression.
pub const MAX_EXPRESSION_LENGTH: usize = 2000;

/// A malformed expression: where, what was expected, what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid expression at position {position}: expected {expected}, found {found}")]
pub struct QueryError {
    /// Byte offset (0-based) of the problem in the expression.
    pub position: usize,
    /// What would have been valid there.
    pub expected: String,
    /// What was there.
    pub found: String,
}

impl QueryError {
    /// A new error.
    pub fn new(position: usize, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Self {
            position,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// The message with the expression and a caret under the position, for
    /// humans:
    ///
    /// ```text
    /// invalid expression at position 15: expected a value, found end of expression
    ///   attribute:a ==
    ///                 ^
    /// ```
    pub fn render(&self, source: &str) -> String {
        let col = source
            .get(..self.position.min(source.len()))
            .map_or(self.position, |s| s.chars().count());
        format!("{self}\n  {source}\n  {}^", " ".repeat(col))
    }
}

/// A parsed cluster query expression.
#[derive(Clone, Debug)]
pub struct Query {
    source: String,
    expr: Expr,
}

impl Query {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, QueryError> {
        if source.chars().count() > MAX_EXPRESSION_LENGTH {
            let pos = source
                .char_indices()
                .nth(MAX_EXPRESSION_LENGTH)
                .map_or(source.len(), |(i, _)| i);
            return Err(QueryError::new(
                pos,
                format!("at most {MAX_EXPRESSION_LENGTH} characters"),
                format!("an expression of {} characters", source.chars().count()),
            ));
        }
        let tokens = lexer::tokenize(source)?;
        let expr = parser::parse_tokens(&tokens)?;
        Ok(Self {
            source: source.to_string(),
            expr,
        })
    }

    /// Whether `instance` satisfies the expression.
    pub fn matches(&self, instance: &ContainerInstance) -> bool {
        eval::eval(&self.expr, instance)
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether the result can change as tasks are placed (it mentions
    /// `task:group` or `runningTasksCount`).
    pub fn is_dynamic(&self) -> bool {
        self.expr.is_dynamic()
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Query {}

/// Parses `source` (shorthand for [`Query::parse`]).
pub fn parse(source: &str) -> Result<Query, QueryError> {
    Query::parse(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limit() {
        let long = format!("attribute:a == {}", "x".repeat(2000));
        let e = parse(&long).unwrap_err();
        assert_eq!(e.position, 2000);
        let ok = format!("attribute:a == {}", "x".repeat(2000 - 15));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn render_puts_a_caret() {
        let src = "attribute:a ==";
        let e = parse(src).unwrap_err();
        let r = e.render(src);
        assert!(r.ends_with(&format!("{}^", " ".repeat(14 + 2))), "{r}");
    }
}
