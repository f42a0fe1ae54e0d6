"""Custom capacity providers, on the embedded store and on etcd (the module's server runs once on
each): boto3 1.44.5 and the aws CLI.

- CreateCapacityProvider: ECS's defaults (managed scaling DISABLED, targetCapacity 100, steps 1
  and 10000, warm-up 300; termination protection DISABLED; draining ENABLED), type
  EC2_AUTOSCALING; names refused as ECS words it (reserved prefixes in any case, characters,
  length); a name or an Auto Scaling group taken; Managed Instances refused.
- UpdateCapacityProvider merges over the stored provider; FARGATE and unknown names refused.
- DescribeCapacityProviders lists them beside FARGATE and FARGATE_SPOT, tags only with
  `include: TAGS`, by name or ARN, per cluster; TagResource/UntagResource/ListTagsForResource on
  their ARNs.
- PutClusterCapacityProviders takes ACTIVE custom providers; a missing or INACTIVE one, a default
  strategy mixing Fargate and custom providers, removing a provider a service uses: ECS's errors.
- DeleteCapacityProvider: FARGATE refused; while a cluster lists it, DELETE_FAILED with ECS's
  reason (the real service's answer); then INACTIVE, and MISSING once the retention is over.
- Hosts: `flotilla agent --capacity-provider NAME` joins a provider (capacityProviderName in
  DescribeContainerInstances); a service and RunTask split over two custom providers by base and
  weight, every task only on its provider's hosts (DescribeTasks and the containers' labels);
  a strategy mixing FARGATE and a custom provider is refused as ECS refuses it;
  `flotilla_capacity_provider_reservation` in /metrics follows ECS's formula."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers
from fleet import IMAGE, Fleet, docker, instances_ready, wait_for

RETENTION = 5
ASG = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:{}:autoScalingGroupName/{}"
INVALID_NAME = ("The specified capacity provider name is invalid. Up to 255 characters are allowed, including "
                "letters (upper and lowercase), numbers, underscores, and hyphens. The name cannot be prefixed "
                "with \"aws\", \"ecs\", or \"fargate\". Specify a valid name and try again.")
EXISTS = ("The specified capacity provider already exists. To change the configuration of an existing "
          "capacity provider, update the capacity provider.")
GROUP_TAKEN = ("The specified Auto Scaling group ARN is already being used by another capacity provider. "
               "Specify a unique Auto Scaling group ARN and try again.")
MIX = ("A capacity provider strategy cannot contain a mix of capacity providers using Auto Scaling groups "
       "and Fargate providers. Specify one or the other and try again.")
NOT_FOUND_PUT = "The specified capacity provider was not found. Specify a valid capacity provider and try again."
IN_USE = "The specified capacity provider is in use and cannot be removed."
NO_HOSTS = "No Container Instances were found in your capacity provider."


def not_active(name):
    return (f"The specified capacity provider '{name}' is not in an ACTIVE state. "
            "Specify a valid capacity provider and try again.")


def not_found(name):
    return f"The specified capacity provider '{name}' does not exist. Specify a valid name or ARN and try again."


def delete_failed(cluster):
    return (f"The capacity provider cannot be deleted because it is associated with cluster: {cluster}. "
            "Remove the capacity provider from the cluster and try again.")


@pytest.fixture(scope="module", params=["embedded", "etcd"])
def fleet(request, tmp_path_factory, test_image):
    tmp = tmp_path_factory.mktemp(f"capacity-{request.param}")
    args = ["--stopped-task-retention-seconds", str(RETENTION)]
    etcd = f = None
    try:
        if request.param == "etcd":
            etcd = helpers.SoloEtcd(tmp / "etcd").__enter__()
            args += ["--store", etcd.store("capacity"), "--secrets-key-file", str(helpers.secrets_key_file(tmp))]
        f = Fleet(tmp / "fleet", server_args=args)
        yield f
    finally:
        if f:
            f.close()
        if etcd:
            etcd.__exit__(None, None, None)


@pytest.fixture(scope="module")
def ecs(fleet):
    return boto3.client(
        "ecs", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


def error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def group(name):
    return ASG.format(helpers.unique("uuid"), name)


def create(ecs, name=None, **asg):
    name = name or helpers.unique("cp")
    ecs.create_capacity_provider(name=name, autoScalingGroupProvider={"autoScalingGroupArn": group(name), **asg})
    return name


def arn_of(name):
    return f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:capacity-provider/{name}"


def aws(fleet, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION, AWS_PAGER="", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    cli = Path(sys.executable).parent / "aws"
    return subprocess.run([str(cli), "--endpoint-url", fleet.endpoint, "ecs", *args, "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=60)


# ---------------------------------------------------------------- the API


def test_create_fills_ecs_defaults_and_answers_its_shape(ecs):
    name = helpers.unique("cp")
    asg = group(name)
    p = ecs.create_capacity_provider(name=name, autoScalingGroupProvider={"autoScalingGroupArn": asg},
                                     tags=[{"key": "team", "value": "a"}])["capacityProvider"]
    assert p["name"] == name and p["capacityProviderArn"] == arn_of(name)
    assert p["status"] == "ACTIVE" and p["type"] == "EC2_AUTOSCALING"
    assert p["autoScalingGroupProvider"] == {
        "autoScalingGroupArn": asg,
        "managedScaling": {"status": "DISABLED", "targetCapacity": 100, "minimumScalingStepSize": 1,
                           "maximumScalingStepSize": 10000, "instanceWarmupPeriod": 300},
        "managedTerminationProtection": "DISABLED",
        "managedDraining": "ENABLED",
    }
    assert p["tags"] == [{"key": "team", "value": "a"}]
    # Given values are kept.
    other = helpers.unique("cp")
    p = ecs.create_capacity_provider(name=other, autoScalingGroupProvider={
        "autoScalingGroupArn": group(other),
        "managedScaling": {"status": "ENABLED", "targetCapacity": 90, "maximumScalingStepSize": 4},
        "managedTerminationProtection": "ENABLED", "managedDraining": "DISABLED"})["capacityProvider"]
    a = p["autoScalingGroupProvider"]
    assert a["managedScaling"] == {"status": "ENABLED", "targetCapacity": 90, "minimumScalingStepSize": 1,
                                   "maximumScalingStepSize": 4, "instanceWarmupPeriod": 300}
    assert (a["managedTerminationProtection"], a["managedDraining"]) == ("ENABLED", "DISABLED")


@pytest.mark.parametrize("name", ["aws-x", "AWSx", "ecs", "EcsCp", "fargate2", "Fargate_x", "FARGATE",
                                  "has space", "dot.name", "x" * 256])
def test_names_ecs_refuses(ecs, name):
    with pytest.raises(ClientError) as e:
        ecs.create_capacity_provider(name=name, autoScalingGroupProvider={"autoScalingGroupArn": group("g")})
    assert error(e) == ("ClientException", INVALID_NAME)


def test_names_ecs_accepts(ecs):
    for name in [helpers.unique("Provider-aws"), helpers.unique("my_cp"), "x" * 255]:
        assert create(ecs, name) == name


def test_a_taken_name_or_group_and_bad_settings_are_refused(ecs):
    name = create(ecs)
    with pytest.raises(ClientError) as e:
        create(ecs, name)
    assert error(e) == ("ClientException", EXISTS)
    taken = ecs.describe_capacity_providers(capacityProviders=[name])["capacityProviders"][0]
    with pytest.raises(ClientError) as e:
        ecs.create_capacity_provider(name=helpers.unique("cp"), autoScalingGroupProvider={
            "autoScalingGroupArn": taken["autoScalingGroupProvider"]["autoScalingGroupArn"]})
    assert error(e) == ("ClientException", GROUP_TAKEN)
    with pytest.raises(ClientError) as e:
        create(ecs, managedScaling={"targetCapacity": 101})
    assert error(e)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        create(ecs, managedScaling={"minimumScalingStepSize": 5, "maximumScalingStepSize": 4})
    assert error(e)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.create_capacity_provider(name=helpers.unique("cp"))
    assert error(e) == ("InvalidParameterException", "An autoScalingGroupProvider must be specified.")
    with pytest.raises(ClientError) as e:
        ecs.create_capacity_provider(name=helpers.unique("cp"), managedInstancesProvider={
            "infrastructureRoleArn": "arn:aws:iam::123456789012:role/x",
            "instanceLaunchTemplate": {"ec2InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/x",
                                       "networkConfiguration": {"subnets": ["subnet-1"]}}})
    assert error(e)[0] == "UnsupportedFeatureException"


def test_update_merges_over_the_stored_provider(ecs):
    name = create(ecs, managedScaling={"status": "ENABLED", "targetCapacity": 80})
    p = ecs.update_capacity_provider(name=name, autoScalingGroupProvider={
        "managedScaling": {"instanceWarmupPeriod": 60}, "managedDraining": "DISABLED"})["capacityProvider"]
    a = p["autoScalingGroupProvider"]
    assert a["managedScaling"] == {"status": "ENABLED", "targetCapacity": 80, "minimumScalingStepSize": 1,
                                   "maximumScalingStepSize": 10000, "instanceWarmupPeriod": 60}
    assert (a["managedDraining"], a["managedTerminationProtection"]) == ("DISABLED", "DISABLED")
    assert p["updateStatus"] == "UPDATE_COMPLETE"
    # By ARN, and what the update wrote is what Describe shows.
    ecs.update_capacity_provider(name=arn_of(name), autoScalingGroupProvider={"managedTerminationProtection": "ENABLED"})
    d = ecs.describe_capacity_providers(capacityProviders=[name])["capacityProviders"][0]
    assert d["autoScalingGroupProvider"]["managedTerminationProtection"] == "ENABLED"
    assert d["autoScalingGroupProvider"]["managedScaling"]["instanceWarmupPeriod"] == 60
    ghost = helpers.unique("ghost")
    with pytest.raises(ClientError) as e:
        ecs.update_capacity_provider(name=ghost, autoScalingGroupProvider={"managedDraining": "ENABLED"})
    assert error(e) == ("ClientException", not_found(ghost))
    with pytest.raises(ClientError) as e:
        ecs.update_capacity_provider(name="FARGATE", autoScalingGroupProvider={"managedDraining": "ENABLED"})
    assert error(e)[0] == "ClientException"


def test_describe_lists_them_beside_fargate_with_tags_on_request(ecs):
    name = create(ecs)
    ecs.tag_resource(resourceArn=arn_of(name), tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
    ecs.untag_resource(resourceArn=arn_of(name), tagKeys=["b"])
    assert ecs.list_tags_for_resource(resourceArn=arn_of(name))["tags"] == [{"key": "a", "value": "1"}]
    every, token = [], None
    while True:
        page = ecs.describe_capacity_providers(**({"nextToken": token} if token else {}))
        every += page["capacityProviders"]
        token = page.get("nextToken")
        if not token:
            break
    names = [p["name"] for p in every]
    assert names[:2] == ["FARGATE", "FARGATE_SPOT"] and name in names
    mine = next(p for p in every if p["name"] == name)
    assert "tags" not in mine
    r = ecs.describe_capacity_providers(capacityProviders=[arn_of(name), "FARGATE", "nope"], include=["TAGS"])
    assert [p["name"] for p in r["capacityProviders"]] == [name, "FARGATE"]
    assert r["capacityProviders"][0]["tags"] == [{"key": "a", "value": "1"}]
    assert r["capacityProviders"][1]["type"] == "FARGATE"
    assert r["failures"] == [{"arn": "nope", "reason": "MISSING"}]
    with pytest.raises(ClientError) as e:
        ecs.list_tags_for_resource(resourceArn=arn_of(helpers.unique("ghost")))
    assert error(e)[0] == "ResourceNotFoundException"
    # Per cluster: only the providers it lists.
    cluster = helpers.unique("c")
    ecs.create_cluster(clusterName=cluster, capacityProviders=[name, "FARGATE"])
    r = ecs.describe_capacity_providers(cluster=cluster)
    assert [p["name"] for p in r["capacityProviders"]] == ["FARGATE", name]


def test_clusters_take_active_custom_providers_and_refuse_what_ecs_refuses(ecs):
    a, b = create(ecs), create(ecs)
    cluster = helpers.unique("c")
    ecs.create_cluster(clusterName=cluster)
    c = ecs.put_cluster_capacity_providers(
        cluster=cluster, capacityProviders=[a, b, "FARGATE"],
        defaultCapacityProviderStrategy=[{"capacityProvider": a, "base": 1, "weight": 1},
                                         {"capacityProvider": b, "weight": 2}])["cluster"]
    assert c["capacityProviders"] == [a, b, "FARGATE"]
    ghost = helpers.unique("ghost")
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=[ghost], defaultCapacityProviderStrategy=[])
    assert error(e) == ("InvalidParameterException", NOT_FOUND_PUT)
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(
            cluster=cluster, capacityProviders=[a, "FARGATE"],
            defaultCapacityProviderStrategy=[{"capacityProvider": a, "weight": 1},
                                             {"capacityProvider": "FARGATE", "weight": 1}])
    assert error(e) == ("InvalidParameterException", MIX)
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName=helpers.unique("c"), capacityProviders=[ghost])
    assert error(e) == ("InvalidParameterException", NOT_FOUND_PUT)
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["capacityProviders"] == [a, b, "FARGATE"]


def test_delete_fails_while_a_cluster_lists_it_then_inactive_then_missing(ecs):
    name = create(ecs)
    cluster = helpers.unique("c")
    ecs.create_cluster(clusterName=cluster, capacityProviders=[name])
    for fargate in ("FARGATE", "FARGATE_SPOT"):
        with pytest.raises(ClientError) as e:
            ecs.delete_capacity_provider(capacityProvider=fargate)
        assert error(e)[0] == "ClientException"
    # As the real service answers: the call succeeds, the provider stays ACTIVE, DELETE_FAILED.
    p = ecs.delete_capacity_provider(capacityProvider=name)["capacityProvider"]
    assert (p["status"], p["updateStatus"], p["updateStatusReason"]) == ("ACTIVE", "DELETE_FAILED", delete_failed(cluster))
    d = ecs.describe_capacity_providers(capacityProviders=[name])["capacityProviders"][0]
    assert (d["status"], d["updateStatus"]) == ("ACTIVE", "DELETE_FAILED")
    ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=[], defaultCapacityProviderStrategy=[])
    p = ecs.delete_capacity_provider(capacityProvider=arn_of(name))["capacityProvider"]
    assert (p["status"], p["updateStatus"]) == ("INACTIVE", "DELETE_COMPLETE")
    d = ecs.describe_capacity_providers(capacityProviders=[name])
    assert [x["status"] for x in d["capacityProviders"]] == ["INACTIVE"]
    assert ecs.describe_capacity_providers(cluster=cluster)["capacityProviders"] == []
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=[name], defaultCapacityProviderStrategy=[])
    assert error(e) == ("InvalidParameterException", not_active(name))
    with pytest.raises(ClientError) as e:
        ecs.delete_capacity_provider(capacityProvider=name)
    assert error(e) == ("ClientException", not_found(name))
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=arn_of(name), tags=[{"key": "k", "value": "v"}])
    assert error(e)[0] == "ResourceNotFoundException"
    # Later it is MISSING; the name can be taken again.
    wait_for(lambda: ecs.describe_capacity_providers(capacityProviders=[name])["failures"]
             == [{"arn": name, "reason": "MISSING"}], timeout=RETENTION + 10, what="the provider MISSING")
    assert create(ecs, name) == name


def test_a_strategy_mixing_fargate_and_custom_providers_is_refused(ecs):
    name = create(ecs)
    cluster = helpers.unique("c")
    ecs.create_cluster(clusterName=cluster, capacityProviders=[name, "FARGATE"])
    family = helpers.unique("mix")
    ecs.register_task_definition(family=family, containerDefinitions=[
        {"name": "main", "image": IMAGE, "memory": 16, "command": ["sleep", "60"]}])
    mix = [{"capacityProvider": name, "weight": 1}, {"capacityProvider": "FARGATE", "weight": 1}]
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster=cluster, taskDefinition=family, capacityProviderStrategy=mix)
    assert error(e) == ("InvalidParameterException", MIX)
    with pytest.raises(ClientError) as e:
        ecs.create_service(cluster=cluster, serviceName="mix", taskDefinition=family, desiredCount=1,
                           capacityProviderStrategy=mix)
    assert error(e) == ("InvalidParameterException", MIX)
    with pytest.raises(ClientError) as e:
        ecs.create_service(cluster=cluster, serviceName="daemon", taskDefinition=family,
                           schedulingStrategy="DAEMON", capacityProviderStrategy=[{"capacityProvider": name, "weight": 1}])
    assert error(e) == ("InvalidParameterException",
                        "The daemon scheduling strategy does not support the FARGATE launch type or capacity providers.")
    ecs.create_service(cluster=cluster, serviceName="custom", taskDefinition=family, desiredCount=0,
                       capacityProviderStrategy=[{"capacityProvider": name, "weight": 1}])
    with pytest.raises(ClientError) as e:
        ecs.update_service(cluster=cluster, service="custom", capacityProviderStrategy=mix)
    assert error(e) == ("InvalidParameterException", MIX)
    ecs.delete_service(cluster=cluster, service="custom", force=True)
    # A provider with no host: ECS's failure.
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster=cluster, taskDefinition=family, capacityProviderStrategy=[{"capacityProvider": name, "weight": 1}])
    assert error(e) == ("InvalidParameterException", NO_HOSTS)


def test_registration_names_an_active_provider(ecs):
    name = create(ecs)
    cluster = helpers.unique("c")
    ecs.create_cluster(clusterName=cluster)
    doc = json.dumps({"instanceId": "i-0123456789abcdef0", "availabilityZone": "us-east-1a"})
    resources = [{"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                 {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}]
    ghost = helpers.unique("ghost")
    with pytest.raises(ClientError) as e:
        ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=doc, totalResources=resources,
                                        attributes=[{"name": "flotilla.capacity-provider", "value": ghost}])
    assert error(e) == ("ClientException", not_found(ghost))
    ci = ecs.register_container_instance(
        cluster=cluster, instanceIdentityDocument=doc, totalResources=resources,
        attributes=[{"name": "flotilla.capacity-provider", "value": name}])["containerInstance"]
    assert ci["capacityProviderName"] == name
    assert "flotilla.capacity-provider" not in [a["name"] for a in ci["attributes"]]
    d = ecs.describe_container_instances(cluster=cluster, containerInstances=[ci["containerInstanceArn"]])
    assert d["containerInstances"][0]["capacityProviderName"] == name
    ecs.deregister_container_instance(cluster=cluster, containerInstance=ci["containerInstanceArn"], force=True)


def test_the_aws_cli(fleet, ecs):
    name = helpers.unique("cli")
    out = aws(fleet, "create-capacity-provider", "--name", name, "--auto-scaling-group-provider",
              f"autoScalingGroupArn={group(name)},managedScaling={{status=ENABLED,targetCapacity=75}},"
              "managedTerminationProtection=DISABLED", "--tags", "key=k,value=v")
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout)["capacityProvider"]
    assert p["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"] == 75
    out = aws(fleet, "describe-capacity-providers", "--capacity-providers", name, "--include", "TAGS")
    assert json.loads(out.stdout)["capacityProviders"][0]["tags"] == [{"key": "k", "value": "v"}]
    out = aws(fleet, "update-capacity-provider", "--name", name, "--auto-scaling-group-provider",
              "managedScaling={targetCapacity=50}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["capacityProvider"]["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"] == 50
    out = aws(fleet, "create-capacity-provider", "--name", "ecs-bad", "--auto-scaling-group-provider",
              f"autoScalingGroupArn={group('x')}")
    assert out.returncode != 0 and "(ClientException)" in out.stderr and INVALID_NAME in out.stderr
    out = aws(fleet, "delete-capacity-provider", "--capacity-provider", name)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["capacityProvider"]["status"] == "INACTIVE"


# ---------------------------------------------------------------- hosts, placement and metrics


@pytest.fixture(scope="module")
def hosts(fleet, ecs):
    """A cluster with providers blue (two hosts), green (one host) and empty (none), and a
    fourth host in no provider."""
    cluster = helpers.unique("cp")
    blue, green, empty = create(ecs, helpers.unique("blue")), create(ecs, helpers.unique("green")), create(ecs)
    ecs.create_cluster(clusterName=cluster, capacityProviders=[blue, green, empty])
    agents = {
        "blue": [fleet.add_agent(cluster, az=az, extra_args=["--capacity-provider", blue])
                 for az in ("us-east-1a", "us-east-1b")],
        "green": [fleet.add_agent(cluster, extra_args=["--capacity-provider", green])],
        "none": [fleet.add_agent(cluster)],
    }
    ready = instances_ready(ecs, cluster, 4)
    by_provider = {}
    for ci in ready:
        by_provider.setdefault(ci.get("capacityProviderName"), set()).add(ci["containerInstanceArn"])
    family = helpers.unique("cpfam")
    ecs.register_task_definition(family=family, containerDefinitions=[
        {"name": "main", "image": IMAGE, "memory": 16, "command": ["sleep", "3600"], "stopTimeout": 1}])
    return {"cluster": cluster, "blue": blue, "green": green, "empty": empty, "family": family,
            "instances": by_provider, "agents": agents}


def reservation(fleet, cluster, provider):
    body = urllib.request.urlopen(f"{fleet.endpoint}/metrics", timeout=10).read().decode()
    m = re.search(r'^flotilla_capacity_provider_reservation\{cluster="%s",capacity_provider="%s"\} (\S+)$'
                  % (re.escape(cluster), re.escape(provider)), body, re.M)
    return float(m.group(1)) if m else None


def running_tasks(ecs, cluster, n, **filters):
    def check():
        arns = ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING", **filters)["taskArns"]
        if len(arns) != n:
            return None
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        return tasks if all(t["lastStatus"] == "RUNNING" for t in tasks) else None
    return wait_for(check, timeout=90, what=f"{n} RUNNING tasks")


def check_hosts(hosts, tasks):
    """Every task runs on a host of its own provider, says so, and its container carries that
    host's instance ARN."""
    for t in tasks:
        provider = "blue" if t["capacityProviderName"] == hosts["blue"] else "green"
        assert t["capacityProviderName"] == hosts[provider]
        assert t["launchType"] == "EC2"
        assert t["containerInstanceArn"] in hosts["instances"][hosts[provider]]
        ids = docker("ps", "-q", "--filter", f"label=com.flotilla.task-arn={t['taskArn']}").split()
        assert ids, t["taskArn"]
        labels = json.loads(docker("inspect", ids[0]))[0]["Config"]["Labels"]
        assert labels["com.flotilla.container-instance"] == t["containerInstanceArn"].rsplit("/", 1)[1]


