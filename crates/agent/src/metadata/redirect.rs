//! How a task's traffic to `169.254.170.2:80` reaches this agent's endpoint: one NAT rule per
//! container (bridge), per task (awsvpc, host), installed before the containers start and
//! removed when the task stops; and, for bridge and awsvpc tasks, a second rule of the same
//! match for UDP port 53, to the task resolver on the same port number ([`super::dns`]).
//!
//! Why per task and not one rule for the host (as the ECS agent does): several agents may drive
//! one Docker engine (the test suite runs a server and agents per module; a region runs six
//! agents on one machine), each listening on its own port. So each rule matches only its task's
//! traffic:
//! - bridge: the container's MAC address, which the agent chooses and gives Docker at create,
//!   so the rule exists before the container's first packet (its IP is known only once it
//!   started): `nat PREROUTING -m mac --mac-source MAC -d 169.254.170.2 -p tcp --dport 80 -j
//!   DNAT --to-destination BRIDGE-GATEWAY:PORT`;
//! - awsvpc: the same match on the pause container's MAC (the task's, fixed by the control
//!   plane), to the task network's gateway;
//! - host: the containers share the host's network namespace, so the packet is local: `nat
//!   OUTPUT -m cgroup --path flotilla/TASK-ID ... -j REDIRECT --to-ports PORT`, the cgroup v2
//!   path of the task's cgroup, which every container of the task has as parent.
//!
//! Every rule carries a comment naming the agent's instance and the task
//! ([`Tag`]), so an agent that starts removes the rules a previous run of itself left (their
//! port is gone), and the rules of other agents whose task has no container left.
//!
//! What this is: the rules as data ([`Rule`], built by pure functions and tested as strings),
//! the parsing of `iptables -S`, and [`Redirector`], the I/O behind a trait ([`Iptables`] runs
//! `iptables -w`, which waits for the xtables lock other agents and Docker hold; the fake in
//! tests records).

use async_trait::async_trait;
use std::net::Ipv4Addr;

/// The address every task reaches the endpoint at, as in ECS.
pub const ENDPOINT_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
/// The port every task reaches the endpoint at.
pub const ENDPOINT_PORT: u16 = 80;
/// The port every task reaches its resolver at (UDP).
pub const DNS_PORT: u16 = 53;
/// The first word of every rule's comment.
pub const COMMENT_PREFIX: &str = "flotilla-task-endpoint";

/// The chain of a rule (always in the `nat` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chain {
    /// Packets arriving from a bridge (bridge and awsvpc tasks).
    Prerouting,
    /// Packets of local processes (host tasks).
    Output,
}

impl Chain {
    /// The chain's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Prerouting => "PREROUTING",
            Chain::Output => "OUTPUT",
        }
    }

    fn parse(s: &str) -> Option<Chain> {
        match s {
            "PREROUTING" => Some(Chain::Prerouting),
            "OUTPUT" => Some(Chain::Output),
            _ => None,
        }
    }
}

/// Whose rule it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The container instance id of the agent that installed it.
    pub instance_id: String,
    /// The task ARN.
    pub task_arn: String,
}

impl Tag {
    /// The comment: `flotilla-task-endpoint instance=ID task=ARN`.
    pub fn comment(&self) -> String {
        format!(
            "{COMMENT_PREFIX} instance={} task={}",
            self.instance_id, self.task_arn
        )
    }

    /// The tag a comment names, if it is one of ours.
    pub fn parse(comment: &str) -> Option<Tag> {
        let mut words = comment.split_whitespace();
        if words.next()? != COMMENT_PREFIX {
            return None;
        }
        let instance_id = words.next()?.strip_prefix("instance=")?.to_string();
        let task_arn = words.next()?.strip_prefix("task=")?.to_string();
        Some(Tag {
            instance_id,
            task_arn,
        })
    }
}

/// Which of a task's packets a rule catches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Arriving from a bridge with this source MAC (a bridge container, an awsvpc task).
    Mac(String),
    /// Sent by a process of this cgroup v2 path, relative to the hierarchy's root (a host task).
    Cgroup(String),
}

/// One NAT rule, as the arguments after `-A CHAIN` / `-D CHAIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The chain.
    pub chain: Chain,
    /// The match and target.
    pub args: Vec<String>,
}

