//! Table-driven tests of the cluster query language: every example of ECS's
//! "Cluster query language" documentation page and every operator (symbol
//! and word form), each with the instances it must match on a fixed fleet;
//! then invalid expressions with the position and expectation of the error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_scheduler::query::{self, parse_timestamp};
use flotilla_scheduler::{ContainerInstance, RunningTask};

fn task(group: &str) -> RunningTask {
    RunningTask {
        arn: None,
        group: group.into(),
        family: "f".into(),
        revision: 1,
        started_by: None,
    }
}

/// a: t2.small  us-east-1a linux   i-abcd1234 agent 1.1.0  2018-06-01  [service:production]
/// b: t2.medium us-east-1b linux   i-wxyx7890 agent 1.2.3  2018-07-01  [database, database]
/// c: g2.2xlarge us-east-1d windows i-00000001 agent 1.10.0 2018-06-18T22:28:28Z [] disconnected
/// d: m5.large  us-east-1d (no os) (no ec2 id) (no agent) 2019-01-01 [service:production, batch]
///    stack=prod, gpu (no value)
fn fleet() -> Vec<ContainerInstance> {
    let ts = |s| parse_timestamp(s).unwrap();
    let mut a = ContainerInstance::new("a", 1024, 1024)
        .with_attribute("ecs.instance-type", "t2.small")
        .with_attribute("ecs.availability-zone", "us-east-1a")
        .with_attribute("ecs.os-type", "linux");
    a.ec2_instance_id = Some("i-abcd1234".into());
    a.agent_version = Some("1.1.0".into());
    a.registered_at = ts("2018-06-01T00:00:00Z");
    a.tasks = vec![task("service:production")];
    let mut b = ContainerInstance::new("b", 1024, 1024)
        .with_attribute("ecs.instance-type", "t2.medium")
        .with_attribute("ecs.availability-zone", "us-east-1b")
        .with_attribute("ecs.os-type", "linux");
    b.ec2_instance_id = Some("i-wxyx7890".into());
    b.agent_version = Some("1.2.3".into());
    b.registered_at = ts("2018-07-01T00:00:00Z");
    b.tasks = vec![task("database"), task("database")];
    let mut c = ContainerInstance::new("c", 1024, 1024)
        .with_attribute("ecs.instance-type", "g2.2xlarge")
        .with_attribute("ecs.availability-zone", "us-east-1d")
        .with_attribute("ecs.os-type", "windows");
    c.ec2_instance_id = Some("i-00000001".into());
    c.agent_version = Some("1.10.0".into());
    c.registered_at = ts("2018-06-18T22:28:28Z");
    c.agent_connected = false;
    let mut d = ContainerInstance::new("d", 1024, 1024)
        .with_attribute("ecs.instance-type", "m5.large")
        .with_attribute("ecs.availability-zone", "us-east-1d")
        .with_attribute("stack", "prod");
    d.attributes.insert("gpu".into(), None);
    d.registered_at = ts("2019-01-01");
    d.tasks = vec![task("service:production"), task("batch")];
    vec![a, b, c, d]
}

