//! Target groups and their targets: CreateTargetGroup (ELB's health-check defaults per
//! protocol; idempotent for the same settings), DescribeTargetGroups, ModifyTargetGroup,
//! DeleteTargetGroup (`ResourceInUse` while a listener or rule forwards to it; idempotent),
//! Describe/ModifyTargetGroupAttributes, RegisterTargets, DeregisterTargets,
//! DescribeTargetHealth (through [`crate::targets`]).

use super::{page, refuse_if, Elbv2};
use crate::arn;
use crate::error::Elbv2Error;
use crate::record::{
    add_tags, apply_tg_attributes, check_name, decode, encode, tg_attribute_defaults, HealthCheck,
    Protocol, TargetGroupRecord, TargetKind,
};
use crate::shapes::*;
use crate::targets::{self, TargetRef};
use crate::ErrorShape;
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Txn};

/// The health-check settings a request gives (CreateTargetGroup and ModifyTargetGroup share
/// them).
struct HealthSettings<'a> {
    protocol: Option<ProtocolEnum>,
    port: Option<&'a String>,
    path: Option<&'a String>,
    enabled: Option<bool>,
    interval: Option<i32>,
    timeout: Option<i32>,
    healthy: Option<i32>,
    unhealthy: Option<i32>,
    matcher: Option<&'a Matcher>,
}

/// Applies `s` over `base` (the group's current check, or the defaults), for a group of
/// `group` protocol; a change of the check's protocol starts from that protocol's defaults.
fn health_check(
    group: Protocol,
    base: &HealthCheck,
    s: &HealthSettings<'_>,
) -> Result<HealthCheck, Elbv2Error> {
    let mut h = base.clone();
    if let Some(p) = s.protocol {
        let p = Protocol::served(p, "health check")?;
        if p != h.protocol {
            h = HealthCheck {
                enabled: h.enabled,
                port: h.port.clone(),
                interval: h.interval,
                healthy: h.healthy,
                unhealthy: h.unhealthy,
                ..HealthCheck::defaults(group, p)
            };
        }
    }
    let count = |v: i32| u32::try_from(v).unwrap_or(0);
    if let Some(p) = s.port {
        h.port = p.clone();
    }
    if let Some(p) = s.path {
        h.path = Some(p.clone());
    }
    if let Some(e) = s.enabled {
        h.enabled = e;
    }
    if let Some(v) = s.interval {
        h.interval = count(v);
    }
    if let Some(v) = s.timeout {
        h.timeout = count(v);
    }
    if let Some(v) = s.healthy {
        h.healthy = count(v);
    }
    if let Some(v) = s.unhealthy {
        h.unhealthy = count(v);
    }
    if let Some(m) = s.matcher {
        if m.grpc_code.is_some() {
            return Err(Elbv2Error::validation(
                "GrpcCode is not served by Flotilla: use HttpCode",
            ));
        }
        h.matcher = m.http_code.clone();
    }
    h.check(group)?;
    Ok(h)
}

