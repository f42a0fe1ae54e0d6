//! Load balancers: CreateLoadBalancer (idempotent for the same settings), DescribeLoadBalancers
//! (by names or ARNs, paged), DeleteLoadBalancer (with its listeners and rules; idempotent),
//! Describe/ModifyLoadBalancerAttributes.

use super::{page, refuse_if, Elbv2};
use crate::arn;
use crate::error::Elbv2Error;
use crate::record::{
    add_tags, apply_lb_attributes, check_name, dns_name, encode, lb_attribute_defaults, LbKind,
    LoadBalancerRecord,
};
use crate::shapes::*;
use crate::ErrorShape;
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Txn};
use std::collections::BTreeSet;

fn attributes_view(lb: &LoadBalancerRecord) -> Vec<LoadBalancerAttribute> {
    lb.attributes
        .iter()
        .map(|(k, v)| LoadBalancerAttribute {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

impl Elbv2 {
    pub(super) async fn create_load_balancer(
        &self,
        req: CreateLoadBalancerInput,
        now: f64,
    ) -> Result<CreateLoadBalancerOutput, Elbv2Error> {
        check_name(&req.name, "Load balancer")?;
        let kind = match req.r#type {
            None | Some(LoadBalancerTypeEnum::Application) => LbKind::Application,
            Some(LoadBalancerTypeEnum::Network) => LbKind::Network,
            Some(other) => {
                return Err(Elbv2Error::validation(format!(
                    "Load balancer type '{other}' is not served by Flotilla: use 'application' or 'network'"
                )))
            }
        };
        if req
            .ip_address_type
            .is_some_and(|t| t != IpAddressType::Ipv4)
        {
            return Err(Elbv2Error::validation(
                "Flotilla's load balancers are IPv4 only: omit IpAddressType or use 'ipv4'",
            ));
        }
        refuse_if(&req.customer_owned_ipv4_pool, "CustomerOwnedIpv4Pool")?;
        refuse_if(&req.ipam_pools, "IpamPools")?;
        refuse_if(
            &req.enable_prefix_for_ipv6_source_nat,
            "EnablePrefixForIpv6SourceNat",
        )?;
        let subnets: Vec<String> = match (&req.subnets, &req.subnet_mappings) {
            (Some(_), Some(_)) => {
                return Err(Elbv2Error::validation(
                    "You can specify subnets or subnet mappings, not both",
                ))
            }
            (Some(s), None) => s.clone(),
            (None, Some(m)) => {
                if m.iter().any(|x| {
                    x.allocation_id.is_some()
                        || x.private_i_pv4_address.is_some()
                        || x.i_pv6_address.is_some()
                }) {
                    return Err(Elbv2Error::validation(
                        "Subnet mappings with allocation ids or addresses are not served by Flotilla: give only SubnetId",
                    ));
                }
                m.iter().filter_map(|x| x.subnet_id.clone()).collect()
            }
            (None, None) => Vec::new(),
        };
        let mut seen = BTreeSet::new();
        if let Some(dup) = subnets.iter().find(|s| !seen.insert(s.as_str())) {
            return Err(Elbv2Error::validation(format!(
                "Subnet '{dup}' is specified more than once"
            )));
        }
        let zones: Vec<(String, String)> = subnets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let letter = (b'a' + (i % 26) as u8) as char;
                (format!("{}{letter}", self.scope.region), s.clone())
            })
            .collect();
        let scheme = req
            .scheme
            .unwrap_or(LoadBalancerSchemeEnum::InternetFacing)
            .as_str()
            .to_string();
        let mut tags = Vec::new();
        add_tags(&mut tags, req.tags.as_deref().unwrap_or_default())?;
        let security_groups = req.security_groups.clone().unwrap_or_default();
        let key = arn::load_balancer_key(&req.name);
        let lb = retry(self.store.as_ref(), || async {
            if let Some((existing, _)) = self.load_balancer_by_name(&req.name).await? {
                let same = existing.kind == kind
                    && existing.scheme == scheme
                    && existing.zones.iter().map(|(_, s)| s).eq(subnets.iter())
                    && existing.security_groups == security_groups;
                if same {
                    return Ok(Attempt::Done(existing));
                }
                return Err(Elbv2Error::new(
                    ErrorShape::DuplicateLoadBalancerNameException,
                    format!(
                        "A load balancer with the same name '{}' exists, but with different settings",
                        req.name
                    ),
                ));
            }
            let id = arn::new_id();
            let lb = LoadBalancerRecord {
                name: req.name.clone(),
                arn: self.scope.load_balancer(kind.arn_kind(), &req.name, &id),
                dns_name: dns_name(
                    &req.name,
                    rand::random::<u64>(),
                    &self.scope.region,
                    scheme == "internal",
                ),
                id,
                kind,
                scheme: scheme.clone(),
                created: now,
                vpc_id: Some("vpc-flotilla".into()),
                zones: zones.clone(),
                security_groups: security_groups.clone(),
                attributes: lb_attribute_defaults(kind),
                tags: tags.clone(),
            };
            let txn = Txn::new()
                .when(Compare::Absent(key.clone()))
                .put(key.clone(), encode(&lb)?);
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, lb))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        tracing::info!(load_balancer = %lb.arn, "load balancer created");
        Ok(CreateLoadBalancerOutput {
            load_balancers: Some(vec![lb.view()]),
        })
    }

    pub(super) async fn describe_load_balancers(
        &self,
        req: DescribeLoadBalancersInput,
        _now: f64,
    ) -> Result<DescribeLoadBalancersOutput, Elbv2Error> {
        let items: Vec<(String, LoadBalancer)> = match (&req.names, &req.load_balancer_arns) {
            (Some(_), Some(_)) => return Err(Elbv2Error::validation(
                "Load balancer names and load balancer ARNs cannot be specified at the same time",
            )),
            (Some(names), None) => {
                let mut out = Vec::new();
                let mut missing = Vec::new();
                for n in names {
                    match self.load_balancer_by_name(n).await? {
                        Some((lb, _)) => out.push((lb.name.clone(), lb.view())),
                        None => missing.push(n.clone()),
                    }
                }
                if !missing.is_empty() {
                    return Err(Elbv2Error::new(
                        ErrorShape::LoadBalancerNotFoundException,
                        format!("Load balancers '[{}]' not found", missing.join(", ")),
                    ));
                }
                out
            }
            (None, Some(arns)) => {
                let mut out = Vec::new();
                for a in arns {
                    let (lb, _) = self.load_balancer(a).await?;
                    out.push((lb.name.clone(), lb.view()));
                }
                out
            }
            (None, None) => {
                let page = self.store.list(arn::LOAD_BALANCERS, None, 0).await?;
                let mut out = Vec::new();
                for kv in &page.items {
                    let lb: LoadBalancerRecord = crate::record::decode(&kv.value)?;
                    out.push((lb.name.clone(), lb.view()));
                }
                out
            }
        };
        let (load_balancers, next_marker) = page(items, req.marker.as_deref(), req.page_size)?;
        Ok(DescribeLoadBalancersOutput {
            load_balancers: Some(load_balancers),
            next_marker,
        })
    }

    pub(super) async fn delete_load_balancer(
        &self,
        req: DeleteLoadBalancerInput,
        _now: f64,
    ) -> Result<DeleteLoadBalancerOutput, Elbv2Error> {
        if !matches!(
            self.scope.parse(&req.load_balancer_arn),
            Some(arn::Named::LoadBalancer { .. })
        ) {
            return Err(Elbv2Error::validation(format!(
                "'{}' is not a valid load balancer ARN",
                req.load_balancer_arn
            )));
        }
        retry(self.store.as_ref(), || async {
            // Deleting a load balancer that does not exist succeeds, as in ELB.
            let (lb, rev) = match self.load_balancer(&req.load_balancer_arn).await {
                Ok(x) => x,
                Err(e) if e.code() == "LoadBalancerNotFound" => return Ok(Attempt::Done(())),
                Err(e) => return Err(e),
            };
            if lb
                .attributes
                .get("deletion_protection.enabled")
                .map(String::as_str)
                == Some("true")
            {
                return Err(Elbv2Error::not_permitted(format!(
                    "Load balancer '{}' cannot be deleted because deletion protection is enabled",
                    lb.arn
                )));
            }
            let lb_key = arn::load_balancer_key(&lb.name);
            let mut txn = Txn::new().when(Compare::ModRevision(lb_key.clone(), rev));
            for (l, lrev) in self.listeners_of(&lb).await? {
                let (compares, puts) = self
                    .forwarding(&l.arn, &lb, &l.target_groups(), &BTreeSet::new())
                    .await?;
                let lkey = arn::listener_key(&lb.name, &l.id);
                txn = txn
                    .when(Compare::ModRevision(lkey.clone(), lrev))
                    .delete(lkey);
                for c in compares {
                    txn = txn.when(c);
                }
                for (k, v) in puts {
                    txn = txn.put(k, v);
                }
            }
            Ok::<_, Elbv2Error>(Attempt::Commit(txn.delete(lb_key), ()))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        tracing::info!(load_balancer = %req.load_balancer_arn, "load balancer deleted");
        Ok(DeleteLoadBalancerOutput {})
    }

    pub(super) async fn describe_load_balancer_attributes(
        &self,
        req: DescribeLoadBalancerAttributesInput,
        _now: f64,
    ) -> Result<DescribeLoadBalancerAttributesOutput, Elbv2Error> {
        let (lb, _) = self.load_balancer(&req.load_balancer_arn).await?;
        Ok(DescribeLoadBalancerAttributesOutput {
            attributes: Some(attributes_view(&lb)),
        })
    }

    pub(super) async fn modify_load_balancer_attributes(
        &self,
        req: ModifyLoadBalancerAttributesInput,
        _now: f64,
    ) -> Result<ModifyLoadBalancerAttributesOutput, Elbv2Error> {
        let changes: Vec<(String, String)> = req
            .attributes
            .iter()
            .map(|a| {
                (
                    a.key.clone().unwrap_or_default(),
                    a.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        let lb = retry(self.store.as_ref(), || async {
            let (mut lb, rev) = self.load_balancer(&req.load_balancer_arn).await?;
            apply_lb_attributes(lb.kind, &mut lb.attributes, &changes)?;
            let key = arn::load_balancer_key(&lb.name);
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .put(key, encode(&lb)?);
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, lb))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        Ok(ModifyLoadBalancerAttributesOutput {
            attributes: Some(attributes_view(&lb)),
        })
    }
}
