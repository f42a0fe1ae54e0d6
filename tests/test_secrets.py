"""Secrets Manager, SSM Parameter Store and `secrets` in task definitions, end to end: the pinned
aws CLI and boto3 against one `flotilla server` (same endpoint and credentials as ECS) and one
`flotilla agent` on the real Docker engine.

The values used here are unique random strings, so "never in a log, a Describe answer or a file
in clear" is checked by searching for them as bytes: in the server's and the agent's logs, in
DescribeTasks and DescribeTaskDefinition, and in the SQLite files of the server's data
directory and the agent's data directory."""

import base64
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import helpers
from fleet import IMAGE, Fleet, docker, ecs_for, instances_ready, containers_of_task, wait_for

EXECUTION_ROLE = f"arn:aws:iam::{helpers.ACCOUNT}:role/ecsTaskExecutionRole"


def client(fleet, service):
    return boto3.client(
        service,
        endpoint_url=fleet.endpoint,
        region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY,
        aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("secrets-fleet"))
    cluster = helpers.unique("sec")
    ecs = ecs_for(f)
    ecs.create_cluster(clusterName=cluster)
    f.add_agent(cluster)
    f.cluster = cluster
    instances_ready(ecs, cluster, 1)
    yield f
    f.close()


@pytest.fixture(scope="module")
def sm(fleet):
    return client(fleet, "secretsmanager")


@pytest.fixture(scope="module")
def ssm(fleet):
    return client(fleet, "ssm")


def code(e):
    return e.value.response["Error"]["Code"]


def secret_value():
    return "v-" + uuid.uuid4().hex


