"""Warm task networks on real Docker: a managed-pool host (`flotilla agent --managed
--warm-pool-size 2`) keeps two task networks ready, each an address the server reserved for it
(`FlotillaAdmin.Status` lists them) held by a running pause container made before any task. A
FARGATE task placed there takes one of those addresses and runs in that pause container's network
namespace (made before its RunTask), answers HTTP at its address, and the pool refills; a
restarted agent keeps its valid warm containers and removes strays; deregistering the pool host
releases its addresses.

One server and one pool host for the module; the tests run in order (the last deregisters the
host)."""

import time
from datetime import datetime

import pytest

import helpers
from fleet import (CONTAINER_NAME_LABEL, IMAGE, INSTANCE_LABEL, PAUSE_CONTAINER_NAME, WARM_ADDRESS_LABEL, Fleet,
                   docker, ecs_for, inspect, remove_awsvpc_network_if_unused, wait_for)
from test_fargate import VPC, WEB_COMMAND, no_proxy_get

SIZE = 2


@pytest.fixture(scope="module")
def warm(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("warm"), heartbeat_seconds=2)
    try:
        f.pool = f.add_agent(managed=True, extra_args=["--warm-pool-size", str(SIZE)])
        f.pool.wait_session()
        f.ecs = ecs_for(f)
        f.cluster = helpers.unique("warm")
        f.ecs.create_cluster(clusterName=f.cluster)
        f.track(f.cluster)
        f.family = helpers.unique("warmweb")
        f.ecs.register_task_definition(
            family=f.family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
            containerDefinitions=[{"name": "web", "image": IMAGE, "command": WEB_COMMAND, "stopTimeout": 2}])
    except BaseException:
        f.close()
        raise
    yield f
    f.close()
    remove_awsvpc_network_if_unused()


def reserved(fleet):
    """The addresses the server reserved for the pool host (FlotillaAdmin.Status)."""
    r = helpers.raw_call(fleet.endpoint, target="FlotillaAdmin.Status", body={})
    assert r.status == 200, r
    arn = fleet.pool.instance_arn()
    return [a for w in r.json["warmNetworks"] if w["containerInstanceArn"] == arn for a in w["addresses"]]


def ready(fleet):
    """{address: container id} once the server reserved SIZE addresses and each has a running warm
    pause container on this host, else None."""
    addresses = reserved(fleet)
    running = fleet.pool.warm_containers(all_=False)
    if len(addresses) == SIZE and set(addresses) == set(running):
        return {a: running[a] for a in addresses}
    return None


def created(container):
    """A container's creation time, epoch seconds."""
    stamp = container["Created"].split(".")[0].rstrip("Z")
    return datetime.fromisoformat(stamp + "+00:00").timestamp()


