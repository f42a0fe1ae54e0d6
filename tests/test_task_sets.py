"""Task sets: services with the EXTERNAL and CODE_DEPLOY deployment controllers.

The API checks run against one `flotilla server` per store (the embedded store and a one-member
etcd; the module-scoped `api` fixture is parametrized over both): CreateService with those
controllers, CreateTaskSet, DescribeTaskSets, UpdateTaskSet, DeleteTaskSet and
UpdateServicePrimaryTaskSet, their successes and ECS's errors (types and messages), with boto3
and the aws CLI. These servers have no agent: sets compute their desired counts, but no task
runs.

The acceptance test runs real containers (a `flotilla server` and an agent on the local Docker):
an EXTERNAL service with two task sets (scale 100 and 0), swapped with
UpdateServicePrimaryTaskSet and UpdateTaskSet, runs the right number of containers of each set at
every step, and a deleted set's containers stop before the set is gone."""

import json
import os
import re
import subprocess

import boto3
import pytest
from botocore.config import Config

import helpers
from fleet import CLUSTER_LABEL, IMAGE, TASK_ARN_LABEL, Fleet, docker, instances_ready, wait_for

NOT_EXTERNAL = ("Amazon ECS only supports task set management on services configured to use "
                "external deployment controllers.")
NOT_FOUND = ("The specified task set wasn't found. You can view your available task sets with "
             "DescribeTaskSets.")


