//! Which bucket an operation draws from, and each bucket's default limit.
//!
//! ECS groups its actions into categories that share one bucket, with a burst and a sustained
//! rate each (Amazon ECS API Reference, "Request throttling for the Amazon ECS API"): the
//! table below is that one, by name (`ecs:cluster-read` is "Cluster read actions": 50, 20/s).
//! ECS operations the table does not name draw from `ecs:other-read` or `ecs:other-modify`.
//! Every other service's operations draw from `SERVICE:read` or `SERVICE:modify` (its SigV4
//! signing name), by [`Access::of`] their name. A configured limit for one operation
//! (`ecs:DescribeClusters`) gives it a bucket of its own.

use crate::bucket::Limit;

/// Whether an operation only reads, by AWS's naming: `Describe*`, `List*`, `Get*`,
/// `BatchGet*`, `Filter*` and `Discover*` read; everything else may change something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reads only.
    Read,
    /// May change state.
    Modify,
}

const READ_PREFIXES: &[&str] = &["Describe", "List", "Get", "BatchGet", "Filter", "Discover"];

impl Access {
    /// The access of the operation `name`.
    pub fn of(name: &str) -> Access {
        if READ_PREFIXES.iter().any(|p| {
            name.strip_prefix(p).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
            })
        }) {
            Access::Read
        } else {
            Access::Modify
        }
    }
}

/// ECS's signing name: its operations use ECS's own categories.
pub const ECS: &str = "ecs";

/// ECS's categories: the bucket's name, its limit (burst, rate), and its operations.
pub const ECS_CLASSES: &[(&str, u32, f64, &[&str])] = &[
    (
        "ecs:cluster-modify",
        20,
        1.0,
        &[
            "CreateCluster",
            "DeleteCluster",
            "PutClusterCapacityProviders",
            "UpdateCluster",
            "UpdateClusterSettings",
        ],
    ),
    (
        "ecs:cluster-read",
        50,
        20.0,
        &["DescribeClusters", "ListClusters"],
    ),
    (
        "ecs:task-definition-modify",
        20,
        1.0,
        &["DeregisterTaskDefinition", "RegisterTaskDefinition"],
    ),
    (
        "ecs:task-definition-read",
        50,
        20.0,
        &[
            "DescribeTaskDefinition",
            "ListTaskDefinitions",
            "ListTaskDefinitionFamilies",
        ],
    ),
    (
        "ecs:task-definition-delete",
        5,
        1.0,
        &["DeleteTaskDefinitions"],
    ),
    (
        "ecs:capacity-provider-modify",
        10,
        1.0,
        &[
            "CreateCapacityProvider",
            "DeleteCapacityProvider",
            "UpdateCapacityProvider",
        ],
    ),
    (
        "ecs:capacity-provider-read",
        50,
        20.0,
        &["DescribeCapacityProviders"],
    ),
    (
        "ecs:tag-modify",
        20,
        10.0,
        &["TagResource", "UntagResource"],
    ),
    ("ecs:tag-read", 50, 20.0, &["ListTagsForResource"]),
    (
        "ecs:setting-modify",
        10,
        1.0,
        &[
            "DeleteAccountSetting",
            "PutAccountSetting",
            "PutAccountSettingDefault",
        ],
    ),
    ("ecs:setting-read", 50, 20.0, &["ListAccountSettings"]),
    (
        "ecs:cluster-resource-modify",
        100,
        40.0,
        &[
            "DeleteAttributes",
            "DeregisterContainerInstance",
            "ExecuteCommand",
            "PutAttributes",
            "RunTask",
            "StartTask",
            "StopTask",
            "UpdateContainerAgent",
            "UpdateContainerInstancesState",
        ],
    ),
    (
        "ecs:cluster-resource-read",
        100,
        20.0,
        &[
            "DescribeContainerInstances",
            "DescribeTasks",
            "ListAttributes",
            "ListContainerInstances",
            "ListTasks",
        ],
    ),
    (
        "ecs:agent-modify",
        200,
        120.0,
        &[
            "RegisterContainerInstance",
            "SubmitAttachmentStateChanges",
            "SubmitContainerStateChange",
            "SubmitTaskStateChange",
        ],
    ),
    (
        "ecs:service-modify",
        50,
        5.0,
        &["CreateService", "DeleteService", "UpdateService"],
    ),
    (
        "ecs:service-read",
        100,
        20.0,
        &["DescribeServices", "ListServices"],
    ),
    (
        "ecs:service-deployment",
        50,
        20.0,
        &["DescribeServiceDeployments", "ListServiceDeployments"],
    ),
    (
        "ecs:service-revision",
        50,
        20.0,
        &["DescribeServiceRevisions"],
    ),
    (
        "ecs:task-protection",
        200,
        80.0,
        &["UpdateTaskProtection", "GetTaskProtection"],
    ),
    (
        "ecs:cluster-service-resource-read",
        10,
        1.0,
        &["ListServicesByNamespace"],
    ),
];

/// ECS operations in no category of the table: reads.
pub const ECS_OTHER_READ: (&str, u32, f64) = ("ecs:other-read", 50, 20.0);
/// ECS operations in no category of the table: the others (task sets, ...), as ECS's service
/// modify actions.
pub const ECS_OTHER_MODIFY: (&str, u32, f64) = ("ecs:other-modify", 50, 5.0);
/// Every other service's reads, by default.
pub const DEFAULT_READ: (u32, f64) = (100, 50.0);
/// Every other service's other operations, by default.
pub const DEFAULT_MODIFY: (u32, f64) = (50, 20.0);

