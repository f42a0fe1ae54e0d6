//! What IAM action and resource each request is (pure): the checks [`super`] evaluates.
//!
//! ECS (`ecs:Operation`): the resource is the ARN the operation acts on, built from its input as
//! IAM's table for ECS gives it (a name or id becomes the long-format ARN in this region and
//! account; a missing `cluster` is `default`): the cluster for cluster operations, and for
//! `ListServices`, `ListTasks`, `ListContainerInstances` and the attribute operations (where IAM
//! has `*` or a container instance with the `ecs:cluster` condition key, Flotilla names the
//! cluster itself, so that a policy on one cluster's ARN keeps its holder out of every other);
//! each task, service, container instance or capacity provider named; the task definition
//! for `RunTask` and `StartTask` (resolved to its revision by the hook, with `ecs:cluster` as
//! the condition key, as IAM has it); `*` where IAM has no resource (`ListClusters`,
//! `RegisterTaskDefinition`, `DescribeTaskDefinition`, account settings, ...). An operation
//! naming several resources is one check per resource, all of which must pass.
//!
//! `iam:PassRole` on each role a request hands to ECS: `taskRoleArn`, `executionRoleArn` of
//! RegisterTaskDefinition and of RunTask's and StartTask's `overrides`; the roles of the task
//! definition that RunTask, StartTask, CreateService, CreateTaskSet and UpdateService (when it
//! names one) use are found by the hook ([`Plan::pass_roles_of`]).
//!
//! The services behind the edge: `PREFIX:Operation` with IAM's service prefix (`cloudwatch` for
//! the signing name `monitoring`), on the secret, parameter, log group (or stream), or load
//! balancer, target group, listener or rule ARN the input names, else `*`.

use flotilla_iam::Context;
use flotilla_model::arn::ArnContext;
use serde_json::Value;

/// What a check is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// This ARN (or `*`).
    Arn(String),
    /// The task definition a reference names (`family`, `family:revision` or its ARN): the hook
    /// resolves a family alone to its latest ACTIVE revision.
    TaskDefinition(String),
    /// The secret a `SecretId` names (name, partial or full ARN): the hook finds its full ARN.
    Secret(String),
}

/// One action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `service:Operation`.
    pub action: String,
    /// What it acts on.
    pub resource: Resource,
    /// The request's condition keys.
    pub context: Context,
}

/// Everything one request must be allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Every check, each of which must be allowed.
    pub checks: Vec<Check>,
    /// A task definition whose roles the request hands to ECS: `iam:PassRole` on each.
    pub pass_roles_of: Option<String>,
}

fn s<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

fn list<'a>(input: &'a Value, member: &str) -> Vec<&'a str> {
    input
        .get(member)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The cluster's name a request addresses: its `cluster` (name or ARN), else the cluster a
