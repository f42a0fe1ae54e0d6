//! Custom capacity providers: ECS's rules for CreateCapacityProvider, UpdateCapacityProvider
//! and DeleteCapacityProvider, the stored record, and the capacity reservation ECS computes for
//! managed scaling.
//!
//! In Flotilla a custom provider is a set of hosts: an agent started with
//! `--capacity-provider NAME` registers with the attribute [`AGENT_ATTRIBUTE`], and its container
//! instance shows `capacityProviderName`. The `autoScalingGroupProvider` (with the Auto Scaling
//! group ARN as given, which Flotilla never calls) is stored and answered as ECS does, with
//! ECS's defaults filled in; it says which hosts nothing: the hosts say which provider they are in.
//!
//! Records live at `capacity-providers/NAME` ([`key`]); FARGATE and FARGATE_SPOT are never
//! stored ([`crate::clusters::BUILTIN_CAPACITY_PROVIDERS`]).

use flotilla_model::shapes::{
    AutoScalingGroupProvider, AutoScalingGroupProviderUpdate, CapacityProvider,
    CapacityProviderStatus, CapacityProviderType, CapacityProviderUpdateStatus, ManagedDraining,
    ManagedScaling, ManagedScalingStatus, ManagedTerminationProtection, Tag,
};
use flotilla_model::{EcsError, ErrorCode};
use serde::{Deserialize, Serialize};

/// Prefix of capacity provider records (`capacity-providers/NAME`).
pub const PREFIX: &str = "capacity-providers/";

/// The container instance attribute an agent registers with to join a provider
/// (`flotilla agent --capacity-provider NAME`); the server records it as the instance's
/// `capacityProviderName` and does not keep it as an attribute.
pub const AGENT_ATTRIBUTE: &str = flotilla_protocol::CAPACITY_PROVIDER_ATTRIBUTE;

/// The longest name ECS accepts.
pub const MAX_NAME_LEN: usize = 255;

/// ECS's `managedScaling` defaults (model docs).
pub const DEFAULT_TARGET_CAPACITY: i32 = 100;
/// Default `minimumScalingStepSize`.
pub const DEFAULT_MIN_STEP: i32 = 1;
/// Default `maximumScalingStepSize`.
pub const DEFAULT_MAX_STEP: i32 = 10_000;
/// Default `instanceWarmupPeriod`, seconds.
pub const DEFAULT_WARMUP: i32 = 300;

/// The store key of a provider.
pub fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// A stored custom capacity provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CapacityProviderRecord {
    /// The provider as ECS describes it (with its tags).
    pub provider: CapacityProvider,
    /// When it was deleted (epoch seconds); it is INACTIVE from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<f64>,
}

impl CapacityProviderRecord {
    /// Its name.
    pub fn name(&self) -> &str {
        self.provider.name.as_deref().unwrap_or_default()
    }

    /// Whether it is ACTIVE (not deleted).
    pub fn is_active(&self) -> bool {
        self.deleted_at.is_none()
    }

    /// Whether DescribeCapacityProviders still shows it at `now`: ACTIVE, or INACTIVE for
    /// `retention` seconds after its deletion (then it is MISSING, as ECS forgets deleted
    /// providers).
    pub fn visible(&self, now: f64, retention: f64) -> bool {
        self.deleted_at.is_none_or(|at| now < at + retention)
    }

    /// As DescribeCapacityProviders answers it: tags only when asked for.
    pub fn view(&self, with_tags: bool) -> CapacityProvider {
        let mut p = self.provider.clone();
        if !with_tags {
            p.tags = None;
        }
        p
    }
}

/// Whether `name` is one of ECS's reserved providers (FARGATE, FARGATE_SPOT).
pub fn is_builtin(name: &str) -> bool {
    crate::clusters::BUILTIN_CAPACITY_PROVIDERS.contains(&name)
}

/// The provider a builtin name describes as (ACTIVE, its type, no tags of its own).
pub fn builtin(name: &str, arn: String) -> CapacityProvider {
    CapacityProvider {
        capacity_provider_arn: Some(arn),
        name: Some(name.to_string()),
        status: Some(CapacityProviderStatus::Active),
        r#type: Some(if name == "FARGATE_SPOT" {
            CapacityProviderType::FargateSpot
        } else {
            CapacityProviderType::Fargate
        }),
        tags: Some(Vec::new()),
        ..Default::default()
    }
}