def ecs_client(endpoint):
    return boto3.client(
        "ecs", endpoint_url=endpoint, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module", params=["embedded", "etcd"])
def api(request, tmp_path_factory):
    """One `flotilla server` (no agent) on the embedded store, or on a one-member etcd."""
    tmp = tmp_path_factory.mktemp(f"tasksets-{request.param}")
    if request.param == "embedded":
        server = helpers.Server(tmp / "data", tmp / "server.log", mode="server")
        yield server.endpoint
        server.kill()
        return
    with helpers.SoloEtcd(tmp / "etcd") as etcd:
        key = helpers.secrets_key_file(tmp)
        server = helpers.Server(
            tmp / "data", tmp / "server.log", mode="server",
            extra_args=["--store", etcd.store("tasksets"), "--secrets-key-file", str(key)],
        )
        yield server.endpoint
        server.kill()


@pytest.fixture(scope="module")
def ecs(api):
    return ecs_client(api)


@pytest.fixture(scope="module")
def cluster(ecs):
    name = helpers.unique("ts")
    ecs.create_cluster(clusterName=name)
    return name


def register(ecs, family=None, marker="v1"):
    family = family or helpers.unique("tsfam")
    return ecs.register_task_definition(
        family=family,
        containerDefinitions=[{
            "name": "app", "image": IMAGE, "memory": 16, "essential": True,
            "environment": [{"name": "MARKER", "value": marker}],
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
            "stopTimeout": 2,
        }],
    )["taskDefinition"]["taskDefinitionArn"]


def external_service(ecs, cluster, desired=3, **kw):
    name = helpers.unique("ext")
    s = ecs.create_service(cluster=cluster, serviceName=name, desiredCount=desired,
                           deploymentController={"type": "EXTERNAL"}, **kw)["service"]
    return name, s


def error_of(call, *args, **kw):
    with pytest.raises(Exception) as e:
        call(*args, **kw)
    err = e.value.response["Error"]
    return err["Code"], err["Message"]


def describe_sets(ecs, cluster, service, ids=None, **kw):
    args = {"cluster": cluster, "service": service, **kw}
    if ids is not None:
        args["taskSets"] = ids
    return ecs.describe_task_sets(**args)


# --- CreateService ---------------------------------------------------------------------------

def test_external_service_has_task_sets_instead_of_deployments(ecs, cluster):
    name, s = external_service(ecs, cluster)
    assert s["deploymentController"] == {"type": "EXTERNAL"}
    # Task sets instead of deployments: ECS answers an empty list of deployments.
    assert s["taskSets"] == []
    assert s["deployments"] == []
    assert "taskDefinition" not in s
    assert s["desiredCount"] == 3 and s["status"] == "ACTIVE"
    again = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert again["taskSets"] == [] and again["deployments"] == []


def test_external_service_refuses_what_belongs_to_task_sets(ecs, cluster):
    lb = [{"targetGroupArn": f"arn:aws:elasticloadbalancing:{helpers.REGION}:{helpers.ACCOUNT}:"
                             "targetgroup/tg/0123456789abcdef", "containerName": "app", "containerPort": 80}]
    assert error_of(ecs.create_service, cluster=cluster, serviceName=helpers.unique("x"), desiredCount=1,
                    deploymentController={"type": "EXTERNAL"}, loadBalancers=lb) == (
        "InvalidParameterException", "LoadBalancers must be empty or null.")
    code, msg = error_of(ecs.create_service, cluster=cluster, serviceName=helpers.unique("x"),
                         schedulingStrategy="DAEMON", deploymentController={"type": "EXTERNAL"})
    assert code == "InvalidParameterException" and "DAEMON" in msg
    assert error_of(ecs.create_service, cluster=cluster, serviceName=helpers.unique("x"),
                    deploymentController={"type": "EXTERNAL"}) == (
        "InvalidParameterException", "The desiredCount parameter is required for the REPLICA scheduling strategy.")


def test_code_deploy_service_needs_a_task_definition_and_a_load_balancer(ecs, cluster):
    td = register(ecs)
    assert error_of(ecs.create_service, cluster=cluster, serviceName=helpers.unique("cd"), desiredCount=1,
                    deploymentController={"type": "CODE_DEPLOY"}) == (
        "InvalidParameterException",
        "A task definition is required for a service with the CODE_DEPLOY deployment controller.")
    assert error_of(ecs.create_service, cluster=cluster, serviceName=helpers.unique("cd"), desiredCount=1,
                    taskDefinition=td, deploymentController={"type": "CODE_DEPLOY"}) == (
        "InvalidParameterException",
        "A load balancer is required for a service with the CODE_DEPLOY deployment controller.")


def test_code_deploy_service_starts_with_a_primary_task_set(api, ecs, cluster):
    elbv2 = boto3.client(
        "elbv2", endpoint_url=api, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )
    name = helpers.unique("cdlb")
    lb = elbv2.create_load_balancer(Name=name, Type="application",
                                    Subnets=["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"])
    tg = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8080, TargetType="ip",
                                   VpcId="vpc-0123456789abcdef0")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"], Protocol="HTTP",
                          Port=helpers.free_port(), DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    td = ecs.register_task_definition(
        family=helpers.unique("cdweb"), networkMode="awsvpc", requiresCompatibilities=["EC2"],
        containerDefinitions=[{"name": "web", "image": IMAGE, "memory": 16,
                               "portMappings": [{"containerPort": 8080}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    vpc = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}}
    lbs = [{"targetGroupArn": tg, "containerName": "web", "containerPort": 8080}]
    svc = helpers.unique("cd")
    s = ecs.create_service(cluster=cluster, serviceName=svc, desiredCount=2, taskDefinition=td,
                           launchType="EC2", networkConfiguration=vpc, loadBalancers=lbs,
                           deploymentController={"type": "CODE_DEPLOY"})["service"]
    assert s["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert s["deployments"] == []
    assert s["taskDefinition"] == td and s["loadBalancers"] == lbs
    [ts] = s["taskSets"]
    assert ts["status"] == "PRIMARY" and ts["taskDefinition"] == td
    assert ts["scale"] == {"value": 100.0, "unit": "PERCENT"} and ts["computedDesiredCount"] == 2
    assert ts["loadBalancers"] == lbs and ts["launchType"] == "EC2"
    assert error_of(ecs.update_service, cluster=cluster, service=svc, taskDefinition=td) == (
        "InvalidParameterException",
        "Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
        "Use AWS CodeDeploy to trigger a new deployment.")
    assert error_of(ecs.update_service, cluster=cluster, service=svc, loadBalancers=lbs) == (
        "InvalidParameterException",
        "Unable to update load balancers on services with a CODE_DEPLOY deployment controller. "
        "Use AWS CodeDeploy to trigger a new deployment.")
    out = ecs.update_service(cluster=cluster, service=svc, desiredCount=3)["service"]
    assert out["taskSets"][0]["computedDesiredCount"] == 3


# --- CreateTaskSet ---------------------------------------------------------------------------

def test_create_task_set_defaults_and_shape(ecs, cluster):
    name, _ = external_service(ecs, cluster, desired=3)
    td = register(ecs)
    ts = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td, externalId="deploy-1",
                             launchType="EC2", tags=[{"key": "team", "value": "blue"}])["taskSet"]
    assert re.fullmatch(r"ecs-svc/\d{19}", ts["id"]), ts["id"]
    assert ts["taskSetArn"] == (f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:task-set/"
                                f"{cluster}/{name}/{ts['id']}")
    assert ts["serviceArn"] == f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:service/{cluster}/{name}"
    assert ts["clusterArn"] == f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:cluster/{cluster}"
    assert ts["status"] == "ACTIVE"
    assert ts["taskDefinition"] == td
    assert ts["scale"] == {"value": 100.0, "unit": "PERCENT"}
    assert ts["computedDesiredCount"] == 3
    assert ts["pendingCount"] == 0 and ts["runningCount"] == 0
    assert ts["stabilityStatus"] == "STABILIZING"
    assert ts["launchType"] == "EC2"
    assert ts["externalId"] == "deploy-1"
    assert ts["loadBalancers"] == [] and ts["serviceRegistries"] == []
    assert ts["tags"] == [{"key": "team", "value": "blue"}]
    s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert [t["id"] for t in s["taskSets"]] == [ts["id"]]
    # No primary yet: the service shows no task definition.
    assert "taskDefinition" not in s


def test_computed_desired_count_rounds_up(ecs, cluster):
    name, _ = external_service(ecs, cluster, desired=3)
    td = register(ecs)
    for value, want in [(50, 2), (33.4, 2), (10, 1), (0, 0), (100, 3)]:
        ts = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td,
                                 scale={"value": value, "unit": "PERCENT"})["taskSet"]
        assert ts["computedDesiredCount"] == want, (value, ts)
        ecs.delete_task_set(cluster=cluster, service=name, taskSet=ts["id"])


def test_create_task_set_errors(ecs, cluster):
    td = register(ecs)
    ecs_name = helpers.unique("rolling")
    ecs.create_service(cluster=cluster, serviceName=ecs_name, taskDefinition=td, desiredCount=0)
    assert error_of(ecs.create_task_set, cluster=cluster, service=ecs_name, taskDefinition=td) == (
        "InvalidParameterException", NOT_EXTERNAL)
    assert error_of(ecs.describe_task_sets, cluster=cluster, service=ecs_name) == (
        "InvalidParameterException", NOT_EXTERNAL)
    assert error_of(ecs.create_task_set, cluster=cluster, service="nope", taskDefinition=td)[0] == \
        "ServiceNotFoundException"
    assert error_of(ecs.create_task_set, cluster=helpers.unique("nocluster"), service="x",
                    taskDefinition=td)[0] == "ClusterNotFoundException"
    name, _ = external_service(ecs, cluster)
    assert error_of(ecs.create_task_set, cluster=cluster, service=name, taskDefinition=td,
                    scale={"value": 150, "unit": "PERCENT"}) == (
        "InvalidParameterException", "Scale value must be between 0 and 100.")
    assert error_of(ecs.create_task_set, cluster=cluster, service=name, taskDefinition="nofamily:9") == (
        "ClientException", "TaskDefinition not found.")
    for _ in range(5):
        ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td)
    assert error_of(ecs.create_task_set, cluster=cluster, service=name, taskDefinition=td) == (
        "InvalidParameterException",
        "5 deployments exist on the service. Unable to create new TaskSet since this exceeds the maximum limit.")


