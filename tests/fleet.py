"""A Flotilla fleet on this machine for the Docker end-to-end tests: one `flotilla server` and
any number of `flotilla agent` processes, each with its own data directory (so its own container
instance identity), all driving the local Docker engine. Containers are found and removed by the
cluster label the agent puts on them.

An agent is either a cluster's (a container instance of that cluster) or, with managed=True, a host
of the managed pool that runs Fargate tasks (`flotilla agent --managed`: no cluster; it shows in
no cluster's ListContainerInstances). Containers of Fargate tasks carry the label of the task's
cluster, so a test that runs Fargate tasks in a cluster calls `fleet.track(cluster)` to have them
removed at the end; the pause containers of awsvpc tasks are removed with their task's, and a
managed agent's warm pause containers (made before any task, `com.flotilla.warm-address`) by the
instance label of that agent."""

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
TASK_ARN_LABEL = "com.flotilla.task-arn"
CONTAINER_NAME_LABEL = "com.flotilla.container-name"
INSTANCE_LABEL = "com.flotilla.container-instance"
WARM_ADDRESS_LABEL = "com.flotilla.warm-address"
PAUSE_CONTAINER_NAME = "~internal~ecs~pause"
AWSVPC_NETWORK = "flotilla-awsvpc"


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def cluster_containers(cluster, all_=True):
    ids = docker("ps", "-q", *(["-a"] if all_ else []), "--filter", f"label={CLUSTER_LABEL}={cluster}")
    return [i for i in ids.split() if i]


def task_containers(cluster):
    """Every container of a task of `cluster`: by the cluster label, and by the task ARN label
    (so a pause container is found even if it carried no cluster label)."""
    ids = set(cluster_containers(cluster))
    out = docker("ps", "-a", "--filter", f"label={TASK_ARN_LABEL}",
                 "--format", '{{.ID}} {{.Label "' + TASK_ARN_LABEL + '"}}')
    for line in out.splitlines():
        cid, _, arn = line.partition(" ")
        if f":task/{cluster}/" in arn:
            ids.add(cid)
    return sorted(ids)


def containers_of_task(task_arn, name=None, running=False):
    """The ids of `task_arn`'s containers (only the one named `name`, only running ones), read in one
    `docker ps` by label: no separate inspect that a container removed meanwhile (by another test's
    cleanup, or the agent) would fail."""
    out = docker("ps", "-a", "--no-trunc", "--filter", f"label={TASK_ARN_LABEL}={task_arn}",
                 "--format", '{{.ID}}|{{.Label "com.flotilla.container-name"}}|{{.State}}')
    ids = []
    for line in out.splitlines():
        cid, cname, state = line.split("|", 2)
        if (name is None or cname == name) and (not running or state == "running"):
            ids.append(cid[:12])
    return sorted(ids)


