//! Filter patterns for unstructured log events, as FilterLogEvents reads them:
//!
//! - an empty pattern matches every event;
//! - `ERROR timeout`: every term must occur (case-sensitive, anywhere in the message);
//! - `"connection reset"`: a quoted phrase is one term, spaces included (`\"` is a quote);
//! - `?ERROR ?WARN`: at least one of the `?` terms must occur;
//! - `-DEBUG` (or `-"a phrase"`): the term must not occur;
//! - `%regex%`: the message matches the regular expression.
//!
//! JSON patterns (`{ $.level = "error" }`) and space-delimited patterns (`[ip, user, ...]`)
//! are refused with a clear `InvalidParameterException`: Flotilla does not serve them.

use crate::error::LogsError;

/// A parsed filter pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Every event.
    All,
    /// Terms: all `required` occur, at least one of `any` (when there are some), no `excluded`.
    Terms {
        /// Must all occur.
        required: Vec<String>,
        /// At least one must occur (when not empty).
        any: Vec<String>,
        /// None may occur.
        excluded: Vec<String>,
    },
    /// A regular expression.
    Regex(regex::Regex),
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Pattern::All, Pattern::All) => true,
            (
                Pattern::Terms {
                    required: a,
                    any: b,
                    excluded: c,
                },
                Pattern::Terms {
                    required: x,
                    any: y,
                    excluded: z,
                },
            ) => a == x && b == y && c == z,
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// Parses a filter pattern.
pub fn parse(pattern: &str) -> Result<Pattern, LogsError> {
    let p = pattern.trim();
    if p.is_empty() || p == "\"\"" {
        return Ok(Pattern::All);
    }
    if p.starts_with('{') {
        return Err(LogsError::invalid(format!(
            "Invalid filter pattern '{pattern}': JSON filter patterns ({{ $.field = value }}) are not supported by Flotilla; use terms, \"quoted phrases\", ?alternatives, -exclusions or %regex%."
        )));
    }
    if p.starts_with('[') {
        return Err(LogsError::invalid(format!(
            "Invalid filter pattern '{pattern}': space-delimited filter patterns ([field, ...]) are not supported by Flotilla; use terms, \"quoted phrases\", ?alternatives, -exclusions or %regex%."
        )));
    }
    if p.len() >= 2 && p.starts_with('%') && p.ends_with('%') {
        let re = &p[1..p.len() - 1];
        return regex::Regex::new(re).map(Pattern::Regex).map_err(|e| {
            LogsError::invalid(format!(
                "Invalid filter pattern '{pattern}': the regular expression is not valid: {e}"
            ))
        });
    }
    let (mut required, mut any, mut excluded) = (Vec::new(), Vec::new(), Vec::new());
    let mut chars = p.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let kind = match first {
            '?' => {
                chars.next();
                1
            }
            '-' => {
                chars.next();
                2
            }
            _ => 0,
        };
        let mut term = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            term.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => term.push(c),
                }
            }
            if !closed {
                return Err(LogsError::invalid(format!(
                    "Invalid filter pattern '{pattern}': a quoted phrase is not closed."
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                term.push(c);
                chars.next();
            }
        }
        if term.is_empty() {
            return Err(LogsError::invalid(format!(
                "Invalid filter pattern '{pattern}': '?' and '-' must be followed by a term."
            )));
        }
        match kind {
            1 => any.push(term),
            2 => excluded.push(term),
            _ => required.push(term),
        }
    }
    Ok(Pattern::Terms {
        required,
        any,
        excluded,
    })
}

impl Pattern {
    /// Whether a message matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Regex(re) => re.is_match(message),
            Pattern::Terms {
                required,
                any,
                excluded,
            } => {
                required.iter().all(|t| message.contains(t.as_str()))
                    && (any.is_empty() || any.iter().any(|t| message.contains(t.as_str())))
                    && !excluded.iter().any(|t| message.contains(t.as_str()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, message: &str) -> bool {
        parse(pattern).unwrap().matches(message)
    }

    #[test]
    fn terms_phrases_alternatives_and_exclusions() {
        let cases = [
            ("", "anything", true),
            ("ERROR", "an ERROR here", true),
            ("ERROR", "an error here", false),
            ("ERROR timeout", "ERROR: timeout", true),
            ("ERROR timeout", "ERROR: reset", false),
            ("\"connection reset\"", "the connection reset by peer", true),
            ("\"connection reset\"", "connection was reset", false),
            ("?ERROR ?WARN", "WARN disk", true),
            ("?ERROR ?WARN", "INFO disk", false),
            ("ERROR -retry", "ERROR fatal", true),
            ("ERROR -retry", "ERROR will retry", false),
            ("-\"a b\"", "x a b y", false),
            ("\"say \\\"hi\\\"\"", "they say \"hi\"", true),
            ("%^line [0-9]+$%", "line 42", true),
            ("%^line [0-9]+$%", "line x", false),
        ];
        for (p, msg, want) in cases {
            assert_eq!(m(p, msg), want, "pattern {p:?} on {msg:?}");
        }
    }

    #[test]
    fn unsupported_and_malformed_patterns_are_refused() {
        for p in [
            "{ $.level = \"error\" }",
            "[ip, user]",
            "\"open",
            "ERROR -",
            "%([%",
        ] {
            let e = parse(p).unwrap_err();
            assert_eq!(
                e.code,
                crate::LogsErrorCode::InvalidParameterException,
                "{p}"
            );
        }
    }

    proptest! {
        #[test]
        fn a_quoted_phrase_matches_exactly_the_messages_containing_it(
            phrase in "[a-z ]{1,8}", message in "[a-z ]{0,20}"
        ) {
            prop_assume!(!phrase.trim().is_empty());
            let p = parse(&format!("\"{phrase}\"")).unwrap();
            prop_assert_eq!(p.matches(&message), message.contains(&phrase));
        }

        #[test]
        fn terms_are_a_conjunction(a in "[a-z]{1,4}", b in "[a-z]{1,4}", message in "[a-z ]{0,20}") {
            let p = parse(&format!("{a} {b}")).unwrap();
            prop_assert_eq!(p.matches(&message), message.contains(&a) && message.contains(&b));
        }
    }
}
