//! The operations on an in-memory store, through the awsQuery protocol as a client sends them.

use super::*;
use flotilla_edge::query::{form_encode, parse_form};
use flotilla_store::MemoryStore;

fn elb() -> Elbv2 {
    Elbv2::new(Arc::new(MemoryStore::new()), "us-east-1", "123456789012")
}

/// Runs `action` with form parameters, as `AwsQuery` does: its output as JSON, or the error.
async fn call(e: &Elbv2, action: &str, params: &[(&str, &str)]) -> Result<Value, QueryError> {
    let body: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect();
    let input = e
        .query
        .decode(action, &parse_form(body.join("&").as_bytes())?)?;
    let caller = flotilla_sigv4::Caller {
        access_key_id: "AKIDEXAMPLE".into(),
        region: "us-east-1".into(),
        service: "elasticloadbalancing".into(),
        principal_arn: "arn:aws:iam::123456789012:root".into(),
    };
    e.dispatch(QueryCall {
        caller: &caller,
        operation: action,
        input,
        now: 1_700_000_000.0,
    })
    .await
}

async fn ok(e: &Elbv2, action: &str, params: &[(&str, &str)]) -> Value {
    match call(e, action, params).await {
        Ok(v) => v,
        Err(err) => panic!("{action}: {err}"),
    }
}

