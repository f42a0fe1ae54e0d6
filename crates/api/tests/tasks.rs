//! Task operations through `dispatch`, on a MemoryStore (and SQLite for the concurrency test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use flotilla_model::ErrorCode;
use flotilla_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

fn arns(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn run_task_places_reserves_and_reports_failures() {
    let api = api();
    cluster(&api, "t1").await;
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "nope"}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::ClientException, "TaskDefinition not found.")
    );
    task_definition(&api, "web", 300, Some(8080)).await;
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web"}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    assert_eq!(
        e.message,
        "No Container Instances were found in your cluster."
    );

    let inst = register(&api, "t1", 1024, 1024, "us-east-1a").await;
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web", "startedBy": "me",
        "propagateTags": "TASK_DEFINITION", "tags": [{"key": "run", "value": "1"}],
        "overrides": {"containerOverrides": [{"name": "app", "command": ["echo", "hi"],
                      "environment": [{"name": "X", "value": "1"}]}]}}),
    )
    .await;
    let t = &r["tasks"][0];
    let id = t["taskArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(t["lastStatus"], "PENDING");
    assert_eq!(t["desiredStatus"], "RUNNING");
    assert_eq!(t["group"], "family:web");
    assert_eq!(t["startedBy"], "me");
    assert_eq!(t["launchType"], "EC2");
    assert_eq!(t["containerInstanceArn"], inst);
    assert_eq!(t["availabilityZone"], "us-east-1a");
    assert_eq!(t["version"], 1);
    assert_eq!(t["containers"][0]["lastStatus"], "PENDING");
    assert_eq!(t["overrides"]["containerOverrides"][0]["name"], "app");
    let tags: Vec<&str> = t["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["key"].as_str().unwrap())
        .collect();
    assert_eq!(tags, vec!["team", "run"]);

    // The reservation shows in remainingResources, and the static port is taken.
    let d = ok(
        &api,
        "DescribeContainerInstances",
        json!({"cluster": "t1", "containerInstances": [inst]}),
    )
    .await;
    let ci = &d["containerInstances"][0];
    assert_eq!(
        resource(ci, "remainingResources", "MEMORY")["integerValue"],
        724
    );
    assert_eq!(
        resource(ci, "remainingResources", "CPU")["integerValue"],
        896
    );
    assert!(
        resource(ci, "remainingResources", "PORTS")["stringSetValue"]
            .as_array()
            .unwrap()
            .contains(&json!("8080"))
    );
    assert_eq!(ci["runningTasksCount"], 1);
    assert_eq!(ci["pendingTasksCount"], 1);

    // A second copy needs port 8080 again: RESOURCE:PORTS. Without the port, memory runs out.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web"}),
    )
    .await;
    assert_eq!(r["tasks"], json!([]));
    assert_eq!(
        r["failures"],
        json!([{"arn": inst, "reason": "RESOURCE:PORTS"}])
    );
    task_definition(&api, "big", 600, None).await;
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "big", "count": 2}),
    )
    .await;
    assert_eq!(r["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(
        r["failures"],
        json!([{"arn": inst, "reason": "RESOURCE:MEMORY"}])
    );

    // Cluster statistics count them.
    let c = ok(
        &api,
        "DescribeClusters",
        json!({"clusters": ["t1"], "include": ["STATISTICS"]}),
    )
    .await;
    assert_eq!(c["clusters"][0]["pendingTasksCount"], 2);
    assert_eq!(c["clusters"][0]["registeredContainerInstancesCount"], 1);
    let stats = c["clusters"][0]["statistics"].as_array().unwrap();
    assert!(stats
        .iter()
        .any(|s| s["name"] == "pendingEC2TasksCount" && s["value"] == "2"));
    let e = err(&api, "DeleteCluster", json!({"cluster": "t1"})).await;
    assert_eq!(
        e.code,
        ErrorCode::ClusterContainsContainerInstancesException
    );

    // Bad requests.
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web", "count": 11}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web", "launchType": "FARGATE"}),
    )
    .await;
    // An EC2 (bridge) task definition cannot run on Fargate.
    assert_eq!(e.code, ErrorCode::ClientException);
    assert_eq!(
        e.message,
        "Task definition does not support launch_type FARGATE."
    );
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web",
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:x =="}]}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web",
        "overrides": {"containerOverrides": [{"name": "ghost"}]}}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    ok(
        &api,
        "DeregisterTaskDefinition",
        json!({"taskDefinition": "web:1"}),
    )
    .await;
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t1", "taskDefinition": "web:1"}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::ClientException, "TaskDefinition is inactive")
    );
}

