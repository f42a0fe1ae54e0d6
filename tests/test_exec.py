"""ECS Exec on real Docker: one `flotilla server` and one `flotilla agent` for the module; boto3
1.44.5 calls ExecuteCommand, `flotilla exec` runs commands in running containers.

- a task run with enableExecuteCommand shows it, and its container's ExecuteCommandAgent
  RUNNING (STOPPED once the task stopped);
- ExecuteCommand answers ECS's shape, and refuses as ECS does: interactive false, a task
  without enableExecuteCommand (ECS's message), a stopped task, a task or container that does
  not exist, a task of several containers without the container's name;
- a service created or updated with enableExecuteCommand, and StartTask with it, run tasks that
  have it; a Fargate task on the managed pool runs the command in its own network namespace;
- `flotilla exec TASK -- sh -c 'echo out; echo err >&2; exit 3'`: stdout and stderr apart,
  exit code 3; stdin with -i;
- `flotilla exec -it TASK -- sh` under a real pseudo-terminal: the size set on it, a resize
  (TIOCSWINSZ and SIGWINCH) seen by `stty size`, exit code 5, the terminal restored after;
- the session's streamUrl refuses a wrong token, another key, no signature, and a second open;
- two replicas on one etcd: `flotilla exec` at the replica that does not hold the agent's
  session runs the command through the one that does."""

import base64
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

import helpers
from fleet import IMAGE, Fleet, instances_ready, remove_awsvpc_network_if_unused, wait_for

NOT_ENABLED = ("The execute command failed because execute command was not enabled when the task was run "
               "or the execute command agent isn\u2019t running. Wait and try again or run a new task with "
               "execute command enabled and try again.")


def ecs_client(endpoint):
    return boto3.client(
        "ecs", endpoint_url=endpoint, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("exec-fleet"))
    yield f
    f.close()


@pytest.fixture(scope="module")
def ecs(fleet):
    return ecs_client(fleet.endpoint)


@pytest.fixture(scope="module")
def cluster(fleet, ecs):
    name = helpers.unique("exec")
    ecs.create_cluster(clusterName=name)
    fleet.add_agent(name)
    instances_ready(ecs, name, 1)
    return name


def register(ecs, names=("main",)):
    family = helpers.unique("execfam")
    ecs.register_task_definition(family=family, containerDefinitions=[
        {"name": n, "image": IMAGE, "memory": 16, "command": ["sleep", "3600"], "stopTimeout": 1}
        for n in names
    ])
    return family


def describe(ecs, cluster, arn):
    return ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]


def run_running(ecs, cluster, family, enable=True):
    out = ecs.run_task(cluster=cluster, taskDefinition=family, enableExecuteCommand=enable)
    assert not out["failures"], out["failures"]
    arn = out["tasks"][0]["taskArn"]

    def agents_running():
        t = describe(ecs, cluster, arn)
        if t["lastStatus"] != "RUNNING":
            return None
        if enable and not all(a["lastStatus"] == "RUNNING" for c in t["containers"] for a in c["managedAgents"]):
            return None
        return t
    return wait_for(agents_running, timeout=60, what=f"task {arn} RUNNING")


@pytest.fixture(scope="module")
def task(ecs, cluster):
    """A running task with enableExecuteCommand: its ARN."""
    return run_running(ecs, cluster, register(ecs))["taskArn"]