const CASES: &[(&str, &str)] = &[
    // --- The examples of ECS's documentation page ---
    ("attribute:ecs.instance-type == t2.small", "a"),
    ("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]", "ab"),
    ("task:group == service:production", "ad"),
    ("not(task:group == database)", "acd"),
    ("runningTasksCount == 1", "a"),
    ("runningTasksCount == 0", "c"),
    ("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']", "ab"),
    ("attribute:ecs.instance-type =~ g2.*", "c"),
    ("attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone != us-east-1d", "ab"),
    ("registeredAt < 2018-06-18T22:28:28+00:00", "a"),
    ("agentVersion != 1.1.*", "bcd"),
    ("attribute:ecs.os-type exists", "abc"),
    ("attribute:ecs.instance-type == t2.*", "ab"),
    ("attribute:ecs.instance-type in [t2.small, t2.medium]", "ab"),
    ("attribute:ecs.instance-type == t2.small or attribute:ecs.instance-type == m5.large", "ad"),
    ("attribute:stack == prod", "d"),
    ("agentConnected == true", "abd"),
    ("agentConnected == false", "c"),
    ("attribute:ecs.availability-zone == us-east-1d and runningTasksCount > 0", "d"),
    // --- Every operator, symbol and word form ---
    ("runningTasksCount == 2", "bd"),
    ("runningTasksCount equals 2", "bd"),
    ("runningTasksCount != 0", "abd"),
    ("runningTasksCount not_equals 0", "abd"),
    ("runningTasksCount > 1", "bd"),
    ("runningTasksCount greater_than 1", "bd"),
    ("runningTasksCount >= 1", "abd"),
    ("runningTasksCount greater_than_equal 1", "abd"),
    ("runningTasksCount < 2", "ac"),
    ("runningTasksCount less_than 2", "ac"),
    ("runningTasksCount <= 0", "c"),
    ("runningTasksCount less_than_equal 0", "c"),
    ("runningTasksCount in [0, 1]", "ac"),
    ("runningTasksCount !in [0, 1]", "bd"),
    ("runningTasksCount not_in [0, 1]", "bd"),
    ("registeredAt == 2018-06-18T22:28:28Z", "c"),
    ("registeredAt != 2018-06-18T22:28:28Z", "abd"),
    ("registeredAt > 2018-06-18T22:28:28Z", "bd"),
    ("registeredAt >= 2018-06-18T22:28:28Z", "bcd"),
    ("registeredAt <= 2018-06-18T22:28:28Z", "ac"),
    ("registeredAt < 2018-06-18", "a"),
    ("agentVersion == 1.1.0", "a"),
    ("agentVersion > 1.2.0", "bc"),
    ("agentVersion >= 1.2.3", "bc"),
    ("agentVersion < 1.2.3", "a"),
    ("agentVersion <= 1.2.3", "ab"),
    ("agentVersion exists", "abc"),
    ("agentVersion !exists", "d"),
    ("attribute:gpu exists", "d"),
    ("attribute:gpu !exists", "abc"),
    ("attribute:gpu not_exists", "abc"),
    ("attribute:ecs.os-type not_exists", "d"),
    ("attribute:ecs.instance-type !in [t2.small, t2.medium]", "cd"),
    ("attribute:ecs.instance-type not_in [t2.small, t2.medium]", "cd"),
    ("attribute:ecs.instance-type in [t2.*, m5.*]", "abd"),
    ("attribute:ecs.instance-type !~ t2.*", "cd"),
    ("attribute:ecs.instance-type not_matches t2.*", "cd"),
    ("attribute:ecs.instance-type matches '(t2|g2)\\..*'", "abc"),
    ("attribute:ecs.instance-type =~ t2", ""),
    ("attribute:ecs.instance-type equals t2.small", "a"),
    ("attribute:ecs.instance-type not_equals t2.small", "bcd"),
    ("attribute:ecs.instance-type != t2.*", "cd"),
    ("attribute:ecs.instance-type > m", "abd"),
    ("attribute:ecs.instance-type < m", "c"),
    ("attribute:ecs.availability-zone not_equals us-east-1d", "ab"),
    ("ec2InstanceId exists", "abc"),
    ("ec2InstanceId == i-abcd1234", "a"),
    ("ec2InstanceId =~ 'i-[a-z]+[0-9]+'", "ab"),
    ("task:group exists", "abd"),
    ("task:group !exists", "c"),
    ("task:group != database", "acd"),
    ("task:group in [database, batch]", "bd"),
    ("task:group !in [database, batch]", "ac"),
    ("task:group =~ service:.*", "ad"),
    ("task:group !~ service:.*", "bc"),
    ("task:group == service:*", "ad"),
    // --- Compound forms ---
    ("attribute:ecs.os-type == linux && runningTasksCount > 1", "b"),
    ("attribute:ecs.os-type == windows || attribute:stack exists", "cd"),
    ("!(attribute:ecs.os-type == linux)", "cd"),
    ("not attribute:ecs.os-type == linux", "cd"),
    ("NOT attribute:ecs.os-type == linux AND agentConnected == true", "d"),
    ("attribute:ecs.os-type == linux and not task:group == database", "a"),
    ("(attribute:ecs.availability-zone == us-east-1d or attribute:ecs.instance-type == t2.small) and agentConnected == true", "ad"),
    ("attribute:ecs.availability-zone == us-east-1d or attribute:ecs.instance-type == t2.small and agentConnected == false", "cd"),
    ("not(not(runningTasksCount == 0))", "c"),
    ("attribute:ecs.instance-type == \"t2.small\"", "a"),
    ("  attribute:ecs.instance-type==t2.small  ", "a"),
];