def test_secrets_manager_versions_stages_and_reads(sm):
    name = helpers.unique("app/db")
    first, second = secret_value(), secret_value()
    created = sm.create_secret(Name=name, SecretString=json.dumps({"password": first}),
                               Description="the db", Tags=[{"Key": "team", "Value": "core"}])
    assert re.fullmatch(rf"arn:aws:secretsmanager:{helpers.REGION}:{helpers.ACCOUNT}:secret:{re.escape(name)}-[A-Za-z0-9]{{6}}",
                        created["ARN"]), created["ARN"]
    arn, v1 = created["ARN"], created["VersionId"]
    got = sm.get_secret_value(SecretId=name)
    assert json.loads(got["SecretString"]) == {"password": first}
    assert got["VersionStages"] == ["AWSCURRENT"] and got["VersionId"] == v1
    # By full ARN and by partial ARN (no random suffix).
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == v1
    assert sm.get_secret_value(SecretId=arn[:-7])["VersionId"] == v1

    put = sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"password": second}))
    assert put["VersionStages"] == ["AWSCURRENT"]
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"]) == {"password": second}
    prev = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == v1 and json.loads(prev["SecretString"]) == {"password": first}
    assert sm.get_secret_value(SecretId=name, VersionId=v1)["VersionStages"] == ["AWSPREVIOUS"]
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
    assert code(e) == "ResourceNotFoundException"

    # A retried PutSecretValue (same token, same value) changes nothing; another value is refused.
    token = str(uuid.uuid4())
    sm.put_secret_value(SecretId=name, SecretString="x", ClientRequestToken=token)
    sm.put_secret_value(SecretId=name, SecretString="x", ClientRequestToken=token)
    with pytest.raises(ClientError) as e:
        sm.put_secret_value(SecretId=name, SecretString="y", ClientRequestToken=token)
    assert code(e) == "ResourceExistsException"

    updated = sm.update_secret(SecretId=name, Description="still the db", SecretString="z")
    assert sm.get_secret_value(SecretId=name)["VersionId"] == updated["VersionId"]
    desc = sm.describe_secret(SecretId=name)
    assert desc["Description"] == "still the db" and desc["ARN"] == arn
    assert desc["Tags"] == [{"Key": "team", "Value": "core"}]
    assert "SecretString" not in desc and first not in json.dumps(desc, default=str)
    assert sorted(sum(desc["VersionIdsToStages"].values(), [])) == ["AWSCURRENT", "AWSPREVIOUS"]
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(versions) == 4

    binary = sm.create_secret(Name=helpers.unique("bin"), SecretBinary=b"\x00\x01secret")
    assert sm.get_secret_value(SecretId=binary["ARN"])["SecretBinary"] == b"\x00\x01secret"

    sm.tag_resource(SecretId=name, Tags=[{"Key": "env", "Value": "prod"}])
    sm.untag_resource(SecretId=name, TagKeys=["team"])
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_secrets_manager_errors(sm):
    name = helpers.unique("err")
    sm.create_secret(Name=name, SecretString="s")
    cases = [
        (lambda: sm.create_secret(Name=name, SecretString="t"), "ResourceExistsException"),
        (lambda: sm.get_secret_value(SecretId=helpers.unique("none")), "ResourceNotFoundException"),
        (lambda: sm.describe_secret(SecretId=f"arn:aws:secretsmanager:eu-west-1:{helpers.ACCOUNT}:secret:{name}"),
         "ResourceNotFoundException"),
        (lambda: sm.create_secret(Name="bad name!", SecretString="t"), "InvalidParameterException"),
        (lambda: sm.create_secret(Name=helpers.unique("both"), SecretString="a", SecretBinary=b"b"),
         "InvalidParameterException"),
        (lambda: sm.create_secret(Name=helpers.unique("kms"), SecretString="a", KmsKeyId="alias/mine"),
         "InvalidParameterException"),
        (lambda: sm.put_secret_value(SecretId=name), "InvalidParameterException"),
        (lambda: sm.delete_secret(SecretId=name, RecoveryWindowInDays=6), "InvalidParameterException"),
        (lambda: sm.delete_secret(SecretId=name, RecoveryWindowInDays=31), "InvalidParameterException"),
        (lambda: sm.delete_secret(SecretId=name, RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True),
         "InvalidParameterException"),
        (lambda: sm.list_secrets(NextToken="not-a-token"), "InvalidNextTokenException"),
        (lambda: sm.rotate_secret(SecretId=name), "InvalidRequestException"),
    ]
    for call, expected in cases:
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == expected, e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_delete_with_recovery_window_restore_and_force(sm):
    name = helpers.unique("gone")
    value = secret_value()
    arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
    deleted = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    window = deleted["DeletionDate"] - sm.describe_secret(SecretId=name)["DeletedDate"]
    assert abs(window.total_seconds() - 7 * 86400) < 5
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=name)
    assert code(e) == "InvalidRequestException"
    assert "marked for deletion" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        sm.create_secret(Name=name, SecretString="again")
    assert code(e) == "InvalidRequestException"
    listed = lambda **kw: [s["Name"] for s in sm.get_paginator("list_secrets").paginate(**kw).build_full_result()["SecretList"]]
    assert name not in listed()
    assert name in listed(IncludePlannedDeletion=True)
    sm.restore_secret(SecretId=arn)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    # Thirty days by default, and a forced delete is immediate and final.
    default = sm.delete_secret(SecretId=name)
    assert abs((default["DeletionDate"] - sm.describe_secret(SecretId=name)["DeletedDate"]).total_seconds() - 30 * 86400) < 5
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    with pytest.raises(ClientError) as e:
        sm.describe_secret(SecretId=name)
    assert code(e) == "ResourceNotFoundException"
    assert sm.create_secret(Name=name, SecretString="new")["ARN"] != arn


def test_list_secrets_filters_and_pages(sm, fleet, aws_cli, tmp_path):
    prefix = helpers.unique("lst")
    for i in range(5):
        sm.create_secret(Name=f"{prefix}/s{i}", SecretString="x", Description=f"Number {i}",
                         Tags=[{"Key": "kind", "Value": "odd" if i % 2 else "even"}])
    def names(filters, **kw):
        pages = sm.get_paginator("list_secrets").paginate(Filters=filters, PaginationConfig={"PageSize": 2}, **kw)
        return sorted(s["Name"] for s in pages.build_full_result()["SecretList"])
    everything = [f"{prefix}/s{i}" for i in range(5)]
    assert names([{"Key": "name", "Values": [prefix]}]) == everything
    assert names([{"Key": "name", "Values": [prefix]}, {"Key": "tag-value", "Values": ["odd"]}]) == everything[1::2]
    assert names([{"Key": "name", "Values": [prefix]}, {"Key": "tag-value", "Values": ["!odd"]}]) == everything[0::2]
    assert names([{"Key": "name", "Values": [prefix]}, {"Key": "description", "Values": ["number 3"]}]) == [everything[3]]
    page = sm.list_secrets(Filters=[{"Key": "name", "Values": [prefix]}], MaxResults=2)
    assert len(page["SecretList"]) == 2 and page["NextToken"]
    # The aws CLI pages through all of them by itself.
    env = cli_env(fleet, tmp_path)
    out = subprocess.run([aws_cli, "secretsmanager", "list-secrets", "--filters", f"Key=name,Values={prefix}",
                          "--page-size", "2", "--output", "json"], env=env, capture_output=True, text=True, check=True)
    assert sorted(s["Name"] for s in json.loads(out.stdout)["SecretList"]) == everything