/// The bucket an operation draws from by default: its name and default limit.
pub fn class_of(service: &str, operation: &str) -> (String, Limit) {
    let access = Access::of(operation);
    if service == ECS {
        if let Some((name, burst, rate, _)) = ECS_CLASSES
            .iter()
            .find(|(_, _, _, ops)| ops.contains(&operation))
        {
            return (
                (*name).to_string(),
                Limit {
                    burst: *burst,
                    rate: *rate,
                },
            );
        }
        let (name, burst, rate) = match access {
            Access::Read => ECS_OTHER_READ,
            Access::Modify => ECS_OTHER_MODIFY,
        };
        return (name.to_string(), Limit { burst, rate });
    }
    let ((burst, rate), suffix) = match access {
        Access::Read => (DEFAULT_READ, "read"),
        Access::Modify => (DEFAULT_MODIFY, "modify"),
    };
    (format!("{service}:{suffix}"), Limit { burst, rate })
}

/// What a configured bucket name names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketName {
    /// A class: one of ECS's, or `SERVICE:read` / `SERVICE:modify`.
    Class(String),
    /// One operation (`ecs:DescribeClusters`): it gets a bucket of its own.
    Operation(String),
}

/// Checks a configured bucket name: `ecs:CLASS` (one of [`ECS_CLASSES`], `other-read`,
/// `other-modify`), `SERVICE:read`, `SERVICE:modify`, or `SERVICE:Operation`.
pub fn parse_name(name: &str) -> Result<BucketName, String> {
    let Some((service, rest)) = name.split_once(':') else {
        return Err(format!(
            "'{name}' is not a throttling class: expected SERVICE:CLASS (ecs:cluster-read, secretsmanager:read) or SERVICE:Operation (ecs:DescribeClusters)"
        ));
    };
    let service_ok = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !service_ok {
        return Err(format!(
            "'{name}': '{service}' is not a service's signing name (ecs, secretsmanager, ssm, logs, ...)"
        ));
    }
    if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
        if rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(BucketName::Operation(name.to_string()));
        }
        return Err(format!("'{name}': '{rest}' is not an operation name"));
    }
    let known = if service == ECS {
        ECS_CLASSES.iter().any(|(n, ..)| *n == name)
            || name == ECS_OTHER_READ.0
            || name == ECS_OTHER_MODIFY.0
    } else {
        rest == "read" || rest == "modify"
    };
    if known {
        Ok(BucketName::Class(name.to_string()))
    } else if service == ECS {
        let mut names: Vec<&str> = ECS_CLASSES.iter().map(|(n, ..)| *n).collect();
        names.extend([ECS_OTHER_READ.0, ECS_OTHER_MODIFY.0]);
        Err(format!(
            "'{name}' is not one of ECS's throttling classes ({})",
            names.join(", ")
        ))
    } else {
        Err(format!(
            "'{name}' is not a throttling class: a service other than ECS has '{service}:read' and '{service}:modify'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_name() {
        for read in [
            "DescribeClusters",
            "ListTasks",
            "GetSecretValue",
            "BatchGetSecretValue",
            "FilterLogEvents",
            "DiscoverInstances",
            "GetTaskProtection",
        ] {
            assert_eq!(Access::of(read), Access::Read, "{read}");
        }
        for modify in [
            "RunTask",
            "CreateSecret",
            "PutParameter",
            "UpdateTaskProtection",
            "Listen",
            "Getaway",
            "TagResource",
        ] {
            assert_eq!(Access::of(modify), Access::Modify, "{modify}");
        }
    }

    #[test]
    fn ecs_categories_are_ecs_s() {
        let (name, l) = class_of(ECS, "DescribeClusters");
        assert_eq!(
            (name.as_str(), l.burst, l.rate),
            ("ecs:cluster-read", 50, 20.0)
        );
        let (name, l) = class_of(ECS, "RunTask");
        assert_eq!(
            (name.as_str(), l.burst, l.rate),
            ("ecs:cluster-resource-modify", 100, 40.0)
        );
        let (name, l) = class_of(ECS, "RegisterTaskDefinition");
        assert_eq!(
            (name.as_str(), l.burst, l.rate),
            ("ecs:task-definition-modify", 20, 1.0)
        );
        assert_eq!(class_of(ECS, "DescribeTaskSets").0, "ecs:other-read");
        assert_eq!(class_of(ECS, "CreateTaskSet").0, "ecs:other-modify");
        assert_eq!(class_of("ssm", "GetParameter").0, "ssm:read");
        assert_eq!(class_of("ssm", "PutParameter").0, "ssm:modify");
    }

    #[test]
    fn an_operation_is_in_one_ecs_category_at_most() {
        let mut seen = std::collections::HashSet::new();
        for (_, _, _, ops) in ECS_CLASSES {
            for op in *ops {
                assert!(seen.insert(*op), "{op} is in two categories");
            }
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            parse_name("ecs:cluster-read"),
            Ok(BucketName::Class("ecs:cluster-read".into()))
        );
        assert_eq!(
            parse_name("ecs:other-modify"),
            Ok(BucketName::Class("ecs:other-modify".into()))
        );
        assert_eq!(
            parse_name("ssm:read"),
            Ok(BucketName::Class("ssm:read".into()))
        );
        assert_eq!(
            parse_name("ecs:DescribeClusters"),
            Ok(BucketName::Operation("ecs:DescribeClusters".into()))
        );
        for bad in [
            "cluster-read",
            "ecs:cluster-reads",
            "ssm:write",
            ":read",
            "ECS:read",
            "ecs:Describe-Clusters",
            "ecs:",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
        assert!(parse_name("ecs:nope")
            .unwrap_err()
            .contains("ecs:cluster-read"));
    }
}
