"""Fargate on real Docker: a `flotilla server`, hosts of the managed pool (`flotilla agent
--managed`) and, where a test needs one, a cluster's own agent, all on the local engine.

Fargate tasks run in clusters that have no container instance at all: the pool's hosts are in no
cluster. Every awsvpc task gets its own address on the Docker network `flotilla-awsvpc`, which is
routable from this host, so the tests talk HTTP to each task at its privateIPv4Address.

Every test makes its own cluster and fleet; the containers of its tasks (and their pause
containers) are removed at the end, and the task network is removed after the module when no
container uses it any more."""

import http.client
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

import helpers
from conftest import make_client
from fleet import (IMAGE, PAUSE_CONTAINER_NAME, CONTAINER_NAME_LABEL, WARM_ADDRESS_LABEL, Fleet, docker, ecs_for, inspect,
                   instances_ready, remove_awsvpc_network_if_unused, task_containers, wait_for)

SUBNET = "subnet-0123456789abcdef0"
VPC = {"awsvpcConfiguration": {"subnets": [SUBNET], "securityGroups": ["sg-0123456789abcdef0"],
                               "assignPublicIp": "DISABLED"}}
AWSVPC_LIFECYCLE = ["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING",
                    "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"]
ATTACHMENT_ORDER = ["PRECREATED", "ATTACHING", "ATTACHED", "DETACHING", "DELETED"]
SPOT_WARNING_SECONDS = 2
# Serves a page naming the task's own addresses (`ip addr` inside its network namespace), and
# ignores SIGTERM (busybox httpd as PID 1), so a stop lasts the container's stopTimeout.
WEB_COMMAND = ["sh", "-c", "mkdir -p /www && ip -o -4 addr show > /www/index.html && exec httpd -f -p 80 -h /www"]


@pytest.fixture(scope="module", autouse=True)
def _task_network_cleanup():
    yield
    remove_awsvpc_network_if_unused()


@pytest.fixture
def ffleet(tmp_path, test_image):
    """A fleet whose server gives Spot tasks a short warning, with one managed-pool host
    (`fleet.pool` is its Agent)."""
    # heartbeats every 5 s: a pool host frozen for a moment (SIGSTOP) stays connected
    f = Fleet(tmp_path, heartbeat_seconds=5, server_args=["--spot-warning-seconds", str(SPOT_WARNING_SECONDS)])
    try:
        f.pool = f.add_agent(managed=True, az="us-east-1a")
        f.pool.wait_session()
    except BaseException:
        f.close()
        raise
    yield f
    f.close()


class GatedRegistry:
    """Debian's docker-registry on 127.0.0.1 behind a proxy that holds image manifest requests
    until `open()`: a task pulling an image from it stays PENDING (the agent is pulling) for as
    long as the test wants, so a poller sees PENDING however fast the rest goes."""

    def __init__(self, tmp_path):
        binary = shutil.which("docker-registry")
        assert binary, "scripts/test installs Debian's docker-registry"
        self.port, self.proxy_port = helpers.free_port(), helpers.free_port()
        config = tmp_path / "registry.yml"
        config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n"
                          f"http:\n  addr: 127.0.0.1:{self.port}\n")
        self._log = open(tmp_path / "registry.log", "wb")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self._log, stderr=self._log)
        self.gate = threading.Event()
        self.held = 0
        upstream, gate, outer = self.port, self.gate, self

        class Proxy(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                if "/manifests/" in self.path and not gate.is_set():
                    outer.held += 1
                    gate.wait(120)
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, headers=headers)
                    resp = conn.getresponse()
                    body = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body) if self.command != "HEAD"
                                                           else resp.getheader("Content-Length", "0")))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                finally:
                    conn.close()

            do_GET = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.proxy_port), Proxy)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

        def up():
            try:
                return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"http://127.0.0.1:{self.port}/v2/", timeout=1).status == 200
            except OSError:
                return False

        wait_for(up, timeout=20, what="the registry to answer")
        self.images = []

    def push(self, repo):
        """Pushes the test image as REPO:TAG (straight to the registry) and returns the name to
        pull it by through the gate; the engine keeps no copy under either name."""
        tag = helpers.unique("v")
        direct, gated = f"127.0.0.1:{self.port}/{repo}:{tag}", f"127.0.0.1:{self.proxy_port}/{repo}:{tag}"
        docker("tag", IMAGE, direct)
        docker("push", direct)
        docker("rmi", direct)
        self.images.append(gated)
        return gated

    def open(self):
        self.gate.set()

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.proc.kill()
        self.proc.wait()
        self._log.close()
        for image in self.images:
            docker("rmi", "-f", image, check=False)