def cli_env(fleet, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=fleet.endpoint, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY, AWS_DEFAULT_REGION=helpers.REGION,
               AWS_CONFIG_FILE=str(tmp_path / "config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "creds"),
               AWS_PAGER="", HOME=str(tmp_path))
    return env


def test_parameter_store(ssm, fleet, aws_cli, tmp_path):
    base = "/" + helpers.unique("app")
    clear = secret_value()
    env = cli_env(fleet, tmp_path)
    subprocess.run([aws_cli, "ssm", "put-parameter", "--name", f"{base}/token", "--type", "SecureString",
                    "--value", clear], env=env, check=True, capture_output=True)
    assert ssm.put_parameter(Name=f"{base}/plain", Value="hello", Type="String")["Version"] == 1
    ssm.put_parameter(Name=f"{base}/list", Value="a,b,c", Type="StringList")
    ssm.put_parameter(Name=f"{base}/deep/er", Value="x", Type="String")

    hidden = ssm.get_parameter(Name=f"{base}/token")["Parameter"]
    assert hidden["Type"] == "SecureString" and hidden["Value"] != clear and clear not in hidden["Value"]
    base64.b64decode(hidden["Value"])  # the encrypted form, as AWS answers it
    shown = ssm.get_parameter(Name=f"{base}/token", WithDecryption=True)["Parameter"]
    assert shown["Value"] == clear and shown["Version"] == 1
    assert shown["ARN"] == f"arn:aws:ssm:{helpers.REGION}:{helpers.ACCOUNT}:parameter{base}/token"
    assert ssm.get_parameter(Name=shown["ARN"], WithDecryption=True)["Parameter"]["Value"] == clear

    with pytest.raises(ClientError) as e:
        ssm.put_parameter(Name=f"{base}/plain", Value="again", Type="String")
    assert code(e) == "ParameterAlreadyExists"
    assert ssm.put_parameter(Name=f"{base}/plain", Value="again", Overwrite=True)["Version"] == 2
    assert ssm.get_parameter(Name=f"{base}/plain")["Parameter"]["Value"] == "again"
    old = ssm.get_parameter(Name=f"{base}/plain:1")["Parameter"]
    assert (old["Value"], old["Version"], old["Selector"]) == ("hello", 1, ":1")
    with pytest.raises(ClientError) as e:
        ssm.get_parameter(Name=f"{base}/plain:9")
    assert code(e) == "ParameterVersionNotFound"
    with pytest.raises(ClientError) as e:
        ssm.get_parameter(Name=f"{base}/nope")
    assert code(e) == "ParameterNotFound"

    got = ssm.get_parameters(Names=[f"{base}/plain", f"{base}/nope", f"{base}/token"], WithDecryption=True)
    assert sorted(p["Name"] for p in got["Parameters"]) == [f"{base}/plain", f"{base}/token"]
    assert got["InvalidParameters"] == [f"{base}/nope"]

    def by_path(recursive):
        pages = ssm.get_paginator("get_parameters_by_path").paginate(
            Path=base, Recursive=recursive, PaginationConfig={"PageSize": 1})
        return sorted(p["Name"] for p in pages.build_full_result()["Parameters"])
    assert by_path(False) == [f"{base}/list", f"{base}/plain", f"{base}/token"]
    assert by_path(True) == [f"{base}/deep/er", f"{base}/list", f"{base}/plain", f"{base}/token"]
    page = ssm.get_parameters_by_path(Path=base, MaxResults=1)
    assert len(page["Parameters"]) == 1 and page["NextToken"]

    described = ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [base]},
                          {"Key": "Type", "Values": ["SecureString"]}]).build_full_result()["Parameters"]
    assert [p["Name"] for p in described] == [f"{base}/token"]
    assert "Value" not in described[0] and clear not in json.dumps(described, default=str)
    old_style = ssm.describe_parameters(Filters=[{"Key": "Name", "Values": [f"{base}/plain"]}])["Parameters"]
    assert [(p["Name"], p["Version"]) for p in old_style] == [(f"{base}/plain", 2)]
    history = ssm.get_parameter_history(Name=f"{base}/plain")["Parameters"]
    assert [h["Value"] for h in history] == ["hello", "again"]

    for bad, expected in [
        (dict(Name="no/leading/slash", Value="x", Type="String"), "ValidationException"),
        (dict(Name="/aws/reserved", Value="x", Type="String"), "ValidationException"),
        (dict(Name=helpers.unique("notype"), Value="x"), "ValidationException"),
        (dict(Name=helpers.unique("key"), Value="x", Type="SecureString", KeyId="alias/mine"), "InvalidKeyId"),
        (dict(Name=helpers.unique("pat"), Value="abc", Type="String", AllowedPattern="^[0-9]+$"),
         "ParameterPatternMismatchException"),
        (dict(Name=helpers.unique("big"), Value="x" * 4097, Type="String"), "ValidationException"),
    ]:
        with pytest.raises(ClientError) as e:
            ssm.put_parameter(**bad)
        assert code(e) == expected, (bad["Name"], e.value.response)
    with pytest.raises(ClientError) as e:
        ssm.get_parameters_by_path(Path="relative")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ssm.describe_parameters(ParameterFilters=[{"Key": "Label", "Values": ["x"]}])
    assert code(e) == "InvalidFilterKey"
    with pytest.raises(ClientError) as e:
        ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=["i-0123456789abcdef0"])
    assert code(e) == "UnsupportedOperationException"

    ssm.delete_parameter(Name=f"{base}/list")
    with pytest.raises(ClientError) as e:
        ssm.delete_parameter(Name=f"{base}/list")
    assert code(e) == "ParameterNotFound"
    gone = ssm.delete_parameters(Names=[f"{base}/deep/er", f"{base}/never"])
    assert gone["DeletedParameters"] == [f"{base}/deep/er"] and gone["InvalidParameters"] == [f"{base}/never"]


