"""Throttling and the audit log, end to end (issue 18, acceptance 4): one `flotilla server`
with two keys and a low configured rate for ECS's "cluster read" class (DescribeClusters,
ListClusters: burst 5, 2 a second), and one agent on the real Docker engine.

Key A hammering DescribeClusters gets ThrottlingException (boto3 without retries:
`total_max_attempts` 1, since botocore's `max_attempts` 1 still retries once; and the aws CLI), while key B's calls, the agent's session and heartbeats, and a task B starts are not
affected at the same time; boto3 in `standard` retry mode completes all its calls, counting the
retries they needed; ELBv2 answers awsQuery's `Throttling` and Secrets Manager the JSON
`ThrottlingException` (one operation with its own limit). The audit log
(DATA_DIR/audit.log) holds every mutating and every denied call with its fields, no read that
succeeded, and never a secret value."""

import json
import os
import subprocess
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers
from fleet import IMAGE, Fleet, instances_ready, wait_for

KEY_B = "AKIDFLOTILLATESTB002"
SECRET_B = "flotilla-e2e-secret-key-b"
PRINCIPAL_A = f"arn:aws:iam::{helpers.ACCOUNT}:user/alice"
PRINCIPAL_B = f"arn:aws:iam::{helpers.ACCOUNT}:user/bob"
BURST, RATE = 5, 2.0

CONFIG = f"""
[[credentials]]
access_key_id = "{helpers.ACCESS_KEY}"
secret_access_key = "{helpers.SECRET_KEY}"
principal = "{PRINCIPAL_A}"

[[credentials]]
access_key_id = "{KEY_B}"
secret_access_key = "{SECRET_B}"
principal = "{PRINCIPAL_B}"

[throttle.limits]
"ecs:cluster-read" = {{ burst = {BURST}, rate = {RATE} }}
"elasticloadbalancing:read" = {{ burst = 3, rate = 1 }}
"secretsmanager:ListSecrets" = {{ burst = 2, rate = 0.5 }}
"ecs:DescribeCapacityProviders" = {{ burst = 1, rate = 0.01 }}
"""

AUDIT_FIELDS = {"time", "requestId", "region", "service", "operation", "accessKeyId", "principal",
                "sourceAddress", "resource", "outcome", "denied"}