@pytest.fixture
def gated_registry(tmp_path, test_image):
    r = GatedRegistry(tmp_path)
    yield r
    r.close()


def new_cluster(fleet, ecs):
    cluster = helpers.unique("fg")
    ecs.create_cluster(clusterName=cluster)
    fleet.track(cluster)
    return cluster


def no_proxy_get(ip, port=80, timeout=5):
    """The body at http://IP:PORT/, or None while nothing answers yet (no HTTP proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        return opener.open(f"http://{ip}:{port}/", timeout=timeout).read().decode(errors="replace")
    except OSError:
        return None


def describe(ecs, cluster, arn):
    return ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]


def wait_status(ecs, cluster, arn, status, timeout=90):
    return wait_for(
        lambda: (lambda t: t if t["lastStatus"] == status else None)(describe(ecs, cluster, arn)),
        timeout=timeout, interval=0.1, what=f"task {arn} {status}",
    )


def register_fargate(ecs, family, containers, cpu="256", memory="512", **extra):
    return ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu=cpu, memory=memory, containerDefinitions=containers, **extra,
    )["taskDefinition"]


def web_container(stop_timeout=3, **extra):
    return {"name": "web", "image": IMAGE, "essential": True, "command": WEB_COMMAND,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}], "stopTimeout": stop_timeout, **extra}


def run_fargate(ecs, cluster, family, count=1, timeout=60, **kw):
    """RunTask on the pool; retried while the pool reports no capacity yet (a host that just
    connected), which creates nothing."""
    kw.setdefault("launchType", "FARGATE")
    kw.setdefault("networkConfiguration", VPC)

    def attempt():
        out = ecs.run_task(cluster=cluster, taskDefinition=family, count=count, **kw)
        if out["failures"]:
            assert not out["tasks"], out
            assert all("Capacity is unavailable" in f.get("reason", "") for f in out["failures"]), out["failures"]
            return None
        return out["tasks"]

    tasks = wait_for(attempt, timeout=timeout, interval=0.5, what="capacity on the managed pool")
    assert len(tasks) == count
    return tasks


def eni(task):
    (att,) = [a for a in task.get("attachments", []) if a["type"] == "ElasticNetworkInterface"]
    return att, {d["name"]: d["value"] for d in att["details"]}


def all_tasks(ecs, cluster):
    return sorted(ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]
                  + ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"])


class StatusPoller(threading.Thread):
    """Watches the tasks of one cluster with DescribeTasks back to back (its own client, no
    sleep), and records every distinct lastStatus of each task in the order seen, with the
    task's `version` and its ENI attachment's status. It discovers tasks with ListTasks until it
    knows `expect` of them, so it sees them from their first status on."""

    def __init__(self, endpoint, cluster, expect):
        super().__init__(daemon=True)
        self.ecs = make_client(endpoint, retries=5)
        self.cluster, self.expect = cluster, expect
        self.known = []
        self.seen = {}         # arn -> [(version, lastStatus)] on each change of lastStatus
        self.attachments = {}  # arn -> [attachment status] on each change
        self.initial = {}      # arn -> (version, lastStatus) of the RunTask response
        self.samples = 0
        self.error = None
        self._halt = threading.Event()

    def add(self, task):
        """Records a task as the RunTask response showed it: its first state, which the poller
        may have seen too, or not (it may already be past it)."""
        self.initial[task["taskArn"]] = (task.get("version"), task["lastStatus"])

    def _record(self, t):
        arn = t["taskArn"]
        if arn not in self.known:
            self.known.append(arn)
        seq = self.seen.setdefault(arn, [])
        if not seq or seq[-1][1] != t["lastStatus"]:
            seq.append((t.get("version"), t["lastStatus"]))
        att = [a["status"] for a in t.get("attachments", []) if a["type"] == "ElasticNetworkInterface"]
        if att:
            aseq = self.attachments.setdefault(arn, [])
            if not aseq or aseq[-1] != att[0]:
                aseq.append(att[0])

    def run(self):
        try:
            while not self._halt.is_set():
                if len(self.known) < self.expect:
                    for arn in self.ecs.list_tasks(cluster=self.cluster)["taskArns"]:
                        if arn not in self.known:
                            self.known.append(arn)
                if not self.known:
                    continue
                for t in self.ecs.describe_tasks(cluster=self.cluster, tasks=list(self.known))["tasks"]:
                    self._record(t)
                self.samples += 1
                if len(self.known) >= self.expect and all(
                        self.seen.get(a) and self.seen[a][-1][1] == "STOPPED" for a in self.known):
                    return
        except Exception as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self, timeout=30):
        self.join(timeout)
        self._halt.set()
        self.join(5)
        assert self.error is None, f"the poller failed: {self.error!r}"

    def observations(self, arn):
        """(version, lastStatus) in the order seen: the RunTask response's first, then the
        poller's, each status once in a row."""
        out = []
        for v, s in ([self.initial[arn]] if arn in self.initial else []) + self.seen.get(arn, []):
            if not out or out[-1][1] != s:
                out.append((v, s))
        return out

    def statuses(self, arn):
        return [s for _, s in self.observations(arn)]


