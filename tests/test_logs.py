"""CloudWatch Logs and the awslogs driver on real Docker: one `flotilla server` and one
`flotilla agent` for the module; boto3 1.44.5 and the aws CLI 1.46.3 call Logs on the same
endpoint as ECS (signed for `logs`).

- every Logs operation Flotilla serves, with its modeled errors;
- a task whose container writes to stdout and stderr with the awslogs driver: its lines, in
  order, in stream PREFIX/CONTAINER/TASK-ID (`aws logs get-log-events`), paged forward and
  backward with the tokens, found by filter-log-events (terms, quoted phrases), still served
  after the task stopped and its container was removed;
- a missing group fails the task as ECS does, unless awslogs-create-group is true;
- `flotilla logs -f SERVICE` follows every task of a service;
- an agent killed and restarted while its container writes neither loses nor repeats a line."""

import json
import os
import signal
import subprocess
import threading
import time

import boto3
import pytest
from botocore.config import Config

import helpers
from fleet import IMAGE, Fleet, docker, instances_ready, wait_for


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("logs-fleet"))
    yield f
    f.close()


@pytest.fixture(scope="module")
def cluster(fleet):
    name = helpers.unique("logs")
    ecs = ecs_client(fleet)
    ecs.create_cluster(clusterName=name)
    fleet.add_agent(name)
    instances_ready(ecs, name, 1)
    return name


def ecs_client(fleet):
    return boto3.client(
        "ecs", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def logs_client(fleet, validate=True):
    return boto3.client(
        "logs", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}, parameter_validation=validate),
    )


@pytest.fixture(scope="module")
def logs(fleet):
    return logs_client(fleet)


@pytest.fixture(scope="module")
def ecs(fleet):
    return ecs_client(fleet)


@pytest.fixture(scope="module")
def aws(fleet, aws_cli, tmp_path_factory):
    """Runs the aws CLI against the fleet; returns the parsed JSON output."""
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=fleet.endpoint, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY, AWS_DEFAULT_REGION=helpers.REGION,
        AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_PAGER="", HOME=str(home),
    )

    def run(*args, check=True):
        out = subprocess.run([aws_cli, *args, "--output", "json"], capture_output=True, text=True, env=env,
                             timeout=120)
        if check:
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else {}
        return out

    return run


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def now_ms():
    return int(time.time() * 1000)


def awslogs_task(ecs, family, group, command, prefix="app", create_group=None, extra_options=None):
    options = {"awslogs-group": group, "awslogs-region": helpers.REGION, "awslogs-stream-prefix": prefix}
    if create_group is not None:
        options["awslogs-create-group"] = create_group
    options.update(extra_options or {})
    return ecs.register_task_definition(
        family=family,
        containerDefinitions=[{
            "name": "main", "image": IMAGE, "memory": 32, "essential": True,
            "command": ["sh", "-c", command], "stopTimeout": 2,
            "logConfiguration": {"logDriver": "awslogs", "options": options},
        }],
    )["taskDefinition"]


def run_task(ecs, cluster, family):
    out = ecs.run_task(cluster=cluster, taskDefinition=family)
    assert not out["failures"], out["failures"]
    return out["tasks"][0]["taskArn"]


def wait_stopped(ecs, cluster, arn, timeout=90):
    def stopped():
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] == "STOPPED" else None
    return wait_for(stopped, timeout=timeout, what=f"task {arn} STOPPED")


def events_once_created(logs, group, stream):
    """Every event of a stream, or [] while the stream does not exist yet (its task starts)."""
    try:
        return all_events(logs, group, stream)
    except logs.exceptions.ResourceNotFoundException:
        return []


def all_events(logs, group, stream):
    """Every event of a stream, paging forward from the head until the token comes back."""
    events, token = [], None
    for _ in range(1000):
        kw = {"logGroupName": group, "logStreamName": stream, "startFromHead": True, "limit": 50}
        if token:
            kw["nextToken"] = token
        page = logs.get_log_events(**kw)
        events += page["events"]
        if page["nextForwardToken"] == token:
            return events
        token = page["nextForwardToken"]
    raise AssertionError("paging did not end")