def test_client_token_answers_the_same_set(ecs, cluster):
    name, _ = external_service(ecs, cluster)
    td = register(ecs)
    a = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td, clientToken="tok-1")["taskSet"]
    b = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td, clientToken="tok-1")["taskSet"]
    assert a["id"] == b["id"]
    assert len(describe_sets(ecs, cluster, name)["taskSets"]) == 1


def test_task_set_operations_on_a_draining_service_are_refused(ecs, cluster):
    name, _ = external_service(ecs, cluster, desired=0)
    td = register(ecs)
    ts = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td)["taskSet"]
    ecs.delete_service(cluster=cluster, service=name, force=True)
    not_active = ("ServiceNotActiveException", "Service was not ACTIVE.")
    assert error_of(ecs.create_task_set, cluster=cluster, service=name, taskDefinition=td) == not_active
    assert error_of(ecs.update_task_set, cluster=cluster, service=name, taskSet=ts["id"],
                    scale={"value": 5, "unit": "PERCENT"}) == not_active
    assert error_of(ecs.delete_task_set, cluster=cluster, service=name, taskSet=ts["id"]) == not_active
    assert error_of(ecs.update_service_primary_task_set, cluster=cluster, service=name,
                    primaryTaskSet=ts["id"]) == not_active


# --- DescribeTaskSets ------------------------------------------------------------------------

