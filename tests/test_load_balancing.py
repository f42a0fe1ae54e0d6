"""Traffic into a service through Flotilla's Elastic Load Balancing, end to end on real Docker.

The load balancer, its listener and target group are made with the aws CLI (`aws elbv2`) only;
the service names the target group in its `loadBalancers`. The listener really accepts
connections on the server's address; the tasks are awsvpc tasks running busybox's httpd, each
answering its own hostname and its revision, and `/cgi-bin/health` with 200 (or 500, for the
revision that trips the circuit breaker).

Checked: every task answers in turn and DescribeTargetHealth shows them healthy; a rolling
deployment under load fails no request and ends with every answer from the new revision; a
killed task goes unhealthy and is replaced with few failures; a revision failing its target
group's health checks trips the deployment circuit breaker and rolls back."""

import http.client
import json
import os
import subprocess
import threading
import time

import pytest

import helpers
from fleet import (IMAGE, Fleet, docker, ecs_for, instances_ready, remove_awsvpc_network_if_unused,
                   containers_of_task, wait_for)

VPC = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"], "assignPublicIp": "DISABLED"}}
HEALTH_PATH = "/cgi-bin/health"
DEREGISTRATION_DELAY = 3


def web(version, health="200 OK"):
    """busybox httpd on 8080 answering `HOSTNAME VERSION`, and HEALTH_PATH with `health`."""
    script = (
        "mkdir -p /www/cgi-bin; echo \"$(hostname) $VERSION\" > /www/index.html; "
        "printf '#!/bin/sh\\nprintf \"HTTP/1.0 %s\\\\r\\\\n\\\\r\\\\nhealth\\\\n\"\\n' \"$HEALTH\" "
        f"> /www{HEALTH_PATH}; chmod +x /www{HEALTH_PATH}; exec httpd -f -p 8080 -h /www"
    )
    return {
        "name": "web", "image": IMAGE, "essential": True, "memory": 64,
        "command": ["sh", "-c", script],
        "environment": [{"name": "VERSION", "value": version}, {"name": "HEALTH", "value": health}],
        "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("lb-fleet"))
    try:
        f.cluster = helpers.unique("lb")
        ecs = ecs_for(f)
        ecs.create_cluster(clusterName=f.cluster)
        f.add_agent(f.cluster)
        instances_ready(ecs, f.cluster, 1)
    except BaseException:
        f.close()
        raise
    yield f
    f.close()
    remove_awsvpc_network_if_unused()


@pytest.fixture(scope="module")
def ecs(fleet):
    return ecs_for(fleet)


@pytest.fixture(scope="module")
def elbv2(aws_cli, fleet, tmp_path_factory):
    """`elbv2(*args)`: the aws CLI's `aws elbv2 ARGS --output json` against the fleet, parsed."""
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


def make_load_balancer(elbv2, name):
    """An application load balancer, an ip target group checked on HEALTH_PATH, and an HTTP
    listener on a free port forwarding to it: (target group ARN, listener port)."""
    lb = elbv2("create-load-balancer", "--name", name, "--type", "application",
               "--subnets", "subnet-0123456789abcdef0", "subnet-0fedcba9876543210")["LoadBalancers"][0]
    tg = elbv2("create-target-group", "--name", name, "--protocol", "HTTP", "--port", "8080",
               "--target-type", "ip", "--vpc-id", "vpc-0123456789abcdef0",
               "--health-check-path", HEALTH_PATH, "--health-check-interval-seconds", "5",
               "--health-check-timeout-seconds", "2", "--healthy-threshold-count", "2",
               "--unhealthy-threshold-count", "2")["TargetGroups"][0]
    tg_arn = tg["TargetGroupArn"]
    elbv2("modify-target-group-attributes", "--target-group-arn", tg_arn, "--attributes",
          f"Key=deregistration_delay.timeout_seconds,Value={DEREGISTRATION_DELAY}")
    port = helpers.free_port()
    elbv2("create-listener", "--load-balancer-arn", lb["LoadBalancerArn"], "--protocol", "HTTP",
          "--port", str(port), "--default-actions", f"Type=forward,TargetGroupArn={tg_arn}")
    return tg_arn, port


def health(elbv2, tg_arn):
    """Target id -> state."""
    out = elbv2("describe-target-health", "--target-group-arn", tg_arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in out}


def get(port, path="/"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode().strip()
    finally:
        c.close()


def register(ecs, family, container):
    return ecs.register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["EC2"],
        containerDefinitions=[container])["taskDefinition"]["taskDefinitionArn"]


def service_ips(ecs, cluster, service):
    arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
    if not arns:
        return set()
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    return {d["value"] for t in tasks if t["lastStatus"] == "RUNNING" for a in t.get("attachments", [])
            for d in a["details"] if d["name"] == "privateIPv4Address"}


def steady_on(ecs, elbv2, cluster, service, tg_arn, td_arn, n, timeout=120):
    """Waits until the service has one COMPLETED deployment of `td_arn` with `n` running tasks,
    all healthy in the target group and nothing else registered but draining targets."""
    def check():
        s = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        deps = s["deployments"]
        if len(deps) != 1 or deps[0]["taskDefinition"] != td_arn or deps[0]["rolloutState"] != "COMPLETED":
            return None
        ips = service_ips(ecs, cluster, service)
        h = health(elbv2, tg_arn)
        healthy = {i for i, st in h.items() if st == "healthy"}
        others = {i for i, st in h.items() if st not in ("healthy", "draining")}
        return s if len(ips) == n and healthy == ips and not others else None
    return wait_for(check, timeout=timeout, interval=0.5, what=f"{service} steady on {td_arn}")


class Load:
    """Requests through the listener as fast as `threads` keep-alive clients can send them."""

    def __init__(self, port, threads=4):
        self.port, self.stop_flag = port, threading.Event()
        self.ok, self.failures, self.last = 0, [], {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, i):
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/")
                r = conn.getresponse()
                body = r.read().decode().strip()
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                        self.last[i] = body
                    else:
                        self.failures.append(f"{r.status} {body[:80]}")
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failures.append(repr(e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(15)


@pytest.fixture(scope="module")
def web_service(ecs, elbv2, fleet):
    """A service of 3 awsvpc tasks of revision v1 behind a load balancer: a dict with the
    names, the target group, the listener port and the task definitions."""
    name = helpers.unique("web")
    tg_arn, port = make_load_balancer(elbv2, name)
    family = helpers.unique("web")
    v1 = register(ecs, family, web("v1"))
    ecs.create_service(
        cluster=fleet.cluster, serviceName=name, taskDefinition=v1, desiredCount=3,
        launchType="EC2", networkConfiguration=VPC,
        loadBalancers=[{"targetGroupArn": tg_arn, "containerName": "web", "containerPort": 8080}],
        deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100,
                                 "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    return {"name": name, "tg": tg_arn, "port": port, "family": family, "v1": v1}


def test_every_task_answers_in_turn_and_the_target_group_says_healthy(ecs, elbv2, fleet, web_service):
    s = web_service
    svc = steady_on(ecs, elbv2, fleet.cluster, s["name"], s["tg"], s["v1"], 3)
    assert svc["loadBalancers"] == [{"targetGroupArn": s["tg"], "containerName": "web", "containerPort": 8080}]
    h = health(elbv2, s["tg"])
    assert sorted(h.values()) == ["healthy"] * 3, h
    answers = [get(s["port"]) for _ in range(9)]
    assert all(status == 200 for status, _ in answers), answers
    hosts = [body.split()[0] for _, body in answers]
    assert len(set(hosts)) == 3, answers
    # Round robin: every three consecutive answers come from the three tasks.
    for i in range(0, 9, 3):
        assert len(set(hosts[i:i + 3])) == 3, hosts
    assert all(body.endswith(" v1") for _, body in answers)
    # `flotilla lb` shows the same, as a table and as JSON.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": helpers.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": helpers.SECRET_KEY,
           "AWS_DEFAULT_REGION": helpers.REGION, "AWS_ENDPOINT_URL_ECS": fleet.endpoint}
    flotilla = lambda *a: subprocess.run([str(helpers.FLOTILLA_BIN), "lb", *a], capture_output=True, text=True,
                                         env=env, timeout=30)
    ls = flotilla("ls")
    assert ls.returncode == 0 and f"HTTP:{s['port']}" in ls.stdout, ls
    desc = flotilla("describe", s["name"])
    assert desc.returncode == 0, desc
    assert sum(" healthy " in line + " " for line in desc.stdout.splitlines()) == 3, desc.stdout
    doc = json.loads(flotilla("describe", s["name"], "--output", "json").stdout)
    assert doc["name"] == s["name"] and doc["listeners"][0]["port"] == s["port"]
    missing = flotilla("describe", "no-such-lb")
    assert missing.returncode != 0 and "no load balancer named no-such-lb" in missing.stderr


def test_a_rolling_deployment_under_load_fails_no_request(ecs, elbv2, fleet, web_service):
    s = web_service
    steady_on(ecs, elbv2, fleet.cluster, s["name"], s["tg"], s["v1"], 3)
    v2 = register(ecs, s["family"], web("v2"))
    with Load(s["port"]) as load:
        time.sleep(1)
        ecs.update_service(cluster=fleet.cluster, service=s["name"], taskDefinition=v2)
        steady_on(ecs, elbv2, fleet.cluster, s["name"], s["tg"], v2, 3, timeout=180)
        # The old targets drain, then go.
        wait_for(lambda: set(health(elbv2, s["tg"]).values()) == {"healthy"}, timeout=60,
                 what="the old targets gone")
        time.sleep(1)
    assert load.ok > 100, f"the load generator sent too little to judge: {load.ok}"
    assert load.failures == [], f"{len(load.failures)} failed of {load.ok}: {load.failures[:10]}"
    assert set(b.split()[-1] for b in load.last.values()) == {"v2"}, load.last
    answers = [get(s["port"])[1] for _ in range(6)]
    assert all(a.endswith(" v2") for a in answers), answers
    s["v2"] = v2


def test_a_killed_task_goes_unhealthy_and_is_replaced(ecs, elbv2, fleet, web_service):
    s = web_service
    td = s.get("v2", s["v1"])
    steady_on(ecs, elbv2, fleet.cluster, s["name"], s["tg"], td, 3)
    before = service_ips(ecs, fleet.cluster, s["name"])
    arns = ecs.list_tasks(cluster=fleet.cluster, serviceName=s["name"])["taskArns"]
    victim = arns[0]
    app = containers_of_task(victim, name="web")
    assert app, "the task's web container"
    with Load(s["port"]) as load:
        time.sleep(1)
        docker("kill", app[0])
        wait_for(lambda: ecs.describe_tasks(cluster=fleet.cluster, tasks=[victim])["tasks"][0]["lastStatus"]
                 == "STOPPED", timeout=60, what="the killed task STOPPED")
        steady_on(ecs, elbv2, fleet.cluster, s["name"], s["tg"], td, 3, timeout=120)
    after = service_ips(ecs, fleet.cluster, s["name"])
    assert len(after) == 3 and after != before
    # Requests in flight on the killed container may fail; new ones are retried or go elsewhere.
    assert load.ok > 50
    assert len(load.failures) <= len(load.threads), load.failures


def test_a_revision_failing_target_health_trips_the_circuit_breaker_and_rolls_back(ecs, elbv2, fleet, web_service):
    s = web_service
    good = s.get("v2", s["v1"])
    steady_on(ecs, elbv2, fleet.cluster, s["name"], s["tg"], good, 3)
    # httpd, PID 1 of its container, ignores SIGTERM: with ECS's 30 s stop timeout each failing
    # task took half a minute to reach STOPPED and count (127 s of this test's 180 under CI's
    # load). 2 s keeps the breaker's three failures within a minute.
    bad = register(ecs, s["family"], {**web("v3", health="500 Internal Server Error"), "stopTimeout": 2})
    ecs.update_service(cluster=fleet.cluster, service=s["name"], taskDefinition=bad)

    def rolled_back():
        svc = ecs.describe_services(cluster=fleet.cluster, services=[s["name"]])["services"][0]
        failed = [d for d in svc["deployments"] if d["taskDefinition"] == bad and d["rolloutState"] == "FAILED"]
        return svc if failed or (svc["taskDefinition"] == good and any(
            "circuit breaker" in e["message"] for e in svc["events"][:20])) else None

    svc = wait_for(rolled_back, timeout=180, interval=1, what="the circuit breaker")
    messages = [e["message"] for e in svc["events"]]
    assert any("is unhealthy in (target-group" in m for m in messages), messages[:20]
    stopped = ecs.list_tasks(cluster=fleet.cluster, serviceName=s["name"], desiredStatus="STOPPED")["taskArns"]
    reasons = [t.get("stoppedReason", "") for t in ecs.describe_tasks(cluster=fleet.cluster, tasks=stopped)["tasks"]]
    assert any(r.startswith("Task failed ELB health checks in (target-group") for r in reasons), reasons
    # The rollback ends on the good revision, every answer from it.
    steady_on(ecs, elbv2, fleet.cluster, s["name"], s["tg"], good, 3, timeout=180)
    answers = [get(s["port"])[1] for _ in range(6)]
    assert not any(a.endswith(" v3") for a in answers), answers


def test_load_balancers_are_checked_as_ecs_checks_them(ecs, elbv2, fleet, web_service):
    s = web_service

    def refused(**kw):
        args = dict(cluster=fleet.cluster, serviceName=helpers.unique("bad"), taskDefinition=s["v1"],
                    desiredCount=1, launchType="EC2", networkConfiguration=VPC)
        args.update(kw)
        with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
            ecs.create_service(**args)
        return e.value.response["Error"]["Message"]

    lb = {"targetGroupArn": s["tg"], "containerName": "web", "containerPort": 8080}
    assert refused(loadBalancers=[{**lb, "containerName": "api"}]) == \
        "The container api does not exist in the task definition."
    assert refused(loadBalancers=[{**lb, "containerPort": 80}]) == \
        "The container web did not have a container port 80 defined."
    assert refused(loadBalancers=[lb], role="ecsServiceRole") == \
        "You cannot specify an IAM role for services that require a service linked role."
    missing = s["tg"].rsplit("/", 1)[0] + "/0000000000000000"
    assert "does not exist" in refused(loadBalancers=[{**lb, "targetGroupArn": missing}])
    # A target group no listener uses has no load balancer.
    lone = elbv2("create-target-group", "--name", helpers.unique("lone"), "--protocol", "HTTP", "--port", "8080",
                 "--target-type", "ip", "--vpc-id", "vpc-0123456789abcdef0")["TargetGroups"][0]["TargetGroupArn"]
    assert refused(loadBalancers=[{**lb, "targetGroupArn": lone}]) == \
        f"The target group with targetGroupArn {lone} does not have an associated load balancer."


def nslookup(cid, qtype, name):
    """What busybox's nslookup, run inside container `cid`, answers: (addresses, SRV ports)."""
    out = subprocess.run(["docker", "exec", cid, "nslookup", f"-type={qtype}", name],
                         capture_output=True, text=True, timeout=30).stdout
    words = out.split()
    addrs = sorted(words[i + 1] for i, w in enumerate(words)
                   if w == "Address:" and i + 1 < len(words) and not words[i + 1].endswith(("#53", ":53")))
    # `NAME service = PRIORITY WEIGHT PORT TARGET`
    ports = sorted(int(words[i + 4]) for i, w in enumerate(words) if w == "service" and i + 4 < len(words)
                   and words[i + 1] == "=") if qtype == "srv" else []
    return addrs, ports, out


def test_a_service_resolves_another_by_its_cloud_map_name(ecs, fleet, web_service):
    """`serviceRegistries`: the tasks of one service are registered in Cloud Map as they become
    healthy; a task of another service resolves them (A and SRV) from inside its container, and the
    answers follow the first service's scaling."""
    import boto3
    from botocore.config import Config
    sd = boto3.client("servicediscovery", endpoint_url=fleet.endpoint, region_name=helpers.REGION,
                      aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
                      config=Config(inject_host_prefix=False))
    ns_name = helpers.unique("mesh").lower() + ".local"
    op = sd.create_private_dns_namespace(Name=ns_name, Vpc="vpc-0abc")["OperationId"]
    ns = sd.get_operation(OperationId=op)["Operation"]["Targets"]["NAMESPACE"]
    reg = sd.create_service(Name="api", NamespaceId=ns, HealthCheckCustomConfig={"FailureThreshold": 1},
                            DnsConfig={"RoutingPolicy": "MULTIVALUE",
                                       "DnsRecords": [{"Type": "A", "TTL": 1}, {"Type": "SRV", "TTL": 1}]})["Service"]
    family = helpers.unique("api")
    td = register(ecs, family, web("api"))
    api = helpers.unique("api")
    ecs.create_service(cluster=fleet.cluster, serviceName=api, taskDefinition=td, desiredCount=2, launchType="EC2",
                       networkConfiguration=VPC,
                       serviceRegistries=[{"registryArn": reg["Arn"], "containerName": "web", "containerPort": 8080}])
    client_td = register(ecs, helpers.unique("client"),
                         {"name": "client", "image": IMAGE, "essential": True, "memory": 32,
                          "command": ["sh", "-c", "while true; do sleep 1; done"]})
    client = helpers.unique("client")
    ecs.create_service(cluster=fleet.cluster, serviceName=client, taskDefinition=client_td, desiredCount=1,
                       launchType="EC2", networkConfiguration=VPC)
    arn = wait_for(lambda: ecs.list_tasks(cluster=fleet.cluster, serviceName=client, desiredStatus="RUNNING")
                   ["taskArns"], timeout=60, what="the client task")[0]
    cid = wait_for(lambda: containers_of_task(arn, name="client", running=True), timeout=60,
                   what="the client container")[0]
    name = f"api.{ns_name}"

    seen = {}

    def resolves_to_service():
        ips = service_ips(ecs, fleet.cluster, api)
        addrs, _, seen["a"] = nslookup(cid, "a", name)
        _, ports, seen["srv"] = nslookup(cid, "srv", name)
        seen["ips"] = ips
        return (ips, ports) if ips and addrs == sorted(ips) and ports == [8080] * len(ips) else None

    try:
        ips, _ = wait_for(resolves_to_service, timeout=60, interval=1, what=f"{name} resolving to the api tasks")
    except AssertionError as e:
        raise AssertionError(f"{e}: {seen}; registered: {sd.list_instances(ServiceId=reg['Id'])}") from None
    assert len(ips) == 2
    listed = sd.list_instances(ServiceId=reg["Id"])["Instances"]
    assert sorted(i["Attributes"]["AWS_INSTANCE_IPV4"] for i in listed) == sorted(ips)
    assert all(i["Attributes"]["ECS_SERVICE_NAME"] == api for i in listed)
    # Scaling out and in: the answers follow.
    ecs.update_service(cluster=fleet.cluster, service=api, desiredCount=3)
    ips, _ = wait_for(lambda: (r := resolves_to_service()) and len(r[0]) == 3 and r, timeout=120, interval=1,
                      what="three answers")
    ecs.update_service(cluster=fleet.cluster, service=api, desiredCount=1)
    wait_for(lambda: len(nslookup(cid, "a", name)[0]) == 1, timeout=120, interval=1, what="one answer")
    ecs.update_service(cluster=fleet.cluster, service=api, desiredCount=0)
    ecs.update_service(cluster=fleet.cluster, service=client, desiredCount=0)
