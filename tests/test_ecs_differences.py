"""Smaller differences from ECS found with real tools (issue 16), each as the real service answers:
boto3 and the aws CLI against one server per store (the embedded store and etcd), API only (a
container instance registered by the API stands for a host: nothing runs).

- `startedBy` takes up to 128 printable characters, spaces included (`ECS Deploy`);
- DescribeTasks and DescribeContainerInstances refuse an empty list with ECS's messages;
- a deleted cluster stays listed (INACTIVE) and cannot be tagged;
- a service missing from DescribeServices by name is reported as `service/NAME`;
- RegisterTaskDefinition checks names and images first; Fargate's pidMode/ipcMode wording;
- `efsVolumeConfiguration` without `rootDirectory` comes back with `/`;
- `serviceConnectDefaults` with a Cloud Map namespace name (created as an HTTP namespace) or ARN;
- `enableECSManagedTags` tags tasks with `aws:ecs:clusterName` (and `aws:ecs:serviceName`);
- UpdateContainerAgent answers ECS's truthful refusal; no `agentUpdateStatus` is invented;
- `loadBalancers`, `serviceRegistries` and `role` are stored and returned."""

import json
import os
import subprocess
import uuid

import boto3
import pytest
from botocore.config import Config

import helpers
from helpers import ACCOUNT, REGION

IMAGE = "busybox:latest"


@pytest.fixture(scope="module", params=["embedded", "etcd"])
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"differences-{request.param}")
    if request.param == "embedded":
        s = helpers.Server(tmp / "data", tmp / "server.log")
        yield s
        s.kill()
        return
    with helpers.SoloEtcd(tmp / "etcd") as etcd:
        key = helpers.secrets_key_file(tmp)
        s = helpers.Server(tmp / "data", tmp / "server.log", mode="server",
                           extra_args=["--store", etcd.store("diff"), "--secrets-key-file", str(key)])
        yield s
        s.kill()


def client(server, service="ecs", **config):
    return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION,
                        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
                        config=Config(retries={"max_attempts": 1}, **config))


@pytest.fixture(scope="module")
def ecs(server):
    return client(server)


@pytest.fixture(scope="module")
def aws(server, aws_cli, tmp_path_factory):
    """The aws CLI against the server: (exit code, parsed stdout or None, stderr)."""
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=server.endpoint, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY, AWS_DEFAULT_REGION=REGION,
               AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
               AWS_PAGER="", AWS_MAX_ATTEMPTS="1")

    def run(*args):
        p = subprocess.run([aws_cli, *args, "--output", "json"], env=env, capture_output=True, text=True,
                           timeout=60)
        return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr
    return run


@pytest.fixture(scope="module")
def cluster(ecs):
    name = helpers.unique("diff")
    ecs.create_cluster(clusterName=name)
    return name