def test_describe_task_sets_by_id_and_arn_with_missing_and_tags(ecs, cluster):
    name, _ = external_service(ecs, cluster)
    td = register(ecs)
    a = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td,
                            tags=[{"key": "k", "value": "v"}])["taskSet"]
    b = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td)["taskSet"]
    every = describe_sets(ecs, cluster, name)
    assert {t["id"] for t in every["taskSets"]} == {a["id"], b["id"]}
    assert every["failures"] == []
    assert all("tags" not in t for t in every["taskSets"])
    missing_id = "ecs-svc/1234567890123456789"
    out = describe_sets(ecs, cluster, name, [a["taskSetArn"], b["id"], missing_id], include=["TAGS"])
    assert [t["id"] for t in out["taskSets"]] == [a["id"], b["id"]]
    assert out["taskSets"][0]["tags"] == [{"key": "k", "value": "v"}]
    assert out["failures"] == [{
        "arn": f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:task-set/{cluster}/{name}/{missing_id}",
        "reason": "MISSING",
    }]
    assert error_of(ecs.describe_task_sets, cluster=cluster, service="nope")[0] == "ServiceNotFoundException"
    # Task sets are taggable by ARN (their tags live in the service's record).
    ecs.tag_resource(resourceArn=b["taskSetArn"], tags=[{"key": "stage", "value": "green"}])
    assert ecs.list_tags_for_resource(resourceArn=b["taskSetArn"])["tags"] == [{"key": "stage", "value": "green"}]
    ecs.untag_resource(resourceArn=a["taskSetArn"], tagKeys=["k"])
    assert describe_sets(ecs, cluster, name, [a["id"]], include=["TAGS"])["taskSets"][0]["tags"] == []
    gone = a["taskSetArn"].rsplit("/", 1)[0] + "/9999999999999999999"
    assert error_of(ecs.list_tags_for_resource, resourceArn=gone) == (
        "ResourceNotFoundException", f"The specified resource wasn't found: {gone}.")


# --- UpdateTaskSet, UpdateService ------------------------------------------------------------

def test_update_task_set_and_service_desired_count(ecs, cluster):
    name, _ = external_service(ecs, cluster, desired=4)
    td = register(ecs)
    a = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td)["taskSet"]
    b = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td,
                            scale={"value": 0, "unit": "PERCENT"})["taskSet"]
    out = ecs.update_task_set(cluster=cluster, service=name, taskSet=b["taskSetArn"],
                              scale={"value": 50, "unit": "PERCENT"})["taskSet"]
    assert out["scale"] == {"value": 50.0, "unit": "PERCENT"} and out["computedDesiredCount"] == 2
    ecs.update_service(cluster=cluster, service=name, desiredCount=5)
    counts = {t["id"]: t["computedDesiredCount"] for t in describe_sets(ecs, cluster, name)["taskSets"]}
    assert counts == {a["id"]: 5, b["id"]: 3}
    assert error_of(ecs.update_task_set, cluster=cluster, service=name, taskSet="ecs-svc/1111111111111111111",
                    scale={"value": 5, "unit": "PERCENT"}) == ("TaskSetNotFoundException", NOT_FOUND)
    assert error_of(ecs.update_task_set, cluster=cluster, service=name, taskSet=a["id"],
                    scale={"value": -1, "unit": "PERCENT"}) == (
        "InvalidParameterException", "Scale value must be between 0 and 100.")
    assert error_of(ecs.update_service, cluster=cluster, service=name, taskDefinition=td) == (
        "InvalidParameterException",
        "Unable to update task definition on services with a EXTERNAL deployment controller. "
        "Create a new task set to trigger a new deployment.")


