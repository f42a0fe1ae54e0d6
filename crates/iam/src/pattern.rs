//! IAM's wildcards: `*` matches any run of characters (none included), `?` exactly one.
//!
//! Matching is the classic linear-backtracking glob (one remembered `*`), so a pattern of many
//! stars against a long name costs O(pattern × name) at worst, never exponential time.

/// Whether `text` matches `pattern` (`*`, `?`), comparing characters exactly.
pub fn matches(pattern: &str, text: &str) -> bool {
    glob(pattern, text, |a, b| a == b)
}

/// Whether `text` matches `pattern` (`*`, `?`), ignoring ASCII case (IAM matches action names
/// this way: `ecs:describe*` allows `ecs:DescribeClusters`).
pub fn matches_ignore_case(pattern: &str, text: &str) -> bool {
    glob(pattern, text, |a, b| a.eq_ignore_ascii_case(&b))
}

fn glob(pattern: &str, text: &str, eq: impl Fn(char, char) -> bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // The last `*` seen and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some('?') => {
                pi += 1;
                ti += 1;
            }
            Some(&c) if eq(c, t[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last star take one more character and try again from there.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether an ARN matches a `Resource` pattern as IAM matches them: `*` alone matches every
/// resource; otherwise both are split into ARN's six parts (`arn`, partition, service, region,
/// account, resource: the last keeps its own colons) and each part is matched by itself, so a
/// wildcard in the region never swallows the account. A pattern or resource that is not of
/// ARN's six-part form (`arn:aws:ecs:*`, an unstructured name) is matched as a whole string, so
/// a trailing `*` reaches past the colons, as IAM's does. Case matters, as it does in IAM.
pub fn arn_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let r: Vec<&str> = resource.splitn(6, ':').collect();
    if p.len() == 6 && r.len() == 6 {
        return p.iter().zip(&r).all(|(p, r)| matches(p, r));
    }
    matches(pattern, resource)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("Describe*", "DescribeClusters"));
        assert!(matches("Describe*", "Describe"));
        assert!(!matches("Describe*", "ListClusters"));
        assert!(matches("*Task*", "RunTask"));
        assert!(matches("?un*", "RunTask"));
        assert!(!matches("?un", "RunTask"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(!matches("describe*", "DescribeClusters"));
        assert!(matches_ignore_case("describe*", "DescribeClusters"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
    }

    #[test]
    fn arns_match_part_by_part() {
        let cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
        assert!(arn_matches("*", cluster));
        assert!(arn_matches(cluster, cluster));
        assert!(arn_matches("arn:aws:ecs:*:*:cluster/prod", cluster));
        assert!(arn_matches("arn:aws:ecs:*:*:cluster/*", cluster));
        assert!(!arn_matches(
            "arn:aws:ecs:*:*:cluster/prod",
            "arn:aws:ecs:us-east-1:123456789012:cluster/production"
        ));
        assert!(arn_matches(
            "arn:aws:ecs:*:*:cluster/prod*",
            "arn:aws:ecs:us-east-1:123456789012:cluster/production"
        ));
        assert!(!arn_matches(
            "arn:aws:ecs:*:*:task/prod/*",
            "arn:aws:ecs:us-east-1:123456789012:task/dev/abc"
        ));
        // A wildcard in a six-part pattern stays in its part ...
        assert!(!arn_matches(
            "arn:aws:ecs:us-*-1:*:cluster/prod",
            "arn:aws:ecs:us-east:1:x:cluster/prod"
        ));
        // ... and a shorter pattern ending in one reaches past the colons, as IAM's does.
        assert!(arn_matches("arn:aws:ecs:*", cluster));
        assert!(!arn_matches("arn:aws:secretsmanager:*", cluster));
        assert!(arn_matches(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:*",
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3"
        ));
        // Case matters in resources.
        assert!(!arn_matches("arn:aws:ecs:*:*:cluster/PROD", cluster));
    }

    /// A tiny reference matcher (exponential, fine for short strings).
    fn reference(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(c), Some(d)) if c == d => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_reference(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(matches(&p, &t), reference(&pc, &tc));
        }

        #[test]
        fn a_text_matches_itself_and_star(t in "[a-zA-Z0-9:/-]{0,30}") {
            prop_assert!(matches(&t, &t));
            prop_assert!(matches("*", &t));
            prop_assert!(arn_matches("*", &t));
        }
    }
}
