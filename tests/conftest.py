"""Fixtures for the Flotilla end-to-end suite.

One `flotilla dev` server (binary from $FLOTILLA_BIN, default target/debug/flotilla of this
repository; the suite never builds it) is started per session on a free port with a temporary
data dir. `start_server` starts extra servers, e.g. for the durability test. Every server is
killed at the end of the session.
"""

import os
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import helpers


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory):
    started = []

    def start(data_dir=None, port=None, **kw):
        if data_dir is None:
            data_dir = tmp_path_factory.mktemp("flotilla-data")
        logs = tmp_path_factory.mktemp("flotilla-log")
        s = helpers.Server(data_dir, logs / "server.log", port=port, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


@pytest.fixture(scope="session")
def start_server(server_factory):
    """start_server(data_dir=None, port=None, region=..., account=...) -> helpers.Server;
    killed at session end."""
    return server_factory


@pytest.fixture(scope="session")
def server(server_factory):
    return server_factory()


@pytest.fixture(scope="session")
def endpoint(server):
    return server.endpoint


def make_client(endpoint, retries=1, region=helpers.REGION, validate=True):
    return boto3.client(
        "ecs",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=helpers.ACCESS_KEY,
        aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(
            retries={"max_attempts": retries, "mode": "standard"},
            parameter_validation=validate,
        ),
    )


@pytest.fixture(scope="session")
def ecs(endpoint):
    """A boto3 ECS client for the session server (no retries: every error surfaces at once)."""
    return make_client(endpoint)


@pytest.fixture(scope="session")
def ecs_unchecked(endpoint):
    """Like `ecs`, but botocore's client-side parameter validation is off, so requests that
    boto3 would refuse to send reach the server."""
    return make_client(endpoint, validate=False)


@pytest.fixture(scope="session")
def aws_cli():
    cli = Path(sys.executable).parent / "aws"
    assert cli.exists(), f"the aws CLI is expected next to {sys.executable}"
    return str(cli)


@pytest.fixture(scope="session")
def cli_env(endpoint, tmp_path_factory):
    """Environment for running the aws CLI against the session server, isolated from any
    ~/.aws configuration."""
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_ECS=endpoint,
        AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
        AWS_DEFAULT_REGION=helpers.REGION,
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_PAGER="",
        HOME=str(home),
    )
    return env


@pytest.fixture(scope="session")
def test_image():
    """flotilla/busybox:latest, built from Debian's busybox-static (scripts/images)."""
    import subprocess

    subprocess.run([str(helpers.REPO_ROOT / "scripts" / "images")], check=True)


@pytest.fixture
def fleet(tmp_path, test_image):
    """A `flotilla server` and the agents a test adds (tests/fleet.py); torn down after."""
    from fleet import Fleet

    f = Fleet(tmp_path)
    yield f
    f.close()


# The modules that take longest start first, so that with pytest-xdist (--dist loadfile) no
# worker begins one of them when the others are nearly done.
SLOW_FIRST = ["test_region.py", "test_blue_green.py", "test_load_balancing.py", "test_autoscaling.py",
              "test_service_deployments.py", "test_fargate.py",
              "test_durability.py", "test_bad_input.py"]


def pytest_configure(config):
    # The controlling process (not an xdist worker) chooses the file figures are collected in.
    if not hasattr(config, "workerinput") and "FLOTILLA_TEST_REPORT" not in os.environ:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="flotilla-report-", suffix=".jsonl")
        os.close(fd)
        os.environ["FLOTILLA_TEST_REPORT"] = path
        config._flotilla_report = path


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a module and among the rest is kept


def pytest_terminal_summary(terminalreporter, config):
    import json

    figures = {}
    path = getattr(config, "_flotilla_report", None)
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, value = json.loads(line)
                figures[key] = value
        os.unlink(path)
    figures.update({k: str(v) for k, v in helpers.REPORT.items()})
    for key, value in figures.items():
        terminalreporter.write_line(f"{key}: {value}")
