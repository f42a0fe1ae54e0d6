"""ECS services on real Docker through `flotilla server` and `flotilla agent`: the aws CLI
creates a service and its waiter sees it stable, a killed container is replaced, and a rolling
update keeps the deployment configuration's bounds while a probe watches.

Every test makes its own cluster and fleet; containers are removed at the end."""

import json
import subprocess
import threading
import time

import pytest

import helpers
from conftest import make_client
from fleet import IMAGE, docker, ecs_for, instances_ready, wait_for


def sleeper(ecs, family, marker="v1"):
    """A one-container task that runs until told to stop, and stops at once on SIGTERM."""
    return ecs.register_task_definition(
        family=family,
        containerDefinitions=[{
            "name": "app",
            "image": IMAGE,
            "memory": 16,
            "essential": True,
            "environment": [{"name": "MARKER", "value": marker}],
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
            "stopTimeout": 2,
        }],
    )["taskDefinition"]


def service(ecs, cluster, name):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def tasks_of(ecs, cluster, name, desired="RUNNING"):
    arns = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus=desired)["taskArns"]
    if not arns:
        return []
    out = []
    for i in range(0, len(arns), 100):
        out += ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100])["tasks"]
    return out


def steady(ecs, cluster, name, desired):
    s = service(ecs, cluster, name)
    ok = (len(s["deployments"]) == 1 and s["runningCount"] == desired == s["desiredCount"]
          and s["deployments"][0]["rolloutState"] == "COMPLETED")
    return s if ok else None


def test_service_with_the_cli_is_stable_and_replaces_a_killed_task(fleet, cli_env, aws_cli):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster, az="us-east-1a")
    fleet.add_agent(cluster, az="us-east-1b")
    instances_ready(ecs, cluster, 2)
    family = helpers.unique("svc")
    sleeper(ecs, family)
    env = dict(cli_env, AWS_ENDPOINT_URL_ECS=fleet.endpoint)

    def aws(*args):
        out = subprocess.run([aws_cli, "ecs", *args], capture_output=True, text=True, env=env, timeout=700)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else None

    name = helpers.unique("web")
    created = aws("create-service", "--cluster", cluster, "--service-name", name,
                  "--task-definition", family, "--desired-count", "5")["service"]
    assert created["status"] == "ACTIVE" and created["desiredCount"] == 5
    assert created["serviceArn"].endswith(f":service/{cluster}/{name}")
    dep = created["deployments"][0]
    assert dep["status"] == "PRIMARY" and dep["rolloutState"] == "IN_PROGRESS"
    assert dep["id"].startswith("ecs-svc/") and len(dep["id"]) == len("ecs-svc/") + 19
    assert created["deploymentConfiguration"]["maximumPercent"] == 200
    assert created["deploymentConfiguration"]["minimumHealthyPercent"] == 100

    aws("wait", "services-stable", "--cluster", cluster, "--services", name)
    s = service(ecs, cluster, name)
    assert s["runningCount"] == 5 and s["pendingCount"] == 0
    assert s["deployments"][0]["rolloutState"] == "COMPLETED"
    messages = [e["message"] for e in s["events"]]
    assert any(m == f"(service {name}) has reached a steady state." for m in messages), messages
    assert any(m.startswith(f"(service {name}) has started 5 tasks: (task ") for m in messages), messages
    assert s["events"] == sorted(s["events"], key=lambda e: e["createdAt"], reverse=True)

    tasks = tasks_of(ecs, cluster, name)
    assert len(tasks) == 5
    assert {t["group"] for t in tasks} == {f"service:{name}"}
    assert {t["startedBy"] for t in tasks} == {dep["id"]}
    # Spread over AZs first: 3 and 2.
    by_az = sorted(sum(1 for t in tasks if t["availabilityZone"] == az) for az in ("us-east-1a", "us-east-1b"))
    assert by_az == [2, 3], by_az
    c = ecs.describe_clusters(clusters=[cluster])["clusters"][0]
    assert c["activeServicesCount"] == 1

    victim = tasks[0]
    docker("kill", victim["containers"][0]["runtimeId"])

    def replaced():
        now = tasks_of(ecs, cluster, name)
        running = [t for t in now if t["lastStatus"] == "RUNNING"]
        if len(running) == 5 and victim["taskArn"] not in {t["taskArn"] for t in running}:
            return running
        return None

    wait_for(replaced, timeout=60, what="a replacement of the killed task")
    stopped = ecs.describe_tasks(cluster=cluster, tasks=[victim["taskArn"]])["tasks"][0]
    assert stopped["lastStatus"] == "STOPPED"
    assert stopped["stopCode"] == "EssentialContainerExited", stopped
    s = wait_for(lambda: steady(ecs, cluster, name, 5), timeout=30, what="steady again")
    messages = [e["message"] for e in s["events"]]
    assert any(m.startswith(f"(service {name}) has started 1 tasks: (task ") for m in messages), messages
    victim_id = victim["taskArn"].rsplit("/", 1)[1]
    why = [m for m in messages if m.startswith(f"(service {name}) (task {victim_id}) stopped unexpectedly: ")]
    assert len(why) == 1, messages
    assert stopped["stoppedReason"] in why[0]

    # Deleting needs desired 0 (or force); then DRAINING, then INACTIVE once the tasks stopped.
    err = subprocess.run([aws_cli, "ecs", "delete-service", "--cluster", cluster, "--service", name],
                         capture_output=True, text=True, env=env, timeout=120)
    assert err.returncode == 255 and "scaled above 0" in err.stderr, err.stderr
    deleted = aws("delete-service", "--cluster", cluster, "--service", name, "--force")["service"]
    assert deleted["status"] == "DRAINING"
    wait_for(lambda: service(ecs, cluster, name)["status"] == "INACTIVE", timeout=60, what="INACTIVE")
    wait_for(lambda: not tasks_of(ecs, cluster, name), timeout=60, what="no task left")


