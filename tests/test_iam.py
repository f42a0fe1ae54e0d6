"""IAM-style policies on API keys (issue 18, acceptance 2), end to end: one `flotilla server`
started with a `--config` listing several keys, some with a policy, driven by boto3 and the
real aws CLI.

- a key limited to `ecs:Describe*` and `ecs:List*` on one cluster (and its tasks, services and
  instances) reads that cluster, and gets `AccessDeniedException` with IAM's exact message for
  RunTask, for every other cluster (the default one included), for Secrets Manager's
  GetSecretValue (JSON shape, the secret's full ARN) and for ELBv2 (awsQuery's XML
  `AccessDenied`);
- an explicit Deny beats an Allow of `ecs:*` (IAM's "with an explicit deny" message);
- the key without a policy does everything;
- `iam:PassRole`: a role the key may not pass, in RegisterTaskDefinition, in RunTask's
  overrides or in the task definition RunTask/CreateService use, is refused naming the role;
- a key whose policy lacks `ecs:RegisterContainerInstance` cannot register an instance, and one
  without `ecs:Poll` cannot open an agent session;
- a policy the server cannot read stops it at start with a message naming the key and why."""

import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers

ACCOUNT = "123456789012"
REGION = helpers.REGION
ECS = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
PROD = helpers.unique("prod")
OTHER = helpers.unique("other")

READER = ("AKIDIAMREADER0000001", "reader-secret-key")
DENIED = ("AKIDIAMDENIED0000001", "denied-secret-key")
RUNNER = ("AKIDIAMRUNNER0000001", "runner-secret-key")
NOAGENT = ("AKIDIAMNOAGENT000001", "noagent-secret-key")

READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "ReadOneCluster",
        "Effect": "Allow",
        "Action": ["ecs:Describe*", "ecs:List*"],
        "Resource": [f"arn:aws:ecs:*:*:cluster/{PROD}", f"arn:aws:ecs:*:*:task/{PROD}/*",
                     f"arn:aws:ecs:*:*:service/{PROD}/*", f"arn:aws:ecs:*:*:container-instance/{PROD}/*"],
    }],
}
DENIED_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["ecs:*", "secretsmanager:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": ["ecs:DeleteCluster", "ecs:CreateCluster"], "Resource": f"arn:aws:ecs:*:*:cluster/{PROD}"},
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
    ],
}
RUNNER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "ecs:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/app-*"},
    ],
}
NOAGENT_POLICY = {
    "Version": "2012-10-17",
    "Statement": {"Effect": "Allow", "NotAction": ["ecs:RegisterContainerInstance", "ecs:Poll"], "Resource": "*"},
}


def toml_string(s):
    return json.dumps(s)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("iam")
    (tmp / "runner-policy.json").write_text(json.dumps(RUNNER_POLICY))
    config = tmp / "flotilla.toml"
    config.write_text(f"""
[[credentials]]
access_key_id = "{helpers.ACCESS_KEY}"
secret_access_key = "{helpers.SECRET_KEY}"

[[credentials]]
access_key_id = "{READER[0]}"
secret_access_key = "{READER[1]}"
user = "reader"
policy = {toml_string(json.dumps(READER_POLICY))}

[[credentials]]
access_key_id = "{DENIED[0]}"
secret_access_key = "{DENIED[1]}"
policy = '''{json.dumps(DENIED_POLICY, indent=2)}'''

[[credentials]]
access_key_id = "{RUNNER[0]}"
secret_access_key = "{RUNNER[1]}"
user = "runner"
policy_file = "runner-policy.json"

[[credentials]]
access_key_id = "{NOAGENT[0]}"
secret_access_key = "{NOAGENT[1]}"
principal = "arn:aws:iam::{ACCOUNT}:user/ops/noagent"
policy = {toml_string(json.dumps(NOAGENT_POLICY))}
""")
    s = helpers.Server(tmp / "data", tmp / "server.log", mode="server", account=ACCOUNT,
                       extra_args=["--config", str(config), "--no-lb"])
    s.tmp = tmp
    yield s
    s.kill()


