//! Names: log group and stream ARNs, `logGroupIdentifier`s, the stream the `awslogs` driver
//! writes a container's output to, and the control-plane store keys of the metadata.
//!
//! Only metadata lives in the store (`logs/groups/NAME`, `logs/streams/GROUP/STREAM`); events
//! never do (see the `logstore` crate).

use crate::error::LogsError;

/// Where log group records live in the control-plane store.
pub const GROUPS: &str = "logs/groups/";
/// Where log stream records live in the control-plane store.
pub const STREAMS: &str = "logs/streams/";

/// The store key of a log group.
pub fn group_key(group: &str) -> String {
    format!("{GROUPS}{group}")
}

/// The prefix of a log group's stream keys. A group name may hold `/` (never `%`), which is
/// written `%2F`, so one group's prefix is never another's.
pub fn streams_prefix(group: &str) -> String {
    format!("{STREAMS}{}/", group.replace('/', "%2F"))
}

/// The store key of a log stream.
pub fn stream_key(group: &str, stream: &str) -> String {
    format!("{}{stream}", streams_prefix(group))
}

/// A region and account, for ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The twelve-digit account id.
    pub account: String,
}

impl Account {
    /// `arn:aws:logs:REGION:ACCOUNT:log-group:NAME` (the `logGroupArn`).
    pub fn group_arn(&self, group: &str) -> String {
        format!(
            "arn:aws:logs:{}:{}:log-group:{group}",
            self.region, self.account
        )
    }

    /// `arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*` (the `arn` DescribeLogGroups shows).
    pub fn group_arn_star(&self, group: &str) -> String {
        format!("{}:*", self.group_arn(group))
    }

    /// `arn:aws:logs:REGION:ACCOUNT:log-group:GROUP:log-stream:STREAM`.
    pub fn stream_arn(&self, group: &str, stream: &str) -> String {
        format!("{}:log-stream:{stream}", self.group_arn(group))
    }

    /// The log group named by a request: `logGroupName` or `logGroupIdentifier` (a name or a
    /// log group ARN of this account and region, with or without `:*`), exactly one of them.
    pub fn group_from(
        &self,
        name: Option<&str>,
        identifier: Option<&str>,
    ) -> Result<String, LogsError> {
        match (name, identifier) {
            (Some(_), Some(_)) => Err(LogsError::invalid(
                "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
            )),
            (None, None) => Err(LogsError::invalid(
                "Either logGroupName or logGroupIdentifier must be specified.",
            )),
            (Some(n), None) => Ok(n.to_string()),
            (None, Some(id)) => self.group_from_identifier(id),
        }
    }

    fn group_from_identifier(&self, id: &str) -> Result<String, LogsError> {
        let Some(rest) = id.strip_prefix("arn:") else {
            return Ok(id.to_string());
        };
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [_partition, service, region, account, resource] = parts.as_slice() else {
            return Err(LogsError::invalid(format!(
                "The log group identifier {id} is not a log group ARN."
            )));
        };
        let Some(name) = resource.strip_prefix("log-group:") else {
            return Err(LogsError::invalid(format!(
                "The log group identifier {id} is not a log group ARN."
            )));
        };
        let name = name.strip_suffix(":*").unwrap_or(name);
        if *service != "logs" || name.is_empty() || name.contains(':') {
            return Err(LogsError::invalid(format!(
                "The log group identifier {id} is not a log group ARN."
            )));
        }
        if *region != self.region || *account != self.account {
            // Another account's or region's group is never one of this server's.
            return Err(LogsError::group_not_found());
        }
        Ok(name.to_string())
    }
}

/// The stream the `awslogs` driver writes a container to, as ECS names it:
/// `PREFIX/CONTAINER-NAME/TASK-ID` with `awslogs-stream-prefix`, else Docker's default, the
/// container's id.
pub fn container_stream(
    prefix: Option<&str>,
    container: &str,
    task_id: &str,
    container_id: &str,
) -> String {
    match prefix {
        Some(p) => format!("{p}/{container}/{task_id}"),
        None => container_id.to_string(),
    }
}

/// The task id of a task ARN (its last path segment).
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LogsErrorCode;

    fn acct() -> Account {
        Account {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn arns_and_identifiers() {
        let a = acct();
        assert_eq!(
            a.group_arn_star("/ecs/web"),
            "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"
        );
        assert_eq!(
            a.stream_arn("g", "p/c/t"),
            "arn:aws:logs:us-east-1:123456789012:log-group:g:log-stream:p/c/t"
        );
        for id in [
            "/ecs/web",
            "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web",
            "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*",
        ] {
            assert_eq!(a.group_from(None, Some(id)).unwrap(), "/ecs/web", "{id}");
        }
        let other = a
            .group_from(
                None,
                Some("arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/web"),
            )
            .unwrap_err();
        assert_eq!(other.code, LogsErrorCode::ResourceNotFoundException);
        assert_eq!(
            a.group_from(Some("a"), Some("a")).unwrap_err().code,
            LogsErrorCode::InvalidParameterException
        );
        assert_eq!(
            a.group_from(None, None).unwrap_err().code,
            LogsErrorCode::InvalidParameterException
        );
        assert!(a.group_from(None, Some("arn:aws:ecs:x")).is_err());
    }

    #[test]
    fn keys_keep_groups_apart() {
        assert_eq!(stream_key("/a/b", "s/1"), "logs/streams/%2Fa%2Fb/s/1");
        // "/a" and "/a/b" have disjoint stream prefixes.
        assert!(!streams_prefix("/a/b").starts_with(&streams_prefix("/a")));
        assert_eq!(
            container_stream(Some("ecs"), "web", "abc", "f00"),
            "ecs/web/abc"
        );
        assert_eq!(container_stream(None, "web", "abc", "f00"), "f00");
        assert_eq!(task_id("arn:aws:ecs:r:1:task/c/abc"), "abc");
    }
}
