//! The syntax tree of a cluster query expression.
//!
//! What it is: the parsed, type-checked form of an expression — every
//! condition names a known [`Subject`], an [`Operator`] that subject accepts
//! and an [`Operand`] already converted to the subject's type (integers for
//! `runningTasksCount`, timestamps for `registeredAt`, booleans for
//! `agentConnected`, compiled regular expressions for `=~` / `!~`). What it is
//! not: the evaluator (see `eval.rs`) or the parser (see `parser.rs`).
//!
//! Invariants: an [`Expr`] built by the parser never needs to fail at
//! evaluation time; operands match their subject's type.

use regex::Regex;

/// What a condition looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `agentConnected` (boolean).
    AgentConnected,
    /// `agentVersion` (dotted version, compared numerically part by part).
    AgentVersion,
    /// `attribute:NAME`.
    Attribute(String),
    /// `ec2InstanceId`.
    Ec2InstanceId,
    /// `registeredAt` (timestamp).
    RegisteredAt,
    /// `runningTasksCount` (integer).
    RunningTasksCount,
    /// `task:group` (the groups of the tasks on the instance: true for `==`
    /// when any task's group matches).
    TaskGroup,
}

impl Subject {
    /// The subject as written in an expression.
    pub fn name(&self) -> String {
        match self {
            Self::AgentConnected => "agentConnected".into(),
            Self::AgentVersion => "agentVersion".into(),
            Self::Attribute(n) => format!("attribute:{n}"),
            Self::Ec2InstanceId => "ec2InstanceId".into(),
            Self::RegisteredAt => "registeredAt".into(),
            Self::RunningTasksCount => "runningTasksCount".into(),
            Self::TaskGroup => "task:group".into(),
        }
    }

    /// The operators the subject accepts.
    pub fn operators(&self) -> &'static [Operator] {
        use Operator::*;
        match self {
            Self::AgentConnected => &[Eq, Ne],
            Self::RegisteredAt => &[Eq, Ne, Gt, Ge, Lt, Le],
            Self::RunningTasksCount => &[Eq, Ne, Gt, Ge, Lt, Le, In, NotIn],
            Self::TaskGroup => &[Eq, Ne, Exists, NotExists, In, NotIn, Matches, NotMatches],
            Self::AgentVersion | Self::Attribute(_) | Self::Ec2InstanceId => Operator::ALL,
        }
    }

    /// Whether the subject's value changes as tasks are placed
    /// (`task:group`, `runningTasksCount`).
    pub fn is_dynamic(&self) -> bool {
        matches!(self, Self::TaskGroup | Self::RunningTasksCount)
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `==`, `equals` (with `*` wildcards).
    Eq,
    /// `!=`, `not_equals` (with `*` wildcards).
    Ne,
    /// `>`, `greater_than`.
    Gt,
    /// `>=`, `greater_than_equal`.
    Ge,
    /// `<`, `less_than`.
    Lt,
    /// `<=`, `less_than_equal`.
    Le,
    /// `exists`.
    Exists,
    /// `!exists`, `not_exists`.
    NotExists,
    /// `in` (list of values, wildcards allowed).
    In,
    /// `!in`, `not_in`.
    NotIn,
    /// `=~`, `matches` (regular expression, anchored at both ends).
    Matches,
    /// `!~`, `not_matches`.
    NotMatches,
}

impl Operator {
    /// Every operator.
    pub const ALL: &'static [Operator] = &[
        Self::Eq,
        Self::Ne,
        Self::Gt,
        Self::Ge,
        Self::Lt,
        Self::Le,
        Self::Exists,
        Self::NotExists,
        Self::In,
        Self::NotIn,
        Self::Matches,
        Self::NotMatches,
    ];

    /// The symbol form.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Exists => "exists",
            Self::NotExists => "!exists",
            Self::In => "in",
            Self::NotIn => "!in",
            Self::Matches => "=~",
            Self::NotMatches => "!~",
        }
    }

    /// The word form (`equals`, `not_equals`, ...).
    pub fn word(self) -> &'static str {
        match self {
            Self::Eq => "equals",
            Self::Ne => "not_equals",
            Self::Gt => "greater_than",
            Self::Ge => "greater_than_equal",
            Self::Lt => "less_than",
            Self::Le => "less_than_equal",
            Self::Exists => "exists",
            Self::NotExists => "not_exists",
            Self::In => "in",
            Self::NotIn => "not_in",
            Self::Matches => "matches",
            Self::NotMatches => "not_matches",
        }
    }

    /// The operator a word form names (case-insensitive).
    pub fn from_word(w: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|op| op.word().eq_ignore_ascii_case(w))
    }
}

/// One operand value, typed by its subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Text, possibly with `*` wildcards (for `==`, `!=`, `in`, `!in`).
    Text(String),
    /// An integer (`runningTasksCount`).
    Int(i64),
    /// A timestamp in seconds since the epoch (`registeredAt`).
    Time(i64),
    /// A boolean (`agentConnected`).
    Bool(bool),
}

/// What follows the operator.
#[derive(Clone, Debug)]
pub enum Operand {
    /// Nothing (`exists`, `!exists`).
    None,
    /// One value.
    One(Value),
    /// A list `[a, b, ...]` (`in`, `!in`).
    List(Vec<Value>),
    /// A compiled regular expression (`=~`, `!~`), anchored.
    Pattern(Regex),
}

/// `subject operator operand`.
#[derive(Clone, Debug)]
pub struct Condition {
    /// The subject.
    pub subject: Subject,
    /// The operator.
    pub op: Operator,
    /// The operand.
    pub operand: Operand,
}

/// An expression.
#[derive(Clone, Debug)]
pub enum Expr {
    /// `a and b`, `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`, `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `not a`, `!a`, `not(a)`.
    Not(Box<Expr>),
    /// A condition.
    Cond(Condition),
}

impl Expr {
    /// Whether any condition looks at a subject that changes as tasks are
    /// placed.
    pub fn is_dynamic(&self) -> bool {
        match self {
            Self::And(a, b) | Self::Or(a, b) => a.is_dynamic() || b.is_dynamic(),
            Self::Not(a) => a.is_dynamic(),
            Self::Cond(c) => c.subject.is_dynamic(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_forms_round_trip() {
        for op in Operator::ALL {
            assert_eq!(Operator::from_word(op.word()), Some(*op));
        }
        assert_eq!(Operator::from_word("GREATER_THAN"), Some(Operator::Gt));
        assert_eq!(Operator::from_word("bigger"), None);
    }

    #[test]
    fn dynamic_subjects() {
        assert!(Subject::TaskGroup.is_dynamic());
        assert!(!Subject::Attribute("x".into()).is_dynamic());
        assert_eq!(Subject::TaskGroup.name(), "task:group");
    }
}
