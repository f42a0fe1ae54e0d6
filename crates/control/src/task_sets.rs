//! Task sets: the units of an `EXTERNAL` or `CODE_DEPLOY` service (its deployment controller is
//! not ECS's rolling update). Each set has its own task definition, launch, network, load
//! balancers and registries, and a `scale` (a percentage of the service's `desiredCount`); the
//! service loop keeps `computedDesiredCount = ceil(desiredCount * scale / 100)` tasks of each
//! running, with the set's id as their `startedBy`.
//!
//! A set is stored inside its service's record ([`crate::services::ServiceRecord::task_sets`]),
//! so every change that touches a set and the service together (UpdateServicePrimaryTaskSet
//! moving the service's task definition, UpdateService's desired count changing every set's
//! computed count, the loop's counts) is one compare-and-swap on one key.
//!
//! Lifecycle: CreateTaskSet makes an ACTIVE set; UpdateServicePrimaryTaskSet makes one PRIMARY
//! (the previous primary goes ACTIVE); DeleteTaskSet makes it DRAINING (a PRIMARY one only with
//! `force`); the loop stops a DRAINING set's tasks and removes the set once none is left.

use crate::services::deployment_digits;
use flotilla_model::arn::ArnContext;
use flotilla_model::shapes::{
    CapacityProviderStrategyItem, LaunchType, LoadBalancer, NetworkConfiguration, Scale, ScaleUnit,
    Service, ServiceRegistry, StabilityStatus, Tag, TaskSet,
};
use flotilla_model::{EcsError, ErrorCode};
use serde::{Deserialize, Serialize};

/// How many task sets a service may have (ECS's limit; DRAINING ones count).
pub const MAX_TASK_SETS: usize = 5;

/// The status of a task set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TaskSetStatus {
    /// Serving production traffic; the service shows its task definition and launch.
    Primary,
    /// Not the primary.
    #[default]
    Active,
    /// Deleted: its tasks are being stopped and deregistered.
    Draining,
}

impl TaskSetStatus {
    /// The wire string.
    pub fn as_ecs_str(self) -> &'static str {
        match self {
            TaskSetStatus::Primary => "PRIMARY",
            TaskSetStatus::Active => "ACTIVE",
            TaskSetStatus::Draining => "DRAINING",
        }
    }
}

/// A stored task set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSetRecord {
    /// `ecs-svc/<19 digits>`; its tasks carry it as `startedBy`.
    pub id: String,
    /// Its ARN ([`task_set_arn`]).
    pub arn: String,
    /// PRIMARY, ACTIVE or DRAINING.
    pub status: TaskSetStatus,
    /// The task definition ARN.
    pub task_definition: String,
    /// The launch type (when not launched by a capacity provider strategy).
    #[serde(default)]
    pub launch_type: Option<LaunchType>,
    /// The capacity provider strategy, if any.
    #[serde(default)]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    /// Fargate platform version and family.
    #[serde(default)]
    pub platform_version: Option<String>,
    /// Fargate platform family.
    #[serde(default)]
    pub platform_family: Option<String>,
    /// Network configuration.
    #[serde(default)]
    pub network_configuration: Option<NetworkConfiguration>,
    /// Load balancers its tasks are registered with.
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancer>,
    /// Cloud Map registries its tasks are registered in.
    #[serde(default)]
    pub service_registries: Vec<ServiceRegistry>,
    /// `scale.value`, percent (0 to 100).
    pub scale: f64,
    /// `ceil(desiredCount * scale / 100)`, or 0 once DRAINING.
    pub computed_desired_count: u32,
    /// Tasks PENDING (observed by the loop).
    #[serde(default)]
    pub pending_count: u32,
    /// Tasks RUNNING (observed by the loop).
    #[serde(default)]
    pub running_count: u32,
    /// STEADY_STATE or STABILIZING.
    #[serde(default)]
    pub steady: bool,
    /// When the stability status last changed (epoch seconds).
    pub stability_at: f64,
    /// `externalId`.
    #[serde(default)]
    pub external_id: Option<String>,
    /// `startedBy` of the set (`CODE_DEPLOY` for one CodeDeploy made; unset for EXTERNAL).
    #[serde(default)]
    pub started_by: Option<String>,
    /// The CreateTaskSet `clientToken`.
    #[serde(default)]
    pub client_token: Option<String>,
    /// Tags (TagResource and UntagResource change them through the service's record).
    #[serde(default)]
    pub tags: Option<Vec<Tag>>,
    /// Created (epoch seconds).
    pub created_at: f64,
    /// Last changed (epoch seconds).
    pub updated_at: f64,
}

