//! A parameter as stored, and Parameter Store's rules (pure: callers pass times and sealed
//! values in).
//!
//! - Names ([`check_name`]): letters, digits and `_.-/`; a name with a `/` is a path and starts
//!   with one (`/app/db/password`), at most 15 levels; `aws` and `ssm` prefixes are reserved.
//! - Selectors ([`Selector::parse`]): `name:3` reads version 3, `name:label` a label.
//! - Paths ([`in_path`]): GetParametersByPath returns a path's direct children, or all its
//!   descendants when recursive.
//! - Versions: each PutParameter with `Overwrite` adds one (1, 2, ...); at most
//!   [`MAX_VERSIONS`] are kept, the oldest dropped.

use crate::error::SsmError;
use crate::shapes::{ParameterTier, ParameterType, Tag};
use crate::ErrorShape;
use serde::{Deserialize, Serialize};

/// The most versions kept per parameter.
pub const MAX_VERSIONS: usize = 100;
/// The most levels of a hierarchy.
pub const MAX_LEVELS: usize = 15;
/// The largest value of a Standard parameter, in characters.
pub const STANDARD_MAX: usize = 4096;
/// The largest value of an Advanced parameter, in characters.
pub const ADVANCED_MAX: usize = 8192;

/// A value as stored: in clear for String and StringList, sealed for SecureString.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredValue {
    /// A String or StringList value.
    Plain(String),
    /// A SecureString value, sealed for (name, version).
    Sealed(String),
}

/// One version of a parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterVersion {
    /// 1, 2, ...
    pub version: i64,
    /// Its type.
    pub r#type: ParameterType,
    /// Its value.
    pub value: StoredValue,
    /// `Description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `AllowedPattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// `Tier`.
    pub tier: ParameterTier,
    /// When it was written.
    pub modified: f64,
    /// Who wrote it (the caller's principal ARN).
    pub modified_by: String,
}

/// A parameter, stored at `ssm/parameters/NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterRecord {
    /// The name.
    pub name: String,
    /// The versions, oldest first; the last one is current.
    pub versions: Vec<ParameterVersion>,
    /// Tags (set when the parameter is created).
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl ParameterRecord {
    /// The current version.
    pub fn current(&self) -> Option<&ParameterVersion> {
        self.versions.last()
    }

    /// Adds the next version and drops the oldest beyond [`MAX_VERSIONS`]; returns its number.
    pub fn push(&mut self, mut v: ParameterVersion) -> i64 {
        let next = self.current().map_or(1, |c| c.version + 1);
        v.version = next;
        self.versions.push(v);
        if self.versions.len() > MAX_VERSIONS {
            self.versions.remove(0);
        }
        next
    }

    /// The version a selector asks for.
    pub fn select(&self, selector: &Selector) -> Result<&ParameterVersion, SsmError> {
        match selector {
            Selector::Current => self.current().ok_or_else(|| SsmError::not_found(&self.name)),
            Selector::Version(n) => self.versions.iter().find(|v| v.version == *n).ok_or_else(|| {
                SsmError::new(
                    ErrorShape::ParameterVersionNotFound,
                    format!(
                        "Systems Manager could not find version {n} of {}. Verify the version and try again.",
                        self.name
                    ),
                )
            }),
            // Flotilla serves no labels (LabelParameterVersion is not served): none matches.
            Selector::Label(l) => Err(SsmError::new(
                ErrorShape::ParameterVersionNotFound,
                format!(
                    "Systems Manager could not find label {l} of {}. Verify the label and try again.",
                    self.name
                ),
            )),
        }
    }
}

/// Which version a `Name` reads: `name`, `name:VERSION` or `name:LABEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The current version.
    Current,
    /// A version number.
    Version(i64),
    /// A label.
    Label(String),
}

impl Selector {
    /// Splits `name:selector`; the selector text (`:3`) is what the answer's `Selector` shows.
    pub fn parse(name: &str) -> (&str, Selector, Option<&str>) {
        // ARNs have colons of their own: the selector is after the resource.
        let resource_start = if name.starts_with("arn:") {
            name.match_indices(':')
                .nth(4)
                .map_or(name.len(), |(i, _)| i + 1)
        } else {
            0
        };
        match name[resource_start..].rfind(':') {
            Some(i) => {
                let i = resource_start + i;
                let (base, sel) = (&name[..i], &name[i + 1..]);
                let selector = match sel.parse::<i64>() {
                    Ok(n) => Selector::Version(n),
                    Err(_) => Selector::Label(sel.to_string()),
                };
                (base, selector, Some(&name[i..]))
            }
            None => (name, Selector::Current, None),
        }
    }
}

/// The ARN of a parameter: `arn:aws:ssm:REGION:ACCOUNT:parameter/NAME` (one slash whether or
/// not the name starts with one).
pub fn parameter_arn(region: &str, account: &str, name: &str) -> String {
    format!(
        "arn:aws:ssm:{region}:{account}:parameter/{}",
        name.trim_start_matches('/')
    )
}

