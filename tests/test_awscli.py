"""The README walk-through with the real aws CLI (awscli 1.x) as a subprocess: exit code 0 and
JSON on stdout on success; exit code 255 and botocore's one-line message on a modeled error."""

import json
import re
import subprocess

import pytest

from helpers import ACCOUNT, REGION, TESTS_DIR, unique

WEBAPP = TESTS_DIR / "data" / "webapp-taskdef.json"


@pytest.fixture
def aws(aws_cli, cli_env):
    def run(*args, expect=0):
        p = subprocess.run(
            [aws_cli, "ecs", *args, "--output", "json"],
            env=cli_env, capture_output=True, text=True, timeout=60,
        )
        assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
        if expect == 0:
            return json.loads(p.stdout) if p.stdout.strip() else {}
        return p.stderr

    return run


def assert_error(stderr, code, operation, message=None):
    m = re.search(r"An error occurred \((\w+)\) when calling the (\w+) operation: (.+)", stderr)
    assert m, stderr
    assert (m.group(1), m.group(2)) == (code, operation), stderr
    if message is not None:
        assert m.group(3).strip() == message


def test_walkthrough(aws):
    cluster = unique("cli")
    family = unique("webapp")

    c = aws("create-cluster", "--cluster-name", cluster)["cluster"]
    assert c["clusterName"] == cluster and c["status"] == "ACTIVE"
    assert c["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"
    # The CLI follows nextToken itself, so this is every cluster.
    assert c["clusterArn"] in aws("list-clusters")["clusterArns"]

    # Register from the JSON file; --family overrides the file's family.
    spec = json.loads(WEBAPP.read_text())
    td = aws(
        "register-task-definition", "--cli-input-json", f"file://{WEBAPP}", "--family", family
    )["taskDefinition"]
    assert td["taskDefinitionArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:1"
    assert [x["name"] for x in td["containerDefinitions"]] == [
        x["name"] for x in spec["containerDefinitions"]
    ]
    assert (td["cpu"], td["memory"]) == ("512", "1024")  # "1GB" normalized to MiB
    web = td["containerDefinitions"][0]
    assert web["links"] == ["api"] and web["dependsOn"][0]["condition"] == "HEALTHY"
    assert web["portMappings"][0] == {"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}
    assert isinstance(td["registeredAt"], (int, float, str))

    d = aws("describe-task-definition", "--task-definition", family, "--include", "TAGS")
    assert d["taskDefinition"]["taskDefinitionArn"] == td["taskDefinitionArn"]
    assert d["taskDefinition"]["containerDefinitions"] == td["containerDefinitions"]
    assert d["tags"] == [{"key": "app", "value": "webapp"}]

    for _ in range(4):
        aws("register-task-definition", "--cli-input-json", f"file://{WEBAPP}", "--family", family)
    arns = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{i}" for i in range(1, 6)]

    # --page-size drives maxResults; --max-items truncates and hands back a NextToken.
    first = aws("list-task-definitions", "--family-prefix", family,
                "--page-size", "2", "--max-items", "3")
    assert first["taskDefinitionArns"] == arns[:3]
    assert first["NextToken"]
    rest = aws("list-task-definitions", "--family-prefix", family, "--page-size", "2",
               "--starting-token", first["NextToken"])
    assert rest["taskDefinitionArns"] == arns[3:]
    assert "NextToken" not in rest
    everything = aws("list-task-definitions", "--family-prefix", family, "--page-size", "1")
    assert everything["taskDefinitionArns"] == arns
    desc = aws("list-task-definitions", "--family-prefix", family, "--sort", "DESC",
               "--no-paginate", "--max-results", "2")
    assert desc["taskDefinitionArns"] == arns[::-1][:2] and desc["nextToken"]

    fams = aws("list-task-definition-families", "--family-prefix", family)
    assert fams["families"] == [family]

    dr = aws("deregister-task-definition", "--task-definition", f"{family}:5")["taskDefinition"]
    assert dr["status"] == "INACTIVE"
    assert aws("describe-task-definition", "--task-definition", family)["taskDefinition"][
        "revision"] == 4

    deleted = aws("delete-cluster", "--cluster", cluster)["cluster"]
    assert deleted["status"] == "INACTIVE"
    # ECS keeps listing a deleted cluster for a while, INACTIVE.
    assert c["clusterArn"] in aws("list-clusters")["clusterArns"]


def test_cli_modeled_errors_exit_255(aws):
    ghost = unique("ghost")
    err = aws("delete-cluster", "--cluster", ghost, expect=255)
    assert_error(err, "ClusterNotFoundException", "DeleteCluster", "Cluster not found.")
    err = aws("describe-task-definition", "--task-definition", f"{ghost}:1", expect=255)
    assert_error(err, "ClientException", "DescribeTaskDefinition",
                 "Unable to describe task definition.")
    err = aws("list-services-by-namespace", "--namespace", ghost, expect=255)
    assert_error(err, "UnsupportedFeatureException", "ListServicesByNamespace")


def test_cli_describe_clusters_missing_is_not_an_error(aws):
    ghost = unique("ghost")
    r = aws("describe-clusters", "--clusters", ghost)
    assert r["clusters"] == []
    assert r["failures"] == [
        {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{ghost}", "reason": "MISSING"}
    ]


def test_cli_bad_credentials(aws_cli, cli_env):
    env = dict(cli_env, AWS_SECRET_ACCESS_KEY="wrong-secret")
    p = subprocess.run([aws_cli, "ecs", "list-clusters"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 255
    assert_error(p.stderr, "InvalidSignatureException", "ListClusters")
    env = dict(cli_env, AWS_ACCESS_KEY_ID="AKIDUNKNOWN000000000")
    p = subprocess.run([aws_cli, "ecs", "list-clusters"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 255
    assert_error(p.stderr, "UnrecognizedClientException", "ListClusters")
