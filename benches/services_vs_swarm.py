#!/usr/bin/env python3
"""Benchmark: Flotilla services beside Docker Swarm services, on the same engine, same image.

Three figures for each, and the ratio Flotilla / Swarm:
  1. a service of 40 one-container tasks, from nothing to all RUNNING (Flotilla: steady state);
  2. a task killed with `docker kill`, until its replacement runs;
  3. a service of 20 rolled to a new revision (Flotilla: minimumHealthyPercent 100,
     maximumPercent 200; Swarm: the equivalent start-first update with parallelism 20), until
     every task runs the new revision.

Starts its own `flotilla server` and one `flotilla agent` (release build); initialises a
single-node swarm on 127.0.0.1 for the run and leaves it afterwards (only if it made it).

    cargo build --release -p flotilla && .venv/bin/python benches/services_vs_swarm.py
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("FLOTILLA_BIN", str(ROOT / "target" / "release" / "flotilla"))

import helpers  # noqa: E402
from conftest import make_client  # noqa: E402
from fleet import IMAGE, Fleet, docker  # noqa: E402

N_SCALE, N_ROLL = 40, 20


def until(pred, timeout=300, interval=0.05):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if pred():
            return time.perf_counter() - t0
        time.sleep(interval)
    raise TimeoutError("condition not reached")


# ---------------------------------------------------------------- Flotilla
def flotilla_figures(tmp):
    fleet = Fleet(tmp)
    try:
        cluster = helpers.unique("bench")
        ecs = make_client(fleet.endpoint, retries=3)
        ecs.create_cluster(clusterName=cluster)
        fleet.add_agent(cluster)
        until(lambda: ecs.list_container_instances(cluster=cluster)["containerInstanceArns"], 60)

        def td(tag):
            return ecs.register_task_definition(
                family="bench-svc",
                containerDefinitions=[{"name": "main", "image": IMAGE, "memory": 8, "command": ["sleep", "3600"],
                                       "environment": [{"name": "REV", "value": tag}], "stopTimeout": 1}],
            )["taskDefinition"]["taskDefinitionArn"]

        rev1, rev2 = td("1"), td("2")

        def svc():
            return ecs.describe_services(cluster=cluster, services=["big"])["services"][0]

        def steady(desired, rev):
            s = svc()
            return (len(s["deployments"]) == 1 and s["runningCount"] == desired == s["desiredCount"]
                    and s["deployments"][0]["taskDefinition"] == rev)

        t0 = time.perf_counter()
        ecs.create_service(cluster=cluster, serviceName="big", taskDefinition=rev1, desiredCount=N_SCALE)
        until(lambda: steady(N_SCALE, rev1))
        scale = time.perf_counter() - t0

        tasks = ecs.list_tasks(cluster=cluster, serviceName="big")["taskArns"]
        victim = ecs.describe_tasks(cluster=cluster, tasks=tasks[:1])["tasks"][0]
        t0 = time.perf_counter()
        docker("kill", victim["containers"][0]["runtimeId"])

        def replaced():
            arns = ecs.list_tasks(cluster=cluster, serviceName="big", desiredStatus="RUNNING")["taskArns"]
            if victim["taskArn"] in arns or len(arns) < N_SCALE:
                return False
            ts = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
            return sum(t["lastStatus"] == "RUNNING" for t in ts) == N_SCALE

        until(replaced)
        replace = time.perf_counter() - t0

        ecs.update_service(cluster=cluster, service="big", desiredCount=N_ROLL)
        until(lambda: steady(N_ROLL, rev1))
        t0 = time.perf_counter()
        ecs.update_service(cluster=cluster, service="big", taskDefinition=rev2,
                           deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200})
        until(lambda: steady(N_ROLL, rev2))
        roll = time.perf_counter() - t0
        ecs.update_service(cluster=cluster, service="big", desiredCount=0)
        ecs.delete_service(cluster=cluster, service="big", force=True)
        return scale, replace, roll
    finally:
        fleet.close()


# ---------------------------------------------------------------- Swarm
def swarm_running(name, image_env=None):
    out = docker("service", "ps", name, "--filter", "desired-state=running", "--format", "{{.CurrentState}}|{{.ID}}")
    return [line for line in out.splitlines() if line.startswith("Running")]


def swarm_figures():
    made = docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active"
    if made:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    name = f"flotilla-bench-{os.getpid()}"
    try:
        t0 = time.perf_counter()
        docker("service", "create", "--quiet", "--detach", "--name", name, "--replicas", str(N_SCALE),
               "--no-resolve-image", "--env", "REV=1", "--stop-grace-period", "1s", IMAGE, "sleep", "3600")
        until(lambda: len(swarm_running(name)) == N_SCALE)
        scale = time.perf_counter() - t0

        cid = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}").split()[0]
        before = set(docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}").split())
        t0 = time.perf_counter()
        docker("kill", cid)

        def replaced():
            now = set(docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}").split())
            return len(now) == N_SCALE and cid not in now and now - before

        until(replaced)
        replace = time.perf_counter() - t0

        docker("service", "scale", "--detach", f"{name}={N_ROLL}")
        until(lambda: len(swarm_running(name)) == N_ROLL and
              len(docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}").split()) == N_ROLL)
        t0 = time.perf_counter()
        docker("service", "update", "--quiet", "--detach=false", "--env-add", "REV=2", "--no-resolve-image",
               "--update-parallelism", str(N_ROLL), "--update-order", "start-first", name)
        roll = time.perf_counter() - t0
        return scale, replace, roll
    finally:
        docker("service", "rm", name, check=False)
        if made:
            docker("swarm", "leave", "--force", check=False)


def main():
    subprocess.run([str(ROOT / "scripts" / "images")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        f = flotilla_figures(tmp)
    s = swarm_figures()
    print(f"services on one Docker engine ({docker('version', '--format', '{{.Server.Version}}')}), image {IMAGE}")
    print(f"{'':44} {'flotilla s':>10} {'swarm s':>10} {'ratio':>7}")
    for label, a, b in [
        (f"service of {N_SCALE}: zero to all running", f[0], s[0]),
        ("killed task until its replacement runs", f[1], s[1]),
        (f"roll {N_ROLL} tasks to a new revision", f[2], s[2]),
    ]:
        print(f"{label:44} {a:10.2f} {b:10.2f} {a / b:7.2f}")


if __name__ == "__main__":
    main()
