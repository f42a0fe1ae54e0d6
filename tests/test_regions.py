"""Several regions on one installation (issue 16, "Regions"), with boto3 and the aws CLI.

`flotilla server --region us-east-1 --regions eu-west-1`, on the embedded store and on etcd
(the module's server fixture is parametrized over both): each region has its own clusters, task
definitions, account settings, secrets, log groups and Cloud Map namespaces, with its name in
their ARNs, taken from the request's SigV4 credential scope; a request scoped to a region the
installation does not serve is refused with AWS's InvalidSignatureException "Credential should
be scoped to a valid region, not 'REGION'. " (awsQuery: SignatureDoesNotMatch), and Elastic Load
Balancing is served in the primary region only. `flotilla dev` serves any region, each opened
on its first request. On real Docker, an agent of eu-west-1 runs a task of that region, and an
agent of a region not served is refused.
"""

import json
import os
import subprocess

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers
from helpers import unique

PRIMARY, OTHER, UNSERVED = "us-east-1", "eu-west-1", "ap-south-1"
WRONG_REGION = "Credential should be scoped to a valid region, not '{}'. "


def client(endpoint, service, region):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=helpers.ACCESS_KEY,
        aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False),
    )


def error_of(e):
    err = e.value.response["Error"]
    return err["Code"], err["Message"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module", params=["embedded", "etcd"])
def installation(request, tmp_path_factory):
    """The endpoint of `flotilla server` serving us-east-1 (primary) and eu-west-1."""
    tmp = tmp_path_factory.mktemp(f"regions-{request.param}")
    args = ["--regions", OTHER]
    etcd = None
    if request.param == "etcd":
        etcd = helpers.SoloEtcd(tmp / "etcd").__enter__()
        args += ["--store", etcd.store("regions"),
                 "--secrets-key-file", str(helpers.secrets_key_file(tmp))]
    server = helpers.Server(tmp / "data", tmp / "server.log", mode="server", region=PRIMARY,
                            extra_args=args)
    yield server.endpoint
    server.kill()
    if etcd is not None:
        etcd.__exit__(None, None, None)


@pytest.fixture(scope="module")
def ecs_of(installation):
    return {r: client(installation, "ecs", r) for r in (PRIMARY, OTHER)}


def test_clusters_and_task_definitions_of_the_same_name_live_apart(ecs_of):
    name, family = unique("web"), unique("fam")
    for region, ecs in ecs_of.items():
        c = ecs.create_cluster(clusterName=name, tags=[{"key": "region", "value": region}])["cluster"]
        assert c["clusterArn"] == f"arn:aws:ecs:{region}:{helpers.ACCOUNT}:cluster/{name}"
        td = ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": "a", "image": "busybox", "memory": 16}],
        )["taskDefinition"]
        # Each region counts its own revisions.
        assert td["taskDefinitionArn"] == (
            f"arn:aws:ecs:{region}:{helpers.ACCOUNT}:task-definition/{family}:1")
    for region, ecs in ecs_of.items():
        arns = ecs.list_clusters()["clusterArns"]
        assert f"arn:aws:ecs:{region}:{helpers.ACCOUNT}:cluster/{name}" in arns
        assert all(f":{region}:" in a for a in arns), arns
        tds = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        assert tds == [f"arn:aws:ecs:{region}:{helpers.ACCOUNT}:task-definition/{family}:1"]
        tags = ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"][0]["tags"]
        assert tags == [{"key": "region", "value": region}]
    # Deleting in one region leaves the other's.
    ecs_of[OTHER].delete_cluster(cluster=name)
    assert ecs_of[PRIMARY].describe_clusters(clusters=[name])["clusters"][0]["status"] == "ACTIVE"
    # An ARN of the other region names nothing here.
    other_arn = f"arn:aws:ecs:{OTHER}:{helpers.ACCOUNT}:task-definition/{family}:1"
    with pytest.raises(ClientError) as e:
        ecs_of[PRIMARY].describe_task_definition(taskDefinition=other_arn)
    assert error_of(e)[0] == "ClientException"


