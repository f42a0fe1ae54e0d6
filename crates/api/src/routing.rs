//! Which service a request is for: ECS (served by this crate's `ops`, with Flotilla's own
//! `FlotillaAdmin.*` operations) or one of the services registered with
//! [`crate::Api::with_service`] (Secrets Manager, SSM Parameter Store, and the services added
//! later), told apart on the one endpoint as AWS's endpoints are: by the protocol's marker
//! (`X-Amz-Target: <prefix>.<Operation>`) and by the SigV4 credential scope's service name.
//! An awsQuery service (ELBv2: [`Marker::Action`]) has no target: its requests are routed by
//! their scope, and the operation is the form body's `Action`.
//!
//! [`route`] decides from the marker first; a request whose marker names no service (no
//! target, or an unknown prefix) goes to the service its credential scope names, so its
//! refusal has that service's shape, and to ECS when the scope names none either (ECS answers
//! `UnknownOperationException`, as it always has). [`scope_mismatch`] is the second check, on
//! the verified caller: a request whose scope names another service than its marker's is
//! refused with AWS's `InvalidSignatureException` ("Credential should be scoped to correct
//! service: 'ecs'. ").
//!
//! Adding a service is one [`crate::Api::with_service`] call where the server is built, plus
//! the service's crate implementing [`flotilla_edge::Service`]; nothing here changes.

use flotilla_edge::{Marker, Service};
use flotilla_sigv4::target::{ADMIN_TARGET_PREFIX, ECS_SERVICE, ECS_TARGET_PREFIX};
use std::sync::Arc;

/// Where a request goes.
#[derive(Clone)]
pub enum Route {
    /// ECS (and `FlotillaAdmin.*`), served by [`crate::ops`] and [`crate::admin`].
    Ecs,
    /// A service behind the edge.
    Service(Arc<dyn Service>),
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Ecs => f.write_str("Ecs"),
            Route::Service(s) => write!(f, "Service({})", s.signing_name()),
        }
    }
}

/// The service whose marker `target` carries, if any: its operation name after the prefix.
fn by_target<'s, 't>(
    services: &'s [Arc<dyn Service>],
    target: &'t str,
) -> Option<(&'s Arc<dyn Service>, &'t str)> {
    let (prefix, operation) = target.split_once('.')?;
    services
        .iter()
        .find(|s| matches!(s.marker(), Marker::Target(p) if p == prefix))
        .map(|s| (s, operation))
}

/// Routes a request by its `X-Amz-Target` and the (unverified) service name of its credential
/// scope.
pub fn route(services: &[Arc<dyn Service>], target: &str, scope_service: Option<&str>) -> Route {
    if target.starts_with(ECS_TARGET_PREFIX) || target.starts_with(ADMIN_TARGET_PREFIX) {
        return Route::Ecs;
    }
    if let Some((s, _)) = by_target(services, target) {
        return Route::Service(s.clone());
    }
    match scope_service.and_then(|name| services.iter().find(|s| s.signing_name() == name)) {
        Some(s) => Route::Service(s.clone()),
        None => Route::Ecs,
    }
}

/// The operation a request to `service` names: for a JSON service what follows its target
/// prefix (`None` when the target is not that service's); for an awsQuery service the form
/// body's `Action` (`None` when the request has a target or no `Action`).
pub fn operation(service: &dyn Service, target: &str, body: &[u8]) -> Option<String> {
    match service.marker() {
        Marker::Target(prefix) => target
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(str::to_string),
        Marker::Action if target.is_empty() => flotilla_edge::query::action(body),
        Marker::Action => None,
    }
}

/// For a request routed to ECS (its target is ECS's or Flotilla's admin, or it names no
/// service this endpoint serves, neither by target nor by scope): the signing name its scope
/// must have when `scope` is not it. A request signed for a service the endpoint does not
/// serve (`s3`) is refused whatever its target, as AWS's ECS endpoint refuses it, before any
/// `UnknownOperationException`.
pub fn ecs_scope_mismatch(_target: &str, scope: &str) -> Option<&'static str> {
    (scope != ECS_SERVICE).then_some(ECS_SERVICE)
}