# ---------------------------------------------------------------- the API and its errors


def test_log_groups_and_streams_with_their_modeled_errors(logs, aws):
    prefix = "/" + helpers.unique("g")
    names = [f"{prefix}/a", f"{prefix}/b", f"{prefix}/c"]
    for n in names:
        logs.create_log_group(logGroupName=n, tags={"team": "x"})
    with pytest.raises(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=names[0])
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.create_log_group(logGroupName=names[0] + "-kms", kmsKeyId="arn:aws:kms:us-east-1:1:key/x")
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.create_log_group(logGroupName="bad name with spaces")

    # Pages of one, by name, through the aws CLI's own paginator and boto3's token.
    listed = aws("logs", "describe-log-groups", "--log-group-name-prefix", prefix, "--page-size", "1")
    assert [g["logGroupName"] for g in listed["logGroups"]] == names
    first = logs.describe_log_groups(logGroupNamePrefix=prefix, limit=2)
    assert [g["logGroupName"] for g in first["logGroups"]] == names[:2]
    rest = logs.describe_log_groups(logGroupNamePrefix=prefix, limit=2, nextToken=first["nextToken"])
    assert [g["logGroupName"] for g in rest["logGroups"]] == names[2:]
    assert "nextToken" not in rest
    g = first["logGroups"][0]
    assert g["arn"] == f"arn:aws:logs:{helpers.REGION}:{helpers.ACCOUNT}:log-group:{names[0]}:*"
    assert "retentionInDays" not in g
    pattern = logs.describe_log_groups(logGroupNamePattern=prefix[1:] + "/b")["logGroups"]
    assert [x["logGroupName"] for x in pattern] == [names[1]]
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.describe_log_groups(logGroupNamePrefix=prefix, logGroupNamePattern="x")

    # Retention: only the allowed values.
    logs.put_retention_policy(logGroupName=names[0], retentionInDays=7)
    got = logs.describe_log_groups(logGroupNamePrefix=names[0])["logGroups"][0]
    assert got["retentionInDays"] == 7
    with pytest.raises(logs.exceptions.InvalidParameterException) as e:
        logs.put_retention_policy(logGroupName=names[0], retentionInDays=8)
    assert "3653" in str(e.value)
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.put_retention_policy(logGroupName=prefix + "/none", retentionInDays=1)

    # Streams.
    logs.create_log_stream(logGroupName=names[0], logStreamName="s/2")
    logs.create_log_stream(logGroupName=names[0], logStreamName="s/1")
    with pytest.raises(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=names[0], logStreamName="s/1")
    with pytest.raises(logs.exceptions.ResourceNotFoundException) as e:
        logs.create_log_stream(logGroupName=prefix + "/none", logStreamName="s")
    assert e.value.response["Error"]["Message"] == "The specified log group does not exist."
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.create_log_stream(logGroupName=names[0], logStreamName="a:b")
    streams = logs.describe_log_streams(logGroupName=names[0])["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["s/1", "s/2"]
    assert streams[0]["arn"].endswith(f":log-group:{names[0]}:log-stream:s/1")
    by_arn = logs.describe_log_streams(
        logGroupIdentifier=f"arn:aws:logs:{helpers.REGION}:{helpers.ACCOUNT}:log-group:{names[0]}",
        logStreamNamePrefix="s/2")["logStreams"]
    assert [s["logStreamName"] for s in by_arn] == ["s/2"]
    desc = logs.describe_log_streams(logGroupName=names[0], descending=True, limit=1)
    assert [s["logStreamName"] for s in desc["logStreams"]] == ["s/2"]
    more = logs.describe_log_streams(logGroupName=names[0], descending=True, limit=1, nextToken=desc["nextToken"])
    assert [s["logStreamName"] for s in more["logStreams"]] == ["s/1"]
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.describe_log_streams(logGroupName=names[0], orderBy="LastEventTime", logStreamNamePrefix="s")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_log_streams(logGroupName=prefix + "/none")

    # Delete: the group and its streams go.
    logs.delete_log_group(logGroupName=names[0])
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.delete_log_group(logGroupName=names[0])
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_log_streams(logGroupName=names[0])
    logs.create_log_group(logGroupName=names[0])
    assert logs.describe_log_streams(logGroupName=names[0])["logStreams"] == []


def test_put_get_and_filter_events_page_as_aws_does(logs, aws, fleet):
    group, stream = "/" + helpers.unique("api"), "writer/1"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    base = now_ms() - 60_000
    words = ["ERROR disk full", "INFO started", "WARN slow request", "ERROR connection reset by peer"]
    messages = [f"{words[i % 4]} #{i}" for i in range(25)]
    out = logs.put_log_events(logGroupName=group, logStreamName=stream,
                              logEvents=[{"timestamp": base + i, "message": m} for i, m in enumerate(messages)])
    assert "rejectedLogEventsInfo" not in out

    # Forward from the head, 10 at a time; at the end the same token comes back.
    pages, token = [], None
    while True:
        kw = dict(logGroupName=group, logStreamName=stream, startFromHead=True, limit=10)
        if token:
            kw["nextToken"] = token
        page = logs.get_log_events(**kw)
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        pages.append([e["message"] for e in page["events"]])
        token = page["nextForwardToken"]
    assert pages == [messages[0:10], messages[10:20], messages[20:25]]
    # Nothing new: the same forward token again; a new event: it comes with the next call.
    again = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=token)
    assert again["events"] == [] and again["nextForwardToken"] == token
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": base + 100, "message": "late"}])
    late = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=token)
    assert [e["message"] for e in late["events"]] == ["late"]
    messages.append("late")

    # Without startFromHead: the newest first page, then backward.
    newest = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=10)
    assert [e["message"] for e in newest["events"]] == messages[-10:]
    back = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=10,
                               nextToken=newest["nextBackwardToken"])
    assert [e["message"] for e in back["events"]] == messages[-20:-10]
    back2 = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=10,
                                nextToken=back["nextBackwardToken"])
    assert [e["message"] for e in back2["events"]] == messages[:-20]
    end = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=10,
                              nextToken=back2["nextBackwardToken"])
    assert end["events"] == [] and end["nextBackwardToken"] == back2["nextBackwardToken"]
    # ... and forward again from a backward page.
    fwd = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=10,
                              nextToken=back2["nextForwardToken"])
    assert [e["message"] for e in fwd["events"]] == messages[-20:-10]

    # Time range.
    ranged = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True,
                                 startTime=base + 5, endTime=base + 8)
    assert [e["message"] for e in ranged["events"]] == messages[5:8]

    # The aws CLI reads the same.
    cli = aws("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream,
              "--start-from-head", "--limit", "3")
    assert [e["message"] for e in cli["events"]] == messages[:3]

    # Filter: terms, quoted phrases, alternatives, exclusions, pages.
    def filtered(pattern, **kw):
        return [e["message"] for e in
                logs.filter_log_events(logGroupName=group, filterPattern=pattern, **kw)["events"]]
    assert filtered("ERROR") == [m for m in messages if "ERROR" in m]
    assert filtered('"connection reset"') == [m for m in messages if "connection reset" in m]
    assert filtered("ERROR disk") == [m for m in messages if "ERROR disk" in m]
    assert filtered("?WARN ?INFO") == [m for m in messages if "WARN" in m or "INFO" in m]
    assert filtered("ERROR -disk") == [m for m in messages if "ERROR" in m and "disk" not in m]
    cli = aws("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", '"slow request"')
    assert [e["message"] for e in cli["events"]] == [m for m in messages if "slow request" in m]
    assert all(e["logStreamName"] == stream and e["eventId"] for e in cli["events"])
    page1 = logs.filter_log_events(logGroupName=group, filterPattern="ERROR", limit=4)
    page2 = logs.filter_log_events(logGroupName=group, filterPattern="ERROR", limit=4, nextToken=page1["nextToken"])
    got = [e["message"] for e in page1["events"] + page2["events"]]
    while "nextToken" in page2:
        page2 = logs.filter_log_events(logGroupName=group, filterPattern="ERROR", limit=4,
                                       nextToken=page2["nextToken"])
        got += [e["message"] for e in page2["events"]]
    assert got == [m for m in messages if "ERROR" in m]
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=group, filterPattern='{ $.level = "error" }')
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=group, filterPattern='"unclosed')
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=group, logStreamNames=[stream], logStreamNamePrefix="w")

    # Event times reach DescribeLogStreams.
    s = logs.describe_log_streams(logGroupName=group)["logStreams"][0]
    assert s["firstEventTimestamp"] == base and s["lastEventTimestamp"] == base + 100
    assert s["lastIngestionTime"] >= s["creationTime"]

    # PutLogEvents' rules and errors.
    with pytest.raises(logs.exceptions.InvalidParameterException) as e:
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": base + 2, "message": "b"}, {"timestamp": base + 1, "message": "a"}])
    assert "chronological order" in str(e.value)
    old = now_ms() - 15 * 86_400_000
    future = now_ms() + 3 * 3_600_000
    out = logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": old, "message": "too old"}, {"timestamp": now_ms(), "message": "kept"},
        {"timestamp": future, "message": "too new"}])
    assert out["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 2}
    with pytest.raises(logs.exceptions.ResourceNotFoundException) as e:
        logs.put_log_events(logGroupName=group, logStreamName="nope", logEvents=[{"timestamp": base, "message": "x"}])
    assert e.value.response["Error"]["Message"] == "The specified log stream does not exist."
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName=group + "-none", logStreamName=stream)
    with pytest.raises(logs.exceptions.InvalidParameterException) as e:
        logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken="f/123")
    assert "nextToken" in str(e.value)
    unchecked = logs_client(fleet, validate=False)
    with pytest.raises(unchecked.exceptions.ClientError) as e:
        unchecked.get_log_events(logGroupName=group, logStreamName=stream, limit="ten")
    assert error_code(e) == "SerializationException"
    with pytest.raises(unchecked.exceptions.InvalidParameterException):
        unchecked.get_log_events(logGroupName=group, logStreamName=stream, limit=0)
    with pytest.raises(unchecked.exceptions.ClientError) as e:
        unchecked.create_export_task(logGroupName=group, fromTime=0, to=1, destination="b")
    assert error_code(e) == "UnknownOperationException"
    assert "does not serve" in e.value.response["Error"]["Message"]


