"""Blue/green, linear and canary deployments (ECS's BLUE_GREEN, LINEAR and CANARY strategies),
end to end on real Docker with real traffic through Flotilla's load balancer data plane.

One service of awsvpc busybox httpd tasks (each answers `HOSTNAME VERSION`) sits behind an
application load balancer with two target groups (blue and green): the production listener's
rule forwards to both with weights, and a second listener (the test listener, named by its ARN
as for a network load balancer) does too. The server runs with `--deployment-minute-seconds 1`,
so a bake time of N minutes lasts N seconds. Everything runs twice: on the embedded store and on
etcd.

Checked: a BLUE_GREEN deployment under load fails no request, ends with every answer from green
and blue's tasks stopped after the bake time, through ECS's lifecycle stages; a LINEAR
deployment is seen at an intermediate weight (in DescribeRules and in the share of answers); a
StopServiceDeployment ROLLBACK during the bake time returns production traffic to blue at once;
misconfigurations are refused with their exact messages."""

import json
import os
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

import helpers
from fleet import Fleet, ecs_for, instances_ready, remove_awsvpc_network_if_unused, wait_for
from test_load_balancing import DEREGISTRATION_DELAY, HEALTH_PATH, VPC, Load, get, health, register, web

MINUTE_SECONDS = 1


@pytest.fixture(scope="module", params=["embedded", "etcd"])
def fleet(request, tmp_path_factory, test_image):
    tmp = tmp_path_factory.mktemp(f"bg-{request.param}")
    args = ["--deployment-minute-seconds", str(MINUTE_SECONDS)]
    etcd = f = None
    try:
        if request.param == "etcd":
            etcd = helpers.SoloEtcd(tmp / "etcd").__enter__()
            args += ["--store", etcd.store("bluegreen"), "--secrets-key-file", str(helpers.secrets_key_file(tmp))]
        f = Fleet(tmp / "fleet", server_args=args)
        f.cluster = helpers.unique("bg")
        ecs = ecs_for(f)
        ecs.create_cluster(clusterName=f.cluster)
        f.add_agent(f.cluster)
        instances_ready(ecs, f.cluster, 1)
        yield f
    finally:
        if f:
            f.close()
        if etcd:
            etcd.__exit__(None, None, None)
        remove_awsvpc_network_if_unused()


@pytest.fixture(scope="module")
def ecs(fleet):
    return ecs_for(fleet)


