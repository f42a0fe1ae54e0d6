//! Custom capacity providers through the handlers: a task sent to a provider lands only on that
//! provider's hosts, also when they are full (the task fails, it never spills onto another
//! provider's or a plain host) and when many RunTasks race for the same hosts (never
//! over-committed), on the embedded store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use flotilla_api::Api;
use flotilla_model::ErrorCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

async fn provider(api: &Api, name: &str) {
    ok(
        api,
        "CreateCapacityProvider",
        json!({"name": name, "autoScalingGroupProvider": {"autoScalingGroupArn": format!("asg-{name}")}}),
    )
    .await;
}

/// Registers an instance of 1024 MiB in `provider` (or in none); returns its ARN.
async fn host(api: &Api, cluster: &str, provider: Option<&str>, n: u32) -> String {
    let doc = json!({"instanceId": format!("i-{n}"), "availabilityZone": "us-east-1a"}).to_string();
    let mut attributes = vec![json!({"name": "ecs.os-type", "value": "linux"})];
    if let Some(p) = provider {
        attributes.push(json!({"name": "flotilla.capacity-provider", "value": p}));
    }
    let out = ok(
        api,
        "RegisterContainerInstance",
        json!({"cluster": cluster, "totalResources": resources(1024, 1024),
               "instanceIdentityDocument": doc, "attributes": attributes}),
    )
    .await;
    let ci = &out["containerInstance"];
    assert_eq!(ci["capacityProviderName"].as_str(), provider);
    ci["containerInstanceArn"].as_str().unwrap().to_string()
}

fn strategy() -> Value {
    json!([{"capacityProvider": "blue", "base": 1, "weight": 1},
           {"capacityProvider": "green", "weight": 1}])
}

#[tokio::test]
async fn tasks_run_only_on_their_providers_hosts_even_when_full() {
    let api = api();
    cluster(&api, "c").await;
    provider(&api, "blue").await;
    provider(&api, "green").await;
    let blue: BTreeSet<String> = [
        host(&api, "c", Some("blue"), 1).await,
        host(&api, "c", Some("blue"), 2).await,
    ]
    .into();
    let green: BTreeSet<String> = [host(&api, "c", Some("green"), 3).await].into();
    let plain = host(&api, "c", None, 4).await;
    ok(
        &api,
        "PutClusterCapacityProviders",
        json!({"cluster": "c", "capacityProviders": ["blue", "green"],
               "defaultCapacityProviderStrategy": []}),
    )
    .await;
    task_definition(&api, "app", 256, None).await;
    // 5 tasks: the base on blue, then 4 split 1:1 (blue 3, green 2): blue's 2 hosts hold 8, green's 4.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "app", "count": 5, "capacityProviderStrategy": strategy()}),
    )
    .await;
    let mut split: BTreeMap<String, usize> = BTreeMap::new();
    for t in r["tasks"].as_array().unwrap() {
        let p = t["capacityProviderName"].as_str().unwrap().to_string();
        let on = t["containerInstanceArn"].as_str().unwrap();
        assert_eq!(t["launchType"], "EC2");
        assert!(
            if p == "blue" {
                blue.contains(on)
            } else {
                green.contains(on)
            },
            "{p} on {on}"
        );
        *split.entry(p).or_default() += 1;
    }
    assert_eq!(
        split,
        BTreeMap::from([("blue".into(), 3), ("green".into(), 2)])
    );
    // Green holds 4 of 256 MiB: 2 more fit, then green's tasks fail; none lands on blue or the
    // plain host, though both have room.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "app", "count": 8,
               "capacityProviderStrategy": [{"capacityProvider": "green", "weight": 1}]}),
    )
    .await;
    let placed: Vec<&str> = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["containerInstanceArn"].as_str().unwrap())
        .collect();
    assert_eq!(placed.len(), 2);
    assert!(placed.iter().all(|a| green.contains(*a)));
    let failures = r["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    assert!(failures
        .iter()
        .all(|f| green.contains(f["arn"].as_str().unwrap()) && f["reason"] == "RESOURCE:MEMORY"));
    assert!(!placed.contains(&plain.as_str()));
}

#[tokio::test]
async fn racing_run_tasks_never_overcommit_a_providers_hosts() {
    let api = Arc::new(api());
    cluster(&api, "r").await;
    provider(&api, "blue").await;
    provider(&api, "green").await;
    let mut hosts = BTreeMap::new();
    for (n, p) in [(1, "blue"), (2, "blue"), (3, "green"), (4, "green")] {
        hosts.insert(host(&api, "r", Some(p), n).await, p);
    }
    ok(
        &api,
        "PutClusterCapacityProviders",
        json!({"cluster": "r", "capacityProviders": ["blue", "green"],
               "defaultCapacityProviderStrategy": [{"capacityProvider": "blue", "weight": 1},
                                                   {"capacityProvider": "green", "weight": 1}]}),
    )
    .await;
    task_definition(&api, "app", 256, None).await;
    let runs: Vec<_> = (0..12)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                call(
                    &api,
                    "RunTask",
                    json!({"cluster": "r", "taskDefinition": "app", "count": 2}),
                )
                .await
            })
        })
        .collect();
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs {
        for t in run.await.unwrap().unwrap()["tasks"].as_array().unwrap() {
            let on = t["containerInstanceArn"].as_str().unwrap().to_string();
            assert_eq!(
                Some(&hosts[&on]),
                t["capacityProviderName"].as_str().as_ref()
            );
            *per_host.entry(on).or_default() += 1;
        }
    }
    // Each run asks one task of each provider; each host holds at most 4 tasks of 256 MiB, and
    // 16 fit in all.
    assert!(per_host.values().all(|&n| n <= 4), "{per_host:?}");
    assert_eq!(per_host.values().sum::<usize>(), 16, "{per_host:?}");
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "r", "taskDefinition": "app",
               "capacityProviderStrategy": [{"capacityProvider": "blue", "weight": 1},
                                            {"capacityProvider": "FARGATE", "weight": 1}]}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
}
