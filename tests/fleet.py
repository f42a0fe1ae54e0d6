"""A Flotilla fleet on this machine for the Docker end-to-end tests: one `flotilla server` and
any number of `flotilla agent` processes, each with its own data directory (so its own container
instance identity), all driving the local Docker engine. Containers are found and removed by the
cluster label the agent puts on them."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import helpers
from conftest import make_client

IMAGE = "flotilla/busybox:latest"
CLUSTER_LABEL = "com.flotilla.cluster"


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def cluster_containers(cluster, all_=True):
    ids = docker("ps", "-q", *(["-a"] if all_ else []), "--filter", f"label={CLUSTER_LABEL}={cluster}")
    return [i for i in ids.split() if i]


def inspect(container_id):
    return json.loads(docker("inspect", container_id))[0]


def wait_for(predicate, timeout=60, interval=0.25, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class Agent:
    def __init__(self, fleet, cluster, data_dir, log_path, az, attributes, env=None):
        self.fleet, self.cluster, self.data_dir, self.log_path = fleet, cluster, Path(data_dir), log_path
        self.az, self.attributes, self.extra_env = az, attributes, env or {}
        self.proc = None
        self.start()

    def start(self):
        args = [
            str(helpers.FLOTILLA_BIN), "agent",
            "--cluster", self.cluster,
            "--server", self.fleet.endpoint,
            "--data-dir", str(self.data_dir),
            "--availability-zone", self.az,
            "--cleanup-delay-seconds", "3600",
        ]
        for k, v in self.attributes.items():
            args += ["--attribute", f"{k}={v}"]
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
            AWS_DEFAULT_REGION=helpers.REGION,
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
        )
        env.pop("AWS_SESSION_TOKEN", None)
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=self._log, env=env)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(30)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self._log.close()

    def pause(self):
        """Freezes the agent (SIGSTOP): its containers run on, but it says nothing."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def log(self):
        return Path(self.log_path).read_text(errors="replace")


class Fleet:
    def __init__(self, tmp_path, heartbeat_seconds=2):
        self.tmp = Path(tmp_path)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.server = helpers.Server(
            self.tmp / "server", self.tmp / "server.log", mode="server",
            extra_args=["--heartbeat-seconds", str(heartbeat_seconds)],
        )
        self.endpoint = self.server.endpoint
        self.agents = []
        self.clusters = set()

    def add_agent(self, cluster, az="us-east-1a", attributes=None, env=None):
        n = len(self.agents)
        a = Agent(self, cluster, self.tmp / f"agent{n}", self.tmp / f"agent{n}.log", az, attributes or {}, env)
        self.agents.append(a)
        self.clusters.add(cluster)
        return a

    def close(self):
        for a in self.agents:
            a.kill()
        self.server.kill()
        for c in self.clusters:
            ids = cluster_containers(c)
            if ids:
                docker("rm", "-f", "-v", *ids, check=False)


def ecs_for(fleet):
    """A boto3 client for a fleet's server (a few retries: the server may be busy)."""
    return make_client(fleet.endpoint, retries=3)


def instances_ready(ecs, cluster, n):
    """Waits until `n` container instances of `cluster` are ACTIVE with their agent connected."""
    def check():
        try:
            arns = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
        except ecs.exceptions.ClusterNotFoundException:
            return None  # `flotilla dev` creates its cluster as it starts
        if len(arns) < n:
            return None
        desc = ecs.describe_container_instances(cluster=cluster, containerInstances=arns)["containerInstances"]
        ok = [d for d in desc if d["agentConnected"] and d["status"] == "ACTIVE"]
        return ok if len(ok) >= n else None

    return wait_for(check, timeout=60, what=f"{n} connected container instances in {cluster}")