def remove_awsvpc_network_if_unused():
    """Removes the Docker network awsvpc tasks use, unless a container is still attached to it
    (another fleet's, or a task of a suite still running); agents recreate it when missing."""
    if not docker("network", "ls", "-q", "--filter", f"name=^{AWSVPC_NETWORK}$"):
        return
    info = json.loads(docker("network", "inspect", AWSVPC_NETWORK, check=False) or "[]")
    if info and not info[0].get("Containers"):
        docker("network", "rm", AWSVPC_NETWORK, check=False)


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
    def __init__(self, fleet, cluster, data_dir, log_path, az, attributes, env=None, managed=False, extra_args=()):
        self.fleet, self.cluster, self.data_dir, self.log_path = fleet, cluster, Path(data_dir), log_path
        self.az, self.attributes, self.extra_env = az, attributes, env or {}
        self.managed, self.extra_args = managed, list(extra_args)
        self.proc = None
        self.start()

    def start(self):
        args = [
            str(helpers.FLOTILLA_BIN), "agent",
            *(["--managed"] if self.managed else ["--cluster", self.cluster]),
            "--server", self.fleet.endpoint,
            "--data-dir", str(self.data_dir),
            "--availability-zone", self.az,
            "--cleanup-delay-seconds", "3600",
        ]
        for k, v in self.attributes.items():
            args += ["--attribute", f"{k}={v}"]
        args += self.extra_args
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
            AWS_DEFAULT_REGION=helpers.REGION,
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
        )
        env.pop("AWS_SESSION_TOKEN", None)
        # A value of None removes the variable (an agent that joins with a token has no keys).
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
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

    def instance_arn(self):
        """The container instance ARN the agent registered as (from its data directory)."""
        path = self.data_dir / "identity.json"
        return json.loads(path.read_text()).get("container_instance_arn") if path.exists() else None

    def instance_id(self):
        arn = self.instance_arn()
        return arn.rsplit("/", 1)[-1] if arn else None

    def warm_containers(self, all_=True):
        """This managed agent's warm pause containers not adopted by a task: {address: id}."""
        iid = self.instance_id()
        if not iid:
            return {}
        out = docker("ps", *(["-a"] if all_ else []), "--filter", f"label={INSTANCE_LABEL}={iid}",
                     "--filter", f"label={WARM_ADDRESS_LABEL}",
                     "--format", '{{.ID}} {{.Names}} {{.Label "' + WARM_ADDRESS_LABEL + '"}}')
        found = {}
        for line in out.splitlines():
            cid, name, ip = line.split(" ")
            if name.startswith("flotilla-warm-"):
                found[ip] = cid
        return found

    def wait_session(self, timeout=60):
        """Waits until the agent logged that its session with the server is up (the managed
        pool's hosts are in no cluster, so ListContainerInstances cannot tell)."""
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return "session established" in self.log()
        return wait_for(up, timeout=timeout, what="the agent's session")


class Fleet:
    def __init__(self, tmp_path, heartbeat_seconds=2, server_args=(), throttle=False):
        """`server_args`: extra flags of `flotilla server`, e.g. ["--spot-warning-seconds", "2"];
        `throttle`: the server throttles API requests (see helpers.Server)."""
        self.tmp = Path(tmp_path)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.server = helpers.Server(
            self.tmp / "server", self.tmp / "server.log", mode="server",
            extra_args=["--heartbeat-seconds", str(heartbeat_seconds), *server_args],
            throttle=throttle,
        )
        self.endpoint = self.server.endpoint
        self.agents = []
        self.clusters = set()

    def add_agent(self, cluster=None, az="us-east-1a", attributes=None, env=None, managed=False, extra_args=()):
        """A cluster's agent, or with managed=True (and no cluster) a host of the managed pool
        that runs Fargate tasks."""
        if managed == (cluster is not None):
            raise ValueError("an agent has either a cluster or managed=True")
        n = len(self.agents)
        a = Agent(self, cluster, self.tmp / f"agent{n}", self.tmp / f"agent{n}.log", az, attributes or {}, env,
                  managed=managed, extra_args=extra_args)
        self.agents.append(a)
        if cluster is not None:
            self.clusters.add(cluster)
        return a

    def track(self, cluster):
        """Removes the containers of `cluster`'s tasks at close (for clusters whose tasks run on
        the managed pool rather than on an agent of the cluster)."""
        self.clusters.add(cluster)

    def close(self):
        for a in self.agents:
            a.kill()
        self.server.kill()
        # A container the Docker engine was still creating for a killed agent may appear just
        # after a first sweep: sweep until one finds nothing (a few times at most).
        instances = [a.instance_id() for a in self.agents if a.managed]
        for _ in range(5):
            ids = [i for c in self.clusters for i in task_containers(c)]
            for iid in filter(None, instances):
                ids += helpers.warm_container_ids(iid)
            if not ids:
                break
            docker("rm", "-f", "-v", *ids, check=False)
            time.sleep(0.5)


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