/// The name a `Name` member means: a name, or this region's and account's parameter ARN.
/// `None` for an ARN of elsewhere.
pub fn name_of(name_or_arn: &str, region: &str, account: &str) -> Option<String> {
    let Some(rest) = name_or_arn.strip_prefix("arn:") else {
        return Some(name_or_arn.to_string());
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [_partition, "ssm", r, a, resource] = parts[..] else {
        return None;
    };
    let name = resource.strip_prefix("parameter/")?;
    if r != region || a != account || name.is_empty() {
        return None;
    }
    // A hierarchical name keeps its leading slash.
    Some(if name.contains('/') {
        format!("/{name}")
    } else {
        name.to_string()
    })
}

/// Checks a parameter name against Parameter Store's rules.
pub fn check_name(name: &str) -> Result<(), SsmError> {
    let bad = |m: &str| Err(SsmError::validation(m.to_string()));
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
    {
        return bad("Parameter name: can't contain characters other than letters, numbers and _.-/ (a hierarchical name is /level1/level2/name).");
    }
    let lower = name.trim_start_matches('/').to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return bad(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).",
        );
    }
    if name.contains('/') {
        if !name.starts_with('/') {
            return bad(
                "Parameter name must be a fully qualified name: a name with a / starts with /.",
            );
        }
        if name.contains("//") || name.ends_with('/') {
            return bad("Parameter name: a hierarchy level can't be empty.");
        }
        if name.matches('/').count() > MAX_LEVELS {
            return Err(SsmError::new(
                ErrorShape::HierarchyLevelLimitExceededException,
                format!("A parameter hierarchy can have at most {MAX_LEVELS} levels."),
            ));
        }
    }
    Ok(())
}

/// Whether `name` is under `path` (`/app` or `/app/`): a direct child, or any descendant
/// when `recursive`.
pub fn in_path(name: &str, path: &str, recursive: bool) -> bool {
    let base = path.trim_end_matches('/');
    let Some(rest) = name.strip_prefix(base).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/'))
}

/// The value limit of a tier.
pub fn max_value(tier: ParameterTier) -> usize {
    match tier {
        ParameterTier::Standard => STANDARD_MAX,
        ParameterTier::Advanced | ParameterTier::IntelligentTiering => ADVANCED_MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_split_versions_and_labels_from_names_and_arns() {
        assert_eq!(Selector::parse("/a/b"), ("/a/b", Selector::Current, None));
        assert_eq!(
            Selector::parse("/a/b:3"),
            ("/a/b", Selector::Version(3), Some(":3"))
        );
        assert_eq!(
            Selector::parse("db:prod"),
            ("db", Selector::Label("prod".into()), Some(":prod"))
        );
        let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/a/b";
        assert_eq!(Selector::parse(arn), (arn, Selector::Current, None));
        assert_eq!(
            Selector::parse("arn:aws:ssm:us-east-1:123456789012:parameter/a:2").1,
            Selector::Version(2)
        );
    }

    #[test]
    fn arns_map_to_names_of_this_region_only() {
        let (r, a) = ("us-east-1", "123456789012");
        assert_eq!(
            parameter_arn(r, a, "/a/b"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/a/b"
        );
        assert_eq!(
            parameter_arn(r, a, "x"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/x"
        );
        assert_eq!(
            name_of(&parameter_arn(r, a, "/a/b"), r, a).as_deref(),
            Some("/a/b")
        );
        assert_eq!(
            name_of(&parameter_arn(r, a, "x"), r, a).as_deref(),
            Some("x")
        );
        assert_eq!(
            name_of("arn:aws:ssm:eu-west-1:123456789012:parameter/x", r, a),
            None
        );
        assert_eq!(name_of("plain", r, a).as_deref(), Some("plain"));
    }

    #[test]
    fn names_follow_the_rules() {
        for ok in ["db", "/app/db/password", "a.b-c_d"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a b", "app/db", "/a//b", "/a/", "awsx", "/SSM/x", "x!"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let deep = "/l".repeat(16);
        assert_eq!(
            check_name(&deep).unwrap_err().kind,
            crate::error::Kind::Modeled(ErrorShape::HierarchyLevelLimitExceededException)
        );
    }

    #[test]
    fn paths_hold_children_or_descendants() {
        assert!(in_path("/app/a", "/app", false));
        assert!(in_path("/app/a", "/app/", false));
        assert!(!in_path("/app/a/b", "/app", false));
        assert!(in_path("/app/a/b", "/app", true));
        assert!(!in_path("/apple/a", "/app", true));
        assert!(in_path("/x", "/", false));
        assert!(!in_path("x", "/", true));
    }

    #[test]
    fn versions_count_up_and_the_oldest_go() {
        let mut r = ParameterRecord {
            name: "p".into(),
            versions: vec![],
            tags: vec![],
        };
        let v = || ParameterVersion {
            version: 0,
            r#type: ParameterType::String,
            value: StoredValue::Plain("x".into()),
            description: None,
            allowed_pattern: None,
            tier: ParameterTier::Standard,
            modified: 0.0,
            modified_by: "me".into(),
        };
        for _ in 0..(MAX_VERSIONS + 2) {
            r.push(v());
        }
        assert_eq!(r.current().unwrap().version, (MAX_VERSIONS + 2) as i64);
        assert_eq!(r.versions.len(), MAX_VERSIONS);
        assert!(r.select(&Selector::Version(1)).is_err());
        assert_eq!(r.select(&Selector::Version(3)).unwrap().version, 3);
        assert!(r.select(&Selector::Label("l".into())).is_err());
    }
}
