#!/usr/bin/env python3
"""Benchmark: how long from RunTask to RUNNING for a one-container task on Flotilla, beside raw
`docker run -d` of the same image on the same engine (the floor), and the agent's memory.

Prints p50/p99 over N runs (default 50) for both, their ratio, and the agent's RSS idle and
with 20 tasks running. Starts its own `flotilla server` and `flotilla agent` (release build).

    cargo build --release -p flotilla && .venv/bin/python benches/task_start.py [N]
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
from fleet import IMAGE, Fleet, docker  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * p))]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    subprocess.run([str(ROOT / "scripts" / "images")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(tmp)
        try:
            cluster = helpers.unique("bench")
            ecs = make_client(fleet.endpoint, retries=3)
            ecs.create_cluster(clusterName=cluster)
            agent = fleet.add_agent(cluster)
            deadline = time.monotonic() + 60
            while not ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]:
                assert time.monotonic() < deadline, "agent did not register"
                time.sleep(0.1)
            time.sleep(1)
            idle_rss = rss_kib(agent.proc.pid)
            family = helpers.unique("sleep")
            ecs.register_task_definition(
                family=family,
                containerDefinitions=[{"name": "main", "image": IMAGE, "memory": 8, "command": ["sleep", "600"], "stopTimeout": 1}],
            )
            flotilla, arns = [], []
            for _ in range(n):
                t0 = time.perf_counter()
                arn = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]["taskArn"]
                while ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]["lastStatus"] != "RUNNING":
                    time.sleep(0.005)
                flotilla.append(time.perf_counter() - t0)
                arns.append(arn)
                if len(arns) == 20:
                    time.sleep(1)
                    busy_rss = rss_kib(agent.proc.pid)
                if len(arns) >= 20:
                    ecs.stop_task(cluster=cluster, task=arns.pop(0))
            raw = []
            for i in range(n):
                name = f"flotilla-bench-raw-{os.getpid()}-{i}"
                t0 = time.perf_counter()
                docker("run", "-d", "--name", name, "-m", "8m", IMAGE, "sleep", "600")
                raw.append(time.perf_counter() - t0)
                docker("rm", "-f", name)
        finally:
            fleet.close()
    f50, f99, r50, r99 = pct(flotilla, 0.5), pct(flotilla, 0.99), pct(raw, 0.5), pct(raw, 0.99)
    print(f"one-container task start, {n} runs each, same engine ({docker('version', '--format', '{{.Server.Version}}')})")
    print(f"{'':32} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'flotilla RunTask -> RUNNING':32} {f50*1000:8.0f} {f99*1000:8.0f}")
    print(f"{'docker run -d (the floor)':32} {r50*1000:8.0f} {r99*1000:8.0f}")
    print(f"{'ratio flotilla / docker':32} {f50/r50:8.2f} {f99/r99:8.2f}")
    print(f"agent RSS: idle {idle_rss/1024:.1f} MiB, with 20 tasks {busy_rss/1024:.1f} MiB")
    print(f"(mean flotilla {statistics.mean(flotilla)*1000:.0f} ms, mean docker {statistics.mean(raw)*1000:.0f} ms)")


if __name__ == "__main__":
    main()
