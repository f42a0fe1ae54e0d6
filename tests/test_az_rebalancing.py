"""Availability Zone rebalancing on real Docker: a service whose tasks all run in one zone
because it was the only one is moved back to balance when a host in a second zone joins, one
task at a time within its deployment bounds, with ECS's SERVICE_REBALANCING events; a service
with rebalancing DISABLED stays where it is; the setting's defaults and refusals as ECS has them
(boto3 and the aws CLI). On the embedded store and on etcd."""

import json
import subprocess
import threading

import pytest
from botocore.exceptions import ClientError

import helpers
from fleet import TASK_ARN_LABEL, docker, ecs_for, instances_ready, wait_for
from test_services import service, sleeper, tasks_of


@pytest.fixture(scope="module", params=["embedded", "etcd"])
def zones_fleet(request, tmp_path_factory, test_image):
    from fleet import Fleet

    tmp = tmp_path_factory.mktemp(f"az-rebalancing-{request.param}")
    args = []
    etcd = f = None
    try:
        if request.param == "etcd":
            etcd = helpers.SoloEtcd(tmp / "etcd").__enter__()
            args += ["--store", etcd.store("rebalancing"), "--secrets-key-file", str(helpers.secrets_key_file(tmp))]
        f = Fleet(tmp / "fleet", server_args=args)
        yield f
    finally:
        if f:
            f.close()
        if etcd:
            etcd.__exit__(None, None, None)


def per_zone(ecs, cluster, name):
    counts = {}
    for t in tasks_of(ecs, cluster, name):
        if t["lastStatus"] == "RUNNING":
            counts[t["availabilityZone"]] = counts.get(t["availabilityZone"], 0) + 1
    return counts


def messages(ecs, cluster, name):
    return [e["message"] for e in service(ecs, cluster, name)["events"]]