def register_instance(ecs, cluster):
    instance_id = "i-" + uuid.uuid4().hex[:17]
    return ecs.register_container_instance(
        cluster=cluster,
        instanceIdentityDocument=json.dumps({"instanceId": instance_id, "availabilityZone": f"{REGION}a"}),
        totalResources=[{"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                        {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096}],
        versionInfo={"agentVersion": "0.1.0", "agentHash": "flotilla", "dockerVersion": "DockerVersion: 24.0.0"},
    )["containerInstance"]


@pytest.fixture(scope="module")
def instance(ecs, cluster):
    return register_instance(ecs, cluster)


def family(ecs, **extra):
    name = helpers.unique("fam")
    td = {"family": name, "containerDefinitions": [
        {"name": "app", "image": IMAGE, "memory": 32, "essential": True}], **extra}
    return ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]


def error(e):
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_started_by_takes_printable_characters_with_spaces(ecs, aws, cluster, instance):
    td = family(ecs)
    run = ecs.run_task(cluster=cluster, taskDefinition=td, startedBy="ECS Deploy")
    assert run["failures"] == [], run["failures"]
    assert run["tasks"][0]["startedBy"] == "ECS Deploy"
    started = ecs.start_task(cluster=cluster, taskDefinition=td, startedBy="team: deploy (v1.2) #3",
                             containerInstances=[instance["containerInstanceArn"]])
    assert started["tasks"][0]["startedBy"] == "team: deploy (v1.2) #3"
    listed = ecs.list_tasks(cluster=cluster, startedBy="ECS Deploy")["taskArns"]
    assert listed == [run["tasks"][0]["taskArn"]]
    code, out, _ = aws("ecs", "list-tasks", "--cluster", cluster, "--started-by", "ECS Deploy")
    assert code == 0 and out["taskArns"] == listed
    assert len(ecs.run_task(cluster=cluster, taskDefinition=td, startedBy="x" * 128)["tasks"]) == 1
    for bad in ("x" * 129, "tab\there"):
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.run_task(cluster=cluster, taskDefinition=td, startedBy=bad)
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.list_tasks(cluster=cluster, startedBy=bad)
    for t in ecs.list_tasks(cluster=cluster)["taskArns"]:
        ecs.stop_task(cluster=cluster, task=t)


def test_describing_an_empty_list_is_refused(ecs, aws, cluster):
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.describe_tasks(cluster=cluster, tasks=[])
    assert error(e) == ("InvalidParameterException", "Tasks cannot be empty.")
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.describe_container_instances(cluster=cluster, containerInstances=[])
    assert error(e) == ("InvalidParameterException", "Container Instances cannot be empty.")
    code, _, err = aws("ecs", "describe-tasks", "--cluster", cluster, "--tasks", "[]")
    assert code == 254 or code == 255
    assert "InvalidParameterException" in err and "Tasks cannot be empty." in err


def test_a_deleted_cluster_stays_listed_and_cannot_be_tagged(ecs, aws):
    name = helpers.unique("gone")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    ecs.delete_cluster(cluster=name)
    listed = ecs.get_paginator("list_clusters").paginate().build_full_result()["clusterArns"]
    assert arn in listed
    assert ecs.describe_clusters(clusters=[arn])["clusters"][0]["status"] == "INACTIVE"
    message = "The specified cluster is inactive. Specify an active cluster and try again."
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}])
    assert error(e) == ("InvalidParameterException", message)
    code, _, err = aws("ecs", "tag-resource", "--resource-arn", arn, "--tags", "key=k,value=v")
    assert code in (254, 255) and message in err
    # Created again, it is ACTIVE and listed once.
    ecs.create_cluster(clusterName=name)
    listed = ecs.get_paginator("list_clusters").paginate().build_full_result()["clusterArns"]
    assert listed.count(arn) == 1
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}])