async fn code(e: &Elbv2, action: &str, params: &[(&str, &str)]) -> &'static str {
    match call(e, action, params).await {
        Ok(v) => panic!("{action} succeeded: {v}"),
        Err(err) => err.code,
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// An application load balancer, an HTTP target group and a listener forwarding to it.
async fn stack(e: &Elbv2) -> (String, String, String) {
    let lb = ok(
        e,
        "CreateLoadBalancer",
        &[
            ("Name", "web"),
            ("Subnets.member.1", "subnet-a"),
            ("Subnets.member.2", "subnet-b"),
        ],
    )
    .await;
    let lb_arn = s(&lb["LoadBalancers"][0]["LoadBalancerArn"]);
    let tg = ok(
        e,
        "CreateTargetGroup",
        &[
            ("Name", "app"),
            ("Protocol", "HTTP"),
            ("Port", "8080"),
            ("TargetType", "ip"),
        ],
    )
    .await;
    let tg_arn = s(&tg["TargetGroups"][0]["TargetGroupArn"]);
    let l = ok(
        e,
        "CreateListener",
        &[
            ("LoadBalancerArn", &lb_arn),
            ("Protocol", "HTTP"),
            ("Port", "80"),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", &tg_arn),
        ],
    )
    .await;
    (lb_arn, tg_arn, s(&l["Listeners"][0]["ListenerArn"]))
}

#[tokio::test]
async fn a_load_balancer_is_created_described_and_deleted_with_its_listeners() {
    let e = elb();
    let (lb, tg, listener) = stack(&e).await;
    let d = ok(&e, "DescribeLoadBalancers", &[("Names.member.1", "web")]).await;
    let shown = &d["LoadBalancers"][0];
    assert_eq!(shown["State"]["Code"], "active");
    assert_eq!(shown["Type"], "application");
    assert!(
        s(&shown["DNSName"]).starts_with("web-")
            && s(&shown["DNSName"]).ends_with(".us-east-1.elb.flotilla.internal")
    );
    assert_eq!(shown["AvailabilityZones"][1]["ZoneName"], "us-east-1b");
    // The same settings again answer the same load balancer; other settings are refused.
    let again = ok(
        &e,
        "CreateLoadBalancer",
        &[
            ("Name", "web"),
            ("Subnets.member.1", "subnet-a"),
            ("Subnets.member.2", "subnet-b"),
        ],
    )
    .await;
    assert_eq!(s(&again["LoadBalancers"][0]["LoadBalancerArn"]), lb);
    assert_eq!(
        code(
            &e,
            "CreateLoadBalancer",
            &[("Name", "web"), ("Type", "network")]
        )
        .await,
        "DuplicateLoadBalancerName"
    );
    let g = ok(
        &e,
        "DescribeTargetGroups",
        &[("TargetGroupArns.member.1", &tg)],
    )
    .await;
    assert_eq!(
        g["TargetGroups"][0]["LoadBalancerArns"][0],
        Value::String(lb.clone())
    );
    assert_eq!(
        code(&e, "DeleteTargetGroup", &[("TargetGroupArn", &tg)]).await,
        "ResourceInUse"
    );
    ok(&e, "DeleteLoadBalancer", &[("LoadBalancerArn", &lb)]).await;
    ok(&e, "DeleteLoadBalancer", &[("LoadBalancerArn", &lb)]).await;
    assert_eq!(
        code(
            &e,
            "DescribeListeners",
            &[("ListenerArns.member.1", &listener)]
        )
        .await,
        "ListenerNotFound"
    );
    assert_eq!(
        code(
            &e,
            "DescribeLoadBalancers",
            &[("LoadBalancerArns.member.1", &lb)]
        )
        .await,
        "LoadBalancerNotFound"
    );
    ok(&e, "DeleteTargetGroup", &[("TargetGroupArn", &tg)]).await;
    assert_eq!(
        code(
            &e,
            "DescribeTargetGroups",
            &[("TargetGroupArns.member.1", &tg)]
        )
        .await,
        "TargetGroupNotFound"
    );
}

#[tokio::test]
async fn listeners_refuse_duplicates_other_protocols_and_other_actions() {
    let e = elb();
    let (lb, tg, _) = stack(&e).await;
    let fwd = [
        ("DefaultActions.member.1.Type", "forward"),
        ("DefaultActions.member.1.TargetGroupArn", tg.as_str()),
    ];
    let mut p = vec![
        ("LoadBalancerArn", lb.as_str()),
        ("Protocol", "HTTP"),
        ("Port", "80"),
    ];
    p.extend(fwd);
    // Same settings: the same listener; the port with other settings: DuplicateListener.
    ok(&e, "CreateListener", &p).await;
    let mut p2 = vec![
        ("LoadBalancerArn", lb.as_str()),
        ("Protocol", "HTTP"),
        ("Port", "80"),
        ("DefaultActions.member.1.Type", "forward"),
        (
            "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn",
            tg.as_str(),
        ),
        (
            "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight",
            "5",
        ),
    ];
    assert_eq!(code(&e, "CreateListener", &p2).await, "DuplicateListener");
    p2[2] = ("Port", "81");
    ok(&e, "CreateListener", &p2).await;
    let https = [
        ("LoadBalancerArn", lb.as_str()),
        ("Protocol", "HTTPS"),
        ("Port", "443"),
        fwd[0],
        fwd[1],
    ];
    assert_eq!(
        code(&e, "CreateListener", &https).await,
        "UnsupportedProtocol"
    );
    let redirect = [
        ("LoadBalancerArn", lb.as_str()),
        ("Protocol", "HTTP"),
        ("Port", "82"),
        ("DefaultActions.member.1.Type", "redirect"),
    ];
    assert_eq!(
        code(&e, "CreateListener", &redirect).await,
        "InvalidLoadBalancerAction"
    );
    let tcp = ok(
        &e,
        "CreateTargetGroup",
        &[("Name", "tcp"), ("Protocol", "TCP"), ("Port", "5432")],
    )
    .await;
    let tcp = s(&tcp["TargetGroups"][0]["TargetGroupArn"]);
    let wrong = [
        ("LoadBalancerArn", lb.as_str()),
        ("Protocol", "HTTP"),
        ("Port", "83"),
        ("DefaultActions.member.1.Type", "forward"),
        ("DefaultActions.member.1.TargetGroupArn", tcp.as_str()),
    ];
    assert_eq!(
        code(&e, "CreateListener", &wrong).await,
        "IncompatibleProtocols"
    );
    let ls = ok(
        &e,
        "DescribeListeners",
        &[("LoadBalancerArn", &lb), ("PageSize", "1")],
    )
    .await;
    assert_eq!(ls["Listeners"].as_array().unwrap().len(), 1);
    let marker = s(&ls["NextMarker"]);
    let ls = ok(
        &e,
        "DescribeListeners",
        &[
            ("LoadBalancerArn", &lb),
            ("PageSize", "1"),
            ("Marker", &marker),
        ],
    )
    .await;
    assert_eq!(ls["Listeners"][0]["Port"], 81);
    assert_eq!(
        ls["Listeners"][0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"][0]["Weight"],
        5
    );
    assert!(ls.get("NextMarker").is_none());
}

#[tokio::test]
async fn rules_keep_unique_priorities_and_the_default_rule_last() {
    let e = elb();
    let (_, tg, listener) = stack(&e).await;
    let rule = |prio: &'static str, path: &'static str| {
        vec![
            ("ListenerArn", listener.clone()),
            ("Priority", prio.to_string()),
            ("Conditions.member.1.Field", "path-pattern".to_string()),
            ("Conditions.member.1.Values.member.1", path.to_string()),
            ("Actions.member.1.Type", "forward".to_string()),
            ("Actions.member.1.TargetGroupArn", tg.clone()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| {
        v.iter().map(|(k, x)| (*k, x.clone())).collect::<Vec<_>>()
    };
    let r10 = as_refs(&rule("10", "/api/*"));
    let r10: Vec<(&str, &str)> = r10.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = ok(&e, "CreateRule", &r10).await;
    let a_arn = s(&a["Rules"][0]["RuleArn"]);
    assert_eq!(code(&e, "CreateRule", &r10).await, "PriorityInUse");
    let r5 = as_refs(&rule("5", "/static/*"));
    let r5: Vec<(&str, &str)> = r5.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b = ok(&e, "CreateRule", &r5).await;
    let b_arn = s(&b["Rules"][0]["RuleArn"]);
    let rules = ok(&e, "DescribeRules", &[("ListenerArn", &listener)]).await;
    let prios: Vec<String> = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["Priority"]))
        .collect();
    assert_eq!(prios, ["5", "10", "default"]);
    assert_eq!(
        rules["Rules"][0]["Conditions"][0]["PathPatternConfig"]["Values"][0],
        "/static/*"
    );
    // Swapping priorities in one call is allowed; a clash is not.
    ok(
        &e,
        "SetRulePriorities",
        &[
            ("RulePriorities.member.1.RuleArn", &a_arn),
            ("RulePriorities.member.1.Priority", "5"),
            ("RulePriorities.member.2.RuleArn", &b_arn),
            ("RulePriorities.member.2.Priority", "10"),
        ],
    )
    .await;
    assert_eq!(
        code(
            &e,
            "SetRulePriorities",
            &[
                ("RulePriorities.member.1.RuleArn", &a_arn),
                ("RulePriorities.member.1.Priority", "10")
            ]
        )
        .await,
        "PriorityInUse"
    );
    let default_arn = s(&rules["Rules"][2]["RuleArn"]);
    assert_eq!(
        code(&e, "DeleteRule", &[("RuleArn", &default_arn)]).await,
        "OperationNotPermitted"
    );
    ok(
        &e,
        "ModifyRule",
        &[
            ("RuleArn", &a_arn),
            ("Conditions.member.1.Field", "host-header"),
            ("Conditions.member.1.Values.member.1", "api.example.com"),
        ],
    )
    .await;
    let r = ok(&e, "DescribeRules", &[("RuleArns.member.1", &a_arn)]).await;
    assert_eq!(r["Rules"][0]["Conditions"][0]["Field"], "host-header");
    ok(&e, "DeleteRule", &[("RuleArn", &a_arn)]).await;
    assert_eq!(
        code(&e, "DescribeRules", &[("RuleArns.member.1", &a_arn)]).await,
        "RuleNotFound"
    );
}

#[tokio::test]
async fn target_groups_have_elbs_defaults_ranges_and_attributes() {
    let e = elb();
    let g = ok(
        &e,
        "CreateTargetGroup",
        &[("Name", "app"), ("Protocol", "HTTP"), ("Port", "80")],
    )
    .await;
    let g0 = &g["TargetGroups"][0];
    assert_eq!(
        (
            g0["HealthCheckIntervalSeconds"].clone(),
            g0["HealthCheckTimeoutSeconds"].clone(),
            g0["HealthyThresholdCount"].clone(),
            g0["UnhealthyThresholdCount"].clone()
        ),
        (
            Value::from(30),
            Value::from(5),
            Value::from(5),
            Value::from(2)
        )
    );
    assert_eq!(g0["Matcher"]["HttpCode"], "200");
    assert_eq!(g0["TargetType"], "instance");
    let arn = s(&g0["TargetGroupArn"]);
    assert_eq!(
        code(
            &e,
            "CreateTargetGroup",
            &[("Name", "app"), ("Protocol", "HTTP"), ("Port", "81")]
        )
        .await,
        "DuplicateTargetGroupName"
    );
    assert_eq!(
        code(
            &e,
            "CreateTargetGroup",
            &[
                ("Name", "x"),
                ("Protocol", "HTTP"),
                ("Port", "80"),
                ("HealthCheckTimeoutSeconds", "40")
            ]
        )
        .await,
        "ValidationError"
    );
    assert_eq!(
        code(
            &e,
            "CreateTargetGroup",
            &[
                ("Name", "x"),
                ("Protocol", "HTTP"),
                ("Port", "80"),
                ("HealthyThresholdCount", "11")
            ]
        )
        .await,
        "ValidationError"
    );
    assert_eq!(
        code(&e, "CreateTargetGroup", &[("Name", "x"), ("Port", "80")]).await,
        "ValidationError"
    );
    assert_eq!(
        code(
            &e,
            "CreateTargetGroup",
            &[("Name", "x"), ("Protocol", "UDP"), ("Port", "80")]
        )
        .await,
        "UnsupportedProtocol"
    );
    let m = ok(
        &e,
        "ModifyTargetGroup",
        &[
            ("TargetGroupArn", &arn),
            ("HealthCheckPath", "/health"),
            ("Matcher.HttpCode", "200-299"),
        ],
    )
    .await;
    assert_eq!(m["TargetGroups"][0]["HealthCheckPath"], "/health");
    let a = ok(
        &e,
        "ModifyTargetGroupAttributes",
        &[
            ("TargetGroupArn", &arn),
            (
                "Attributes.member.1.Key",
                "deregistration_delay.timeout_seconds",
            ),
            ("Attributes.member.1.Value", "30"),
        ],
    )
    .await;
    assert!(a["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["Key"] == "deregistration_delay.timeout_seconds" && x["Value"] == "30"));
    assert_eq!(
        code(
            &e,
            "ModifyTargetGroupAttributes",
            &[
                ("TargetGroupArn", &arn),
                ("Attributes.member.1.Key", "stickiness.enabled"),
                ("Attributes.member.1.Value", "true")
            ]
        )
        .await,
        "ValidationError"
    );
    assert_eq!(
        code(&e, "DescribeTrustStores", &[]).await,
        "OperationNotPermitted"
    );
}

#[tokio::test]
async fn targets_register_drain_and_show_their_health() {
    let e = elb();
    let (_, tg, _) = stack(&e).await;
    ok(
        &e,
        "RegisterTargets",
        &[
            ("TargetGroupArn", &tg),
            ("Targets.member.1.Id", "10.0.0.1"),
            ("Targets.member.2.Id", "10.0.0.2"),
            ("Targets.member.2.Port", "9090"),
        ],
    )
    .await;
    let h = ok(&e, "DescribeTargetHealth", &[("TargetGroupArn", &tg)]).await;
    let d = &h["TargetHealthDescriptions"];
    assert_eq!(d[0]["Target"]["Port"], 8080);
    assert_eq!(d[0]["TargetHealth"]["State"], "initial");
    assert_eq!(d[0]["TargetHealth"]["Reason"], "Elb.RegistrationInProgress");
    assert_eq!(d[1]["HealthCheckPort"], "9090");
    ok(
        &e,
        "DeregisterTargets",
        &[("TargetGroupArn", &tg), ("Targets.member.1.Id", "10.0.0.1")],
    )
    .await;
    let h = ok(
        &e,
        "DescribeTargetHealth",
        &[
            ("TargetGroupArn", &tg),
            ("Targets.member.1.Id", "10.0.0.1"),
            ("Targets.member.2.Id", "10.9.9.9"),
        ],
    )
    .await;
    let d = &h["TargetHealthDescriptions"];
    assert_eq!(d[0]["TargetHealth"]["State"], "draining");
    assert_eq!(d[1]["TargetHealth"]["Reason"], "Target.NotRegistered");
    assert_eq!(
        code(
            &e,
            "RegisterTargets",
            &[("TargetGroupArn", &tg), ("Targets.member.1.Id", "i-nope")]
        )
        .await,
        "InvalidTarget"
    );
    assert_eq!(
        code(
            &e,
            "DeregisterTargets",
            &[("TargetGroupArn", &tg), ("Targets.member.1.Id", "10.0.0.7")]
        )
        .await,
        "InvalidTarget"
    );
}

#[tokio::test]
async fn tags_go_on_every_resource() {
    let e = elb();
    let (lb, tg, listener) = stack(&e).await;
    for arn in [&lb, &tg, &listener] {
        ok(
            &e,
            "AddTags",
            &[
                ("ResourceArns.member.1", arn),
                ("Tags.member.1.Key", "team"),
                ("Tags.member.1.Value", "web"),
            ],
        )
        .await;
    }
    let d = ok(
        &e,
        "DescribeTags",
        &[
            ("ResourceArns.member.1", &lb),
            ("ResourceArns.member.2", &listener),
        ],
    )
    .await;
    assert_eq!(d["TagDescriptions"][1]["Tags"][0]["Value"], "web");
    ok(
        &e,
        "RemoveTags",
        &[("ResourceArns.member.1", &tg), ("TagKeys.member.1", "team")],
    )
    .await;
    let d = ok(&e, "DescribeTags", &[("ResourceArns.member.1", &tg)]).await;
    assert_eq!(d["TagDescriptions"][0]["Tags"], serde_json::json!([]));
    assert_eq!(
        code(
            &e,
            "AddTags",
            &[
                ("ResourceArns.member.1", &tg),
                ("Tags.member.1.Key", "a"),
                ("Tags.member.2.Key", "a")
            ]
        )
        .await,
        "DuplicateTagKeys"
    );
    let gone = lb.replace("/web/", "/nope/");
    assert_eq!(
        code(
            &e,
            "AddTags",
            &[("ResourceArns.member.1", &gone), ("Tags.member.1.Key", "a")]
        )
        .await,
        "LoadBalancerNotFound"
    );
}

#[tokio::test]
async fn describe_load_balancers_pages() {
    let e = elb();
    for i in 0..5 {
        ok(&e, "CreateLoadBalancer", &[("Name", &format!("lb{i}"))]).await;
    }
    let mut marker: Option<String> = None;
    let mut names = Vec::new();
    loop {
        let mut p = vec![("PageSize", "2".to_string())];
        if let Some(m) = &marker {
            p.push(("Marker", m.clone()));
        }
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = ok(&e, "DescribeLoadBalancers", &p).await;
        names.extend(
            page["LoadBalancers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| s(&l["LoadBalancerName"])),
        );
        match page.get("NextMarker") {
            Some(m) => marker = Some(s(m)),
            None => break,
        }
    }
    assert_eq!(names, ["lb0", "lb1", "lb2", "lb3", "lb4"]);
    assert_eq!(
        code(&e, "DescribeLoadBalancers", &[("Names.member.1", "nope")]).await,
        "LoadBalancerNotFound"
    );
    assert_eq!(
        code(&e, "DescribeLoadBalancers", &[("PageSize", "500")]).await,
        "ValidationError"
    );
    assert_eq!(
        code(&e, "CreateLoadBalancer", &[("Name", "bad_name")]).await,
        "ValidationError"
    );
}