# ---------------------------------------------------------------- the awslogs driver


LINES = 20
# The engine timestamps stdout and stderr in two copiers of its own: under CI's load (16 runnable
# threads on 2 cores) one stalled for over 50 ms and put "err 15" after "out 16". 200 ms apart,
# the order of the lines is what the container did, not the engine's scheduling.
WRITER = (
    'for i in $(seq 1 %d); do echo "out $i"; sleep 0.2; echo "err $i" >&2; sleep 0.2; done; '
    'echo "the quoted phrase is here"; echo "unrelated line"' % LINES
)
EXPECTED = [x for i in range(1, LINES + 1) for x in (f"out {i}", f"err {i}")] + [
    "the quoted phrase is here", "unrelated line"]


def test_awslogs_task_output_in_order_readable_after_the_container_is_removed(ecs, logs, aws, cluster):
    group = "/ecs/" + helpers.unique("app")
    logs.create_log_group(logGroupName=group)
    family = helpers.unique("writer")
    awslogs_task(ecs, family, group, WRITER, prefix="web")
    arn = run_task(ecs, cluster, family)
    task_id = arn.rsplit("/", 1)[1]
    stream = f"web/main/{task_id}"

    # Readable while it runs.
    wait_for(lambda: len(events_once_created(logs, group, stream)) >= 4, timeout=60, what="the first lines")
    t = wait_stopped(ecs, cluster, arn)
    assert t["containers"][0]["exitCode"] == 0
    events = wait_for(lambda: (lambda ev: ev if len(ev) >= len(EXPECTED) else None)(all_events(logs, group, stream)),
                      timeout=30, what="every line")
    assert [e["message"] for e in events] == EXPECTED
    assert all(e["ingestionTime"] >= e["timestamp"] - 1000 for e in events)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)

    # The aws CLI: the stream's name as ECS names it, forward and backward tokens.
    streams = aws("logs", "describe-log-streams", "--log-group-name", group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    first = aws("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream,
                "--start-from-head", "--limit", "15")
    second = aws("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream,
                 "--limit", "15", "--next-token", first["nextForwardToken"])
    assert [e["message"] for e in first["events"] + second["events"]] == EXPECTED[:30]
    back = aws("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream,
               "--limit", "15", "--next-token", second["nextBackwardToken"])
    assert [e["message"] for e in back["events"]] == EXPECTED[:15]
    found = aws("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", '"quoted phrase"')
    assert [e["message"] for e in found["events"]] == ["the quoted phrase is here"]
    errs = aws("logs", "filter-log-events", "--log-group-name", group, "--log-stream-name-prefix", "web/",
               "--filter-pattern", "err")
    assert [e["message"] for e in errs["events"]] == [f"err {i}" for i in range(1, LINES + 1)]

    # The container is gone; the events stay.
    cid = t["containers"][0]["runtimeId"]
    docker("rm", "-f", cid)
    assert not docker("ps", "-aq", "--filter", f"id={cid}")
    assert [e["message"] for e in all_events(logs, group, stream)] == EXPECTED
    # Events are not in the control-plane store: the server's database has none of the lines
    # the container made up as it ran (the task definition's command holds the others).
    db = fleet_store_bytes(ecs)
    assert b"out 17" not in db and b"err 20" not in db


def fleet_store_bytes(_ecs):
    """The bytes of every file of the server's SQLite store (not its log store)."""
    root = FLEET_DIR["server"]
    out = b""
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out += f.read()
    return out


FLEET_DIR = {}


@pytest.fixture(scope="module", autouse=True)
def remember_fleet_dir(fleet):
    FLEET_DIR["server"] = str(fleet.server.data_dir)


def test_a_missing_group_fails_the_task_unless_create_group(ecs, logs, cluster):
    group = "/ecs/" + helpers.unique("missing")
    family = helpers.unique("nogroup")
    awslogs_task(ecs, family, group, "echo never")
    t = wait_stopped(ecs, cluster, run_task(ecs, cluster, family))
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotStartContainerError: ")
    assert "ResourceNotFoundException: The specified log group does not exist." in t["stoppedReason"]
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_log_streams(logGroupName=group)

    family = helpers.unique("mkgroup")
    awslogs_task(ecs, family, group, "echo created", create_group="true")
    arn = run_task(ecs, cluster, family)
    wait_stopped(ecs, cluster, arn)
    stream = f"app/main/{arn.rsplit('/', 1)[1]}"
    wait_for(lambda: [e["message"] for e in events_once_created(logs, group, stream)] == ["created"],
             timeout=30, what="the created group's line")
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["logGroupName"] == group


def test_awslogs_options_are_checked(ecs, logs, cluster):
    group = "/ecs/" + helpers.unique("opts")
    logs.create_log_group(logGroupName=group)
    cases = [
        ({"awslogs-endpoint": "http://x"}, "awslogs-endpoint"),
        ({"awslogs-unknown": "1"}, "unknown log opt 'awslogs-unknown'"),
        ({"mode": "sometimes"}, "logger mode not supported"),
        ({"max-buffer-size": "4m"}, "only supported with 'mode=non-blocking'"),
        ({"awslogs-datetime-format": "%Y", "awslogs-multiline-pattern": "^x"}, "at the same time"),
    ]
    for extra, want in cases:
        family = helpers.unique("badopts")
        awslogs_task(ecs, family, group, "true", extra_options=extra)
        with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
            ecs.run_task(cluster=cluster, taskDefinition=family)
        assert want in str(e.value), (extra, str(e.value))
    # Another region than the server's fails the task on the agent.
    family = helpers.unique("region")
    awslogs_task(ecs, family, group, "true", extra_options={"awslogs-region": "eu-west-1"})
    t = wait_stopped(ecs, cluster, run_task(ecs, cluster, family))
    assert "awslogs-region eu-west-1 is not this installation's region" in t["stoppedReason"]
    # Multi-line events and non-blocking mode.
    family = helpers.unique("multi")
    awslogs_task(ecs, family, group,
                 'echo "ERROR boom"; echo "  at frame 1"; echo "  at frame 2"; echo "INFO next"',
                 prefix="multi", extra_options={"awslogs-multiline-pattern": "^(ERROR|INFO)",
                                                "mode": "non-blocking", "max-buffer-size": "1m"})
    arn = run_task(ecs, cluster, family)
    wait_stopped(ecs, cluster, arn)
    stream = f"multi/main/{arn.rsplit('/', 1)[1]}"
    wait_for(lambda: [e["message"] for e in events_once_created(logs, group, stream)] ==
             ["ERROR boom\n  at frame 1\n  at frame 2", "INFO next"], timeout=30, what="multi-line events")


# ---------------------------------------------------------------- flotilla logs -f


def test_flotilla_logs_follows_every_task_of_a_service(ecs, logs, cluster, fleet):
    group = "/ecs/" + helpers.unique("svc")
    logs.create_log_group(logGroupName=group)
    family = helpers.unique("ticker")
    awslogs_task(ecs, family, group, 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.3; done', prefix="svc")
    service = helpers.unique("ticker")
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=family, desiredCount=2)
    try:
        env = dict(os.environ, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
                   AWS_DEFAULT_REGION=helpers.REGION)
        env.pop("AWS_SESSION_TOKEN", None)
        proc = subprocess.Popen(
            [str(helpers.FLOTILLA_BIN), "logs", "-f", service, "--cluster", cluster, "--endpoint", fleet.endpoint],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            def both_tasks():
                tasks = {line.split(" | ")[0] for line in list(lines) if " | tick " in line}
                return tasks if len(tasks) == 2 else None
            prefixes = wait_for(both_tasks, timeout=90, what="lines of both tasks")
            # Lines keep coming: it follows.
            n = len(lines)
            wait_for(lambda: len(lines) > n + 4, timeout=30, what="more lines")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
        arns = ecs.list_tasks(cluster=cluster, serviceName=service)["taskArns"]
        ids = {a.rsplit("/", 1)[1][:8] for a in arns}
        assert {p.split("/")[0] for p in prefixes} == ids
        assert all(p.endswith("/main") for p in prefixes)
        # Each task's ticks in order, none twice.
        for p in prefixes:
            ticks = [int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(p + " | tick ")]
            assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks
        # The same as JSON, without following.
        task = arns[0]
        out = subprocess.run(
            [str(helpers.FLOTILLA_BIN), "logs", task, "--cluster", cluster, "--endpoint", fleet.endpoint,
             "--output", "json"], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert rows and all(r["task"] == task.rsplit("/", 1)[1] and r["container"] == "main" for r in rows)
        assert rows[0]["message"] == "tick 1"
        assert rows[0]["logStreamName"] == f"svc/main/{task.rsplit('/', 1)[1]}"
    finally:
        ecs.update_service(cluster=cluster, service=service, desiredCount=0)
        ecs.delete_service(cluster=cluster, service=service, force=True)


# ---------------------------------------------------------------- agent restart


def test_an_agent_restart_neither_loses_nor_repeats_a_line(ecs, logs, cluster, fleet):
    group = "/ecs/" + helpers.unique("restart")
    logs.create_log_group(logGroupName=group)
    family = helpers.unique("counter")
    total = 120
    awslogs_task(ecs, family, group,
                 f'for i in $(seq 1 {total}); do echo "line $i"; echo "eline $i" >&2; sleep 0.05; done',
                 prefix="count")
    arn = run_task(ecs, cluster, family)
    stream = f"count/main/{arn.rsplit('/', 1)[1]}"
    wait_for(lambda: len(events_once_created(logs, group, stream)) >= 20, timeout=60, what="the first lines")
    agent = fleet.agents[0]
    agent.kill(signal.SIGKILL)
    time.sleep(3)  # the container writes on while no agent follows it
    agent.start()
    agent.wait_session()
    wait_stopped(ecs, cluster, arn)
    want = sorted([f"line {i}" for i in range(1, total + 1)] + [f"eline {i}" for i in range(1, total + 1)])
    events = wait_for(lambda: (lambda ev: ev if len(ev) >= 2 * total else None)(all_events(logs, group, stream)),
                      timeout=30, what="every line")
    got = [e["message"] for e in events]
    assert sorted(got) == want, "lost or repeated lines"
    assert [m for m in got if m.startswith("line ")] == [f"line {i}" for i in range(1, total + 1)]


# ---------------------------------------------------------------- a region: reads at any replica


def test_a_replica_forwards_reads_to_the_owner_of_the_events(tmp_path, test_image):
    """Two replicas on one etcd; the agent's session is held by replica A. Replica B serves the
    container's stream (through A, which holds the session) and A's PutLogEvents stream (A's
    data directory): the events are never copied, the read is forwarded once."""
    with helpers.SoloEtcd(tmp_path) as etcd:
        store = etcd.store('logs')
        # Replicas on etcd share one secrets key (the server refuses to start on etcd without one).
        key = helpers.secrets_key_file(tmp_path)
        fleet_a = replica_b = None
        try:
            fleet_a = Fleet(tmp_path / "a", server_args=["--store", store, "--secrets-key-file", str(key)])
            replica_b = helpers.Server(tmp_path / "b", tmp_path / "b.log", mode="server",
                                       extra_args=["--store", store, "--heartbeat-seconds", "2",
                                                   "--secrets-key-file", str(key)])
            ecs_a = ecs_client(fleet_a)
            cluster = helpers.unique("region")
            ecs_a.create_cluster(clusterName=cluster)
            fleet_a.add_agent(cluster)
            instances_ready(ecs_a, cluster, 1)
            logs_a = logs_client(fleet_a)
            logs_b = boto3.client(
                "logs", endpoint_url=replica_b.endpoint, region_name=helpers.REGION,
                aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
                config=Config(retries={"max_attempts": 1}))
            group = "/ecs/" + helpers.unique("far")
            logs_b.create_log_group(logGroupName=group)
            family = helpers.unique("far")
            awslogs_task(ecs_a, family, group, 'echo "from the host"; echo "second line"')
            arn = run_task(ecs_a, cluster, family)
            wait_stopped(ecs_a, cluster, arn)
            stream = f"app/main/{arn.rsplit('/', 1)[1]}"
            wait_for(lambda: len(events_once_created(logs_a, group, stream)) == 2, timeout=30, what="the lines at A")
            # B holds no session of the agent: it asks A.
            assert [e["message"] for e in all_events(logs_b, group, stream)] == ["from the host", "second line"]
            found = logs_b.filter_log_events(logGroupName=group, filterPattern='"second line"')["events"]
            assert [e["message"] for e in found] == ["second line"]
            # A stream created at A lives in A's data directory; B writes and reads it through A.
            logs_a.create_log_stream(logGroupName=group, logStreamName="api")
            logs_b.put_log_events(logGroupName=group, logStreamName="api",
                                  logEvents=[{"timestamp": now_ms(), "message": "written at B"}])
            assert [e["message"] for e in all_events(logs_a, group, "api")] == ["written at B"]
            assert [e["message"] for e in all_events(logs_b, group, "api")] == ["written at B"]
            # A gone: B says where the events are, it does not pretend there are none.
            fleet_a.agents[0].kill()
            fleet_a.server.kill()
            with pytest.raises(logs_b.exceptions.ServiceUnavailableException) as e:
                logs_b.get_log_events(logGroupName=group, logStreamName="api")
            assert "replica" in str(e.value)
        finally:
            if replica_b:
                replica_b.kill()
            if fleet_a:
                fleet_a.close()
