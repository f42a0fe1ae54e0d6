//! [`AutoScaling`]: the Application Auto Scaling operations, on the store. Each handler checks
//! the target it names ([`crate::resource::check`]), applies the rules of [`crate::policy`] and
//! writes with a compare-and-swap ([`flotilla_store::cas::retry`]). A target tracking policy's
//! alarms are defined in CloudWatch through the region's [`AlarmWriter`], as the service does.

use crate::error::AasError;
use crate::policy::{self, ActivityRecord, AlarmSide, PolicyRecord, Rule, TargetRecord};
use crate::resource::{self, ServiceId, ACTIVITIES, POLICIES, TARGETS};
use crate::shapes::*;
use base64::Engine as _;
use flotilla_control::services::{service_key, ServiceRecord, ServiceStatus};
use flotilla_edge::json::validate::Model;
use flotilla_edge::json::{JsonApi, JsonCall, JsonError};
use flotilla_metrics::{AlarmWriter, MetricReader};
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, KeyValue, Store, Txn};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Application Auto Scaling on one region's store, metrics and alarms.
pub struct AutoScaling {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) region: String,
    pub(crate) account: String,
    pub(crate) metrics: Arc<dyn MetricReader>,
    pub(crate) alarms: Arc<dyn AlarmWriter>,
    model: Model,
}

/// The operations served (the model's others are refused by name).
const SERVED: &[&str] = &[
    "RegisterScalableTarget",
    "DescribeScalableTargets",
    "DeregisterScalableTarget",
    "PutScalingPolicy",
    "DescribeScalingPolicies",
    "DeleteScalingPolicy",
    "DescribeScalingActivities",
];

/// The most items a Describe page holds (the model's `MaxResults` limit).
const MAX_RESULTS: i32 = 50;

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, AasError> {
    serde_json::to_value(v)
        .map_err(|e| AasError::internal(format!("could not encode the response: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T, AasError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| AasError::internal(format!("a stored record is unreadable: {e}")))
}

pub(crate) fn encode<T: serde::Serialize>(r: &T) -> Result<Vec<u8>, AasError> {
    serde_json::to_vec(r).map_err(|e| AasError::internal(format!("could not encode a record: {e}")))
}

/// The role the service uses for ECS services (its service-linked role).
fn service_linked_role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService")
}

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[rand::random::<usize>() % 16]))
        .collect()
}

/// A page of `items` (sorted by their key) after `token`, at most `max` long, and the token of
/// the next page.
fn page<T>(
    items: Vec<(String, T)>,
    token: Option<&str>,
    max: Option<i32>,
) -> Result<(Vec<T>, Option<String>), AasError> {
    let max = match max {
        None => MAX_RESULTS,
        Some(n) if (1..=MAX_RESULTS).contains(&n) => n,
        Some(n) => {
            return Err(AasError::validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and {MAX_RESULTS}"
            )))
        }
    };
    let after = match token {
        None => None,
        Some(t) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(AasError::bad_token)?,
        ),
    };
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let n = usize::try_from(max).unwrap_or(50);
    let next = (rest.len() > n)
        .then(|| {
            rest.get(n - 1)
                .map(|(k, _)| base64::engine::general_purpose::STANDARD.encode(k))
        })
        .flatten();
    rest.truncate(n);
    Ok((rest.into_iter().map(|(_, v)| v).collect(), next))
}

impl AutoScaling {
    /// Application Auto Scaling on `store`, for ARNs of `region`/`account`, reading alarms from
    /// `metrics` and defining target tracking alarms with `alarms`.
    pub fn new(
        store: Arc<dyn Store>,
        region: impl Into<String>,
        account: impl Into<String>,
        metrics: Arc<dyn MetricReader>,
        alarms: Arc<dyn AlarmWriter>,
    ) -> Self {
        AutoScaling {
            store,
            region: region.into(),
            account: account.into(),
            metrics,
            alarms,
            // The model is written by the build script from the vendored one: it parses.
            model: Model::parse(crate::MODEL_JSON).unwrap_or_else(|_| Model::empty()),
        }
    }

    async fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, AasError> {
        let page = self.store.list(prefix, None, 0).await?;
        page.items
            .iter()
            .map(|kv| Ok((kv.key.clone(), decode(kv)?)))
            .collect()
    }

