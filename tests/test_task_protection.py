"""Task scale-in protection (issue 16) end to end: one `flotilla server` and one agent on the real
Docker engine, boto3.

A service of 3 tasks: one is protected with UpdateTaskProtection, another protects itself from
inside its container through the agent's endpoint (`PUT $ECS_AGENT_URI/task-protection/v1/state`,
busybox's nc), and a container reads its protection back with busybox's wget (GET). Scaled in to 1,
the unprotected task stops while both protected ones keep running: the service stays above its
desired count, as ECS does, until the protection is removed; then it converges to 1. On the
embedded store and on etcd."""

import json
import time

import pytest

import helpers
from fleet import IMAGE, Fleet, docker, ecs_for, instances_ready, wait_for
from test_task_role import task_container_id

ROLE = f"arn:aws:iam::{helpers.ACCOUNT}:role/worker-role"


@pytest.fixture(scope="module", params=["embedded", "etcd"])
def fleet(request, tmp_path_factory, test_image):
    tmp = tmp_path_factory.mktemp(f"protection-{request.param}")
    args = []
    etcd = f = None
    try:
        if request.param == "etcd":
            etcd = helpers.SoloEtcd(tmp / "etcd").__enter__()
            args += ["--store", etcd.store("protection"), "--secrets-key-file", str(helpers.secrets_key_file(tmp))]
        f = Fleet(tmp / "fleet", server_args=args)
        f.cluster = helpers.unique("prot")
        ecs = ecs_for(f)
        ecs.create_cluster(clusterName=f.cluster)
        f.add_agent(f.cluster)
        instances_ready(ecs, f.cluster, 1)
        yield f
    finally:
        if f:
            f.close()
        if etcd:
            etcd.__exit__(None, None, None)


