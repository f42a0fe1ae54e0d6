"""Elastic Load Balancing v2 end to end: the pinned aws CLI (`aws elbv2 ...`) and boto3 against
the session `flotilla dev`, on the same endpoint and credentials as ECS, speaking awsQuery (form
bodies, XML answers and error documents).

Covered: create/describe/modify/delete of load balancers, target groups, listeners and rules;
attributes; tags; register/deregister/describe-target-health (initial, then draining; no
health checker runs in this server, so `healthy` is reached only in the Rust tests of
`flotilla_elbv2::targets`); the modeled errors as the CLI and boto3 parse them; paging."""

import json
import re
import subprocess
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers


def name(prefix):
    """A load balancer or target group name (at most 32 alphanumerics and hyphens)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def elb(endpoint):
    return boto3.client(
        "elbv2",
        endpoint_url=endpoint,
        region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY,
        aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def aws(aws_cli, cli_env, endpoint):
    def run(*args, expect=0):
        p = subprocess.run(
            [aws_cli, "elbv2", *args, "--endpoint-url", endpoint, "--output", "json"],
            env=cli_env, capture_output=True, text=True, timeout=60,
        )
        assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
        if expect == 0:
            return json.loads(p.stdout) if p.stdout.strip() else {}
        return p.stderr

    return run


def cli_error(stderr):
    m = re.search(r"An error occurred \((\w+)\) when calling the (\w+) operation: (.+)", stderr)
    assert m, stderr
    return m.group(1), m.group(2), m.group(3)


def code(e):
    return e.value.response["Error"]["Code"]


def test_the_cli_builds_a_load_balancer_listener_rule_and_target_group(aws):
    lb_name, tg_name = name("web"), name("app")
    lb = aws("create-load-balancer", "--name", lb_name, "--subnets", "subnet-a", "subnet-b",
             "--tags", "Key=team,Value=web")["LoadBalancers"][0]
    assert lb["LoadBalancerName"] == lb_name
    assert lb["Type"] == "application" and lb["Scheme"] == "internet-facing"
    assert lb["State"] == {"Code": "active"}
    assert re.fullmatch(rf"{lb_name}-\d{{10}}\.{helpers.REGION}\.elb\.flotilla\.internal", lb["DNSName"]), lb["DNSName"]
    assert re.fullmatch(rf"arn:aws:elasticloadbalancing:{helpers.REGION}:{helpers.ACCOUNT}:loadbalancer/app/{lb_name}/[0-9a-f]{{16}}",
                        lb["LoadBalancerArn"])
    assert [z["SubnetId"] for z in lb["AvailabilityZones"]] == ["subnet-a", "subnet-b"]
    # Timestamps arrive as ISO 8601 and the CLI shows them so.
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", lb["CreatedTime"]), lb["CreatedTime"]
    lb_arn = lb["LoadBalancerArn"]

    tg = aws("create-target-group", "--name", tg_name, "--protocol", "HTTP", "--port", "8080",
             "--target-type", "ip", "--vpc-id", "vpc-1", "--health-check-path", "/health",
             "--matcher", "HttpCode=200-299")["TargetGroups"][0]
    assert (tg["HealthCheckProtocol"], tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"],
            tg["HealthCheckTimeoutSeconds"], tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"],
            tg["Matcher"]) == ("HTTP", "/health", 30, 5, 5, 2, {"HttpCode": "200-299"})
    assert tg["LoadBalancerArns"] == []
    tg_arn = tg["TargetGroupArn"]

    listener = aws("create-listener", "--load-balancer-arn", lb_arn, "--protocol", "HTTP", "--port", "80",
                   "--default-actions", f"Type=forward,TargetGroupArn={tg_arn}")["Listeners"][0]
    assert listener["Port"] == 80 and listener["Protocol"] == "HTTP"
    assert listener["DefaultActions"][0]["TargetGroupArn"] == tg_arn
    assert aws("describe-target-groups", "--target-group-arns", tg_arn)["TargetGroups"][0]["LoadBalancerArns"] == [lb_arn]

    rule = aws("create-rule", "--listener-arn", listener["ListenerArn"], "--priority", "10",
               "--conditions", "Field=path-pattern,Values=/api/*",
               "--actions", f"Type=forward,TargetGroupArn={tg_arn}")["Rules"][0]
    assert rule["Priority"] == "10" and rule["IsDefault"] is False
    rules = aws("describe-rules", "--listener-arn", listener["ListenerArn"])["Rules"]
    assert [r["Priority"] for r in rules] == ["10", "default"]
    assert rules[0]["Conditions"][0]["Values"] == ["/api/*"]

    err = aws("create-rule", "--listener-arn", listener["ListenerArn"], "--priority", "10",
              "--conditions", "Field=host-header,Values=a.example.com",
              "--actions", f"Type=forward,TargetGroupArn={tg_arn}", expect=255)
    assert cli_error(err)[:2] == ("PriorityInUse", "CreateRule")

    listeners = aws("describe-listeners", "--load-balancer-arn", lb_arn)["Listeners"]
    assert [l["ListenerArn"] for l in listeners] == [listener["ListenerArn"]]
    modified = aws("modify-listener", "--listener-arn", listener["ListenerArn"], "--port", "8081")["Listeners"][0]
    assert modified["Port"] == 8081

    tags = aws("describe-tags", "--resource-arns", lb_arn)["TagDescriptions"][0]["Tags"]
    assert tags == [{"Key": "team", "Value": "web"}]

    err = aws("delete-target-group", "--target-group-arn", tg_arn, expect=255)
    assert cli_error(err)[0] == "ResourceInUse"
    aws("delete-rule", "--rule-arn", rule["RuleArn"])
    aws("delete-listener", "--listener-arn", listener["ListenerArn"])
    aws("delete-target-group", "--target-group-arn", tg_arn)
    aws("delete-load-balancer", "--load-balancer-arn", lb_arn)
    err = aws("describe-load-balancers", "--names", lb_name, expect=255)
    code_, op, message = cli_error(err)
    assert (code_, op) == ("LoadBalancerNotFound", "DescribeLoadBalancers")
    assert lb_name in message


def test_the_cli_registers_targets_and_shows_their_health(aws):
    tg_arn = aws("create-target-group", "--name", name("tg"), "--protocol", "HTTP", "--port", "80",
                 "--target-type", "ip")["TargetGroups"][0]["TargetGroupArn"]
    aws("register-targets", "--target-group-arn", tg_arn, "--targets", "Id=10.1.0.1", "Id=10.1.0.2,Port=8080")
    health = aws("describe-target-health", "--target-group-arn", tg_arn)["TargetHealthDescriptions"]
    assert [(h["Target"]["Id"], h["Target"]["Port"]) for h in health] == [("10.1.0.1", 80), ("10.1.0.2", 8080)]
    # No listener forwards to the group yet: its targets are unused, as ELB shows them.
    assert {h["TargetHealth"]["State"] for h in health} == {"unused"}
    assert health[0]["TargetHealth"]["Reason"] == "Target.NotInUse"

    lb_arn = aws("create-load-balancer", "--name", name("lb"))["LoadBalancers"][0]["LoadBalancerArn"]
    aws("create-listener", "--load-balancer-arn", lb_arn, "--protocol", "HTTP", "--port", "80",
        "--default-actions", f"Type=forward,TargetGroupArn={tg_arn}")
    health = aws("describe-target-health", "--target-group-arn", tg_arn)["TargetHealthDescriptions"]
    # In use now: initial until the health checker has its verdict (the default interval is 30 s
    # and two failures are needed). Whether the first probe already ran decides which of ELB's two
    # reasons shows.
    assert {h["TargetHealth"]["State"] for h in health} == {"initial"}
    assert {h["TargetHealth"]["Reason"] for h in health} <= {"Elb.RegistrationInProgress", "Elb.InitialHealthChecking"}
    assert health[1]["HealthCheckPort"] == "8080"

    aws("deregister-targets", "--target-group-arn", tg_arn, "--targets", "Id=10.1.0.1")
    health = aws("describe-target-health", "--target-group-arn", tg_arn, "--targets", "Id=10.1.0.1", "Id=10.9.9.9")["TargetHealthDescriptions"]
    assert (health[0]["TargetHealth"]["State"], health[0]["TargetHealth"]["Reason"]) == ("draining", "Target.DeregistrationInProgress")
    assert (health[1]["TargetHealth"]["State"], health[1]["TargetHealth"]["Reason"]) == ("unused", "Target.NotRegistered")

    err = aws("register-targets", "--target-group-arn", tg_arn, "--targets", "Id=i-0123456789abcdef0", expect=255)
    assert cli_error(err)[0] == "InvalidTarget"
    err = aws("deregister-targets", "--target-group-arn", tg_arn, "--targets", "Id=10.7.7.7", expect=255)
    assert cli_error(err)[0] == "InvalidTarget"
    aws("delete-load-balancer", "--load-balancer-arn", lb_arn)
    aws("delete-target-group", "--target-group-arn", tg_arn)


def test_instance_targets_are_container_instances(elb, ecs):
    cluster = helpers.unique("elb")
    ecs.create_cluster(clusterName=cluster)
    instance_id = "i-" + uuid.uuid4().hex[:17]
    ecs.register_container_instance(
        cluster=cluster,
        instanceIdentityDocument=json.dumps({"instanceId": instance_id, "availabilityZone": f"{helpers.REGION}a"}),
        totalResources=[{"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                        {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}],
    )
    tg = elb.create_target_group(Name=name("inst"), Protocol="HTTP", Port=80, TargetType="instance")["TargetGroups"][0]
    elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": instance_id, "Port": 32768}])
    health = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    assert health[0]["Target"] == {"Id": instance_id, "Port": 32768}
    with pytest.raises(ClientError) as e:
        elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "i-unknown"}])
    assert code(e) == "InvalidTarget"
    with pytest.raises(ClientError) as e:
        elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "10.0.0.1"}])
    assert code(e) == "InvalidTarget"
    elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


def test_network_load_balancers_forward_tcp(elb):
    lb = elb.create_load_balancer(Name=name("nlb"), Type="network", Scheme="internal",
                                  Subnets=["subnet-1"])["LoadBalancers"][0]
    assert lb["Type"] == "network" and lb["DNSName"].startswith("internal-")
    tg = elb.create_target_group(Name=name("tcp"), Protocol="TCP", Port=5432, TargetType="ip")["TargetGroups"][0]
    assert (tg["HealthCheckProtocol"], tg["HealthCheckTimeoutSeconds"]) == ("TCP", 10)
    assert "HealthCheckPath" not in tg and "Matcher" not in tg
    with pytest.raises(ClientError) as e:
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    assert code(e) == "ValidationError"
    listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=5432,
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])["Listeners"][0]
    assert listener["Protocol"] == "TCP"
    attrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
    assert attrs["load_balancing.cross_zone.enabled"] == "false"
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    # Its listener went with it: the group is free to delete.
    assert elb.describe_target_groups(TargetGroupArns=[tg["TargetGroupArn"]])["TargetGroups"][0]["LoadBalancerArns"] == []
    elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


def test_weighted_forwarding_and_modifications(elb):
    lb_arn = elb.create_load_balancer(Name=name("w"))["LoadBalancers"][0]["LoadBalancerArn"]
    blue = elb.create_target_group(Name=name("blue"), Protocol="HTTP", Port=80, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    green = elb.create_target_group(Name=name("green"), Protocol="HTTP", Port=80, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    listener = elb.create_listener(
        LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": blue, "Weight": 90}, {"TargetGroupArn": green, "Weight": 10}]}}],
    )["Listeners"][0]
    groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    assert [(g["TargetGroupArn"], g["Weight"]) for g in groups] == [(blue, 90), (green, 10)]
    # Shift all traffic to green: blue is then free.
    elb.modify_listener(ListenerArn=listener["ListenerArn"],
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": green}])
    assert elb.describe_target_groups(TargetGroupArns=[blue])["TargetGroups"][0]["LoadBalancerArns"] == []
    elb.delete_target_group(TargetGroupArn=blue)

    m = elb.modify_target_group(TargetGroupArn=green, HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=5,
                                HealthyThresholdCount=2)["TargetGroups"][0]
    assert (m["HealthCheckIntervalSeconds"], m["HealthyThresholdCount"]) == (10, 2)
    with pytest.raises(ClientError) as e:
        elb.modify_target_group(TargetGroupArn=green, HealthCheckTimeoutSeconds=20)
    assert code(e) == "ValidationError"
    assert "must be smaller than the interval" in e.value.response["Error"]["Message"]

    attrs = elb.modify_target_group_attributes(TargetGroupArn=green, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "0"},
        {"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"},
    ])["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "0"} in attrs
    for key, value in [("deregistration_delay.timeout_seconds", "3601"), ("slow_start.duration_seconds", "10"),
                       ("stickiness.enabled", "true")]:
        with pytest.raises(ClientError) as e:
            elb.modify_target_group_attributes(TargetGroupArn=green, Attributes=[{"Key": key, "Value": value}])
        assert code(e) == "ValidationError", key
    # A deregistration delay of 0: a deregistered target is gone at once.
    elb.register_targets(TargetGroupArn=green, Targets=[{"Id": "10.2.0.1"}])
    elb.deregister_targets(TargetGroupArn=green, Targets=[{"Id": "10.2.0.1"}])
    assert elb.describe_target_health(TargetGroupArn=green)["TargetHealthDescriptions"] == []

    lb_attrs = elb.modify_load_balancer_attributes(LoadBalancerArn=lb_arn, Attributes=[
        {"Key": "deletion_protection.enabled", "Value": "true"}, {"Key": "idle_timeout.timeout_seconds", "Value": "120"}])["Attributes"]
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "120"} in lb_attrs
    with pytest.raises(ClientError) as e:
        elb.delete_load_balancer(LoadBalancerArn=lb_arn)
    assert code(e) == "OperationNotPermitted"
    elb.modify_load_balancer_attributes(LoadBalancerArn=lb_arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}])
    elb.delete_load_balancer(LoadBalancerArn=lb_arn)
    elb.delete_target_group(TargetGroupArn=green)


def test_modeled_errors_parse_into_their_codes(elb):
    gone_lb = f"arn:aws:elasticloadbalancing:{helpers.REGION}:{helpers.ACCOUNT}:loadbalancer/app/nope/0123456789abcdef"
    gone_tg = f"arn:aws:elasticloadbalancing:{helpers.REGION}:{helpers.ACCOUNT}:targetgroup/nope/0123456789abcdef"
    gone_listener = f"arn:aws:elasticloadbalancing:{helpers.REGION}:{helpers.ACCOUNT}:listener/app/nope/0123456789abcdef/0123456789abcdef"
    cases = [
        (lambda: elb.describe_load_balancers(LoadBalancerArns=[gone_lb]), "LoadBalancerNotFound", 400),
        (lambda: elb.describe_target_groups(TargetGroupArns=[gone_tg]), "TargetGroupNotFound", 400),
        (lambda: elb.describe_listeners(ListenerArns=[gone_listener]), "ListenerNotFound", 400),
        (lambda: elb.create_load_balancer(Name="-bad"), "ValidationError", 400),
        (lambda: elb.create_load_balancer(Name="x", Type="gateway"), "ValidationError", 400),
        (lambda: elb.describe_load_balancers(PageSize=401), "ValidationError", 400),
        (lambda: elb.create_target_group(Name=name("t"), Protocol="HTTPS", Port=443), "UnsupportedProtocol", 400),
        (lambda: elb.describe_trust_stores(), "OperationNotPermitted", 400),
        (lambda: elb.set_security_groups(LoadBalancerArn=gone_lb, SecurityGroups=["sg-1"]), "OperationNotPermitted", 400),
    ]
    for call, want, status in cases:
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == want, e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert e.value.response["Error"]["Type"] == "Sender"
    with pytest.raises(ClientError) as e:
        elb.describe_trust_stores()
    assert "CreateLoadBalancer" in e.value.response["Error"]["Message"]

    tg = elb.create_target_group(Name=name("dup"), Protocol="HTTP", Port=80)["TargetGroups"][0]
    with pytest.raises(ClientError) as e:
        elb.create_target_group(Name=tg["TargetGroupName"], Protocol="HTTP", Port=81)
    assert code(e) == "DuplicateTargetGroupName"
    # The same settings again answer the same group (CreateTargetGroup is idempotent).
    again = elb.create_target_group(Name=tg["TargetGroupName"], Protocol="HTTP", Port=80)["TargetGroups"][0]
    assert again["TargetGroupArn"] == tg["TargetGroupArn"]
    lb = elb.create_load_balancer(Name=name("dup"))["LoadBalancers"][0]
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(Name=lb["LoadBalancerName"], Scheme="internal")
    assert code(e) == "DuplicateLoadBalancerName"
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    with pytest.raises(ClientError) as e:
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])
    assert code(e) == "InvalidLoadBalancerAction"
    with pytest.raises(ClientError) as e:
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                                {"TargetGroupArn": tg["TargetGroupArn"], "Weight": 2}]}}])
    assert code(e) == "DuplicateListener"
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


def test_a_credential_for_another_service_and_bad_keys_are_refused_in_xml(endpoint):
    bad = boto3.client("elbv2", endpoint_url=endpoint, region_name=helpers.REGION,
                       aws_access_key_id="AKIDNOTCONFIGURED000", aws_secret_access_key="x" * 40,
                       config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        bad.describe_load_balancers()
    assert code(e) == "InvalidClientTokenId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_paging_with_the_cli_and_boto3(elb, aws):
    prefix = "pg" + uuid.uuid4().hex[:6]
    arns = [elb.create_target_group(Name=f"{prefix}-{i}", Protocol="HTTP", Port=80)["TargetGroups"][0]["TargetGroupArn"]
            for i in range(5)]
    seen, marker = [], None
    while True:
        kw = {"PageSize": 2, **({"Marker": marker} if marker else {})}
        page = elb.describe_target_groups(**kw)
        seen += [g["TargetGroupArn"] for g in page["TargetGroups"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert set(arns) <= set(seen) and len(seen) == len(set(seen))
    paginated = [g["TargetGroupArn"] for p in elb.get_paginator("describe_target_groups").paginate(PaginationConfig={"PageSize": 2})
                 for g in p["TargetGroups"]]
    assert paginated == seen
    # The CLI pages by itself; given the API's own --page-size it answers one page and its
    # NextMarker, and --marker goes on from there (as with AWS).
    assert [g["TargetGroupArn"] for g in aws("describe-target-groups")["TargetGroups"]] == seen
    first = aws("describe-target-groups", "--page-size", "2")
    assert [g["TargetGroupArn"] for g in first["TargetGroups"]] == seen[:2]
    second = aws("describe-target-groups", "--page-size", "2", "--marker", first["NextMarker"])
    assert [g["TargetGroupArn"] for g in second["TargetGroups"]] == seen[2:4]
    for a in arns:
        elb.delete_target_group(TargetGroupArn=a)