    async fn target(&self, id: &ServiceId) -> Result<Option<(TargetRecord, u64)>, AasError> {
        match self.store.get(&id.target_key()).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    async fn register_scalable_target(
        &self,
        req: RegisterScalableTargetRequest,
        now: f64,
    ) -> Result<RegisterScalableTargetResponse, AasError> {
        let id = resource::check(
            req.service_namespace,
            &req.resource_id,
            req.scalable_dimension,
        )?;
        for (name, v) in [
            ("MinCapacity", req.min_capacity),
            ("MaxCapacity", req.max_capacity),
        ] {
            if let Some(n) = v.filter(|n| *n < 0) {
                return Err(AasError::validation(format!(
                    "{name} must be 0 or more, not {n}."
                )));
            }
        }
        let service = self
            .store
            .get(&service_key(&id.cluster, &id.service))
            .await?;
        let active = match &service {
            Some(kv) => decode::<ServiceRecord>(kv)?.status == ServiceStatus::Active,
            None => false,
        };
        if !active {
            return Err(AasError::validation(format!(
                "ECS service doesn't exist: {}",
                id.resource_id()
            )));
        }
        let key = id.target_key();
        let out = retry(self.store.as_ref(), || async {
            let (record, compare) = match self.target(&id).await? {
                Some((mut r, rev)) => {
                    let t = &mut r.target;
                    t.min_capacity = req.min_capacity.unwrap_or(t.min_capacity);
                    t.max_capacity = req.max_capacity.unwrap_or(t.max_capacity);
                    if let Some(s) = &req.suspended_state {
                        let mut cur = t.suspended_state.clone().unwrap_or_default();
                        cur.dynamic_scaling_in_suspended = s.dynamic_scaling_in_suspended.or(cur.dynamic_scaling_in_suspended);
                        cur.dynamic_scaling_out_suspended = s.dynamic_scaling_out_suspended.or(cur.dynamic_scaling_out_suspended);
                        cur.scheduled_scaling_suspended = s.scheduled_scaling_suspended.or(cur.scheduled_scaling_suspended);
                        t.suspended_state = Some(cur);
                    }
                    if let Some(role) = &req.role_arn {
                        t.role_arn = role.clone();
                    }
                    (r, Compare::ModRevision(key.clone(), rev))
                }
                None => {
                    let (Some(min), Some(max)) = (req.min_capacity, req.max_capacity) else {
                        return Err(AasError::validation(
                            "MinCapacity and MaxCapacity are required to register a new scalable target.",
                        ));
                    };
                    let target = ScalableTarget {
                        service_namespace: ServiceNamespace::Ecs,
                        resource_id: id.resource_id(),
                        scalable_dimension: ScalableDimension::EcsServiceDesiredCount,
                        min_capacity: min,
                        max_capacity: max,
                        predicted_capacity: None,
                        role_arn: req.role_arn.clone().unwrap_or_else(|| service_linked_role(&self.account)),
                        creation_time: flotilla_control::timestamp(now),
                        suspended_state: Some(req.suspended_state.clone().unwrap_or(SuspendedState {
                            dynamic_scaling_in_suspended: Some(false),
                            dynamic_scaling_out_suspended: Some(false),
                            scheduled_scaling_suspended: Some(false),
                        })),
                        scalable_target_arn: Some(format!(
                            "arn:aws:application-autoscaling:{}:{}:scalable-target/{}",
                            self.region,
                            self.account,
                            random_hex(36)
                        )),
                    };
                    (TargetRecord { target }, Compare::Absent(key.clone()))
                }
            };
            if record.target.min_capacity > record.target.max_capacity {
                return Err(AasError::validation(format!(
                    "Minimum capacity cannot be greater than maximum capacity (MinCapacity {}, MaxCapacity {}).",
                    record.target.min_capacity, record.target.max_capacity
                )));
            }
            let txn = Txn::new().when(compare).put(key.clone(), encode(&record)?);
            Ok(Attempt::Commit(txn, record))
        })
        .await?
        .map_err(|_| AasError::contended())?;
        tracing::info!(resource = %id.resource_id(), min = out.target.min_capacity, max = out.target.max_capacity, "scalable target registered");
        Ok(RegisterScalableTargetResponse {
            scalable_target_arn: out.target.scalable_target_arn,
        })
    }

    async fn describe_scalable_targets(
        &self,
        req: DescribeScalableTargetsRequest,
        _now: f64,
    ) -> Result<DescribeScalableTargetsResponse, AasError> {
        resource::check_namespace(req.service_namespace)?;
        let ids = req.resource_ids.clone().unwrap_or_default();
        let all: Vec<(String, TargetRecord)> = self.list(TARGETS).await?;
        let items: Vec<(String, ScalableTarget)> = all
            .into_iter()
            .filter(|(_, r)| ids.is_empty() || ids.contains(&r.target.resource_id))
            .filter(|(_, r)| {
                req.scalable_dimension
                    .is_none_or(|d| d == r.target.scalable_dimension)
            })
            .map(|(k, r)| (k, r.target))
            .collect();
        let (targets, next) = page(items, req.next_token.as_deref(), req.max_results)?;
        Ok(DescribeScalableTargetsResponse {
            scalable_targets: Some(targets),
            next_token: next,
        })
    }

    async fn deregister_scalable_target(
        &self,
        req: DeregisterScalableTargetRequest,
        _now: f64,
    ) -> Result<Value, AasError> {
        let id = resource::check(
            req.service_namespace,
            &req.resource_id,
            req.scalable_dimension,
        )?;
        let policies: Vec<(String, PolicyRecord)> = self.list(&id.policies_prefix()).await?;
        let activities = self.store.list(&id.activities_prefix(), None, 0).await?;
        let key = id.target_key();
        let Some((_, rev)) = self.target(&id).await? else {
            return Err(AasError::no_target(&id.resource_id()));
        };
        let mut txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .delete(key);
        for (k, _) in &policies {
            txn = txn.delete(k.clone());
        }
        for kv in &activities.items {
            txn = txn.delete(kv.key.clone());
        }
        if !self.store.txn(txn).await?.is_committed() {
            return Err(AasError::contended());
        }
        self.delete_alarms_of(policies.iter().map(|(_, p)| &p.policy))
            .await?;
        tracing::info!(resource = %id.resource_id(), "scalable target deregistered");
        Ok(serde_json::json!({}))
    }

    /// Deletes the alarms target tracking `policies` created.
    async fn delete_alarms_of<'a>(
        &self,
        policies: impl Iterator<Item = &'a ScalingPolicy>,
    ) -> Result<(), AasError> {
        let names: Vec<String> = policies
            .filter(|p| p.policy_type == PolicyType::TargetTrackingScaling)
            .flat_map(|p| p.alarms.iter().flatten().map(|a| a.alarm_name.clone()))
            .collect();
        if !names.is_empty() {
            self.alarms.delete_alarms(&names).await?;
        }
        Ok(())
    }

