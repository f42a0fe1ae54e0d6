"""Task role credentials and the task metadata endpoint v4 (issue 14, acceptance 3), end to end:
one `flotilla server`, a cluster's agent and a managed-pool host (Fargate) on the real Docker
engine, the pinned aws CLI and boto3.

Inside a task with a `taskRoleArn`, busybox's wget reads `169.254.170.2$AWS_CONTAINER_CREDENTIALS_
RELATIVE_URI` and `$ECS_CONTAINER_METADATA_URI_V4` (`/task`, `/task/stats`, the container
document); the keys it gets, given to the aws CLI outside the container (with the session token),
read the task's secret from Secrets Manager and call ECS; once the task stopped the same keys are
refused with the error AWS answers for an invalid token. Bridge, host and awsvpc (a Fargate task)
tasks each reach their agent's own port through the NAT rules the agent installs for that task
alone, which are gone when it stops.

The server issues keys valid 60 s here (`--task-credentials-seconds`), so the agent's refresh (at
60 % of their life) is seen within the test."""

import json
import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import helpers
from fleet import (IMAGE, Fleet, docker, ecs_for, instances_ready, remove_awsvpc_network_if_unused,
                   task_containers, wait_for)

LIFETIME = 60
ROLE = f"arn:aws:iam::{helpers.ACCOUNT}:role/app-task-role"
# A role with a policy in the server's --config: it may read secrets named `limited/...` only.
LIMITED_ROLE = f"arn:aws:iam::{helpers.ACCOUNT}:role/team/limited-task-role"
LIMITED_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
     "Resource": f"arn:aws:secretsmanager:{helpers.REGION}:{helpers.ACCOUNT}:secret:limited/*"}]}
VPC = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"],
                               "securityGroups": ["sg-0123456789abcdef0"], "assignPublicIp": "DISABLED"}}
# Busybox's wget (its -T option crashes this build: never used). Every answer on one line.
SCRIPT = r"""
echo "ENV cred=$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI meta=$ECS_CONTAINER_METADATA_URI_V4 exec=$AWS_EXECUTION_ENV"
echo "CREDS $(wget -qO- 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)"
echo "TASK $(wget -qO- $ECS_CONTAINER_METADATA_URI_V4/task)"
echo "CONTAINER $(wget -qO- $ECS_CONTAINER_METADATA_URI_V4)"
echo "STATS $(wget -qO- $ECS_CONTAINER_METADATA_URI_V4/task/stats)"
echo "FORGED $(wget -qO- 169.254.170.2/v2/credentials/00000000-0000-4000-8000-000000000000 2>&1)"
echo READY
while true; do sleep 3; echo "AGAIN $(wget -qO- 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)"; done
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    tmp = tmp_path_factory.mktemp("taskrole-fleet")
    # The server's key keeps full access; LIMITED_ROLE's credentials are held to its policy
    # (ROLE has no entry: full access, as a key without a policy).
    config = tmp / "flotilla.toml"
    config.write_text(f"""
[[credentials]]
access_key_id = "{helpers.ACCESS_KEY}"
secret_access_key = "{helpers.SECRET_KEY}"

[[roles]]
arn = "{LIMITED_ROLE}"
policy = '{json.dumps(LIMITED_POLICY)}'
""")
    f = Fleet(tmp, server_args=["--task-credentials-seconds", str(LIFETIME), "--config", str(config)])
    try:
        f.cluster = helpers.unique("role")
        ecs = ecs_for(f)
        ecs.create_cluster(clusterName=f.cluster)
        f.add_agent(f.cluster)
        f.pool = f.add_agent(managed=True)
        instances_ready(ecs, f.cluster, 1)
        f.pool.wait_session()
    except BaseException:
        f.close()
        raise
    yield f
    f.close()
    remove_awsvpc_network_if_unused()


@pytest.fixture(scope="module")
def sm(fleet):
    return boto3.client("secretsmanager", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
                        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


@pytest.fixture(scope="module")
def secret(sm):
    value = "v-" + os.urandom(8).hex()
    arn = sm.create_secret(Name=helpers.unique("app/db"), SecretString=value)["ARN"]
    return arn, value


def aws(aws_cli, fleet, tmp_path, creds, *args):
    """The aws CLI with the task's keys (and session token), against the fleet: (exit code,
    stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
               AWS_SESSION_TOKEN=creds["Token"], AWS_DEFAULT_REGION=helpers.REGION,
               AWS_ENDPOINT_URL=fleet.endpoint, AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_PAGER="", AWS_MAX_ATTEMPTS="1")
    out = subprocess.run([aws_cli, *args, "--output", "json"], capture_output=True, text=True, env=env,
                         timeout=120)
    return out.returncode, out.stdout, out.stderr