impl Rule {
    /// The rule that sends `source`'s traffic to `169.254.170.2:80` to the endpoint:
    /// `gateway:port` (DNAT, from a bridge) or `port` on the host (REDIRECT, local traffic).
    pub fn to_endpoint(source: &Source, gateway: Option<Ipv4Addr>, port: u16, tag: &Tag) -> Rule {
        Self::build(source, gateway, port, tag, "tcp", ENDPOINT_PORT)
    }

    /// The rule that sends `source`'s DNS queries (UDP) to `169.254.170.2:53` to the task
    /// resolver on the endpoint's port number ([`super::dns`]).
    pub fn dns_to_endpoint(
        source: &Source,
        gateway: Option<Ipv4Addr>,
        port: u16,
        tag: &Tag,
    ) -> Rule {
        Self::build(source, gateway, port, tag, "udp", DNS_PORT)
    }

    fn build(
        source: &Source,
        gateway: Option<Ipv4Addr>,
        port: u16,
        tag: &Tag,
        protocol: &str,
        dport: u16,
    ) -> Rule {
        let mut args: Vec<String> = Vec::new();
        let chain = match source {
            Source::Mac(mac) => {
                args.extend(["-m", "mac", "--mac-source"].map(String::from));
                args.push(mac.to_ascii_lowercase());
                Chain::Prerouting
            }
            Source::Cgroup(path) => {
                args.extend(["-m", "cgroup", "--path"].map(String::from));
                args.push(path.clone());
                Chain::Output
            }
        };
        args.push("-d".into());
        args.push(format!("{ENDPOINT_ADDRESS}/32"));
        args.extend(["-p", protocol, "-m", protocol, "--dport"].map(String::from));
        args.push(dport.to_string());
        args.extend(["-m", "comment", "--comment"].map(String::from));
        args.push(tag.comment());
        match (chain, gateway) {
            (Chain::Prerouting, Some(gw)) => {
                args.extend(["-j", "DNAT", "--to-destination"].map(String::from));
                args.push(format!("{gw}:{port}"));
            }
            _ => {
                args.extend(["-j", "REDIRECT", "--to-ports"].map(String::from));
                args.push(port.to_string());
            }
        }
        Rule { chain, args }
    }

    /// The tag in the rule's comment, if it is one of ours.
    pub fn tag(&self) -> Option<Tag> {
        let at = self.args.iter().position(|a| a == "--comment")?;
        Tag::parse(self.args.get(at + 1)?)
    }
}

/// Splits one line of `iptables -S` into words (double quotes group, as iptables prints a
/// comment with spaces).
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// The rules of `iptables -t nat -S` output that carry one of our tags.
pub fn parse_listing(text: &str) -> Vec<Rule> {
    text.lines()
        .filter_map(|line| {
            let words = split_words(line);
            let (flag, chain) = (words.first()?, words.get(1)?);
            if flag != "-A" {
                return None;
            }
            let rule = Rule {
                chain: Chain::parse(chain)?,
                args: words[2..].to_vec(),
            };
            rule.tag().map(|_| rule)
        })
        .collect()
}

/// What a starting agent removes: every rule of its own instance (the port they send to is
/// gone with the previous run), and the rules of other instances whose task has no container
/// left (`task_has_containers` answers). A rule of another instance is installed only after its
/// task's containers are created, so a live task's rule is never taken.
pub fn stale<'r>(
    rules: &'r [Rule],
    instance_id: &str,
    task_has_containers: impl Fn(&str) -> bool,
) -> Vec<&'r Rule> {
    rules
        .iter()
        .filter(|r| {
            r.tag()
                .is_some_and(|t| t.instance_id == instance_id || !task_has_containers(&t.task_arn))
        })
        .collect()
}

/// Installs and removes NAT rules.
#[async_trait]
pub trait Redirector: Send + Sync + 'static {
    /// Whether rules can be installed at all (`Err`: why not).
    async fn check(&self) -> Result<(), String>;
    /// Installs `rule` unless it is there.
    async fn install(&self, rule: &Rule) -> Result<(), String>;
    /// Removes `rule`; absent is fine.
    async fn remove(&self, rule: &Rule) -> Result<(), String>;
    /// Every rule with one of our tags.
    async fn list(&self) -> Result<Vec<Rule>, String>;
}