class Probe(threading.Thread):
    """Samples the service's tasks during a deployment: for every consistent sample (the set of
    tasks desired RUNNING is the same before and after), how many have not stopped (PENDING or
    RUNNING, including those told to stop) and how many are healthy (RUNNING, desired RUNNING)."""

    def __init__(self, ecs, cluster, name):
        super().__init__(daemon=True)
        self.ecs, self.cluster, self.name = ecs, cluster, name
        self.samples = []
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                before = set(self.ecs.list_tasks(cluster=self.cluster, serviceName=self.name)["taskArns"])
                stopping = set(self.ecs.list_tasks(cluster=self.cluster, serviceName=self.name,
                                                   desiredStatus="STOPPED")["taskArns"])
                arns = sorted(before | stopping)
                tasks = []
                for i in range(0, len(arns), 100):
                    tasks += self.ecs.describe_tasks(cluster=self.cluster, tasks=arns[i:i + 100])["tasks"]
                after = set(self.ecs.list_tasks(cluster=self.cluster, serviceName=self.name)["taskArns"])
                if before == after:
                    live = [t for t in tasks if t["lastStatus"] in ("PENDING", "RUNNING", "ACTIVATING", "PROVISIONING")
                            or (t["lastStatus"] != "STOPPED")]
                    healthy = [t for t in tasks if t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"]
                    self.samples.append((len(live), len(healthy)))
                time.sleep(0.2)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


@pytest.mark.parametrize("minimum,maximum", [(100, 200), (50, 100)])
def test_rolling_update_keeps_minimum_healthy_and_maximum_percent(fleet, minimum, maximum):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster, az="us-east-1a")
    fleet.add_agent(cluster, az="us-east-1b")
    instances_ready(ecs, cluster, 2)
    family = helpers.unique("roll")
    v1 = sleeper(ecs, family, "v1")
    v2 = sleeper(ecs, family, "v2")
    name = helpers.unique("web")
    ecs.create_service(
        cluster=cluster, serviceName=name, taskDefinition=v1["taskDefinitionArn"], desiredCount=6,
        deploymentConfiguration={"minimumHealthyPercent": minimum, "maximumPercent": maximum},
    )
    wait_for(lambda: steady(ecs, cluster, name, 6), timeout=90, what="6 tasks steady")

    probe = Probe(ecs, cluster, name)
    probe.start()
    time.sleep(1)
    started = time.monotonic()
    updated = ecs.update_service(cluster=cluster, service=name, taskDefinition=v2["taskDefinitionArn"])["service"]
    assert [d["status"] for d in updated["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert updated["deployments"][0]["taskDefinition"] == v2["taskDefinitionArn"]
    assert updated["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    s = wait_for(lambda: steady(ecs, cluster, name, 6), timeout=120, interval=0.5, what="the new deployment steady")
    elapsed = time.monotonic() - started
    time.sleep(1)
    probe.halt.set()
    probe.join(30)
    assert probe.error is None, probe.error
    assert s["deployments"][0]["taskDefinition"] == v2["taskDefinitionArn"]
    assert s["taskDefinition"] == v2["taskDefinitionArn"]
    assert len(probe.samples) >= 5, probe.samples
    most = max(n for n, _ in probe.samples)
    fewest = min(h for _, h in probe.samples)
    print(f"rolling update of 6 tasks (min {minimum}%, max {maximum}%): {elapsed:.1f}s, {len(probe.samples)} samples, "
          f"at most {most} tasks alive, at least {fewest} healthy")
    assert most <= 6 * maximum // 100, probe.samples  # floor(desired x maximumPercent / 100)
    assert fewest >= -(-6 * minimum // 100), probe.samples  # ceil(desired x minimumHealthyPercent / 100)
    tasks = tasks_of(ecs, cluster, name)
    assert len(tasks) == 6
    assert {t["taskDefinitionArn"] for t in tasks} == {v2["taskDefinitionArn"]}
    messages = [e["message"] for e in s["events"]]
    dep_id = s["deployments"][0]["id"]
    assert f"(service {name}) (deployment {dep_id}) deployment completed." in messages, messages
    assert any(m.startswith(f"(service {name}) has stopped ") for m in messages), messages


def test_service_errors(fleet):
    cluster = helpers.unique("c")
    ecs = make_client(fleet.endpoint, retries=1)
    ecs.create_cluster(clusterName=cluster)
    family = helpers.unique("e")
    sleeper(ecs, family)
    name = helpers.unique("s")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=0,
                       clientToken="tok-1")
    again = ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=0,
                               clientToken="tok-1")["service"]
    assert again["serviceName"] == name
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="not idempotent"):
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=0)
    # An EC2 task definition cannot run on Fargate.
    with pytest.raises(ecs.exceptions.ClientException, match="does not support launch_type FARGATE"):
        ecs.create_service(cluster=cluster, serviceName=helpers.unique("f"), taskDefinition=family,
                           desiredCount=1, launchType="FARGATE")
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.update_service(cluster=cluster, service="ghost", desiredCount=1)
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.list_tasks(cluster=cluster, serviceName="ghost")
    assert ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"] == []
    with pytest.raises(ecs.exceptions.ClusterContainsServicesException):
        ecs.delete_cluster(cluster=cluster)
    arn = again["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "web"}])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "web"}]
    tagged = ecs.describe_services(cluster=cluster, services=[arn], include=["TAGS"])["services"][0]
    assert tagged["tags"] == [{"key": "team", "value": "web"}]
    assert "tags" not in ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    ecs.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == []
    missing = ecs.describe_services(cluster=cluster, services=["ghost"])
    assert missing["services"] == []
    assert missing["failures"][0]["reason"] == "MISSING"
    d = ecs.delete_service(cluster=cluster, service=name)["service"]
    assert d["status"] in ("DRAINING", "INACTIVE")
    with pytest.raises(ecs.exceptions.ServiceNotActiveException):
        ecs.update_service(cluster=cluster, service=name, desiredCount=1)
    wait_for(lambda: service(ecs, cluster, name)["status"] == "INACTIVE", timeout=30, what="INACTIVE")
    ecs.delete_cluster(cluster=cluster)


def test_circuit_breaker_fails_a_broken_deployment_and_rolls_back(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("cb")
    good = sleeper(ecs, family)
    bad = ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "app", "image": "127.0.0.1:1/flotilla/does-not-exist:latest",
                               "memory": 16, "essential": True}],
    )["taskDefinition"]
    name = helpers.unique("web")
    ecs.create_service(
        cluster=cluster, serviceName=name, taskDefinition=good["taskDefinitionArn"], desiredCount=2,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    first = wait_for(lambda: steady(ecs, cluster, name, 2), timeout=60, what="steady on the good revision")
    first_id = first["deployments"][0]["id"]
    ecs.update_service(cluster=cluster, service=name, taskDefinition=bad["taskDefinitionArn"])

    def rolled_back():
        s = service(ecs, cluster, name)
        p = s["deployments"][0]
        failed = [d for d in s["deployments"] if d["rolloutState"] == "FAILED"]
        if p["taskDefinition"] == good["taskDefinitionArn"] and p["id"] != first_id and failed:
            return s, failed[0]
        return None

    s, failed = wait_for(rolled_back, timeout=90, interval=0.5, what="the circuit breaker to roll back")
    assert failed["taskDefinition"] == bad["taskDefinitionArn"]
    assert failed["failedTasks"] >= 3, failed
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert s["deployments"][0]["rolloutStateReason"] == (
        f"ECS deployment circuit breaker: rolling back to deploymentId {first_id}.")
    messages = [e["message"] for e in s["events"]]
    assert f"(service {name}) (deployment {failed['id']}) deployment failed: tasks failed to start." in messages
    s = wait_for(lambda: steady(ecs, cluster, name, 2), timeout=60, what="steady after the rollback")
    assert s["taskDefinition"] == good["taskDefinitionArn"]
    tasks = tasks_of(ecs, cluster, name)
    assert {t["taskDefinitionArn"] for t in tasks} == {good["taskDefinitionArn"]}


def test_draining_an_instance_moves_service_tasks_within_the_bounds(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster, az="us-east-1a")
    fleet.add_agent(cluster, az="us-east-1b")
    instances_ready(ecs, cluster, 2)
    family = helpers.unique("drain")
    sleeper(ecs, family)
    name = helpers.unique("web")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=4)
    wait_for(lambda: steady(ecs, cluster, name, 4), timeout=60, what="4 tasks steady")
    tasks = tasks_of(ecs, cluster, name)
    drained = tasks[0]["containerInstanceArn"]
    assert sum(1 for t in tasks if t["containerInstanceArn"] == drained) == 2
    probe = Probe(ecs, cluster, name)
    probe.start()
    time.sleep(1)
    ecs.update_container_instances_state(cluster=cluster, containerInstances=[drained], status="DRAINING")

    def moved():
        now = tasks_of(ecs, cluster, name)
        ok = (len(now) == 4 and all(t["lastStatus"] == "RUNNING" for t in now)
              and all(t["containerInstanceArn"] != drained for t in now))
        return now if ok and steady(ecs, cluster, name, 4) else None

    wait_for(moved, timeout=90, interval=0.5, what="the service tasks off the DRAINING instance")
    time.sleep(1)
    probe.halt.set()
    probe.join(30)
    assert probe.error is None, probe.error
    assert len(probe.samples) >= 3, probe.samples
    assert max(n for n, _ in probe.samples) <= 8, probe.samples
    assert min(h for _, h in probe.samples) >= 4, probe.samples