def task_container_id(cluster, task_arn, name="app"):
    for cid in task_containers(cluster):
        labels = json.loads(docker("inspect", "--format", "{{json .Config.Labels}}", cid))
        if labels.get("com.flotilla.task-arn") == task_arn and labels.get("com.flotilla.container-name") == name:
            return cid
    return None


def lines(cluster, task_arn):
    """The container's output lines by their first word (the last of each, and every AGAIN)."""
    cid = task_container_id(cluster, task_arn)
    if not cid:
        return None
    out = {}
    for line in docker("logs", cid).splitlines():
        word, _, rest = line.partition(" ")
        out.setdefault("AGAIN_ALL", [])
        if word == "AGAIN":
            out["AGAIN_ALL"].append(rest)
        out[word] = rest
    return out


def ready(ecs, cluster, task_arn):
    def check():
        out = lines(cluster, task_arn)
        if out and "READY" in out:
            return out
        t = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"][0]
        assert t["lastStatus"] != "STOPPED", f"the task stopped: {t.get('stoppedReason')}"
        return None
    return wait_for(check, timeout=90, what=f"the container of {task_arn} to print READY")


def nat_rules_of(task_arn, dns=False):
    """The task's NAT rules for 169.254.170.2:80 (with dns=True also those of its resolver, UDP
    port 53, which bridge and awsvpc tasks have beside it: tests/test_cloudmap.py)."""
    return [r for r in docker_free_nat_listing().splitlines()
            if f"task={task_arn}" in r and (dns or "--dport 80" in r)]


def docker_free_nat_listing():
    return subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True,
                          check=True).stdout


def stop(ecs, cluster, arn):
    ecs.stop_task(cluster=cluster, task=arn, reason="test done")
    return wait_for(lambda: (lambda t: t if t["lastStatus"] == "STOPPED" else None)(
        ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]), timeout=90, what=f"{arn} STOPPED")


def register(ecs, family, network_mode, **extra):
    containers = [{"name": "app", "image": IMAGE, "essential": True, "command": ["sh", "-c", SCRIPT],
                   "stopTimeout": 2, **({} if network_mode == "awsvpc" else {"memory": 32}),
                   "dockerLabels": {"team": "core"}}]
    td = {"family": family, "taskRoleArn": ROLE, "networkMode": network_mode, "containerDefinitions": containers}
    if network_mode == "awsvpc":
        td.update(requiresCompatibilities=["FARGATE"], cpu="256", memory="512")
    return ecs.register_task_definition(**td, **extra)["taskDefinition"]


def run(ecs, fleet, family, network_mode):
    if network_mode == "awsvpc":
        def attempt():
            out = ecs.run_task(cluster=fleet.cluster, taskDefinition=family, launchType="FARGATE",
                               networkConfiguration=VPC)
            return out["tasks"][0] if out["tasks"] else None
        return wait_for(attempt, timeout=60, what="capacity on the managed pool")
    out = ecs.run_task(cluster=fleet.cluster, taskDefinition=family)
    assert out["tasks"], out
    return out["tasks"][0]


def check_task_document(doc, task, td, network_mode):
    assert doc["TaskARN"] == task["taskArn"]
    assert doc["Family"] == td["family"] and doc["Revision"] == str(td["revision"])
    assert doc["Cluster"] == task["clusterArn"].split("/")[-1]
    assert doc["DesiredStatus"] == "RUNNING"
    assert doc["KnownStatus"] in ("ACTIVATING", "RUNNING")
    assert doc["LaunchType"] == ("FARGATE" if network_mode == "awsvpc" else "EC2")
    (c,) = doc["Containers"]
    assert c["Name"] == "app" and c["Image"] == IMAGE and c["Type"] == "NORMAL"
    assert c["ContainerARN"] == task["containers"][0]["containerArn"]
    assert c["KnownStatus"] == "RUNNING" and c["DesiredStatus"] == "RUNNING"
    assert c["Labels"]["com.amazonaws.ecs.task-arn"] == task["taskArn"]
    assert c["Labels"]["com.amazonaws.ecs.task-definition-family"] == td["family"]
    assert c["Labels"]["team"] == "core"
    assert c["Networks"][0]["NetworkMode"] == network_mode
    if network_mode == "awsvpc":
        assert doc["Limits"] == {"CPU": 0.25, "Memory": 512}
        ip = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}["privateIPv4Address"]
        assert c["Networks"][0]["IPv4Addresses"] == [ip]
    else:
        assert c["Limits"]["Memory"] == 32
    if network_mode == "bridge":
        assert re.fullmatch(r"172\.\d+\.\d+\.\d+", c["Networks"][0]["IPv4Addresses"][0]), c["Networks"]