def test_hosts_join_their_provider(ecs, hosts):
    inst = hosts["instances"]
    assert len(inst[hosts["blue"]]) == 2 and len(inst[hosts["green"]]) == 1 and len(inst[None]) == 1
    # Before any task: blue has 2 instances running nothing (0 %), empty has none (100 %).
    assert reservation(hosts["agents"]["blue"][0].fleet, hosts["cluster"], hosts["blue"]) == 0.0
    assert reservation(hosts["agents"]["blue"][0].fleet, hosts["cluster"], hosts["empty"]) == 100.0


def test_a_service_splits_over_two_providers_by_base_and_weight(fleet, ecs, hosts):
    cluster = hosts["cluster"]
    strategy = [{"capacityProvider": hosts["blue"], "base": 1, "weight": 1},
                {"capacityProvider": hosts["green"], "weight": 2}]
    s = ecs.create_service(cluster=cluster, serviceName="split", taskDefinition=hosts["family"], desiredCount=7,
                           capacityProviderStrategy=strategy)["service"]
    assert s["capacityProviderStrategy"] == [dict(x, base=x.get("base", 0)) for x in strategy]
    assert "launchType" not in s
    tasks = running_tasks(ecs, cluster, 7, serviceName="split")
    # The base task on blue, then 6 split 1:2.
    assert Counter(t["capacityProviderName"] for t in tasks) == {hosts["blue"]: 3, hosts["green"]: 4}
    check_hosts(hosts, tasks)
    assert not (hosts["instances"][None] & {t["containerInstanceArn"] for t in tasks})
    # Both blue hosts run tasks, as does green: 100 % each.
    assert wait_for(lambda: reservation(fleet, cluster, hosts["blue"]) == 100.0, timeout=10, what="blue at 100")
    assert reservation(fleet, cluster, hosts["green"]) == 100.0
    # The provider is in use: it cannot leave the cluster.
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=[hosts["blue"]],
                                           defaultCapacityProviderStrategy=[])
    assert error(e) == ("ResourceInUseException", IN_USE)
    ecs.delete_service(cluster=cluster, service="split", force=True)