def test_tasks_of_a_lost_agent_are_replaced_and_the_surplus_stopped_when_it_returns(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    lost = fleet.add_agent(cluster, az="us-east-1a")
    fleet.add_agent(cluster, az="us-east-1b")
    instances_ready(ecs, cluster, 2)
    family = helpers.unique("lost")
    sleeper(ecs, family)
    name = helpers.unique("web")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=4)
    wait_for(lambda: steady(ecs, cluster, name, 4), timeout=60, what="4 tasks steady")
    arns = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
    desc = ecs.describe_container_instances(cluster=cluster, containerInstances=arns)["containerInstances"]
    lost_arn = next(d["containerInstanceArn"] for d in desc
                    if any(a["name"] == "ecs.availability-zone" and a.get("value") == "us-east-1a"
                           for a in d["attributes"]))
    lost.pause()  # cut off: SIGSTOP, the containers keep running

    def replaced():
        now = tasks_of(ecs, cluster, name)
        elsewhere = [t for t in now if t["containerInstanceArn"] != lost_arn and t["lastStatus"] == "RUNNING"]
        return now if len(elsewhere) == 4 and steady(ecs, cluster, name, 4) else None

    wait_for(replaced, timeout=60, interval=0.5, what="the lost agent's tasks replaced elsewhere")
    lost.resume()

    def back_to_four():
        now = tasks_of(ecs, cluster, name)
        s = steady(ecs, cluster, name, 4)
        return s if s and len(now) == 4 and all(t["lastStatus"] == "RUNNING" for t in now) else None

    s = wait_for(back_to_four, timeout=90, interval=0.5, what="the surplus stopped once the agent is back")
    messages = [e["message"] for e in s["events"]]
    assert any(m.startswith(f"(service {name}) has stopped ") for m in messages), messages