/// long-format ARN among `arns` embeds, else `default`.
fn cluster_name<'a>(input: &'a Value, arns: &[&'a str]) -> &'a str {
    match s(input, "cluster") {
        Some(c) => flotilla_model::arn::resource_name(c, "cluster").unwrap_or(c),
        None => arns
            .iter()
            .find_map(|a| flotilla_model::arn::embedded_cluster(a))
            .unwrap_or("default"),
    }
}

/// A name, id or ARN as the ARN of `kind` (an ARN is kept as given).
fn arn_of(value: &str, build: impl FnOnce(&str) -> String) -> String {
    if value.starts_with("arn:") {
        value.to_string()
    } else {
        build(value)
    }
}

/// A role name or ARN as its ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
pub fn role_arn(value: &str, account: &str) -> String {
    arn_of(value, |name| format!("arn:aws:iam::{account}:role/{name}"))
}

/// The checks of one ECS operation.
pub fn ecs(operation: &str, input: &Value, arns: &ArnContext) -> Plan {
    let action = format!("ecs:{operation}");
    let tasks = list(input, "tasks");
    let services = list(input, "services");
    let instances = list(input, "containerInstances");
    let mut named: Vec<&str> = Vec::new();
    named.extend(&tasks);
    named.extend(&services);
    named.extend(&instances);
    named.extend(
        ["task", "service", "containerInstance", "resourceArn"]
            .iter()
            .filter_map(|m| s(input, m)),
    );
    let cluster = cluster_name(input, &named);
    let cluster_arn = arns.cluster(cluster);
    let ctx = Context::new().with("ecs:cluster", cluster_arn.clone());
    let one = |resource: Resource| Check {
        action: action.clone(),
        resource,
        context: ctx.clone(),
    };
    let arn = |a: String| one(Resource::Arn(a));
    let any = || Check {
        action: action.clone(),
        resource: Resource::Arn("*".into()),
        context: Context::new(),
    };
    let task = |t: &str| arn(arn_of(t, |id| arns.task(cluster, id)));
    let service = |v: &str| arn(arn_of(v, |n| arns.service(cluster, n)));
    let instance = |i: &str| arn(arn_of(i, |id| arns.container_instance(cluster, id)));
    let mut plan = Plan::default();
    let checks = &mut plan.checks;
    match operation {
        "CreateCluster" => checks.push(Check {
            action: action.clone(),
            resource: Resource::Arn(arns.cluster(s(input, "clusterName").unwrap_or("default"))),
            context: Context::new(),
        }),
        "DescribeClusters" => {
            let clusters = list(input, "clusters");
            if clusters.is_empty() {
                checks.push(arn(arns.cluster("default")));
            }
            for c in clusters {
                checks.push(arn(arn_of(c, |n| arns.cluster(n))));
            }
        }
        "DeleteCluster"
        | "UpdateCluster"
        | "UpdateClusterSettings"
        | "PutClusterCapacityProviders"
        | "ListServices"
        | "ListTasks"
        | "ListContainerInstances"
        | "RegisterContainerInstance"
        | "PutAttributes"
        | "DeleteAttributes"
        | "ListAttributes" => checks.push(arn(cluster_arn.clone())),
        "DescribeTasks" | "GetTaskProtection" | "UpdateTaskProtection" => {
            checks.extend(tasks.iter().map(|t| task(t)))
        }
        "StopTask" | "ExecuteCommand" => checks.extend(s(input, "task").map(task)),
        "DescribeServices" => checks.extend(services.iter().map(|v| service(v))),
        "DeleteService"
        | "UpdateService"
        | "ListServiceDeployments"
        | "DescribeTaskSets"
        | "CreateTaskSet"
        | "UpdateServicePrimaryTaskSet" => checks.extend(s(input, "service").map(service)),
        "CreateService" => checks.extend(s(input, "serviceName").map(service)),
        "UpdateTaskSet" | "DeleteTaskSet" => {
            let svc = s(input, "service")
                .map(|v| flotilla_model::arn::resource_name(v, "service").unwrap_or(v))
                .unwrap_or("");
            checks.extend(s(input, "taskSet").map(|t| {
                arn(arn_of(t, |id| {
                    format!(
                        "arn:aws:ecs:{}:{}:task-set/{cluster}/{svc}/{id}",
                        arns.region, arns.account
                    )
                }))
            }))
        }
        "DescribeContainerInstances" | "UpdateContainerInstancesState" => {
            checks.extend(instances.iter().map(|i| instance(i)))
        }
        "DeregisterContainerInstance" | "UpdateContainerAgent" => {
            checks.extend(s(input, "containerInstance").map(instance))
        }
        "RunTask" | "StartTask" => {
            if let Some(td) = s(input, "taskDefinition") {
                checks.push(one(Resource::TaskDefinition(td.to_string())));
            }
        }
        "CreateCapacityProvider" => {
            checks.extend(s(input, "name").map(|n| arn(arns.capacity_provider(n))))
        }
        "UpdateCapacityProvider" | "DeleteCapacityProvider" => checks.extend(
            s(input, "name")
                .or(s(input, "capacityProvider"))
                .map(|n| arn(arn_of(n, |n| arns.capacity_provider(n)))),
        ),
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            checks.extend(s(input, "resourceArn").map(|a| arn(a.to_string())))
        }
        "DescribeServiceDeployments" => checks.extend(
            list(input, "serviceDeploymentArns")
                .into_iter()
                .map(|a| arn(a.to_string())),
        ),
        "DescribeServiceRevisions" => checks.extend(
            list(input, "serviceRevisionArns")
                .into_iter()
                .map(|a| arn(a.to_string())),
        ),
        "StopServiceDeployment" => {
            checks.extend(s(input, "serviceDeploymentArn").map(|a| arn(a.to_string())))
        }
        // IAM gives these no resource.
        _ => {}
    }
    if plan.checks.is_empty() {
        plan.checks.push(any());
    }
    // The roles the request hands to ECS.
    let mut roles: Vec<&str> = Vec::new();
    match operation {
        "RegisterTaskDefinition" => {
            roles.extend(s(input, "taskRoleArn"));
            roles.extend(s(input, "executionRoleArn"));
        }
        "RunTask" | "StartTask" => {
            if let Some(o) = input.get("overrides") {
                roles.extend(s(o, "taskRoleArn"));
                roles.extend(s(o, "executionRoleArn"));
            }
        }
        _ => {}
    }
    for role in roles.into_iter().filter(|r| !r.is_empty()) {
        plan.checks.push(Check {
            action: "iam:PassRole".into(),
            resource: Resource::Arn(role_arn(role, &arns.account)),
            context: Context::new(),
        });
    }
    if matches!(
        operation,
        "RunTask" | "StartTask" | "CreateService" | "UpdateService" | "CreateTaskSet"
    ) {
        plan.pass_roles_of = s(input, "taskDefinition").map(str::to_string);
    }
    plan
}