fn attributes_view(g: &TargetGroupRecord) -> Vec<TargetGroupAttribute> {
    g.attributes
        .iter()
        .map(|(k, v)| TargetGroupAttribute {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

fn target_refs(targets: &[TargetDescription]) -> Result<Vec<TargetRef>, Elbv2Error> {
    targets
        .iter()
        .map(|t| {
            refuse_if(&t.quic_server_id, "QuicServerId")?;
            let port = t
                .port
                .map(|p| {
                    u16::try_from(p).ok().filter(|p| *p >= 1).ok_or_else(|| {
                        Elbv2Error::validation(format!("Port '{p}' must be between 1 and 65535"))
                    })
                })
                .transpose()?;
            Ok(TargetRef {
                id: t.id.clone(),
                port,
                availability_zone: t.availability_zone.clone(),
            })
        })
        .collect()
}

impl Elbv2 {
    pub(super) async fn create_target_group(
        &self,
        req: CreateTargetGroupInput,
        now: f64,
    ) -> Result<CreateTargetGroupOutput, Elbv2Error> {
        check_name(&req.name, "Target group")?;
        let target_type = match req.target_type {
            None | Some(TargetTypeEnum::Instance) => TargetKind::Instance,
            Some(TargetTypeEnum::Ip) => TargetKind::Ip,
            Some(other) => {
                return Err(Elbv2Error::validation(format!(
                    "Target type '{other}' is not served by Flotilla: use 'ip' or 'instance'"
                )))
            }
        };
        let Some(protocol) = req.protocol else {
            return Err(Elbv2Error::validation("A protocol must be specified"));
        };
        let protocol = Protocol::served(protocol, "target group")?;
        let Some(port) = req.port else {
            return Err(Elbv2Error::validation("A port must be specified"));
        };
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| {
                Elbv2Error::validation(format!("Port '{port}' must be between 1 and 65535"))
            })?;
        match req.protocol_version.as_deref() {
            None | Some("HTTP1") if protocol == Protocol::Http => {}
            None if protocol == Protocol::Tcp => {}
            Some(v) => {
                return Err(Elbv2Error::validation(format!(
                    "Protocol version '{v}' is not served by Flotilla: omit it (HTTP target groups speak HTTP1)"
                )))
            }
            None => {}
        }
        if req
            .ip_address_type
            .is_some_and(|t| t != TargetGroupIpAddressTypeEnum::Ipv4)
        {
            return Err(Elbv2Error::validation(
                "Flotilla's target groups are IPv4 only: omit IpAddressType or use 'ipv4'",
            ));
        }
        refuse_if(&req.target_control_port, "TargetControlPort")?;
        let check_protocol = match req.health_check_protocol {
            Some(p) => Protocol::served(p, "health check")?,
            None => protocol,
        };
        let health = health_check(
            protocol,
            &HealthCheck::defaults(protocol, check_protocol),
            &HealthSettings {
                protocol: None,
                port: req.health_check_port.as_ref(),
                path: req.health_check_path.as_ref(),
                enabled: req.health_check_enabled,
                interval: req.health_check_interval_seconds,
                timeout: req.health_check_timeout_seconds,
                healthy: req.healthy_threshold_count,
                unhealthy: req.unhealthy_threshold_count,
                matcher: req.matcher.as_ref(),
            },
        )?;
        let mut tags = Vec::new();
        add_tags(&mut tags, req.tags.as_deref().unwrap_or_default())?;
        let key = arn::target_group_key(&req.name);
        let g = retry(self.store.as_ref(), || async {
            if let Some(kv) = self.store.get(&key).await? {
                let existing: TargetGroupRecord = decode(&kv.value)?;
                let same = existing.protocol == protocol
                    && existing.port == port
                    && existing.target_type == target_type
                    && existing.health == health;
                if same {
                    return Ok(Attempt::Done(existing));
                }
                return Err(Elbv2Error::new(
                    ErrorShape::DuplicateTargetGroupNameException,
                    format!(
                        "A target group with the same name '{}' exists, but with different settings",
                        req.name
                    ),
                ));
            }
            let g = TargetGroupRecord {
                name: req.name.clone(),
                arn: self.scope.target_group(&req.name, &arn::new_id()),
                protocol,
                port,
                vpc_id: req.vpc_id.clone(),
                target_type,
                protocol_version: (protocol == Protocol::Http).then(|| "HTTP1".to_string()),
                health: health.clone(),
                attributes: tg_attribute_defaults(protocol),
                tags: tags.clone(),
                used_by: Default::default(),
                created: now,
            };
            // A targets record left by a deleted group of the same name goes now.
            let txn = Txn::new()
                .when(Compare::Absent(key.clone()))
                .put(key.clone(), encode(&g)?)
                .delete(arn::targets_key(&g.name));
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, g))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        tracing::info!(target_group = %g.arn, "target group created");
        Ok(CreateTargetGroupOutput {
            target_groups: Some(vec![g.view()]),
        })
    }

    pub(super) async fn describe_target_groups(
        &self,
        req: DescribeTargetGroupsInput,
        _now: f64,
    ) -> Result<DescribeTargetGroupsOutput, Elbv2Error> {
        let given = [
            req.load_balancer_arn.is_some(),
            req.target_group_arns.is_some(),
            req.names.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(Elbv2Error::validation(
                "Only one of LoadBalancerArn, TargetGroupArns and Names can be specified",
            ));
        }
        let items: Vec<(String, TargetGroup)> = if let Some(arns) = &req.target_group_arns {
            let mut out = Vec::new();
            for a in arns {
                let (g, _) = self.target_group(a).await?;
                out.push((g.name.clone(), g.view()));
            }
            out
        } else if let Some(names) = &req.names {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for n in names {
                match self.store.get(&arn::target_group_key(n)).await? {
                    Some(kv) => {
                        let g: TargetGroupRecord = decode(&kv.value)?;
                        out.push((g.name.clone(), g.view()));
                    }
                    None => missing.push(n.clone()),
                }
            }
            if !missing.is_empty() {
                return Err(Elbv2Error::new(
                    ErrorShape::TargetGroupNotFoundException,
                    format!("Target groups '[{}]' not found", missing.join(", ")),
                ));
            }
            out
        } else {
            let lb = match &req.load_balancer_arn {
                Some(a) => Some(self.load_balancer(a).await?.0),
                None => None,
            };
            let page = self.store.list(arn::TARGET_GROUPS, None, 0).await?;
            let mut out = Vec::new();
            for kv in &page.items {
                let g: TargetGroupRecord = decode(&kv.value)?;
                if lb
                    .as_ref()
                    .is_none_or(|lb| g.load_balancer_arns().contains(&lb.arn))
                {
                    out.push((g.name.clone(), g.view()));
                }
            }
            out
        };
        let (target_groups, next_marker) = page(items, req.marker.as_deref(), req.page_size)?;
        Ok(DescribeTargetGroupsOutput {
            target_groups: Some(target_groups),
            next_marker,
        })
    }

    /// Reads, changes and writes back a target group.
    async fn change_group<T: Clone>(
        &self,
        tg_arn: &str,
        change: impl Fn(&mut TargetGroupRecord) -> Result<T, Elbv2Error>,
    ) -> Result<(T, TargetGroupRecord), Elbv2Error> {
        let change = &change;
        retry(self.store.as_ref(), || async move {
            let (mut g, rev) = self.target_group(tg_arn).await?;
            let out = change(&mut g)?;
            let key = arn::target_group_key(&g.name);
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .put(key, encode(&g)?);
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, (out, g)))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())
    }

    pub(super) async fn modify_target_group(
        &self,
        req: ModifyTargetGroupInput,
        _now: f64,
    ) -> Result<ModifyTargetGroupOutput, Elbv2Error> {
        let settings = HealthSettings {
            protocol: req.health_check_protocol,
            port: req.health_check_port.as_ref(),
            path: req.health_check_path.as_ref(),
            enabled: req.health_check_enabled,
            interval: req.health_check_interval_seconds,
            timeout: req.health_check_timeout_seconds,
            healthy: req.healthy_threshold_count,
            unhealthy: req.unhealthy_threshold_count,
            matcher: req.matcher.as_ref(),
        };
        let (_, g) = self
            .change_group(&req.target_group_arn, |g| {
                g.health = health_check(g.protocol, &g.health, &settings)?;
                Ok(())
            })
            .await?;
        Ok(ModifyTargetGroupOutput {
            target_groups: Some(vec![g.view()]),
        })
    }

    pub(super) async fn delete_target_group(
        &self,
        req: DeleteTargetGroupInput,
        _now: f64,
    ) -> Result<DeleteTargetGroupOutput, Elbv2Error> {
        if !matches!(
            self.scope.parse(&req.target_group_arn),
            Some(arn::Named::TargetGroup { .. })
        ) {
            return Err(Elbv2Error::validation(format!(
                "'{}' is not a valid target group ARN",
                req.target_group_arn
            )));
        }
        retry(self.store.as_ref(), || async {
            // Deleting a target group that does not exist succeeds, as in ELB.
            let (g, rev) = match self.target_group(&req.target_group_arn).await {
                Ok(x) => x,
                Err(e) if e.code() == "TargetGroupNotFound" => return Ok(Attempt::Done(())),
                Err(e) => return Err(e),
            };
            if !g.used_by.is_empty() {
                return Err(Elbv2Error::new(
                    ErrorShape::ResourceInUseException,
                    format!(
                        "Target group '{}' is currently in use by a listener or a rule",
                        g.arn
                    ),
                ));
            }
            let key = arn::target_group_key(&g.name);
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .delete(key)
                .delete(arn::targets_key(&g.name));
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, ()))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        tracing::info!(target_group = %req.target_group_arn, "target group deleted");
        Ok(DeleteTargetGroupOutput {})
    }

    pub(super) async fn describe_target_group_attributes(
        &self,
        req: DescribeTargetGroupAttributesInput,
        _now: f64,
    ) -> Result<DescribeTargetGroupAttributesOutput, Elbv2Error> {
        let (g, _) = self.target_group(&req.target_group_arn).await?;
        Ok(DescribeTargetGroupAttributesOutput {
            attributes: Some(attributes_view(&g)),
        })
    }

    pub(super) async fn modify_target_group_attributes(
        &self,
        req: ModifyTargetGroupAttributesInput,
        _now: f64,
    ) -> Result<ModifyTargetGroupAttributesOutput, Elbv2Error> {
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
        let (_, g) = self
            .change_group(&req.target_group_arn, |g| {
                apply_tg_attributes(g.protocol, &mut g.attributes, &changes)
            })
            .await?;
        Ok(ModifyTargetGroupAttributesOutput {
            attributes: Some(attributes_view(&g)),
        })
    }

    pub(super) async fn register_targets(
        &self,
        req: RegisterTargetsInput,
        now: f64,
    ) -> Result<RegisterTargetsOutput, Elbv2Error> {
        let refs = target_refs(&req.targets)?;
        self.target_group(&req.target_group_arn).await?;
        targets::register(self.store.as_ref(), &req.target_group_arn, &refs, now).await?;
        Ok(RegisterTargetsOutput {})
    }

    pub(super) async fn deregister_targets(
        &self,
        req: DeregisterTargetsInput,
        now: f64,
    ) -> Result<DeregisterTargetsOutput, Elbv2Error> {
        let refs = target_refs(&req.targets)?;
        self.target_group(&req.target_group_arn).await?;
        targets::deregister(self.store.as_ref(), &req.target_group_arn, &refs, now).await?;
        Ok(DeregisterTargetsOutput {})
    }

    pub(super) async fn describe_target_health(
        &self,
        req: DescribeTargetHealthInput,
        _now: f64,
    ) -> Result<DescribeTargetHealthOutput, Elbv2Error> {
        let (g, _) = self.target_group(&req.target_group_arn).await?;
        let all = targets::health(self.store.as_ref(), &req.target_group_arn).await?;
        let hc_port = |port: u16| {
            if g.health.port == "traffic-port" {
                port.to_string()
            } else {
                g.health.port.clone()
            }
        };
        let describe = |id: &str,
                        port: u16,
                        az: Option<String>,
                        shown: (&str, Option<&str>, Option<String>)| {
            TargetHealthDescription {
                target: Some(TargetDescription {
                    id: id.to_string(),
                    port: Some(i32::from(port)),
                    availability_zone: az,
                    quic_server_id: None,
                }),
                health_check_port: Some(hc_port(port)),
                target_health: Some(TargetHealth {
                    state: TargetHealthStateEnum::parse(shown.0),
                    reason: shown.1.and_then(TargetHealthReasonEnum::parse),
                    description: shown.2,
                }),
                ..Default::default()
            }
        };
        let out: Vec<TargetHealthDescription> = match &req.targets {
            None => all
                .iter()
                .map(|t| {
                    describe(
                        &t.id,
                        t.port,
                        t.availability_zone.clone(),
                        (
                            t.state.as_str(),
                            t.reason.map(|r| r.as_str()),
                            t.description.clone(),
                        ),
                    )
                })
                .collect(),
            Some(asked) => target_refs(asked)?
                .iter()
                .map(|r| {
                    let port = r.port.unwrap_or(g.port);
                    match all.iter().find(|t| t.id == r.id && t.port == port) {
                        Some(t) => describe(
                            &t.id,
                            t.port,
                            t.availability_zone.clone(),
                            (
                                t.state.as_str(),
                                t.reason.map(|x| x.as_str()),
                                t.description.clone(),
                            ),
                        ),
                        None => {
                            let shown = crate::health::not_registered();
                            describe(
                                &r.id,
                                port,
                                r.availability_zone.clone(),
                                (
                                    shown.state.as_str(),
                                    shown.reason.map(|x| x.as_str()),
                                    shown.description,
                                ),
                            )
                        }
                    }
                })
                .collect(),
        };
        Ok(DescribeTargetHealthOutput {
            target_health_descriptions: Some(out),
        })
    }
}
