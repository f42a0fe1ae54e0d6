//! Evaluating a parsed expression against one container instance.
//!
//! What it is: the meaning of each operator for each subject. What it is not:
//! a parser or a placement engine; it looks at one instance and nothing else.
//!
//! Semantics (documented choices where ECS is silent):
//! - A missing value (attribute absent, no EC2 id, no agent version) makes
//!   `==`, `>`, `>=`, `<`, `<=`, `in` and `=~` false; the negated operators
//!   `!=`, `!in`, `!~`, `!exists` are exactly the negation of their positive
//!   form, so they are true for a missing value.
//! - An attribute present without a value `exists` and compares as `""`.
//! - `==`, `!=`, `in`, `!in` treat `*` in the operand as "any characters";
//!   `=~` is a regular expression that must match the whole value.
//! - `>`, `<` ... compare attribute and EC2 id values as numbers when both
//!   sides are numbers, otherwise as strings; `agentVersion` compares dotted
//!   versions numerically part by part (`1.10.0 > 1.9.3`).
//! - `task:group` is the set of groups of the tasks on the instance:
//!   `==`/`in`/`=~` hold if any task's group matches, `exists` if there is a
//!   task with a group; `!=`/`!in`/`!~`/`!exists` negate those.
//!
//! Invariant: evaluation is total — it never fails and never panics.

use std::cmp::Ordering;

use super::ast::{Condition, Expr, Operand, Operator, Subject, Value};
use crate::snapshot::ContainerInstance;

/// Whether `inst` satisfies `expr`.
pub fn eval(expr: &Expr, inst: &ContainerInstance) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, inst) && eval(b, inst),
        Expr::Or(a, b) => eval(a, inst) || eval(b, inst),
        Expr::Not(a) => !eval(a, inst),
        Expr::Cond(c) => eval_cond(c, inst),
    }
}

/// Matches `text` against a pattern where `*` is any run of characters.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn cmp_version(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    let n = pa.len().max(pb.len());
    for i in 0..n {
        let (x, y) = (
            pa.get(i).copied().unwrap_or(0),
            pb.get(i).copied().unwrap_or(0),
        );
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

fn cmp_text(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn ordering_holds(op: Operator, o: Ordering) -> bool {
    match op {
        Operator::Gt => o == Ordering::Greater,
        Operator::Ge => o != Ordering::Less,
        Operator::Lt => o == Ordering::Less,
        Operator::Le => o != Ordering::Greater,
        _ => false,
    }
}

fn positive(op: Operator) -> (Operator, bool) {
    match op {
        Operator::Ne => (Operator::Eq, true),
        Operator::NotExists => (Operator::Exists, true),
        Operator::NotIn => (Operator::In, true),
        Operator::NotMatches => (Operator::Matches, true),
        o => (o, false),
    }
}

fn text_matches(op: Operator, operand: &Operand, v: &str, version: bool) -> bool {
    match (op, operand) {
        (Operator::Exists, _) => true,
        (Operator::Eq, Operand::One(Value::Text(p))) => wildcard_match(p, v),
        (Operator::In, Operand::List(l)) => l
            .iter()
            .any(|x| matches!(x, Value::Text(p) if wildcard_match(p, v))),
        (Operator::Matches, Operand::Pattern(re)) => re.is_match(v),
        (
            Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le,
            Operand::One(Value::Text(p)),
        ) => {
            let o = if version {
                cmp_version(v, p)
            } else {
                cmp_text(v, p)
            };
            ordering_holds(op, o)
        }
        _ => false,
    }
}

fn int_matches(op: Operator, operand: &Operand, n: i64) -> bool {
    match (op, operand) {
        (Operator::Eq, Operand::One(Value::Int(x) | Value::Time(x))) => n == *x,
        (Operator::In, Operand::List(l)) => l
            .iter()
            .any(|v| matches!(v, Value::Int(x) | Value::Time(x) if *x == n)),
        (
            Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le,
            Operand::One(Value::Int(x) | Value::Time(x)),
        ) => ordering_holds(op, n.cmp(x)),
        _ => false,
    }
}

fn eval_cond(c: &Condition, inst: &ContainerInstance) -> bool {
    let (op, negate) = positive(c.op);
    let r = match &c.subject {
        Subject::AgentConnected => {
            matches!(c.operand, Operand::One(Value::Bool(b)) if b == inst.agent_connected)
        }
        Subject::RunningTasksCount => {
            let n = i64::try_from(inst.running_tasks_count()).unwrap_or(i64::MAX);
            int_matches(op, &c.operand, n)
        }
        Subject::RegisteredAt => int_matches(op, &c.operand, inst.registered_at),
        Subject::AgentVersion => match inst.agent_version.as_deref() {
            Some(v) => text_matches(op, &c.operand, v, true),
            None => false,
        },
        Subject::Ec2InstanceId => match inst.ec2_instance_id.as_deref() {
            Some(v) => text_matches(op, &c.operand, v, false),
            None => false,
        },
        Subject::Attribute(name) => match inst.attribute(name) {
            Some(v) => text_matches(op, &c.operand, v.unwrap_or(""), false),
            None => false,
        },
        Subject::TaskGroup => inst
            .tasks
            .iter()
            .filter(|t| !t.group.is_empty())
            .any(|t| text_matches(op, &c.operand, &t.group, false)),
    };
    r != negate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("t2.*", "t2.small"));
        assert!(wildcard_match("t2.*", "t2."));
        assert!(!wildcard_match("t2.*", "t3.small"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*.large", "m5.large"));
        assert!(wildcard_match("m*.*large", "m5.2xlarge"));
        assert!(!wildcard_match("m*.*large", "m5.2xlarger"));
        assert!(wildcard_match("a*b*c", "aXbYbZc"));
        assert!(!wildcard_match("t2.small", "t2.smalls"));
    }

    #[test]
    fn versions() {
        assert_eq!(cmp_version("1.10.0", "1.9.3"), Ordering::Greater);
        assert_eq!(cmp_version("1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(cmp_text("10", "9"), Ordering::Greater);
        assert_eq!(cmp_text("b", "a"), Ordering::Greater);
    }
}
