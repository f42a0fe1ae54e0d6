//! Listeners and their rules: CreateListener (idempotent for the same settings),
//! DescribeListeners, ModifyListener, DeleteListener, CreateRule, DescribeRules, ModifyRule,
//! DeleteRule, SetRulePriorities.
//!
//! A listener's record holds its rules, so priorities are unique by its compare-and-swap; the
//! load balancer's record is compared too (and rewritten as it is, to order concurrent
//! changes of one load balancer's listeners), so two listeners never take one port and no
//! listener outlives its load balancer. Every change of what a listener forwards to updates
//! the target groups' `used_by` in the same transaction ([`Elbv2::forwarding`]).

use super::{page, refuse_if, Elbv2};
use crate::arn;
use crate::error::Elbv2Error;
use crate::record::{
    add_tags, encode, parse_actions, parse_conditions, Forward, LbKind, ListenerRecord,
    LoadBalancerRecord, Protocol, RuleRecord, Tag,
};
use crate::shapes::*;
use crate::ErrorShape;
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Txn};
use std::collections::{BTreeMap, BTreeSet};

/// How many rules (besides the default) a listener may have.
pub const MAX_RULES: usize = 100;

fn listener_protocol(
    lb: &LoadBalancerRecord,
    p: Option<ProtocolEnum>,
) -> Result<Protocol, Elbv2Error> {
    let want = lb.kind.listener_protocol();
    let Some(p) = p else {
        return Ok(want);
    };
    let got = Protocol::served(p, "listener")?;
    if got != want {
        return Err(Elbv2Error::validation(format!(
            "Listener protocol '{p}' is not served on a load balancer of type '{}': use '{}'",
            lb.kind.shape(),
            want.shape()
        )));
    }
    Ok(got)
}

fn port_of(p: i32) -> Result<u16, Elbv2Error> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| Elbv2Error::validation(format!("Port '{p}' must be between 1 and 65535")))
}

fn check_forward_for(lb: &LoadBalancerRecord, f: &Forward) -> Result<(), Elbv2Error> {
    if lb.kind == LbKind::Network && f.target_groups.len() > 1 {
        return Err(Elbv2Error::validation(
            "A network load balancer's listener forwards to exactly one target group",
        ));
    }
    Ok(())
}

/// Adds a transaction's compares and puts for the target groups.
fn with(mut txn: Txn, parts: (Vec<Compare>, Vec<(String, Vec<u8>)>)) -> Txn {
    for c in parts.0 {
        txn = txn.when(c);
    }
    for (k, v) in parts.1 {
        txn = txn.put(k, v);
    }
    txn
}

impl Elbv2 {
    /// The listener's load balancer and its revision (it must still exist).
    async fn parent(&self, l: &ListenerRecord) -> Result<(LoadBalancerRecord, u64), Elbv2Error> {
        self.load_balancer(&l.load_balancer_arn).await
    }

    /// A transaction that commits `l` (replacing the version at `lrev`, or created when
    /// `None`), rewriting its load balancer as it is with a compare, and moving the target
    /// groups it forwards to from `before`.
    async fn commit_listener(
        &self,
        lb: &LoadBalancerRecord,
        lb_rev: u64,
        l: &ListenerRecord,
        lrev: Option<u64>,
        before: &BTreeSet<String>,
    ) -> Result<Txn, Elbv2Error> {
        let lb_key = arn::load_balancer_key(&lb.name);
        let key = arn::listener_key(&lb.name, &l.id);
        let compare = match lrev {
            Some(rev) => Compare::ModRevision(key.clone(), rev),
            None => Compare::Absent(key.clone()),
        };
        let txn = Txn::new()
            .when(Compare::ModRevision(lb_key.clone(), lb_rev))
            .when(compare)
            .put(lb_key, encode(lb)?)
            .put(key, encode(l)?);
        let parts = self
            .forwarding(&l.arn, lb, before, &l.target_groups())
            .await?;
        Ok(with(txn, parts))
    }

