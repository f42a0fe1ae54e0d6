//! ELB's ARNs (pure) and the store keys they lead to.
//!
//! - load balancer: `arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID`
//!   (`net` for a network load balancer), stored at `elbv2/load-balancers/NAME`;
//! - listener: `...:listener/app/NAME/LBID/ID`, stored at `elbv2/listeners/NAME/ID` with its
//!   rules;
//! - rule: `...:listener-rule/app/NAME/LBID/LISTENERID/ID`, inside its listener's record;
//! - target group: `...:targetgroup/NAME/ID`, stored at `elbv2/target-groups/NAME`, its targets
//!   at `elbv2/targets/NAME`.
//!
//! IDs are 16 hexadecimal characters. A parsed ARN only names a key: the record found there
//! must carry the same ARN (a resource deleted and created again under the same name has
//! another id), and an ARN of another region or account names nothing here.

/// Prefix of every ELB record.
pub const PREFIX: &str = "elbv2/";
/// Load balancer records, by name.
pub const LOAD_BALANCERS: &str = "elbv2/load-balancers/";
/// Listener records (with their rules), by load balancer name and listener id.
pub const LISTENERS: &str = "elbv2/listeners/";
/// Target group records, by name.
pub const TARGET_GROUPS: &str = "elbv2/target-groups/";
/// Target registrations and their health, one record per target group, by name.
pub const TARGETS: &str = "elbv2/targets/";

/// The store key of a load balancer.
pub fn load_balancer_key(name: &str) -> String {
    format!("{LOAD_BALANCERS}{name}")
}
/// The store key of a listener.
pub fn listener_key(lb_name: &str, id: &str) -> String {
    format!("{LISTENERS}{lb_name}/{id}")
}
/// The prefix of a load balancer's listeners.
pub fn listeners_of(lb_name: &str) -> String {
    format!("{LISTENERS}{lb_name}/")
}
/// The store key of a target group.
pub fn target_group_key(name: &str) -> String {
    format!("{TARGET_GROUPS}{name}")
}
/// The store key of a target group's targets.
pub fn targets_key(name: &str) -> String {
    format!("{TARGETS}{name}")
}

/// The region and account ARNs are made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The region.
    pub region: String,
    /// The account id.
    pub account: String,
}

impl Scope {
    fn base(&self) -> String {
        format!(
            "arn:aws:elasticloadbalancing:{}:{}:",
            self.region, self.account
        )
    }
    /// A load balancer's ARN (`kind` is `app` or `net`).
    pub fn load_balancer(&self, kind: &str, name: &str, id: &str) -> String {
        format!("{}loadbalancer/{kind}/{name}/{id}", self.base())
    }
    /// A listener's ARN.
    pub fn listener(&self, kind: &str, lb_name: &str, lb_id: &str, id: &str) -> String {
        format!("{}listener/{kind}/{lb_name}/{lb_id}/{id}", self.base())
    }
    /// A rule's ARN.
    pub fn rule(
        &self,
        kind: &str,
        lb_name: &str,
        lb_id: &str,
        listener_id: &str,
        id: &str,
    ) -> String {
        format!(
            "{}listener-rule/{kind}/{lb_name}/{lb_id}/{listener_id}/{id}",
            self.base()
        )
    }
    /// A target group's ARN.
    pub fn target_group(&self, name: &str, id: &str) -> String {
        format!("{}targetgroup/{name}/{id}", self.base())
    }

    /// The resource part of an ARN of this region and account, split on `/`.
    fn resource<'a>(&self, arn: &'a str) -> Option<Vec<&'a str>> {
        let rest = arn.strip_prefix(&self.base())?;
        Some(rest.split('/').collect())
    }

    /// What an ARN names, if it is one of this region's and account's.
    pub fn parse(&self, arn: &str) -> Option<Named> {
        let parts = self.resource(arn)?;
        match parts.as_slice() {
            ["loadbalancer", "app" | "net", name, _] => Some(Named::LoadBalancer {
                name: (*name).to_string(),
            }),
            ["listener", "app" | "net", name, _, id] => Some(Named::Listener {
                lb_name: (*name).to_string(),
                id: (*id).to_string(),
            }),
            ["listener-rule", "app" | "net", name, _, listener, _] => Some(Named::Rule {
                lb_name: (*name).to_string(),
                listener_id: (*listener).to_string(),
            }),
            ["targetgroup", name, _] => Some(Named::TargetGroup {
                name: (*name).to_string(),
            }),
            _ => None,
        }
    }
}

/// What an ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A load balancer, by name.
    LoadBalancer {
        /// Its name.
        name: String,
    },
    /// A listener.
    Listener {
        /// Its load balancer's name.
        lb_name: String,
        /// Its id.
        id: String,
    },
    /// A rule (inside its listener's record).
    Rule {
        /// Its load balancer's name.
        lb_name: String,
        /// Its listener's id.
        listener_id: String,
    },
    /// A target group, by name.
    TargetGroup {
        /// Its name.
        name: String,
    },
}

/// A new 16-hex-character id.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn arns_parse_back_to_what_they_name() {
        let s = scope();
        let cases = [
            (
                s.load_balancer("app", "web", "0123456789abcdef"),
                Named::LoadBalancer { name: "web".into() },
            ),
            (
                s.listener("net", "web", "0123456789abcdef", "aaaa"),
                Named::Listener {
                    lb_name: "web".into(),
                    id: "aaaa".into(),
                },
            ),
            (
                s.rule("app", "web", "1", "2", "3"),
                Named::Rule {
                    lb_name: "web".into(),
                    listener_id: "2".into(),
                },
            ),
            (
                s.target_group("tg", "1"),
                Named::TargetGroup { name: "tg".into() },
            ),
        ];
        for (arn, want) in cases {
            assert_eq!(s.parse(&arn), Some(want), "{arn}");
        }
        assert_eq!(
            s.parse("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg/1"),
            None
        );
        assert_eq!(s.parse("tg"), None);
        assert_eq!(new_id().len(), 16);
    }
}
