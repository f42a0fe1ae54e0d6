//! Evaluation as IAM evaluates identity-based policies: a statement that applies and denies
//! wins over everything; else one that applies and allows allows; else the request is denied
//! by default. Statement and policy order never matter.

use crate::condition::Context;
use crate::pattern::{arn_matches, matches_ignore_case};
use crate::policy::{Effect, Patterns, Policy, Statement};

/// What is asked: an action on a resource, with its condition context.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `service:Operation`, e.g. `ecs:RunTask`.
    pub action: &'a str,
    /// The resource's ARN, or `*` for an action IAM gives no resource.
    pub resource: &'a str,
    /// The condition keys of the request.
    pub context: &'a Context,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement that applies denies it.
    ExplicitDeny,
    /// No statement denies it and one allows it.
    Allowed,
    /// No statement allows it (IAM's default deny).
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allowed
    }
}

fn patterns_apply(p: &Patterns, matches: impl Fn(&str) -> bool) -> bool {
    match p {
        Patterns::Only(list) => list.iter().any(|x| matches(x)),
        Patterns::AllBut(list) => !list.iter().any(|x| matches(x)),
    }
}

impl Statement {
    /// Whether this statement applies to the request (its effect aside).
    pub fn applies(&self, request: &Request<'_>) -> bool {
        patterns_apply(&self.actions, |p| matches_ignore_case(p, request.action))
            && patterns_apply(&self.resources, |p| arn_matches(p, request.resource))
            && self.conditions.iter().all(|c| c.holds(request.context))
    }
}

/// Evaluates the request against every policy the principal has.
pub fn evaluate<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    request: &Request<'_>,
) -> Decision {
    let mut allowed = false;
    for statement in policies.into_iter().flat_map(|p| &p.statements) {
        if statement.applies(request) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny
    }
}