def test_an_imbalanced_service_is_moved_back_to_balance_within_its_bounds(zones_fleet, cli_env, aws_cli):
    fleet = zones_fleet
    ecs = ecs_for(fleet)
    cluster = helpers.unique("az")
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster, az="us-east-1a")
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("azfam")
    sleeper(ecs, family)
    moving, staying = helpers.unique("moving"), helpers.unique("staying")
    created = ecs.create_service(cluster=cluster, serviceName=moving, taskDefinition=family,
                                 desiredCount=4)["service"]
    assert created["availabilityZoneRebalancing"] == "ENABLED"  # ECS's default for new services
    env = dict(cli_env, AWS_ENDPOINT_URL_ECS=fleet.endpoint)
    out = subprocess.run([aws_cli, "ecs", "create-service", "--cluster", cluster, "--service-name", staying,
                          "--task-definition", family, "--desired-count", "4",
                          "--availability-zone-rebalancing", "DISABLED"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["service"]["availabilityZoneRebalancing"] == "DISABLED"
    for name in (moving, staying):
        wait_for(lambda: per_zone(ecs, cluster, name) == {"us-east-1a": 4}, timeout=120,
                 what=f"{name}: 4 tasks in us-east-1a")

    # The bounds hold at every step: never more than maximumPercent (200) of tasks that have
    # not stopped, never fewer than minimumHealthyPercent (100) RUNNING.
    seen = {"max_alive": 0, "min_running": 99}
    done = threading.Event()
    errors = []

    def probe():
        mine = ecs_for(fleet)
        while not done.is_set():
            try:
                ts = tasks_of(mine, cluster, moving)
                alive = [t for t in ts if t["lastStatus"] != "STOPPED"]
                running = [t for t in ts if t["lastStatus"] == "RUNNING"]
                seen["max_alive"] = max(seen["max_alive"], len(alive))
                seen["min_running"] = min(seen["min_running"], len(running))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            done.wait(0.2)

    watcher = threading.Thread(target=probe, daemon=True)
    watcher.start()
    fleet.add_agent(cluster, az="us-east-1b")
    instances_ready(ecs, cluster, 2)
    wait_for(lambda: per_zone(ecs, cluster, moving) == {"us-east-1a": 2, "us-east-1b": 2}
             and service(ecs, cluster, moving)["runningCount"] == 4
             and len(tasks_of(ecs, cluster, moving)) == 4,
             timeout=180, what="the service balanced: 2 tasks in each zone")
    done.set()
    watcher.join(5)
    assert not errors, errors
    assert seen["max_alive"] <= 8 and seen["min_running"] >= 4, seen

    events = messages(ecs, cluster, moving)
    assert f"service ({moving}) is not AZ balanced with 4 tasks in us-east-1a and 0 in us-east-1b. AZ Rebalancing in progress." in events
    assert f"service ({moving}) is AZ balanced with 2 tasks in us-east-1a and 2 tasks in us-east-1b." in events
    assert sum(m.startswith(f"{moving} has started 1 tasks in us-east-1b to AZ Rebalance: (task ") for m in events) == 2
    assert sum(m.startswith(f"{moving} has stopped 1 running tasks in us-east-1a due to AZ rebalancing: (task ") for m in events) == 2
    # The containers agree with the API: two on each host.
    b = fleet.agents[1]
    on_b = [t for t in tasks_of(ecs, cluster, moving) if t["availabilityZone"] == "us-east-1b"]
    for t in on_b:
        ids = docker("ps", "-q", "--filter", f"label={TASK_ARN_LABEL}={t['taskArn']}").split()
        assert ids, f"no container of {t['taskArn']} running"
    assert b.az == "us-east-1b"

    # Rebalancing DISABLED: the other service stays in one zone.
    assert per_zone(ecs, cluster, staying) == {"us-east-1a": 4}
    assert not any("AZ balanced" in m for m in messages(ecs, cluster, staying))


def test_the_setting_defaults_and_refusals(zones_fleet):
    ecs = ecs_for(zones_fleet)
    cluster = helpers.unique("azapi")
    ecs.create_cluster(clusterName=cluster)
    family = helpers.unique("azapi")
    sleeper(ecs, family)

    def create(**kw):
        return ecs.create_service(cluster=cluster, serviceName=helpers.unique("s"), taskDefinition=family,
                                  desiredCount=0, **kw)["service"]

    def refused(call, message):
        with pytest.raises(ClientError) as e:
            call()
        err = e.value.response["Error"]
        assert (err["Code"], err["Message"]) == ("InvalidParameterException", message)

    # Services that cannot be rebalanced default to DISABLED, and ENABLED is refused with why.
    max100 = {"maximumPercent": 100, "minimumHealthyPercent": 0}
    assert create(deploymentConfiguration=max100)["availabilityZoneRebalancing"] == "DISABLED"
    refused(lambda: create(deploymentConfiguration=max100, availabilityZoneRebalancing="ENABLED"),
            "Availability Zone rebalancing is not supported for services whose deploymentConfiguration.maximumPercent is 100.")
    assert create(schedulingStrategy="DAEMON")["availabilityZoneRebalancing"] == "DISABLED"
    refused(lambda: create(schedulingStrategy="DAEMON", availabilityZoneRebalancing="ENABLED"),
            "Availability Zone rebalancing is not supported for services that use the DAEMON scheduling strategy.")
    binpack = [{"type": "binpack", "field": "memory"}]
    assert create(placementStrategy=binpack)["availabilityZoneRebalancing"] == "DISABLED"
    refused(lambda: create(placementStrategy=binpack, availabilityZoneRebalancing="ENABLED"),
            "Availability Zone rebalancing is only supported for services whose first placement strategy is spread across attribute:ecs.availability-zone, or that have no placement strategy.")
    spread = [{"type": "spread", "field": "attribute:ecs.availability-zone"}, {"type": "binpack", "field": "memory"}]
    assert create(placementStrategy=spread)["availabilityZoneRebalancing"] == "ENABLED"
    refused(lambda: create(placementConstraints=[{"type": "memberOf", "expression": "attribute:ecs.availability-zone == us-east-1a"}],
                           availabilityZoneRebalancing="ENABLED"),
            "Availability Zone rebalancing is not supported for services with a placement constraint on attribute:ecs.availability-zone.")

    # UpdateService: kept when not named, changed without a new deployment, ENABLED checked
    # against the configuration as updated.
    s = create()
    name = s["serviceName"]
    u = ecs.update_service(cluster=cluster, service=name, desiredCount=0)["service"]
    assert u["availabilityZoneRebalancing"] == "ENABLED"
    u = ecs.update_service(cluster=cluster, service=name, availabilityZoneRebalancing="DISABLED")["service"]
    assert u["availabilityZoneRebalancing"] == "DISABLED" and len(u["deployments"]) == 1
    refused(lambda: ecs.update_service(cluster=cluster, service=name, availabilityZoneRebalancing="ENABLED",
                                       placementStrategy=binpack),
            "Availability Zone rebalancing is only supported for services whose first placement strategy is spread across attribute:ecs.availability-zone, or that have no placement strategy.")
    assert service(ecs, cluster, name)["availabilityZoneRebalancing"] == "DISABLED"  # nothing half-written
    u = ecs.update_service(cluster=cluster, service=name, availabilityZoneRebalancing="ENABLED")["service"]
    assert u["availabilityZoneRebalancing"] == "ENABLED" and len(u["deployments"]) == 1
    with pytest.raises(ClientError) as e:
        ecs.update_service(cluster=cluster, service=name, availabilityZoneRebalancing="SOMETIMES")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
