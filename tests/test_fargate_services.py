"""Services on Fargate behave as on EC2: a rolling update stays within its bounds and ends with
every task on the new revision, answering at its own address; a revision whose tasks cannot
start trips the circuit breaker and the service rolls back. Real Docker: a `flotilla server` and
one managed-pool host (`flotilla agent --managed`); the cluster has no container instance."""

import threading

import helpers
from fleet import IMAGE, ecs_for, wait_for
from test_fargate import (VPC, _task_network_cleanup, eni, ffleet, new_cluster,  # noqa: F401 (fixtures)
                          no_proxy_get, register_fargate, web_container)
from test_services import service, steady, tasks_of


def test_a_fargate_service_rolls_within_its_bounds_to_a_new_revision(ffleet):
    ecs = ecs_for(ffleet)
    cluster = new_cluster(ffleet, ecs)
    family = helpers.unique("roll")
    v1 = register_fargate(ecs, family, [web_container(stop_timeout=2)])
    v2 = register_fargate(ecs, family, [web_container(stop_timeout=2, environment=[{"name": "V", "value": "2"}])])
    name = helpers.unique("web")
    desired = 4
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=v1["taskDefinitionArn"],
                       desiredCount=desired, launchType="FARGATE", networkConfiguration=VPC,
                       deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 150})
    wait_for(lambda: steady(ecs, cluster, name, desired), timeout=120, interval=0.5, what="steady on v1")
    assert ecs.list_container_instances(cluster=cluster)["containerInstanceArns"] == []

    # A probe samples the service while it rolls: never more than 150% (6) tasks that have not
    # stopped, never fewer than 50% (2) RUNNING.
    seen = {"max_live": 0, "min_running": desired, "samples": 0}
    done = threading.Event()
    probe_ecs = ecs_for(ffleet)

    def probe():
        while not done.is_set():
            live = tasks_of(probe_ecs, cluster, name)
            running = [t for t in live if t["lastStatus"] == "RUNNING"]
            seen["max_live"] = max(seen["max_live"], len(live))
            seen["min_running"] = min(seen["min_running"], len(running))
            seen["samples"] += 1

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v2["taskDefinitionArn"])
    try:
        s = wait_for(lambda: (lambda s: s if s and s["taskDefinition"] == v2["taskDefinitionArn"] else None)(
            steady(ecs, cluster, name, desired)), timeout=180, interval=0.5, what="steady on v2")
    finally:
        done.set()
        t.join(timeout=30)
    assert seen["samples"] > 10, seen
    assert seen["max_live"] <= desired * 150 // 100, seen
    assert seen["min_running"] >= desired * 50 // 100, seen
    assert s["deployments"][0]["launchType"] == "FARGATE"
    tasks = tasks_of(ecs, cluster, name)
    assert {x["taskDefinitionArn"] for x in tasks} == {v2["taskDefinitionArn"]}
    ips = [eni(x)[1]["privateIPv4Address"] for x in tasks]
    assert len(set(ips)) == desired
    for ip in ips:
        body = wait_for(lambda: no_proxy_get(ip), timeout=30, what=f"HTTP at {ip}")
        assert ip in body, body  # the page lists the task's own addresses
    ecs.update_service(cluster=cluster, service=name, desiredCount=0)


def test_a_fargate_revision_that_cannot_start_trips_the_circuit_breaker(ffleet):
    ecs = ecs_for(ffleet)
    cluster = new_cluster(ffleet, ecs)
    family = helpers.unique("cb")
    good = register_fargate(ecs, family, [{"name": "app", "image": IMAGE, "essential": True,
                                           "command": ["sleep", "3600"], "stopTimeout": 2}])
    bad = register_fargate(ecs, family, [{"name": "app", "image": "127.0.0.1:1/flotilla/does-not-exist:latest",
                                          "essential": True}])
    name = helpers.unique("svc")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=good["taskDefinitionArn"], desiredCount=2,
                       launchType="FARGATE", networkConfiguration=VPC,
                       deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    first = wait_for(lambda: steady(ecs, cluster, name, 2), timeout=120, interval=0.5, what="steady on the good revision")
    first_id = first["deployments"][0]["id"]
    ecs.update_service(cluster=cluster, service=name, taskDefinition=bad["taskDefinitionArn"])

    def rolled_back():
        s = service(ecs, cluster, name)
        failed = [d for d in s["deployments"] if d["rolloutState"] == "FAILED"]
        p = s["deployments"][0]
        if p["taskDefinition"] == good["taskDefinitionArn"] and p["id"] != first_id and failed:
            return s, failed[0]
        return None

    s, failed = wait_for(rolled_back, timeout=120, interval=0.5, what="the circuit breaker to roll back")
    assert failed["taskDefinition"] == bad["taskDefinitionArn"]
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    stopped = tasks_of(ecs, cluster, name, desired="STOPPED")
    broken = [x for x in stopped if x["taskDefinitionArn"] == bad["taskDefinitionArn"]]
    # The breaker trips after 3 tasks failed to start; one still pulling when it did is stopped
    # by the scheduler.
    codes = [x["stopCode"] for x in broken]
    assert codes.count("TaskFailedToStart") >= 3, codes
    assert set(codes) <= {"TaskFailedToStart", "ServiceSchedulerInitiated"}, codes
    for x in broken:
        if x["lastStatus"] == "STOPPED":
            assert eni(x)[0]["status"] == "DELETED", x  # its address was given back
    s = wait_for(lambda: steady(ecs, cluster, name, 2), timeout=120, interval=0.5, what="steady after the rollback")
    assert s["taskDefinition"] == good["taskDefinitionArn"]
    ecs.update_service(cluster=cluster, service=name, desiredCount=0)