def client(fleet, service, key=helpers.ACCESS_KEY, secret=helpers.SECRET_KEY, **retries):
    return boto3.client(
        service, endpoint_url=fleet.endpoint, region_name=helpers.REGION,
        aws_access_key_id=key, aws_secret_access_key=secret,
        # total_max_attempts counts the first attempt (botocore's max_attempts counts retries).
        config=Config(retries=retries or {"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    tmp = tmp_path_factory.mktemp("throttling-fleet")
    config = tmp / "flotilla.toml"
    config.write_text(CONFIG)
    f = Fleet(tmp / "fleet", server_args=["--config", str(config)], throttle=True)
    cluster = helpers.unique("thr")
    client(f, "ecs", KEY_B, SECRET_B).create_cluster(clusterName=cluster)
    agent = f.add_agent(cluster)  # signs with key A, the key that is hammered below
    f.cluster = cluster
    instances_ready(client(f, "ecs", KEY_B, SECRET_B, total_max_attempts=5, mode="standard"), cluster, 1)
    agent.wait_session()
    yield f
    f.close()


@pytest.fixture(scope="module")
def ecs_a(fleet):
    return client(fleet, "ecs")


@pytest.fixture(scope="module")
def ecs_b(fleet):
    return client(fleet, "ecs", KEY_B, SECRET_B)


@pytest.fixture(scope="module")
def aws(fleet, aws_cli, tmp_path_factory):
    """Runs the aws CLI against the fleet with key A (or `key=B`); returns the process."""
    home = tmp_path_factory.mktemp("aws-home")
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(AWS_ENDPOINT_URL=fleet.endpoint, AWS_DEFAULT_REGION=helpers.REGION,
                AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
                AWS_PAGER="", HOME=str(home))

    def run(*args, key=(helpers.ACCESS_KEY, helpers.SECRET_KEY), env=None):
        e = dict(base, AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1], **(env or {}))
        return subprocess.run([aws_cli, *args, "--output", "json"], capture_output=True, text=True, env=e,
                              timeout=120)

    return run


def code(e):
    return e.response["Error"]["Code"]


def drain(call, n=20):
    """Calls `call` n times at once, returning how many were throttled."""
    throttled = 0
    for _ in range(n):
        try:
            call()
        except ClientError as e:
            assert code(e) in ("ThrottlingException", "Throttling"), e.response
            throttled += 1
    return throttled


def metric(fleet, name, **labels):
    text = helpers.raw_call(fleet.endpoint, None, b"", method="GET", path="/metrics", sign=False).raw.decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not want or f"{{{want}}}" in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def audit_records(fleet):
    path = fleet.tmp / "server" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_record(fleet, pred, what):
    return wait_for(lambda: next((r for r in audit_records(fleet) if pred(r)), None), timeout=10,
                    what=f"the audit record of {what}")


def test_a_key_over_its_rate_is_throttled_while_another_key_and_the_agent_are_not(fleet, ecs_a, ecs_b):
    cluster = fleet.cluster
    family = helpers.unique("thr")
    ecs_b.register_task_definition(family=family, containerDefinitions=[{
        "name": "main", "image": IMAGE, "essential": True, "memory": 32, "command": ["sleep", "600"],
    }])
    before = metric(fleet, "flotilla_throttled_requests_total", operation="DescribeClusters")
    sessions_before = fleet.agents[0].log().count("session established")
    counts = {"ok": 0, "throttled": 0}
    stop = threading.Event()
    started = time.monotonic()

    lock, failures = threading.Lock(), []

    def hammer():
        while not stop.is_set() and counts["ok"] + counts["throttled"] < 2000:
            try:
                ecs_a.describe_clusters(clusters=[cluster])
                outcome = "ok"
            except ClientError as e:
                if (code(e), e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Message"]) \
                        != ("ThrottlingException", 400, "Rate exceeded"):
                    failures.append(e.response)
                outcome = "throttled"
            except Exception as e:  # noqa: BLE001 - reported below, a thread cannot raise
                failures.append(repr(e))
                return
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        # Meanwhile key B: DescribeClusters within its own rate, RunTask, and the task's progress.
        b_calls = 0
        task = ecs_b.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]["taskArn"]
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            assert ecs_b.describe_clusters(clusters=[cluster])["clusters"][0]["status"] == "ACTIVE"
            b_calls += 1
            status = ecs_b.describe_tasks(cluster=cluster, tasks=[task])["tasks"][0]["lastStatus"]
            if status == "RUNNING" and b_calls >= 8:
                break
            # Health and metrics answer under the load too.
            for path in ("/healthz", "/readyz"):
                r = helpers.raw_call(fleet.endpoint, None, b"", method="GET", path=path, sign=False)
                assert r.status == 200, (path, r)
            time.sleep(0.6)
        assert status == "RUNNING", status
        # The agent, signing with the very key being throttled, kept its session and heartbeats.
        inst = ecs_b.describe_container_instances(
            cluster=cluster, containerInstances=ecs_b.list_container_instances(cluster=cluster)["containerInstanceArns"],
        )["containerInstances"][0]
        assert inst["agentConnected"] is True and inst["runningTasksCount"] >= 1, inst
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    elapsed = time.monotonic() - started
    assert not failures, failures[:3]
    assert counts["throttled"] > 0, counts
    # Never more than the burst plus the rate over the time it hammered.
    assert counts["ok"] <= BURST + RATE * elapsed + 1, (counts, elapsed)
    assert fleet.agents[0].log().count("session established") == sessions_before
    assert metric(fleet, "flotilla_agent_sessions") == 1
    assert metric(fleet, "flotilla_throttled_requests_total", operation="DescribeClusters") - before \
        == counts["throttled"]
    helpers.REPORT["throttling: key A admitted/throttled over s"] = \
        f"{counts['ok']}/{counts['throttled']} in {elapsed:.1f}s (burst {BURST}, {RATE}/s)"


def test_the_throttling_answer_is_ecs_s(fleet):
    for _ in range(BURST + 5):
        r = helpers.raw_call(fleet.endpoint, "ListClusters", {})
    assert r.status == 400, r
    assert r.json == {"__type": "ThrottlingException", "message": "Rate exceeded"}, r
    assert r.headers.get("x-amzn-requestid")


def test_boto3_in_standard_retry_mode_completes_every_call(fleet, ecs_a):
    patient = client(fleet, "ecs", mode="standard", total_max_attempts=10)
    drain(lambda: ecs_a.list_clusters())  # A's bucket is empty: every call below waits its turn
    retries, calls = 0, 12
    for _ in range(calls):
        resp = patient.describe_clusters(clusters=[fleet.cluster])
        assert resp["clusters"][0]["clusterName"] == fleet.cluster
        retries += resp["ResponseMetadata"]["RetryAttempts"]
    assert retries > 0
    helpers.REPORT["throttling: boto3 standard mode retries for 12 calls"] = retries


def test_the_aws_cli_gets_ecs_s_throttling_error(fleet, aws, ecs_a):
    # DescribeCapacityProviders has a bucket of its own here: one call, then one per 100 s.
    drain(lambda: ecs_a.describe_capacity_providers(), n=2)
    out = aws("ecs", "describe-capacity-providers", env={"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"})
    assert out.returncode != 0
    assert "An error occurred (ThrottlingException) when calling the DescribeCapacityProviders operation" \
        in out.stderr and "Rate exceeded" in out.stderr, out.stderr
    # Key B is not affected.
    out = aws("ecs", "describe-capacity-providers", key=(KEY_B, SECRET_B))
    assert out.returncode == 0, out.stderr
    assert "FARGATE" in out.stdout


def test_every_service_answers_throttling_in_its_own_shape(fleet):
    elb = client(fleet, "elbv2")
    with pytest.raises(ClientError) as e:
        for _ in range(10):
            elb.describe_load_balancers()
    assert code(e.value) == "Throttling", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Message"] == "Rate exceeded"
    sm = client(fleet, "secretsmanager")
    with pytest.raises(ClientError) as e:
        for _ in range(5):
            sm.list_secrets()
    assert code(e.value) == "ThrottlingException", e.value.response
    # ListSecrets has a bucket of its own: the rest of Secrets Manager's reads are not throttled.
    with pytest.raises(ClientError) as e:
        sm.describe_secret(SecretId=helpers.unique("none"))
    assert code(e.value) == "ResourceNotFoundException"
    assert metric(fleet, "flotilla_throttled_requests_total", operation="elasticloadbalancing:DescribeLoadBalancers") >= 1
    assert metric(fleet, "flotilla_throttled_requests_total", operation="secretsmanager:ListSecrets") >= 1


def test_mutating_and_denied_calls_are_audited_reads_are_not(fleet, ecs_a, ecs_b, aws):
    cluster = fleet.cluster
    family = helpers.unique("aud")
    ecs_b.register_task_definition(family=family, containerDefinitions=[{
        "name": "main", "image": IMAGE, "essential": True, "memory": 32, "command": ["sleep", "600"],
        "environment": [{"name": "SECRET_ENV", "value": "env-" + uuid.uuid4().hex}],
    }])
    env_value = ecs_b.describe_task_definition(taskDefinition=family)["taskDefinition"][
        "containerDefinitions"][0]["environment"][0]["value"]
    run = ecs_b.run_task(cluster=cluster, taskDefinition=family)
    task_arn = run["tasks"][0]["taskArn"]
    rec = wait_record(fleet, lambda r: r["requestId"] == run["ResponseMetadata"]["RequestId"], "RunTask")
    assert set(rec) == AUDIT_FIELDS, rec
    assert rec["service"] == "ecs" and rec["operation"] == "RunTask" and rec["outcome"] == "ok"
    assert rec["accessKeyId"] == KEY_B and rec["principal"] == PRINCIPAL_B
    assert rec["sourceAddress"].startswith("127.0.0.1:"), rec
    assert rec["resource"] == {"cluster": cluster, "taskDefinition": family}, rec
    assert rec["region"] == helpers.REGION and rec["denied"] is False
    stop = ecs_b.stop_task(cluster=cluster, task=task_arn)
    rec = wait_record(fleet, lambda r: r["requestId"] == stop["ResponseMetadata"]["RequestId"], "StopTask")
    assert rec["resource"] == {"cluster": cluster, "task": task_arn}

    # A failed mutating call is recorded with its error code.
    with pytest.raises(ClientError) as e:
        ecs_b.delete_service(cluster=cluster, service="no-such-service")
    rid = e.value.response["ResponseMetadata"]["RequestId"]
    rec = wait_record(fleet, lambda r: r["requestId"] == rid, "DeleteService")
    assert rec["outcome"] == code(e.value) and rec["denied"] is False
    assert rec["resource"] == {"cluster": cluster, "service": "no-such-service"}

    # Denied: a bad signature (the key it claims, no principal), and throttling.
    r = helpers.raw_call(fleet.endpoint, "CreateCluster", {"clusterName": "x"}, secret_key="wrong")
    assert r.status == 403, r
    rec = wait_record(fleet, lambda x: x["requestId"] == r.headers["x-amzn-requestid"], "a bad signature")
    assert rec["outcome"] == "InvalidSignatureException" and rec["denied"] is True
    assert rec["accessKeyId"] == helpers.ACCESS_KEY and rec["principal"] is None
    r = helpers.raw_call(fleet.endpoint, "ListClusters", {}, access_key="AKIDNOSUCHKEY0000000")
    assert r.status == 403, r
    rec = wait_record(fleet, lambda x: x["requestId"] == r.headers["x-amzn-requestid"], "an unknown key")
    assert rec["outcome"] == "UnrecognizedClientException" and rec["operation"] == "ListClusters"
    drain(lambda: ecs_a.describe_clusters(clusters=[cluster]))
    throttled = wait_record(fleet, lambda x: x["outcome"] == "ThrottlingException", "a throttled call")
    assert throttled["operation"] in ("DescribeClusters", "ListClusters") and throttled["denied"] is True
    assert throttled["accessKeyId"] == helpers.ACCESS_KEY and throttled["principal"] == PRINCIPAL_A

    # Secrets: CreateSecret (boto3) and PutParameter (the aws CLI) are recorded by name; their
    # values appear nowhere in the file.
    sm = client(fleet, "secretsmanager", KEY_B, SECRET_B)
    secret_name, secret = helpers.unique("audit/db"), "s3cr3t-" + uuid.uuid4().hex
    created = sm.create_secret(Name=secret_name, SecretString=secret)
    sm.put_secret_value(SecretId=secret_name, SecretString=secret + "-2")
    param_name, param = "/" + helpers.unique("audit"), "p4r4m-" + uuid.uuid4().hex
    out = aws("ssm", "put-parameter", "--name", param_name, "--type", "SecureString", "--value", param)
    assert out.returncode == 0, out.stderr
    rec = wait_record(fleet, lambda r: r["requestId"] == created["ResponseMetadata"]["RequestId"], "CreateSecret")
    assert rec["service"] == "secretsmanager" and rec["resource"] == {"Name": secret_name}
    wait_record(fleet, lambda r: r["operation"] == "PutSecretValue" and r["resource"] == {"SecretId": secret_name},
                "PutSecretValue")
    rec = wait_record(fleet, lambda r: r["operation"] == "PutParameter" and r["resource"].get("Name") == param_name,
                      "PutParameter")
    assert rec["service"] == "ssm" and rec["accessKeyId"] == helpers.ACCESS_KEY and rec["outcome"] == "ok"
    # An awsQuery service: the form's identifiers.
    tg = helpers.unique("tg")[:32]
    client(fleet, "elbv2", KEY_B, SECRET_B).create_target_group(Name=tg, Protocol="HTTP", Port=80, TargetType="ip",
                                                                VpcId="vpc-1")
    wait_record(fleet, lambda r: r["operation"] == "CreateTargetGroup" and r["resource"] == {"Name": tg},
                "CreateTargetGroup")

    text = (fleet.tmp / "server" / "audit.log").read_text()
    for value in (secret, param, env_value):
        assert value not in text, value
    records = audit_records(fleet)
    assert all(set(r) == AUDIT_FIELDS for r in records)
    # Reads that succeeded are not recorded; every record is a mutating or a denied call.
    assert not [r for r in records if r["operation"].startswith(("Describe", "List", "Get")) and r["outcome"] == "ok"]
    assert all(r["denied"] or not r["operation"].startswith(("Describe", "List", "Get")) for r in records)
    assert metric(fleet, "flotilla_audit_dropped_lines_total") == 0
    helpers.REPORT["audit: records written by the throttling module"] = len(records)
