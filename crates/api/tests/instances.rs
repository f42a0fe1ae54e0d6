//! Container instance operations through `dispatch`, on a MemoryStore.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use flotilla_model::ErrorCode;
use serde_json::json;

#[tokio::test]
async fn register_describe_and_reregister() {
    let api = api();
    cluster(&api, "c1").await;
    let arn = register(&api, "c1", 2048, 4096, "us-east-1a").await;
    assert!(arn.starts_with(&format!(
        "arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/c1/"
    )));
    let id = arn.rsplit('/').next().unwrap();
    assert_eq!(id.len(), 32);
    let d = ok(
        &api,
        "DescribeContainerInstances",
        json!({"cluster": "c1", "containerInstances": [id, "nope"]}),
    )
    .await;
    let ci = &d["containerInstances"][0];
    assert_eq!(ci["status"], "ACTIVE");
    assert_eq!(ci["agentConnected"], true);
    assert_eq!(ci["ec2InstanceId"], "i-us-east-1a");
    assert_eq!(ci["runningTasksCount"], 0);
    assert_eq!(ci["versionInfo"]["agentVersion"], "0.1.0");
    assert_eq!(
        resource(ci, "registeredResources", "MEMORY")["integerValue"],
        4096
    );
    assert_eq!(
        resource(ci, "remainingResources", "CPU")["integerValue"],
        2048
    );
    let attrs: Vec<&str> = ci["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(attrs.contains(&"ecs.availability-zone"), "{attrs:?}");
    assert!(attrs.contains(&"ecs.os-type"));
    assert!(ci.get("tags").is_none());
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    assert!(d["failures"][0]["arn"]
        .as_str()
        .unwrap()
        .ends_with("/c1/nope"));
    let v1 = ci["version"].as_i64().unwrap();

    // Re-registration with the ARN: same instance, updated.
    let out = ok(
        &api,
        "RegisterContainerInstance",
        json!({"cluster": "c1", "containerInstanceArn": arn,
        "totalResources": resources(4096, 8192), "tags": [{"key": "k", "value": "v"}]}),
    )
    .await;
    assert_eq!(out["containerInstance"]["containerInstanceArn"], arn);
    let d = ok(
        &api,
        "DescribeContainerInstances",
        json!({"cluster": "c1", "containerInstances": [arn], "include": ["TAGS"]}),
    )
    .await;
    let ci = &d["containerInstances"][0];
    assert_eq!(
        resource(ci, "registeredResources", "CPU")["integerValue"],
        4096
    );
    assert!(ci["version"].as_i64().unwrap() > v1);
    assert_eq!(ci["tags"][0]["key"], "k");
    let l = ok(&api, "ListContainerInstances", json!({"cluster": "c1"})).await;
    assert_eq!(l["containerInstanceArns"].as_array().unwrap().len(), 1);

    // Bad inputs.
    let e = err(
        &api,
        "RegisterContainerInstance",
        json!({"cluster": "c1", "totalResources": []}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    let e = err(
        &api,
        "RegisterContainerInstance",
        json!({"cluster": "nope", "totalResources": resources(1, 1)}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::ClusterNotFoundException);
}

#[tokio::test]
async fn list_filters_status_and_pagination() {
    let api = api();
    cluster(&api, "c2").await;
    let a = register(&api, "c2", 1024, 1024, "us-east-1a").await;
    let b = register(&api, "c2", 1024, 1024, "us-east-1b").await;
    let c = register(&api, "c2", 1024, 1024, "us-east-1b").await;
    ok(
        &api,
        "PutAttributes",
        json!({"cluster": "c2", "attributes": [{"name": "stack", "value": "prod", "targetId": a}]}),
    )
    .await;

    let l = ok(
        &api,
        "ListContainerInstances",
        json!({"cluster": "c2", "filter": "attribute:ecs.availability-zone == us-east-1b"}),
    )
    .await;
    let mut got: Vec<String> = l["containerInstanceArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(got, want);
    let l = ok(
        &api,
        "ListContainerInstances",
        json!({"cluster": "c2", "filter": "attribute:stack == prod"}),
    )
    .await;
    assert_eq!(l["containerInstanceArns"], json!([a]));
    let d = ok(
        &api,
        "DescribeContainerInstances",
        json!({"cluster": "c2", "containerInstances": [a]}),
    )
    .await;
    assert!(d["containerInstances"][0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == "stack" && x["value"] == "prod"));

    let e = err(
        &api,
        "ListContainerInstances",
        json!({"cluster": "c2", "filter": "runningTasksCount >"}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    assert!(e.message.contains("position 19"), "{}", e.message);

    // Pagination walks all three.
    let p1 = ok(
        &api,
        "ListContainerInstances",
        json!({"cluster": "c2", "maxResults": 2}),
    )
    .await;
    assert_eq!(p1["containerInstanceArns"].as_array().unwrap().len(), 2);
    let p2 = ok(
        &api,
        "ListContainerInstances",
        json!({"cluster": "c2", "maxResults": 2, "nextToken": p1["nextToken"]}),
    )
    .await;
    assert_eq!(p2["containerInstanceArns"].as_array().unwrap().len(), 1);
    assert!(p2.get("nextToken").is_none());

    // DRAINING, then the status filter.
    let u = ok(
        &api,
        "UpdateContainerInstancesState",
        json!({"cluster": "c2", "containerInstances": [a, "missing"], "status": "DRAINING"}),
    )
    .await;
    assert_eq!(u["containerInstances"][0]["status"], "DRAINING");
    assert_eq!(u["failures"][0]["reason"], "MISSING");
    let l = ok(
        &api,
        "ListContainerInstances",
        json!({"cluster": "c2", "status": "DRAINING"}),
    )
    .await;
    assert_eq!(l["containerInstanceArns"], json!([a]));
    let e = err(
        &api,
        "UpdateContainerInstancesState",
        json!({"cluster": "c2", "containerInstances": [a], "status": "REGISTERING"}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);

    // Deregistered instances leave the default listing and go INACTIVE.
    let d = ok(
        &api,
        "DeregisterContainerInstance",
        json!({"cluster": "c2", "containerInstance": b}),
    )
    .await;
    assert_eq!(d["containerInstance"]["status"], "INACTIVE");
    let l = ok(&api, "ListContainerInstances", json!({"cluster": "c2"})).await;
    assert_eq!(l["containerInstanceArns"].as_array().unwrap().len(), 2);
    let d = ok(&api, "DescribeClusters", json!({"clusters": ["c2"]})).await;
    assert_eq!(d["clusters"][0]["registeredContainerInstancesCount"], 2);
}

#[tokio::test]
async fn deregistration_with_tasks_needs_force() {
    let api = api();
    cluster(&api, "c3").await;
    let a = register(&api, "c3", 1024, 1024, "us-east-1a").await;
    task_definition(&api, "f3", 256, None).await;
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "c3", "taskDefinition": "f3"}),
    )
    .await;
    let task = r["tasks"][0]["taskArn"].as_str().unwrap().to_string();

    let e = err(&api, "DeleteCluster", json!({"cluster": "c3"})).await;
    assert_eq!(
        e.code,
        ErrorCode::ClusterContainsContainerInstancesException
    );
    let e = err(
        &api,
        "DeregisterContainerInstance",
        json!({"cluster": "c3", "containerInstance": a}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    assert_eq!(e.message, "Found running tasks on the instance.");

    ok(
        &api,
        "DeregisterContainerInstance",
        json!({"cluster": "c3", "containerInstance": a, "force": true}),
    )
    .await;
    let d = ok(
        &api,
        "DescribeTasks",
        json!({"cluster": "c3", "tasks": [task]}),
    )
    .await;
    assert_eq!(d["tasks"][0]["desiredStatus"], "STOPPED");
    assert_eq!(d["tasks"][0]["lastStatus"], "STOPPED");
    let d = ok(
        &api,
        "DescribeContainerInstances",
        json!({"cluster": "c3", "containerInstances": [a]}),
    )
    .await;
    assert_eq!(d["containerInstances"][0]["status"], "INACTIVE");
    assert_eq!(
        resource(&d["containerInstances"][0], "remainingResources", "MEMORY")["integerValue"],
        1024
    );
    ok(&api, "DeleteCluster", json!({"cluster": "c3"})).await;
}

#[tokio::test]
async fn discover_poll_endpoint_answers_the_host() {
    let api = api();
    cluster(&api, "c4").await;
    let a = register(&api, "c4", 1024, 1024, "us-east-1a").await;
    let out = ok(
        &api,
        "DiscoverPollEndpoint",
        json!({"cluster": "c4", "containerInstance": a}),
    )
    .await;
    assert_eq!(out["endpoint"], "http://127.0.0.1:9999");
    assert_eq!(out["telemetryEndpoint"], "http://127.0.0.1:9999");
}