/// ECS's refusal of a name it does not accept.
pub fn invalid_name() -> EcsError {
    EcsError::client(
        "The specified capacity provider name is invalid. Up to 255 characters are allowed, including letters (upper and lowercase), numbers, underscores, and hyphens. The name cannot be prefixed with \"aws\", \"ecs\", or \"fargate\". Specify a valid name and try again.",
    )
}

/// Checks a new provider's name: 1 to 255 letters, digits, `_` and `-`, not starting with
/// `aws`, `ecs` or `fargate` in any case.
pub fn validate_name(name: &str) -> Result<(), EcsError> {
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let lower = name.to_ascii_lowercase();
    let reserved = ["aws", "ecs", "fargate"]
        .iter()
        .any(|p| lower.starts_with(p));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !chars_ok || reserved {
        return Err(invalid_name());
    }
    Ok(())
}

/// ECS's refusal of a name that is taken.
pub fn already_exists() -> EcsError {
    EcsError::client(
        "The specified capacity provider already exists. To change the configuration of an existing capacity provider, update the capacity provider.",
    )
}

/// ECS's refusal of an Auto Scaling group another provider has.
pub fn group_in_use() -> EcsError {
    EcsError::client(
        "The specified Auto Scaling group ARN is already being used by another capacity provider. Specify a unique Auto Scaling group ARN and try again.",
    )
}

/// The error for a provider that is not there (or is INACTIVE) where an operation needs it.
pub fn not_found(name: &str) -> EcsError {
    EcsError::client(format!(
        "The specified capacity provider '{name}' does not exist. Specify a valid name or ARN and try again."
    ))
}

/// DeleteCapacityProvider and UpdateCapacityProvider on FARGATE or FARGATE_SPOT.
pub fn reserved(name: &str) -> EcsError {
    EcsError::client(format!(
        "The {name} capacity provider is reserved by Amazon ECS and cannot be updated or deleted."
    ))
}

/// `managedScaling` with ECS's defaults for what is not given (status DISABLED unless given).
fn scaling(given: Option<&ManagedScaling>, base: Option<&ManagedScaling>) -> ManagedScaling {
    let g = given.cloned().unwrap_or_default();
    let b = base.cloned().unwrap_or_default();
    ManagedScaling {
        status: g
            .status
            .or(b.status)
            .or(Some(ManagedScalingStatus::Disabled)),
        target_capacity: g
            .target_capacity
            .or(b.target_capacity)
            .or(Some(DEFAULT_TARGET_CAPACITY)),
        minimum_scaling_step_size: g
            .minimum_scaling_step_size
            .or(b.minimum_scaling_step_size)
            .or(Some(DEFAULT_MIN_STEP)),
        maximum_scaling_step_size: g
            .maximum_scaling_step_size
            .or(b.maximum_scaling_step_size)
            .or(Some(DEFAULT_MAX_STEP)),
        instance_warmup_period: g
            .instance_warmup_period
            .or(b.instance_warmup_period)
            .or(Some(DEFAULT_WARMUP)),
    }
}

/// Checks managed scaling as ECS does beyond the model's ranges: the minimum step may not
/// exceed the maximum; managed termination protection needs managed scaling.
fn check(asg: &AutoScalingGroupProvider) -> Result<(), EcsError> {
    let s = asg.managed_scaling.as_ref();
    let min = s
        .and_then(|s| s.minimum_scaling_step_size)
        .unwrap_or(DEFAULT_MIN_STEP);
    let max = s
        .and_then(|s| s.maximum_scaling_step_size)
        .unwrap_or(DEFAULT_MAX_STEP);
    if min > max {
        return Err(EcsError::invalid_parameter(
            "The minimum scaling step size must be less than or equal to the maximum scaling step size.",
        ));
    }
    let scaling_on = s.and_then(|s| s.status) == Some(ManagedScalingStatus::Enabled);
    if asg.managed_termination_protection == Some(ManagedTerminationProtection::Enabled)
        && !scaling_on
    {
        return Err(EcsError::invalid_parameter(
            "The managed termination protection setting for the capacity provider is invalid. To enable managed termination protection for a capacity provider, managed scaling must also be enabled.",
        ));
    }
    Ok(())
}