#[tokio::test]
async fn constraints_strategies_and_start_task() {
    let api = api();
    cluster(&api, "t2").await;
    let a = register(&api, "t2", 4096, 4096, "us-east-1a").await;
    let b = register(&api, "t2", 4096, 4096, "us-east-1b").await;
    ok(
        &api,
        "PutAttributes",
        json!({"cluster": "t2", "attributes": [{"name": "stack", "value": "blue", "targetId": b}]}),
    )
    .await;
    task_definition(&api, "svc", 128, None).await;
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t2", "taskDefinition": "svc", "count": 3,
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:stack == blue"}]}),
    )
    .await;
    for t in r["tasks"].as_array().unwrap() {
        assert_eq!(t["containerInstanceArn"], b);
    }
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t2", "taskDefinition": "svc", "count": 4, "group": "g",
        "placementStrategy": [{"type": "spread", "field": "instanceId"}]}),
    )
    .await;
    let on_a = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["containerInstanceArn"] == a)
        .count();
    assert_eq!(on_a, 2);
    assert_eq!(r["tasks"][0]["group"], "g");
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t2", "taskDefinition": "svc", "count": 3, "group": "d",
        "placementConstraints": [{"type": "distinctInstance"}]}),
    )
    .await;
    assert_eq!(r["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(r["failures"].as_array().unwrap().len(), 2);
    assert!(r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["reason"] == "ATTRIBUTE"));

    // StartTask on named instances; a DRAINING one and an unknown one fail.
    ok(
        &api,
        "UpdateContainerInstancesState",
        json!({"cluster": "t2", "containerInstances": [a], "status": "DRAINING"}),
    )
    .await;
    let s = ok(
        &api,
        "StartTask",
        json!({"cluster": "t2", "taskDefinition": "svc", "containerInstances": [b, a, "0123"]}),
    )
    .await;
    assert_eq!(s["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(s["tasks"][0]["containerInstanceArn"], b);
    let reasons: Vec<&str> = s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["INACTIVE", "MISSING"]);
    // RunTask skips DRAINING instances.
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t2", "taskDefinition": "svc", "count": 2}),
    )
    .await;
    assert!(r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["containerInstanceArn"] == b));
}