/// `ceil(desired * scale / 100)`, with `scale` in percent; a product a rounding error above a
/// whole number counts as that number (`3 * 33.333333333333336` is 100).
pub fn computed_desired_count(desired: u32, scale: f64) -> u32 {
    let exact = f64::from(desired) * scale / 100.0;
    let rounded = (exact - 1e-9).ceil().max(0.0);
    if rounded >= f64::from(u32::MAX) {
        return u32::MAX;
    }
    // In range and whole: the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = rounded as u32;
    n
}

/// Checks a `scale` as ECS does: a unit of PERCENT and a value from 0 to 100.
pub fn check_scale(scale: &Scale) -> Result<f64, EcsError> {
    if scale.unit.is_some_and(|u| u != ScaleUnit::Percent) {
        return Err(EcsError::invalid_parameter("Scale unit must be PERCENT."));
    }
    if !scale.value.is_finite() || !(0.0..=100.0).contains(&scale.value) {
        return Err(EcsError::invalid_parameter(
            "Scale value must be between 0 and 100.",
        ));
    }
    Ok(scale.value)
}

/// `arn:aws:ecs:REGION:ACCOUNT:task-set/CLUSTER/SERVICE/ecs-svc/DIGITS`.
pub fn task_set_arn(arns: &ArnContext, cluster: &str, service: &str, id: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:task-set/{cluster}/{service}/ecs-svc/{}",
        arns.region,
        arns.account,
        deployment_digits(id)
    )
}

/// ECS's `TaskSetNotFoundException`.
pub fn task_set_not_found() -> EcsError {
    EcsError::new(
        ErrorCode::TaskSetNotFoundException,
        "The specified task set wasn't found. You can view your available task sets with DescribeTaskSets.",
    )
}

/// ECS's refusal of a task set operation on a service whose deployment controller is ECS.
pub fn not_external() -> EcsError {
    EcsError::invalid_parameter(
        "Amazon ECS only supports task set management on services configured to use external deployment controllers.",
    )
}

/// The index of the set a request names: its id (`ecs-svc/...`) or its ARN.
pub fn find(sets: &[TaskSetRecord], value: &str) -> Option<usize> {
    sets.iter().position(|s| s.id == value || s.arn == value)
}

/// Refuses a new set when the service already has [`MAX_TASK_SETS`], in ECS's words.
pub fn check_room(sets: &[TaskSetRecord]) -> Result<(), EcsError> {
    if sets.len() >= MAX_TASK_SETS {
        return Err(EcsError::invalid_parameter(format!(
            "{} deployments exist on the service. Unable to create new TaskSet since this exceeds the maximum limit.",
            sets.len()
        )));
    }
    Ok(())
}

/// UpdateTaskSet: a new scale and the computed count it gives (a DRAINING set is not found:
/// it is being deleted).
pub fn rescale(
    set: &mut TaskSetRecord,
    scale: f64,
    desired: u32,
    now: f64,
) -> Result<(), EcsError> {
    if set.status == TaskSetStatus::Draining {
        return Err(task_set_not_found());
    }
    set.scale = scale;
    set.computed_desired_count = computed_desired_count(desired, scale);
    set.updated_at = now;
    mark(set, false, now);
    Ok(())
}

/// Every non-DRAINING set's computed count for a new service desired count (UpdateService).
pub fn follow_desired(sets: &mut [TaskSetRecord], desired: u32, now: f64) {
    for s in sets
        .iter_mut()
        .filter(|s| s.status != TaskSetStatus::Draining)
    {
        let c = computed_desired_count(desired, s.scale);
        if c != s.computed_desired_count {
            s.computed_desired_count = c;
            s.updated_at = now;
            mark(s, false, now);
        }
    }
}

/// UpdateServicePrimaryTaskSet: the set at `index` becomes PRIMARY, the previous primary
/// ACTIVE. A DRAINING set cannot be made primary (it is being deleted: not found).
pub fn make_primary(sets: &mut [TaskSetRecord], index: usize, now: f64) -> Result<(), EcsError> {
    if sets[index].status == TaskSetStatus::Draining {
        return Err(task_set_not_found());
    }
    if sets[index].status == TaskSetStatus::Primary {
        return Ok(());
    }
    for (i, s) in sets.iter_mut().enumerate() {
        if i == index {
            s.status = TaskSetStatus::Primary;
            s.updated_at = now;
        } else if s.status == TaskSetStatus::Primary {
            s.status = TaskSetStatus::Active;
            s.updated_at = now;
        }
    }
    Ok(())
}