/// A new provider as CreateCapacityProvider makes it: ACTIVE, type EC2_AUTOSCALING, the
/// group's settings with ECS's defaults (managed scaling DISABLED with targetCapacity 100,
/// steps 1 and 10000, warm-up 300 s; termination protection DISABLED; draining ENABLED).
/// `name` must have passed [`validate_name`]; `asg` is required (ECS models it so; the
/// managed-instances kind is refused by the caller).
pub fn create(
    name: &str,
    arn: String,
    asg: Option<&AutoScalingGroupProvider>,
    tags: Vec<Tag>,
) -> Result<CapacityProviderRecord, EcsError> {
    validate_name(name)?;
    let Some(asg) = asg else {
        return Err(EcsError::invalid_parameter(
            "An autoScalingGroupProvider must be specified.",
        ));
    };
    if asg.auto_scaling_group_arn.trim().is_empty() {
        return Err(EcsError::invalid_parameter(
            "The autoScalingGroupArn of the autoScalingGroupProvider can not be empty.",
        ));
    }
    let asg = AutoScalingGroupProvider {
        auto_scaling_group_arn: asg.auto_scaling_group_arn.clone(),
        managed_scaling: Some(scaling(asg.managed_scaling.as_ref(), None)),
        managed_termination_protection: Some(
            asg.managed_termination_protection
                .unwrap_or(ManagedTerminationProtection::Disabled),
        ),
        managed_draining: Some(asg.managed_draining.unwrap_or(ManagedDraining::Enabled)),
    };
    check(&asg)?;
    Ok(CapacityProviderRecord {
        provider: CapacityProvider {
            capacity_provider_arn: Some(arn),
            name: Some(name.to_string()),
            status: Some(CapacityProviderStatus::Active),
            auto_scaling_group_provider: Some(asg),
            r#type: Some(CapacityProviderType::Ec2Autoscaling),
            tags: Some(tags),
            ..Default::default()
        },
        deleted_at: None,
    })
}

/// UpdateCapacityProvider: what the request names replaces the stored value, member by member
/// (`managedScaling`'s members too); the update completes at once (`UPDATE_COMPLETE`).
pub fn apply_update(
    rec: &mut CapacityProviderRecord,
    update: Option<&AutoScalingGroupProviderUpdate>,
) -> Result<(), EcsError> {
    let Some(update) = update else {
        return Err(EcsError::invalid_parameter(
            "An autoScalingGroupProvider must be specified.",
        ));
    };
    let current = rec
        .provider
        .auto_scaling_group_provider
        .clone()
        .unwrap_or_default();
    let next = AutoScalingGroupProvider {
        auto_scaling_group_arn: current.auto_scaling_group_arn.clone(),
        managed_scaling: Some(scaling(
            update.managed_scaling.as_ref(),
            current.managed_scaling.as_ref(),
        )),
        managed_termination_protection: update
            .managed_termination_protection
            .or(current.managed_termination_protection),
        managed_draining: update.managed_draining.or(current.managed_draining),
    };
    check(&next)?;
    rec.provider.auto_scaling_group_provider = Some(next);
    rec.provider.update_status = Some(CapacityProviderUpdateStatus::UpdateComplete);
    rec.provider.update_status_reason = None;
    Ok(())
}

/// What DeleteCapacityProvider does with a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted: INACTIVE, `DELETE_COMPLETE`.
    Deleted,
    /// Kept ACTIVE with `DELETE_FAILED`, as ECS answers: a cluster still lists it (first one
    /// named), or a service's strategy uses it.
    Failed(String),
}

/// Decides DeleteCapacityProvider: `clusters` are the ACTIVE clusters that list the provider,
/// `services` the services (`CLUSTER/NAME`) whose strategy names it.
pub fn decide_delete(clusters: &[String], services: &[String]) -> DeleteOutcome {
    if let Some(c) = clusters.first() {
        return DeleteOutcome::Failed(format!(
            "The capacity provider cannot be deleted because it is associated with cluster: {c}. Remove the capacity provider from the cluster and try again."
        ));
    }
    if let Some(s) = services.first() {
        return DeleteOutcome::Failed(format!(
            "The capacity provider cannot be deleted because it is in use by service: {s}. Remove the capacity provider from the service's capacity provider strategy and try again."
        ));
    }
    DeleteOutcome::Deleted
}

