"""Agent identity, end to end (issue 18, acceptance 1, the agent's half): join tokens created with
`flotilla token`, an agent that joins with one (no API keys in its environment) and receives
credentials of its own, what those credentials can and cannot do, and their revocation when the
instance is deregistered.

One `flotilla server` and two real agents on the local Docker engine: `joined` joined cluster A
with a token; `keyed` runs in cluster B with the installation's API keys, as agents did before
(and still may), and is the "other instance" whose tasks the joined agent must not reach."""

import json
import os
import subprocess
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers
from fleet import IMAGE, Fleet, docker, ecs_for, instances_ready, containers_of_task, wait_for

EXECUTION_ROLE = f"arn:aws:iam::{helpers.ACCOUNT}:role/ecsTaskExecutionRole"
ADMIN = "FlotillaAdmin."


def flotilla(fleet, *args):
    """Runs a `flotilla` verb against the fleet with the installation's API keys."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION)
    env.pop("AWS_SESSION_TOKEN", None)
    return subprocess.run([str(helpers.FLOTILLA_BIN), *args, "--endpoint", fleet.endpoint],
                          capture_output=True, text=True, env=env, timeout=60)


def create_token(fleet, *args):
    out = flotilla(fleet, "token", "create", *args, "--output", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def client(fleet, service, creds):
    return boto3.client(service, endpoint_url=fleet.endpoint, region_name=helpers.REGION,
                        aws_access_key_id=creds["access_key_id"],
                        aws_secret_access_key=creds["secret_access_key"],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def code(e):
    return e.value.response["Error"]["Code"]


def join(fleet, token, registration=None):
    """The join call as the agent makes it (the token authenticates it; no signature)."""
    body = {"joinToken": token, "registration": registration or {}}
    return helpers.raw_call(fleet.endpoint, body=body, target=ADMIN + "RegisterAgent", sign=False)


def session_upgrade(fleet, arn, creds):
    """A hand-made, signed session upgrade GET for instance `arn` (no WebSocket handshake: a
    refusal comes first, an accepted one fails only for the missing upgrade headers)."""
    from urllib.parse import quote
    return helpers.raw_call(fleet.endpoint, body=b"", target="", method="GET",
                            path=f"/agent/v1/session?containerInstance={quote(arn, safe='')}",
                            access_key=creds["access_key_id"], secret_key=creds["secret_access_key"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("identity-fleet"))
    ecs = ecs_for(f)
    f.cluster_a, f.cluster_b = helpers.unique("ida"), helpers.unique("idb")
    ecs.create_cluster(clusterName=f.cluster_a)
    ecs.create_cluster(clusterName=f.cluster_b)
    f.token = create_token(f, "--cluster", f.cluster_a, "--ttl", "1h")
    f.joined = f.add_agent(f.cluster_a, env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
                           extra_args=["--join-token", f.token["token"]])
    f.keyed = f.add_agent(f.cluster_b)
    instances_ready(ecs, f.cluster_a, 1)
    instances_ready(ecs, f.cluster_b, 1)
    yield f
    f.close()


@pytest.fixture(scope="module")
def agent_creds(fleet):
    """The joined agent's own credentials, read from its state file."""
    path = fleet.joined.data_dir / "credentials.json"
    wait_for(path.exists, what="the agent's credentials file")
    assert path.stat().st_mode & 0o777 == 0o600
    return json.loads(path.read_text())


def instance_arn(fleet, cluster):
    return ecs_for(fleet).list_container_instances(cluster=cluster)["containerInstanceArns"][0]


def run_secret_task(fleet, cluster, sm, family):
    value = "v-" + helpers.unique("s")
    arn = sm.create_secret(Name=helpers.unique("agent/secret"), SecretString=value)["ARN"]
    ecs = ecs_for(fleet)
    ecs.register_task_definition(
        family=family, executionRoleArn=EXECUTION_ROLE,
        containerDefinitions=[{"name": "app", "image": IMAGE, "memory": 16, "essential": True,
                               "command": ["sh", "-c", 'echo "S=$MY_SECRET"; sleep 600'],
                               "secrets": [{"name": "MY_SECRET", "valueFrom": arn}]}])
    task = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]

    def running():
        t = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
        assert t["lastStatus"] not in ("STOPPED", "DEPROVISIONING"), t
        return t if t["lastStatus"] == "RUNNING" else None
    return wait_for(running, timeout=90, what="the task RUNNING"), value


@pytest.fixture(scope="module")
def sm(fleet):
    return boto3.client("secretsmanager", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
                        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY)


@pytest.fixture(scope="module")
def tasks(fleet, sm):
    """One task with a secret on each agent, RUNNING."""
    a, a_value = run_secret_task(fleet, fleet.cluster_a, sm, helpers.unique("ida-fam"))
    b, b_value = run_secret_task(fleet, fleet.cluster_b, sm, helpers.unique("idb-fam"))
    return {"a": (a, a_value), "b": (b, b_value)}