def flotilla(fleet_endpoint, verb, *args, **kw):
    """`flotilla VERB --endpoint URL ARGS...` (the endpoint before a `--`)."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION)
    env.pop("AWS_SESSION_TOKEN", None)
    return subprocess.run([str(helpers.FLOTILLA_BIN), verb, "--endpoint", fleet_endpoint, *args],
                          capture_output=True, env=env, timeout=60, **kw)


def error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


# ---------------------------------------------------------------- the API


def test_a_task_shows_its_execute_command_agent_running_then_stopped(ecs, cluster):
    t = run_running(ecs, cluster, register(ecs, ("app", "side")))
    assert t["enableExecuteCommand"] is True
    for c in t["containers"]:
        [agent] = c["managedAgents"]
        assert agent["name"] == "ExecuteCommandAgent"
        assert agent["lastStatus"] == "RUNNING"
        assert agent["lastStartedAt"].timestamp() > time.time() - 300
    ecs.stop_task(cluster=cluster, task=t["taskArn"])
    stopped = wait_for(lambda: (lambda x: x if x["lastStatus"] == "STOPPED" else None)(describe(ecs, cluster, t["taskArn"])),
                       timeout=60, what="STOPPED")
    assert {a["lastStatus"] for c in stopped["containers"] for a in c["managedAgents"]} == {"STOPPED"}
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.execute_command(cluster=cluster, task=t["taskArn"], container="app", command="ls", interactive=True)
    assert error(e) == ("InvalidParameterException", NOT_ENABLED)
    # Without the flag: no managed agent, and enableExecuteCommand false.
    plain = run_running(ecs, cluster, register(ecs), enable=False)
    assert plain["enableExecuteCommand"] is False
    assert "managedAgents" not in plain["containers"][0]
    ecs.stop_task(cluster=cluster, task=plain["taskArn"])


def test_execute_command_answers_ecs_shape(ecs, cluster, task, fleet):
    out = ecs.execute_command(cluster=cluster, task=task, command="sh -c 'echo hi'", interactive=True)
    assert out["taskArn"] == task
    assert out["clusterArn"].endswith(f":cluster/{cluster}")
    assert out["containerName"] == "main"
    assert out["containerArn"].startswith(f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:container/{cluster}/")
    assert out["interactive"] is True
    s = out["session"]
    assert s["sessionId"].startswith("ecs-execute-command-") and len(s["sessionId"]) == 37
    assert s["streamUrl"] == f"ws://{urlsplit(fleet.endpoint).netloc}/exec/v1/sessions/{s['sessionId']}"
    assert len(s["tokenValue"]) >= 40
    # The task id works as well as the ARN.
    again = ecs.execute_command(cluster=cluster, task=task.rsplit("/", 1)[1], command="ls", interactive=True)
    assert again["session"]["sessionId"] != s["sessionId"]
    assert again["session"]["tokenValue"] != s["tokenValue"]


def test_execute_command_refuses_as_ecs_does(ecs, cluster, task):
    plain = run_running(ecs, cluster, register(ecs), enable=False)["taskArn"]
    try:
        with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
            ecs.execute_command(cluster=cluster, task=plain, command="/bin/sh", interactive=True)
        assert error(e) == ("InvalidParameterException", NOT_ENABLED)
    finally:
        ecs.stop_task(cluster=cluster, task=plain)
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.execute_command(cluster=cluster, task=task, command="ls", interactive=False)
    assert error(e) == ("InvalidParameterException", "Interactive is the only mode supported currently.")
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.execute_command(cluster=cluster, task="0" * 32, command="ls", interactive=True)
    assert error(e) == ("InvalidParameterException", "The referenced task was not found.")
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.execute_command(cluster=cluster, task=task, container="nope", command="ls", interactive=True)
    assert "The container nope was not found in the task" in error(e)[1]
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.execute_command(cluster=cluster, task=task, command="echo 'unterminated", interactive=True)
    assert "unterminated single quote" in error(e)[1]
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.execute_command(cluster=helpers.unique("nocluster"), task=task, command="ls", interactive=True)
    # Session logging is not done, so not accepted either (NONE and DEFAULT are).
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.create_cluster(clusterName=helpers.unique("execlog"), configuration={"executeCommandConfiguration": {
            "logging": "OVERRIDE", "logConfiguration": {"cloudWatchLogGroupName": "/ecs/exec"}}})
    assert "logging OVERRIDE is not supported by Flotilla" in error(e)[1]
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.update_cluster(cluster=cluster, configuration={"executeCommandConfiguration": {"kmsKeyId": "k"}})
    two = run_running(ecs, cluster, register(ecs, ("app", "side")))["taskArn"]
    try:
        with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
            ecs.execute_command(cluster=cluster, task=two, command="ls", interactive=True)
        assert "more than one container" in error(e)[1] and "(app, side)" in error(e)[1]
        assert ecs.execute_command(cluster=cluster, task=two, container="side", command="ls",
                                   interactive=True)["containerName"] == "side"
    finally:
        ecs.stop_task(cluster=cluster, task=two)


def test_services_and_start_task_run_tasks_with_execute_command(ecs, cluster, fleet):
    family = register(ecs)
    name = helpers.unique("execsvc")
    # Created without it, updated with it (and a new deployment, as on ECS): the new task has it.
    svc = ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=1)["service"]
    assert svc["enableExecuteCommand"] is False
    try:
        def running(enabled):
            def check():
                arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
                tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
                for t in tasks:
                    agents = [a["lastStatus"] for a in t["containers"][0].get("managedAgents", [])]
                    if t["lastStatus"] == "RUNNING" and t["enableExecuteCommand"] is enabled and \
                            agents == (["RUNNING"] if enabled else []):
                        return t
                return None
            return check
        wait_for(running(False), timeout=60, what="the service's task without execute command")
        svc = ecs.update_service(cluster=cluster, service=name, enableExecuteCommand=True,
                                 forceNewDeployment=True)["service"]
        assert svc["enableExecuteCommand"] is True
        t = wait_for(running(True), timeout=90, what="the service's new task with its agent RUNNING")
        out = flotilla(fleet.endpoint, "exec", t["taskArn"], "--", "echo", "from the service")
        assert (out.returncode, out.stdout) == (0, b"from the service\n"), out.stderr
    finally:
        ecs.update_service(cluster=cluster, service=name, desiredCount=0)
        ecs.delete_service(cluster=cluster, service=name, force=True)
    instance = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"][0]
    started = ecs.start_task(cluster=cluster, taskDefinition=family, containerInstances=[instance],
                             enableExecuteCommand=True)["tasks"][0]
    assert started["enableExecuteCommand"] is True
    assert started["containers"][0]["managedAgents"][0]["lastStatus"] == "PENDING"
    try:
        wait_for(lambda: describe(ecs, cluster, started["taskArn"])["containers"][0]["managedAgents"][0]["lastStatus"]
                 == "RUNNING", timeout=60, what="StartTask's task with its agent RUNNING")
        out = flotilla(fleet.endpoint, "exec", started["taskArn"], "--", "true")
        assert out.returncode == 0, out.stderr
    finally:
        ecs.stop_task(cluster=cluster, task=started["taskArn"])


def test_a_fargate_task_runs_the_command_in_its_own_network(ecs, fleet):
    """On the managed pool: the command runs in the task's container, in its network namespace."""
    pool = fleet.add_agent(managed=True)
    pool.wait_session()
    cluster = helpers.unique("execfg")
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE"])
    fleet.track(cluster)
    family = helpers.unique("execfg")
    ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "app", "image": IMAGE, "command": ["sleep", "3600"], "stopTimeout": 1}])
    vpc = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}}

    def placed():
        out = ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE",
                           networkConfiguration=vpc, enableExecuteCommand=True)
        return out["tasks"][0]["taskArn"] if out["tasks"] else None
    arn = wait_for(placed, timeout=30, what="a Fargate task placed on the pool")
    try:
        def running():
            t = describe(ecs, cluster, arn)
            agents = [a["lastStatus"] for a in t["containers"][0].get("managedAgents", [])]
            return t if t["lastStatus"] == "RUNNING" and agents == ["RUNNING"] else None
        t = wait_for(running, timeout=90, what="the Fargate task with its agent RUNNING")
        ip = next(d["value"] for d in t["attachments"][0]["details"] if d["name"] == "privateIPv4Address")
        out = flotilla(fleet.endpoint, "exec", arn, "--", "ip", "-o", "-4", "addr", "show")
        assert out.returncode == 0, out.stderr
        assert f"inet {ip}/" in out.stdout.decode(), out.stdout
    finally:
        ecs.stop_task(cluster=cluster, task=arn)
        wait_for(lambda: describe(ecs, cluster, arn)["lastStatus"] == "STOPPED", timeout=60, what="STOPPED")
        remove_awsvpc_network_if_unused()