/// IAM's message for a refused request (`AccessDeniedException`), e.g. "User:
/// arn:aws:iam::123456789012:user/ops is not authorized to perform: ecs:RunTask on resource:
/// arn:aws:ecs:...:task-definition/web:1 because no identity-based policy allows the
/// ecs:RunTask action". `None` for an allowed request.
pub fn denial_message(
    principal: &str,
    request: &Request<'_>,
    decision: Decision,
) -> Option<String> {
    let head = format!(
        "User: {principal} is not authorized to perform: {} on resource: {}",
        request.action, request.resource
    );
    match decision {
        Decision::Allowed => None,
        Decision::ExplicitDeny => Some(format!(
            "{head} with an explicit deny in an identity-based policy"
        )),
        Decision::ImplicitDeny => Some(format!(
            "{head} because no identity-based policy allows the {} action",
            request.action
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::{Condition, Operator};
    use proptest::prelude::*;

    const PROD: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
    const DEV: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/dev";

    fn decide(policy: &str, action: &str, resource: &str) -> Decision {
        let p = Policy::parse(policy).unwrap();
        evaluate(
            [&p],
            &Request {
                action,
                resource,
                context: &Context::new(),
            },
        )
    }

    const READ_PROD: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Action":["ecs:Describe*","ecs:List*"],
        "Resource":["arn:aws:ecs:*:*:cluster/prod","arn:aws:ecs:*:*:task/prod/*","arn:aws:ecs:*:*:service/prod/*"]}}"#;

    #[test]
    fn allow_with_wildcards_ignoring_the_action_case() {
        assert_eq!(
            decide(READ_PROD, "ecs:DescribeClusters", PROD),
            Decision::Allowed
        );
        assert_eq!(decide(READ_PROD, "ECS:listtasks", PROD), Decision::Allowed);
        assert_eq!(
            decide(
                READ_PROD,
                "ecs:DescribeTasks",
                "arn:aws:ecs:us-east-1:123456789012:task/prod/abc"
            ),
            Decision::Allowed
        );
        assert_eq!(
            decide(READ_PROD, "ecs:DescribeClusters", DEV),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(READ_PROD, "ecs:RunTask", PROD),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(READ_PROD, "secretsmanager:GetSecretValue", "*"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn deny_beats_allow_whatever_the_order() {
        for order in [r#"[ALLOW, DENY]"#, r#"[DENY, ALLOW]"#] {
            let p = order
                .replace("ALLOW", r#"{"Effect":"Allow","Action":"ecs:*","Resource":"*"}"#)
                .replace("DENY", r#"{"Effect":"Deny","Action":"ecs:DeleteCluster","Resource":"arn:aws:ecs:*:*:cluster/prod"}"#);
            let doc = format!(r#"{{"Version":"2012-10-17","Statement":{p}}}"#);
            assert_eq!(
                decide(&doc, "ecs:DeleteCluster", PROD),
                Decision::ExplicitDeny
            );
            assert_eq!(decide(&doc, "ecs:DeleteCluster", DEV), Decision::Allowed);
            assert_eq!(decide(&doc, "ecs:RunTask", PROD), Decision::Allowed);
        }
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = r#"{"Statement":[{"Effect":"Allow","NotAction":"ecs:Delete*","Resource":"*"},
                                  {"Effect":"Deny","Action":"*","NotResource":"arn:aws:ecs:*:*:cluster/*"}]}"#;
        assert_eq!(decide(p, "ecs:CreateCluster", PROD), Decision::Allowed);
        assert_eq!(decide(p, "ecs:DeleteCluster", PROD), Decision::ImplicitDeny);
        assert_eq!(
            decide(
                p,
                "ecs:RunTask",
                "arn:aws:ecs:us-east-1:1:task-definition/web:1"
            ),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn conditions_narrow_a_statement() {
        let p = Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"ecs:RunTask","Resource":"*",
            "Condition":{"ArnEquals":{"ecs:cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/prod"}}}}"#).unwrap();
        let td = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1";
        let run = |ctx: &Context| {
            evaluate(
                [&p],
                &Request {
                    action: "ecs:RunTask",
                    resource: td,
                    context: ctx,
                },
            )
        };
        assert_eq!(
            run(&Context::new().with("ecs:cluster", PROD)),
            Decision::Allowed
        );
        assert_eq!(
            run(&Context::new().with("ecs:cluster", DEV)),
            Decision::ImplicitDeny
        );
        assert_eq!(run(&Context::new()), Decision::ImplicitDeny);
    }

    #[test]
    fn messages_are_iams() {
        let ctx = Context::new();
        let r = Request {
            action: "ecs:RunTask",
            resource: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1",
            context: &ctx,
        };
        assert_eq!(
            denial_message("arn:aws:iam::123456789012:user/ops", &r, Decision::ImplicitDeny).unwrap(),
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: ecs:RunTask on resource: arn:aws:ecs:us-east-1:123456789012:task-definition/web:1 because no identity-based policy allows the ecs:RunTask action"
        );
        assert_eq!(
            denial_message("arn:aws:iam::123456789012:user/ops", &r, Decision::ExplicitDeny).unwrap(),
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: ecs:RunTask on resource: arn:aws:ecs:us-east-1:123456789012:task-definition/web:1 with an explicit deny in an identity-based policy"
        );
        assert_eq!(denial_message("x", &r, Decision::Allowed), None);
    }

    // Properties over random policies made of a few actions, resources and a condition.

    const ACTIONS: [&str; 6] = [
        "ecs:*",
        "ecs:Describe*",
        "ecs:RunTask",
        "*",
        "secretsmanager:Get*",
        "ecs:?unTask",
    ];
    const RESOURCES: [&str; 5] = [
        "*",
        "arn:aws:ecs:*:*:cluster/prod",
        "arn:aws:ecs:*:*:cluster/*",
        "arn:aws:ecs:*:*:task/prod/*",
        "arn:aws:secretsmanager:*",
    ];
    const REQ_ACTIONS: [&str; 5] = [
        "ecs:RunTask",
        "ecs:DescribeClusters",
        "ecs:ListTasks",
        "secretsmanager:GetSecretValue",
        "iam:PassRole",
    ];
    const REQ_RESOURCES: [&str; 5] = [
        PROD,
        DEV,
        "arn:aws:ecs:us-east-1:1:task/prod/x",
        "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf",
        "*",
    ];

    fn statement() -> impl Strategy<Value = Statement> {
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(0..ACTIONS.len(), 1..3),
            any::<bool>(),
            prop::collection::vec(0..RESOURCES.len(), 1..3),
            prop::option::of(0..2usize),
        )
            .prop_map(
                |(deny, not_action, actions, not_resource, resources, cond)| {
                    let a: Vec<String> = actions
                        .into_iter()
                        .map(|i| ACTIONS[i].to_string())
                        .collect();
                    let r: Vec<String> = resources
                        .into_iter()
                        .map(|i| RESOURCES[i].to_string())
                        .collect();
                    Statement {
                        sid: None,
                        effect: if deny { Effect::Deny } else { Effect::Allow },
                        actions: if not_action {
                            Patterns::AllBut(a)
                        } else {
                            Patterns::Only(a)
                        },
                        resources: if not_resource {
                            Patterns::AllBut(r)
                        } else {
                            Patterns::Only(r)
                        },
                        conditions: cond
                            .map(|c| {
                                vec![Condition {
                                    operator: if c == 0 {
                                        Operator::ArnLike
                                    } else {
                                        Operator::StringNotLike
                                    },
                                    key: "ecs:cluster".into(),
                                    values: vec!["arn:aws:ecs:*:*:cluster/prod".into()],
                                }]
                            })
                            .unwrap_or_default(),
                    }
                },
            )
    }

    fn policy() -> impl Strategy<Value = Policy> {
        prop::collection::vec(statement(), 1..5).prop_map(|statements| Policy {
            version: "2012-10-17".into(),
            statements,
        })
    }

    fn request_parts() -> impl Strategy<Value = (usize, usize, bool)> {
        (0..REQ_ACTIONS.len(), 0..REQ_RESOURCES.len(), any::<bool>())
    }

    fn with_statement(p: &Policy, s: Statement) -> Policy {
        let mut p = p.clone();
        p.statements.push(s);
        p
    }

    proptest! {
        #[test]
        fn adding_a_deny_never_allows_what_was_denied(p in policy(), s in statement(), (a, r, prod) in request_parts()) {
            let ctx = if prod { Context::new().with("ecs:cluster", PROD) } else { Context::new() };
            let req = Request { action: REQ_ACTIONS[a], resource: REQ_RESOURCES[r], context: &ctx };
            let before = evaluate([&p], &req);
            let deny = Statement { effect: Effect::Deny, ..s };
            let after = evaluate([&with_statement(&p, deny)], &req);
            if !before.is_allowed() { prop_assert!(!after.is_allowed()); }
            if before == Decision::ExplicitDeny { prop_assert_eq!(after, Decision::ExplicitDeny); }
        }

        #[test]
        fn adding_an_allow_never_lifts_an_explicit_deny(p in policy(), s in statement(), (a, r, prod) in request_parts()) {
            let ctx = if prod { Context::new().with("ecs:cluster", PROD) } else { Context::new() };
            let req = Request { action: REQ_ACTIONS[a], resource: REQ_RESOURCES[r], context: &ctx };
            let before = evaluate([&p], &req);
            let allow = Statement { effect: Effect::Allow, ..s };
            let after = evaluate([&with_statement(&p, allow)], &req);
            if before == Decision::ExplicitDeny { prop_assert_eq!(after, Decision::ExplicitDeny); }
            if before == Decision::Allowed { prop_assert_eq!(after, Decision::Allowed); }
        }

        #[test]
        fn order_and_splitting_do_not_matter(p in policy(), (a, r, prod) in request_parts()) {
            let ctx = if prod { Context::new().with("ecs:cluster", PROD) } else { Context::new() };
            let req = Request { action: REQ_ACTIONS[a], resource: REQ_RESOURCES[r], context: &ctx };
            let mut reversed = p.clone();
            reversed.statements.reverse();
            let split: Vec<Policy> = p.statements.iter().map(|s| Policy { version: p.version.clone(), statements: vec![s.clone()] }).collect();
            let d = evaluate([&p], &req);
            prop_assert_eq!(d, evaluate([&reversed], &req));
            prop_assert_eq!(d, evaluate(&split, &req));
        }

        #[test]
        fn a_deny_of_everything_denies_everything(p in policy(), (a, r, _) in request_parts()) {
            let ctx = Context::new();
            let req = Request { action: REQ_ACTIONS[a], resource: REQ_RESOURCES[r], context: &ctx };
            let all = Statement { sid: None, effect: Effect::Deny, actions: Patterns::Only(vec!["*".into()]), resources: Patterns::Only(vec!["*".into()]), conditions: vec![] };
            prop_assert_eq!(evaluate([&with_statement(&p, all)], &req), Decision::ExplicitDeny);
            prop_assert_eq!(evaluate(std::iter::empty::<&Policy>(), &req), Decision::ImplicitDeny);
        }
    }
}