    /// The alarms whose actions name `policy_arn` (a step policy's), as `Alarm` shapes.
    async fn alarms_naming(&self, policy_arn: &str) -> Result<Vec<Alarm>, AasError> {
        Ok(self
            .metrics
            .alarms()
            .await?
            .into_iter()
            .filter(|a| a.definition.alarm_actions.iter().any(|x| x == policy_arn))
            .map(|a| Alarm {
                alarm_name: a.definition.name.clone(),
                alarm_arn: a.definition.arn.clone(),
            })
            .collect())
    }

    async fn put_scaling_policy(
        &self,
        req: PutScalingPolicyRequest,
        now: f64,
    ) -> Result<PutScalingPolicyResponse, AasError> {
        let id = resource::check(
            req.service_namespace,
            &req.resource_id,
            req.scalable_dimension,
        )?;
        let rule = policy::check(&req)?;
        if self.target(&id).await?.is_none() {
            return Err(AasError::no_target(&id.resource_id()));
        }
        let key = id.policy_key(&req.policy_name);
        let existing: Option<(PolicyRecord, u64)> = match self.store.get(&key).await? {
            Some(kv) => Some((decode(&kv)?, kv.mod_revision)),
            None => None,
        };
        let arn = existing
            .as_ref()
            .map(|(p, _)| p.policy.policy_arn.clone())
            .unwrap_or_else(|| {
                policy::policy_arn(
                    &self.region,
                    &self.account,
                    &uuid::Uuid::new_v4().to_string(),
                    &id,
                    &req.policy_name,
                )
            });
        let old_alarms: Vec<Alarm> = existing
            .as_ref()
            .filter(|(p, _)| p.policy.policy_type == PolicyType::TargetTrackingScaling)
            .and_then(|(p, _)| p.policy.alarms.clone())
            .unwrap_or_default();
        // A target tracking policy keeps the names of its alarms across updates.
        let alarms: Option<Vec<Alarm>> = match &rule {
            Rule::Tracking(tracking, metric) => {
                let name_of = |side| {
                    old_alarms
                        .iter()
                        .map(|a| a.alarm_name.clone())
                        .find(|n| policy::side_of(n) == Some(side))
                        .unwrap_or_else(|| {
                            policy::alarm_name(&id, side, &uuid::Uuid::new_v4().to_string())
                        })
                };
                let names = vec![name_of(AlarmSide::High), name_of(AlarmSide::Low)];
                let defs = policy::tracking_alarms(
                    &id,
                    &arn,
                    &names,
                    tracking,
                    *metric,
                    self.metrics.resolution(),
                    &self.region,
                    &self.account,
                    now,
                );
                for d in &defs {
                    self.alarms.put_alarm(d.clone(), now).await?;
                }
                Some(
                    defs.iter()
                        .map(|d| Alarm {
                            alarm_name: d.name.clone(),
                            alarm_arn: d.arn.clone(),
                        })
                        .collect(),
                )
            }
            Rule::Steps(_) => None,
        };
        let policy_type = policy::policy_type(&req)?;
        let record = PolicyRecord {
            policy: ScalingPolicy {
                policy_arn: arn.clone(),
                policy_name: req.policy_name.clone(),
                service_namespace: ServiceNamespace::Ecs,
                resource_id: id.resource_id(),
                scalable_dimension: ScalableDimension::EcsServiceDesiredCount,
                policy_type,
                step_scaling_policy_configuration: req.step_scaling_policy_configuration.clone(),
                target_tracking_scaling_policy_configuration: req
                    .target_tracking_scaling_policy_configuration
                    .clone(),
                predictive_scaling_policy_configuration: None,
                alarms: alarms.clone(),
                creation_time: existing
                    .as_ref()
                    .map(|(p, _)| p.policy.creation_time)
                    .unwrap_or_else(|| flotilla_control::timestamp(now)),
            },
        };
        let compare = match &existing {
            Some((_, rev)) => Compare::ModRevision(key.clone(), *rev),
            None => Compare::Absent(key.clone()),
        };
        let committed = self
            .store
            .txn(Txn::new().when(compare).put(key, encode(&record)?))
            .await?
            .is_committed();
        let kept: Vec<String> = alarms
            .iter()
            .flatten()
            .map(|a| a.alarm_name.clone())
            .collect();
        let dropped: Vec<String> = old_alarms
            .iter()
            .map(|a| a.alarm_name.clone())
            .filter(|n| !kept.contains(n))
            .collect();
        if !committed {
            return Err(AasError::contended());
        }
        if !dropped.is_empty() {
            self.alarms.delete_alarms(&dropped).await?;
        }
        tracing::info!(resource = %id.resource_id(), policy = %req.policy_name, "scaling policy put");
        let alarms = match alarms {
            Some(a) => a,
            None => self.alarms_naming(&arn).await?,
        };
        Ok(PutScalingPolicyResponse {
            policy_arn: arn,
            alarms: Some(alarms),
        })
    }