def test_a_missing_service_by_name_is_reported_without_its_cluster(ecs, cluster):
    out = ecs.describe_services(cluster=cluster, services=["nope", f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/gone"])
    assert out["services"] == []
    assert out["failures"] == [
        {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/nope", "reason": "MISSING"},
        {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/gone", "reason": "MISSING"},
    ]


def test_task_definitions_check_names_and_images_first(ecs):
    def refused(**td):
        with pytest.raises(ecs.exceptions.ClientException) as e:
            ecs.register_task_definition(family=helpers.unique("bad"), **td)
        return error(e)[1]
    # Name and image are checked before anything else (here: no memory, an invalid port).
    assert refused(containerDefinitions=[{"name": "", "image": IMAGE, "portMappings": [{"containerPort": 0}]}]) \
        == "Container.name should not be null or empty."
    assert refused(containerDefinitions=[{"name": "a", "image": IMAGE, "memory": 8},
                                         {"name": "b", "portMappings": [{"containerPort": 0}]}]) \
        == "Container.image should not be null or empty."
    fargate = {"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
               "containerDefinitions": [{"name": "a", "image": IMAGE}]}
    assert refused(pidMode="host", **fargate) == \
        "Tasks using the Fargate launch type do not support pidMode 'host'. The supported value for pidMode is 'task'."
    assert refused(ipcMode="task", **fargate) == "Tasks using the Fargate launch type do not support ipcMode."
    ok = ecs.register_task_definition(family=helpers.unique("pid"), pidMode="task", **fargate)["taskDefinition"]
    assert ok["pidMode"] == "task"


def test_efs_volumes_default_their_root_directory(ecs):
    td = ecs.register_task_definition(
        family=helpers.unique("efs"),
        containerDefinitions=[{"name": "a", "image": IMAGE, "memory": 32,
                               "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]}],
        volumes=[{"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-0123456789abcdef0"}},
                 {"name": "sub", "efsVolumeConfiguration": {"fileSystemId": "fs-0123456789abcdef0",
                                                             "rootDirectory": "/sub"}}],
    )["taskDefinition"]
    efs = {v["name"]: v["efsVolumeConfiguration"] for v in td["volumes"]}
    assert efs["data"]["rootDirectory"] == "/" and efs["sub"]["rootDirectory"] == "/sub"
    again = ecs.describe_task_definition(taskDefinition=td["taskDefinitionArn"])["taskDefinition"]
    assert {v["name"]: v["efsVolumeConfiguration"]["rootDirectory"] for v in again["volumes"]} == \
        {"data": "/", "sub": "/sub"}


def test_service_connect_defaults_name_a_cloud_map_namespace(server, ecs, aws):
    sd = client(server, "servicediscovery", inject_host_prefix=False)
    ns_name = helpers.unique("sc")
    name = helpers.unique("scd")
    c = ecs.create_cluster(clusterName=name, serviceConnectDefaults={"namespace": ns_name})["cluster"]
    created = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == ns_name]
    assert len(created) == 1 and created[0]["Type"] == "HTTP"
    assert c["serviceConnectDefaults"] == {"namespace": created[0]["Arn"]}
    assert ecs.describe_clusters(clusters=[name])["clusters"][0]["serviceConnectDefaults"] == \
        {"namespace": created[0]["Arn"]}
    # An existing namespace, by ARN, through the CLI.
    op = sd.create_http_namespace(Name=helpers.unique("other"))["OperationId"]
    other = sd.get_namespace(Id=sd.get_operation(OperationId=op)["Operation"]["Targets"]["NAMESPACE"])["Namespace"]
    code, out, err = aws("ecs", "update-cluster", "--cluster", name,
                         "--service-connect-defaults", f"namespace={other['Arn']}")
    assert code == 0, err
    assert out["cluster"]["serviceConnectDefaults"] == {"namespace": other["Arn"]}
    # The same name again: the namespace is reused, not created twice.
    ecs.update_cluster(cluster=name, serviceConnectDefaults={"namespace": ns_name})
    assert len([n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == ns_name]) == 1
    missing = f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/ns-aaaaaaaaaaaaaaaa"
    with pytest.raises(ecs.exceptions.NamespaceNotFoundException):
        ecs.update_cluster(cluster=name, serviceConnectDefaults={"namespace": missing})
    # An empty name removes the default.
    out = ecs.update_cluster(cluster=name, serviceConnectDefaults={"namespace": ""})["cluster"]
    assert "serviceConnectDefaults" not in out


def test_ecs_managed_tags_are_added_to_tasks(ecs, cluster, instance):
    td = family(ecs)
    task = ecs.run_task(cluster=cluster, taskDefinition=td, enableECSManagedTags=True,
                        tags=[{"key": "team", "value": "core"}])["tasks"][0]
    want = [{"key": "team", "value": "core"}, {"key": "aws:ecs:clusterName", "value": cluster}]
    assert ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"] == want
    described = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]], include=["TAGS"])["tasks"][0]
    assert described["tags"] == want
    plain = ecs.run_task(cluster=cluster, taskDefinition=td)["tasks"][0]
    assert ecs.list_tags_for_resource(resourceArn=plain["taskArn"])["tags"] == []
    # A service's tasks get the service's name too.
    svc = helpers.unique("tagged")
    ecs.create_service(cluster=cluster, serviceName=svc, taskDefinition=td, desiredCount=1,
                       enableECSManagedTags=True)
    assert helpers.wait_until(lambda: ecs.list_tasks(cluster=cluster, serviceName=svc)["taskArns"], timeout=30), \
        "the service started no task"
    arns = ecs.list_tasks(cluster=cluster, serviceName=svc)["taskArns"]
    tags = ecs.list_tags_for_resource(resourceArn=arns[0])["tags"]
    assert {"key": "aws:ecs:clusterName", "value": cluster} in tags
    assert {"key": "aws:ecs:serviceName", "value": svc} in tags
    ecs.update_service(cluster=cluster, service=svc, desiredCount=0)
    ecs.delete_service(cluster=cluster, service=svc, force=True)
    for t in (task, plain):
        ecs.stop_task(cluster=cluster, task=t["taskArn"])


def test_update_container_agent_tells_the_truth(ecs, aws, cluster, instance):
    arn = instance["containerInstanceArn"]
    with pytest.raises(ecs.exceptions.NoUpdateAvailableException) as e:
        ecs.update_container_agent(cluster=cluster, containerInstance=arn)
    assert "already runs version 0.1.0" in error(e)[1]
    code, _, err = aws("ecs", "update-container-agent", "--cluster", cluster, "--container-instance", arn)
    assert code in (254, 255) and "NoUpdateAvailableException" in err
    described = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])["containerInstances"][0]
    assert "agentUpdateStatus" not in described
    assert described["versionInfo"]["agentVersion"] == "0.1.0"
    unversioned = ecs.register_container_instance(
        cluster=cluster,
        instanceIdentityDocument=json.dumps({"instanceId": "i-" + uuid.uuid4().hex[:17],
                                             "availabilityZone": f"{REGION}a"}),
        totalResources=[{"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                        {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}],
    )["containerInstance"]["containerInstanceArn"]
    with pytest.raises(ecs.exceptions.MissingVersionException):
        ecs.update_container_agent(cluster=cluster, containerInstance=unversioned)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.update_container_agent(cluster=cluster, containerInstance="0123456789abcdef0123456789abcdef")
    ecs.deregister_container_instance(cluster=cluster, containerInstance=unversioned, force=True)


def test_load_balancers_registries_and_role_are_kept(server, ecs, cluster):
    elb = client(server, "elbv2")
    sd = client(server, "servicediscovery", inject_host_prefix=False)
    name = helpers.unique("lb")[:32]
    lb = elb.create_load_balancer(Name=name, Type="application",
                                  Subnets=["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"])["LoadBalancers"][0]
    tg = elb.create_target_group(Name=name, Protocol="HTTP", Port=80, TargetType="instance",
                                 VpcId="vpc-0123456789abcdef0")["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=helpers.free_port(),
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    op = sd.create_http_namespace(Name=helpers.unique("reg"))["OperationId"]
    ns = sd.get_operation(OperationId=op)["Operation"]["Targets"]["NAMESPACE"]
    reg = sd.create_service(Name="web", NamespaceId=ns, Type="HTTP")["Service"]["Arn"]
    td = ecs.register_task_definition(
        family=helpers.unique("web"),
        containerDefinitions=[{"name": "web", "image": IMAGE, "memory": 32,
                               "portMappings": [{"containerPort": 80, "hostPort": 0}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    svc = helpers.unique("kept")
    lbs = [{"targetGroupArn": tg, "containerName": "web", "containerPort": 80}]
    regs = [{"registryArn": reg, "containerName": "web", "containerPort": 80}]
    created = ecs.create_service(cluster=cluster, serviceName=svc, taskDefinition=td, desiredCount=0,
                                 loadBalancers=lbs, serviceRegistries=regs, role="ecsServiceRole")["service"]
    role = f"arn:aws:iam::{ACCOUNT}:role/ecsServiceRole"
    for s in (created, ecs.describe_services(cluster=cluster, services=[svc])["services"][0]):
        assert s["loadBalancers"] == lbs
        assert s["serviceRegistries"] == regs
        assert s["roleArn"] == role
    ecs.delete_service(cluster=cluster, service=svc)