def signed(endpoint, target, scope_service, body=b"{}"):
    req = AWSRequest(method="POST", url=endpoint + "/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    SigV4Auth(Credentials(helpers.ACCESS_KEY, helpers.SECRET_KEY), scope_service, helpers.REGION).add_auth(req)
    return helpers.raw_call(endpoint, None, body, target="", sign=False, extra_headers=dict(req.headers.items()))


def test_each_service_answers_in_its_own_shape(fleet):
    # A credential scoped to another service than the target's is refused as AWS refuses it.
    for target, scope, service in [
        ("secretsmanager.ListSecrets", "ecs", "secretsmanager"),
        ("AmazonSSM.DescribeParameters", "secretsmanager", "ssm"),
        ("AmazonEC2ContainerServiceV20141113.ListClusters", "ssm", "ecs"),
    ]:
        r = signed(fleet.endpoint, target, scope)
        assert r.status == 403, r
        assert r.json["__type"] == "InvalidSignatureException", r
        assert r.json["message"] == f"Credential should be scoped to correct service: '{service}'. "
    r = signed(fleet.endpoint, "secretsmanager.NoSuchThing", "secretsmanager")
    assert (r.status, r.json["__type"]) == (400, "UnknownOperationException"), r
    r = signed(fleet.endpoint, "AmazonSSM.GetParameter", "ssm", b"[1]")
    assert (r.status, r.json["__type"]) == (400, "SerializationException"), r
    r = signed(fleet.endpoint, "AmazonSSM.GetParameter", "ssm", json.dumps({"Name": "x" * 2049}).encode())
    assert (r.status, r.json["__type"]) == (400, "ValidationException"), r
    assert "Member must have length less than or equal to 2048" in r.json["Message"]
    r = signed(fleet.endpoint, "secretsmanager.GetSecretValue", "secretsmanager", b"{}")
    assert (r.status, r.json["__type"]) == (400, "InvalidParameterException"), r
    # A sensitive value is never repeated in a validation message.
    long_secret = "s3cr3t" + "x" * 65536
    r = signed(fleet.endpoint, "secretsmanager.CreateSecret", "secretsmanager",
               json.dumps({"Name": helpers.unique("long"), "SecretString": long_secret}).encode())
    assert (r.status, r.json["__type"]) == (400, "InvalidParameterException"), r
    assert "s3cr3t" not in r.raw.decode()


def test_secrets_require_an_execution_role(fleet):
    ecs = ecs_for(fleet)
    with pytest.raises(ClientError) as e:
        ecs.register_task_definition(family=helpers.unique("norole"), containerDefinitions=[{
            "name": "app", "image": IMAGE, "memory": 16,
            "secrets": [{"name": "X", "valueFrom": "/some/param"}]}])
    assert code(e) == "ClientException"
    assert e.value.response["Error"]["Message"] == \
        "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'."


def run_to_stop(ecs, cluster, family):
    task = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]
    arn = task["taskArn"]
    def stopped():
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] == "STOPPED" else None
    return wait_for(stopped, timeout=120, what=f"task {arn} STOPPED")