@pytest.mark.parametrize("network_mode", ["bridge", "host", "awsvpc"])
def test_a_task_role_reads_its_secret_and_calls_ecs_until_the_task_stops(
        fleet, secret, aws_cli, tmp_path, network_mode):
    ecs = ecs_for(fleet)
    secret_arn, secret_value = secret
    family = helpers.unique(f"role-{network_mode}")
    td = register(ecs, family, network_mode)
    task = run(ecs, fleet, family, network_mode)
    arn = task["taskArn"]
    out = ready(ecs, fleet.cluster, arn)

    assert re.fullmatch(r"cred=/v2/credentials/[0-9a-f-]{36} meta=http://169\.254\.170\.2/v4/[0-9a-f-]{36} "
                        r"exec=AWS_ECS_(EC2|FARGATE)", out["ENV"]), out["ENV"]
    creds = json.loads(out["CREDS"])
    assert set(creds) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}, creds
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", creds["AccessKeyId"]), creds["AccessKeyId"]
    assert creds["RoleArn"] == ROLE
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", creds["Expiration"]), creds["Expiration"]
    # A forged id gets nothing.
    assert "404" in out["FORGED"] and "AccessKeyId" not in out["FORGED"], out["FORGED"]

    task = ecs.describe_tasks(cluster=fleet.cluster, tasks=[arn])["tasks"][0]
    check_task_document(json.loads(out["TASK"]), task, td, network_mode)
    container = json.loads(out["CONTAINER"])
    assert container["Name"] == "app" and container["DockerId"].startswith(task_container_id(fleet.cluster, arn))
    stats = json.loads(out["STATS"])
    assert list(stats) == [container["DockerId"]], stats
    docker_stats = stats[container["DockerId"]]
    assert {"read", "cpu_stats", "memory_stats", "pids_stats"} <= set(docker_stats), docker_stats.keys()
    assert docker_stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0

    # The agent's rule for this task alone.
    assert len(nat_rules_of(arn)) == 1, nat_rules_of(arn)

    # The keys, outside the container, with the aws CLI: the task's secret, and ECS.
    code, stdout, stderr = aws(aws_cli, fleet, tmp_path, creds, "secretsmanager", "get-secret-value",
                               "--secret-id", secret_arn)
    assert code == 0, stderr
    assert json.loads(stdout)["SecretString"] == secret_value
    code, stdout, stderr = aws(aws_cli, fleet, tmp_path, creds, "ecs", "describe-tasks",
                               "--cluster", fleet.cluster, "--tasks", arn)
    assert code == 0, stderr
    assert json.loads(stdout)["tasks"][0]["taskArn"] == arn
    # Without its session token the key is not valid.
    code, _, stderr = aws(aws_cli, fleet, tmp_path, {**creds, "Token": "x"}, "ecs", "list-clusters")
    assert code != 0 and "UnrecognizedClientException" in stderr, stderr

    stopped = stop(ecs, fleet.cluster, arn)
    assert stopped["stopCode"] == "UserInitiated", stopped
    code, _, stderr = aws(aws_cli, fleet, tmp_path, creds, "secretsmanager", "get-secret-value",
                          "--secret-id", secret_arn)
    assert code == 255, stderr
    assert "An error occurred (UnrecognizedClientException) when calling the GetSecretValue operation: " \
           "The security token included in the request is invalid." in stderr, stderr
    code, _, stderr = aws(aws_cli, fleet, tmp_path, creds, "ecs", "list-clusters")
    assert code == 255 and "(UnrecognizedClientException)" in stderr, stderr
    assert nat_rules_of(arn, dns=True) == [], "the task's NAT rule outlived it"

    # The secret parts never in a log, a Describe answer or a file in clear.
    described = json.dumps(ecs.describe_tasks(cluster=fleet.cluster, tasks=[arn]), default=str)
    for value in (creds["SecretAccessKey"], creds["Token"]):
        assert value not in described
        assert value not in (fleet.tmp / "server.log").read_text(errors="replace")
        for a in fleet.agents:
            assert value not in a.log()
        for f in [p for d in (fleet.tmp / "server", *(a.data_dir for a in fleet.agents))
                  for p in Path(d).rglob("*") if p.is_file()]:
            assert value.encode() not in f.read_bytes(), f"a secret part of the key found in clear in {f}"