/// Applies a delete decision to the record at `now`.
pub fn apply_delete(rec: &mut CapacityProviderRecord, outcome: &DeleteOutcome, now: f64) {
    match outcome {
        DeleteOutcome::Deleted => {
            rec.deleted_at = Some(now);
            rec.provider.status = Some(CapacityProviderStatus::Inactive);
            rec.provider.update_status = Some(CapacityProviderUpdateStatus::DeleteComplete);
            rec.provider.update_status_reason = None;
        }
        DeleteOutcome::Failed(reason) => {
            rec.provider.update_status = Some(CapacityProviderUpdateStatus::DeleteFailed);
            rec.provider.update_status_reason = Some(reason.clone());
        }
    }
}

/// One provider's hosts in one cluster, as the reservation counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProviderHosts {
    /// N: the provider's container instances in the cluster that are running (ACTIVE or
    /// DRAINING, registered).
    pub running: u32,
    /// Of those, the ones running at least one task that is not a daemon service's.
    pub busy: u32,
    /// Tasks of the provider waiting for capacity (PROVISIONING for lack of an instance).
    /// Flotilla places a task or fails it at once, so this is 0 today.
    pub provisioning: u32,
}

/// Counts a provider's hosts among a cluster's instances: N, the running ones (ACTIVE or
/// DRAINING), and of those the ones with a task that is not of a daemon service
/// (`daemon_groups`: `service:NAME` of the cluster's DAEMON services); each instance comes with
/// what its tasks hold.
pub fn hosts<'a>(
    instances: impl IntoIterator<
        Item = (
            &'a crate::instances::InstanceRecord,
            &'a crate::instances::Held,
        ),
    >,
    provider: &str,
    daemon_groups: &std::collections::HashSet<String>,
) -> ProviderHosts {
    let mut h = ProviderHosts::default();
    for (i, held) in instances {
        if i.instance.capacity_provider_name.as_deref() != Some(provider)
            || i.status() == flotilla_scheduler::InstanceStatus::Inactive
        {
            continue;
        }
        h.running += 1;
        if held.values().any(|r| !daemon_groups.contains(&*r.group)) {
            h.busy += 1;
        }
    }
    h
}

/// `CapacityProviderReservation` as ECS computes it for managed scaling: `M / N × 100`, where
/// N is the number of instances running and M the number needed to run every task placed or
/// waiting on the provider. With nothing waiting, M is the number of instances running at
/// least one (non-daemon) task; with tasks waiting and no instance, the metric is 200; with
/// neither instances nor tasks, 100 (the target, so managed scaling does nothing).
///
/// With tasks waiting, ECS adds at least the minimum scaling step of instances to M; Flotilla
/// never has waiting tasks (see [`ProviderHosts::provisioning`]), so it counts one more
/// instance per waiting task at most, bounded by `min_step`.
pub fn reservation(h: ProviderHosts, min_step: u32) -> f64 {
    let n = h.running;
    let m = if h.provisioning > 0 {
        h.busy
            .max(n)
            .saturating_add(h.provisioning.max(min_step.max(1)))
    } else {
        h.busy
    };
    match (m, n) {
        (0, 0) => 100.0,
        (_, 0) => 200.0,
        (m, n) => f64::from(m) / f64::from(n) * 100.0,
    }
}

/// The error for a provider that is not ACTIVE where a cluster is to use it.
pub fn not_active(name: &str) -> EcsError {
    EcsError::invalid_parameter(format!(
        "The specified capacity provider '{name}' is not in an ACTIVE state. Specify a valid capacity provider and try again."
    ))
}