def test_account_settings_are_per_region(ecs_of):
    principal = f"arn:aws:iam::{helpers.ACCOUNT}:user/{unique('p')}"
    ecs_of[OTHER].put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=principal)
    mine = ecs_of[OTHER].list_account_settings(principalArn=principal)["settings"]
    assert [(s["name"], s["value"]) for s in mine] == [("awsvpcTrunking", "enabled")]
    assert ecs_of[PRIMARY].list_account_settings(principalArn=principal)["settings"] == []


def test_secrets_logs_and_namespaces_are_per_region(installation):
    name = unique("db")
    for region in (PRIMARY, OTHER):
        sm = client(installation, "secretsmanager", region)
        arn = sm.create_secret(Name=name, SecretString=f"pw-{region}")["ARN"]
        assert arn.startswith(f"arn:aws:secretsmanager:{region}:{helpers.ACCOUNT}:secret:{name}-")
        logs = client(installation, "logs", region)
        logs.create_log_group(logGroupName=f"/{name}")
        sd = client(installation, "servicediscovery", region)
        sd.create_http_namespace(Name=name)
    for region in (PRIMARY, OTHER):
        sm = client(installation, "secretsmanager", region)
        assert sm.get_secret_value(SecretId=name)["SecretString"] == f"pw-{region}"
        listed = [s["ARN"] for s in sm.list_secrets()["SecretList"] if s["Name"] == name]
        assert len(listed) == 1 and f":{region}:" in listed[0]
        groups = client(installation, "logs", region).describe_log_groups(
            logGroupNamePrefix=f"/{name}")["logGroups"]
        assert [g["arn"].split(":")[3] for g in groups] == [region]
        namespaces = [n for n in client(installation, "servicediscovery", region)
                      .list_namespaces()["Namespaces"] if n["Name"] == name]
        assert [n["Arn"].split(":")[3] for n in namespaces] == [region]


def test_a_region_not_served_is_refused_as_aws_refuses_a_wrongly_scoped_credential(installation):
    want = WRONG_REGION.format(UNSERVED)
    calls = {
        "ecs": lambda c: c.list_clusters(),
        "secretsmanager": lambda c: c.list_secrets(),
        "ssm": lambda c: c.describe_parameters(),
        "logs": lambda c: c.describe_log_groups(),
        "servicediscovery": lambda c: c.list_namespaces(),
    }
    for service, call in calls.items():
        with pytest.raises(ClientError) as e:
            call(client(installation, service, UNSERVED))
        assert error_of(e) == ("InvalidSignatureException", want, 403), service
    # awsQuery (ELBv2): the query services' code for a bad signature.
    with pytest.raises(ClientError) as e:
        client(installation, "elbv2", UNSERVED).describe_load_balancers()
    assert error_of(e) == ("SignatureDoesNotMatch", want, 403)
    # A wrong key is still told as such first.
    bad = boto3.client("ecs", endpoint_url=installation, region_name=UNSERVED,
                       aws_access_key_id="AKIDNOSUCHKEY0000000", aws_secret_access_key="x",
                       config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        bad.list_clusters()
    assert error_of(e)[0] == "UnrecognizedClientException"


def test_the_aws_cli_in_each_region(installation, aws_cli, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_CONFIG_FILE=str(tmp_path / "config"), HOME=str(tmp_path), AWS_PAGER="",
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))

    def aws(region, *args):
        return subprocess.run([aws_cli, "ecs", *args, "--region", region, "--endpoint-url",
                               installation, "--output", "json"],
                              env=env, capture_output=True, text=True, timeout=60)

    name = unique("cli")
    p = aws(OTHER, "create-cluster", "--cluster-name", name)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["cluster"]["clusterArn"] == (
        f"arn:aws:ecs:{OTHER}:{helpers.ACCOUNT}:cluster/{name}")
    p = aws(PRIMARY, "describe-clusters", "--clusters", name)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["failures"][0]["reason"] == "MISSING"
    p = aws(UNSERVED, "list-clusters")
    assert p.returncode == 255, p.stderr
    assert ("An error occurred (InvalidSignatureException) when calling the ListClusters "
            f"operation: {WRONG_REGION.format(UNSERVED).strip()}") in p.stderr