    async fn describe_scaling_policies(
        &self,
        req: DescribeScalingPoliciesRequest,
        _now: f64,
    ) -> Result<DescribeScalingPoliciesResponse, AasError> {
        resource::check_namespace(req.service_namespace)?;
        let prefix = match &req.resource_id {
            Some(r) => ServiceId::parse(r)
                .map(|id| id.policies_prefix())
                .unwrap_or_else(|| format!("{POLICIES}\u{0}")),
            None => POLICIES.to_string(),
        };
        let names = req.policy_names.clone().unwrap_or_default();
        let all: Vec<(String, PolicyRecord)> = self.list(&prefix).await?;
        let items: Vec<(String, ScalingPolicy)> = all
            .into_iter()
            .filter(|(_, p)| names.is_empty() || names.contains(&p.policy.policy_name))
            .filter(|(_, p)| {
                req.scalable_dimension
                    .is_none_or(|d| d == p.policy.scalable_dimension)
            })
            .map(|(k, p)| (k, p.policy))
            .collect();
        let (mut policies, next) = page(items, req.next_token.as_deref(), req.max_results)?;
        for p in &mut policies {
            if p.policy_type == PolicyType::StepScaling {
                p.alarms = Some(self.alarms_naming(&p.policy_arn).await?);
            }
        }
        Ok(DescribeScalingPoliciesResponse {
            scaling_policies: Some(policies),
            next_token: next,
        })
    }