def test_a_task_roles_credentials_are_held_to_the_roles_policy(fleet, sm, secret, aws_cli, tmp_path):
    ecs = ecs_for(fleet)
    allowed_value = "v-" + os.urandom(8).hex()
    allowed = sm.create_secret(Name=helpers.unique("limited/db"), SecretString=allowed_value)["ARN"]
    family = helpers.unique("role-limited")
    containers = [{"name": "app", "image": IMAGE, "essential": True, "command": ["sh", "-c", SCRIPT],
                   "stopTimeout": 2, "memory": 32}]
    ecs.register_task_definition(family=family, taskRoleArn=LIMITED_ROLE, containerDefinitions=containers)
    arn = run(ecs, fleet, family, "bridge")["taskArn"]
    creds = json.loads(ready(ecs, fleet.cluster, arn)["CREDS"])
    assert creds["RoleArn"] == LIMITED_ROLE
    session = f"arn:aws:sts::{helpers.ACCOUNT}:assumed-role/limited-task-role/{arn.rsplit('/', 1)[-1]}"

    # What the policy allows.
    code, stdout, stderr = aws(aws_cli, fleet, tmp_path, creds, "secretsmanager", "get-secret-value",
                               "--secret-id", allowed)
    assert code == 0, stderr
    assert json.loads(stdout)["SecretString"] == allowed_value
    # Another secret, and ECS: refused in IAM's words, naming the role's session.
    code, _, stderr = aws(aws_cli, fleet, tmp_path, creds, "secretsmanager", "get-secret-value",
                          "--secret-id", secret[0])
    assert code == 255, stderr
    assert (f"(AccessDeniedException) when calling the GetSecretValue operation: User: {session} is not "
            f"authorized to perform: secretsmanager:GetSecretValue on resource: {secret[0]}") in stderr, stderr
    assert secret[1] not in stderr
    code, _, stderr = aws(aws_cli, fleet, tmp_path, creds, "ecs", "list-clusters")
    assert code == 255, stderr
    assert (f"(AccessDeniedException) when calling the ListClusters operation: User: {session} is not "
            "authorized to perform: ecs:ListClusters") in stderr, stderr
    # The server's own key, and another role's task (test above), are not held to it.
    assert sm.get_secret_value(SecretId=secret[0])["SecretString"] == secret[1]
    stop(ecs, fleet.cluster, arn)


def test_credentials_are_refreshed_before_they_expire(fleet, secret, aws_cli, tmp_path):
    ecs = ecs_for(fleet)
    family = helpers.unique("role-refresh")
    register(ecs, family, "bridge")
    arn = run(ecs, fleet, family, "bridge")["taskArn"]
    first = json.loads(ready(ecs, fleet.cluster, arn)["CREDS"])

    def rotated():
        for again in (lines(fleet.cluster, arn) or {}).get("AGAIN_ALL", []):
            if again and json.loads(again)["AccessKeyId"] != first["AccessKeyId"]:
                return json.loads(again)
        return None

    # Asked for at 60 % of the first key's life (36 s), well before it expires.
    second = wait_for(rotated, timeout=LIFETIME, interval=1, what="the task's credentials refreshed")
    assert second["Expiration"] > first["Expiration"], (first, second)
    code, stdout, stderr = aws(aws_cli, fleet, tmp_path, second, "secretsmanager", "get-secret-value",
                               "--secret-id", secret[0])
    assert code == 0 and json.loads(stdout)["SecretString"] == secret[1], stderr
    stop(ecs, fleet.cluster, arn)
    for c in (first, second):
        code, _, stderr = aws(aws_cli, fleet, tmp_path, c, "ecs", "list-clusters")
        assert code == 255 and "(UnrecognizedClientException)" in stderr, stderr


