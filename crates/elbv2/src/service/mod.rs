//! [`Elbv2`]: the operations, on the store, served through
//! [`flotilla_edge::query::AwsQuery`]. Each handler is thin: read the records, apply a rule of
//! [`crate::record`], write back with a compare-and-swap on every record read (retried by
//! [`flotilla_store::cas::retry`]), answer the generated output type.
//!
//! - [`load_balancers`]: Create/Describe/DeleteLoadBalancer(s), Describe/ModifyLoadBalancerAttributes.
//! - [`listeners`]: Create/Describe/Modify/DeleteListener(s), Create/Describe/Modify/DeleteRule(s),
//!   SetRulePriorities; a listener and the target groups it forwards to change in one
//!   transaction ([`Elbv2::forwarding`]).
//! - [`target_groups`]: Create/Describe/Modify/DeleteTargetGroup(s), their attributes,
//!   Register/DeregisterTargets, DescribeTargetHealth (through [`crate::targets`]).
//! - [`tags`]: AddTags, RemoveTags, DescribeTags on any of the four resources.
//!
//! The model's other operations answer `OperationNotPermitted` naming what is served.

mod listeners;
mod load_balancers;
mod tags;
mod target_groups;

use crate::arn::{self, Scope};
use crate::error::Elbv2Error;
use crate::record::{decode, encode, ListenerRecord, LoadBalancerRecord, TargetGroupRecord};
use crate::ErrorShape;
use base64::Engine as _;
use flotilla_edge::json::validate::Model;
use flotilla_edge::query::{QueryApi, QueryCall, QueryError, QueryModel};
use flotilla_store::{Compare, Store};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Elastic Load Balancing v2 on one installation's store, region and account.
pub struct Elbv2 {
    store: Arc<dyn Store>,
    scope: Scope,
    query: QueryModel,
    model: Model,
}

/// The operations served (the model's others are refused by name).
pub const SERVED: &[&str] = &[
    "CreateLoadBalancer",
    "DescribeLoadBalancers",
    "DeleteLoadBalancer",
    "DescribeLoadBalancerAttributes",
    "ModifyLoadBalancerAttributes",
    "CreateTargetGroup",
    "DescribeTargetGroups",
    "ModifyTargetGroup",
    "DeleteTargetGroup",
    "DescribeTargetGroupAttributes",
    "ModifyTargetGroupAttributes",
    "CreateListener",
    "DescribeListeners",
    "ModifyListener",
    "DeleteListener",
    "CreateRule",
    "DescribeRules",
    "ModifyRule",
    "DeleteRule",
    "SetRulePriorities",
    "RegisterTargets",
    "DeregisterTargets",
    "DescribeTargetHealth",
    "AddTags",
    "RemoveTags",
    "DescribeTags",
];

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, Elbv2Error> {
    serde_json::to_value(v)
        .map_err(|e| Elbv2Error::internal(format!("could not encode the response: {e}")))
}

/// A page of `items` after `marker` (the opaque marker is the base64 of the last key shown),
/// at most `page_size` (default 400) long, and the next marker.
pub(crate) fn page<T>(
    items: Vec<(String, T)>,
    marker: Option<&str>,
    page_size: Option<i32>,
) -> Result<(Vec<T>, Option<String>), Elbv2Error> {
    let after = match marker {
        Some(m) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(m)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Elbv2Error::validation(format!("The marker '{m}' is not valid")))?,
        ),
        None => None,
    };
    let size = page_size.map_or(400, |n| n.clamp(1, 400) as usize);
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let more = rest.len() > size;
    rest.truncate(size);
    let next = if more {
        rest.last()
            .map(|(k, _)| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k))
    } else {
        None
    };
    Ok((rest.into_iter().map(|(_, v)| v).collect(), next))
}

/// Refuses a member of a request that Flotilla does not serve, naming it.
pub(crate) fn refuse_if<T>(v: &Option<T>, what: &str) -> Result<(), Elbv2Error> {
    if v.is_some() {
        return Err(Elbv2Error::validation(format!(
            "{what} is not served by Flotilla: omit it"
        )));
    }
    Ok(())
}

