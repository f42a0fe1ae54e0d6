//! Tokens of the cluster query language.
//!
//! What it is: a hand-written lexer turning an expression into [`Token`]s,
//! each with the byte offset where it starts. What it is not: the parser —
//! words are not classified here (`in` may be an operator or a value; the
//! parser decides by position).
//!
//! Invariants: every token records its start offset in the source; a bare
//! word is a maximal run of characters that are not whitespace and not one
//! of `( ) [ ] , ' " = ! < > & | ~`; quoted strings (single or double quotes,
//! no escapes) may contain anything but their own quote.

use super::QueryError;

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `==`
    EqEq,
    /// `!=`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=~`
    Match,
    /// `!~`
    NotMatch,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `!` (negation, or the start of `!exists` / `!in`)
    Bang,
    /// A bare word: subject, keyword or value.
    Word(String),
    /// A quoted string (quotes removed).
    Quoted(String),
    /// End of input.
    Eof,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Self::LParen => "`(`".into(),
            Self::RParen => "`)`".into(),
            Self::LBracket => "`[`".into(),
            Self::RBracket => "`]`".into(),
            Self::Comma => "`,`".into(),
            Self::EqEq => "`==`".into(),
            Self::NotEq => "`!=`".into(),
            Self::Gt => "`>`".into(),
            Self::Ge => "`>=`".into(),
            Self::Lt => "`<`".into(),
            Self::Le => "`<=`".into(),
            Self::Match => "`=~`".into(),
            Self::NotMatch => "`!~`".into(),
            Self::AndAnd => "`&&`".into(),
            Self::OrOr => "`||`".into(),
            Self::Bang => "`!`".into(),
            Self::Word(w) => format!("`{w}`"),
            Self::Quoted(q) => format!("'{q}'"),
            Self::Eof => "end of expression".into(),
        }
    }
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Byte offset of its first character.
    pub pos: usize,
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !"()[],'\"=!<>&|~".contains(c)
}

/// Splits `src` into tokens, ending with [`TokenKind::Eof`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, QueryError> {
    let mut out = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some(&(pos, c)) = it.peek() {
        if c.is_whitespace() {
            it.next();
            continue;
        }
        let single = |k| Token { kind: k, pos };
        let kind = match c {
            '(' => Some(TokenKind::LParen),
            ')' => Some(TokenKind::RParen),
            '[' => Some(TokenKind::LBracket),
            ']' => Some(TokenKind::RBracket),
            ',' => Some(TokenKind::Comma),
            _ => None,
        };
        if let Some(k) = kind {
            it.next();
            out.push(single(k));
            continue;
        }
        match c {
            '\'' | '"' => {
                it.next();
                let mut s = String::new();
                let mut closed = false;
                for (_, d) in it.by_ref() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    s.push(d);
                }
                if !closed {
                    return Err(QueryError::new(
                        pos,
                        format!("a closing {c} for the string starting here"),
                        "end of expression",
                    ));
                }
                out.push(single(TokenKind::Quoted(s)));
            }
            '=' | '!' | '<' | '>' | '&' | '|' | '~' => {
                it.next();
                let next = it.peek().map(|&(_, d)| d);
                let two = |k| (k, true);
                let (kind, consumed_second) = match (c, next) {
                    ('=', Some('=')) => two(TokenKind::EqEq),
                    ('=', Some('~')) => two(TokenKind::Match),
                    ('!', Some('=')) => two(TokenKind::NotEq),
                    ('!', Some('~')) => two(TokenKind::NotMatch),
                    ('!', _) => (TokenKind::Bang, false),
                    ('>', Some('=')) => two(TokenKind::Ge),
                    ('>', _) => (TokenKind::Gt, false),
                    ('<', Some('=')) => two(TokenKind::Le),
                    ('<', _) => (TokenKind::Lt, false),
                    ('&', Some('&')) => two(TokenKind::AndAnd),
                    ('|', Some('|')) => two(TokenKind::OrOr),
                    _ => {
                        return Err(QueryError::new(
                            pos,
                            "an operator (==, !=, =~, !~, >, >=, <, <=, &&, ||, !)",
                            format!("`{c}`"),
                        ))
                    }
                };
                if consumed_second {
                    it.next();
                }
                out.push(single(kind));
            }
            _ => {
                let mut s = String::new();
                while let Some(&(_, d)) = it.peek() {
                    if !is_word_char(d) {
                        break;
                    }
                    s.push(d);
                    it.next();
                }
                out.push(single(TokenKind::Word(s)));
            }
        }
    }
    out.push(Token {
        kind: TokenKind::Eof,
        pos: src.len(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn words_operators_and_lists() {
        use TokenKind::*;
        assert_eq!(
            kinds("attribute:ecs.instance-type in [t2.small, 'm5.*']"),
            vec![
                Word("attribute:ecs.instance-type".into()),
                Word("in".into()),
                LBracket,
                Word("t2.small".into()),
                Comma,
                Quoted("m5.*".into()),
                RBracket,
                Eof
            ]
        );
        assert_eq!(
            kinds("!(a==b)&&c!~d||e>=f"),
            vec![
                Bang,
                LParen,
                Word("a".into()),
                EqEq,
                Word("b".into()),
                RParen,
                AndAnd,
                Word("c".into()),
                NotMatch,
                Word("d".into()),
                OrOr,
                Word("e".into()),
                Ge,
                Word("f".into()),
                Eof
            ]
        );
    }

    #[test]
    fn timestamps_are_single_words() {
        assert_eq!(
            kinds("registeredAt < 2018-06-18T22:28:28+00:00")[2],
            TokenKind::Word("2018-06-18T22:28:28+00:00".into())
        );
    }

    #[test]
    fn positions_and_errors() {
        let t = tokenize("a  == b").unwrap();
        assert_eq!(
            t.iter().map(|t| t.pos).collect::<Vec<_>>(),
            vec![0, 3, 6, 7]
        );
        let e = tokenize("a = b").unwrap_err();
        assert_eq!(e.position, 2);
        let e = tokenize("a == 'b").unwrap_err();
        assert_eq!(e.position, 5);
    }
}