#[test]
fn every_documented_example_and_operator_matches_the_right_instances() {
    let fleet = fleet();
    for (expr, want) in CASES {
        let q = query::parse(expr).unwrap_or_else(|e| panic!("{}", e.render(expr)));
        let got: String = fleet
            .iter()
            .filter(|i| q.matches(i))
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(&got, want, "expression: {expr}");
    }
}

#[test]
fn every_operator_word_and_symbol_is_covered() {
    use flotilla_scheduler::query::Operator;
    for op in Operator::ALL {
        let word = format!(" {} ", op.word());
        assert!(
            CASES.iter().any(|(e, _)| format!("{e} ").contains(&word)),
            "no case uses {}",
            op.word()
        );
        let sym = format!(" {} ", op.symbol());
        assert!(
            CASES.iter().any(|(e, _)| format!("{e} ").contains(&sym)),
            "no case uses {}",
            op.symbol()
        );
    }
}

const INVALID: &[(&str, usize, &str)] = &[
    ("", 0, "a subject"),
    ("   ", 3, "a subject"),
    ("attribute:ecs.instance-type ==", 30, "a value"),
    ("attribute:ecs.instance-type = t2.small", 28, "an operator"),
    ("instance-type == t2.small", 0, "a subject"),
    ("attribute: exists", 0, "an attribute name"),
    ("attribute:ecs.instance-type is t2.small", 28, "an operator"),
    ("runningTasksCount == many", 21, "an integer"),
    ("registeredAt < yesterday", 15, "a timestamp"),
    ("registeredAt < 2018-13-01", 15, "a timestamp"),
    ("agentConnected == maybe", 18, "true or false"),
    ("attribute:a in [x, y", 20, "`,` or `]`"),
    ("attribute:a in [x, ]", 19, "a value"),
    ("attribute:a in []", 16, "a value"),
    ("(attribute:a exists", 19, "`)`"),
    ("attribute:a exists)", 18, "`and`, `or` or the end"),
    (
        "attribute:a exists attribute:b exists",
        19,
        "`and`, `or` or the end",
    ),
    (
        "attribute:a =~ '(unclosed'",
        15,
        "a valid regular expression",
    ),
    ("task:group > 1", 11, "an operator that task:group supports"),
    (
        "agentConnected exists",
        15,
        "an operator that agentConnected supports",
    ),
    (
        "registeredAt in [2018-01-01]",
        13,
        "an operator that registeredAt supports",
    ),
    ("attribute:a == 'open", 15, "a closing '"),
    ("attribute:a exists and", 22, "a subject"),
    (
        "attribute:a exists or or attribute:b exists",
        22,
        "a subject",
    ),
    ("attribute:a ! b", 14, "`exists` or `in` after `!`"),
    ("attribute:a & attribute:b", 12, "an operator"),
    ("not", 3, "a subject"),
    ("()", 1, "a subject"),
];

#[test]
fn invalid_expressions_name_the_position_and_what_was_expected() {
    for (expr, pos, expected) in INVALID {
        let e = query::parse(expr).expect_err(expr);
        assert_eq!(e.position, *pos, "{expr}: {e}");
        assert!(e.expected.starts_with(expected), "{expr}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("position {pos}")), "{msg}");
        let rendered = e.render(expr);
        assert!(rendered.ends_with('^'), "{rendered}");
    }
}

#[test]
fn expression_length_limit_is_2000() {
    let head = "attribute:a == ";
    let ok = format!("{head}{}", "x".repeat(2000 - head.len()));
    assert!(query::parse(&ok).is_ok());
    let long = format!("{ok}x");
    let e = query::parse(&long).unwrap_err();
    assert_eq!(e.position, 2000);
    assert!(e.expected.contains("2000"));
}