    pub(super) async fn create_listener(
        &self,
        req: CreateListenerInput,
        _now: f64,
    ) -> Result<CreateListenerOutput, Elbv2Error> {
        refuse_if(
            &req.ssl_policy,
            "SslPolicy (Flotilla manages no certificates)",
        )?;
        refuse_if(
            &req.certificates,
            "Certificates (Flotilla manages no certificates)",
        )?;
        refuse_if(&req.alpn_policy, "AlpnPolicy")?;
        refuse_if(&req.mutual_authentication, "MutualAuthentication")?;
        let Some(port) = req.port else {
            return Err(Elbv2Error::validation("A listener port must be specified"));
        };
        let port = port_of(port)?;
        let action = parse_actions(&req.default_actions)?;
        let mut tags = Vec::new();
        add_tags(&mut tags, req.tags.as_deref().unwrap_or_default())?;
        let l = retry(self.store.as_ref(), || async {
            let (lb, lb_rev) = self.load_balancer(&req.load_balancer_arn).await?;
            let protocol = listener_protocol(&lb, req.protocol)?;
            check_forward_for(&lb, &action)?;
            if let Some((existing, _)) = self
                .listeners_of(&lb)
                .await?
                .into_iter()
                .find(|(l, _)| l.port == port)
            {
                if existing.protocol == protocol && existing.default_action == action {
                    return Ok(Attempt::Done(existing));
                }
                return Err(Elbv2Error::new(
                    ErrorShape::DuplicateListenerException,
                    "A listener already exists on this port for this load balancer",
                ));
            }
            let id = arn::new_id();
            let kind = lb.kind.arn_kind();
            let l = ListenerRecord {
                arn: self.scope.listener(kind, &lb.name, &lb.id, &id),
                default_rule_arn: self.scope.rule(kind, &lb.name, &lb.id, &id, &arn::new_id()),
                id,
                load_balancer_arn: lb.arn.clone(),
                load_balancer_name: lb.name.clone(),
                protocol,
                port,
                default_action: action.clone(),
                rules: Vec::new(),
                tags: tags.clone(),
                default_rule_tags: Vec::new(),
            };
            let txn = self
                .commit_listener(&lb, lb_rev, &l, None, &BTreeSet::new())
                .await?;
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, l))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        tracing::info!(listener = %l.arn, "listener created");
        Ok(CreateListenerOutput {
            listeners: Some(vec![l.view()]),
        })
    }

    pub(super) async fn describe_listeners(
        &self,
        req: DescribeListenersInput,
        _now: f64,
    ) -> Result<DescribeListenersOutput, Elbv2Error> {
        let items: Vec<(String, Listener)> =
            match (&req.load_balancer_arn, &req.listener_arns) {
                (Some(_), Some(_)) => return Err(Elbv2Error::validation(
                    "Listener ARNs and a load balancer ARN cannot be specified at the same time",
                )),
                (None, None) => {
                    return Err(Elbv2Error::validation(
                        "You must specify either listener ARNs or a load balancer ARN",
                    ))
                }
                (Some(lb_arn), None) => {
                    let (lb, _) = self.load_balancer(lb_arn).await?;
                    self.listeners_of(&lb)
                        .await?
                        .into_iter()
                        .map(|(l, _)| (format!("{:05}", l.port), l.view()))
                        .collect()
                }
                (None, Some(arns)) => {
                    let mut out = Vec::new();
                    for (i, a) in arns.iter().enumerate() {
                        let (l, _) = self.listener(a).await?;
                        if !l.arn.eq(a) {
                            return Err(Elbv2Error::listener_not_found());
                        }
                        out.push((format!("{i:05}"), l.view()));
                    }
                    out
                }
            };
        let (listeners, next_marker) = page(items, req.marker.as_deref(), req.page_size)?;
        Ok(DescribeListenersOutput {
            listeners: Some(listeners),
            next_marker,
        })
    }

