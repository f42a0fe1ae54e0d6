"""Image pulls from a real registry with basic auth: Debian's docker-registry on 127.0.0.1,
an image pushed to it, and an agent whose Docker config holds (or lacks) the credentials."""

import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

import helpers
from fleet import IMAGE, Fleet, docker, ecs_for, instances_ready, wait_for
from test_tasks_docker import wait_status

USER, PASSWORD = "flotilla", "registry-secret"


@pytest.fixture
def registry(tmp_path):
    binary = shutil.which("docker-registry")
    htpasswd = shutil.which("htpasswd")
    assert binary and htpasswd, "scripts/test installs Debian's docker-registry and apache2-utils"
    port = helpers.free_port()
    (tmp_path / "htpasswd").write_text(
        subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True).stdout
    )
    config = tmp_path / "registry.yml"
    config.write_text(
        f"""version: 0.1
storage:
  filesystem:
    rootdirectory: {tmp_path / 'data'}
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: flotilla-test
    path: {tmp_path / 'htpasswd'}
"""
    )
    log = open(tmp_path / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)

    def up():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
        except urllib.error.HTTPError as e:
            return e.code == 401  # running, and asking for credentials
        except OSError:
            return False
        return False

    wait_for(up, timeout=20, what="the registry to answer")
    yield f"127.0.0.1:{port}"
    proc.kill()
    proc.wait()
    log.close()


def docker_with(config_dir, *args):
    env = dict(os.environ, DOCKER_CONFIG=str(config_dir))
    out = subprocess.run(["docker", *args], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_agent_pulls_from_a_registry_with_basic_auth(tmp_path, registry, test_image):
    image = f"{registry}/flotilla/busybox:auth-{helpers.unique('v')}"
    logged_in = tmp_path / "docker-logged-in"
    logged_in.mkdir()
    subprocess.run(
        ["docker", "login", registry, "-u", USER, "--password-stdin"],
        input=PASSWORD, text=True, check=True, capture_output=True,
        env=dict(os.environ, DOCKER_CONFIG=str(logged_in)),
    )
    docker("tag", IMAGE, image)
    docker_with(logged_in, "push", image)
    docker("rmi", image)  # the agent must pull it

    fleet = Fleet(tmp_path / "fleet")
    try:
        cluster = helpers.unique("c")
        ecs = ecs_for(fleet)
        ecs.create_cluster(clusterName=cluster)
        anonymous = tmp_path / "docker-anonymous"
        anonymous.mkdir()
        fleet.add_agent(cluster, az="us-east-1a", attributes={"creds": "no"}, env={"DOCKER_CONFIG": str(anonymous)})
        fleet.add_agent(cluster, az="us-east-1b", attributes={"creds": "yes"}, env={"DOCKER_CONFIG": str(logged_in)})
        instances_ready(ecs, cluster, 2)
        family = helpers.unique("private")
        ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": "main", "image": image, "memory": 16, "command": ["sleep", "600"], "stopTimeout": 1}],
        )

        # Without credentials the registry refuses the pull, and the task says why.
        arn = ecs.run_task(cluster=cluster, taskDefinition=family,
                           placementConstraints=[{"type": "memberOf", "expression": "attribute:creds == no"}])["tasks"][0]["taskArn"]
        task = wait_status(ecs, cluster, arn, "STOPPED")
        assert task["stopCode"] == "TaskFailedToStart"
        reason = task["containers"][0]["reason"]
        assert reason.startswith("CannotPullContainerError") and registry in reason, reason

        # With the credentials in the agent's Docker config, the pull succeeds and the task runs.
        arn = ecs.run_task(cluster=cluster, taskDefinition=family,
                           placementConstraints=[{"type": "memberOf", "expression": "attribute:creds == yes"}])["tasks"][0]["taskArn"]
        task = wait_status(ecs, cluster, arn, "RUNNING", timeout=90)
        assert task["pullStartedAt"] <= task["pullStoppedAt"]
        assert docker("image", "inspect", image, "--format", "{{.Id}}")
        ecs.stop_task(cluster=cluster, task=arn)
        wait_status(ecs, cluster, arn, "STOPPED")
    finally:
        fleet.close()
        docker("rmi", "-f", image, check=False)
