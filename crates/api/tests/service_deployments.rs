//! Service deployment history operations through `dispatch`, on a MemoryStore, with the service
//! loop's reconcile called by hand (no background loop, no agents: desiredCount 0).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use flotilla_controllers::service_loop::reconcile;
use flotilla_model::ErrorCode;
use flotilla_store::Fence;
use serde_json::{json, Value};

async fn list(api: &flotilla_api::Api, input: Value) -> Vec<Value> {
    ok(api, "ListServiceDeployments", input).await["serviceDeployments"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn deployments_are_listed_described_and_stopped() {
    let api = api();
    cluster(&api, "c1").await;
    task_definition(&api, "web", 128, None).await;
    task_definition(&api, "web", 256, None).await;
    ok(
        &api,
        "CreateService",
        json!({"cluster": "c1", "serviceName": "s1", "taskDefinition": "web:1", "desiredCount": 0}),
    )
    .await;
    assert!(reconcile(&api, &Fence::unfenced(), "c1", "s1")
        .await
        .unwrap());
    ok(
        &api,
        "UpdateService",
        json!({"cluster": "c1", "service": "s1", "taskDefinition": "web:2"}),
    )
    .await;

    let ds = list(&api, json!({"cluster": "c1", "service": "s1"})).await;
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0]["status"], "IN_PROGRESS");
    assert_eq!(ds[1]["status"], "SUCCESSFUL");
    let new_arn = ds[0]["serviceDeploymentArn"].as_str().unwrap().to_string();
    let old_arn = ds[1]["serviceDeploymentArn"].as_str().unwrap().to_string();
    assert!(
        new_arn.starts_with("arn:aws:ecs:us-east-1:")
            && new_arn.contains(":service-deployment/c1/s1/")
    );
    assert!(ds[1]["finishedAt"].is_number());
    assert!(ds[0].get("finishedAt").is_none());
    let only = list(
        &api,
        json!({"cluster": "c1", "service": "s1", "status": ["SUCCESSFUL"]}),
    )
    .await;
    assert_eq!(only.len(), 1);
    let page = ok(
        &api,
        "ListServiceDeployments",
        json!({"cluster": "c1", "service": "s1", "maxResults": 1}),
    )
    .await;
    assert_eq!(
        page["serviceDeployments"][0]["serviceDeploymentArn"],
        new_arn.as_str()
    );
    let page2 = ok(
        &api,
        "ListServiceDeployments",
        json!({"cluster": "c1", "service": "s1", "maxResults": 1, "nextToken": page["nextToken"]}),
    )
    .await;
    assert_eq!(
        page2["serviceDeployments"][0]["serviceDeploymentArn"],
        old_arn.as_str()
    );
    assert!(page2.get("nextToken").is_none());

    let e = err(
        &api,
        "ListServiceDeployments",
        json!({"cluster": "c1", "service": "nope"}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::ServiceNotFoundException);
    let e = err(
        &api,
        "ListServiceDeployments",
        json!({"cluster": "nope", "service": "s1"}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::ClusterNotFoundException);

    let missing = new_arn.rsplit_once('/').unwrap().0.to_string() + "/1234";
    let d = ok(
        &api,
        "DescribeServiceDeployments",
        json!({"serviceDeploymentArns": [new_arn, missing]}),
    )
    .await;
    let sd = &d["serviceDeployments"][0];
    assert_eq!(sd["status"], "IN_PROGRESS");
    assert_eq!(d["failures"][0]["arn"], missing.as_str());
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    let target_rev = sd["targetServiceRevision"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(target_rev.contains(":service-revision/c1/s1/"));
    assert_eq!(
        sd["sourceServiceRevisions"][0]["arn"],
        ds[1]["targetServiceRevisionArn"]
    );
    assert_eq!(sd["deploymentConfiguration"]["maximumPercent"], 200);

    let r = ok(
        &api,
        "DescribeServiceRevisions",
        json!({"serviceRevisionArns": [target_rev, "arn:aws:ecs:us-east-1:123456789012:service-revision/c1/s1/9"]}),
    )
    .await;
    let rev = &r["serviceRevisions"][0];
    assert!(rev["taskDefinition"]
        .as_str()
        .unwrap()
        .ends_with(":task-definition/web:2"));
    assert_eq!(rev["containerImages"][0]["containerName"], "app");
    assert_eq!(rev["containerImages"][0]["image"], "busybox");
    assert_eq!(r["failures"][0]["reason"], "MISSING");

    let e = err(
        &api,
        "StopServiceDeployment",
        json!({"serviceDeploymentArn": old_arn}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::ConflictException);
    let e = err(
        &api,
        "StopServiceDeployment",
        json!({"serviceDeploymentArn": missing}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::ServiceDeploymentNotFoundException);

    // ROLLBACK: a third deployment of web:1; the stopped one rolls back.
    ok(
        &api,
        "StopServiceDeployment",
        json!({"serviceDeploymentArn": new_arn}),
    )
    .await;
    let ds = list(&api, json!({"cluster": "c1", "service": "s1"})).await;
    assert_eq!(ds.len(), 3);
    assert_eq!(ds[0]["status"], "IN_PROGRESS");
    assert_eq!(ds[1]["status"], "ROLLBACK_IN_PROGRESS");
    let svc = ok(
        &api,
        "DescribeServices",
        json!({"cluster": "c1", "services": ["s1"]}),
    )
    .await;
    assert!(svc["services"][0]["taskDefinition"]
        .as_str()
        .unwrap()
        .ends_with("web:1"));
    for _ in 0..3 {
        reconcile(&api, &Fence::unfenced(), "c1", "s1")
            .await
            .unwrap();
    }
    let ds = list(&api, json!({"cluster": "c1", "service": "s1"})).await;
    assert_eq!(ds.len(), 3);
    assert_eq!(ds[0]["status"], "SUCCESSFUL");
    assert_eq!(ds[1]["status"], "ROLLBACK_SUCCESSFUL");
    let d = ok(
        &api,
        "DescribeServiceDeployments",
        json!({"serviceDeploymentArns": [new_arn]}),
    )
    .await;
    let sd = &d["serviceDeployments"][0];
    assert_eq!(
        sd["rollback"]["serviceRevisionArn"],
        ds[2]["targetServiceRevisionArn"]
    );
    assert!(sd["stoppedAt"].is_number());
    let e = err(
        &api,
        "StopServiceDeployment",
        json!({"serviceDeploymentArn": new_arn}),
    )
    .await;
    assert_eq!(e.code, ErrorCode::ConflictException);

    // ABORT: the deployment stops where it is.
    ok(
        &api,
        "UpdateService",
        json!({"cluster": "c1", "service": "s1", "taskDefinition": "web:2"}),
    )
    .await;
    let ds = list(&api, json!({"cluster": "c1", "service": "s1"})).await;
    let arn = ds[0]["serviceDeploymentArn"].clone();
    ok(
        &api,
        "StopServiceDeployment",
        json!({"serviceDeploymentArn": arn, "stopType": "ABORT"}),
    )
    .await;
    let ds = list(&api, json!({"cluster": "c1", "service": "s1"})).await;
    assert_eq!(ds.len(), 4);
    assert_eq!(ds[0]["status"], "STOPPED");
}

/// A DAEMON service on more instances than one placement names (StartTask's 10) runs one task on
/// every instance: 12 registered instances with connected agents, 12 tasks, one on each.
#[tokio::test]
async fn a_daemon_service_runs_one_task_on_each_of_12_instances() {
    let api = api();
    cluster(&api, "c1").await;
    task_definition(&api, "web", 128, None).await;
    let mut instances = Vec::new();
    for i in 0..12 {
        instances.push(register(&api, "c1", 1024, 2048, &format!("us-east-1-{i}")).await);
    }
    ok(
        &api,
        "CreateService",
        json!({"cluster": "c1", "serviceName": "d1", "taskDefinition": "web:1",
               "schedulingStrategy": "DAEMON"}),
    )
    .await;
    let mut arns: Vec<String> = Vec::new();
    for _ in 0..5 {
        assert!(reconcile(&api, &Fence::unfenced(), "c1", "d1")
            .await
            .unwrap());
        let listed = ok(
            &api,
            "ListTasks",
            json!({"cluster": "c1", "serviceName": "d1"}),
        )
        .await;
        arns = serde_json::from_value(listed["taskArns"].clone()).unwrap();
        if arns.len() >= 12 {
            break;
        }
    }
    assert_eq!(arns.len(), 12, "12 DAEMON tasks for 12 instances");
    let described = ok(
        &api,
        "DescribeTasks",
        json!({"cluster": "c1", "tasks": arns}),
    )
    .await;
    let mut on: Vec<String> = described["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["containerInstanceArn"].as_str().unwrap().to_string())
        .collect();
    on.sort();
    instances.sort();
    assert_eq!(on, instances, "one task on each instance");
}

/// What the agents would do: each task of `cluster` not on `cut` runs if it should, and stops
/// if it was told to (a task on the cut-off instance is left as it was).
async fn agents_act(api: &flotilla_api::Api, cluster: &str, cut: Option<&str>) {
    use flotilla_control::tasks::{Status, TaskRecord};
    use flotilla_controllers::records::{list, task_key, task_prefix, to_bytes};
    use flotilla_model::status::TaskStatus;
    use flotilla_protocol::DesiredStatus;
    let store = api.store.as_ref();
    for (_, mut t, _) in list::<TaskRecord>(store, &task_prefix(cluster))
        .await
        .unwrap()
    {
        if Some(t.instance_id.as_str()) == cut || t.is_stopped() {
            continue;
        }
        t.last_status = Status(match t.desired() {
            DesiredStatus::Running => TaskStatus::Running,
            DesiredStatus::Stopped => TaskStatus::Stopped,
        });
        let key = task_key(cluster, &t.id);
        let txn = flotilla_store::Txn::new().put(key, to_bytes(&t).unwrap());
        store.txn(txn).await.unwrap();
    }
}

/// The service's tasks that should run (ARN -> container instance id).
async fn wanted_tasks(api: &flotilla_api::Api) -> Vec<(String, String)> {
    use flotilla_control::tasks::TaskRecord;
    use flotilla_controllers::records::{list, task_prefix};
    use flotilla_protocol::DesiredStatus;
    let mut out: Vec<(String, String)> = list::<TaskRecord>(api.store.as_ref(), &task_prefix("c1"))
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, t, _)| t.desired() == DesiredStatus::Running && !t.is_stopped())
        .map(|(_, t, _)| (t.arn().to_string(), t.instance_id.clone()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_returning_instance_has_its_replaced_task_stopped_not_the_replacement() {
    use flotilla_controllers::agents::set_agent_connected;
    let api = api();
    cluster(&api, "c1").await;
    task_definition(&api, "web", 128, None).await;
    for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
        register(&api, "c1", 1024, 2048, az).await;
    }
    ok(
        &api,
        "CreateService",
        json!({"cluster": "c1", "serviceName": "s1", "taskDefinition": "web:1", "desiredCount": 3,
               "deploymentConfiguration": {"maximumPercent": 100, "minimumHealthyPercent": 100}}),
    )
    .await;
    let fence = Fence::unfenced();
    let settle = |cut: Option<String>| {
        let api = &api;
        let fence = &fence;
        async move {
            for _ in 0..5 {
                reconcile(api, fence, "c1", "s1").await.unwrap();
                agents_act(api, "c1", cut.as_deref()).await;
            }
        }
    };
    settle(None).await;
    let before = wanted_tasks(&api).await;
    assert_eq!(before.len(), 3, "{before:?}");
    let (original, cut) = before[0].clone();
    let no_session = || true;
    set_agent_connected(api.store.as_ref(), "c1", &cut, false, &no_session, None)
        .await
        .unwrap();
    settle(Some(cut.clone())).await;
    let during = wanted_tasks(&api).await;
    assert_eq!(
        during.len(),
        4,
        "the lost task and its replacement: {during:?}"
    );
    let replacement: Vec<(String, String)> = during
        .iter()
        .filter(|t| !before.contains(t))
        .cloned()
        .collect();
    assert_eq!(replacement.len(), 1);
    assert_ne!(replacement[0].1, cut, "replaced elsewhere");

    set_agent_connected(api.store.as_ref(), "c1", &cut, true, &no_session, None)
        .await
        .unwrap();
    settle(None).await;
    let after = wanted_tasks(&api).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        !after.iter().any(|(arn, _)| arn == &original),
        "the original is stopped"
    );
    assert!(after.contains(&replacement[0]), "the replacement stays");
    let s = ok(
        &api,
        "DescribeServices",
        json!({"cluster": "c1", "services": ["s1"]}),
    )
    .await;
    assert_eq!(s["services"][0]["runningCount"], 3);
    assert_eq!(s["services"][0]["desiredCount"], 3);
}