# ---------------------------------------------------------------- flotilla exec


def test_flotilla_exec_keeps_stdout_and_stderr_apart_and_returns_the_exit_code(fleet, cluster, task):
    out = flotilla(fleet.endpoint, "exec", task, "--cluster", cluster, "--",
                   "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, b"out\n", b"err\n")
    # Arguments arrive as given (no shell reads them on the way).
    out = flotilla(fleet.endpoint, "exec", task.rsplit("/", 1)[1], "--cluster", cluster, "--",
                   "echo", "it's", "a b", "$HOME", "")
    assert (out.returncode, out.stdout) == (0, b"it's a b $HOME \n"), out.stderr
    # stdin with -i, to its end.
    out = flotilla(fleet.endpoint, "exec", "-i", task, "--", "cat", input=b"line one\nline two\n")
    assert (out.returncode, out.stdout) == (0, b"line one\nline two\n"), out.stderr
    # Without -i the command reads end of file at once.
    out = flotilla(fleet.endpoint, "exec", task, "--", "cat", input=b"ignored\n")
    assert (out.returncode, out.stdout) == (0, b""), out.stderr
    # What Docker says of a command that does not exist, with its code.
    out = flotilla(fleet.endpoint, "exec", task, "--", "no-such-command")
    assert out.returncode == 126 and b"executable file not found" in out.stdout


def test_flotilla_exec_says_why_it_cannot_run_and_exits_255(fleet, ecs, cluster):
    plain = run_running(ecs, cluster, register(ecs), enable=False)["taskArn"]
    try:
        out = flotilla(fleet.endpoint, "exec", plain, "--", "true")
        assert out.returncode == 255
        assert b"InvalidParameterException" in out.stderr and b"execute command was not enabled" in out.stderr
    finally:
        ecs.stop_task(cluster=cluster, task=plain)
    # -it needs a terminal on stdin.
    out = flotilla(fleet.endpoint, "exec", "-it", plain, "--", "sh", stdin=subprocess.DEVNULL)
    assert out.returncode == 255 and b"not a TTY" in out.stderr
    # The help teaches.
    help_ = subprocess.run([str(helpers.FLOTILLA_BIN), "exec", "--help"], capture_output=True, text=True)
    assert "enableExecuteCommand" in help_.stdout and "255" in help_.stdout and "-- sh" in help_.stdout


class Pty:
    """`flotilla exec` with a real pseudo-terminal as its stdin, stdout and stderr."""

    def __init__(self, args, rows, cols):
        self.master, slave = pty.openpty()
        self.size(rows, cols)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
                   AWS_DEFAULT_REGION=helpers.REGION)
        env.pop("AWS_SESSION_TOKEN", None)
        self.lflag_before = termios.tcgetattr(slave)[3]
        self.slave = slave
        self.proc = subprocess.Popen([str(helpers.FLOTILLA_BIN), *args], stdin=slave, stdout=slave, stderr=slave,
                                     env=env, start_new_session=True)
        self.out = b""

    def size(self, rows, cols):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while pattern not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never came; got {self.out!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    self.out += os.read(self.master, 4096)
                except OSError:
                    pass
        return self.out

    def type(self, text):
        os.write(self.master, text)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)


