//! Tags on load balancers, target groups, listeners and rules: AddTags (at most 50 per
//! resource, a key at most once per request), RemoveTags, DescribeTags. Every ARN must name an
//! existing resource (its not-found error otherwise) before any is changed.

use super::Elbv2;
use crate::arn::{self, Named};
use crate::error::Elbv2Error;
use crate::record::{add_tags, encode, tags_view, Tag};
use crate::shapes::*;
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Txn};

impl Elbv2 {
    /// The tags of the resource `resource_arn` names.
    async fn tags_of(&self, resource_arn: &str) -> Result<Vec<Tag>, Elbv2Error> {
        match self.scope.parse(resource_arn) {
            Some(Named::LoadBalancer { .. }) => Ok(self.load_balancer(resource_arn).await?.0.tags),
            Some(Named::TargetGroup { .. }) => Ok(self.target_group(resource_arn).await?.0.tags),
            Some(Named::Listener { .. }) => Ok(self.listener(resource_arn).await?.0.tags),
            Some(Named::Rule { .. }) => {
                let (l, _) = self.listener(resource_arn).await?;
                if l.default_rule_arn == resource_arn {
                    return Ok(l.default_rule_tags);
                }
                l.rules
                    .into_iter()
                    .find(|r| r.arn == resource_arn)
                    .map(|r| r.tags)
                    .ok_or_else(Elbv2Error::rule_not_found)
            }
            None => Err(Elbv2Error::validation(format!(
                "'{resource_arn}' is not the ARN of a load balancer, target group, listener or rule"
            ))),
        }
    }

    /// Changes the tags of the resource `resource_arn` names with `change`.
    async fn change_tags(
        &self,
        resource_arn: &str,
        change: impl Fn(&mut Vec<Tag>) -> Result<(), Elbv2Error>,
    ) -> Result<(), Elbv2Error> {
        let change = &change;
        match self.scope.parse(resource_arn) {
            Some(Named::LoadBalancer { .. }) => retry(self.store.as_ref(), || async move {
                let (mut lb, rev) = self.load_balancer(resource_arn).await?;
                change(&mut lb.tags)?;
                let key = arn::load_balancer_key(&lb.name);
                let txn = Txn::new()
                    .when(Compare::ModRevision(key.clone(), rev))
                    .put(key, encode(&lb)?);
                Ok::<_, Elbv2Error>(Attempt::Commit(txn, ()))
            })
            .await?
            .map_err(|_| Elbv2Error::contended()),
            Some(Named::TargetGroup { .. }) => retry(self.store.as_ref(), || async move {
                let (mut g, rev) = self.target_group(resource_arn).await?;
                change(&mut g.tags)?;
                let key = arn::target_group_key(&g.name);
                let txn = Txn::new()
                    .when(Compare::ModRevision(key.clone(), rev))
                    .put(key, encode(&g)?);
                Ok::<_, Elbv2Error>(Attempt::Commit(txn, ()))
            })
            .await?
            .map_err(|_| Elbv2Error::contended()),
            Some(Named::Listener { .. } | Named::Rule { .. }) => self
                .tag_listener_or_rule(resource_arn, change)
                .await
                .map(|_| ()),
            None => Err(Elbv2Error::validation(format!(
                "'{resource_arn}' is not the ARN of a load balancer, target group, listener or rule"
            ))),
        }
    }

    pub(super) async fn add_tags(
        &self,
        req: AddTagsInput,
        _now: f64,
    ) -> Result<AddTagsOutput, Elbv2Error> {
        // Refuse a bad request before changing anything.
        add_tags(&mut Vec::new(), &req.tags)?;
        for a in &req.resource_arns {
            self.tags_of(a).await?;
        }
        for a in &req.resource_arns {
            self.change_tags(a, |tags| add_tags(tags, &req.tags))
                .await?;
        }
        Ok(AddTagsOutput {})
    }

    pub(super) async fn remove_tags(
        &self,
        req: RemoveTagsInput,
        _now: f64,
    ) -> Result<RemoveTagsOutput, Elbv2Error> {
        for a in &req.resource_arns {
            self.tags_of(a).await?;
        }
        for a in &req.resource_arns {
            self.change_tags(a, |tags| {
                tags.retain(|t| !req.tag_keys.contains(&t.key));
                Ok(())
            })
            .await?;
        }
        Ok(RemoveTagsOutput {})
    }

    pub(super) async fn describe_tags(
        &self,
        req: DescribeTagsInput,
        _now: f64,
    ) -> Result<DescribeTagsOutput, Elbv2Error> {
        let mut out = Vec::new();
        for a in &req.resource_arns {
            let tags = self.tags_of(a).await?;
            out.push(TagDescription {
                resource_arn: Some(a.clone()),
                tags: Some(tags_view(&tags)),
            });
        }
        Ok(DescribeTagsOutput {
            tag_descriptions: Some(out),
        })
    }
}
