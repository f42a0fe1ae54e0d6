#!/usr/bin/env python3
"""Benchmark: how long from RunTask to RUNNING for a FARGATE task (awsvpc, cpu 256 / memory 512,
on the managed pool) beside an EC2-launch-type bridge task of the same image on a cluster's own
agent, both on the same Docker engine. The difference is the awsvpc work: the address, the
pause container and its network namespace.

Prints p50/p99 over N runs (default 30) for both and their ratio (Fargate / EC2). Starts its own
`flotilla server`, one managed agent (`flotilla agent --managed`) and one cluster agent
(release build; FLOTILLA_BIN overrides). Each task is stopped once measured. It prints figures
and asserts nothing about them.

The pool host keeps the agent's default warm pool (task networks with their pause containers made
ahead of time); WARM_POOL_SIZE=N sets `--warm-pool-size N`, and WARM_POOL_SIZE=0 measures the
awsvpc work on the critical path, as before warm pools. After each stop the bench waits SETTLE
seconds (default 1, for both kinds alike), so a refill made in the background does not overlap
the next measurement: starts closer together than a refill takes pay for it.

    cargo build --release -p flotilla && .venv/bin/python benches/fargate_start.py [N]
"""

import os
import statistics
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
from fleet import IMAGE, Fleet, docker, remove_awsvpc_network_if_unused  # noqa: E402
from task_start import pct  # noqa: E402

VPC = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"], "securityGroups": ["sg-0123456789abcdef0"],
                               "assignPublicIp": "DISABLED"}}
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def time_to_running(ecs, cluster, **run_kw):
    """Seconds from sending RunTask to the first DescribeTasks that shows RUNNING; the ARN."""
    deadline = time.monotonic() + 120
    while True:
        t0 = time.perf_counter()
        out = ecs.run_task(cluster=cluster, count=1, **run_kw)
        if out["tasks"]:
            break
        # The pool host may still be connecting (no capacity yet): nothing was created.
        if time.monotonic() > deadline:
            raise RuntimeError(f"RunTask keeps failing: {out['failures']}")
        time.sleep(0.2)
    arn = out["tasks"][0]["taskArn"]
    while True:
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if t["lastStatus"] == "RUNNING":
            return time.perf_counter() - t0, arn
        if t["lastStatus"] == "STOPPED":
            raise RuntimeError(f"task stopped before RUNNING: {t.get('stoppedReason')} {t['containers']}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"task not RUNNING in time: {t['lastStatus']}")


def stop_and_wait(ecs, cluster, arn):
    ecs.stop_task(cluster=cluster, task=arn)
    deadline = time.monotonic() + 60
    while ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]["lastStatus"] != "STOPPED":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{arn} did not stop")
        time.sleep(0.05)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    settle = float(os.environ.get("SETTLE", "1"))
    subprocess.run([str(ROOT / "scripts" / "images")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(tmp)
        try:
            cluster = helpers.unique("bench")
            ecs = make_client(fleet.endpoint, retries=3)
            ecs.create_cluster(clusterName=cluster)
            fleet.track(cluster)
            warm = os.environ.get("WARM_POOL_SIZE")
            fleet.add_agent(managed=True, extra_args=["--warm-pool-size", warm] if warm else []).wait_session()
            fleet.add_agent(cluster).wait_session()
            deadline = time.monotonic() + 60
            while not ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster agent did not register")
                time.sleep(0.1)
            fargate_family, ec2_family = helpers.unique("fargate"), helpers.unique("ec2")
            ecs.register_task_definition(
                family=fargate_family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
                containerDefinitions=[{"name": "main", "image": IMAGE, "command": COMMAND, "stopTimeout": 2}],
            )
            ecs.register_task_definition(
                family=ec2_family, networkMode="bridge", cpu="256", memory="512",
                containerDefinitions=[{"name": "main", "image": IMAGE, "command": COMMAND, "stopTimeout": 2}],
            )
            # one warm-up of each (the pause image is built on first use), not counted
            for kw in ({"taskDefinition": fargate_family, "launchType": "FARGATE", "networkConfiguration": VPC},
                       {"taskDefinition": ec2_family, "launchType": "EC2"}):
                stop_and_wait(ecs, cluster, time_to_running(ecs, cluster, **kw)[1])
            fargate, ec2 = [], []
            for _ in range(n):  # interleaved, so both see the same engine load
                dt, arn = time_to_running(ecs, cluster, taskDefinition=fargate_family, launchType="FARGATE",
                                          networkConfiguration=VPC)
                fargate.append(dt)
                stop_and_wait(ecs, cluster, arn)
                time.sleep(settle)
                dt, arn = time_to_running(ecs, cluster, taskDefinition=ec2_family, launchType="EC2")
                ec2.append(dt)
                stop_and_wait(ecs, cluster, arn)
                time.sleep(settle)
        finally:
            fleet.close()
            remove_awsvpc_network_if_unused()
    f50, f99, e50, e99 = pct(fargate, 0.5), pct(fargate, 0.99), pct(ec2, 0.5), pct(ec2, 0.99)
    print(f"RunTask -> RUNNING, {n} runs each, same engine ({docker('version', '--format', '{{.Server.Version}}')}), "
          f"warm pool {os.environ.get('WARM_POOL_SIZE', 'default')}")
    print(f"{'':36} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'FARGATE awsvpc (256/512, pool)':36} {f50*1000:8.0f} {f99*1000:8.0f}")
    print(f"{'EC2 bridge (cluster agent)':36} {e50*1000:8.0f} {e99*1000:8.0f}")
    print(f"{'ratio Fargate / EC2':36} {f50/e50:8.2f} {f99/e99:8.2f}")
    print(f"(mean Fargate {statistics.mean(fargate)*1000:.0f} ms, mean EC2 {statistics.mean(ec2)*1000:.0f} ms)")


if __name__ == "__main__":
    main()