def assert_pool_task(task, family, az="us-east-1a"):
    assert task["launchType"] == "FARGATE", task
    assert "containerInstanceArn" not in task, task
    assert task["platformVersion"] == "1.4.0", task
    assert task["platformFamily"] == "Linux", task
    assert task["availabilityZone"] == az, task
    assert (task["cpu"], task["memory"]) == ("256", "512"), task
    assert task["taskDefinitionArn"].split("/")[-1].startswith(family + ":")


def assert_eni(task):
    att, details = eni(task)
    assert set(details) >= {"subnetId", "networkInterfaceId", "macAddress", "privateDnsName", "privateIPv4Address"}, details
    assert details["subnetId"] == SUBNET
    assert details["networkInterfaceId"].startswith("eni-"), details
    ip = details["privateIPv4Address"]
    assert ip.startswith("10.213."), details  # the default --task-network 10.213.0.0/16
    assert len(details["macAddress"].split(":")) == 6, details
    for c in task["containers"]:
        assert c["networkInterfaces"] == [{"attachmentId": att["id"], "privateIpv4Address": ip}], c
    return att, details


# --- acceptance 1: the aws CLI runs two Fargate tasks that answer HTTP at their own addresses ---

def test_fargate_tasks_with_the_cli_answer_at_their_own_addresses_through_the_full_lifecycle(gated_registry, ffleet, cli_env, aws_cli):
    """Two phases are too short to be seen reliably by polling alone, so the test holds them:
    PENDING (the image pull) by holding the registry's answer until the poller saw it, and
    DEACTIVATING (StopTask recorded, the agent not yet acting on it) by freezing the pool host
    until the poller saw it."""
    ecs = ecs_for(ffleet)
    env = dict(cli_env, AWS_ENDPOINT_URL_ECS=ffleet.endpoint)

    def aws(*args, check=True):
        out = subprocess.run([aws_cli, "ecs", *args, "--output", "json"], capture_output=True, text=True, env=env, timeout=300)
        if check:
            assert out.returncode == 0, (args, out.stderr)
            return json.loads(out.stdout) if out.stdout.strip() else None
        return out

    cluster = helpers.unique("fg")
    assert aws("create-cluster", "--cluster-name", cluster)["cluster"]["status"] == "ACTIVE"
    ffleet.track(cluster)
    family = helpers.unique("web")
    image = gated_registry.push("fargate/web")
    td = aws("register-task-definition", "--family", family, "--requires-compatibilities", "FARGATE",
             "--network-mode", "awsvpc", "--cpu", "256", "--memory", "512",
             "--container-definitions", json.dumps([web_container(image=image)]))["taskDefinition"]
    assert td["compatibilities"] and "FARGATE" in td["compatibilities"], td
    assert td["requiresCompatibilities"] == ["FARGATE"]

    # The cluster has no container instance at all, though a pool host is connected.
    assert aws("list-container-instances", "--cluster", cluster)["containerInstanceArns"] == []

    poller = StatusPoller(ffleet.endpoint, cluster, expect=2)
    poller.start()
    run = None
    deadline = time.monotonic() + 60
    while run is None or run["failures"]:
        assert time.monotonic() < deadline, f"no capacity on the pool: {run}"
        if run is not None:
            time.sleep(0.5)
        run = aws("run-task", "--cluster", cluster, "--task-definition", family, "--count", "2",
                  "--launch-type", "FARGATE", "--network-configuration", json.dumps(VPC))
    assert len(run["tasks"]) == 2, run
    for t in run["tasks"]:
        poller.add(t)
        assert t["lastStatus"] == "PROVISIONING" and t["desiredStatus"] == "RUNNING", t
        assert t["launchType"] == "FARGATE" and t["platformVersion"] == "1.4.0", t
    arns = [t["taskArn"] for t in run["tasks"]]
    wait_for(lambda: all("PENDING" in poller.statuses(a) for a in arns), timeout=60, interval=0.05,
             what="both tasks PENDING (pulling from the held registry)")
    assert gated_registry.held >= 1
    gated_registry.open()
    aws("wait", "tasks-running", "--cluster", cluster, "--tasks", *arns)

    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    ips = []
    for t in tasks:
        assert t["lastStatus"] == "RUNNING", t
        assert_pool_task(t, family)
        att, details = assert_eni(t)
        assert att["status"] == "ATTACHED", att
        assert t["connectivity"] == "CONNECTED" and t["connectivityAt"], t
        ips.append(details["privateIPv4Address"])
    assert len(set(ips)) == 2, ips
    # Each task answers at its own address on port 80 (both listen on 80), with its own page.
    bodies = [wait_for(lambda ip=ip: no_proxy_get(ip), timeout=20, what=f"HTTP at {ip}") for ip in ips]
    for ip, body in zip(ips, bodies):
        assert f"inet {ip}/" in body, (ip, body)
    assert bodies[0] != bodies[1]
    # The task's containers really run, in a network namespace of a pause container: the task's
    # own (labelled with its ARN), or a warm one the pool host made for its address beforehand.
    pause_ids = []
    for t, ip in zip(tasks, ips):
        web = inspect(t["containers"][0]["runtimeId"])
        assert web["State"]["Running"]
        assert web["Config"]["Labels"]["com.flotilla.cluster"] == cluster
        mode = web["HostConfig"]["NetworkMode"]
        assert mode.startswith("container:"), mode
        pause = inspect(mode.split(":", 1)[1])
        labels = pause["Config"]["Labels"]
        assert pause["State"]["Running"] and labels.get(CONTAINER_NAME_LABEL) == PAUSE_CONTAINER_NAME, labels
        assert labels.get("com.flotilla.task-arn") == t["taskArn"] or labels.get(WARM_ADDRESS_LABEL) == ip, labels
        pause_ids.append(pause["Id"])

    ffleet.pool.pause()  # (its heartbeats stop too: resumed well within 3 intervals)
    try:
        for arn in arns:
            stopped = aws("stop-task", "--cluster", cluster, "--task", arn, "--reason", "done")["task"]
            assert stopped["desiredStatus"] == "STOPPED" and stopped["lastStatus"] == "DEACTIVATING", stopped
        wait_for(lambda: all(poller.statuses(a)[-1:] == ["DEACTIVATING"] for a in arns), timeout=10, interval=0.02,
                 what="both tasks DEACTIVATING")
    finally:
        ffleet.pool.resume()
    aws("wait", "tasks-stopped", "--cluster", cluster, "--tasks", *arns)
    poller.finish()

    for arn in arns:
        assert poller.statuses(arn) == AWSVPC_LIFECYCLE, (arn, poller.observations(arn), poller.samples)
        versions = [v for v, _ in poller.observations(arn)]
        assert versions == sorted(versions), poller.seen[arn]
        atts = poller.attachments[arn]
        assert atts[-1] == "DELETED", atts
        assert atts == sorted(atts, key=ATTACHMENT_ORDER.index), atts  # never backwards
    for t in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]:
        assert t["lastStatus"] == "STOPPED" and t["stopCode"] == "UserInitiated" and t["stoppedReason"] == "done", t
        att, _ = eni(t)
        assert att["status"] == "DELETED", att
        assert t["containers"][0].get("exitCode") == 137, t  # httpd ignored SIGTERM
    # The pause containers went with their tasks; the address is free again.
    wait_for(lambda: not [c for c in task_containers(cluster)
                          if inspect(c)["Config"]["Labels"].get(CONTAINER_NAME_LABEL) == PAUSE_CONTAINER_NAME]
             and not [i for i in pause_ids if docker("ps", "-aq", "--filter", f"id={i}")],
             timeout=30, what="the pause containers to be removed")
    assert all(no_proxy_get(ip, timeout=1) is None for ip in ips)