    pub(super) async fn modify_listener(
        &self,
        req: ModifyListenerInput,
        _now: f64,
    ) -> Result<ModifyListenerOutput, Elbv2Error> {
        refuse_if(
            &req.ssl_policy,
            "SslPolicy (Flotilla manages no certificates)",
        )?;
        refuse_if(
            &req.certificates,
            "Certificates (Flotilla manages no certificates)",
        )?;
        refuse_if(&req.alpn_policy, "AlpnPolicy")?;
        refuse_if(&req.mutual_authentication, "MutualAuthentication")?;
        let port = req.port.map(port_of).transpose()?;
        let action = req
            .default_actions
            .as_deref()
            .map(parse_actions)
            .transpose()?;
        let l = retry(self.store.as_ref(), || async {
            let (mut l, lrev) = self.listener(&req.listener_arn).await?;
            if l.arn != req.listener_arn {
                return Err(Elbv2Error::listener_not_found());
            }
            let (lb, lb_rev) = self.parent(&l).await?;
            let before = l.target_groups();
            l.protocol = listener_protocol(&lb, req.protocol.or(Some(l.protocol.shape())))?;
            if let Some(p) = port {
                if p != l.port
                    && self
                        .listeners_of(&lb)
                        .await?
                        .iter()
                        .any(|(x, _)| x.port == p && x.arn != l.arn)
                {
                    return Err(Elbv2Error::new(
                        ErrorShape::DuplicateListenerException,
                        "A listener already exists on this port for this load balancer",
                    ));
                }
                l.port = p;
            }
            if let Some(a) = &action {
                check_forward_for(&lb, a)?;
                l.default_action = a.clone();
            }
            let txn = self
                .commit_listener(&lb, lb_rev, &l, Some(lrev), &before)
                .await?;
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, l))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        Ok(ModifyListenerOutput {
            listeners: Some(vec![l.view()]),
        })
    }

    pub(super) async fn delete_listener(
        &self,
        req: DeleteListenerInput,
        _now: f64,
    ) -> Result<DeleteListenerOutput, Elbv2Error> {
        retry(self.store.as_ref(), || async {
            let (l, lrev) = self.listener(&req.listener_arn).await?;
            if l.arn != req.listener_arn {
                return Err(Elbv2Error::listener_not_found());
            }
            let (lb, lb_rev) = self.parent(&l).await?;
            let key = arn::listener_key(&lb.name, &l.id);
            let lb_key = arn::load_balancer_key(&lb.name);
            let txn = Txn::new()
                .when(Compare::ModRevision(lb_key.clone(), lb_rev))
                .when(Compare::ModRevision(key.clone(), lrev))
                .put(lb_key, encode(&lb)?)
                .delete(key);
            let parts = self
                .forwarding(&l.arn, &lb, &l.target_groups(), &BTreeSet::new())
                .await?;
            Ok::<_, Elbv2Error>(Attempt::Commit(with(txn, parts), ()))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        tracing::info!(listener = %req.listener_arn, "listener deleted");
        Ok(DeleteListenerOutput {})
    }

    /// Reads the listener of `rule_or_listener_arn`, changes it with `change`, and commits it
    /// with its target groups; answers what `change` answered.
    async fn change_listener<T: Clone>(
        &self,
        listener_arn: &str,
        change: impl Fn(&LoadBalancerRecord, &mut ListenerRecord) -> Result<T, Elbv2Error>,
    ) -> Result<T, Elbv2Error> {
        let change = &change;
        retry(self.store.as_ref(), || async move {
            let (mut l, lrev) = self.listener(listener_arn).await?;
            let (lb, lb_rev) = self.parent(&l).await?;
            let before = l.target_groups();
            let out = change(&lb, &mut l)?;
            let txn = self
                .commit_listener(&lb, lb_rev, &l, Some(lrev), &before)
                .await?;
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, out))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())
    }

    pub(super) async fn create_rule(
        &self,
        req: CreateRuleInput,
        _now: f64,
    ) -> Result<CreateRuleOutput, Elbv2Error> {
        refuse_if(&req.transforms, "Transforms")?;
        let conditions = parse_conditions(&req.conditions)?;
        let action = parse_actions(&req.actions)?;
        let priority = u32::try_from(req.priority)
            .ok()
            .filter(|p| (1..=50_000).contains(p))
            .ok_or_else(|| {
                Elbv2Error::validation(format!(
                    "Priority '{}' must be between 1 and 50000",
                    req.priority
                ))
            })?;
        let mut tags = Vec::new();
        add_tags(&mut tags, req.tags.as_deref().unwrap_or_default())?;
        if !matches!(
            self.scope.parse(&req.listener_arn),
            Some(arn::Named::Listener { .. })
        ) {
            return Err(Elbv2Error::listener_not_found());
        }
        let rule = self
            .change_listener(&req.listener_arn, |lb, l| {
                if lb.kind == LbKind::Network {
                    return Err(Elbv2Error::validation(
                        "Rules are not supported for the listeners of network load balancers",
                    ));
                }
                l.check_priority_free(priority, None)?;
                if l.rules.len() >= MAX_RULES {
                    return Err(Elbv2Error::new(
                        ErrorShape::TooManyRulesException,
                        format!("A listener can have at most {MAX_RULES} rules"),
                    ));
                }
                let rule = RuleRecord {
                    arn: self.scope.rule(
                        lb.kind.arn_kind(),
                        &lb.name,
                        &lb.id,
                        &l.id,
                        &arn::new_id(),
                    ),
                    priority,
                    conditions: conditions.clone(),
                    action: action.clone(),
                    tags: tags.clone(),
                };
                l.rules.push(rule.clone());
                Ok(rule)
            })
            .await?;
        Ok(CreateRuleOutput {
            rules: Some(vec![rule_view(&rule)]),
        })
    }

    pub(super) async fn describe_rules(
        &self,
        req: DescribeRulesInput,
        _now: f64,
    ) -> Result<DescribeRulesOutput, Elbv2Error> {
        let items: Vec<(String, Rule)> = match (&req.listener_arn, &req.rule_arns) {
            (Some(_), Some(_)) => {
                return Err(Elbv2Error::validation(
                    "Rule ARNs and a listener ARN cannot be specified at the same time",
                ))
            }
            (None, None) => {
                return Err(Elbv2Error::validation(
                    "You must specify either listener ARNs or rule ARNs",
                ))
            }
            (Some(listener_arn), None) => {
                let (l, _) = self.listener(listener_arn).await?;
                if &l.arn != listener_arn {
                    return Err(Elbv2Error::listener_not_found());
                }
                l.rules_view()
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (format!("{i:05}"), r))
                    .collect()
            }
            (None, Some(arns)) => {
                let mut out = Vec::new();
                for (i, a) in arns.iter().enumerate() {
                    let (l, _) = self.listener(a).await?;
                    let r = l
                        .rules_view()
                        .into_iter()
                        .find(|r| r.rule_arn.as_deref() == Some(a.as_str()))
                        .ok_or_else(Elbv2Error::rule_not_found)?;
                    out.push((format!("{i:05}"), r));
                }
                out
            }
        };
        let (rules, next_marker) = page(items, req.marker.as_deref(), req.page_size)?;
        Ok(DescribeRulesOutput {
            rules: Some(rules),
            next_marker,
        })
    }

