//! Listener rules as ECS's blue/green, linear and canary deployments use them: the forward
//! action of a rule (or of a listener's default rule, named by the rule's or the listener's
//! ARN) read, and its target groups' weights rewritten, on the store.
//!
//! A weight change keeps the rule's target groups, so nothing else (the groups' `used_by`)
//! changes with it: the write is one compare-and-swap on the listener's record.

use crate::arn::LISTENERS;
use crate::error::Elbv2Error;
use crate::record::{decode, encode, Forward, ListenerRecord, Weighted};
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Store, Txn};

/// A rule's forward action and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleForward {
    /// The listener's ARN.
    pub listener_arn: String,
    /// The target groups it forwards to, with their weights.
    pub target_groups: Vec<Weighted>,
}

fn forward_mut<'a>(l: &'a mut ListenerRecord, arn: &str) -> Option<&'a mut Forward> {
    if l.arn == arn || l.default_rule_arn == arn {
        return Some(&mut l.default_action);
    }
    l.rules
        .iter_mut()
        .find(|r| r.arn == arn)
        .map(|r| &mut r.action)
}

/// The listener record holding the rule or listener `arn`, with its key and `mod_revision`.
async fn holder(
    store: &dyn Store,
    arn: &str,
) -> Result<Option<(String, ListenerRecord, u64)>, Elbv2Error> {
    if !arn.starts_with("arn:") {
        return Ok(None);
    }
    let page = store.list(LISTENERS, None, 0).await?;
    for kv in &page.items {
        let mut l: ListenerRecord = decode(&kv.value)?;
        if forward_mut(&mut l, arn).is_some() {
            return Ok(Some((kv.key.clone(), l, kv.mod_revision)));
        }
    }
    Ok(None)
}

/// The forward action of the rule (or listener) `arn`, if it exists.
pub async fn rule_forward(store: &dyn Store, arn: &str) -> Result<Option<RuleForward>, Elbv2Error> {
    Ok(holder(store, arn).await?.and_then(|(_, mut l, _)| {
        let target_groups = forward_mut(&mut l, arn)?.target_groups.clone();
        Some(RuleForward {
            listener_arn: l.arn.clone(),
            target_groups,
        })
    }))
}

/// Sets the weights of the target groups `weights` names in the forward action of the rule
/// (or listener) `arn`; the action must forward to every one of them. Answers whether anything
/// changed.
pub async fn set_rule_weights(
    store: &dyn Store,
    arn: &str,
    weights: &[(String, u32)],
) -> Result<bool, Elbv2Error> {
    retry(store, || async {
        let Some((key, mut l, rev)) = holder(store, arn).await? else {
            return Err(Elbv2Error::rule_not_found());
        };
        let Some(f) = forward_mut(&mut l, arn) else {
            return Err(Elbv2Error::rule_not_found());
        };
        let mut changed = false;
        for (tg, w) in weights {
            let Some(t) = f
                .target_groups
                .iter_mut()
                .find(|t| &t.target_group_arn == tg)
            else {
                return Err(Elbv2Error::not_permitted(format!(
                    "The rule {arn} does not forward to the target group {tg}"
                )));
            };
            changed |= t.weight != *w;
            t.weight = *w;
        }
        if !changed {
            return Ok(Attempt::Done(false));
        }
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .put(key, encode(&l)?);
        Ok(Attempt::Commit(txn, true))
    })
    .await?
    .map_err(|_| Elbv2Error::contended())
}
