//! Secret ARNs and how a `SecretId` finds its secret (pure).
//!
//! A secret's ARN is `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`: Secrets
//! Manager appends a hyphen and six random characters to the name, so a secret deleted and
//! created again under the same name has another ARN. A `SecretId` is the name, the full ARN,
//! or a partial ARN (the full one without the six characters); [`lookup`] lists the names to
//! try and, for a full ARN, the exact ARN the secret must have.

/// The characters of the random suffix.
pub const SUFFIX_ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The ARN of a new secret: `suffix` is six characters drawn from [`SUFFIX_ALPHABET`].
pub fn secret_arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// One way a `SecretId` may name a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The secret name to read.
    pub name: String,
    /// The ARN the secret must have (a full ARN), or any (a name or a partial ARN).
    pub arn: Option<String>,
}

/// The candidates for `secret_id`, most specific first. An ARN of another region or account,
/// or of another service, names no secret here: no candidate.
pub fn lookup(secret_id: &str, region: &str, account: &str) -> Vec<Candidate> {
    let Some(rest) = secret_id.strip_prefix("arn:") else {
        return vec![Candidate {
            name: secret_id.to_string(),
            arn: None,
        }];
    };
    let parts: Vec<&str> = rest.splitn(6, ':').collect();
    let [_partition, "secretsmanager", r, a, "secret", name] = parts[..] else {
        return Vec::new();
    };
    if r != region || a != account || name.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some((base, suffix)) = name.rsplit_once('-') {
        if suffix.len() == 6
            && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
            && !base.is_empty()
        {
            out.push(Candidate {
                name: base.to_string(),
                arn: Some(secret_id.to_string()),
            });
        }
    }
    out.push(Candidate {
        name: name.to_string(),
        arn: None,
    });
    out
}

/// Whether `name` is a valid secret name: ASCII letters, digits and `/_+=.@-` (AWS's rule).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "us-east-1";
    const A: &str = "123456789012";

    #[test]
    fn names_full_and_partial_arns() {
        assert_eq!(
            lookup("prod/db", R, A),
            vec![Candidate {
                name: "prod/db".into(),
                arn: None
            }]
        );
        let full = secret_arn(R, A, "prod/db", "AbC123");
        assert_eq!(
            full,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123"
        );
        let c = lookup(&full, R, A);
        assert_eq!(c[0].name, "prod/db");
        assert_eq!(c[0].arn.as_deref(), Some(full.as_str()));
        // A name that itself ends like a suffix is also tried whole (a partial ARN).
        assert_eq!(c[1].name, "prod/db-AbC123");
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db";
        assert_eq!(lookup(partial, R, A)[0].name, "prod/db");
        assert_eq!(lookup(partial, R, A).len(), 1);
    }

    #[test]
    fn foreign_and_malformed_arns_name_nothing() {
        assert!(lookup(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbC123",
            R,
            A
        )
        .is_empty());
        assert!(lookup(
            "arn:aws:secretsmanager:us-east-1:999999999999:secret:x",
            R,
            A
        )
        .is_empty());
        assert!(lookup("arn:aws:ssm:us-east-1:123456789012:parameter/x", R, A).is_empty());
        assert!(lookup("arn:aws:secretsmanager:us-east-1", R, A).is_empty());
    }

    #[test]
    fn names_follow_awss_alphabet() {
        assert!(valid_name("prod/db_1+x=y.z@w-v"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a!"));
        assert!(!valid_name(""));
    }
}