impl Elbv2 {
    /// ELB on `store`, for ARNs of `region`/`account`.
    pub fn new(
        store: Arc<dyn Store>,
        region: impl Into<String>,
        account: impl Into<String>,
    ) -> Self {
        Elbv2 {
            store,
            scope: Scope {
                region: region.into(),
                account: account.into(),
            },
            // Written by the build script from the vendored model: it parses.
            query: QueryModel::parse(crate::MODEL_JSON).unwrap_or_else(|_| QueryModel::empty()),
            model: Model::parse(crate::MODEL_JSON).unwrap_or_else(|_| Model::empty()),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The load balancer `arn` names and its `mod_revision`.
    pub(crate) async fn load_balancer(
        &self,
        lb_arn: &str,
    ) -> Result<(LoadBalancerRecord, u64), Elbv2Error> {
        let Some(arn::Named::LoadBalancer { name }) = self.scope.parse(lb_arn) else {
            return Err(Elbv2Error::load_balancer_not_found());
        };
        self.load_balancer_by_name(&name)
            .await?
            .filter(|(lb, _)| lb.arn == lb_arn)
            .ok_or_else(Elbv2Error::load_balancer_not_found)
    }

    /// The load balancer named `name`, if any.
    pub(crate) async fn load_balancer_by_name(
        &self,
        name: &str,
    ) -> Result<Option<(LoadBalancerRecord, u64)>, Elbv2Error> {
        match self.store.get(&arn::load_balancer_key(name)).await? {
            Some(kv) => Ok(Some((decode(&kv.value)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// The listener `arn` names (or whose rule `arn` names) and its `mod_revision`.
    pub(crate) async fn listener(&self, arn_: &str) -> Result<(ListenerRecord, u64), Elbv2Error> {
        let (lb_name, id, rule) = match self.scope.parse(arn_) {
            Some(arn::Named::Listener { lb_name, id }) => (lb_name, id, false),
            Some(arn::Named::Rule {
                lb_name,
                listener_id,
            }) => (lb_name, listener_id, true),
            _ => return Err(Elbv2Error::listener_not_found()),
        };
        let not_found = if rule {
            Elbv2Error::rule_not_found
        } else {
            Elbv2Error::listener_not_found
        };
        let kv = self
            .store
            .get(&arn::listener_key(&lb_name, &id))
            .await?
            .ok_or_else(not_found)?;
        let l: ListenerRecord = decode(&kv.value)?;
        let matches = if rule {
            l.default_rule_arn == arn_ || l.rules.iter().any(|r| r.arn == arn_)
        } else {
            l.arn == arn_
        };
        if !matches {
            return Err(not_found());
        }
        Ok((l, kv.mod_revision))
    }

    /// Every listener of a load balancer, by port.
    pub(crate) async fn listeners_of(
        &self,
        lb: &LoadBalancerRecord,
    ) -> Result<Vec<(ListenerRecord, u64)>, Elbv2Error> {
        let page = self
            .store
            .list(&arn::listeners_of(&lb.name), None, 0)
            .await?;
        let mut out = Vec::new();
        for kv in &page.items {
            let l: ListenerRecord = decode(&kv.value)?;
            if l.load_balancer_arn == lb.arn {
                out.push((l, kv.mod_revision));
            }
        }
        out.sort_by_key(|(l, _)| l.port);
        Ok(out)
    }

    /// The target group `arn` names and its `mod_revision`.
    pub(crate) async fn target_group(
        &self,
        tg_arn: &str,
    ) -> Result<(TargetGroupRecord, u64), Elbv2Error> {
        if !matches!(
            self.scope.parse(tg_arn),
            Some(arn::Named::TargetGroup { .. })
        ) {
            return Err(Elbv2Error::target_group_not_found());
        }
        crate::targets::load_group(self.store.as_ref(), tg_arn).await
    }

    /// What changing the target groups a listener forwards to from `before` to `after` writes:
    /// each group newly used must exist, speak the listener's protocol and not be used by
    /// another load balancer; each group's `used_by` gains or loses the listener. Answers the
    /// compares and puts, for the listener's own transaction.
    pub(crate) async fn forwarding(
        &self,
        listener_arn: &str,
        lb: &LoadBalancerRecord,
        before: &BTreeSet<String>,
        after: &BTreeSet<String>,
    ) -> Result<(Vec<Compare>, Vec<(String, Vec<u8>)>), Elbv2Error> {
        let mut compares = Vec::new();
        let mut puts = Vec::new();
        for tg_arn in before.symmetric_difference(after) {
            let adding = after.contains(tg_arn);
            let (mut g, rev) = match self.target_group(tg_arn).await {
                Ok(x) => x,
                // A group being dropped that is gone already needs nothing.
                Err(_) if !adding => continue,
                Err(_) => {
                    return Err(Elbv2Error::new(
                        ErrorShape::TargetGroupNotFoundException,
                        format!("Target group '{tg_arn}' not found"),
                    ))
                }
            };
            if adding {
                let protocol = lb.kind.listener_protocol();
                if g.protocol != protocol {
                    return Err(Elbv2Error::new(
                        ErrorShape::IncompatibleProtocolsException,
                        format!(
                            "The protocol of target group '{tg_arn}' ({}) is not compatible with the listener's protocol ({})",
                            g.protocol.shape(),
                            protocol.shape()
                        ),
                    ));
                }
                if g.load_balancer_arns().iter().any(|a| a != &lb.arn) {
                    return Err(Elbv2Error::new(
                        ErrorShape::TargetGroupAssociationLimitException,
                        format!(
                            "The following target groups cannot be associated with more than one load balancer: {tg_arn}"
                        ),
                    ));
                }
                g.used_by.insert(listener_arn.to_string());
            } else {
                g.used_by.remove(listener_arn);
            }
            let key = arn::target_group_key(&g.name);
            compares.push(Compare::ModRevision(key.clone(), rev));
            puts.push((key, encode(&g)?));
        }
        Ok((compares, puts))
    }
}

macro_rules! ops {
    ($self:ident, $call:ident; $($name:literal => $method:ident),* $(,)?) => {
        match $call.operation {
            $($name => {
                let input = $self.model.parse_input($name, $call.input).map_err(Elbv2Error::from)?;
                to_value($self.$method(input, $call.now).await?)
            })*
            other => Err(Elbv2Error::not_permitted(format!(
                "Flotilla does not serve {other}. It serves: {}.",
                SERVED.join(", ")
            ))),
        }
    };
}

#[async_trait::async_trait]
impl QueryApi for Elbv2 {
    fn title(&self) -> &'static str {
        "Elastic Load Balancing"
    }

    fn signing_name(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn model(&self) -> &QueryModel {
        &self.query
    }

    async fn dispatch(&self, call: QueryCall<'_>) -> Result<Value, QueryError> {
        let result: Result<Value, Elbv2Error> = ops!(self, call;
            "CreateLoadBalancer" => create_load_balancer,
            "DescribeLoadBalancers" => describe_load_balancers,
            "DeleteLoadBalancer" => delete_load_balancer,
            "DescribeLoadBalancerAttributes" => describe_load_balancer_attributes,
            "ModifyLoadBalancerAttributes" => modify_load_balancer_attributes,
            "CreateTargetGroup" => create_target_group,
            "DescribeTargetGroups" => describe_target_groups,
            "ModifyTargetGroup" => modify_target_group,
            "DeleteTargetGroup" => delete_target_group,
            "DescribeTargetGroupAttributes" => describe_target_group_attributes,
            "ModifyTargetGroupAttributes" => modify_target_group_attributes,
            "CreateListener" => create_listener,
            "DescribeListeners" => describe_listeners,
            "ModifyListener" => modify_listener,
            "DeleteListener" => delete_listener,
            "CreateRule" => create_rule,
            "DescribeRules" => describe_rules,
            "ModifyRule" => modify_rule,
            "DeleteRule" => delete_rule,
            "SetRulePriorities" => set_rule_priorities,
            "RegisterTargets" => register_targets,
            "DeregisterTargets" => deregister_targets,
            "DescribeTargetHealth" => describe_target_health,
            "AddTags" => add_tags,
            "RemoveTags" => remove_tags,
            "DescribeTags" => describe_tags,
        );
        result.map_err(QueryError::from)
    }
}

#[cfg(test)]
mod tests;