#[tokio::test]
async fn stop_describe_list_and_client_tokens() {
    let api = api();
    cluster(&api, "t3").await;
    let inst = register(&api, "t3", 4096, 4096, "us-east-1a").await;
    task_definition(&api, "job", 128, None).await;
    task_definition(&api, "other", 128, None).await;
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t3", "taskDefinition": "job", "count": 2, "clientToken": "tok-1"}),
    )
    .await;
    let ran = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    // The same token and request: the same tasks.
    let again = ok(
        &api,
        "RunTask",
        json!({"cluster": "t3", "taskDefinition": "job", "count": 2, "clientToken": "tok-1"}),
    )
    .await;
    let mut again_arns: Vec<String> = again["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = ran.clone();
    sorted.sort();
    again_arns.sort();
    assert_eq!(again_arns, sorted);
    let e = err(
        &api,
        "RunTask",
        json!({"cluster": "t3", "taskDefinition": "job", "count": 1, "clientToken": "tok-1"}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::ConflictException);
    ok(
        &api,
        "RunTask",
        json!({"cluster": "t3", "taskDefinition": "other", "startedBy": "ci"}),
    )
    .await;

    let l = ok(&api, "ListTasks", json!({"cluster": "t3"})).await;
    assert_eq!(arns(&l, "taskArns").len(), 3);
    let l = ok(&api, "ListTasks", json!({"cluster": "t3", "family": "job"})).await;
    assert_eq!(arns(&l, "taskArns").len(), 2);
    let l = ok(
        &api,
        "ListTasks",
        json!({"cluster": "t3", "startedBy": "ci"}),
    )
    .await;
    assert_eq!(arns(&l, "taskArns").len(), 1);
    let e = err(
        &api,
        "ListTasks",
        json!({"cluster": "t3", "startedBy": "ci", "family": "job"}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);
    let l = ok(
        &api,
        "ListTasks",
        json!({"cluster": "t3", "containerInstance": inst}),
    )
    .await;
    assert_eq!(arns(&l, "taskArns").len(), 3);
    let p = ok(&api, "ListTasks", json!({"cluster": "t3", "maxResults": 2})).await;
    assert!(p["nextToken"].is_string());

    let s = ok(
        &api,
        "StopTask",
        json!({"cluster": "t3", "task": ran[0], "reason": "done"}),
    )
    .await;
    assert_eq!(s["task"]["desiredStatus"], "STOPPED");
    assert_eq!(s["task"]["stopCode"], "UserInitiated");
    assert_eq!(s["task"]["stoppedReason"], "done");
    assert!(s["task"]["stoppingAt"].is_number());
    assert_eq!(s["task"]["version"], 2);
    // Stopping again changes nothing; the default reason.
    let s2 = ok(&api, "StopTask", json!({"cluster": "t3", "task": ran[0]})).await;
    assert_eq!(s2["task"]["stoppedReason"], "done");
    let id1 = ran[1].rsplit('/').next().unwrap();
    let s3 = ok(&api, "StopTask", json!({"cluster": "t3", "task": id1})).await;
    assert_eq!(s3["task"]["stoppedReason"], "Task stopped by user");
    let e = err(&api, "StopTask", json!({"cluster": "t3", "task": "ffff"})).await;
    assert_eq!(e.code, ErrorCode::InvalidParameterException);

    let l = ok(
        &api,
        "ListTasks",
        json!({"cluster": "t3", "desiredStatus": "STOPPED"}),
    )
    .await;
    assert_eq!(arns(&l, "taskArns").len(), 2);
    let l = ok(
        &api,
        "ListTasks",
        json!({"cluster": "t3", "desiredStatus": "PENDING"}),
    )
    .await;
    assert!(arns(&l, "taskArns").is_empty());

    let d = ok(
        &api,
        "DescribeTasks",
        json!({"cluster": "t3", "tasks": [ran[0], "nope"], "include": ["TAGS"]}),
    )
    .await;
    assert_eq!(d["tasks"][0]["taskArn"], ran[0]);
    assert_eq!(d["tasks"][0]["tags"], json!([]));
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    // Without `cluster`, the task ARN's cluster is used.
    let d = ok(&api, "DescribeTasks", json!({"tasks": [ran[0]]})).await;
    assert_eq!(d["tasks"][0]["taskArn"], ran[0]);
    assert!(d["tasks"][0].get("tags").is_none());
}

/// 24 RunTasks at once through `replicas` (in turn) on one instance with room for 8 tasks:
/// exactly 8 are placed, the others fail for memory, and every replica describes the instance
/// full.
async fn race(replicas: &[Arc<flotilla_api::Api>], name: &str) {
    let first = &replicas[0];
    cluster(first, name).await;
    let inst = register(first, name, 4096, 1024, "us-east-1a").await;
    task_definition(first, "small", 128, None).await;
    let mut handles = Vec::new();
    for n in 0..24 {
        let api = replicas[n % replicas.len()].clone();
        let name = name.to_string();
        handles.push(tokio::spawn(async move {
            call(
                &api,
                "RunTask",
                json!({"cluster": name, "taskDefinition": "small"}),
            )
            .await
        }));
    }
    let mut placed = 0;
    for h in handles {
        let out = h
            .await
            .unwrap()
            .expect("RunTask answers (tasks or failures)");
        placed += out["tasks"].as_array().unwrap().len();
        for f in out["failures"].as_array().unwrap() {
            assert_eq!(f["reason"], "RESOURCE:MEMORY");
        }
    }
    assert_eq!(placed, 8, "1024 MiB fits exactly 8 tasks of 128 MiB");
    for api in replicas {
        let d = ok(
            api,
            "DescribeContainerInstances",
            json!({"cluster": name, "containerInstances": [inst]}),
        )
        .await;
        let ci = &d["containerInstances"][0];
        assert_eq!(
            resource(ci, "remainingResources", "MEMORY")["integerValue"],
            0
        );
        assert_eq!(ci["runningTasksCount"], 8);
    }
}

async fn over_commit_check(store: Arc<dyn Store>) {
    race(&[Arc::new(api_with(store))], "race").await;
}

on_both_stores!(
    concurrent_run_tasks_never_over_commit_memory_store,
    concurrent_run_tasks_never_over_commit_sqlite_store,
    over_commit_check
);

/// Two replicas (each with its own task feed and instance cache) on one store place on the
/// same instance at once: the instance's placement guard serializes them, whichever replica's
/// cache is behind.
async fn two_replicas_over_commit_check(store: Arc<dyn Store>) {
    let replicas = [
        Arc::new(api_with(store.clone())),
        Arc::new(api_with(store.clone())),
    ];
    race(&replicas, "race2").await;
}

on_both_stores!(
    two_replicas_never_over_commit_memory_store,
    two_replicas_never_over_commit_sqlite_store,
    two_replicas_over_commit_check
);

#[tokio::test]
async fn tasks_and_instances_are_taggable() {
    let api = api();
    cluster(&api, "t4").await;
    let inst = register(&api, "t4", 1024, 1024, "us-east-1a").await;
    task_definition(&api, "tagged", 64, None).await;
    let r = ok(
        &api,
        "RunTask",
        json!({"cluster": "t4", "taskDefinition": "tagged", "tags": [{"key": "a", "value": "1"}]}),
    )
    .await;
    let task = r["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    ok(
        &api,
        "TagResource",
        json!({"resourceArn": task, "tags": [{"key": "b", "value": "2"}]}),
    )
    .await;
    let l = ok(&api, "ListTagsForResource", json!({"resourceArn": task})).await;
    assert_eq!(l["tags"].as_array().unwrap().len(), 2);
    ok(
        &api,
        "TagResource",
        json!({"resourceArn": inst, "tags": [{"key": "c", "value": "3"}]}),
    )
    .await;
    let d = ok(
        &api,
        "DescribeContainerInstances",
        json!({"cluster": "t4", "containerInstances": [inst], "include": ["TAGS"]}),
    )
    .await;
    assert_eq!(d["containerInstances"][0]["tags"][0]["key"], "c");
    let missing = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/t4/0000");
    let e = err(&api, "ListTagsForResource", json!({"resourceArn": missing})).await;
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
}