def run_task(fleet):
    out = fleet.ecs.run_task(cluster=fleet.cluster, taskDefinition=fleet.family, launchType="FARGATE",
                             networkConfiguration=VPC)
    assert out["tasks"], out["failures"]
    arn = out["tasks"][0]["taskArn"]
    fleet.ecs.get_waiter("tasks_running").wait(cluster=fleet.cluster, tasks=[arn],
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    t = fleet.ecs.describe_tasks(cluster=fleet.cluster, tasks=[arn])["tasks"][0]
    ip = next(d["value"] for d in t["attachments"][0]["details"] if d["name"] == "privateIPv4Address")
    return t, ip


def pause_of(task):
    mode = inspect(task["containers"][0]["runtimeId"])["HostConfig"]["NetworkMode"]
    assert mode.startswith("container:"), mode
    return inspect(mode.split(":", 1)[1])


def stop(fleet, arn):
    fleet.ecs.stop_task(cluster=fleet.cluster, task=arn)
    fleet.ecs.get_waiter("tasks_stopped").wait(cluster=fleet.cluster, tasks=[arn],
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_a_fargate_task_adopts_a_warm_network_and_the_pool_refills(warm):
    before = wait_for(lambda: ready(warm), timeout=60, what="two warm task networks with running pause containers")
    for ip, cid in before.items():
        labels = inspect(cid)["Config"]["Labels"]
        assert labels[CONTAINER_NAME_LABEL] == PAUSE_CONTAINER_NAME and labels[WARM_ADDRESS_LABEL] == ip, labels
        assert labels[INSTANCE_LABEL] == warm.pool.instance_id(), labels
    asked_at = time.time()
    task, ip = run_task(warm)
    # Its address is one of the warm ones, and its namespace is that address's pause container,
    # made before the RunTask.
    assert ip in before, (ip, before)
    pause = pause_of(task)
    assert pause["Id"].startswith(before[ip]) or before[ip].startswith(pause["Id"][:12]), (pause["Id"], before)
    assert pause["State"]["Running"]
    assert created(pause) < asked_at, (pause["Created"], asked_at)
    assert pause["Config"]["Hostname"] == "ip-" + ip.replace(".", "-"), pause["Config"]["Hostname"]
    body = wait_for(lambda: no_proxy_get(ip), timeout=20, what=f"HTTP at {ip}")
    assert f"inet {ip}/" in body, body
    # The adopted pause container takes the task's pause name.
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    wait_for(lambda: inspect(pause["Id"])["Name"] == f"/flotilla-{task_id}-pause", timeout=10,
             what="the adopted pause container renamed")
    # The pool refills: two warm networks again, the task's address not among them.
    after = wait_for(lambda: ready(warm), timeout=60, what="the warm pool refilled")
    assert ip not in after, (ip, after)
    assert len(set(after) - set(before)) == 1, (before, after)
    # Stopped: the adopted pause container goes with the task; its address is not warm again.
    stop(warm, task["taskArn"])
    wait_for(lambda: not docker("ps", "-aq", "--filter", f"id={pause['Id']}"), timeout=30,
             what="the adopted pause container removed")
    assert ip not in reserved(warm)
    assert no_proxy_get(ip, timeout=1) is None


def test_more_tasks_than_warm_networks_still_start_and_answer(warm):
    wait_for(lambda: ready(warm), timeout=60, what="the warm pool ready")
    out = warm.ecs.run_task(cluster=warm.cluster, taskDefinition=warm.family, launchType="FARGATE",
                            networkConfiguration=VPC, count=SIZE + 1)
    assert len(out["tasks"]) == SIZE + 1, out["failures"]
    arns = [t["taskArn"] for t in out["tasks"]]
    warm.ecs.get_waiter("tasks_running").wait(cluster=warm.cluster, tasks=arns,
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    tasks = warm.ecs.describe_tasks(cluster=warm.cluster, tasks=arns)["tasks"]
    ips = [next(d["value"] for d in t["attachments"][0]["details"] if d["name"] == "privateIPv4Address")
           for t in tasks]
    assert len(set(ips)) == SIZE + 1, ips
    for ip in ips:
        body = wait_for(lambda ip=ip: no_proxy_get(ip), timeout=20, what=f"HTTP at {ip}")
        assert f"inet {ip}/" in body, body
    for arn in arns:
        warm.ecs.stop_task(cluster=warm.cluster, task=arn)
    warm.ecs.get_waiter("tasks_stopped").wait(cluster=warm.cluster, tasks=arns,
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    wait_for(lambda: ready(warm), timeout=60, what="the warm pool refilled")


def test_a_restarted_agent_keeps_its_warm_containers_and_removes_strays(warm):
    before = wait_for(lambda: ready(warm), timeout=60, what="the warm pool ready")
    warm.pool.kill()
    # A stray: a warm pause container of this host whose address the server never reserved.
    stray = docker("run", "-d", "--network", "none", "--name", f"flotilla-warm-10.213.255.250-{helpers.unique('s')}",
                   "--label", f"{INSTANCE_LABEL}={warm.pool.instance_id()}",
                   "--label", f"{WARM_ADDRESS_LABEL}=10.213.255.250",
                   "--label", f"{CONTAINER_NAME_LABEL}={PAUSE_CONTAINER_NAME}",
                   IMAGE, "sleep", "300")
    try:
        warm.pool.start()
        warm.pool.wait_session()
        wait_for(lambda: not docker("ps", "-aq", "--filter", f"id={stray}"), timeout=30, what="the stray removed")
        # The valid ones were kept, not made again.
        assert ready(warm) == before, (ready(warm), before)
        task, ip = run_task(warm)
        assert ip in before and pause_of(task)["Id"].startswith(before[ip]), (ip, before)
        stop(warm, task["taskArn"])
    finally:
        docker("rm", "-f", stray, check=False)


def test_deregistering_the_pool_host_releases_its_warm_addresses(warm):
    wait_for(lambda: ready(warm), timeout=60, what="the warm pool ready")
    arn = warm.pool.instance_arn()
    ci = warm.ecs.deregister_container_instance(cluster=".managed", containerInstance=arn, force=True)
    assert ci["containerInstance"]["status"] == "INACTIVE", ci
    assert reserved(warm) == []
