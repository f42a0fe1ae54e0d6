//! HTML text: [`esc`] escapes every value that did not come from this crate (names, ARNs,
//! messages, log lines, form input), for text and for quoted attribute values alike, so no
//! value a user or a container controls can open a tag, close an attribute or start a script.
//!
//! The pages are built as `String`s with `format!`: every `{}` that holds a value goes through
//! [`esc`] (or is a number), and markup comes only from this crate's literals.

/// `s` with `& < > " '` replaced by their character references.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one path segment of a console URL: everything but unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) and `:` (a task definition's `family:revision`) percent-encoded.
/// The result still goes through [`esc`] when written into an attribute.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A link to `href` (a console path built by this crate) showing `text` (escaped).
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

/// A status as a badge, coloured by what it means (`RUNNING`, `ACTIVE`, `COMPLETED` green;
/// `PENDING`, `PROVISIONING`, `IN_PROGRESS`, `DRAINING` amber; `STOPPED`, `FAILED`, `INACTIVE`
/// grey or red).
pub fn badge(status: &str) -> String {
    let class = match status {
        "RUNNING" | "ACTIVE" | "COMPLETED" | "PRIMARY" | "HEALTHY" | "OK" => "ok",
        "PENDING" | "PROVISIONING" | "ACTIVATING" | "IN_PROGRESS" | "DRAINING" | "DEACTIVATING"
        | "STOPPING" | "DEPROVISIONING" | "REGISTERING" => "busy",
        "FAILED" | "UNHEALTHY" | "ALARM" => "bad",
        _ => "off",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("plain-name_1"), "plain-name_1");
    }

    #[test]
    fn segments_keep_names_and_encode_the_rest() {
        assert_eq!(segment("web-1_a.b~c"), "web-1_a.b~c");
        assert_eq!(segment("family:3"), "family:3");
        assert_eq!(segment("a/b c?d#e"), "a%2Fb%20c%3Fd%23e");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn badges_escape_an_unknown_status() {
        assert_eq!(badge("RUNNING"), "<span class=\"badge ok\">RUNNING</span>");
        assert_eq!(badge("<b>"), "<span class=\"badge off\">&lt;b&gt;</span>");
    }

    proptest! {
        /// Whatever the input, the escaped text has no character that could start or end
        /// markup or an attribute.
        #[test]
        fn escaped_text_has_no_markup(s in ".*") {
            let e = esc(&s);
            prop_assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        }

        /// A segment is only unreserved characters, `:` and percent escapes.
        #[test]
        fn segments_are_url_safe(s in ".*") {
            let e = segment(&s);
            prop_assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~:%".contains(&b)));
        }
    }
}