    pub(super) async fn modify_rule(
        &self,
        req: ModifyRuleInput,
        _now: f64,
    ) -> Result<ModifyRuleOutput, Elbv2Error> {
        refuse_if(&req.transforms, "Transforms")?;
        let conditions = req
            .conditions
            .as_deref()
            .map(parse_conditions)
            .transpose()?;
        let action = req.actions.as_deref().map(parse_actions).transpose()?;
        let rule_arn = req.rule_arn.clone();
        let rule = self
            .change_listener(&req.rule_arn, |lb, l| {
                if let Some(a) = &action {
                    check_forward_for(lb, a)?;
                }
                if l.default_rule_arn == rule_arn {
                    if conditions.is_some() {
                        return Err(Elbv2Error::not_permitted(
                            "The conditions of a default rule cannot be modified",
                        ));
                    }
                    if let Some(a) = &action {
                        l.default_action = a.clone();
                    }
                    return Ok(l.rules_view().pop().unwrap_or_default());
                }
                let r = l
                    .rules
                    .iter_mut()
                    .find(|r| r.arn == rule_arn)
                    .ok_or_else(Elbv2Error::rule_not_found)?;
                if let Some(c) = &conditions {
                    r.conditions = c.clone();
                }
                if let Some(a) = &action {
                    r.action = a.clone();
                }
                Ok(rule_view(r))
            })
            .await?;
        Ok(ModifyRuleOutput {
            rules: Some(vec![rule]),
        })
    }

    pub(super) async fn delete_rule(
        &self,
        req: DeleteRuleInput,
        _now: f64,
    ) -> Result<DeleteRuleOutput, Elbv2Error> {
        let rule_arn = req.rule_arn.clone();
        self.change_listener(&req.rule_arn, |_, l| {
            if l.default_rule_arn == rule_arn {
                return Err(Elbv2Error::not_permitted(
                    "A default rule cannot be deleted",
                ));
            }
            l.rules.retain(|r| r.arn != rule_arn);
            Ok(())
        })
        .await?;
        Ok(DeleteRuleOutput {})
    }

