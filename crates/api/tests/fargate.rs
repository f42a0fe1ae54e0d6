//! Fargate on the server, through the handlers: the managed pool is invisible to clusters,
//! FARGATE tasks land on it with addresses on the task network, capacity provider strategies
//! split as ECS computes, and Spot reclaims interrupt exactly the Spot tasks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::ADDRESSES;
use flotilla_model::status::TaskStatus;
use flotilla_model::ErrorCode;
use flotilla_protocol::{DesiredStatus, MANAGED_POOL};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const NET: &str = r#"{"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"],
                                              "securityGroups": ["sg-0123456789abcdef0"]}}"#;

fn net() -> Value {
    serde_json::from_str(NET).unwrap()
}

async fn fargate_task_definition(api: &flotilla_api::Api) {
    ok(
        api,
        "RegisterTaskDefinition",
        json!({"family": "fg", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
               "cpu": "256", "memory": "512",
               "containerDefinitions": [{"name": "app", "image": "busybox",
                                         "portMappings": [{"containerPort": 80}]}]}),
    )
    .await;
}

fn detail(t: &Value, name: &str) -> String {
    t["attachments"][0]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .map(|d| d["value"].as_str().unwrap().to_string())
        .unwrap()
}

async fn addresses(api: &flotilla_api::Api) -> BTreeSet<String> {
    api.store
        .list(ADDRESSES, None, 0)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| kv.key.trim_start_matches(ADDRESSES).to_string())
        .collect()
}

async fn record(api: &flotilla_api::Api, cluster: &str, arn: &str) -> TaskRecord {
    let id = arn.rsplit('/').next().unwrap();
    flotilla_controllers::records::get::<TaskRecord>(
        api.store.as_ref(),
        &flotilla_controllers::records::task_key(cluster, id),
    )
    .await
    .unwrap()
    .unwrap()
    .0
}

