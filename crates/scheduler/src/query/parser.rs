//! Recursive-descent parser for the cluster query language.
//!
//! What it is: tokens in, a type-checked [`Expr`] out. Grammar (keywords and
//! word operators are case-insensitive, subjects are not):
//!
//! ```text
//! expr      := and_expr (("or" | "||") and_expr)*
//! and_expr  := unary (("and" | "&&") unary)*
//! unary     := ("not" | "!") unary | "(" expr ")" | condition
//! condition := subject operator operand?
//! subject   := agentConnected | agentVersion | attribute:NAME | ec2InstanceId
//!            | registeredAt | runningTasksCount | task:group
//! operator  := == | equals | != | not_equals | > | greater_than
//!            | >= | greater_than_equal | < | less_than | <= | less_than_equal
//!            | exists | !exists | not_exists | in | !in | not_in
//!            | =~ | matches | !~ | not_matches
//! operand   := value | "[" value ("," value)* "]"     (lists for in / !in)
//! value     := bare-word | 'quoted' | "quoted"
//! ```
//!
//! What it is not: the evaluator. Invariants: every error carries the byte
//! position of the offending token and says what was expected there; an
//! operator a subject does not support, an operand of the wrong type (not an
//! integer, timestamp or boolean where one is needed) and an invalid regular
//! expression are all parse errors, so evaluation cannot fail.

use regex::RegexBuilder;

use super::ast::{Condition, Expr, Operand, Operator, Subject, Value};
use super::lexer::{Token, TokenKind};
use super::timestamp::parse_timestamp;
use super::QueryError;