/// What the service shows of its PRIMARY set: its task definition, launch, platform, network,
/// load balancers and registries (UpdateServicePrimaryTaskSet).
pub fn promote(service: &mut Service, primary: &TaskSetRecord) {
    service.task_definition = Some(primary.task_definition.clone());
    service.launch_type = primary.launch_type;
    service.capacity_provider_strategy = (!primary.capacity_provider_strategy.is_empty())
        .then(|| primary.capacity_provider_strategy.clone());
    service.platform_version = primary.platform_version.clone();
    service.platform_family = primary.platform_family.clone();
    service.network_configuration = primary.network_configuration.clone();
    service.load_balancers = Some(primary.load_balancers.clone());
    service.service_registries = Some(primary.service_registries.clone());
}

/// What DeleteTaskSet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The set is now DRAINING.
    Draining,
    /// It was DRAINING already (the operation is idempotent).
    AlreadyDraining,
}

/// DeleteTaskSet: the set goes DRAINING (its computed count 0); the PRIMARY set only with
/// `force`, as ECS refuses it otherwise.
pub fn delete(set: &mut TaskSetRecord, force: bool, now: f64) -> Result<Deletion, EcsError> {
    match set.status {
        TaskSetStatus::Draining => Ok(Deletion::AlreadyDraining),
        TaskSetStatus::Primary if !force => Err(EcsError::invalid_parameter(
            "Primary TaskSet cannot be deleted",
        )),
        _ => {
            set.status = TaskSetStatus::Draining;
            set.computed_desired_count = 0;
            set.updated_at = now;
            mark(set, false, now);
            Ok(Deletion::Draining)
        }
    }
}

/// Sets the stability status, stamping when it changed.
pub fn mark(set: &mut TaskSetRecord, steady: bool, now: f64) {
    if set.steady != steady {
        set.steady = steady;
        set.stability_at = now;
    }
}