def test_run_task_splits_and_the_default_strategy_uses_custom_providers(fleet, ecs, hosts):
    cluster = hosts["cluster"]
    out = ecs.run_task(cluster=cluster, taskDefinition=hosts["family"], count=4, startedBy="split-run",
                       capacityProviderStrategy=[{"capacityProvider": hosts["blue"], "weight": 1},
                                                 {"capacityProvider": hosts["green"], "weight": 1}])
    assert out["failures"] == []
    assert Counter(t["capacityProviderName"] for t in out["tasks"]) == {hosts["blue"]: 2, hosts["green"]: 2}
    check_hosts(hosts, running_tasks(ecs, cluster, 4, startedBy="split-run"))
    ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=[hosts["blue"], hosts["green"], hosts["empty"]],
                                       defaultCapacityProviderStrategy=[{"capacityProvider": hosts["green"], "weight": 1}])
    out = ecs.run_task(cluster=cluster, taskDefinition=hosts["family"], startedBy="by-default")
    t = out["tasks"][0]
    assert t["capacityProviderName"] == hosts["green"] and t["launchType"] == "EC2"
    assert t["containerInstanceArn"] in hosts["instances"][hosts["green"]]
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster=cluster, taskDefinition=hosts["family"],
                     capacityProviderStrategy=[{"capacityProvider": hosts["empty"], "weight": 1}])
    assert error(e) == ("InvalidParameterException", NO_HOSTS)
    for arn in ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]:
        ecs.stop_task(cluster=cluster, task=arn)