/// Parses a token stream (ending with EOF) into an expression.
pub fn parse_tokens(tokens: &[Token]) -> Result<Expr, QueryError> {
    let mut p = Parser { tokens, at: 0 };
    let e = p.expr()?;
    let t = p.peek();
    if t.kind != TokenKind::Eof {
        return Err(p.expected("`and`, `or` or the end of the expression"));
    }
    Ok(e)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

const EOF: Token = Token {
    kind: TokenKind::Eof,
    pos: 0,
};

fn is_kw(t: &Token, kw: &str) -> bool {
    matches!(&t.kind, TokenKind::Word(w) if w.eq_ignore_ascii_case(kw))
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &'a Token {
        self.tokens.get(self.at).unwrap_or(&EOF)
    }

    fn peek2(&self) -> &'a Token {
        self.tokens.get(self.at + 1).unwrap_or(&EOF)
    }

    fn bump(&mut self) -> &'a Token {
        let t = self.peek();
        if self.at < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn expected(&self, what: impl Into<String>) -> QueryError {
        let t = self.peek();
        QueryError::new(t.pos, what, t.kind.describe())
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and_expr()?;
        loop {
            let t = self.peek();
            if t.kind == TokenKind::OrOr || is_kw(t, "or") {
                self.bump();
                let right = self.and_expr()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        loop {
            let t = self.peek();
            if t.kind == TokenKind::AndAnd || is_kw(t, "and") {
                self.bump();
                let right = self.unary()?;
                left = Expr::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let t = self.peek();
        if t.kind == TokenKind::Bang || is_kw(t, "not") {
            self.bump();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if t.kind == TokenKind::LParen {
            self.bump();
            let e = self.expr()?;
            if self.peek().kind != TokenKind::RParen {
                return Err(self.expected("`)` or `and`/`or`"));
            }
            self.bump();
            return Ok(e);
        }
        self.condition()
    }

    fn subject(&mut self) -> Result<Subject, QueryError> {
        const EXPECTED: &str = "a subject (agentConnected, agentVersion, attribute:<name>, \
             ec2InstanceId, registeredAt, runningTasksCount, task:group), `not` or `(`";
        let t = self.peek();
        let TokenKind::Word(w) = &t.kind else {
            return Err(self.expected(EXPECTED));
        };
        let s = match w.as_str() {
            "agentConnected" => Subject::AgentConnected,
            "agentVersion" => Subject::AgentVersion,
            "ec2InstanceId" => Subject::Ec2InstanceId,
            "registeredAt" => Subject::RegisteredAt,
            "runningTasksCount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            _ => match w.strip_prefix("attribute:") {
                Some(name) if valid_attribute_name(name) => Subject::Attribute(name.to_string()),
                Some(_) => return Err(QueryError::new(
                    t.pos,
                    "an attribute name (1-128 of letters, digits, - _ . / : @) after `attribute:`",
                    t.kind.describe(),
                )),
                None => return Err(self.expected(EXPECTED)),
            },
        };
        self.bump();
        Ok(s)
    }

    fn operator(&mut self) -> Result<(Operator, usize), QueryError> {
        const EXPECTED: &str =
            "an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, =~, !~, \
             or a word form such as equals, not_in, matches)";
        let t = self.peek();
        let op = match &t.kind {
            TokenKind::EqEq => Operator::Eq,
            TokenKind::NotEq => Operator::Ne,
            TokenKind::Gt => Operator::Gt,
            TokenKind::Ge => Operator::Ge,
            TokenKind::Lt => Operator::Lt,
            TokenKind::Le => Operator::Le,
            TokenKind::Match => Operator::Matches,
            TokenKind::NotMatch => Operator::NotMatches,
            TokenKind::Bang => {
                let next = self.peek2();
                let op = if is_kw(next, "exists") {
                    Operator::NotExists
                } else if is_kw(next, "in") {
                    Operator::NotIn
                } else {
                    return Err(QueryError::new(
                        next.pos,
                        "`exists` or `in` after `!`",
                        next.kind.describe(),
                    ));
                };
                self.bump();
                op
            }
            TokenKind::Word(w) => match Operator::from_word(w) {
                Some(op) => op,
                None => return Err(self.expected(EXPECTED)),
            },
            _ => return Err(self.expected(EXPECTED)),
        };
        self.bump();
        Ok((op, t.pos))
    }

    fn condition(&mut self) -> Result<Expr, QueryError> {
        let subject = self.subject()?;
        let (op, op_pos) = self.operator()?;
        if !subject.operators().contains(&op) {
            let allowed: Vec<&str> = subject.operators().iter().map(|o| o.symbol()).collect();
            return Err(QueryError::new(
                op_pos,
                format!(
                    "an operator that {} supports ({})",
                    subject.name(),
                    allowed.join(", ")
                ),
                format!("`{}`", op.symbol()),
            ));
        }
        let operand = match op {
            Operator::Exists | Operator::NotExists => Operand::None,
            Operator::In | Operator::NotIn => {
                if self.peek().kind == TokenKind::LBracket {
                    self.bump();
                    let mut vals = vec![self.value(&subject)?];
                    loop {
                        match self.peek().kind {
                            TokenKind::Comma => {
                                self.bump();
                                vals.push(self.value(&subject)?);
                            }
                            TokenKind::RBracket => {
                                self.bump();
                                break;
                            }
                            _ => return Err(self.expected("`,` or `]`")),
                        }
                    }
                    Operand::List(vals)
                } else {
                    Operand::List(vec![self.value(&subject)?])
                }
            }
            Operator::Matches | Operator::NotMatches => {
                let (text, pos) = self.raw_value()?;
                let re = RegexBuilder::new(&format!("^(?:{text})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        QueryError::new(
                            pos,
                            "a valid regular expression",
                            format!("'{text}' ({})", first_line(&e.to_string())),
                        )
                    })?;
                Operand::Pattern(re)
            }
            _ => Operand::One(self.value(&subject)?),
        };
        Ok(Expr::Cond(Condition {
            subject,
            op,
            operand,
        }))
    }

    fn raw_value(&mut self) -> Result<(String, usize), QueryError> {
        let t = self.peek();
        match &t.kind {
            TokenKind::Word(w) | TokenKind::Quoted(w) => {
                self.bump();
                Ok((w.clone(), t.pos))
            }
            _ => Err(self.expected("a value")),
        }
    }

    fn value(&mut self, subject: &Subject) -> Result<Value, QueryError> {
        let (text, pos) = self.raw_value()?;
        let bad = |what: &str| QueryError::new(pos, what, format!("`{text}`"));
        Ok(match subject {
            Subject::RunningTasksCount => Value::Int(text.parse().map_err(|_| bad("an integer"))?),
            Subject::RegisteredAt => Value::Time(
                parse_timestamp(&text)
                    .ok_or_else(|| bad("a timestamp such as 2018-06-18T22:28:28+00:00"))?,
            ),
            Subject::AgentConnected => match text.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad("true or false")),
            },
            _ => Value::Text(text),
        })
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

fn valid_attribute_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    #[test]
    fn precedence_not_over_and_over_or() {
        let q = parse("a:x exists or agentConnected == true").unwrap_err();
        assert_eq!(q.position, 0);
        let q =
            parse("attribute:a exists or attribute:b exists and not attribute:c exists").unwrap();
        let s = format!("{:?}", q.expr());
        assert!(s.starts_with("Or("), "{s}");
    }

    #[test]
    fn errors_point_at_the_token() {
        let e = parse("attribute:x ==").unwrap_err();
        assert_eq!((e.position, e.expected.as_str()), (14, "a value"));
        let e = parse("runningTasksCount > many").unwrap_err();
        assert_eq!(e.position, 20);
        assert!(e.expected.contains("integer"));
        let e = parse("task:group > 3").unwrap_err();
        assert_eq!(e.position, 11);
        let e = parse("(attribute:x exists").unwrap_err();
        assert_eq!(e.position, 19);
        let e = parse("attribute:x =~ '('").unwrap_err();
        assert_eq!(e.position, 15);
        let e = parse("attribute:x ! foo").unwrap_err();
        assert_eq!(e.position, 14);
        let e = parse("attribute: exists").unwrap_err();
        assert_eq!(e.position, 0);
        let e = parse("attribute:x exists attribute:y exists").unwrap_err();
        assert_eq!(e.position, 19);
        let e = parse("attribute:x in [a, ]").unwrap_err();
        assert_eq!(e.position, 19);
    }
}