    async fn delete_scaling_policy(
        &self,
        req: DeleteScalingPolicyRequest,
        _now: f64,
    ) -> Result<Value, AasError> {
        let id = resource::check(
            req.service_namespace,
            &req.resource_id,
            req.scalable_dimension,
        )?;
        let key = id.policy_key(&req.policy_name);
        let Some(kv) = self.store.get(&key).await? else {
            return Err(AasError::not_found(format!(
                "No scaling policy found for service namespace: ecs, resource ID: {}, scalable dimension: ecs:service:DesiredCount, policy name: {}",
                id.resource_id(),
                req.policy_name
            )));
        };
        let record: PolicyRecord = decode(&kv)?;
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), kv.mod_revision))
            .delete(key);
        if !self.store.txn(txn).await?.is_committed() {
            return Err(AasError::contended());
        }
        self.delete_alarms_of(std::iter::once(&record.policy))
            .await?;
        tracing::info!(resource = %id.resource_id(), policy = %req.policy_name, "scaling policy deleted");
        Ok(serde_json::json!({}))
    }

    async fn describe_scaling_activities(
        &self,
        req: DescribeScalingActivitiesRequest,
        _now: f64,
    ) -> Result<DescribeScalingActivitiesResponse, AasError> {
        resource::check_namespace(req.service_namespace)?;
        if req.include_not_scaled_activities == Some(true) {
            return Err(AasError::validation(
                "IncludeNotScaledActivities is not served by this Flotilla server: it records the activities that scaled only.",
            ));
        }
        let prefix = match &req.resource_id {
            Some(r) => ServiceId::parse(r)
                .map(|id| id.activities_prefix())
                .unwrap_or_else(|| format!("{ACTIVITIES}\u{0}")),
            None => ACTIVITIES.to_string(),
        };
        let all: Vec<(String, ActivityRecord)> = self.list(&prefix).await?;
        // Newest first: the page key is the activity's start time, reversed.
        let mut items: Vec<(f64, String, ScalingActivity)> = all
            .into_iter()
            .filter(|(_, a)| {
                req.scalable_dimension
                    .is_none_or(|d| d == a.activity.scalable_dimension)
            })
            .map(|(k, a)| (a.activity.start_time, k, a.activity))
            .collect();
        items.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let keyed: Vec<(String, ScalingActivity)> = items
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, a))| (format!("{i:010}"), a))
            .collect();
        let (activities, next) = page(keyed, req.next_token.as_deref(), req.max_results)?;
        Ok(DescribeScalingActivitiesResponse {
            scaling_activities: Some(activities),
            next_token: next,
        })
    }
}

macro_rules! ops {
    ($self:ident, $call:ident; $( $name:literal => $handler:ident ),* $(,)?) => {
        match $call.operation {
            $(
                $name => {
                    let req = $self.model.parse_input($name, $call.input).map_err(AasError::from)?;
                    to_value($self.$handler(req, $call.now).await?)
                }
            )*
            other => Err(AasError::validation(format!(
                "{other} is not supported by this Flotilla server: it serves {}.",
                SERVED.join(", ")
            ))),
        }
    };
}

#[async_trait::async_trait]
impl JsonApi for AutoScaling {
    fn title(&self) -> &'static str {
        "Application Auto Scaling"
    }

    fn signing_name(&self) -> &'static str {
        "application-autoscaling"
    }

    fn target_prefix(&self) -> &'static str {
        "AnyScaleFrontendService"
    }

    fn has_operation(&self, name: &str) -> bool {
        self.model.has_operation(name)
    }

    fn invalid_request(&self, message: String) -> JsonError {
        AasError::validation(message).into()
    }

    fn internal_error(&self, message: String) -> JsonError {
        AasError::internal(message).into()
    }

    async fn dispatch(&self, call: JsonCall<'_>) -> Result<Value, JsonError> {
        let result: Result<Value, AasError> = ops!(self, call;
            "RegisterScalableTarget" => register_scalable_target,
            "DescribeScalableTargets" => describe_scalable_targets,
            "DeregisterScalableTarget" => deregister_scalable_target,
            "PutScalingPolicy" => put_scaling_policy,
            "DescribeScalingPolicies" => describe_scaling_policies,
            "DeleteScalingPolicy" => delete_scaling_policy,
            "DescribeScalingActivities" => describe_scaling_activities,
        );
        result.map_err(JsonError::from)
    }
}