def test_load_balancing_is_served_in_the_primary_region_only(installation):
    assert client(installation, "elbv2", PRIMARY).describe_load_balancers()["LoadBalancers"] == []
    with pytest.raises(ClientError) as e:
        client(installation, "elbv2", OTHER).describe_load_balancers()
    assert error_of(e) == (
        "InvalidAction",
        f"Elastic Load Balancing is served in region {PRIMARY} only by this installation, "
        f"not in {OTHER}.",
        400,
    )


def test_a_served_region_survives_a_restart(tmp_path):
    def start():
        return helpers.Server(tmp_path / "data", tmp_path / "server.log", mode="server",
                              region=PRIMARY, extra_args=["--regions", OTHER])

    server = start()
    name = unique("kept")
    client(server.endpoint, "ecs", OTHER).create_cluster(clusterName=name)
    server.kill()
    server = start()
    try:
        arns = client(server.endpoint, "ecs", OTHER).list_clusters()["clusterArns"]
        assert arns == [f"arn:aws:ecs:{OTHER}:{helpers.ACCOUNT}:cluster/{name}"]
        assert client(server.endpoint, "ecs", PRIMARY).list_clusters()["clusterArns"] == []
    finally:
        server.kill()


@pytest.mark.parametrize("store", ["embedded", "etcd"])
def test_dev_serves_any_region(store, tmp_path):
    args = []
    etcd = None
    if store == "etcd":
        etcd = helpers.SoloEtcd(tmp_path / "etcd").__enter__()
        args = ["--store", etcd.store("dev"), "--secrets-key-file",
                str(helpers.secrets_key_file(tmp_path))]
    server = helpers.Server(tmp_path / "data", tmp_path / "server.log", mode="dev",
                            region=PRIMARY, extra_args=args)
    try:
        name = unique("any")
        for region in ("ap-south-1", "eu-central-1", "us-gov-west-1"):
            ecs = client(server.endpoint, "ecs", region)
            arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
            assert arn == f"arn:aws:ecs:{region}:{helpers.ACCOUNT}:cluster/{name}"
            assert ecs.list_clusters()["clusterArns"] == [arn]
            sm = client(server.endpoint, "secretsmanager", region)
            assert f":{region}:" in sm.create_secret(Name=name, SecretString="x")["ARN"]
        assert client(server.endpoint, "ecs", PRIMARY).list_clusters()["clusterArns"] == []
        # A name that is no region's is refused.
        with pytest.raises(ClientError) as e:
            client(server.endpoint, "ecs", "nowhere").list_clusters()
        assert error_of(e) == ("InvalidSignatureException", WRONG_REGION.format("nowhere"), 403)
        # Started again, it opens the regions it served before (their controllers run from the
        # start), with their data.
        server.kill()
        server = helpers.Server(tmp_path / "data", tmp_path / "server.log", mode="dev",
                                region=PRIMARY, extra_args=args)
        log = (tmp_path / "server.log").read_text()
        for region in ("ap-south-1", "eu-central-1", "us-gov-west-1"):
            assert f"serving a region opened before region={region}" in log, log[-2000:]
            assert client(server.endpoint, "ecs", region).list_clusters()["clusterArns"] == [
                f"arn:aws:ecs:{region}:{helpers.ACCOUNT}:cluster/{name}"]
    finally:
        server.kill()
        if etcd is not None:
            etcd.__exit__(None, None, None)