# --- UpdateServicePrimaryTaskSet -------------------------------------------------------------

def test_primary_task_set_moves_the_service_task_definition(ecs, cluster):
    name, _ = external_service(ecs, cluster, desired=2)
    family = helpers.unique("tsprim")
    td1, td2 = register(ecs, family, "v1"), register(ecs, family, "v2")
    a = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td1)["taskSet"]
    b = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td2)["taskSet"]
    p = ecs.update_service_primary_task_set(cluster=cluster, service=name, primaryTaskSet=a["id"])["taskSet"]
    assert p["id"] == a["id"] and p["status"] == "PRIMARY"
    s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert s["taskDefinition"] == td1 and s["launchType"] == "EC2"
    p = ecs.update_service_primary_task_set(cluster=cluster, service=name,
                                            primaryTaskSet=b["taskSetArn"])["taskSet"]
    assert p["status"] == "PRIMARY"
    s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert s["taskDefinition"] == td2
    status = {t["id"]: t["status"] for t in s["taskSets"]}
    assert status == {a["id"]: "ACTIVE", b["id"]: "PRIMARY"}
    assert error_of(ecs.update_service_primary_task_set, cluster=cluster, service=name,
                    primaryTaskSet="ecs-svc/2222222222222222222") == ("TaskSetNotFoundException", NOT_FOUND)


# --- DeleteTaskSet ---------------------------------------------------------------------------

def test_delete_task_set_drains_then_is_gone(ecs, cluster):
    name, _ = external_service(ecs, cluster, desired=1)
    td = register(ecs)
    a = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td)["taskSet"]
    b = ecs.create_task_set(cluster=cluster, service=name, taskDefinition=td)["taskSet"]
    ecs.update_service_primary_task_set(cluster=cluster, service=name, primaryTaskSet=a["id"])
    assert error_of(ecs.delete_task_set, cluster=cluster, service=name, taskSet=a["id"]) == (
        "InvalidParameterException", "Primary TaskSet cannot be deleted")
    d = ecs.delete_task_set(cluster=cluster, service=name, taskSet=b["id"])["taskSet"]
    assert d["status"] == "DRAINING" and d["computedDesiredCount"] == 0
    assert wait_for(lambda: describe_sets(ecs, cluster, name, [b["id"]])["failures"], timeout=30,
                    what="the deleted set to be gone")[0]["reason"] == "MISSING"
    assert error_of(ecs.delete_task_set, cluster=cluster, service=name, taskSet=b["id"]) == (
        "TaskSetNotFoundException", NOT_FOUND)
    forced = ecs.delete_task_set(cluster=cluster, service=name, taskSet=a["taskSetArn"], force=True)["taskSet"]
    assert forced["status"] == "DRAINING"


# --- The aws CLI -----------------------------------------------------------------------------