/// [`Redirector`] with the `iptables` command (the host's, whichever backend it uses: Docker
/// installs its own rules with the same command).
#[derive(Debug, Clone)]
pub struct Iptables {
    /// The command.
    pub command: String,
}

impl Default for Iptables {
    fn default() -> Self {
        Iptables {
            command: "iptables".into(),
        }
    }
}

impl Iptables {
    async fn run(&self, args: &[String]) -> Result<(bool, String), String> {
        let out = tokio::process::Command::new(&self.command)
            .arg("-w")
            .args(["-t", "nat"])
            .args(args)
            .output()
            .await
            .map_err(|e| format!("{}: {e}", self.command))?;
        let text = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        };
        Ok((out.status.success(), text))
    }

    fn with(flag: &str, rule: &Rule) -> Vec<String> {
        let mut v = vec![flag.to_string(), rule.chain.as_str().to_string()];
        v.extend(rule.args.iter().cloned());
        v
    }
}

#[async_trait]
impl Redirector for Iptables {
    async fn check(&self) -> Result<(), String> {
        match self.run(&["-S".into(), "OUTPUT".into()]).await? {
            (true, _) => Ok(()),
            (false, e) => Err(format!("{} -t nat -S: {e}", self.command)),
        }
    }

    async fn install(&self, rule: &Rule) -> Result<(), String> {
        if self.run(&Self::with("-C", rule)).await?.0 {
            return Ok(());
        }
        match self.run(&Self::with("-I", rule)).await? {
            (true, _) => Ok(()),
            (false, e) => Err(format!("iptables -I {}: {e}", rule.chain.as_str())),
        }
    }