def test_an_agent_runs_its_regions_tasks_and_one_of_a_region_not_served_is_refused(tmp_path, test_image):
    from fleet import Fleet, IMAGE, instances_ready, wait_for

    fleet = Fleet(tmp_path, server_args=["--regions", OTHER])
    try:
        cluster = unique("eu")
        eu = client(fleet.endpoint, "ecs", OTHER)
        eu.create_cluster(clusterName=cluster)
        fleet.add_agent(cluster, az=f"{OTHER}a", env={"AWS_DEFAULT_REGION": OTHER})
        refused = fleet.add_agent(unique("south"), az=f"{UNSERVED}a",
                                  env={"AWS_DEFAULT_REGION": UNSERVED})
        [instance] = instances_ready(eu, cluster, 1)
        assert instance["containerInstanceArn"].startswith(
            f"arn:aws:ecs:{OTHER}:{helpers.ACCOUNT}:container-instance/{cluster}/")
        assert {"name": "ecs.availability-zone", "value": f"{OTHER}a"} in instance["attributes"]
        # The task reads a secret of its region and logs to a log group of its region: both
        # go through the region's server and the agent's session with it.
        secret = client(fleet.endpoint, "secretsmanager", OTHER).create_secret(
            Name=unique("pw"), SecretString="from-eu")["ARN"]
        group = f"/{unique('eu')}"
        logs = client(fleet.endpoint, "logs", OTHER)
        logs.create_log_group(logGroupName=group)
        family = unique("hello")
        eu.register_task_definition(
            family=family,
            executionRoleArn=f"arn:aws:iam::{helpers.ACCOUNT}:role/exec",
            containerDefinitions=[{
                "name": "main", "image": IMAGE, "memory": 16, "essential": True,
                "command": ["sh", "-c", "echo hello $PW; sleep 600"], "stopTimeout": 2,
                "secrets": [{"name": "PW", "valueFrom": secret}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": group, "awslogs-region": OTHER,
                    "awslogs-stream-prefix": "app"}},
            }])
        arn = eu.run_task(cluster=cluster, taskDefinition=family,
                          enableExecuteCommand=True)["tasks"][0]["taskArn"]
        assert arn.startswith(f"arn:aws:ecs:{OTHER}:{helpers.ACCOUNT}:task/{cluster}/")

        def running():
            t = eu.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
            return t if t["lastStatus"] == "RUNNING" else None
        wait_for(running, timeout=90, what="the task RUNNING")
        stream = f"app/main/{arn.rsplit('/', 1)[1]}"

        def logged():
            try:
                events = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                             startFromHead=True)["events"]
            except logs.exceptions.ResourceNotFoundException:
                return None  # the agent opens the stream as the container starts
            return [e["message"] for e in events] or None
        assert wait_for(logged, timeout=30, what="the task's log line") == ["hello from-eu"]
        # ECS Exec in the region: ExecuteCommand, the stream and the agent's dial-back.
        wait_for(lambda: eu.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]["containers"][0]
                 ["managedAgents"][0]["lastStatus"] == "RUNNING", timeout=60,
                 what="the task's ExecuteCommandAgent RUNNING")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
                   AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY, AWS_REGION=OTHER,
                   AWS_DEFAULT_REGION=OTHER)
        env.pop("AWS_SESSION_TOKEN", None)
        out = subprocess.run([str(helpers.FLOTILLA_BIN), "exec", "--endpoint", fleet.endpoint, arn,
                              "--cluster", cluster, "--", "echo", "exec in", OTHER],
                             capture_output=True, env=env, timeout=60)
        assert (out.returncode, out.stdout) == (0, f"exec in {OTHER}\n".encode()), out.stderr
        # The primary region has no such cluster.
        with pytest.raises(ClientError) as e:
            client(fleet.endpoint, "ecs", PRIMARY).describe_tasks(cluster=cluster, tasks=[arn])
        assert error_of(e)[0] == "ClusterNotFoundException"
        eu.stop_task(cluster=cluster, task=arn)
        wait_for(lambda: eu.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]["lastStatus"]
                 == "STOPPED", timeout=60, what="the task STOPPED")
        # The agent of a region not served is told why.
        wait_for(lambda: WRONG_REGION.format(UNSERVED).strip() in refused.log(), timeout=30,
                 what="the refused agent's error")
    finally:
        fleet.close()