def client(server, service, key=(helpers.ACCESS_KEY, helpers.SECRET_KEY)):
    return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION,
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


@pytest.fixture(scope="module")
def admin(server):
    ecs = client(server, "ecs")
    ecs.create_cluster(clusterName=PROD)
    ecs.create_cluster(clusterName=OTHER)
    ecs.create_cluster(clusterName="default")
    return ecs


@pytest.fixture(scope="module")
def family(admin):
    name = helpers.unique("iamweb")
    td = admin.register_task_definition(family=name, containerDefinitions=[
        {"name": "web", "image": "busybox", "memory": 64, "essential": True}])["taskDefinition"]
    assert td["revision"] == 1
    return name


def denied(e):
    err = e.value.response["Error"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.value.response
    assert err["Code"] == "AccessDeniedException", err
    return err["Message"]


def past_authorization(call):
    """Runs a call that authorization lets through: it succeeds or fails for another reason
    (RunTask in a cluster without instances: InvalidParameterException)."""
    try:
        return call()
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidParameterException", e.response
        assert "No Container Instances" in e.response["Error"]["Message"], e.response
        return None


def implicit(user, action, resource):
    return (f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: {action} on resource: "
            f"{resource} because no identity-based policy allows the {action} action")


def explicit(user, action, resource):
    return (f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: {action} on resource: "
            f"{resource} with an explicit deny in an identity-based policy")


def test_a_reader_of_one_cluster_reads_it_and_nothing_else(server, admin, family):
    ecs = client(server, "ecs", READER)
    assert [c["clusterName"] for c in ecs.describe_clusters(clusters=[PROD])["clusters"]] == [PROD]
    assert ecs.list_tasks(cluster=PROD)["taskArns"] == []
    assert ecs.list_services(cluster=f"{ECS}:cluster/{PROD}")["serviceArns"] == []
    assert ecs.list_container_instances(cluster=PROD)["containerInstanceArns"] == []
    assert ecs.describe_tasks(cluster=PROD, tasks=["0123456789abcdef0123456789abcdef"])["failures"]

    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster=PROD, taskDefinition=family)
    assert denied(e) == implicit("reader", "ecs:RunTask", f"{ECS}:task-definition/{family}:1")
    for call, resource in [
        (lambda: ecs.describe_clusters(clusters=[OTHER]), f"{ECS}:cluster/{OTHER}"),
        (lambda: ecs.describe_clusters(clusters=[PROD, OTHER]), f"{ECS}:cluster/{OTHER}"),
        (lambda: ecs.list_tasks(cluster=OTHER), f"{ECS}:cluster/{OTHER}"),
        (lambda: ecs.list_services(cluster=OTHER), f"{ECS}:cluster/{OTHER}"),
        (lambda: ecs.list_services(), f"{ECS}:cluster/default"),
        (lambda: ecs.describe_tasks(cluster=OTHER, tasks=["0123456789abcdef0123456789abcdef"]),
         f"{ECS}:task/{OTHER}/0123456789abcdef0123456789abcdef"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        action = "ecs:" + e.value.operation_name
        assert denied(e) == implicit("reader", action, resource)
    # Actions IAM gives no resource are on "*", which the policy does not name.
    with pytest.raises(ClientError) as e:
        ecs.list_clusters()
    assert denied(e) == implicit("reader", "ecs:ListClusters", "*")
    # A write on its own cluster is not a Describe or a List.
    with pytest.raises(ClientError) as e:
        ecs.delete_cluster(cluster=PROD)
    assert denied(e) == implicit("reader", "ecs:DeleteCluster", f"{ECS}:cluster/{PROD}")


def test_a_reader_of_one_cluster_cannot_read_a_secret_or_a_load_balancer(server, admin):
    sm_admin = client(server, "secretsmanager")
    arn = sm_admin.create_secret(Name=helpers.unique("iam/db"), SecretString="s3cr3t-value")["ARN"]
    sm = client(server, "secretsmanager", READER)
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=arn.rsplit("-", 1)[0].split(":secret:")[1])
    message = denied(e)
    assert message == implicit("reader", "secretsmanager:GetSecretValue", arn)
    assert "s3cr3t-value" not in message
    # awsQuery: ELBv2's XML shape, AccessDenied (403) as AWS's query services answer it.
    elb = client(server, "elbv2", READER)
    with pytest.raises(ClientError) as e:
        elb.describe_load_balancers()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert e.value.response["Error"]["Message"] == implicit(
        "reader", "elasticloadbalancing:DescribeLoadBalancers", "*")


def test_the_aws_cli_shows_iams_message(server, admin, family, aws_cli, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=server.endpoint, AWS_ACCESS_KEY_ID=READER[0], AWS_SECRET_ACCESS_KEY=READER[1],
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=str(tmp_path / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"), AWS_PAGER="", AWS_MAX_ATTEMPTS="1")

    def aws(*args):
        return subprocess.run([aws_cli, *args, "--output", "json"], env=env, capture_output=True, text=True,
                              timeout=60)
    ok = aws("ecs", "describe-clusters", "--clusters", PROD)
    assert ok.returncode == 0 and json.loads(ok.stdout)["clusters"][0]["clusterName"] == PROD, ok.stderr
    for args, action, resource in [
        (["ecs", "run-task", "--cluster", PROD, "--task-definition", f"{family}:1"], "ecs:RunTask",
         f"{ECS}:task-definition/{family}:1"),
        (["ecs", "list-tasks", "--cluster", OTHER], "ecs:ListTasks", f"{ECS}:cluster/{OTHER}"),
        (["secretsmanager", "get-secret-value", "--secret-id", "nothing-here"], "secretsmanager:GetSecretValue",
         f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:nothing-here"),
    ]:
        p = aws(*args)
        assert p.returncode == 255, (args, p.stdout, p.stderr)
        assert "(AccessDeniedException)" in p.stderr and implicit("reader", action, resource) in p.stderr, p.stderr


def test_an_explicit_deny_beats_an_allow(server, admin):
    ecs = client(server, "ecs", DENIED)
    user = DENIED[0]  # no `user`: the key id names the principal
    with pytest.raises(ClientError) as e:
        ecs.delete_cluster(cluster=PROD)
    assert denied(e) == explicit(user, "ecs:DeleteCluster", f"{ECS}:cluster/{PROD}")
    # The Allow of ecs:* still holds elsewhere.
    scratch = helpers.unique("scratch")
    ecs.create_cluster(clusterName=scratch)
    assert ecs.delete_cluster(cluster=scratch)["cluster"]["status"] == "INACTIVE"
    assert ecs.describe_clusters(clusters=[PROD])["clusters"][0]["status"] == "ACTIVE"
    sm = client(server, "secretsmanager", DENIED)
    arn = sm.create_secret(Name=helpers.unique("iam/denied"), SecretString="x")["ARN"]
    assert sm.describe_secret(SecretId=arn)["ARN"] == arn
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=arn)
    assert denied(e) == explicit(user, "secretsmanager:GetSecretValue", arn)


def test_a_key_without_a_policy_does_everything(server, admin, family):
    assert admin.list_clusters()["clusterArns"]
    sm = client(server, "secretsmanager")
    arn = sm.create_secret(Name=helpers.unique("iam/free"), SecretString="v")["ARN"]
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "v"
    td = admin.register_task_definition(
        family=helpers.unique("free"), taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/anything",
        containerDefinitions=[{"name": "c", "image": "busybox", "memory": 32}])["taskDefinition"]
    assert td["taskRoleArn"].endswith("role/anything")
    # No instance: RunTask is refused by placement, not by authorization.
    past_authorization(lambda: admin.run_task(cluster=OTHER, taskDefinition=family))
    assert client(server, "elbv2").describe_load_balancers()["LoadBalancers"] == []


def test_pass_role_is_checked_for_every_role_handed_to_ecs(server, admin):
    ecs = client(server, "ecs", RUNNER)
    allowed = f"arn:aws:iam::{ACCOUNT}:role/app-web"
    other = f"arn:aws:iam::{ACCOUNT}:role/admin"
    container = [{"name": "c", "image": "busybox", "memory": 32}]
    fam = helpers.unique("runner")
    ecs.register_task_definition(family=fam, taskRoleArn=allowed, containerDefinitions=container)
    with pytest.raises(ClientError) as e:
        ecs.register_task_definition(family=fam, taskRoleArn=allowed, executionRoleArn=other,
                                     containerDefinitions=container)
    assert denied(e) == implicit("runner", "iam:PassRole", other)
    # A bare role name is the role of this account.
    with pytest.raises(ClientError) as e:
        ecs.register_task_definition(family=fam, taskRoleArn="admin", containerDefinitions=container)
    assert denied(e) == implicit("runner", "iam:PassRole", other)
    # RunTask's overrides and the roles of the task definition it runs.
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster=OTHER, taskDefinition=fam, overrides={"taskRoleArn": other})
    assert denied(e) == implicit("runner", "iam:PassRole", other)
    past_authorization(lambda: ecs.run_task(cluster=OTHER, taskDefinition=fam))
    theirs = helpers.unique("theirs")
    admin.register_task_definition(family=theirs, taskRoleArn=other, containerDefinitions=container)
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster=OTHER, taskDefinition=theirs)
    assert denied(e) == implicit("runner", "iam:PassRole", other)
    with pytest.raises(ClientError) as e:
        ecs.create_service(cluster=OTHER, serviceName=helpers.unique("svc"), taskDefinition=f"{theirs}:1",
                           desiredCount=0)
    assert denied(e) == implicit("runner", "iam:PassRole", other)
    svc = helpers.unique("svc")
    ecs.create_service(cluster=OTHER, serviceName=svc, taskDefinition=fam, desiredCount=0)
    with pytest.raises(ClientError) as e:
        ecs.update_service(cluster=OTHER, service=svc, taskDefinition=theirs)
    assert denied(e) == implicit("runner", "iam:PassRole", other)
    # An update that does not change the task definition hands no role.
    ecs.update_service(cluster=OTHER, service=svc, desiredCount=0)


def test_a_key_without_register_or_poll_cannot_be_an_agent(server, admin):
    ecs = client(server, "ecs", NOAGENT)
    principal = f"arn:aws:iam::{ACCOUNT}:user/ops/noagent"
    with pytest.raises(ClientError) as e:
        ecs.register_container_instance(cluster=PROD)
    assert denied(e) == (f"User: {principal} is not authorized to perform: ecs:RegisterContainerInstance on "
                         f"resource: {ECS}:cluster/{PROD} because no identity-based policy allows the "
                         "ecs:RegisterContainerInstance action")
    assert ecs.list_container_instances(cluster=PROD)["containerInstanceArns"] == []
    # The agent session's upgrade: refused before the instance is even looked up.
    instance = f"{ECS}:container-instance/{PROD}/0123456789abcdef0123456789abcdef"
    path = f"/agent/v1/session?containerInstance={instance}"
    r = helpers.raw_call(server.endpoint, body=b"", target="", method="GET", path=path,
                         access_key=NOAGENT[0], secret_key=NOAGENT[1])
    assert (r.status, r.json["__type"]) == (400, "AccessDeniedException"), r
    assert r.json["message"] == (f"User: {principal} is not authorized to perform: ecs:Poll on resource: "
                                 f"{instance} because no identity-based policy allows the ecs:Poll action")
    # The key without a policy gets past it (to the instance lookup: none is registered).
    r = helpers.raw_call(server.endpoint, body=b"", target="", method="GET", path=path)
    assert r.status == 404 and r.json["__type"] == "ClientException", r


def test_a_policy_the_server_cannot_read_stops_it(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(f"""
[[credentials]]
access_key_id = "AKIDBAD"
secret_access_key = "x"
policy = '{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Action": "RunTask", "Resource": "*"}}}}'
""")
    p = subprocess.run([str(helpers.FLOTILLA_BIN), "server", "--config", str(config), "--data-dir", str(tmp_path / "d"),
                        "--listen", f"127.0.0.1:{helpers.free_port()}", "--no-lb"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "credentials AKIDBAD: the policy is refused" in p.stderr, p.stderr
    assert "action 'RunTask' is not of the form service:Action" in p.stderr, p.stderr