/// The `TaskSet` shape as ECS answers it (`tags` only when asked for).
pub fn view(
    set: &TaskSetRecord,
    service_arn: &str,
    cluster_arn: &str,
    include_tags: bool,
) -> TaskSet {
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    TaskSet {
        id: Some(set.id.clone()),
        task_set_arn: Some(set.arn.clone()),
        service_arn: Some(service_arn.to_string()),
        cluster_arn: Some(cluster_arn.to_string()),
        started_by: set.started_by.clone(),
        external_id: set.external_id.clone(),
        status: Some(set.status.as_ecs_str().to_string()),
        task_definition: Some(set.task_definition.clone()),
        computed_desired_count: count(set.computed_desired_count),
        pending_count: count(set.pending_count),
        running_count: count(set.running_count),
        created_at: Some(set.created_at),
        updated_at: Some(set.updated_at),
        launch_type: set.launch_type,
        capacity_provider_strategy: (!set.capacity_provider_strategy.is_empty())
            .then(|| set.capacity_provider_strategy.clone()),
        platform_version: set.platform_version.clone(),
        platform_family: set.platform_family.clone(),
        network_configuration: set.network_configuration.clone(),
        load_balancers: Some(set.load_balancers.clone()),
        service_registries: Some(set.service_registries.clone()),
        scale: Some(Scale {
            value: set.scale,
            unit: Some(ScaleUnit::Percent),
        }),
        stability_status: Some(if set.steady {
            StabilityStatus::SteadyState
        } else {
            StabilityStatus::Stabilizing
        }),
        stability_status_at: Some(set.stability_at),
        tags: include_tags.then(|| set.tags.clone().unwrap_or_default()),
        ..TaskSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(id: &str, status: TaskSetStatus) -> TaskSetRecord {
        TaskSetRecord {
            id: id.into(),
            status,
            task_definition: format!("td-{id}"),
            scale: 100.0,
            ..TaskSetRecord::default()
        }
    }

    #[test]
    fn computed_counts_round_up() {
        assert_eq!(computed_desired_count(10, 30.0), 3);
        assert_eq!(computed_desired_count(4, 30.0), 2);
        assert_eq!(computed_desired_count(3, 100.0 / 3.0), 1);
        assert_eq!(computed_desired_count(3, 0.0), 0);
        assert_eq!(computed_desired_count(0, 100.0), 0);
        assert_eq!(computed_desired_count(7, 0.1), 1);
        assert_eq!(computed_desired_count(10, 70.0), 7);
    }

    proptest! {
        #[test]
        fn computed_count_is_the_least_whole_count_covering_the_scale(
            desired in 0u32..10_000, hundredths in 0u32..=10_000
        ) {
            let scale = f64::from(hundredths) / 100.0;
            let c = computed_desired_count(desired, scale);
            // Exactly in integers: c is ceil(desired * hundredths / 10000).
            let exact = (u64::from(desired) * u64::from(hundredths)).div_ceil(10_000);
            prop_assert_eq!(u64::from(c), exact);
            prop_assert!(c <= desired);
        }
    }

    #[test]
    fn scale_is_checked() {
        let s = |value| Scale {
            value,
            unit: Some(ScaleUnit::Percent),
        };
        assert_eq!(check_scale(&s(50.0)).ok(), Some(50.0));
        assert!(check_scale(&s(100.5)).is_err());
        assert!(check_scale(&s(-1.0)).is_err());
        assert!(check_scale(&s(f64::NAN)).is_err());
    }

    #[test]
    fn arns_and_lookup() {
        let a = ArnContext {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        };
        let arn = task_set_arn(&a, "c", "web", "ecs-svc/42");
        assert_eq!(
            arn,
            "arn:aws:ecs:us-east-1:123456789012:task-set/c/web/ecs-svc/42"
        );
        let mut sets = vec![
            set("ecs-svc/1", TaskSetStatus::Active),
            set("ecs-svc/42", TaskSetStatus::Active),
        ];
        sets[1].arn = arn.clone();
        assert_eq!(find(&sets, &arn), Some(1));
        assert_eq!(find(&sets, "ecs-svc/1"), Some(0));
        assert_eq!(find(&sets, "ecs-svc/7"), None);
    }

    #[test]
    fn primary_moves_and_the_old_one_goes_active() {
        let mut sets = vec![
            set("a", TaskSetStatus::Primary),
            set("b", TaskSetStatus::Active),
            set("c", TaskSetStatus::Draining),
        ];
        assert!(make_primary(&mut sets, 1, 5.0).is_ok());
        assert_eq!(sets[0].status, TaskSetStatus::Active);
        assert_eq!(sets[1].status, TaskSetStatus::Primary);
        assert_eq!(
            make_primary(&mut sets, 2, 6.0).map_err(|e| e.code),
            Err(ErrorCode::TaskSetNotFoundException)
        );
    }

    #[test]
    fn deleting_the_primary_needs_force_and_deleting_is_idempotent() {
        let mut p = set("a", TaskSetStatus::Primary);
        p.computed_desired_count = 3;
        let e = delete(&mut p, false, 1.0).err();
        assert_eq!(
            e.map(|e| e.message),
            Some("Primary TaskSet cannot be deleted".to_string())
        );
        assert_eq!(delete(&mut p, true, 1.0).ok(), Some(Deletion::Draining));
        assert_eq!(p.computed_desired_count, 0);
        assert_eq!(
            delete(&mut p, false, 2.0).ok(),
            Some(Deletion::AlreadyDraining)
        );
        let mut a = set("b", TaskSetStatus::Active);
        assert_eq!(delete(&mut a, false, 1.0).ok(), Some(Deletion::Draining));
    }

    #[test]
    fn desired_count_changes_every_live_set() {
        let mut sets = vec![
            set("a", TaskSetStatus::Primary),
            set("b", TaskSetStatus::Active),
        ];
        sets[1].scale = 50.0;
        sets.push(set("c", TaskSetStatus::Draining));
        follow_desired(&mut sets, 3, 1.0);
        let counts: Vec<u32> = sets.iter().map(|s| s.computed_desired_count).collect();
        assert_eq!(counts, [3, 2, 0]);
        assert!(rescale(&mut sets[1], 0.0, 3, 2.0).is_ok());
        assert_eq!(sets[1].computed_desired_count, 0);
        assert!(rescale(&mut sets[2], 10.0, 3, 2.0).is_err());
    }

    #[test]
    fn room_for_five() {
        let sets: Vec<TaskSetRecord> = (0..5)
            .map(|i| set(&i.to_string(), TaskSetStatus::Active))
            .collect();
        assert!(check_room(&sets[..4]).is_ok());
        assert_eq!(
            check_room(&sets).err().map(|e| e.message),
            Some("5 deployments exist on the service. Unable to create new TaskSet since this exceeds the maximum limit.".to_string())
        );
    }
}
