"""`flotilla service ...`, Flotilla's own CLI for services, against a real fleet: create from a
JSON file, deploy a new revision while the rollout is drawn, then the ps and events tables and
their --output json forms."""

import json
import os
import subprocess


import helpers
from fleet import ecs_for, instances_ready, wait_for
from test_services import sleeper, steady


def flotilla(fleet, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_ECS=fleet.endpoint, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY, AWS_DEFAULT_REGION=helpers.REGION)
    out = subprocess.run([str(helpers.FLOTILLA_BIN), *args], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_service_verbs_create_deploy_and_show(fleet, tmp_path):
    cluster = helpers.unique("c")
    ecs = ecs_for(fleet)
    ecs.create_cluster(clusterName=cluster)
    fleet.add_agent(cluster)
    instances_ready(ecs, cluster, 1)
    family = helpers.unique("cli")
    v1 = sleeper(ecs, family, "v1")
    v2 = sleeper(ecs, family, "v2")
    name = helpers.unique("svc")
    spec = tmp_path / "service.json"
    spec.write_text(json.dumps({"serviceName": name, "taskDefinition": v1["taskDefinitionArn"], "desiredCount": 2}))

    created = flotilla(fleet, "service", "create", "--cluster", cluster, "--file", str(spec), "--output", "json")
    assert json.loads(created.stdout)["serviceName"] == name
    wait_for(lambda: steady(ecs, cluster, name, 2), timeout=60, what="2 tasks steady")

    deployed = flotilla(fleet, "service", "deploy", "--cluster", cluster, name, "--task-definition", v2["taskDefinitionArn"])
    lines = deployed.stdout.splitlines()
    assert lines[0].startswith(f"deploying {name} to "), deployed.stdout
    assert any(l.startswith("PRIMARY") and "running" in l for l in lines), deployed.stdout
    assert any("event: " in l and "has started" in l for l in lines), deployed.stdout
    assert lines[-1] == f"{name} is steady on {family}:2", deployed.stdout

    ps = flotilla(fleet, "service", "ps", "--cluster", cluster, name)
    rows = ps.stdout.splitlines()
    assert rows[0].split()[:4] == ["TASK", "TASK", "DEFINITION", "LAST"]
    running = [r for r in rows[1:] if f"{family}:2" in r and " RUNNING " in r]
    assert len(running) == 2, ps.stdout
    as_json = json.loads(flotilla(fleet, "service", "ps", "--cluster", cluster, name, "-o", "json").stdout)
    assert sum(t["lastStatus"] == "RUNNING" for t in as_json) == 2

    events = flotilla(fleet, "service", "events", "--cluster", cluster, name, "--limit", "5").stdout
    assert "has reached a steady state." in events
    ls = flotilla(fleet, "service", "ls", "--cluster", cluster).stdout
    assert name in ls and f"{family}:2" in ls

    missing = flotilla(fleet, "service", "deploy", "--cluster", cluster, "ghost", "--task-definition", family, check=False)
    assert missing.returncode == 1 and "ghost" in missing.stderr, missing.stderr