def test_flotilla_exec_it_is_a_terminal_that_follows_this_one(fleet, cluster, task):
    term = Pty(["exec", "-it", task, "--cluster", cluster, "--endpoint", fleet.endpoint, "--", "sh"], 33, 101)
    try:
        term.read_until(b"/ # ")
        # Raw mode while the command runs: the remote terminal echoes, not this one.
        assert not termios.tcgetattr(term.slave)[3] & termios.ECHO
        term.type(b"stty size\r")
        term.read_until(b"33 101")
        term.size(40, 120)
        os.kill(term.proc.pid, signal.SIGWINCH)
        time.sleep(0.5)
        term.type(b"stty size\r")
        term.read_until(b"40 120")
        term.type(b"echo $((6 * 7))\r")
        term.read_until(b"42\r\n")
        term.type(b"exit 5\r")
        assert term.proc.wait(20) == 5
        # The terminal as it was.
        assert termios.tcgetattr(term.slave)[3] == term.lflag_before
    finally:
        term.close()


# ---------------------------------------------------------------- the stream URL


def open_stream(stream_url, token=None, access_key=helpers.ACCESS_KEY, secret_key=helpers.SECRET_KEY, sign=True):
    parts = urlsplit(stream_url)
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    if token is not None:
        headers["x-flotilla-exec-token"] = token
    return helpers.raw_call(f"http://{parts.netloc}", body=b"", method="GET", path=parts.path + "?tty=false&stdin=false",
                            target="", sign=sign, access_key=access_key, secret_key=secret_key, extra_headers=headers)