/// The error for a provider removed from a cluster while a service's strategy uses it.
pub fn in_use() -> EcsError {
    EcsError::new(
        ErrorCode::ResourceInUseException,
        "The specified capacity provider is in use and cannot be removed.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asg(arn: &str) -> AutoScalingGroupProvider {
        AutoScalingGroupProvider {
            auto_scaling_group_arn: arn.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names() {
        for ok in [
            "web",
            "my_provider-1",
            "A",
            &"x".repeat(255),
            "Provider-aws",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "aws",
            "AWSfoo",
            "ecs-cp",
            "EcsCp",
            "fargate2",
            "FARGATE",
            "Fargate_x",
            "has space",
            "dot.name",
            "slash/x",
            &"x".repeat(256),
        ] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::ClientException, "{bad}");
            assert!(e
                .message
                .starts_with("The specified capacity provider name is invalid."));
        }
    }

    #[test]
    fn create_fills_ecs_defaults() {
        let r = create("cp", "arn:cp".into(), Some(&asg("arn:asg")), Vec::new()).unwrap();
        let p = &r.provider;
        assert_eq!(p.status, Some(CapacityProviderStatus::Active));
        assert_eq!(p.r#type, Some(CapacityProviderType::Ec2Autoscaling));
        let a = p.auto_scaling_group_provider.as_ref().unwrap();
        assert_eq!(a.auto_scaling_group_arn, "arn:asg");
        let s = a.managed_scaling.as_ref().unwrap();
        assert_eq!(s.status, Some(ManagedScalingStatus::Disabled));
        assert_eq!(s.target_capacity, Some(100));
        assert_eq!(s.minimum_scaling_step_size, Some(1));
        assert_eq!(s.maximum_scaling_step_size, Some(10_000));
        assert_eq!(s.instance_warmup_period, Some(300));
        assert_eq!(
            a.managed_termination_protection,
            Some(ManagedTerminationProtection::Disabled)
        );
        assert_eq!(a.managed_draining, Some(ManagedDraining::Enabled));
        assert!(create("cp", "a".into(), None, Vec::new()).is_err());
        assert!(create("cp", "a".into(), Some(&asg(" ")), Vec::new()).is_err());
        assert_eq!(
            create("awsx", "a".into(), Some(&asg("g")), Vec::new())
                .unwrap_err()
                .message,
            invalid_name().message
        );
    }

    #[test]
    fn create_keeps_what_is_given_and_checks_steps_and_protection() {
        let mut g = asg("g");
        g.managed_scaling = Some(ManagedScaling {
            status: Some(ManagedScalingStatus::Enabled),
            target_capacity: Some(80),
            maximum_scaling_step_size: Some(5),
            ..Default::default()
        });
        g.managed_termination_protection = Some(ManagedTerminationProtection::Enabled);
        g.managed_draining = Some(ManagedDraining::Disabled);
        let r = create("cp", "a".into(), Some(&g), Vec::new()).unwrap();
        let a = r.provider.auto_scaling_group_provider.unwrap();
        let s = a.managed_scaling.unwrap();
        assert_eq!(
            (
                s.target_capacity,
                s.minimum_scaling_step_size,
                s.maximum_scaling_step_size
            ),
            (Some(80), Some(1), Some(5))
        );
        assert_eq!(a.managed_draining, Some(ManagedDraining::Disabled));
        let mut bad = asg("g");
        bad.managed_scaling = Some(ManagedScaling {
            minimum_scaling_step_size: Some(6),
            maximum_scaling_step_size: Some(5),
            ..Default::default()
        });
        assert_eq!(
            create("cp", "a".into(), Some(&bad), Vec::new())
                .unwrap_err()
                .code,
            ErrorCode::InvalidParameterException
        );
        let mut prot = asg("g");
        prot.managed_termination_protection = Some(ManagedTerminationProtection::Enabled);
        assert!(create("cp", "a".into(), Some(&prot), Vec::new()).is_err());
    }

    #[test]
    fn update_merges_over_the_stored_provider() {
        let mut r = create("cp", "a".into(), Some(&asg("g")), Vec::new()).unwrap();
        apply_update(
            &mut r,
            Some(&AutoScalingGroupProviderUpdate {
                managed_scaling: Some(ManagedScaling {
                    target_capacity: Some(60),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )
        .unwrap();
        apply_update(
            &mut r,
            Some(&AutoScalingGroupProviderUpdate {
                managed_scaling: Some(ManagedScaling {
                    instance_warmup_period: Some(10),
                    ..Default::default()
                }),
                managed_draining: Some(ManagedDraining::Disabled),
                ..Default::default()
            }),
        )
        .unwrap();
        let a = r.provider.auto_scaling_group_provider.clone().unwrap();
        let s = a.managed_scaling.unwrap();
        assert_eq!(s.target_capacity, Some(60));
        assert_eq!(s.instance_warmup_period, Some(10));
        assert_eq!(s.maximum_scaling_step_size, Some(10_000));
        assert_eq!(a.auto_scaling_group_arn, "g");
        assert_eq!(a.managed_draining, Some(ManagedDraining::Disabled));
        assert_eq!(
            a.managed_termination_protection,
            Some(ManagedTerminationProtection::Disabled)
        );
        assert_eq!(
            r.provider.update_status,
            Some(CapacityProviderUpdateStatus::UpdateComplete)
        );
        assert!(apply_update(&mut r, None).is_err());
    }

    #[test]
    fn delete_fails_while_used_then_goes_inactive_then_missing() {
        let mut r = create("cp", "a".into(), Some(&asg("g")), Vec::new()).unwrap();
        let o = decide_delete(&["prod".into()], &[]);
        apply_delete(&mut r, &o, 10.0);
        assert!(r.is_active());
        assert_eq!(
            r.provider.update_status,
            Some(CapacityProviderUpdateStatus::DeleteFailed)
        );
        assert_eq!(
            r.provider.update_status_reason.as_deref(),
            Some("The capacity provider cannot be deleted because it is associated with cluster: prod. Remove the capacity provider from the cluster and try again.")
        );
        assert!(matches!(
            decide_delete(&[], &["c/web".into()]),
            DeleteOutcome::Failed(m) if m.contains("c/web")
        ));
        apply_delete(&mut r, &decide_delete(&[], &[]), 20.0);
        assert!(!r.is_active());
        assert_eq!(r.provider.status, Some(CapacityProviderStatus::Inactive));
        assert_eq!(r.provider.update_status_reason, None);
        assert!(r.visible(25.0, 60.0));
        assert!(!r.visible(80.0, 60.0));
        assert!(r.view(false).tags.is_none());
    }

    #[test]
    fn reservation_follows_ecs_formula() {
        let h = |running, busy, provisioning| ProviderHosts {
            running,
            busy,
            provisioning,
        };
        assert_eq!(reservation(h(0, 0, 0), 1), 100.0);
        assert_eq!(reservation(h(0, 0, 3), 1), 200.0);
        assert_eq!(reservation(h(2, 2, 0), 1), 100.0);
        assert_eq!(reservation(h(4, 1, 0), 1), 25.0);
        assert_eq!(reservation(h(2, 0, 0), 1), 0.0);
        // Waiting tasks ask for at least the minimum step more than what runs.
        assert_eq!(reservation(h(2, 1, 1), 2), 200.0);
        assert_eq!(reservation(h(2, 2, 3), 1), 250.0);
    }

    #[test]
    fn hosts_count_the_providers_running_and_busy_instances() {
        use crate::instances::{Held, InstanceRecord, Reservation};
        let inst = |p: Option<&str>, groups: &[&str], inactive: bool| {
            let mut r = InstanceRecord::default();
            let mut held = Held::new();
            r.set_status(if inactive {
                flotilla_scheduler::InstanceStatus::Inactive
            } else {
                flotilla_scheduler::InstanceStatus::Active
            });
            r.instance.capacity_provider_name = p.map(str::to_string);
            for (i, g) in groups.iter().enumerate() {
                held.insert(
                    format!("t{i}").into(),
                    Reservation {
                        group: (*g).into(),
                        ..Default::default()
                    },
                );
            }
            (r, held)
        };
        let all = [
            inst(Some("blue"), &["service:web"], false),
            inst(Some("blue"), &["service:agent"], false),
            inst(Some("blue"), &[], false),
            inst(Some("blue"), &["service:web"], true),
            inst(Some("green"), &["service:web"], false),
            inst(None, &["family:x"], false),
        ];
        let daemons = ["service:agent".to_string()].into_iter().collect();
        let h = hosts(all.iter().map(|(r, h)| (r, h)), "blue", &daemons);
        assert_eq!(
            h,
            ProviderHosts {
                running: 3,
                busy: 1,
                provisioning: 0
            }
        );
        assert!((reservation(h, 1) - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            hosts(all.iter().map(|(r, h)| (r, h)), "none", &daemons),
            ProviderHosts::default()
        );
    }

    #[test]
    fn builtins() {
        assert!(is_builtin("FARGATE") && is_builtin("FARGATE_SPOT") && !is_builtin("fargate"));
        assert_eq!(
            builtin("FARGATE_SPOT", "arn".into()).r#type,
            Some(CapacityProviderType::FargateSpot)
        );
    }
}