def worker(ecs, family, role=True):
    td = {"family": family, "containerDefinitions": [{
        "name": "app", "image": IMAGE, "memory": 16, "essential": True, "stopTimeout": 2,
        "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}
    if role:
        td["taskRoleArn"] = ROLE
    return ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]


def running(ecs, cluster, service):
    arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    return {t["taskArn"]: t for t in tasks if t["lastStatus"] == "RUNNING"}


def in_task(cluster, task_arn, script):
    """Runs `script` with sh inside the task's container (its network and environment)."""
    cid = task_container_id(cluster, task_arn)
    assert cid, f"no container for {task_arn}"
    return docker("exec", cid, "sh", "-c", script)


def endpoint_get(cluster, task_arn):
    return json.loads(in_task(cluster, task_arn, 'wget -qO- "$ECS_AGENT_URI/task-protection/v1/state"'))


def endpoint_put(cluster, task_arn, body):
    """A PUT with busybox's nc (its wget only GETs and POSTs): the status line and the JSON."""
    data = json.dumps(body)
    # nc stops reading the answer when its input ends: the input stays open a moment longer.
    script = ('p=${ECS_AGENT_URI#http://169.254.170.2}; '
              f"(printf 'PUT %s/task-protection/v1/state HTTP/1.0\\r\\nHost: 169.254.170.2\\r\\n"
              f"Content-Type: application/json\\r\\nContent-Length: {len(data)}\\r\\n\\r\\n%s' "
              f"\"$p\" '{data}'; sleep 2) | nc 169.254.170.2 80 2>&1")
    out = in_task(cluster, task_arn, script).replace("\r\n", "\n")
    assert "\n\n" in out, f"no answer: {out!r}"
    status = out.split("\n", 1)[0]
    return status, json.loads(out.split("\n\n", 1)[1])


def test_a_protected_task_survives_scale_in_until_its_protection_is_removed(fleet):
    ecs = ecs_for(fleet)
    cluster = fleet.cluster
    td = worker(ecs, helpers.unique("prot-worker"))
    name = helpers.unique("svc")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=3,
                       deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100})
    tasks = wait_for(lambda: (lambda r: r if len(r) == 3 else None)(running(ecs, cluster, name)),
                     timeout=90, what="3 RUNNING tasks")
    a, b, c = sorted(tasks)

    # Unprotected: the endpoint says so, as the ECS agent answers (no expiration date).
    assert endpoint_get(cluster, a) == {
        "protection": {"ExpirationDate": None, "ProtectionEnabled": False, "TaskArn": a}}

    # A is protected through the API, for the default 2 hours.
    before = time.time()
    out = ecs.update_task_protection(cluster=cluster, tasks=[a], protectionEnabled=True)
    assert out["failures"] == []
    [p] = out["protectedTasks"]
    assert p["taskArn"] == a and p["protectionEnabled"] is True
    assert before + 7200 - 5 <= p["expirationDate"].timestamp() <= time.time() + 7200 + 5
    got = endpoint_get(cluster, a)["protection"]
    assert got["ProtectionEnabled"] is True and got["TaskArn"] == a
    assert got["ExpirationDate"].endswith("Z")

    # B protects itself from inside, for 30 minutes.
    status, body = endpoint_put(cluster, b, {"ProtectionEnabled": True, "ExpiresInMinutes": 30})
    assert status.endswith("200 OK"), (status, body)
    assert body["protection"]["ProtectionEnabled"] is True and body["protection"]["TaskArn"] == b
    status, body = endpoint_put(cluster, b, {"ExpiresInMinutes": 30})
    assert status.split()[1] == "400"
    assert body == {"error": {"Arn": b, "Code": "InvalidParameterException",
                              "Message": "Invalid request: does not contain 'ProtectionEnabled' field"}}
    status, body = endpoint_put(cluster, b, {"ProtectionEnabled": True, "ExpiresInMinutes": 0})
    assert status.split()[1] == "400" and body["error"]["Code"] == "InvalidParameterException"
    got = ecs.get_task_protection(cluster=cluster, tasks=[a, b, c])
    assert got["failures"] == []
    by_arn = {t["taskArn"]: t for t in got["protectedTasks"]}
    assert by_arn[a]["protectionEnabled"] and by_arn[b]["protectionEnabled"]
    assert 1700 <= by_arn[b]["expirationDate"].timestamp() - time.time() <= 1805
    assert by_arn[c] == {"taskArn": c, "protectionEnabled": False}

    # Scale in to 1: only the unprotected task stops; the service stays at 2 until protection goes.
    ecs.update_service(cluster=cluster, service=name, desiredCount=1)
    wait_for(lambda: ecs.describe_tasks(cluster=cluster, tasks=[c])["tasks"][0]["lastStatus"] == "STOPPED",
             timeout=60, what="the unprotected task to stop")
    deadline = time.time() + 8  # more than one resync of the service loop (5 s)
    while time.time() < deadline:
        live = running(ecs, cluster, name)
        assert set(live) == {a, b}, f"a protected task was stopped: {sorted(live)}"
        time.sleep(1)
    s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert s["desiredCount"] == 1 and s["runningCount"] == 2

    # Protection removed: the service converges to 1.
    out = ecs.update_task_protection(cluster=cluster, tasks=[a, b], protectionEnabled=False)
    assert sorted(t["taskArn"] for t in out["protectedTasks"]) == sorted([a, b])
    assert all(t["protectionEnabled"] is False and "expirationDate" not in t for t in out["protectedTasks"])

    def converged():
        s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
        live = running(ecs, cluster, name)
        return s if s["runningCount"] == 1 and len(live) == 1 and set(live) <= {a, b} else None
    wait_for(converged, timeout=60, what="the service to converge to 1")


def test_protection_is_refused_for_what_ecs_refuses(fleet):
    ecs = ecs_for(fleet)
    cluster = fleet.cluster
    arn = ecs.run_task(cluster=cluster, taskDefinition=worker(ecs, helpers.unique("solo"), role=False))["tasks"][0]["taskArn"]
    unknown = f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:task/{cluster}/0123456789abcdef0123456789abcdef"
    out = ecs.update_task_protection(cluster=cluster, tasks=[arn, "0123456789abcdef0123456789abcdef"],
                                     protectionEnabled=True)
    assert out["protectedTasks"] == []
    assert out["failures"] == [{"arn": arn, "reason": "TASK_NOT_VALID"},
                               {"arn": unknown, "reason": "MISSING"}]
    assert ecs.get_task_protection(cluster=cluster, tasks=[arn])["failures"] == [
        {"arn": arn, "reason": "TASK_NOT_VALID"}]
    for minutes in (0, 2881):
        with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
            ecs.update_task_protection(cluster=cluster, tasks=[arn], protectionEnabled=True,
                                       expiresInMinutes=minutes)
        assert "expiresInMinutes" in e.value.response["Error"]["Message"]
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.get_task_protection(cluster=helpers.unique("nope"), tasks=[arn])
    # A task without a role: the endpoint refuses as the ECS agent does (it calls ECS with the
    # task's role).
    wait_for(lambda: ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
             timeout=60, what="the standalone task to run")
    out = in_task(cluster, arn, 'wget -S -qO- "$ECS_AGENT_URI/task-protection/v1/state" 2>&1; true')
    assert "403" in out
    ecs.stop_task(cluster=cluster, task=arn)