# --- acceptance 2: invalid Fargate requests answer modeled errors and create nothing ---

def error_of(call):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    return err["Code"], err.get("Message", "")


def test_invalid_fargate_requests_are_modeled_errors_and_create_nothing(ffleet):
    ecs = ecs_for(ffleet)
    cluster = new_cluster(ffleet, ecs)
    ok = helpers.unique("ok")
    register_fargate(ecs, ok, [web_container()])

    # RegisterTaskDefinition: a cpu/memory pair Fargate has not.
    code, msg = error_of(lambda: register_fargate(ecs, helpers.unique("bad"), [web_container()], cpu="256", memory="4096"))
    assert code == "ClientException" and msg.startswith("No Fargate configuration exists for given values"), (code, msg)
    # RegisterTaskDefinition: FARGATE with bridge networking.
    code, msg = error_of(lambda: ecs.register_task_definition(
        family=helpers.unique("bad"), requiresCompatibilities=["FARGATE"], networkMode="bridge",
        cpu="256", memory="512", containerDefinitions=[web_container()]))
    assert code == "ClientException" and "awsvpc" in msg, (code, msg)
    # RegisterTaskDefinition: awsvpc with a hostPort other than the containerPort.
    code, msg = error_of(lambda: register_fargate(ecs, helpers.unique("bad"), [
        dict(web_container(), portMappings=[{"containerPort": 80, "hostPort": 8080}])]))
    assert code in ("ClientException", "InvalidParameterException") and "port" in msg.lower(), (code, msg)

    # RunTask FARGATE of a task definition that is not FARGATE-compatible (bridge, EC2).
    bridge = helpers.unique("bridge")
    ecs.register_task_definition(family=bridge, containerDefinitions=[
        {"name": "main", "image": IMAGE, "memory": 16, "command": ["sleep", "600"]}])
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=bridge, launchType="FARGATE", networkConfiguration=VPC))
    assert (code, msg) == ("ClientException", "Task definition does not support launch_type FARGATE."), (code, msg)
    # RunTask FARGATE of an awsvpc task definition whose cpu/memory is no Fargate pair.
    odd = helpers.unique("odd")
    ecs.register_task_definition(family=odd, networkMode="awsvpc", cpu="256", memory="4096", containerDefinitions=[
        {"name": "main", "image": IMAGE, "command": ["sleep", "600"]}])
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=odd, launchType="FARGATE", networkConfiguration=VPC))
    assert code == "ClientException" and "FARGATE" in msg.upper(), (code, msg)
    # RunTask FARGATE with placement constraints.
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=ok, launchType="FARGATE", networkConfiguration=VPC,
                                              placementConstraints=[{"type": "distinctInstance"}]))
    assert code == "InvalidParameterException" and "onstraint" in msg, (code, msg)
    # RunTask of an awsvpc task definition without a network configuration.
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=ok, launchType="FARGATE"))
    assert (code, msg) == ("InvalidParameterException",
                           "Network Configuration must be provided when networkMode 'awsvpc' is specified."), (code, msg)
    # A subnet id that is no subnet id.
    bad_vpc = {"awsvpcConfiguration": dict(VPC["awsvpcConfiguration"], subnets=["subnet-xyz"])}
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=ok, launchType="FARGATE", networkConfiguration=bad_vpc))
    assert code in ("InvalidParameterException", "ClientException") and "subnet-xyz" in msg, (code, msg)
    # A capacity provider the cluster has not associated (it has none).
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=ok, networkConfiguration=VPC,
                                              capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]))
    assert code == "InvalidParameterException" and ("FARGATE_SPOT" in msg or "associated" in msg), (code, msg)
    ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=["FARGATE"], defaultCapacityProviderStrategy=[])
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=ok, networkConfiguration=VPC,
                                              capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]))
    assert code == "InvalidParameterException" and "associated" in msg, (code, msg)
    # Both a launch type and a capacity provider strategy.
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=ok, networkConfiguration=VPC, launchType="FARGATE",
                                              capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}]))
    assert code == "InvalidParameterException" and "launch type" in msg.lower() and "capacity provider" in msg.lower(), (code, msg)
    # A platform version that does not exist.
    code, msg = error_of(lambda: ecs.run_task(cluster=cluster, taskDefinition=ok, networkConfiguration=VPC, launchType="FARGATE",
                                              platformVersion="9.9.9"))
    assert (code, msg) == ("PlatformUnknownException", "The specified platform does not exist."), (code, msg)

    assert all_tasks(ecs, cluster) == []
    assert task_containers(cluster) == []
    # And the same cluster runs a valid request (the errors were not about a missing pool).
    (task,) = run_fargate(ecs, cluster, ok, platformVersion="LATEST")
    assert task["platformVersion"] == "1.4.0", task
    ecs.stop_task(cluster=cluster, task=task["taskArn"])
    wait_status(ecs, cluster, task["taskArn"], "STOPPED")