def test_token_create_and_list(fleet):
    t = fleet.token
    assert t["id"].startswith("fjt-") and t["token"].startswith(t["id"] + ".")
    assert t["cluster"] == fleet.cluster_a and t["state"] == "ACTIVE" and t["expiresAt"] > time.time()
    listed = json.loads(flotilla(fleet, "token", "list", "--output", "json").stdout)["tokens"]
    mine = [x for x in listed if x["id"] == t["id"]]
    assert len(mine) == 1 and "token" not in mine[0], listed
    # The secret is nowhere in the list nor the server's data in clear.
    secret = t["token"].split(".", 1)[1]
    assert secret not in json.dumps(listed)
    table = flotilla(fleet, "token", "list")
    assert table.returncode == 0 and t["id"] in table.stdout and "ACTIVE" in table.stdout
    for f in (fleet.tmp / "server").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    # A token for a cluster that does not exist is refused.
    bad = flotilla(fleet, "token", "create", "--cluster", helpers.unique("nope"))
    assert bad.returncode != 0 and "ClusterNotFoundException" in bad.stderr, bad.stderr


def test_a_joined_agent_runs_a_task_with_a_secret(fleet, agent_creds, tasks):
    assert agent_creds["access_key_id"].startswith("AGNT") and len(agent_creds["access_key_id"]) == 20
    assert agent_creds["container_instance_arn"] == instance_arn(fleet, fleet.cluster_a)
    assert agent_creds["cluster"] == fleet.cluster_a
    task, value = tasks["a"]
    assert task["containerInstanceArn"] == agent_creds["container_instance_arn"]
    ids = containers_of_task(task["taskArn"])
    assert ids, "no container of the task"
    wait_for(lambda: f"S={value}" in docker("logs", ids[0]), what="the secret in the container")
    # The join is counted; the agent's log never shows its secret or the token's.
    listed = json.loads(flotilla(fleet, "token", "list", "--output", "json").stdout)["tokens"]
    assert [x["joins"] for x in listed if x["id"] == fleet.token["id"]] == [1]
    log = fleet.joined.log()
    assert agent_creds["secret_access_key"] not in log
    assert fleet.token["token"].split(".", 1)[1] not in log
    assert "signing with" in log or "joined with the token" in log


@pytest.mark.parametrize("case", ["malformed", "wrong-secret", "expired", "revoked", "other-cluster"])
def test_bad_tokens_are_refused(fleet, case):
    good = fleet.token["token"]
    cluster = None
    if case == "malformed":
        token, want = "not-a-token", "UnrecognizedClientException"
    elif case == "wrong-secret":
        token, want = good.split(".")[0] + "." + "a" * 32, "UnrecognizedClientException"
    elif case == "expired":
        token, want = create_token(fleet, "--cluster", fleet.cluster_a, "--ttl", "1s")["token"], "ExpiredTokenException"
        time.sleep(1.5)
    elif case == "revoked":
        t = create_token(fleet, "--cluster", fleet.cluster_a)
        out = flotilla(fleet, "token", "revoke", t["id"])
        assert out.returncode == 0 and "REVOKED" in out.stdout, out
        token, want = t["token"], "UnrecognizedClientException"
    else:
        token, want, cluster = good, "AccessDeniedException", fleet.cluster_b
    before = ecs_for(fleet).list_container_instances(cluster=fleet.cluster_a)["containerInstanceArns"]
    r = join(fleet, token, {"cluster": cluster} if cluster else {})
    assert r.status in (400, 403) and r.json["__type"].endswith(want), r
    if case == "revoked":
        assert "revoked" in r.json["message"], r
    after = ecs_for(fleet).list_container_instances(cluster=fleet.cluster_a)["containerInstanceArns"]
    assert after == before