def files_under(path):
    return [p for p in Path(path).rglob("*") if p.is_file()]


def test_a_task_gets_its_secrets_and_nothing_else_sees_them(fleet, sm, ssm):
    ecs = ecs_for(fleet)
    db_password, api_token = secret_value(), secret_value()
    secret_arn = sm.create_secret(Name=helpers.unique("prod/db"),
                                  SecretString=json.dumps({"username": "app", "password": db_password}))["ARN"]
    param = "/" + helpers.unique("svc") + "/token"
    ssm.put_parameter(Name=param, Value=api_token, Type="SecureString")
    family = helpers.unique("withsecrets")
    registered = ecs.register_task_definition(
        family=family, executionRoleArn=EXECUTION_ROLE,
        containerDefinitions=[{
            "name": "app", "image": IMAGE, "memory": 16, "essential": True,
            "command": ["sh", "-c", 'echo "DB=$DB_PASSWORD"; echo "TOKEN=$API_TOKEN"'],
            "secrets": [
                {"name": "DB_PASSWORD", "valueFrom": f"{secret_arn}:password::"},
                {"name": "API_TOKEN", "valueFrom": param},
            ],
        }])["taskDefinition"]
    task = run_to_stop(ecs, fleet.cluster, family)
    assert task["containers"][0].get("exitCode") == 0, task
    assert task["stopCode"] == "EssentialContainerExited", task

    ids = containers_of_task(task["taskArn"])
    assert len(ids) == 1, ids
    logs = docker("logs", ids[0])
    assert f"DB={db_password}" in logs and f"TOKEN={api_token}" in logs, logs

    # Only the references are shown.
    td = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert td["containerDefinitions"][0]["secrets"] == registered["containerDefinitions"][0]["secrets"]
    described = json.dumps([td, ecs.describe_tasks(cluster=fleet.cluster, tasks=[task["taskArn"]])], default=str)
    for value in (db_password, api_token):
        assert value not in described
        assert value not in (fleet.tmp / "server.log").read_text(errors="replace")
        assert value not in fleet.agents[0].log()
        for f in files_under(fleet.tmp / "server") + files_under(fleet.agents[0].data_dir):
            assert value.encode() not in f.read_bytes(), f"{value} found in clear in {f}"
    key = fleet.tmp / "server" / "secrets.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("kind", ["secretsmanager", "ssm"])