def test_the_aws_cli_drives_task_sets(api, ecs, cluster, aws_cli, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION, AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_MAX_ATTEMPTS="1",
               AWS_PAGER="", HOME=str(tmp_path))

    def aws(*args, ok=True):
        out = subprocess.run([aws_cli, "--endpoint-url", api, "--output", "json", "ecs", *args],
                             capture_output=True, text=True, env=env)
        if ok:
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else {}
        assert out.returncode != 0
        return out.stderr

    name, _ = external_service(ecs, cluster, desired=2)
    td = register(ecs)
    ts = aws("create-task-set", "--cluster", cluster, "--service", name, "--task-definition", td,
             "--scale", "value=50,unit=PERCENT")["taskSet"]
    assert ts["computedDesiredCount"] == 1
    out = aws("describe-task-sets", "--cluster", cluster, "--service", name, "--task-sets", ts["id"])
    assert out["taskSets"][0]["id"] == ts["id"]
    p = aws("update-service-primary-task-set", "--cluster", cluster, "--service", name,
            "--primary-task-set", ts["id"])["taskSet"]
    assert p["status"] == "PRIMARY"
    u = aws("update-task-set", "--cluster", cluster, "--service", name, "--task-set", ts["id"],
            "--scale", "value=100,unit=PERCENT")["taskSet"]
    assert u["computedDesiredCount"] == 2
    err = aws("delete-task-set", "--cluster", cluster, "--service", name, "--task-set", ts["id"], ok=False)
    assert "InvalidParameterException" in err and "Primary TaskSet cannot be deleted" in err
    err = aws("delete-task-set", "--cluster", cluster, "--service", name, "--task-set",
              "ecs-svc/3333333333333333333", ok=False)
    assert "TaskSetNotFoundException" in err
    d = aws("delete-task-set", "--cluster", cluster, "--service", name, "--task-set", ts["id"], "--force")
    assert d["taskSet"]["status"] == "DRAINING"


# --- Real tasks ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("tasksets-fleet"))
    yield f
    f.close()


def running_containers_per_set(fleet_ecs, cluster):
    """Running Docker containers of the cluster's tasks, counted by the task set (startedBy) of
    their task."""
    out = docker("ps", "--filter", f"label={CLUSTER_LABEL}={cluster}",
                 "--format", '{{.Label "' + TASK_ARN_LABEL + '"}}')
    arns = sorted({line for line in out.splitlines() if line})
    counts = {}
    for i in range(0, len(arns), 100):
        for t in fleet_ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100])["tasks"]:
            counts[t["startedBy"]] = counts.get(t["startedBy"], 0) + 1
    return counts


def expect(fleet_ecs, cluster, service, want, what):
    """Waits until exactly `want` ({set id: n}) containers run per set, the sets say so, and
    each is STEADY_STATE."""
    def check():
        got = running_containers_per_set(fleet_ecs, cluster)
        got = {k: v for k, v in got.items() if v}
        if got != {k: v for k, v in want.items() if v}:
            return None
        sets = describe_sets(fleet_ecs, cluster, service)["taskSets"]
        for t in sets:
            if t["runningCount"] != want.get(t["id"], 0) or t["stabilityStatus"] != "STEADY_STATE":
                return None
        return got or True
    return wait_for(check, timeout=90, interval=0.5, what=what)


