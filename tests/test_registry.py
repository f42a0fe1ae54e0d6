"""Image pulls from a real registry with basic auth: Debian's docker-registry on 127.0.0.1,
an image pushed to it, and either an agent whose Docker config holds (or lacks) the credentials,
inline or through a credential helper, or a task whose `repositoryCredentials` name a Secrets
Manager secret holding them (issue 14, acceptance 4)."""

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

import helpers
from fleet import IMAGE, Fleet, docker, ecs_for, instances_ready, wait_for
from test_secrets import EXECUTION_ROLE, cli_env
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
        # A third host keeps its credentials in a credential helper (`credsStore`), a script on
        # its PATH that answers for this registry only and logs what it was asked.
        helper_dir, with_helper = tmp_path / "helper-bin", tmp_path / "docker-helper"
        helper_dir.mkdir()
        with_helper.mkdir()
        asked = tmp_path / "helper-asked"
        helper = helper_dir / "docker-credential-flotilla-test"
        helper.write_text(f"""#!/bin/sh
[ "$1" = get ] || exit 3
server=$(cat)
echo "$server" >> {asked}
if [ "$server" = "{registry}" ]; then
  printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
        helper.chmod(0o755)
        (with_helper / "config.json").write_text(json.dumps({"auths": {registry: {}}, "credsStore": "flotilla-test"}))
        fleet.add_agent(cluster, az="us-east-1c", attributes={"creds": "helper"},
                        env={"DOCKER_CONFIG": str(with_helper), "PATH": f"{helper_dir}:{os.environ['PATH']}"})
        instances_ready(ecs, cluster, 3)
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

        # Through the credential helper: the image is removed again so the pull must happen.
        docker("rmi", image)
        arn = ecs.run_task(cluster=cluster, taskDefinition=family,
                           placementConstraints=[{"type": "memberOf", "expression": "attribute:creds == helper"}])["tasks"][0]["taskArn"]
        wait_status(ecs, cluster, arn, "RUNNING", timeout=90)
        assert registry in asked.read_text().split()
        ecs.stop_task(cluster=cluster, task=arn)
        wait_status(ecs, cluster, arn, "STOPPED")
    finally:
        fleet.close()
        docker("rmi", "-f", image, check=False)


def test_repository_credentials_pull_a_private_image(tmp_path, registry, test_image, aws_cli):
    """Issue 14, acceptance 4: a private image in docker-registry with basic auth runs with
    `repositoryCredentials` (a secret created with `aws secretsmanager create-secret`) and fails
    with CannotPullContainerError without them or with wrong ones. The agent's own Docker
    config is an empty directory, so nothing but the task's credentials can open the registry."""
    image = f"{registry}/private/busybox:creds-{helpers.unique('v')}"
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
        empty = tmp_path / "docker-empty"
        empty.mkdir()
        fleet.add_agent(cluster, env={"DOCKER_CONFIG": str(empty)})
        instances_ready(ecs, cluster, 1)
        assert list(empty.iterdir()) == [], "the agent's Docker config must hold no credentials"

        env = cli_env(fleet, tmp_path)

        def aws(*args):
            out = subprocess.run([aws_cli, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else {}

        good_arn = aws("secretsmanager", "create-secret", "--name", helpers.unique("registry/good"),
                       "--secret-string", json.dumps({"username": USER, "password": PASSWORD}))["ARN"]
        wrong_name = helpers.unique("registry/wrong")
        aws("secretsmanager", "create-secret", "--name", wrong_name,
            "--secret-string", json.dumps({"username": USER, "password": "not-" + PASSWORD}))
        no_password = helpers.unique("registry/nopw")
        aws("secretsmanager", "create-secret", "--name", no_password, "--secret-string", json.dumps({"username": USER}))
        missing = f"arn:aws:secretsmanager:{helpers.REGION}:{helpers.ACCOUNT}:secret:{helpers.unique('absent')}-AbCdEf"

        family = helpers.unique("private")
        app = {"name": "app", "image": image, "memory": 16, "stopTimeout": 1,
               "command": ["sh", "-c", "echo private-image-ran; sleep 600"]}

        def register(credentials):
            extra = {"repositoryCredentials": {"credentialsParameter": credentials}} if credentials else {}
            return ecs.register_task_definition(family=family, executionRoleArn=EXECUTION_ROLE,
                                                containerDefinitions=[{**app, **extra}])["taskDefinition"]["taskDefinitionArn"]

        def run(td):
            return ecs.run_task(cluster=cluster, taskDefinition=td)["tasks"][0]["taskArn"]

        # ECS's rule: private registry credentials are read with the execution role.
        with pytest.raises(ClientError) as e:
            ecs.register_task_definition(family=family, containerDefinitions=[
                {**app, "repositoryCredentials": {"credentialsParameter": good_arn}}])
        assert e.value.response["Error"]["Code"] == "ClientException"
        assert e.value.response["Error"]["Message"] == (
            "Private repository authentication requires that the task definition specify a value for executionRoleArn.")

        # Without credentials, and with wrong ones (a secret named by its name), the registry
        # refuses the pull.
        for td in (register(None), register(wrong_name)):
            arn = run(td)
            task = wait_status(ecs, cluster, arn, "STOPPED", timeout=90)
            assert task["stopCode"] == "TaskFailedToStart", task
            reason = task["containers"][0]["reason"]
            assert reason.startswith("CannotPullContainerError: ") and registry in reason, reason
            assert task["stoppedReason"] == reason, task

        # A secret that does not exist, or holds no password: ResourceInitializationError
        # naming it, before any pull.
        for credentials, says in ((missing, "ResourceNotFoundException"),
                                  (no_password, "password from secret " + no_password)):
            task = wait_status(ecs, cluster, run(register(credentials)), "STOPPED", timeout=90)
            assert task["stopCode"] == "TaskFailedToStart", task
            assert task["stoppedReason"].startswith(
                "ResourceInitializationError: unable to pull secrets or registry auth: "), task["stoppedReason"]
            assert credentials in task["stoppedReason"] and says in task["stoppedReason"], task["stoppedReason"]

        # With the right credentials the image is pulled and the task runs.
        td = register(good_arn)
        arn = run(td)
        task = wait_status(ecs, cluster, arn, "RUNNING", timeout=90)
        assert task["pullStartedAt"] <= task["pullStoppedAt"]
        container_id = task["containers"][0]["runtimeId"]
        wait_for(lambda: "private-image-ran" in docker("logs", container_id), timeout=30, what="the container's output")

        # The reference is shown; the password is nowhere: not in Describe answers, not in the
        # server's or the agent's logs.
        shown = ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]["containerDefinitions"][0]
        assert shown["repositoryCredentials"] == {"credentialsParameter": good_arn}
        described = json.dumps([shown, ecs.describe_tasks(cluster=cluster, tasks=[arn])], default=str)
        logs = (fleet.tmp / "server.log").read_text(errors="replace") + fleet.agents[0].log()
        for text in (described, logs):
            assert PASSWORD not in text

        ecs.stop_task(cluster=cluster, task=arn)
        task = wait_status(ecs, cluster, arn, "STOPPED")
        assert task["containers"][0].get("exitCode") is not None, task
    finally:
        fleet.close()
        docker("rmi", "-f", image, check=False)
