#!/usr/bin/env python3
"""Benchmark: container logs through Flotilla (the awslogs driver, read with GetLogEvents)
beside `docker logs -f` on the same container (the floor: Flotilla's agent follows the same
Engine API stream, then stores and serves the lines).

Prints, with the ratio flotilla / docker for each:
- throughput: lines per second from one container writing N lines as fast as it can
  (default 200000) until the last one is readable (GetLogEvents vs `docker logs -f`);
- latency: from the engine's timestamp of a line (one every 100 ms) to it being readable,
  p50 and p99 (GetLogEvents polled every 10 ms vs `docker logs -f -t`);
- the agent's RSS idle and with 20 tasks logging 100 lines per second each.

Starts its own `flotilla server` and `flotilla agent` (release build):

    cargo build --release -p flotilla && .venv/bin/python benches/logs_throughput.py [N]
"""

import datetime
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("FLOTILLA_BIN", str(ROOT / "target" / "release" / "flotilla"))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

import helpers  # noqa: E402
from conftest import make_client  # noqa: E402
from fleet import IMAGE, Fleet, instances_ready  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * p))]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def docker_ts(text):
    """Docker's RFC 3339 nanosecond timestamp as epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    base = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.timezone.utc).timestamp()
    return base + float("0." + (frac or "0"))


class Bench:
    def __init__(self, fleet):
        self.fleet = fleet
        self.ecs = make_client(fleet.endpoint, retries=3)
        self.logs = boto3.client(
            "logs", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
            aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
            config=Config(retries={"max_attempts": 3}))
        self.cluster = helpers.unique("bench")
        self.group = "/bench/" + helpers.unique("g")
        self.ecs.create_cluster(clusterName=self.cluster)
        self.agent = fleet.add_agent(self.cluster)
        instances_ready(self.ecs, self.cluster, 1)
        self.logs.create_log_group(logGroupName=self.group)

    def task(self, command):
        family = helpers.unique("log")
        self.ecs.register_task_definition(family=family, containerDefinitions=[{
            "name": "main", "image": IMAGE, "memory": 32, "command": ["sh", "-c", command], "stopTimeout": 1,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": self.group, "awslogs-stream-prefix": "b"}}}])
        arn = self.ecs.run_task(cluster=self.cluster, taskDefinition=family)["tasks"][0]["taskArn"]
        return arn, f"b/main/{arn.rsplit('/', 1)[1]}"

    def container_id(self, arn):
        while True:
            t = self.ecs.describe_tasks(cluster=self.cluster, tasks=[arn])["tasks"][0]
            rid = t["containers"][0].get("runtimeId")
            if rid:
                return rid
            time.sleep(0.01)

    def throughput(self, n):
        # The container waits a moment so `docker logs -f` and the agent both follow it live.
        arn, stream = self.task(f"sleep 1; yes 'a log line of some forty characters....' | head -n {n}; sleep 1")
        cid = self.container_id(arn)
        marks = {}

        def follow_docker():
            p = subprocess.Popen(["docker", "logs", "-f", "-t", cid], stdout=subprocess.PIPE, text=True)
            count = 0
            for line in p.stdout:
                count += 1
                if count == 1:
                    marks["first"] = docker_ts(line.split(" ", 1)[0])
                if count == n:
                    marks["docker"] = time.time()
                    p.kill()
                    break

        th = threading.Thread(target=follow_docker)
        th.start()
        deadline = time.monotonic() + 300
        while (have := self._count(stream)) < n:
            assert time.monotonic() < deadline, f"only {have} of {n} lines readable after 300 s"
            time.sleep(0.02)
        marks["flotilla"] = time.time()
        th.join(60)
        return n / (marks["flotilla"] - marks["first"]), n / (marks["docker"] - marks["first"])

    def _count(self, stream):
        """How many events the stream has: the position after its newest event, which the
        forward token of a page ending there carries (Flotilla's tokens are positions)."""
        try:
            page = self.logs.get_log_events(logGroupName=self.group, logStreamName=stream, limit=1)
        except self.logs.exceptions.ResourceNotFoundException:
            return 0
        return int(page["nextForwardToken"][2:22])

    def latency(self, count=100):
        arn, stream = self.task(f"sleep 1; for i in $(seq 1 {count}); do echo \"tick $i\"; sleep 0.1; done; sleep 1")
        cid = self.container_id(arn)
        docker_lat = []

        def follow_docker():
            p = subprocess.Popen(["docker", "logs", "-f", "-t", cid], stdout=subprocess.PIPE, text=True)
            for line in p.stdout:
                docker_lat.append(time.time() - docker_ts(line.split(" ", 1)[0]))
                if len(docker_lat) == count:
                    p.kill()
                    break

        th = threading.Thread(target=follow_docker)
        th.start()
        flotilla_lat, token = [], None
        deadline = time.monotonic() + count * 0.1 + 60
        while len(flotilla_lat) < count and time.monotonic() < deadline:
            kw = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
            if token:
                kw["nextToken"] = token
            try:
                page = self.logs.get_log_events(**kw)
            except self.logs.exceptions.ResourceNotFoundException:
                time.sleep(0.01)
                continue
            now = time.time()
            # The event's timestamp is the engine's, to the millisecond.
            flotilla_lat += [now - e["timestamp"] / 1000 for e in page["events"]]
            token = page["nextForwardToken"]
            time.sleep(0.01)
        th.join(60)
        return flotilla_lat, docker_lat

    def rss(self, tasks=20, seconds=10):
        idle = rss_kib(self.agent.proc.pid)
        arns = [self.task("while true; do echo \"a line of output from a busy task\"; sleep 0.01; done")[0]
                for _ in range(tasks)]
        time.sleep(seconds)
        busy = rss_kib(self.agent.proc.pid)
        for a in arns:
            self.ecs.stop_task(cluster=self.cluster, task=a)
        return idle, busy


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    subprocess.run([str(ROOT / "scripts" / "images")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(tmp)
        try:
            b = Bench(fleet)
            time.sleep(1)
            f_tp, d_tp = b.throughput(n)
            print(f"throughput measured: {f_tp:.0f} vs {d_tp:.0f} lines/s", file=sys.stderr)
            f_lat, d_lat = b.latency()
            print("latency measured", file=sys.stderr)
            idle, busy = b.rss()
        finally:
            fleet.close()
    print(f"container logs, same engine, awslogs through Flotilla vs `docker logs -f` ({n} lines)")
    print(f"{'':36} {'flotilla':>10} {'docker':>10} {'ratio':>7}")
    print(f"{'throughput (lines/s)':36} {f_tp:10.0f} {d_tp:10.0f} {f_tp / d_tp:7.2f}")
    for name, p in (("p50", 0.5), ("p99", 0.99)):
        f, d = pct(f_lat, p) * 1000, pct(d_lat, p) * 1000
        print(f"{'latency written -> readable ' + name + ' (ms)':36} {f:10.1f} {d:10.1f} {f / max(d, 0.001):7.2f}")
    print(f"agent RSS: idle {idle / 1024:.1f} MiB, with 20 tasks logging 100 lines/s each {busy / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