# --- acceptance 3: the task's memory limits the whole task ---

def test_task_memory_is_enforced_out_of_memory_is_137(ffleet):
    ecs = ecs_for(ffleet)
    cluster = new_cluster(ffleet, ecs)
    family = helpers.unique("oom")
    register_fargate(ecs, family, [
        # no container-level memory: only the task's 512 MiB limit applies
        {"name": "hog", "image": IMAGE, "essential": True, "command": ["sh", "-c", "a=x; while true; do a=$a$a; done"]},
    ])
    (task,) = run_fargate(ecs, cluster, family)
    task = wait_status(ecs, cluster, task["taskArn"], "STOPPED", timeout=120)
    hog = task["containers"][0]
    assert hog.get("exitCode") == 137, task
    assert hog.get("reason", "").startswith("OutOfMemoryError"), hog
    assert task["stopCode"] == "EssentialContainerExited", task
    assert eni(task)[0]["status"] == "DELETED"


# --- acceptance 4: capacity provider strategy split, Spot reclaim, the service replaces ---

def flotilla(fleet, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION)
    out = subprocess.run([str(helpers.FLOTILLA_BIN), *args, "--endpoint", fleet.endpoint],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def service_tasks(ecs, cluster, name):
    arns = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus="RUNNING")["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def split_when_steady(ecs, cluster, name, desired=8):
    """{provider: [task]} once the service is steady at `desired` RUNNING tasks, else None."""
    s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    if not (s["runningCount"] == desired and s["pendingCount"] == 0 and len(s["deployments"]) == 1):
        return None
    tasks = service_tasks(ecs, cluster, name)
    if len(tasks) != desired or any(t["lastStatus"] != "RUNNING" for t in tasks):
        return None
    out = {}
    for t in tasks:
        out.setdefault(t.get("capacityProviderName"), []).append(t)
    return out


def test_service_splits_by_capacity_provider_strategy_and_replaces_reclaimed_spot_tasks(ffleet):
    # A second pool host (another zone): room for the replacements while the interrupted stop.
    second = ffleet.add_agent(managed=True, az="us-east-1b")
    second.wait_session()
    ecs = ecs_for(ffleet)
    cluster = new_cluster(ffleet, ecs)
    ecs.put_cluster_capacity_providers(
        cluster=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])
    c = ecs.describe_clusters(clusters=[cluster])["clusters"][0]
    assert sorted(c["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"], c
    family = helpers.unique("spot")
    register_fargate(ecs, family, [{
        "name": "app", "image": IMAGE, "essential": True,
        # ignores SIGTERM: only the SIGKILL at the end of the Spot warning stops it (not the
        # 120 s stopTimeout)
        "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"], "stopTimeout": 120,
    }])
    name = helpers.unique("svc")
    strategy = [{"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                {"capacityProvider": "FARGATE_SPOT", "weight": 3}]
    created = ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=8,
                                 capacityProviderStrategy=strategy, networkConfiguration=VPC)["service"]
    assert [(s["capacityProvider"], s.get("base", 0), s["weight"]) for s in created["capacityProviderStrategy"]] == \
        [("FARGATE", 1, 1), ("FARGATE_SPOT", 0, 3)], created["capacityProviderStrategy"]
    assert "launchType" not in created or created["launchType"] != "EC2", created
    # Rebalancing would move tasks between providers: Flotilla leaves it off for several providers.
    assert created["availabilityZoneRebalancing"] == "DISABLED", created

    split = wait_for(lambda: split_when_steady(ecs, cluster, name), timeout=180, interval=0.5, what="8 tasks steady")
    assert {k: len(v) for k, v in split.items()} == {"FARGATE": 3, "FARGATE_SPOT": 5}, {k: len(v) for k, v in split.items()}
    for t in sum(split.values(), []):
        assert t["launchType"] == "FARGATE" and "containerInstanceArn" not in t, t
        assert t["availabilityZone"] in ("us-east-1a", "us-east-1b"), t
    assert len({eni(t)[1]["privateIPv4Address"] for t in sum(split.values(), [])}) == 8
    assert ecs.list_container_instances(cluster=cluster)["containerInstanceArns"] == []
    on_demand = sorted(t["taskArn"] for t in split["FARGATE"])
    spot = sorted(t["taskArn"] for t in split["FARGATE_SPOT"])

    out = json.loads(flotilla(ffleet, "fargate", "reclaim-spot", "--cluster", cluster, "-o", "json"))
    assert sorted(out["tasks"]) == spot, out
    for t in ecs.describe_tasks(cluster=cluster, tasks=spot)["tasks"]:
        assert t["desiredStatus"] == "STOPPED", t
        assert t["stopCode"] == "SpotInterruption", t
        assert t["stoppedReason"] == "Your Spot Task was interrupted.", t
    for arn in spot:
        t = wait_status(ecs, cluster, arn, "STOPPED", timeout=60)  # far less than the 120 s stopTimeout
        assert t["stopCode"] == "SpotInterruption" and t["stoppedReason"] == "Your Spot Task was interrupted.", t
        assert t["containers"][0].get("exitCode") == 137, t  # SIGKILL after the warning
        assert eni(t)[0]["status"] == "DELETED"

    split = wait_for(lambda: split_when_steady(ecs, cluster, name), timeout=180, interval=0.5, what="8 tasks steady again")
    assert {k: len(v) for k, v in split.items()} == {"FARGATE": 3, "FARGATE_SPOT": 5}, {k: len(v) for k, v in split.items()}
    assert sorted(t["taskArn"] for t in split["FARGATE"]) == on_demand  # untouched
    assert not set(t["taskArn"] for t in split["FARGATE_SPOT"]) & set(spot)  # all replaced
    # Nothing left to reclaim in another cluster's name; a second reclaim takes the new ones.
    again = json.loads(flotilla(ffleet, "fargate", "reclaim-spot", "--cluster", cluster, "--count", "2", "-o", "json"))
    assert len(again["tasks"]) == 2 and set(again["tasks"]) <= {t["taskArn"] for t in split["FARGATE_SPOT"]}, again
    ecs.update_service(cluster=cluster, service=name, desiredCount=0)


# --- the containers of one task share localhost ---

def test_containers_of_a_task_talk_over_localhost(ffleet):
    ecs = ecs_for(ffleet)
    cluster = new_cluster(ffleet, ecs)
    family = helpers.unique("pair")
    register_fargate(ecs, family, [
        web_container(),
        {"name": "checker", "image": IMAGE, "essential": False,
         "dependsOn": [{"containerName": "web", "condition": "START"}],
         "command": ["sh", "-c", "i=0; while [ $i -lt 100 ]; do wget -q -O - http://localhost:80/ && exit 0; "
                                 "i=$((i+1)); sleep 0.2; done; exit 1"]},
    ])
    (task,) = run_fargate(ecs, cluster, family)
    arn = task["taskArn"]

    def checker_done():
        t = describe(ecs, cluster, arn)
        c = next(c for c in t["containers"] if c["name"] == "checker")
        return t if c.get("exitCode") is not None else None

    task = wait_for(checker_done, timeout=90, interval=0.2, what="the checker to finish")
    by = {c["name"]: c for c in task["containers"]}
    assert by["checker"]["exitCode"] == 0, by["checker"]
    _, details = assert_eni(task)
    ip = details["privateIPv4Address"]
    # What the checker read at localhost:80 is the web container's page (naming the task's address).
    assert f"inet {ip}/" in docker("logs", by["checker"]["runtimeId"])
    assert task["lastStatus"] == "RUNNING" and by["web"]["lastStatus"] == "RUNNING", task
    assert f"inet {ip}/" in wait_for(lambda: no_proxy_get(ip), timeout=20, what="HTTP at the task")
    ecs.stop_task(cluster=cluster, task=arn)
    wait_status(ecs, cluster, arn, "STOPPED")


# --- awsvpc for the EC2 launch type, on a cluster's own agent ---

def test_ec2_awsvpc_task_on_a_cluster_agent_gets_an_eni_and_answers_at_its_address(ffleet):
    ecs = ecs_for(ffleet)
    cluster = new_cluster(ffleet, ecs)
    ffleet.add_agent(cluster, az="us-east-1c")
    (inst,) = instances_ready(ecs, cluster, 1)
    # Only the cluster's own agent is listed; the pool host is not.
    assert ecs.list_container_instances(cluster=cluster)["containerInstanceArns"] == [inst["containerInstanceArn"]]
    family = helpers.unique("ec2vpc")
    ecs.register_task_definition(family=family, networkMode="awsvpc", requiresCompatibilities=["EC2"],
                                 containerDefinitions=[web_container(memory=32)])
    out = ecs.run_task(cluster=cluster, taskDefinition=family, launchType="EC2", networkConfiguration=VPC)
    assert out["failures"] == [], out
    arn = out["tasks"][0]["taskArn"]
    task = wait_status(ecs, cluster, arn, "RUNNING")
    assert task["launchType"] == "EC2" and task["containerInstanceArn"] == inst["containerInstanceArn"], task
    assert task["availabilityZone"] == "us-east-1c", task
    att, details = assert_eni(task)
    assert att["status"] == "ATTACHED", att
    ip = details["privateIPv4Address"]
    assert not task["containers"][0].get("networkBindings"), task["containers"][0]  # no host port
    assert f"inet {ip}/" in wait_for(lambda: no_proxy_get(ip), timeout=20, what="HTTP at the task")
    labels = inspect(task["containers"][0]["runtimeId"])["Config"]["Labels"]
    assert inst["containerInstanceArn"].endswith("/" + labels["com.flotilla.container-instance"])
    ecs.stop_task(cluster=cluster, task=arn)
    task = wait_status(ecs, cluster, arn, "STOPPED")
    assert eni(task)[0]["status"] == "DELETED"
    assert no_proxy_get(ip, timeout=1) is None