def test_external_service_runs_each_sets_tasks_as_containers(fleet):
    fleet_ecs = ecs_client(fleet.endpoint)
    cluster = helpers.unique("tsrun")
    fleet_ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(fleet_ecs, cluster, 1)
    family = helpers.unique("tsrunfam")
    blue, green = register(fleet_ecs, family, "blue"), register(fleet_ecs, family, "green")
    name, _ = external_service(fleet_ecs, cluster, desired=2)
    a = fleet_ecs.create_task_set(cluster=cluster, service=name, taskDefinition=blue)["taskSet"]["id"]
    b = fleet_ecs.create_task_set(cluster=cluster, service=name, taskDefinition=green,
                                  scale={"value": 0, "unit": "PERCENT"})["taskSet"]["id"]
    fleet_ecs.update_service_primary_task_set(cluster=cluster, service=name, primaryTaskSet=a)
    expect(fleet_ecs, cluster, name, {a: 2, b: 0}, "blue 2, green 0")
    tasks = fleet_ecs.describe_tasks(cluster=cluster, tasks=fleet_ecs.list_tasks(
        cluster=cluster, serviceName=name)["taskArns"])["tasks"]
    assert {t["startedBy"] for t in tasks} == {a}
    assert {t["group"] for t in tasks} == {f"service:{name}"}
    assert {t["taskDefinitionArn"] for t in tasks} == {blue}

    # Green scaled up beside blue, then made primary, then blue scaled down.
    fleet_ecs.update_task_set(cluster=cluster, service=name, taskSet=b, scale={"value": 100, "unit": "PERCENT"})
    expect(fleet_ecs, cluster, name, {a: 2, b: 2}, "blue 2, green 2")
    fleet_ecs.update_service_primary_task_set(cluster=cluster, service=name, primaryTaskSet=b)
    s = fleet_ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert s["taskDefinition"] == green
    fleet_ecs.update_task_set(cluster=cluster, service=name, taskSet=a, scale={"value": 0, "unit": "PERCENT"})
    expect(fleet_ecs, cluster, name, {a: 0, b: 2}, "blue 0, green 2")

    # The service's desired count changes every set's computed count.
    fleet_ecs.update_service(cluster=cluster, service=name, desiredCount=3)
    expect(fleet_ecs, cluster, name, {a: 0, b: 3}, "green 3")
    s = fleet_ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert s["runningCount"] == 3

    # Deleting blue: DRAINING, then gone; green's tasks are untouched.
    fleet_ecs.update_task_set(cluster=cluster, service=name, taskSet=a, scale={"value": 34, "unit": "PERCENT"})
    expect(fleet_ecs, cluster, name, {a: 2, b: 3}, "blue 2 (ceil 3 x 34%), green 3")
    fleet_ecs.delete_task_set(cluster=cluster, service=name, taskSet=a)
    wait_for(lambda: describe_sets(fleet_ecs, cluster, name, [a])["failures"], timeout=60,
             what="the deleted set to be gone")
    assert running_containers_per_set(fleet_ecs, cluster) == {b: 3}

    # Deleting the service stops the rest.
    fleet_ecs.update_service(cluster=cluster, service=name, desiredCount=0)
    expect(fleet_ecs, cluster, name, {b: 0}, "green 0")
    fleet_ecs.delete_service(cluster=cluster, service=name)
    wait_for(lambda: fleet_ecs.describe_services(cluster=cluster, services=[name])["services"][0]["status"]
             == "INACTIVE", timeout=60, what="the service INACTIVE")