@pytest.fixture(scope="module")
def elbv2(aws_cli, fleet, tmp_path_factory):
    """`elbv2(*args)`: `aws elbv2 ARGS --output json` against the fleet, parsed."""
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION, AWS_ENDPOINT_URL=fleet.endpoint,
               AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
               AWS_PAGER="", HOME=str(home))

    def run(*args):
        out = subprocess.run([aws_cli, "elbv2", *args, "--output", "json"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert out.returncode == 0, f"aws elbv2 {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}

    return run


def target_group(elbv2, name):
    tg = elbv2("create-target-group", "--name", name, "--protocol", "HTTP", "--port", "8080",
               "--target-type", "ip", "--vpc-id", "vpc-0123456789abcdef0",
               "--health-check-path", HEALTH_PATH, "--health-check-interval-seconds", "5",
               "--health-check-timeout-seconds", "2", "--healthy-threshold-count", "2",
               "--unhealthy-threshold-count", "2")["TargetGroups"][0]["TargetGroupArn"]
    elbv2("modify-target-group-attributes", "--target-group-arn", tg, "--attributes",
          f"Key=deregistration_delay.timeout_seconds,Value={DEREGISTRATION_DELAY}")
    return tg


def both(blue, green, w_blue=100, w_green=0):
    return json.dumps([{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": blue, "Weight": w_blue}, {"TargetGroupArn": green, "Weight": w_green}]}}])


@pytest.fixture(scope="module")
def lb(elbv2):
    """A load balancer with a blue and a green target group, a production listener whose rule
    forwards to both (100/0), and a test listener whose default action does."""
    name = helpers.unique("bg")
    arn = elbv2("create-load-balancer", "--name", name, "--type", "application", "--subnets",
                "subnet-0123456789abcdef0", "subnet-0fedcba9876543210")["LoadBalancers"][0]["LoadBalancerArn"]
    blue, green = target_group(elbv2, name + "-b"), target_group(elbv2, name + "-g")
    port, test_port = helpers.free_port(), helpers.free_port()
    listener = elbv2("create-listener", "--load-balancer-arn", arn, "--protocol", "HTTP", "--port", str(port),
                     "--default-actions", both(blue, green))["Listeners"][0]["ListenerArn"]
    rule = elbv2("create-rule", "--listener-arn", listener, "--priority", "10", "--conditions",
                 "Field=path-pattern,Values=/*", "--actions", both(blue, green))["Rules"][0]["RuleArn"]
    test_listener = elbv2("create-listener", "--load-balancer-arn", arn, "--protocol", "HTTP",
                          "--port", str(test_port), "--default-actions",
                          both(blue, green))["Listeners"][0]["ListenerArn"]
    only_blue = elbv2("create-rule", "--listener-arn", listener, "--priority", "20", "--conditions",
                      "Field=path-pattern,Values=/blue-only/*", "--actions",
                      f"Type=forward,TargetGroupArn={blue}")["Rules"][0]["RuleArn"]
    return {"blue": blue, "green": green, "port": port, "test_port": test_port, "rule": rule,
            "test_listener": test_listener, "listener": listener, "only_blue": only_blue}


def weights(elbv2, rule_arn, listener_arn):
    """The rule's {target group ARN: weight}."""
    rules = elbv2("describe-rules", "--listener-arn", listener_arn)["Rules"]
    r = next(r for r in rules if r["RuleArn"] == rule_arn)
    return {t["TargetGroupArn"]: t["Weight"] for t in r["Actions"][0]["ForwardConfig"]["TargetGroups"]}


def deployments(ecs, cluster, service):
    arns = [d["serviceDeploymentArn"] for d in
            ecs.list_service_deployments(cluster=cluster, service=service)["serviceDeployments"]]
    return ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"] if arns else []


def newest(ecs, cluster, service):
    ds = deployments(ecs, cluster, service)
    return max(ds, key=lambda d: d["createdAt"]) if ds else None


def running_versions(ecs, cluster, service, tds):
    """{task definition: RUNNING task count} of the service's tasks desired RUNNING."""
    arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    return {td: sum(1 for t in tasks if t["taskDefinitionArn"] == td and t["lastStatus"] == "RUNNING")
            for td in tds}


def advanced(lb):
    return [{"targetGroupArn": lb["blue"], "containerName": "web", "containerPort": 8080,
             "advancedConfiguration": {"alternateTargetGroupArn": lb["green"],
                                       "productionListenerRule": lb["rule"],
                                       "testListenerRule": lb["test_listener"],
                                       "roleArn": "arn:aws:iam::000000000000:role/ecsInfrastructureRole"}}]


@pytest.fixture(scope="module")
def svc(ecs, elbv2, fleet, lb):
    name = helpers.unique("web")
    family = helpers.unique("web")
    v1 = register(ecs, family, web("v1"))
    s = ecs.create_service(
        cluster=fleet.cluster, serviceName=name, taskDefinition=v1, desiredCount=2, launchType="EC2",
        networkConfiguration=VPC, loadBalancers=advanced(lb),
        deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 4,
                                 "deploymentCircuitBreaker": {"enable": True, "rollback": True}})["service"]
    assert s["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"] == lb["green"]
    assert s["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    wait_for(lambda: sorted(health(elbv2, lb["blue"]).values()) == ["healthy", "healthy"], timeout=120,
             what="v1 healthy in the blue target group")
    return {"name": name, "family": family, "v1": v1}


def settled(ecs, fleet, svc, td):
    d = newest(ecs, fleet.cluster, svc["name"])
    return d if d and d["status"] == "SUCCESSFUL" and d["targetServiceRevision"]["runningTaskCount"] == 2 \
        and running_versions(ecs, fleet.cluster, svc["name"], [td])[td] == 2 else None


def test_blue_green_shifts_all_traffic_after_green_is_healthy_and_fails_no_request(ecs, elbv2, fleet, lb, svc):
    cluster, name = fleet.cluster, svc["name"]
    assert weights(elbv2, lb["rule"], lb["listener"]) == {lb["blue"]: 100, lb["green"]: 0}
    assert all(get(lb["port"])[1].endswith(" v1") for _ in range(4))
    v2 = register(ecs, svc["family"], web("v2"))
    stages = set()
    with Load(lb["port"]) as load:
        time.sleep(1)
        ecs.update_service(cluster=cluster, service=name, taskDefinition=v2)

        def done():
            d = newest(ecs, cluster, name)
            if d and d.get("lifecycleStage"):
                stages.add(d["lifecycleStage"])
            return settled(ecs, fleet, svc, v2)
        final = wait_for(done, timeout=180, interval=0.3, what="the blue/green deployment SUCCESSFUL")
        time.sleep(1)
    assert load.ok > 100, f"the load generator sent too little to judge: {load.ok}"
    assert load.failures == [], f"{len(load.failures)} failed of {load.ok}: {load.failures[:10]}"
    assert {"SCALE_UP", "BAKE_TIME"} <= stages, stages
    assert final["lifecycleStage"] == "CLEAN_UP"
    assert final["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    assert final["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"] == 0.0
    # Green (the alternate target group) has the production and the test traffic.
    assert weights(elbv2, lb["rule"], lb["listener"]) == {lb["blue"]: 0, lb["green"]: 100}
    assert weights(elbv2, elbv2("describe-rules", "--listener-arn", lb["test_listener"])["Rules"][0]["RuleArn"],
                   lb["test_listener"]) == {lb["blue"]: 0, lb["green"]: 100}
    assert all(get(lb["port"])[1].endswith(" v2") for _ in range(6))
    assert all(get(lb["test_port"])[1].endswith(" v2") for _ in range(4))
    # Blue's tasks were stopped after the bake time; its targets drain and go.
    assert running_versions(ecs, cluster, name, [svc["v1"]])[svc["v1"]] == 0
    wait_for(lambda: "healthy" not in health(elbv2, lb["blue"]).values(), timeout=30, what="blue deregistered")
    events = [e["message"] for e in ecs.describe_services(cluster=cluster, services=[name])["services"][0]["events"]]
    assert any("shifted 100% of production traffic to the new service revision" in m for m in events), events
    svc["v2"] = v2


def test_linear_is_seen_at_an_intermediate_weight(ecs, elbv2, fleet, lb, svc):
    cluster, name = fleet.cluster, svc["name"]
    wait_for(lambda: settled(ecs, fleet, svc, svc["v2"]), timeout=120, what="v2 settled")
    v3 = register(ecs, svc["family"], web("v3"))
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v3, deploymentConfiguration={
        "strategy": "LINEAR", "bakeTimeInMinutes": 0,
        "linearConfiguration": {"stepPercent": 50.0, "stepBakeTimeInMinutes": 30}})
    # This deployment goes the other way: green is now the service's own (blue) target group.
    half = {lb["blue"]: 50, lb["green"]: 50}
    wait_for(lambda: weights(elbv2, lb["rule"], lb["listener"]) == half, timeout=120, interval=0.3,
             what="the production rule at 50/50")
    d = newest(ecs, cluster, name)
    assert d["lifecycleStage"] == "PRODUCTION_TRAFFIC_SHIFT"
    assert d["targetServiceRevision"]["requestedProductionTrafficWeight"] == 50.0
    assert d["deploymentConfiguration"]["linearConfiguration"] == {"stepPercent": 50.0, "stepBakeTimeInMinutes": 30}
    answers = [get(lb["port"])[1].split()[-1] for _ in range(60)]
    assert set(answers) == {"v2", "v3"}, answers
    assert 10 <= answers.count("v3") <= 50, answers
    wait_for(lambda: settled(ecs, fleet, svc, v3), timeout=120, what="the linear deployment SUCCESSFUL")
    assert weights(elbv2, lb["rule"], lb["listener"]) == {lb["blue"]: 100, lb["green"]: 0}
    assert all(get(lb["port"])[1].endswith(" v3") for _ in range(6))
    svc["v3"] = v3


def test_stop_service_deployment_rollback_during_bake_time_returns_traffic_to_blue(ecs, elbv2, fleet, lb, svc):
    cluster, name = fleet.cluster, svc["name"]
    blue_td = svc.get("v3", svc.get("v2", svc["v1"]))
    wait_for(lambda: settled(ecs, fleet, svc, blue_td), timeout=120, what="blue settled")
    v4 = register(ecs, svc["family"], web("v4"))
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v4, deploymentConfiguration={
        "strategy": "BLUE_GREEN", "bakeTimeInMinutes": 120})
    baking = wait_for(lambda: (lambda d: d if d and d.get("lifecycleStage") == "BAKE_TIME" else None)(
        newest(ecs, cluster, name)), timeout=120, interval=0.3, what="the deployment in BAKE_TIME")
    # The listener's weights reach the load balancer's data plane a moment after the stage is
    # written (seen once in CI under load): wait for it, then production is green's alone.
    wait_for(lambda: get(lb["port"])[1].endswith(" v4"), timeout=10, interval=0.2,
             what="production traffic on green in BAKE_TIME")
    assert all(get(lb["port"])[1].endswith(" v4") for _ in range(4))
    version = {svc.get("v2"): "v2", svc.get("v3"): "v3", svc["v1"]: "v1"}
    want = version[blue_td]
    with Load(lb["port"]) as load:
        time.sleep(0.5)
        ecs.stop_service_deployment(serviceDeploymentArn=baking["serviceDeploymentArn"], stopType="ROLLBACK")
        wait_for(lambda: get(lb["port"])[1].endswith(" " + want), timeout=20, interval=0.2,
                 what="production traffic back on blue")
        time.sleep(1)
    assert load.failures == [], f"{len(load.failures)} failed of {load.ok}: {load.failures[:10]}"
    rolled = ecs.describe_service_deployments(
        serviceDeploymentArns=[baking["serviceDeploymentArn"]])["serviceDeployments"][0]
    assert rolled["status"] == "ROLLBACK_SUCCESSFUL", rolled
    assert rolled["rollback"]["reason"] == "StopServiceDeployment with stopType ROLLBACK."
    assert all(get(lb["port"])[1].endswith(" " + want) for _ in range(6))
    # Green's tasks stop; blue stays the service's deployment.
    wait_for(lambda: running_versions(ecs, cluster, name, [v4])[v4] == 0, timeout=60, what="green stopped")
    s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
    assert s["taskDefinition"] == blue_td
    assert [d["taskDefinition"] for d in s["deployments"]][0] == blue_td


def test_misconfigurations_are_refused_with_their_messages(ecs, fleet, lb, svc):
    cluster = fleet.cluster

    def refused(code, message, **kw):
        args = dict(cluster=cluster, serviceName=helpers.unique("bad"), taskDefinition=svc["v1"], desiredCount=0,
                    launchType="EC2", networkConfiguration=VPC)
        args.update(kw)
        with pytest.raises(ClientError) as e:
            ecs.create_service(**args)
        err = e.value.response["Error"]
        assert (err["Code"], err["Message"]) == (code, message)

    lbs = advanced(lb)
    plain = [{k: v for k, v in lbs[0].items() if k != "advancedConfiguration"}]
    bg = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}
    refused("InvalidParameterException",
            "The BLUE_GREEN deployment strategy requires a load balancer: specify loadBalancers with an advancedConfiguration (Service Connect is not supported by this Flotilla server).",
            deploymentConfiguration=bg)
    refused("InvalidParameterException",
            "loadBalancers[0].advancedConfiguration is required for the LINEAR deployment strategy.",
            deploymentConfiguration={"strategy": "LINEAR"}, loadBalancers=plain)
    refused("InvalidParameterException", "bakeTimeInMinutes is required for the BLUE_GREEN deployment strategy.",
            deploymentConfiguration={"strategy": "BLUE_GREEN"}, loadBalancers=lbs)
    refused("InvalidParameterException", "canaryConfiguration is only valid when the deployment strategy is CANARY.",
            deploymentConfiguration={**bg, "canaryConfiguration": {"canaryPercent": 10.0}}, loadBalancers=lbs)
    refused("InvalidParameterException",
            "linearConfiguration.stepPercent must be a multiple of 0.1 from 3.0 to 100.0.",
            deploymentConfiguration={"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.0}},
            loadBalancers=lbs)
    wrong_rule = [{**lbs[0], "advancedConfiguration": {**lbs[0]["advancedConfiguration"],
                                                       "productionListenerRule": lb["only_blue"]}}]
    refused("InvalidParameterException",
            f"The productionListenerRule {lb['only_blue']} must forward to both the target group {lb['blue']} "
            f"and the alternate target group {lb['green']}.",
            deploymentConfiguration=bg, loadBalancers=wrong_rule)
    missing_rule = lb["rule"][:-4] + "0000"
    gone = [{**lbs[0], "advancedConfiguration": {**lbs[0]["advancedConfiguration"],
                                                 "productionListenerRule": missing_rule}}]
    refused("InvalidParameterException",
            f"The productionListenerRule {missing_rule} does not exist: it must be the ARN of a listener rule or a listener.",
            deploymentConfiguration=bg, loadBalancers=gone)
    refused("UnsupportedFeatureException",
            "Deployment lifecycle hooks (deploymentConfiguration.lifecycleHooks) are not supported by this Flotilla server: AWS_LAMBDA hooks invoke AWS Lambda and PAUSE hooks wait for ContinueServiceDeployment, neither of which it serves.",
            deploymentConfiguration={**bg, "lifecycleHooks": [{
                "hookTargetArn": "arn:aws:lambda:us-east-1:000000000000:function:check",
                "roleArn": "arn:aws:iam::000000000000:role/hooks", "lifecycleStages": ["POST_SCALE_UP"]}]},
            loadBalancers=lbs)