#[tokio::test]
async fn fargate_tasks_run_on_the_hidden_pool_with_their_own_addresses() {
    let api = api();
    cluster(&api, "f1").await;
    fargate_task_definition(&api).await;

    // No pool host yet: ECS's capacity failure, nothing created.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "f1", "taskDefinition": "fg", "launchType": "FARGATE",
               "networkConfiguration": net()}),
    )
    .await;
    assert_eq!(r["tasks"].as_array().unwrap().len(), 0);
    assert!(r["failures"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("Capacity is unavailable"));

    let a = register(&api, MANAGED_POOL, 2048, 4096, "us-east-1a").await;
    let b = register(&api, MANAGED_POOL, 2048, 4096, "us-east-1b").await;
    assert!(a.contains("container-instance/.managed/"));
    // The pool is no cluster: nobody lists it, and the user's cluster has no instances.
    let l = ok(&api, "ListContainerInstances", json!({"cluster": "f1"})).await;
    assert_eq!(l["containerInstanceArns"], json!([]));
    let e = err(
        &api,
        "ListContainerInstances",
        json!({"cluster": MANAGED_POOL}),
    )
    .await;
    assert_ne!(e.code, ErrorCode::ServerException);
    let c = ok(&api, "DescribeClusters", json!({"clusters": ["f1"]})).await;
    assert_eq!(c["clusters"][0]["registeredContainerInstancesCount"], 0);

    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "f1", "taskDefinition": "fg", "launchType": "FARGATE", "count": 4,
               "networkConfiguration": net()}),
    )
    .await;
    let tasks = r["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4, "{r}");
    let mut ips = BTreeSet::new();
    let mut zones: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        assert_eq!(t["launchType"], "FARGATE");
        assert_eq!(t["platformVersion"], "1.4.0");
        assert_eq!(t["platformFamily"], "Linux");
        assert_eq!(t["lastStatus"], "PROVISIONING");
        assert!(t.get("containerInstanceArn").is_none(), "{t}");
        assert_eq!(t["attachments"][0]["type"], "ElasticNetworkInterface");
        assert_eq!(t["attachments"][0]["status"], "ATTACHING");
        assert_eq!(detail(t, "subnetId"), "subnet-0123456789abcdef0");
        assert!(detail(t, "networkInterfaceId").starts_with("eni-"));
        let ip = detail(t, "privateIPv4Address");
        assert!(ip.starts_with("10.213."), "{ip}");
        assert_eq!(
            t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"],
            ip.as_str()
        );
        ips.insert(ip);
        *zones
            .entry(t["availabilityZone"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(ips.len(), 4, "every task has its own address");
    assert_eq!(ips, addresses(&api).await, "the addresses are recorded");
    // Flotilla's own placement: spread over the pool's zones.
    assert_eq!(zones.values().copied().collect::<Vec<_>>(), vec![2, 2]);
    // The pool hosts hold the reservations, and know the tasks.
    let first = tasks[0]["taskArn"].as_str().unwrap();
    let rec = record(&api, "f1", first).await;
    assert_eq!(rec.instance_cluster(), MANAGED_POOL);
    assert!([&a, &b].iter().any(|i| i.ends_with(&rec.instance_id)));

    // StopTask: the control plane's DEACTIVATING step.
    ok(&api, "StopTask", json!({"cluster": "f1", "task": first})).await;
    let d = ok(
        &api,
        "DescribeTasks",
        json!({"cluster": "f1", "tasks": [first]}),
    )
    .await;
    assert_eq!(d["tasks"][0]["lastStatus"], "DEACTIVATING");
    assert_eq!(d["tasks"][0]["desiredStatus"], "STOPPED");
}

#[tokio::test]
async fn capacity_provider_strategies_split_as_ecs_and_spot_reclaims_interrupt() {
    let api = api();
    cluster(&api, "f2").await;
    fargate_task_definition(&api).await;
    register(&api, MANAGED_POOL, 4096, 8192, "us-east-1a").await;
    let strategy = json!([{"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                          {"capacityProvider": "FARGATE_SPOT", "weight": 3}]);
    // Not associated with the cluster yet.
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "f2", "taskDefinition": "fg", "capacityProviderStrategy": strategy,
               "networkConfiguration": net()}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    assert!(
        e.message.contains("not associated with the cluster"),
        "{e:?}"
    );
    ok(
        &api,
        "PutClusterCapacityProviders",
        json!({"cluster": "f2", "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
               "defaultCapacityProviderStrategy": strategy}),
    )
    .await;
    // No launch type and no strategy: the cluster's default strategy.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "f2", "taskDefinition": "fg", "count": 8,
               "networkConfiguration": net()}),
    )
    .await;
    let mut split: BTreeMap<String, usize> = BTreeMap::new();
    for t in r["tasks"].as_array().unwrap() {
        assert_eq!(t["launchType"], "FARGATE");
        *split
            .entry(t["capacityProviderName"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    // Base 1 on FARGATE, then 7 split 1:3: FARGATE 1 + 2, FARGATE_SPOT 5.
    assert_eq!(split["FARGATE"], 3, "{split:?}");
    assert_eq!(split["FARGATE_SPOT"], 5, "{split:?}");

    let interrupted = flotilla_controllers::fargate::reclaim_spot(&api.plane, Some("f2"), None)
        .await
        .unwrap();
    assert_eq!(interrupted.len(), 5);
    for arn in &interrupted {
        let rec = record(&api, "f2", arn).await;
        assert_eq!(
            rec.task.capacity_provider_name.as_deref(),
            Some("FARGATE_SPOT")
        );
        assert_eq!(rec.desired(), DesiredStatus::Stopped);
        assert_eq!(rec.last_status.0, TaskStatus::Deactivating);
        let a = rec.assignment.as_ref().unwrap();
        assert_eq!(a.stop_grace_seconds, Some(120));
        let t = rec.view(false);
        assert_eq!(
            t.stop_code,
            Some(flotilla_model::shapes::TaskStopCode::SpotInterruption)
        );
        assert_eq!(
            t.stopped_reason.as_deref(),
            Some("Your Spot Task was interrupted.")
        );
    }
    // Nothing left to reclaim; the FARGATE tasks were never touched.
    assert!(
        flotilla_controllers::fargate::reclaim_spot(&api.plane, None, Some(3))
            .await
            .unwrap()
            .is_empty()
    );
    let l = ok(
        &api,
        "ListTasks",
        json!({"cluster": "f2", "desiredStatus": "RUNNING"}),
    )
    .await;
    assert_eq!(l["taskArns"].as_array().unwrap().len(), 3);
}

/// Warm task networks: a pool host's reservation allocates addresses through the IPAM (held by
/// the instance), a FARGATE task placed on it takes the oldest in its creation transaction, a
/// refill tops it up with a fresh one, a smaller size releases, and deregistering the pool host
/// (`--cluster .managed`) releases the rest.
#[tokio::test]
async fn warm_task_networks_are_reserved_taken_refilled_and_released() {
    use flotilla_controllers::fargate::reserve_warm;
    let api = api();
    cluster(&api, "w1").await;
    fargate_task_definition(&api).await;
    let arn = register(&api, MANAGED_POOL, 2048, 4096, "us-east-1a").await;
    let id = arn.rsplit('/').next().unwrap().to_string();

    let warm = reserve_warm(&api.plane, MANAGED_POOL, &id, 2)
        .await
        .unwrap();
    let ips: Vec<String> = warm
        .iter()
        .map(|n| n.private_ipv4_address.clone())
        .collect();
    assert_eq!(ips.len(), 2);
    assert_ne!(ips[0], ips[1]);
    assert_eq!(
        warm[0].mac_address,
        flotilla_scheduler::ipam::mac_for(ips[0].parse().unwrap())
    );
    assert_eq!(addresses(&api).await, ips.iter().cloned().collect());
    let holder = api
        .store
        .get(&format!("{ADDRESSES}{}", ips[0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(holder.value).unwrap(),
        arn,
        "held by the instance"
    );
    // Asking again for the same size changes nothing.
    let again = reserve_warm(&api.plane, MANAGED_POOL, &id, 2)
        .await
        .unwrap();
    assert_eq!(again, warm);

    // A FARGATE task on the host takes the oldest warm address.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "w1", "taskDefinition": "fg", "launchType": "FARGATE",
               "networkConfiguration": net()}),
    )
    .await;
    let task_arn = r["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    assert_eq!(detail(&r["tasks"][0], "privateIPv4Address"), ips[0]);
    let rec = record(&api, "w1", &task_arn).await;
    let n = rec.network().unwrap();
    assert_eq!(
        n.subnet_id, "subnet-0123456789abcdef0",
        "the task's own interface"
    );
    assert_ne!(n.attachment_id, warm[0].attachment_id);
    let holder = api
        .store
        .get(&format!("{ADDRESSES}{}", ips[0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(holder.value).unwrap(),
        task_arn,
        "now the task's"
    );

    // The refill keeps the other one and adds a fresh address.
    let refilled = reserve_warm(&api.plane, MANAGED_POOL, &id, 2)
        .await
        .unwrap();
    assert_eq!(refilled[0].private_ipv4_address, ips[1]);
    assert!(!ips.contains(&refilled[1].private_ipv4_address));
    assert_eq!(addresses(&api).await.len(), 3, "the task's and two warm");

    // A smaller size releases the newest.
    let one = reserve_warm(&api.plane, MANAGED_POOL, &id, 1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].private_ipv4_address, ips[1]);
    assert!(!addresses(&api)
        .await
        .contains(&refilled[1].private_ipv4_address));

    // Deregistering the pool host releases its warm addresses (the task's is orphaned too).
    let d = ok(
        &api,
        "DeregisterContainerInstance",
        json!({"cluster": MANAGED_POOL, "containerInstance": arn, "force": true}),
    )
    .await;
    assert_eq!(d["containerInstance"]["status"], "INACTIVE");
    assert!(
        addresses(&api).await.is_empty(),
        "{:?}",
        addresses(&api).await
    );
    let stopped = record(&api, "w1", &task_arn).await;
    assert!(stopped.is_stopped());
    // A closed host gets none.
    assert!(reserve_warm(&api.plane, MANAGED_POOL, &id, 2)
        .await
        .unwrap()
        .is_empty());
}