def test_task_sets_behind_load_balancers_register_and_drain_their_own_tasks(fleet, aws_cli, tmp_path):
    """Blue/green by hand: each set names its own target group (and listener); its RUNNING tasks
    are registered there, answer through it, and drain from it when the set is deleted."""
    from test_load_balancing import VPC, get, health, make_load_balancer, web
    from test_load_balancing import register as register_awsvpc

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION, AWS_ENDPOINT_URL=fleet.endpoint,
               AWS_CONFIG_FILE=str(tmp_path / "config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "creds"),
               AWS_PAGER="", HOME=str(tmp_path))

    def elbv2(*args):
        out = subprocess.run([aws_cli, "elbv2", *args, "--output", "json"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert out.returncode == 0, f"aws elbv2 {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}

    fleet_ecs = ecs_client(fleet.endpoint)
    cluster = helpers.unique("tslb")
    fleet_ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(fleet_ecs, cluster, 1)
    blue_tg, blue_port = make_load_balancer(elbv2, helpers.unique("blue"))
    green_tg, green_port = make_load_balancer(elbv2, helpers.unique("green"))
    family = helpers.unique("tslbfam")
    # httpd as the container's first process ignores SIGTERM: a short stop timeout.
    v1 = register_awsvpc(fleet_ecs, family, {**web("v1"), "stopTimeout": 2})
    v2 = register_awsvpc(fleet_ecs, family, {**web("v2"), "stopTimeout": 2})
    name, _ = external_service(fleet_ecs, cluster, desired=2)

    sd = boto3.client("servicediscovery", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
                      aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
                      config=Config(inject_host_prefix=False))
    op = sd.create_http_namespace(Name=helpers.unique("tsns"))["OperationId"]
    ns = sd.get_operation(OperationId=op)["Operation"]["Targets"]["NAMESPACE"]
    registry = sd.create_service(Name="web", NamespaceId=ns, Type="HTTP")["Service"]

    def task_set(td, tg, **kw):
        return fleet_ecs.create_task_set(
            cluster=cluster, service=name, taskDefinition=td, launchType="EC2", networkConfiguration=VPC,
            loadBalancers=[{"targetGroupArn": tg, "containerName": "web", "containerPort": 8080}], **kw,
        )["taskSet"]

    a = task_set(v1, blue_tg)
    b = task_set(v2, green_tg, externalId="green-1", serviceRegistries=[
        {"registryArn": registry["Arn"], "containerName": "web", "containerPort": 8080}])
    assert a["loadBalancers"][0]["targetGroupArn"] == blue_tg

    def set_ips(set_id):
        arns = fleet_ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus="RUNNING")["taskArns"]
        tasks = fleet_ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
        return {d["value"] for t in tasks if t["startedBy"] == set_id and t["lastStatus"] == "RUNNING"
                for att in t.get("attachments", []) for d in att["details"] if d["name"] == "privateIPv4Address"}

    def healthy_in(tg, set_id):
        ips = set_ips(set_id)
        h = health(elbv2, tg)
        return len(ips) == 2 and {i for i, st in h.items() if st == "healthy"} == ips and len(h) == 2

    wait_for(lambda: healthy_in(blue_tg, a["id"]) and healthy_in(green_tg, b["id"]), timeout=120,
             interval=0.5, what="each set's tasks healthy in its own target group")
    assert {get(blue_port)[1].split()[1] for _ in range(4)} == {"v1"}
    assert {get(green_port)[1].split()[1] for _ in range(4)} == {"v2"}
    # Green's tasks (only) are in its Cloud Map service, with the set's externalId.
    instances = wait_for(lambda: (lambda i: i if len(i) == 2 else None)(
        sd.list_instances(ServiceId=registry["Id"])["Instances"]), timeout=30, what="green in Cloud Map")
    assert {i["Attributes"]["AWS_INSTANCE_IPV4"] for i in instances} == set_ips(b["id"])
    assert {i["Attributes"].get("ECS_TASK_SET_EXTERNAL_ID") for i in instances} == {"green-1"}

    fleet_ecs.update_service_primary_task_set(cluster=cluster, service=name, primaryTaskSet=b["id"])
    s = fleet_ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert s["taskDefinition"] == v2 and s["loadBalancers"][0]["targetGroupArn"] == green_tg
    blue_tasks = [t for t in fleet_ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]]
    blue_tasks = [t["taskArn"] for t in fleet_ecs.describe_tasks(cluster=cluster, tasks=blue_tasks)["tasks"]
                  if t["startedBy"] == a["id"]]
    assert len(blue_tasks) == 2
    # Draining lasts the deregistration delay (3 s): watched through boto3, whose calls take
    # milliseconds, not through the aws CLI, whose start-up alone can take longer than that on a
    # busy machine (it then saw the targets only once they were gone).
    elbv2_api = boto3.client("elbv2", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
                             aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY)

    def blue_health():
        out = elbv2_api.describe_target_health(TargetGroupArn=blue_tg)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in out}

    fleet_ecs.delete_task_set(cluster=cluster, service=name, taskSet=a["id"])
    wait_for(lambda: (lambda h: h if h and set(h.values()) <= {"draining"} else None)(blue_health()),
             timeout=30, interval=0.1, what="blue's targets draining")
    wait_for(lambda: describe_sets(fleet_ecs, cluster, name, [a["id"]])["failures"], timeout=60,
             what="the blue set gone once drained")
    assert health(elbv2, blue_tg) == {}
    # Blue's tasks were stopped only once their targets had drained (the deregistration delay).
    for t in fleet_ecs.describe_tasks(cluster=cluster, tasks=blue_tasks)["tasks"]:
        assert t["lastStatus"] == "STOPPED"
        waited = (t["stoppedAt"] - t["stoppingAt"]).total_seconds()
        assert waited >= 2.5, (waited, t["stoppingAt"], t["stoppedAt"])
    assert healthy_in(green_tg, b["id"])
    fleet_ecs.update_service(cluster=cluster, service=name, desiredCount=0)
    fleet_ecs.delete_service(cluster=cluster, service=name)
    wait_for(lambda: fleet_ecs.describe_services(cluster=cluster, services=[name])["services"][0]["status"]
             == "INACTIVE", timeout=60, what="the service INACTIVE")
    assert health(elbv2, green_tg) == {}