def test_an_agent_refused_a_token_exits_saying_why(fleet, tmp_path):
    out = subprocess.run(
        [str(helpers.FLOTILLA_BIN), "agent", "--server", fleet.endpoint, "--data-dir", str(tmp_path / "a"),
         "--join-token", fleet.token["id"] + "." + "b" * 32, "--no-task-endpoint"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    assert out.returncode != 0
    assert "UnrecognizedClientException" in out.stderr + out.stdout
    assert not (tmp_path / "a" / "credentials.json").exists()


def test_agent_credentials_cannot_call_the_user_api(fleet, agent_creds, aws_cli, tmp_path):
    ecs = client(fleet, "ecs", agent_creds)
    for call in (lambda: ecs.list_clusters(),
                 lambda: ecs.run_task(cluster=fleet.cluster_a, taskDefinition="x"),
                 lambda: ecs.describe_tasks(cluster=fleet.cluster_b, tasks=["x"]),
                 lambda: ecs.deregister_container_instance(cluster=fleet.cluster_b,
                                                          containerInstance=instance_arn(fleet, fleet.cluster_b))):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "AccessDeniedException", e.value.response
        assert "is not authorized to perform: ecs:" in e.value.response["Error"]["Message"]
        assert agent_creds["container_instance_arn"] in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        client(fleet, "secretsmanager", agent_creds).list_secrets()
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        client(fleet, "ssm", agent_creds).describe_parameters()
    assert code(e) == "AccessDeniedException"
    # The operator's own verbs too (FlotillaAdmin.*).
    r = helpers.raw_call(fleet.endpoint, target=ADMIN + "ListJoinTokens",
                         access_key=agent_creds["access_key_id"], secret_key=agent_creds["secret_access_key"])
    assert r.status == 403 and r.json["__type"].endswith("AccessDeniedException"), r
    # The aws CLI, with the agent's keys in its environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=agent_creds["access_key_id"], AWS_SECRET_ACCESS_KEY=agent_creds["secret_access_key"],
               AWS_DEFAULT_REGION=helpers.REGION, AWS_CONFIG_FILE=str(tmp_path / "c"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "cr"), HOME=str(tmp_path))
    out = subprocess.run([aws_cli, "--endpoint-url", fleet.endpoint, "ecs", "list-clusters"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0 and "AccessDeniedException" in out.stderr, out


def test_agent_credentials_speak_only_for_their_own_instance(fleet, agent_creds, tasks):
    ecs = client(fleet, "ecs", agent_creds)
    own, other = agent_creds["container_instance_arn"], instance_arn(fleet, fleet.cluster_b)
    # Its own instance's calls pass.
    assert ecs.discover_poll_endpoint(cluster=fleet.cluster_a, containerInstance=own)["endpoint"]
    # Registering another instance (a new one, or the other agent's) is refused.
    for kwargs in ({"cluster": fleet.cluster_a},
                   {"cluster": fleet.cluster_b, "containerInstanceArn": other}):
        with pytest.raises(ClientError) as e:
            ecs.register_container_instance(totalResources=[], **kwargs)
        assert code(e) == "AccessDeniedException", kwargs
    with pytest.raises(ClientError) as e:
        ecs.discover_poll_endpoint(cluster=fleet.cluster_b, containerInstance=other)
    assert code(e) == "AccessDeniedException"
    # The other instance's session (where its tasks and their secrets are) is refused.
    r = session_upgrade(fleet, other, agent_creds)
    assert r.status == 403 and r.json["__type"].endswith("AccessDeniedException"), r
    # Its own passes authorization (and fails only for want of a WebSocket handshake).
    r = session_upgrade(fleet, own, agent_creds)
    assert r.status != 403, r
    # Another instance's task's protection (the task API the agent may use for its own tasks).
    task_b, _ = tasks["b"]
    with pytest.raises(ClientError) as e:
        ecs.get_task_protection(cluster=fleet.cluster_b, tasks=[task_b["taskArn"]])
    assert code(e) == "AccessDeniedException"
    task_a, _ = tasks["a"]
    # Its own task's is answered (a task of no service has no protection: ECS's TASK_NOT_VALID).
    got = ecs.get_task_protection(cluster=fleet.cluster_a, tasks=[task_a["taskArn"]])
    assert [f["arn"] for f in got["failures"]] == [task_a["taskArn"]], got
    # The secret of the other instance's task never reached this agent's log or state.
    _, value_b = tasks["b"]
    assert value_b not in fleet.joined.log()
    # An API-key agent keeps working as before: its task runs with its secret.
    assert tasks["b"][0]["lastStatus"] == "RUNNING"


def test_deregistering_the_instance_revokes_its_credentials(fleet, agent_creds, tasks):
    ecs = ecs_for(fleet)
    own = agent_creds["container_instance_arn"]
    wait_for(lambda: "session established" in fleet.joined.log(), what="the joined agent's session")
    ecs.deregister_container_instance(cluster=fleet.cluster_a, containerInstance=own, force=True)
    # Its open session is closed at once, and it cannot open another.
    server_log = fleet.tmp / "server.log"
    wait_for(lambda: "credentials were revoked" in server_log.read_text(errors="replace"),
             timeout=20, what="the server to close the revoked session")
    r = session_upgrade(fleet, own, agent_creds)
    assert r.status == 403 and r.json["__type"].endswith("UnrecognizedClientException"), r
    with pytest.raises(ClientError) as e:
        client(fleet, "ecs", agent_creds).discover_poll_endpoint(cluster=fleet.cluster_a, containerInstance=own)
    assert code(e) == "UnrecognizedClientException"
    # A restarted agent says why it cannot go on.
    fleet.joined.kill()
    fleet.joined.start()
    wait_for(lambda: fleet.joined.proc.poll() is not None, timeout=60, what="the agent to exit")
    assert "revokes them" in fleet.joined.log()
