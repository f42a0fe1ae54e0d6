//! ARNs and identifiers in ECS's current long formats.
//!
//! - cluster: `arn:aws:ecs:REGION:ACCOUNT:cluster/NAME`
//! - task definition: `arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION`
//! - container instance: `arn:aws:ecs:REGION:ACCOUNT:container-instance/CLUSTER/ID`
//! - task: `arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID` (ID: 32 lowercase hex characters)
//! - container: `arn:aws:ecs:REGION:ACCOUNT:container/CLUSTER/TASK_ID/ID`
//! - service: `arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/NAME`
//! - capacity provider: `arn:aws:ecs:REGION:ACCOUNT:capacity-provider/NAME`
//!
//! Where the API takes "a short name or full ARN", [`resource_name`] reduces either to the name.

/// The region and account ARNs are built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnContext {
    /// e.g. `us-east-1`.
    pub region: String,
    /// Twelve digits.
    pub account: String,
}

impl ArnContext {
    fn base(&self) -> String {
        format!("arn:aws:ecs:{}:{}", self.region, self.account)
    }
    /// A cluster ARN.
    pub fn cluster(&self, name: &str) -> String {
        format!("{}:cluster/{name}", self.base())
    }
    /// A task definition ARN.
    pub fn task_definition(&self, family: &str, revision: i32) -> String {
        format!("{}:task-definition/{family}:{revision}", self.base())
    }
    /// A container instance ARN.
    pub fn container_instance(&self, cluster: &str, id: &str) -> String {
        format!("{}:container-instance/{cluster}/{id}", self.base())
    }
    /// A task ARN.
    pub fn task(&self, cluster: &str, id: &str) -> String {
        format!("{}:task/{cluster}/{id}", self.base())
    }
    /// A container ARN (`container/CLUSTER/TASK_ID/CONTAINER_ID`, the long format).
    pub fn container(&self, cluster: &str, task_id: &str, container_id: &str) -> String {
        format!(
            "{}:container/{cluster}/{task_id}/{container_id}",
            self.base()
        )
    }
    /// A service ARN.
    pub fn service(&self, cluster: &str, name: &str) -> String {
        format!("{}:service/{cluster}/{name}", self.base())
    }
    /// The ARN ECS reports for a service it did not find by name (`service/NAME`, the short
    /// format without the cluster, as DescribeServices' `MISSING` failures show it).
    pub fn missing_service(&self, name: &str) -> String {
        format!("{}:service/{name}", self.base())
    }
    /// A capacity provider ARN.
    pub fn capacity_provider(&self, name: &str) -> String {
        format!("{}:capacity-provider/{name}", self.base())
    }
}

/// The parts of an ECS ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedArn {
    /// The region field.
    pub region: String,
    /// The account field.
    pub account: String,
    /// e.g. `cluster`, `task-definition`, `task`.
    pub resource_type: String,
    /// Everything after the first `/`.
    pub resource: String,
}

/// Parses `arn:aws:ecs:REGION:ACCOUNT:TYPE/RESOURCE`. Any partition is accepted.
pub fn parse(arn: &str) -> Option<ParsedArn> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    if parts.next()? != "ecs" {
        return None;
    }
    let region = parts.next()?.to_string();
    let account = parts.next()?.to_string();
    let rest = parts.next()?;
    let (resource_type, resource) = rest.split_once('/')?;
    if resource.is_empty() {
        return None;
    }
    Some(ParsedArn {
        region,
        account,
        resource_type: resource_type.into(),
        resource: resource.into(),
    })
}

/// Reduces "a short name or full ARN" of the given resource type to the last path segment
/// (for a service ARN `service/CLUSTER/NAME` that is `NAME`). Returns `None` for an ARN of another
/// resource type.
pub fn resource_name<'a>(value: &'a str, resource_type: &str) -> Option<&'a str> {
    if !value.starts_with("arn:") {
        return Some(value);
    }
    let idx = value.find(&format!(":{resource_type}/"))?;
    let rest = &value[idx + resource_type.len() + 2..];
    rest.rsplit('/').next().filter(|s| !s.is_empty())
}

/// For ARNs of the long format that embed a cluster (`task/CLUSTER/ID`), the cluster name.
pub fn embedded_cluster(value: &str) -> Option<&str> {
    let p = value
        .split_once(":task/")
        .or_else(|| value.split_once(":container-instance/"))
        .or_else(|| value.split_once(":service/"))?;
    let mut segs = p.1.split('/');
    let first = segs.next()?;
    segs.next().map(|_| first)
}

/// True for a name of 1 to 255 letters, digits, hyphens and underscores (clusters, services,
/// families).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_long_arns() {
        let c = ArnContext {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        };
        assert_eq!(
            c.cluster("web"),
            "arn:aws:ecs:us-east-1:123456789012:cluster/web"
        );
        let t = c.task("web", "0123456789abcdef0123456789abcdef");
        let p = parse(&t).unwrap();
        assert_eq!(p.resource_type, "task");
        assert_eq!(p.resource, "web/0123456789abcdef0123456789abcdef");
        assert_eq!(embedded_cluster(&t), Some("web"));
        assert_eq!(
            c.container("web", "t1", "c1"),
            "arn:aws:ecs:us-east-1:123456789012:container/web/t1/c1"
        );
        assert_eq!(
            resource_name(&c.service("web", "front"), "service"),
            Some("front")
        );
        assert_eq!(resource_name("front", "service"), Some("front"));
        assert_eq!(resource_name(&c.cluster("x"), "service"), None);
        assert_eq!(
            c.task_definition("nginx", 3),
            "arn:aws:ecs:us-east-1:123456789012:task-definition/nginx:3"
        );
    }

    #[test]
    fn names() {
        assert!(is_valid_name("a-b_c9"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(&"a".repeat(256)));
    }
}