def test_a_missing_secret_stops_the_task_naming_it(fleet, kind):
    ecs = ecs_for(fleet)
    missing = (f"arn:aws:secretsmanager:{helpers.REGION}:{helpers.ACCOUNT}:secret:{helpers.unique('absent')}-AbCdEf"
               if kind == "secretsmanager" else "/" + helpers.unique("absent") + "/param")
    family = helpers.unique("missing")
    ecs.register_task_definition(
        family=family, executionRoleArn=EXECUTION_ROLE,
        containerDefinitions=[{"name": "app", "image": IMAGE, "memory": 16, "command": ["true"],
                               "secrets": [{"name": "X", "valueFrom": missing}]}])
    task = run_to_stop(ecs, fleet.cluster, family)
    assert task["stopCode"] == "TaskFailedToStart", task
    assert task["stoppedReason"].startswith("ResourceInitializationError: "), task["stoppedReason"]
    assert missing in task["stoppedReason"], task["stoppedReason"]
    assert not containers_of_task(task["taskArn"])


def test_secrets_and_awslogs_together_as_a_user_brings_them(fleet, sm, ssm, aws_cli, tmp_path):
    """Issue 14, acceptance 1: the aws CLI creates a secret and a SecureString parameter; a task
    definition with two `secrets` (one JSON key of the secret, the parameter) and `awslogs`; the
    container prints both values; `aws logs get-log-events` shows them in its stream
    `prefix/container/task-id`; the values appear nowhere in the server's or agent's logs, in
    DescribeTasks or DescribeTaskDefinition, or in the control-plane store's files read as bytes
    (the container's own log stream holds them by design: that is what it printed)."""
    env = cli_env(fleet, tmp_path)

    def aws(*args):
        out = subprocess.run([aws_cli, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    db_password, api_token = secret_value(), secret_value()
    secret_arn = aws("secretsmanager", "create-secret", "--name", helpers.unique("prod/db"),
                     "--secret-string", json.dumps({"username": "app", "password": db_password}))["ARN"]
    param = "/" + helpers.unique("svc") + "/token"
    aws("ssm", "put-parameter", "--name", param, "--value", api_token, "--type", "SecureString")
    group, prefix = "/ecs/" + helpers.unique("web"), "web"
    aws("logs", "create-log-group", "--log-group-name", group)
    ecs = ecs_for(fleet)
    family = helpers.unique("secrets-awslogs")
    ecs.register_task_definition(
        family=family, executionRoleArn=EXECUTION_ROLE,
        containerDefinitions=[{
            "name": "app", "image": IMAGE, "memory": 16, "essential": True,
            "command": ["sh", "-c", 'echo "DB=$DB_PASSWORD"; echo "TOKEN=$API_TOKEN" >&2'],
            "secrets": [
                {"name": "DB_PASSWORD", "valueFrom": f"{secret_arn}:password::"},
                {"name": "API_TOKEN", "valueFrom": param},
            ],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": group, "awslogs-region": helpers.REGION, "awslogs-stream-prefix": prefix}},
        }])
    task = run_to_stop(ecs, fleet.cluster, family)
    assert task["containers"][0].get("exitCode") == 0, task
    stream = f"{prefix}/app/{task['taskArn'].rsplit('/', 1)[-1]}"

    def printed():
        events = aws("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream,
                     "--start-from-head")["events"]
        messages = [e["message"] for e in events]
        return messages if f"DB={db_password}" in messages and f"TOKEN={api_token}" in messages else None

    wait_for(printed, timeout=30, what="both values in the task's log stream")

    described = json.dumps([ecs.describe_task_definition(taskDefinition=family),
                            ecs.describe_tasks(cluster=fleet.cluster, tasks=[task["taskArn"]])], default=str)
    server_dir, agent_dir = fleet.tmp / "server", Path(fleet.agents[0].data_dir)
    store_files = [f for f in files_under(server_dir) + files_under(agent_dir)
                   if (server_dir / "logs") not in f.parents and (agent_dir / "logs") not in f.parents]
    assert any(f.suffix in (".db", ".sqlite") or "sqlite" in f.name for f in files_under(server_dir)), \
        files_under(server_dir)
    for value in (db_password, api_token):
        assert value not in described
        assert value not in (fleet.tmp / "server.log").read_text(errors="replace")
        assert value not in fleet.agents[0].log()
        for f in store_files:
            assert value.encode() not in f.read_bytes(), f"{value} found in clear in {f}"