def test_daemon_service_runs_one_task_per_instance(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster, az="us-east-1a")
    fleet.add_agent(cluster, az="us-east-1b")
    instances_ready(ecs, cluster, 2)
    family = helpers.unique("daemon")
    v1 = sleeper(ecs, family, "v1")
    v2 = sleeper(ecs, family, "v2")
    name = helpers.unique("d")
    created = ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=v1["taskDefinitionArn"],
                                 schedulingStrategy="DAEMON")["service"]
    assert created["schedulingStrategy"] == "DAEMON"
    assert created["deploymentConfiguration"]["maximumPercent"] == 100
    assert created["deploymentConfiguration"]["minimumHealthyPercent"] == 0

    def one_per_instance(n, td):
        s = steady(ecs, cluster, name, n)
        if not s:
            return None
        tasks = tasks_of(ecs, cluster, name)
        ok = (len(tasks) == n and len({t["containerInstanceArn"] for t in tasks}) == n
              and {t["taskDefinitionArn"] for t in tasks} == {td})
        return s if ok else None

    wait_for(lambda: one_per_instance(2, v1["taskDefinitionArn"]), timeout=60, what="one task per instance")
    fleet.add_agent(cluster, az="us-east-1c")
    instances_ready(ecs, cluster, 3)
    wait_for(lambda: one_per_instance(3, v1["taskDefinitionArn"]), timeout=60, what="a task on the new instance")
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v2["taskDefinitionArn"])
    s = wait_for(lambda: one_per_instance(3, v2["taskDefinitionArn"]), timeout=90, interval=0.5,
                 what="the new revision on every instance")
    assert s["desiredCount"] == 3
    # Draining an instance moves nothing for a DAEMON service: its task there just stops.
    arns = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
    drained = arns[0]
    ecs.update_container_instances_state(cluster=cluster, containerInstances=[drained], status="DRAINING")

    def drained_ok():
        tasks = tasks_of(ecs, cluster, name)
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
        ok = (len(running) == 2 and drained not in {t["containerInstanceArn"] for t in running}
              and len({t["containerInstanceArn"] for t in running}) == 2)
        return running if ok else None

    wait_for(drained_ok, timeout=60, interval=0.5, what="the DAEMON task gone from the draining instance only")
    time.sleep(2)
    assert drained_ok(), "a DAEMON task was started again after draining"
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="Placement strategies"):
        ecs.create_service(cluster=cluster, serviceName=helpers.unique("d"), taskDefinition=family,
                           schedulingStrategy="DAEMON", placementStrategy=[{"type": "random"}])


def test_a_task_failing_its_health_checks_is_replaced(fleet):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("sick")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{
            "name": "app", "image": IMAGE, "memory": 16, "essential": True,
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
            "healthCheck": {"command": ["CMD-SHELL", "exit 1"], "interval": 5, "timeout": 2, "retries": 1},
            "stopTimeout": 2,
        }],
    )
    name = helpers.unique("web")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=1)

    def told():
        s = service(ecs, cluster, name)
        hit = [e["message"] for e in s["events"] if e["message"].endswith(") failed container health checks.")]
        return hit or None

    hit = wait_for(told, timeout=60, interval=0.5, what="a health check failure event")
    task_id = hit[0].split("(task ")[1].split(")")[0]
    stopped = ecs.describe_tasks(cluster=cluster, tasks=[task_id])["tasks"][0]
    assert stopped["stoppedReason"] == "Task failed container health checks", stopped
    assert stopped["stopCode"] == "ServiceSchedulerInitiated"
    wait_for(lambda: any(t["taskArn"] != stopped["taskArn"] for t in tasks_of(ecs, cluster, name)),
             timeout=30, what="a replacement task")