/// IAM's service prefix for a signing name (they differ for CloudWatch).
pub fn iam_prefix(signing_name: &str) -> &str {
    match signing_name {
        "monitoring" => "cloudwatch",
        other => other,
    }
}

/// The checks of an operation of a service behind the edge. `input` is its body as JSON (an
/// awsQuery form's parameters as a JSON object of strings).
pub fn edge(signing_name: &str, operation: &str, input: &Value, arns: &ArnContext) -> Plan {
    let action = format!("{}:{operation}", iam_prefix(signing_name));
    let (region, account) = (&arns.region, &arns.account);
    let mut resources: Vec<Resource> = Vec::new();
    match signing_name {
        "secretsmanager" => match operation {
            "CreateSecret" => resources.extend(s(input, "Name").map(|n| {
                Resource::Arn(format!(
                    "arn:aws:secretsmanager:{region}:{account}:secret:{n}"
                ))
            })),
            _ => resources.extend(s(input, "SecretId").map(|id| Resource::Secret(id.to_string()))),
        },
        "ssm" => {
            let parameter = |name: &str| {
                Resource::Arn(arn_of(name, |n| {
                    format!(
                        "arn:aws:ssm:{region}:{account}:parameter/{}",
                        n.trim_start_matches('/')
                    )
                }))
            };
            resources.extend(s(input, "Name").map(parameter));
            resources.extend(list(input, "Names").into_iter().map(parameter));
            resources.extend(s(input, "Path").map(parameter));
        }
        "logs" => {
            let group = s(input, "logGroupName").map(str::to_string).or_else(|| {
                s(input, "logGroupIdentifier").map(|g| {
                    g.strip_prefix(&format!("arn:aws:logs:{region}:{account}:log-group:"))
                        .unwrap_or(g)
                        .trim_end_matches(":*")
                        .to_string()
                })
            });
            if let Some(g) = group {
                let base = format!("arn:aws:logs:{region}:{account}:log-group:{g}");
                resources.push(Resource::Arn(match s(input, "logStreamName") {
                    Some(stream) => format!("{base}:log-stream:{stream}"),
                    None => format!("{base}:*"),
                }));
            }
        }
        "elasticloadbalancing" => {
            for member in [
                "RuleArn",
                "ListenerArn",
                "TargetGroupArn",
                "LoadBalancerArn",
            ] {
                if let Some(a) = s(input, member) {
                    resources.push(Resource::Arn(a.to_string()));
                    break;
                }
            }
        }
        _ => {}
    }
    if resources.is_empty() {
        resources.push(Resource::Arn("*".into()));
    }
    Plan {
        checks: resources
            .into_iter()
            .map(|resource| Check {
                action: action.clone(),
                resource,
                context: Context::new(),
            })
            .collect(),
        pass_roles_of: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arns() -> ArnContext {
        ArnContext {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }

    const BASE: &str = "arn:aws:ecs:us-east-1:123456789012";

    fn resources(plan: &Plan) -> Vec<(String, Resource)> {
        plan.checks
            .iter()
            .map(|c| (c.action.clone(), c.resource.clone()))
            .collect()
    }

    fn a(action: &str, arn: &str) -> (String, Resource) {
        (action.to_string(), Resource::Arn(arn.to_string()))
    }

    #[test]
    fn cluster_operations_act_on_the_cluster() {
        let p = ecs("ListTasks", &json!({"cluster": "prod"}), &arns());
        assert_eq!(
            resources(&p),
            vec![a("ecs:ListTasks", &format!("{BASE}:cluster/prod"))]
        );
        assert_eq!(
            p.checks[0].context.get("ecs:cluster"),
            Some(&[format!("{BASE}:cluster/prod")][..])
        );
        let p = ecs("ListServices", &json!({}), &arns());
        assert_eq!(
            resources(&p),
            vec![a("ecs:ListServices", &format!("{BASE}:cluster/default"))]
        );
        let p = ecs(
            "DescribeClusters",
            &json!({"clusters": ["prod", format!("{BASE}:cluster/dev")]}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![
                a("ecs:DescribeClusters", &format!("{BASE}:cluster/prod")),
                a("ecs:DescribeClusters", &format!("{BASE}:cluster/dev"))
            ]
        );
        let p = ecs("CreateCluster", &json!({"clusterName": "x"}), &arns());
        assert_eq!(
            resources(&p),
            vec![a("ecs:CreateCluster", &format!("{BASE}:cluster/x"))]
        );
        let p = ecs(
            "RegisterContainerInstance",
            &json!({"cluster": format!("{BASE}:cluster/prod")}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a(
                "ecs:RegisterContainerInstance",
                &format!("{BASE}:cluster/prod")
            )]
        );
    }

    #[test]
    fn tasks_services_and_instances_by_id_name_or_arn() {
        let p = ecs(
            "DescribeTasks",
            &json!({"cluster": "prod", "tasks": ["abc", format!("{BASE}:task/prod/def")]}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![
                a("ecs:DescribeTasks", &format!("{BASE}:task/prod/abc")),
                a("ecs:DescribeTasks", &format!("{BASE}:task/prod/def"))
            ]
        );
        // The cluster of a long ARN when no cluster is given.
        let p = ecs(
            "StopTask",
            &json!({"task": format!("{BASE}:task/dev/1")}),
            &arns(),
        );
        assert_eq!(
            p.checks[0].context.get("ecs:cluster"),
            Some(&[format!("{BASE}:cluster/dev")][..])
        );
        let p = ecs(
            "UpdateService",
            &json!({"cluster": "prod", "service": "web"}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a("ecs:UpdateService", &format!("{BASE}:service/prod/web"))]
        );
        assert_eq!(p.pass_roles_of, None);
        let p = ecs(
            "CreateService",
            &json!({"serviceName": "web", "taskDefinition": "web:1"}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a(
                "ecs:CreateService",
                &format!("{BASE}:service/default/web")
            )]
        );
        assert_eq!(p.pass_roles_of.as_deref(), Some("web:1"));
        let p = ecs(
            "DescribeContainerInstances",
            &json!({"cluster": "prod", "containerInstances": ["i1"]}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a(
                "ecs:DescribeContainerInstances",
                &format!("{BASE}:container-instance/prod/i1")
            )]
        );
        let p = ecs(
            "TagResource",
            &json!({"resourceArn": format!("{BASE}:cluster/prod"), "tags": []}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a("ecs:TagResource", &format!("{BASE}:cluster/prod"))]
        );
    }

    #[test]
    fn run_task_is_on_its_task_definition_with_the_cluster_as_condition_and_passes_roles() {
        let p = ecs(
            "RunTask",
            &json!({"cluster": "prod", "taskDefinition": "web", "overrides": {"taskRoleArn": "app", "executionRoleArn": "arn:aws:iam::123456789012:role/exec"}}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![
                (
                    "ecs:RunTask".to_string(),
                    Resource::TaskDefinition("web".into())
                ),
                a("iam:PassRole", "arn:aws:iam::123456789012:role/app"),
                a("iam:PassRole", "arn:aws:iam::123456789012:role/exec"),
            ]
        );
        assert_eq!(
            p.checks[0].context.get("ecs:cluster"),
            Some(&[format!("{BASE}:cluster/prod")][..])
        );
        assert_eq!(p.pass_roles_of.as_deref(), Some("web"));
        let p = ecs(
            "RegisterTaskDefinition",
            &json!({"family": "web", "taskRoleArn": "arn:aws:iam::123456789012:role/app"}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![
                a("ecs:RegisterTaskDefinition", "*"),
                a("iam:PassRole", "arn:aws:iam::123456789012:role/app")
            ]
        );
    }

    #[test]
    fn operations_without_a_resource_are_on_star() {
        for op in [
            "ListClusters",
            "ListTaskDefinitions",
            "DescribeTaskDefinition",
            "ListAccountSettings",
            "DiscoverPollEndpoint",
        ] {
            assert_eq!(
                resources(&ecs(op, &json!({}), &arns())),
                vec![a(&format!("ecs:{op}"), "*")]
            );
        }
    }

    #[test]
    fn services_behind_the_edge() {
        let p = edge(
            "secretsmanager",
            "GetSecretValue",
            &json!({"SecretId": "db"}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![(
                "secretsmanager:GetSecretValue".to_string(),
                Resource::Secret("db".into())
            )]
        );
        let p = edge("secretsmanager", "ListSecrets", &json!({}), &arns());
        assert_eq!(resources(&p), vec![a("secretsmanager:ListSecrets", "*")]);
        let p = edge(
            "ssm",
            "GetParameters",
            &json!({"Names": ["/app/db", "plain"]}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![
                a(
                    "ssm:GetParameters",
                    "arn:aws:ssm:us-east-1:123456789012:parameter/app/db"
                ),
                a(
                    "ssm:GetParameters",
                    "arn:aws:ssm:us-east-1:123456789012:parameter/plain"
                )
            ]
        );
        let p = edge(
            "logs",
            "PutLogEvents",
            &json!({"logGroupName": "g", "logStreamName": "s"}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a(
                "logs:PutLogEvents",
                "arn:aws:logs:us-east-1:123456789012:log-group:g:log-stream:s"
            )]
        );
        let p = edge("monitoring", "PutMetricData", &json!({}), &arns());
        assert_eq!(resources(&p), vec![a("cloudwatch:PutMetricData", "*")]);
        let p = edge(
            "elasticloadbalancing",
            "DeleteLoadBalancer",
            &json!({"LoadBalancerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1"}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a(
                "elasticloadbalancing:DeleteLoadBalancer",
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1"
            )]
        );
        let p = edge(
            "application-autoscaling",
            "RegisterScalableTarget",
            &json!({}),
            &arns(),
        );
        assert_eq!(
            resources(&p),
            vec![a("application-autoscaling:RegisterScalableTarget", "*")]
        );
    }
}