/// For a request routed to `service` by its target: the signing name its scope must have
/// when `scope` is not it.
pub fn scope_mismatch(service: &dyn Service, scope: &str) -> Option<&'static str> {
    (scope != service.signing_name()).then(|| service.signing_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_edge::{Call, EdgeError, Reply};

    /// A service: its signing name and target prefix (empty: an awsQuery service).
    struct Fake(&'static str, &'static str);

    #[async_trait::async_trait]
    impl Service for Fake {
        fn title(&self) -> &'static str {
            "Fake"
        }
        fn signing_name(&self) -> &'static str {
            self.0
        }
        fn marker(&self) -> Marker {
            if self.1.is_empty() {
                Marker::Action
            } else {
                Marker::Target(self.1)
            }
        }
        fn has_operation(&self, _: &str) -> bool {
            true
        }
        async fn call(&self, _: Call<'_>) -> Reply {
            unreachable!("routing tests never call")
        }
        fn reject(&self, _: &EdgeError) -> Reply {
            unreachable!("routing tests never reject")
        }
    }

    fn services() -> Vec<Arc<dyn Service>> {
        vec![
            Arc::new(Fake("secretsmanager", "secretsmanager")),
            Arc::new(Fake("ssm", "AmazonSSM")),
            Arc::new(Fake("elasticloadbalancing", "")),
        ]
    }

    fn name(r: Route) -> &'static str {
        match r {
            Route::Ecs => "ecs",
            Route::Service(s) => s.signing_name(),
        }
    }

    #[test]
    fn the_target_prefix_decides_first() {
        let s = services();
        let cases = [
            (
                "AmazonEC2ContainerServiceV20141113.ListClusters",
                Some("ssm"),
                "ecs",
            ),
            ("FlotillaAdmin.Status", Some("ecs"), "ecs"),
            (
                "secretsmanager.GetSecretValue",
                Some("ecs"),
                "secretsmanager",
            ),
            ("AmazonSSM.GetParameter", None, "ssm"),
            // No known target: the scope decides, and ECS answers when it names no service.
            ("", Some("ssm"), "ssm"),
            (
                "Logs_20140328.PutLogEvents",
                Some("secretsmanager"),
                "secretsmanager",
            ),
            ("Logs_20140328.PutLogEvents", Some("logs"), "ecs"),
            ("DynamoDB_20120810.ListTables", Some("ecs"), "ecs"),
            ("", None, "ecs"),
            ("secretsmanager", Some("ecs"), "ecs"),
            // awsQuery: no target, the scope decides.
            ("", Some("elasticloadbalancing"), "elasticloadbalancing"),
        ];
        for (target, scope, want) in cases {
            assert_eq!(name(route(&s, target, scope)), want, "{target} {scope:?}");
        }
    }

    #[test]
    fn a_scope_of_another_service_is_a_mismatch() {
        let s = services();
        assert_eq!(
            operation(s[0].as_ref(), "secretsmanager.GetSecretValue", b"{}").as_deref(),
            Some("GetSecretValue")
        );
        assert_eq!(operation(s[0].as_ref(), "secretsmanagerX.Get", b""), None);
        assert_eq!(scope_mismatch(s[0].as_ref(), "ecs"), Some("secretsmanager"));
        assert_eq!(scope_mismatch(s[0].as_ref(), "secretsmanager"), None);
        assert_eq!(
            ecs_scope_mismatch("AmazonEC2ContainerServiceV20141113.RunTask", "ssm"),
            Some("ecs")
        );
        assert_eq!(ecs_scope_mismatch("FlotillaAdmin.Status", "ecs"), None);
        // Not an ECS target, signed for a service not served: still refused as a wrong scope.
        assert_eq!(ecs_scope_mismatch("Nope.Nope", "s3"), Some("ecs"));
        assert_eq!(ecs_scope_mismatch("", "s3"), Some("ecs"));
        assert_eq!(ecs_scope_mismatch("", "ecs"), None);
    }

    #[test]
    fn an_awsquery_operation_is_the_forms_action() {
        let s = services();
        let elb = s[2].as_ref();
        assert_eq!(
            operation(elb, "", b"Action=DescribeLoadBalancers&Version=2015-12-01").as_deref(),
            Some("DescribeLoadBalancers")
        );
        assert_eq!(operation(elb, "", b"Version=2015-12-01"), None);
        assert_eq!(
            operation(elb, "secretsmanager.GetSecretValue", b"Action=X"),
            None
        );
        assert_eq!(scope_mismatch(elb, "elasticloadbalancing"), None);
    }
}