    pub(super) async fn set_rule_priorities(
        &self,
        req: SetRulePrioritiesInput,
        _now: f64,
    ) -> Result<SetRulePrioritiesOutput, Elbv2Error> {
        let mut wanted: BTreeMap<String, u32> = BTreeMap::new();
        for p in &req.rule_priorities {
            let (Some(a), Some(n)) = (&p.rule_arn, p.priority) else {
                return Err(Elbv2Error::validation(
                    "Each rule priority pair must specify a rule ARN and a priority",
                ));
            };
            let n = u32::try_from(n)
                .ok()
                .filter(|n| (1..=50_000).contains(n))
                .ok_or_else(|| {
                    Elbv2Error::validation(format!("Priority '{n}' must be between 1 and 50000"))
                })?;
            if !matches!(self.scope.parse(a), Some(arn::Named::Rule { .. })) {
                return Err(Elbv2Error::rule_not_found());
            }
            if wanted.insert(a.clone(), n).is_some() {
                return Err(Elbv2Error::validation(format!(
                    "Rule '{a}' is specified more than once"
                )));
            }
        }
        let rules = retry(self.store.as_ref(), || async {
            // Every listener the rules belong to, changed together in one transaction.
            let mut listeners: BTreeMap<String, (ListenerRecord, u64)> = BTreeMap::new();
            for a in wanted.keys() {
                let (l, rev) = self.listener(a).await?;
                listeners.entry(l.arn.clone()).or_insert((l, rev));
            }
            let mut txn = Txn::new();
            let mut out = Vec::new();
            for (l, rev) in listeners.values_mut() {
                for (a, n) in &wanted {
                    if l.default_rule_arn == *a {
                        return Err(Elbv2Error::not_permitted(
                            "The priority of a default rule cannot be modified",
                        ));
                    }
                    if let Some(r) = l.rules.iter_mut().find(|r| &r.arn == a) {
                        r.priority = *n;
                    }
                }
                let mut seen = BTreeSet::new();
                if let Some(r) = l.rules.iter().find(|r| !seen.insert(r.priority)) {
                    return Err(Elbv2Error::new(
                        ErrorShape::PriorityInUseException,
                        format!("Priority '{}' is currently in use", r.priority),
                    ));
                }
                let key = arn::listener_key(&l.load_balancer_name, &l.id);
                txn = txn
                    .when(Compare::ModRevision(key.clone(), *rev))
                    .put(key, encode(&*l)?);
                out.extend(
                    l.rules
                        .iter()
                        .filter(|r| wanted.contains_key(&r.arn))
                        .map(rule_view),
                );
            }
            Ok::<_, Elbv2Error>(Attempt::Commit(txn, out))
        })
        .await?
        .map_err(|_| Elbv2Error::contended())?;
        Ok(SetRulePrioritiesOutput { rules: Some(rules) })
    }

    /// The tags of a listener or rule, changed with `change`.
    pub(super) async fn tag_listener_or_rule(
        &self,
        resource_arn: &str,
        change: impl Fn(&mut Vec<Tag>) -> Result<(), Elbv2Error>,
    ) -> Result<Vec<Tag>, Elbv2Error> {
        let resource_arn = resource_arn.to_string();
        self.change_listener(&resource_arn.clone(), |_, l| {
            let tags = if l.arn == resource_arn {
                &mut l.tags
            } else if l.default_rule_arn == resource_arn {
                &mut l.default_rule_tags
            } else {
                &mut l
                    .rules
                    .iter_mut()
                    .find(|r| r.arn == resource_arn)
                    .ok_or_else(Elbv2Error::rule_not_found)?
                    .tags
            };
            change(tags)?;
            Ok(tags.clone())
        })
        .await
    }
}

/// A rule as the model shows it.
fn rule_view(r: &RuleRecord) -> Rule {
    Rule {
        rule_arn: Some(r.arn.clone()),
        priority: Some(r.priority.to_string()),
        conditions: Some(r.conditions.iter().map(|c| c.view()).collect()),
        actions: Some(r.action.view()),
        is_default: Some(false),
        ..Default::default()
    }
}