def test_a_session_opens_only_with_its_token_and_key(ecs, cluster, task, fleet, tmp_path):
    s = ecs.execute_command(cluster=cluster, task=task, command="true", interactive=True)["session"]
    r = open_stream(s["streamUrl"], token="wrong")
    assert (r.status, r.json["__type"]) == (403, "AccessDeniedException"), r
    r = open_stream(s["streamUrl"])
    assert (r.status, r.json["__type"]) == (403, "AccessDeniedException"), r
    r = open_stream(s["streamUrl"], token=s["tokenValue"], sign=False)
    assert r.status == 403 and r.json["__type"] == "MissingAuthenticationTokenException", r
    r = open_stream(s["streamUrl"], token=s["tokenValue"], access_key="AKIDNOBODY", secret_key="x")
    assert r.status == 403 and r.json["__type"] == "UnrecognizedClientException", r
    # Refused attempts leave it to its owner; once opened, it is gone.
    r = open_stream(s["streamUrl"], token=s["tokenValue"])
    assert r.status == 101, r
    r = open_stream(s["streamUrl"], token=s["tokenValue"])
    assert (r.status, r.json["__type"]) == (400, "InvalidParameterException"), r
    assert "opened already" in r.json["message"]


# ---------------------------------------------------------------- a region


def test_a_replica_runs_the_command_through_the_one_holding_the_agent(tmp_path, test_image):
    """Two replicas on one etcd; the agent's session is held by replica A; `flotilla exec` at B
    gets its session from B, and B relays the stream to A, which orders the agent."""
    with helpers.SoloEtcd(tmp_path) as etcd:
        store = etcd.store('exec')
        # Replicas on etcd share one secrets key (the server refuses to start on etcd without one).
        key = helpers.secrets_key_file(tmp_path)
        fleet_a = replica_b = None
        try:
            fleet_a = Fleet(tmp_path / "a", server_args=["--store", store, "--secrets-key-file", str(key)])
            replica_b = helpers.Server(tmp_path / "b", tmp_path / "b.log", mode="server",
                                       extra_args=["--store", store, "--heartbeat-seconds", "2",
                                                   "--secrets-key-file", str(key)])
            ecs_a, ecs_b = ecs_client(fleet_a.endpoint), ecs_client(replica_b.endpoint)
            cluster = helpers.unique("region")
            ecs_a.create_cluster(clusterName=cluster)
            fleet_a.add_agent(cluster)
            instances_ready(ecs_a, cluster, 1)
            arn = run_running(ecs_b, cluster, register(ecs_b))["taskArn"]
            out = flotilla(replica_b.endpoint, "exec", arn, "--", "sh", "-c", "echo via B; echo err >&2; exit 7")
            assert (out.returncode, out.stdout, out.stderr) == (7, b"via B\n", b"err\n")
            assert "exec starting" in fleet_a.agents[0].log()
            # Stdin crosses both hops too.
            out = flotilla(replica_b.endpoint, "exec", "-i", arn, "--", "cat", input=b"both ways\n")
            assert (out.returncode, out.stdout) == (0, b"both ways\n"), out.stderr
            # A gone: B cannot reach the agent, and says so.
            fleet_a.agents[0].kill()
            fleet_a.server.kill()
            out = flotilla(replica_b.endpoint, "exec", arn, "--", "true")
            assert out.returncode == 255
            assert b"TargetNotConnectedException" in out.stderr or b"replica" in out.stderr, out.stderr
        finally:
            if replica_b:
                replica_b.kill()
            if fleet_a:
                fleet_a.close()