    async fn remove(&self, rule: &Rule) -> Result<(), String> {
        // Deleting until it is gone also takes a rule installed twice by a race.
        for _ in 0..4 {
            if !self.run(&Self::with("-C", rule)).await?.0 {
                return Ok(());
            }
            if let (false, e) = self.run(&Self::with("-D", rule)).await? {
                // Another agent on this host (dev runs two) may have removed it between the
                // check and the delete: gone is what was asked.
                if !self.run(&Self::with("-C", rule)).await?.0 {
                    return Ok(());
                }
                return Err(format!("iptables -D {}: {e}", rule.chain.as_str()));
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Rule>, String> {
        let mut rules = Vec::new();
        for chain in [Chain::Prerouting, Chain::Output] {
            match self.run(&["-S".into(), chain.as_str().into()]).await? {
                (true, text) => rules.extend(parse_listing(&text)),
                (false, e) => return Err(format!("iptables -S {}: {e}", chain.as_str())),
            }
        }
        Ok(rules)
    }
}

/// A [`Redirector`] that keeps its rules in memory (engine tests).
#[derive(Debug, Default)]
pub struct RecordingRedirector {
    rules: std::sync::Mutex<Vec<Rule>>,
}

impl RecordingRedirector {
    /// The rules installed now.
    pub fn rules(&self) -> Vec<Rule> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Redirector for RecordingRedirector {
    async fn check(&self) -> Result<(), String> {
        Ok(())
    }
    async fn install(&self, rule: &Rule) -> Result<(), String> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
        Ok(())
    }
    async fn remove(&self, rule: &Rule) -> Result<(), String> {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|r| r != rule);
        Ok(())
    }
    async fn list(&self) -> Result<Vec<Rule>, String> {
        Ok(self.rules())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(task: &str) -> Tag {
        Tag {
            instance_id: "i1".into(),
            task_arn: format!("arn:aws:ecs:us-east-1:1:task/c/{task}"),
        }
    }

    #[test]
    fn bridge_and_awsvpc_rules_match_the_mac_and_dnat_to_the_gateway() {
        let r = Rule::to_endpoint(
            &Source::Mac("02:F1:00:00:00:01".into()),
            Some(Ipv4Addr::new(172, 17, 0, 1)),
            40123,
            &tag("t1"),
        );
        assert_eq!(r.chain, Chain::Prerouting);
        assert_eq!(
            r.args.join(" "),
            "-m mac --mac-source 02:f1:00:00:00:01 -d 169.254.170.2/32 -p tcp -m tcp --dport 80 \
             -m comment --comment flotilla-task-endpoint instance=i1 task=arn:aws:ecs:us-east-1:1:task/c/t1 \
             -j DNAT --to-destination 172.17.0.1:40123"
        );
        assert_eq!(r.tag(), Some(tag("t1")));
    }

    #[test]
    fn dns_rules_send_udp_53_to_the_same_port() {
        let r = Rule::dns_to_endpoint(
            &Source::Mac("02:f1:00:00:00:01".into()),
            Some(Ipv4Addr::new(172, 17, 0, 1)),
            40123,
            &tag("t1"),
        );
        assert_eq!(
            r.args.join(" "),
            "-m mac --mac-source 02:f1:00:00:00:01 -d 169.254.170.2/32 -p udp -m udp --dport 53 \
             -m comment --comment flotilla-task-endpoint instance=i1 task=arn:aws:ecs:us-east-1:1:task/c/t1 \
             -j DNAT --to-destination 172.17.0.1:40123"
        );
        assert_eq!(r.tag(), Some(tag("t1")));
    }

    #[test]
    fn host_rules_match_the_task_cgroup_and_redirect() {
        let r = Rule::to_endpoint(
            &Source::Cgroup("flotilla/t2".into()),
            None,
            40123,
            &tag("t2"),
        );
        assert_eq!(r.chain, Chain::Output);
        let text = r.args.join(" ");
        assert!(
            text.starts_with("-m cgroup --path flotilla/t2 -d 169.254.170.2/32"),
            "{text}"
        );
        assert!(text.ends_with("-j REDIRECT --to-ports 40123"), "{text}");
    }

    #[test]
    fn listings_are_parsed_back_into_the_same_rules() {
        let r = Rule::to_endpoint(
            &Source::Mac("02:f1:00:00:00:01".into()),
            Some(Ipv4Addr::new(172, 17, 0, 1)),
            40123,
            &tag("t1"),
        );
        let h = Rule::to_endpoint(
            &Source::Cgroup("flotilla/t2".into()),
            None,
            40123,
            &tag("t2"),
        );
        // As iptables-nft 1.8 prints them.
        let listing = "-P PREROUTING ACCEPT\n\
            -A PREROUTING -d 169.254.170.2/32 -p tcp -m mac --mac-source 02:f1:00:00:00:01 -m tcp --dport 80 -m comment --comment \"flotilla-task-endpoint instance=i1 task=arn:aws:ecs:us-east-1:1:task/c/t1\" -j DNAT --to-destination 172.17.0.1:40123\n\
            -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
            -A OUTPUT -d 169.254.170.2/32 -p tcp -m cgroup --path flotilla/t2 -m tcp --dport 80 -m comment --comment \"flotilla-task-endpoint instance=i1 task=arn:aws:ecs:us-east-1:1:task/c/t2\" -j REDIRECT --to-ports 40123\n";
        let parsed = parse_listing(listing);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].tag(), r.tag());
        assert_eq!(parsed[1].tag(), h.tag());
        assert_eq!(parsed[1].chain, Chain::Output);
        assert_eq!(
            split_words(r#"-A X -m comment --comment "a b \"c\"" -j Y"#),
            vec![
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a b \"c\"",
                "-j",
                "Y"
            ]
        );
        assert_eq!(split_words(r#"--comment """#), vec!["--comment", ""]);
    }

    #[test]
    fn a_starting_agent_takes_its_own_rules_and_the_orphans_of_others() {
        let mine = Rule::to_endpoint(&Source::Cgroup("flotilla/a".into()), None, 1, &tag("a"));
        let mut other_live = mine.clone();
        other_live.args = Rule::to_endpoint(
            &Source::Cgroup("flotilla/b".into()),
            None,
            2,
            &Tag {
                instance_id: "i2".into(),
                task_arn: "live".into(),
            },
        )
        .args;
        let mut other_dead = other_live.clone();
        other_dead.args = Rule::to_endpoint(
            &Source::Cgroup("flotilla/c".into()),
            None,
            2,
            &Tag {
                instance_id: "i2".into(),
                task_arn: "dead".into(),
            },
        )
        .args;
        let rules = vec![mine.clone(), other_live, other_dead.clone()];
        let gone = stale(&rules, "i1", |arn| arn == "live");
        assert_eq!(gone, vec![&mine, &other_dead]);
        assert_eq!(Tag::parse("flotilla-task-endpoint instance=x"), None);
        assert_eq!(Tag::parse("docker rule"), None);
    }
}
