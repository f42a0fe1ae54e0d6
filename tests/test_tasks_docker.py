"""Tasks on real Docker through `flotilla server` and `flotilla agent`: the aws CLI and boto3
run tasks, the agent really starts containers, and DescribeTasks tells the truth about them.

Every test makes its own cluster (a unique name) and its own fleet; containers are found by the
cluster label and removed at the end."""

import json
import signal
import subprocess
import time
import urllib.request


import helpers
from conftest import make_client
from fleet import IMAGE, cluster_containers, docker, ecs_for, inspect, instances_ready, wait_for


def web_task_definition(ecs, family, **extra):
    return ecs.register_task_definition(
        family=family,
        containerDefinitions=[
            {
                "name": "web",
                "image": IMAGE,
                "memory": 32,
                "essential": True,
                "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                "portMappings": [{"containerPort": 8080, "hostPort": 0}],
                "stopTimeout": 5,
            },
            {
                "name": "sidecar",
                "image": IMAGE,
                "memory": 16,
                "essential": False,
                "command": ["sh", "-c", "trap 'exit 3' TERM; while true; do sleep 1; done"],
                "stopTimeout": 5,
            },
        ],
        **extra,
    )["taskDefinition"]


def http_get(port):
    """The body at http://127.0.0.1:PORT/, or None while nothing answers yet."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
    except OSError:
        return None


def describe(ecs, cluster, arn):
    return ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]


def wait_status(ecs, cluster, arn, status, timeout=60):
    return wait_for(
        lambda: (lambda t: t if t["lastStatus"] == status else None)(describe(ecs, cluster, arn)),
        timeout=timeout,
        what=f"task {arn} {status}",
    )


def test_two_container_task_runs_answers_http_and_stops_with_the_cli(fleet, cli_env, aws_cli):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("web")
    web_task_definition(ecs, family)
    env = dict(cli_env, AWS_ENDPOINT_URL_ECS=fleet.endpoint)

    def aws(*args, check=True):
        out = subprocess.run([aws_cli, "ecs", *args], capture_output=True, text=True, env=env, timeout=700)
        if check:
            assert out.returncode == 0, out.stderr
        return out

    run = json.loads(aws("run-task", "--cluster", cluster, "--task-definition", family).stdout)
    assert run["failures"] == []
    task_arn = run["tasks"][0]["taskArn"]
    assert run["tasks"][0]["desiredStatus"] == "RUNNING"
    aws("wait", "tasks-running", "--cluster", cluster, "--tasks", task_arn)

    task = describe(ecs, cluster, task_arn)
    assert task["lastStatus"] == "RUNNING" and task["launchType"] == "EC2"
    web = next(c for c in task["containers"] if c["name"] == "web")
    binding = web["networkBindings"][0]
    assert binding["containerPort"] == 8080 and binding["hostPort"] > 0
    body = wait_for(lambda: http_get(binding["hostPort"]), timeout=10, what="the web container to answer")
    assert b"hello from flotilla" in body
    assert web["runtimeId"] and inspect(web["runtimeId"])["State"]["Running"]
    assert task["startedAt"] and task["pullStartedAt"] and task["pullStoppedAt"]

    started = time.monotonic()
    aws("stop-task", "--cluster", cluster, "--task", task_arn, "--reason", "done here")
    aws("wait", "tasks-stopped", "--cluster", cluster, "--tasks", task_arn)
    task = describe(ecs, cluster, task_arn)
    assert task["lastStatus"] == "STOPPED" and task["desiredStatus"] == "STOPPED"
    assert task["stopCode"] == "UserInitiated" and task["stoppedReason"] == "done here"
    assert task["stoppedAt"] and task["executionStoppedAt"] and task["stoppingAt"]
    codes = {c["name"]: c.get("exitCode") for c in task["containers"]}
    assert codes["sidecar"] == 3, codes  # it handled SIGTERM itself
    assert codes["web"] is not None
    # The stop took SIGTERM + at most stopTimeout (5 s), not the default 30 s (waiter polls every 6 s).
    assert time.monotonic() - started < 25


def test_essential_container_exit_stops_the_task(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("exit")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[
            {"name": "main", "image": IMAGE, "memory": 16, "essential": True, "command": ["sh", "-c", "sleep 1; exit 7"]},
            {"name": "helper", "image": IMAGE, "memory": 16, "essential": False, "command": ["sleep", "600"], "stopTimeout": 2},
        ],
    )
    arn = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]["taskArn"]
    task = wait_status(ecs, cluster, arn, "STOPPED")
    assert task["stopCode"] == "EssentialContainerExited"
    assert "Essential container in task exited" in task["stoppedReason"]
    codes = {c["name"]: c.get("exitCode") for c in task["containers"]}
    assert codes["main"] == 7


def test_failing_image_pull_is_task_failed_to_start(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("nopull")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "main", "image": "127.0.0.1:1/flotilla/does-not-exist:latest", "memory": 16}],
    )
    arn = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]["taskArn"]
    task = wait_status(ecs, cluster, arn, "STOPPED")
    assert task["stopCode"] == "TaskFailedToStart"
    reason = task["containers"][0]["reason"]
    assert reason.startswith("CannotPullContainerError") and "does-not-exist" in reason, reason


def test_depends_on_orders_containers_and_waits_for_healthy(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("deps")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[
            {"name": "init", "image": IMAGE, "memory": 16, "essential": False, "command": ["sh", "-c", "sleep 2; exit 0"]},
            {
                "name": "db", "image": IMAGE, "memory": 16, "essential": True,
                "command": ["sh", "-c", "sleep 3; touch /tmp/ready; sleep 600"],
                "healthCheck": {"command": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 5, "retries": 3, "timeout": 2},
                "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
                "stopTimeout": 2,
            },
            {
                "name": "app", "image": IMAGE, "memory": 16, "essential": True, "command": ["sleep", "600"],
                "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}],
                "stopTimeout": 2,
            },
        ],
    )
    arn = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]["taskArn"]
    task = wait_status(ecs, cluster, arn, "RUNNING", timeout=90)
    by = {c["name"]: c for c in task["containers"]}
    started = {n: inspect(c["runtimeId"])["State"]["StartedAt"] for n, c in by.items()}
    init_finished = inspect(by["init"]["runtimeId"])["State"]["FinishedAt"]
    assert by["init"]["exitCode"] == 0
    assert started["db"] >= init_finished, (started, init_finished)  # ISO timestamps of one clock sort as strings
    assert by["db"]["healthStatus"] == "HEALTHY"
    assert started["app"] > started["db"]
    ecs.stop_task(cluster=cluster, task=arn)
    wait_status(ecs, cluster, arn, "STOPPED")


def test_resource_exhaustion_is_reported_in_failures(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    (inst,) = instances_ready(ecs, cluster, 1)
    memory = next(r["integerValue"] for r in inst["registeredResources"] if r["name"] == "MEMORY")
    family = helpers.unique("huge")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "main", "image": IMAGE, "memory": memory + 1, "command": ["sleep", "1"]}],
    )
    out = ecs.run_task(cluster=cluster, taskDefinition=family)
    assert out["tasks"] == []
    assert out["failures"] == [{"arn": inst["containerInstanceArn"], "reason": "RESOURCE:MEMORY"}]


def test_two_agents_place_by_strategy_and_constraint(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster, az="us-east-1a", attributes={"tier": "gold"})
    fleet.add_agent(cluster, az="us-east-1b", attributes={"tier": "silver"})
    insts = instances_ready(ecs, cluster, 2)
    by_az = {next(a["value"] for a in i["attributes"] if a["name"] == "ecs.availability-zone"): i["containerInstanceArn"] for i in insts}
    family = helpers.unique("place")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "main", "image": IMAGE, "memory": 8, "command": ["sleep", "600"], "stopTimeout": 1}],
    )

    def run(**kw):
        out = ecs.run_task(cluster=cluster, taskDefinition=family, **kw)
        assert out["failures"] == [], out["failures"]
        return [t["containerInstanceArn"] for t in out["tasks"]]

    # spread over availability zones: 4 tasks, 2 per zone
    placed = run(count=4, placementStrategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}], group="spread")
    assert sorted(placed.count(a) for a in by_az.values()) == [2, 2]
    # memberOf: only the gold instance
    placed = run(count=3, placementConstraints=[{"type": "memberOf", "expression": "attribute:tier == gold"}])
    assert set(placed) == {by_az["us-east-1a"]}
    # binpack on memory: the instance with the least remaining memory (us-east-1a now runs 5 tasks)
    placed = run(count=2, placementStrategy=[{"type": "binpack", "field": "memory"}])
    assert set(placed) == {by_az["us-east-1a"]}
    # distinctInstance: two tasks of one group on two instances; a third does not fit
    placed = run(count=2, group="distinct", placementConstraints=[{"type": "distinctInstance"}])
    assert sorted(placed) == sorted(by_az.values())
    # and the containers really run where DescribeTasks says
    tasks = ecs.list_tasks(cluster=cluster)["taskArns"]
    described = ecs.describe_tasks(cluster=cluster, tasks=tasks)["tasks"]
    for t in described:
        wait_status(ecs, cluster, t["taskArn"], "RUNNING")
    per_instance = {}
    for t in ecs.describe_tasks(cluster=cluster, tasks=tasks)["tasks"]:
        cid = t["containers"][0]["runtimeId"]
        owner = inspect(cid)["Config"]["Labels"]["com.flotilla.container-instance"]
        assert t["containerInstanceArn"].endswith("/" + owner)
        per_instance[owner] = per_instance.get(owner, 0) + 1
    assert sum(per_instance.values()) == 11


def test_agent_kill_9_loses_nothing(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    agent = fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("survive")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "main", "image": IMAGE, "memory": 8, "command": ["sleep", "600"], "stopTimeout": 1}],
    )
    arns = [t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition=family, count=5)["tasks"]]
    assert len(arns) == 5
    for a in arns:
        wait_status(ecs, cluster, a, "RUNNING")
    before = {a: describe(ecs, cluster, a)["containers"][0]["runtimeId"] for a in arns}
    started_at = {cid: inspect(cid)["State"]["StartedAt"] for cid in before.values()}

    agent.kill(signal.SIGKILL)
    victim = arns[0]
    docker("kill", "--signal", "KILL", before[victim])  # a task dies while its agent is down
    time.sleep(1)
    agent.start()
    t0 = time.monotonic()
    wait_for(lambda: describe(ecs, cluster, victim)["lastStatus"] == "STOPPED", timeout=5, interval=0.1,
             what="the task that died while the agent was down to be STOPPED")
    assert time.monotonic() - t0 <= 5
    dead = describe(ecs, cluster, victim)
    assert dead["containers"][0]["exitCode"] == 137
    for a in arns[1:]:
        t = describe(ecs, cluster, a)
        cid = t["containers"][0]["runtimeId"]
        assert cid == before[a] and t["lastStatus"] == "RUNNING"
        state = inspect(cid)["State"]
        assert state["Running"] and state["StartedAt"] == started_at[cid], "a healthy container was restarted"
    assert len(cluster_containers(cluster)) == 5  # nothing removed


def test_flotilla_dev_runs_its_own_agent(tmp_path, test_image):
    """`flotilla dev` is the whole product on one machine: it creates its cluster and registers
    an in-process agent that runs tasks on the local Docker engine."""
    cluster = helpers.unique("dev")
    server = helpers.Server(tmp_path / "data", tmp_path / "dev.log", agent=True, extra_args=["--cluster", cluster])
    try:
        ecs = make_client(server.endpoint, retries=3)
        (inst,) = instances_ready(ecs, cluster, 1)
        assert inst["versionInfo"]["dockerVersion"]
        family = helpers.unique("hello")
        ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": "main", "image": IMAGE, "memory": 8, "command": ["sh", "-c", "echo hi; sleep 600"], "stopTimeout": 1}],
        )
        arn = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]["taskArn"]
        task = wait_status(ecs, cluster, arn, "RUNNING")
        assert task["containerInstanceArn"] == inst["containerInstanceArn"]
        assert "hi" in docker("logs", task["containers"][0]["runtimeId"])
        ecs.stop_task(cluster=cluster, task=arn)
        wait_status(ecs, cluster, arn, "STOPPED")
    finally:
        server.kill(signal.SIGTERM)
        server.remove_warm_containers()
        ids = cluster_containers(cluster)
        if ids:
            docker("rm", "-f", "-v", *ids, check=False)
