//! [`StoreTraffic`]: the ECS service scheduler's [`Traffic`] over the ELBv2 and Cloud Map
//! records in the store (`flotilla_elbv2::targets`, `flotilla_servicediscovery::instances`).

use flotilla_control::traffic::TargetType;
use flotilla_controllers::traffic::{TargetGroupInfo, TargetHealth, TargetState, Traffic};
use flotilla_elbv2::health::State;
use flotilla_elbv2::record::TargetKind;
use flotilla_elbv2::targets::{self, TargetRef};
use flotilla_elbv2::weights;
use flotilla_elbv2::Elbv2Error;
use flotilla_model::EcsError;
use flotilla_servicediscovery::{instances, keys, SdError};
use flotilla_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The scheduler's view of load balancers and Cloud Map, on the store.
pub struct StoreTraffic {
    store: Arc<dyn Store>,
}

impl StoreTraffic {
    /// Over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreTraffic { store }
    }
}

fn elb(e: Elbv2Error) -> EcsError {
    EcsError::server(format!("Elastic Load Balancing: {e}"))
}

fn sd(e: SdError) -> EcsError {
    EcsError::server(format!("Cloud Map: {e}"))
}

fn refs(targets: &[(String, u16)]) -> Vec<TargetRef> {
    targets
        .iter()
        .map(|(id, port)| TargetRef {
            id: id.clone(),
            port: Some(*port),
            availability_zone: None,
        })
        .collect()
}

fn state(s: State) -> TargetState {
    match s {
        State::Initial => TargetState::Initial,
        State::Healthy => TargetState::Healthy,
        State::Unhealthy => TargetState::Unhealthy,
        State::Draining => TargetState::Draining,
        State::Unused => TargetState::Unused,
        State::Unavailable => TargetState::Unavailable,
    }
}

#[async_trait::async_trait]
impl Traffic for StoreTraffic {
    async fn target_group(&self, arn: &str) -> Result<Option<TargetGroupInfo>, EcsError> {
        let snap = targets::snapshot(self.store.as_ref()).await.map_err(elb)?;
        Ok(snap
            .target_groups
            .iter()
            .find(|g| g.arn == arn)
            .map(|g| TargetGroupInfo {
                target_type: match g.target_type {
                    TargetKind::Ip => TargetType::Ip,
                    TargetKind::Instance => TargetType::Instance,
                },
                has_load_balancer: g.in_use,
            }))
    }

    async fn target_health(&self, arn: &str) -> Result<Vec<TargetHealth>, EcsError> {
        match targets::health(self.store.as_ref(), arn).await {
            Ok(v) => Ok(v
                .into_iter()
                .map(|t| TargetHealth {
                    id: t.id,
                    port: t.port,
                    state: state(t.state),
                })
                .collect()),
            // A group deleted under the service: nothing is registered in it.
            Err(e) if e.code() == "TargetGroupNotFound" => Ok(Vec::new()),
            Err(e) => Err(elb(e)),
        }
    }

    async fn register_targets(
        &self,
        arn: &str,
        targets: &[(String, u16)],
        now: f64,
    ) -> Result<(), EcsError> {
        targets::register(self.store.as_ref(), arn, &refs(targets), now)
            .await
            .map_err(elb)
    }

    async fn deregister_targets(
        &self,
        arn: &str,
        list: &[(String, u16)],
        now: f64,
    ) -> Result<f64, EcsError> {
        match targets::deregister(self.store.as_ref(), arn, &refs(list), now).await {
            Ok(until) => Ok(until),
            // Gone already (a user deregistered it, or the group was deleted): nothing to drain.
            Err(e) if matches!(e.code(), "InvalidTarget" | "TargetGroupNotFound") => Ok(now),
            Err(e) => Err(elb(e)),
        }
    }

    async fn listener_rule(&self, arn: &str) -> Result<Option<Vec<(String, u32)>>, EcsError> {
        Ok(weights::rule_forward(self.store.as_ref(), arn)
            .await
            .map_err(elb)?
            .map(|r| {
                r.target_groups
                    .into_iter()
                    .map(|w| (w.target_group_arn, w.weight))
                    .collect()
            }))
    }

    async fn set_rule_weights(&self, arn: &str, list: &[(String, u32)]) -> Result<bool, EcsError> {
        weights::set_rule_weights(self.store.as_ref(), arn, list)
            .await
            .map_err(elb)
    }

    async fn registry_exists(&self, service_arn: &str) -> Result<bool, EcsError> {
        Ok(instances::service(self.store.as_ref(), service_arn)
            .await
            .map_err(sd)?
            .is_some())
    }

    async fn registry_instances(&self, service_arn: &str) -> Result<BTreeSet<String>, EcsError> {
        let id = instances::service_id_of(service_arn);
        Ok(keys::instances_of(self.store.as_ref(), id)
            .await
            .map_err(sd)?
            .into_iter()
            .map(|i| i.id)
            .collect())
    }

    async fn register_instance(
        &self,
        service_arn: &str,
        instance_id: &str,
        attributes: &BTreeMap<String, String>,
        now: f64,
    ) -> Result<(), EcsError> {
        instances::register(
            self.store.as_ref(),
            service_arn,
            instance_id,
            attributes.clone(),
            true,
            now,
        )
        .await
        .map_err(sd)
    }

    async fn deregister_instance(
        &self,
        service_arn: &str,
        instance_id: &str,
    ) -> Result<(), EcsError> {
        instances::deregister(self.store.as_ref(), service_arn, instance_id)
            .await
            .map_err(sd)
    }

    fn leader_loops(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![tokio::spawn(crate::checker::run(self.store.clone()))]
    }
}