def test_an_sdk_reads_the_credentials_document(fleet, secret):
    """boto3's own container credentials provider parses what the endpoint serves (through the
    agent's port on the loopback address, as a host task's REDIRECT reaches it)."""
    ecs = ecs_for(fleet)
    family = helpers.unique("role-sdk")
    register(ecs, family, "host")
    arn = run(ecs, fleet, family, "host")["taskArn"]
    out = ready(ecs, fleet.cluster, arn)
    relative = re.search(r"cred=(\S+)", out["ENV"]).group(1)
    port = re.findall(r"endpoint listening.*?port=(\d+)", fleet.agents[0].log())[-1]
    import botocore.session
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{port}{relative}"}
    saved = {k: os.environ.pop(k, None) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                  "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    try:
        os.environ.update(env)
        session = botocore.session.Session()
        session.set_config_variable("config_file", "/nonexistent")
        session.set_config_variable("credentials_file", "/nonexistent")
        creds = session.get_credentials()
        assert creds is not None and creds.method == "container-role", creds and creds.method
        client = boto3.Session(botocore_session=session).client(
            "secretsmanager", endpoint_url=fleet.endpoint, region_name=helpers.REGION)
        assert client.get_secret_value(SecretId=secret[0])["SecretString"] == secret[1]
    finally:
        for k in env:
            os.environ.pop(k, None)
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v
    stop(ecs, fleet.cluster, arn)


def test_every_container_gets_the_metadata_endpoint_and_only_a_role_gets_credentials(fleet):
    ecs = ecs_for(fleet)
    family = helpers.unique("norole")
    ecs.register_task_definition(family=family, containerDefinitions=[{
        "name": "app", "image": IMAGE, "memory": 32, "stopTimeout": 2,
        "command": ["sh", "-c", 'echo "ENV cred=[$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI]"; '
                                'echo "TASK $(wget -qO- $ECS_CONTAINER_METADATA_URI_V4/task)"; echo READY; sleep 600']}])
    arn = ecs.run_task(cluster=fleet.cluster, taskDefinition=family)["tasks"][0]["taskArn"]
    out = ready(ecs, fleet.cluster, arn)
    assert out["ENV"] == "cred=[]", out["ENV"]
    assert json.loads(out["TASK"])["TaskARN"] == arn
    stop(ecs, fleet.cluster, arn)
    assert nat_rules_of(arn, dns=True) == []


def test_a_restarted_agent_replaces_its_stale_rules_and_serves_its_tasks_again(fleet):
    """kill -9 of the agent leaves its rule pointing at a port nobody listens on; the agent,
    started again on its data directory, removes it, installs the task's rule for its new
    port and serves the task's credentials again (the same key: it is in its first half-life)."""
    ecs = ecs_for(fleet)
    agent = fleet.agents[0]
    family = helpers.unique("role-restart")
    register(ecs, family, "bridge")
    arn = run(ecs, fleet, family, "bridge")["taskArn"]
    first = json.loads(ready(ecs, fleet.cluster, arn)["CREDS"])
    (before,) = nat_rules_of(arn)

    agent.kill()
    agent.start()
    def served_again():
        rules = nat_rules_of(arn)
        if rules == [before] or len(rules) != 1:
            return None
        again = [a for a in (lines(fleet.cluster, arn) or {}).get("AGAIN_ALL", []) if a]
        return (rules, again) if again and len(again) > 2 else None

    # A fresh AGAIN line after the new rule appeared.
    rules, _ = wait_for(served_again, timeout=60, interval=0.5, what="the task's rule for the new port")
    count = len(lines(fleet.cluster, arn)["AGAIN_ALL"])
    fresh = wait_for(lambda: (lambda a: a[count:] and [x for x in a[count:] if x])(
        lines(fleet.cluster, arn)["AGAIN_ALL"]), timeout=30, what="credentials served again")
    assert json.loads(fresh[-1])["AccessKeyId"] == first["AccessKeyId"]
    assert rules[0] != before
    stop(ecs, fleet.cluster, arn)
    assert nat_rules_of(arn, dns=True) == []
