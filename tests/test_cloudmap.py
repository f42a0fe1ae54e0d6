"""AWS Cloud Map (service discovery) served by Flotilla, with the pinned aws CLI and boto3, and the
task resolver: a task's containers resolve SERVICE.NAMESPACE (A and SRV) at 169.254.170.2.

DiscoverInstances and DiscoverInstancesRevision have `endpoint.hostPrefix: "data-"` in the model:
botocore prepends it to the endpoint's host, also to a custom --endpoint-url (so
http://127.0.0.1:PORT becomes http://data-127.0.0.1:PORT, which does not resolve). The supported
way off is botocore's own switch: `AWS_DISABLE_HOST_PREFIX_INJECTION=true` (or
`disable_host_prefix_injection = true` in the profile) for the CLI and boto3, or
`Config(inject_host_prefix=False)` in boto3. The tests check the URL botocore builds both ways
without sending anything, then use the switch.

The end-to-end part runs one `flotilla server`, a cluster's agent and a managed-pool host on the
real Docker engine: instances registered by hand in a private DNS namespace are resolved from
inside an awsvpc (Fargate) task and a bridge task with busybox's nslookup, and the answers change
once one instance is deregistered or marked unhealthy. A name outside every namespace is forwarded
to the agent's upstream resolver (here a small resolver of the test on 127.0.0.1, given with
--task-dns-upstream, so nothing leaves the machine)."""

import json
import os
import socket
import struct
import subprocess
import threading

import boto3
import botocore
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

import helpers
from fleet import IMAGE, docker, ecs_for, instances_ready, remove_awsvpc_network_if_unused, task_containers, wait_for


def client(endpoint, **config):
    return boto3.client("servicediscovery", endpoint_url=endpoint, region_name=helpers.REGION,
                        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config))


@pytest.fixture(scope="module")
def sd(endpoint):
    return client(endpoint, inject_host_prefix=False)


def aws(aws_cli, cli_env, endpoint, *args, prefix=False):
    """The aws CLI against the server: (exit code, parsed stdout or None, stderr)."""
    env = dict(cli_env)
    if not prefix:
        env["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    out = subprocess.run([aws_cli, "servicediscovery", *args, "--endpoint-url", endpoint, "--output", "json"],
                         capture_output=True, text=True, env=env, timeout=60)
    body = json.loads(out.stdout) if out.stdout.strip() else None
    return out.returncode, body, out.stderr


def ok(*a, **kw):
    code, body, err = aws(*a, **kw)
    assert code == 0, err
    return body


def error_code(e):
    return e.response["Error"]["Code"]


def namespace_of(sd, operation_id):
    op = sd.get_operation(OperationId=operation_id)["Operation"]
    assert op["Status"] == "SUCCESS" and op["Type"] == "CREATE_NAMESPACE", op
    return op["Targets"]["NAMESPACE"]


def test_discover_instances_gets_the_data_host_prefix_unless_turned_off(endpoint):
    seen = []

    class Raw:
        def stream(self, **_):
            yield b'{"Instances": [], "InstancesRevision": 0}'

    def capture(request, **_):
        seen.append(request.url)
        return AWSResponse(request.url, 200, {}, Raw())

    host = endpoint.split("://", 1)[1].rstrip("/")
    for c in (client(endpoint), client(endpoint, inject_host_prefix=False)):
        c.meta.events.register("before-send", capture)
        c.discover_instances(NamespaceName="x", ServiceName="y")
        c.list_namespaces()
    assert seen[0] == f"http://data-{host}/", seen
    assert seen[1] == f"http://{host}/" and seen[2] == f"http://{host}/" and seen[3] == f"http://{host}/", seen
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    out = subprocess.run(
        [os.path.join(os.path.dirname(os.sys.executable), "python"), "-c",
         "import boto3;from botocore.config import Config;"
         f"c=boto3.client('servicediscovery',endpoint_url='{endpoint}',region_name='us-east-1',"
         "aws_access_key_id='a',aws_secret_access_key='b');"
         "print(c.meta.config.inject_host_prefix)"],
        capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_namespaces_services_and_instances_with_the_cli(aws_cli, cli_env, endpoint, sd):
    name = helpers.unique("corp") + ".local"
    created = ok(aws_cli, cli_env, endpoint, "create-private-dns-namespace", "--name", name, "--vpc", "vpc-0abc",
                 "--properties", "DnsProperties={SOA={TTL=30}}", "--tags", "Key=team,Value=core")
    ns_id = namespace_of(sd, created["OperationId"])
    ns = ok(aws_cli, cli_env, endpoint, "get-namespace", "--id", ns_id)["Namespace"]
    assert ns["Name"] == name and ns["Type"] == "DNS_PRIVATE" and ns["ServiceCount"] == 0
    assert ns["Arn"] == f"arn:aws:servicediscovery:{helpers.REGION}:{helpers.ACCOUNT}:namespace/{ns_id}"
    assert ns["Properties"]["DnsProperties"]["SOA"] == {"TTL": 30}
    assert ns["Properties"]["HttpProperties"] == {"HttpName": name}

    code, _, err = aws(aws_cli, cli_env, endpoint, "create-http-namespace", "--name", name)
    assert code != 0 and "NamespaceAlreadyExists" in err, err

    svc = ok(aws_cli, cli_env, endpoint, "create-service", "--name", "web", "--namespace-id", ns_id,
             "--dns-config", "RoutingPolicy=MULTIVALUE,DnsRecords=[{Type=A,TTL=60},{Type=SRV,TTL=60}]",
             "--health-check-custom-config", "FailureThreshold=1")["Service"]
    assert svc["Type"] == "DNS_HTTP" and svc["NamespaceId"] == ns_id
    assert svc["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 60}, {"Type": "SRV", "TTL": 60}]
    assert svc["Arn"].endswith(f":service/{svc['Id']}")
    code, _, err = aws(aws_cli, cli_env, endpoint, "create-service", "--name", "web", "--namespace-id", ns_id,
                       "--dns-config", "DnsRecords=[{Type=A,TTL=60}]")
    assert code != 0 and "ServiceAlreadyExists" in err, err

    for i, (ip, port, health) in enumerate([("10.1.0.1", "8080", "HEALTHY"), ("10.1.0.2", "8081", "UNHEALTHY"),
                                            ("10.1.0.3", "8082", "HEALTHY")]):
        out = ok(aws_cli, cli_env, endpoint, "register-instance", "--service-id", svc["Id"], "--instance-id", f"i-{i}",
                 "--attributes", f"AWS_INSTANCE_IPV4={ip},AWS_INSTANCE_PORT={port},AWS_INIT_HEALTH_STATUS={health},"
                 f"version=v{1 + i % 2}")
        op = ok(aws_cli, cli_env, endpoint, "get-operation", "--operation-id", out["OperationId"])["Operation"]
        assert op["Type"] == "REGISTER_INSTANCE" and op["Status"] == "SUCCESS"
        assert op["Targets"] == {"INSTANCE": f"i-{i}", "SERVICE": svc["Id"]}

    inst = ok(aws_cli, cli_env, endpoint, "get-instance", "--service-id", svc["Id"], "--instance-id", "i-0")["Instance"]
    assert inst["Attributes"] == {"AWS_INSTANCE_IPV4": "10.1.0.1", "AWS_INSTANCE_PORT": "8080", "version": "v1"}
    listed = ok(aws_cli, cli_env, endpoint, "list-instances", "--service-id", svc["Id"])["Instances"]
    assert sorted(i["Id"] for i in listed) == ["i-0", "i-1", "i-2"]
    assert ok(aws_cli, cli_env, endpoint, "get-service", "--id", svc["Id"])["Service"]["InstanceCount"] == 3

    def discover(*extra):
        out = ok(aws_cli, cli_env, endpoint, "discover-instances", "--namespace-name", name, "--service-name", "web",
                 *extra)
        return sorted(i["InstanceId"] for i in out["Instances"]), out

    healthy, out = discover()
    assert healthy == ["i-0", "i-2"]
    assert all(i["NamespaceName"] == name and i["ServiceName"] == "web" and i["HealthStatus"] == "HEALTHY"
               for i in out["Instances"])
    assert discover("--health-status", "UNHEALTHY")[0] == ["i-1"]
    assert discover("--health-status", "ALL")[0] == ["i-0", "i-1", "i-2"]
    assert discover("--health-status", "HEALTHY_OR_ELSE_ALL")[0] == ["i-0", "i-2"]
    assert discover("--health-status", "ALL", "--query-parameters", "version=v2")[0] == ["i-1"]
    assert discover("--health-status", "ALL", "--query-parameters", "version=v1",
                    "--optional-parameters", "AWS_INSTANCE_PORT=8082")[0] == ["i-2"]
    assert discover("--health-status", "ALL", "--optional-parameters", "version=v9")[0] == ["i-0", "i-1", "i-2"]
    assert len(discover("--health-status", "ALL", "--max-results", "2")[0]) == 2
    revision = out["InstancesRevision"]
    assert ok(aws_cli, cli_env, endpoint, "discover-instances-revision", "--namespace-name", name,
              "--service-name", "web")["InstancesRevision"] == revision

    ok(aws_cli, cli_env, endpoint, "update-instance-custom-health-status", "--service-id", svc["Id"],
       "--instance-id", "i-0", "--status", "UNHEALTHY")
    assert discover()[0] == ["i-2"]
    status = ok(aws_cli, cli_env, endpoint, "get-instances-health-status", "--service-id", svc["Id"])["Status"]
    assert status == {"i-0": "UNHEALTHY", "i-1": "UNHEALTHY", "i-2": "HEALTHY"}
    ok(aws_cli, cli_env, endpoint, "update-instance-custom-health-status", "--service-id", svc["Id"],
       "--instance-id", "i-0", "--status", "HEALTHY")
    # Every instance unhealthy: HEALTHY_OR_ELSE_ALL fails open.
    assert discover("--health-status", "HEALTHY_OR_ELSE_ALL", "--query-parameters", "version=v2")[0] == ["i-1"]
    assert ok(aws_cli, cli_env, endpoint, "discover-instances-revision", "--namespace-name", name,
              "--service-name", "web")["InstancesRevision"] > revision

    # In use: a namespace with services, a service with instances.
    code, _, err = aws(aws_cli, cli_env, endpoint, "delete-namespace", "--id", ns_id)
    assert code != 0 and "ResourceInUse" in err, err
    code, _, err = aws(aws_cli, cli_env, endpoint, "delete-service", "--id", svc["Id"])
    assert code != 0 and "ResourceInUse" in err, err

    updated = ok(aws_cli, cli_env, endpoint, "update-service", "--id", svc["Id"], "--service",
                 "Description=web tier,DnsConfig={DnsRecords=[{Type=A,TTL=5},{Type=SRV,TTL=5}]}")
    assert sd.get_operation(OperationId=updated["OperationId"])["Operation"]["Type"] == "UPDATE_SERVICE"
    got = sd.get_service(Id=svc["Arn"])["Service"]
    assert got["Description"] == "web tier" and got["DnsConfig"]["DnsRecords"][0]["TTL"] == 5

    for i in range(3):
        out = ok(aws_cli, cli_env, endpoint, "deregister-instance", "--service-id", svc["Id"], "--instance-id", f"i-{i}")
        assert sd.get_operation(OperationId=out["OperationId"])["Operation"]["Type"] == "DEREGISTER_INSTANCE"
    ok(aws_cli, cli_env, endpoint, "delete-service", "--id", svc["Id"])
    deleted = ok(aws_cli, cli_env, endpoint, "delete-namespace", "--id", ns_id)
    assert sd.get_operation(OperationId=deleted["OperationId"])["Operation"]["Type"] == "DELETE_NAMESPACE"
    code, _, err = aws(aws_cli, cli_env, endpoint, "get-namespace", "--id", ns_id)
    assert code != 0 and "NamespaceNotFound" in err, err


def test_lists_filter_and_page_with_boto3(sd):
    prefix = helpers.unique("pg")
    ids = []
    for n in range(5):
        op = sd.create_http_namespace(Name=f"{prefix}-{n}", Description=f"n{n}")["OperationId"]
        ids.append(namespace_of(sd, op))
    paginator = sd.get_paginator("list_namespaces")
    pages = list(paginator.paginate(Filters=[{"Name": "NAME", "Values": [prefix], "Condition": "BEGINS_WITH"}],
                                    PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    names = sorted(n["Name"] for p in pages for n in p["Namespaces"])
    assert names == [f"{prefix}-{n}" for n in range(5)]
    http = sd.list_namespaces(Filters=[{"Name": "TYPE", "Values": ["HTTP"], "Condition": "EQ"}])["Namespaces"]
    assert {n["Id"] for n in http} >= set(ids) and all(n["Type"] == "HTTP" for n in http)

    srv = sd.create_service(Name="api", NamespaceId=ids[0], HealthCheckCustomConfig={})["Service"]
    assert srv["Type"] == "HTTP"
    sd.create_service(Name="api", NamespaceId=ids[1])
    listed = sd.list_services(Filters=[{"Name": "NAMESPACE_ID", "Values": [ids[0]], "Condition": "EQ"}])["Services"]
    assert [s["Id"] for s in listed] == [srv["Id"]]
    assert sd.get_namespace(Id=ids[0])["Namespace"]["ServiceCount"] == 1

    # An HTTP service takes any attributes and is found by DiscoverInstances.
    sd.register_instance(ServiceId=srv["Id"], InstanceId="backend-1", Attributes={"url": "http://10.0.0.9:80"})
    sd.register_instance(ServiceId=srv["Id"], InstanceId="backend-1", Attributes={"url": "http://10.0.0.10:80"})
    found = sd.discover_instances(NamespaceName=f"{prefix}-0", ServiceName="api")["Instances"]
    assert [(i["InstanceId"], i["Attributes"]["url"], i["HealthStatus"]) for i in found] == [
        ("backend-1", "http://10.0.0.10:80", "HEALTHY")]

    ops = sd.list_operations(Filters=[{"Name": "TYPE", "Values": ["REGISTER_INSTANCE"], "Condition": "EQ"},
                                      {"Name": "SERVICE_ID", "Values": [srv["Id"]], "Condition": "EQ"}])["Operations"]
    assert len(ops) == 2 and all(o["Status"] == "SUCCESS" for o in ops)

    arn = sd.get_service(Id=srv["Id"])["Service"]["Arn"]
    sd.tag_resource(ResourceARN=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    sd.untag_resource(ResourceARN=arn, TagKeys=["a"])
    assert sd.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    ns_arn = sd.get_namespace(Id=ids[2])["Namespace"]["Arn"]
    sd.tag_resource(ResourceARN=ns_arn, Tags=[{"Key": "env", "Value": "test"}])
    assert sd.list_tags_for_resource(ResourceARN=ns_arn)["Tags"] == [{"Key": "env", "Value": "test"}]


def test_errors_are_cloud_maps(sd, endpoint):
    def err(f, **kw):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            f(**kw)
        return error_code(e.value), e.value.response["Error"]["Message"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]

    assert err(sd.get_namespace, Id="ns-doesnotexist0000")[0] == "NamespaceNotFound"
    assert err(sd.get_service, Id="srv-doesnotexist000")[0] == "ServiceNotFound"
    assert err(sd.get_operation, OperationId="nope")[0] == "OperationNotFound"
    assert err(sd.discover_instances, NamespaceName="no-such-ns", ServiceName="x")[0] == "NamespaceNotFound"
    assert err(sd.list_tags_for_resource,
               ResourceARN=f"arn:aws:servicediscovery:{helpers.REGION}:{helpers.ACCOUNT}:service/srv-x")[0] == \
        "ResourceNotFoundException"
    op = sd.create_private_dns_namespace(Name=helpers.unique("err") + ".local", Vpc="vpc-1")["OperationId"]
    ns = namespace_of(sd, op)
    code, message, _ = err(sd.create_service, Name="hc", NamespaceId=ns,
                           DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]},
                           HealthCheckConfig={"Type": "HTTP", "ResourcePath": "/"})
    assert code == "InvalidInput" and "HealthCheckCustomConfig" in message
    code, message, _ = err(sd.create_service, Name="nodns", NamespaceId=ns)
    assert code == "InvalidInput" and "DnsConfig" in message
    code, message, _ = err(sd.create_service, Name="cname", NamespaceId=ns,
                           DnsConfig={"DnsRecords": [{"Type": "CNAME", "TTL": 10}]})
    assert code == "InvalidInput" and "CNAME" in message
    svc = sd.create_service(Name="db", NamespaceId=ns, DnsConfig={"DnsRecords": [{"Type": "SRV", "TTL": 10}]})["Service"]
    code, message, _ = err(sd.register_instance, ServiceId=svc["Id"], InstanceId="x",
                           Attributes={"AWS_INSTANCE_IPV4": "10.0.0.1"})
    assert code == "InvalidInput" and "AWS_INSTANCE_PORT" in message
    code, message, _ = err(sd.register_instance, ServiceId=svc["Id"], InstanceId="x",
                           Attributes={"AWS_INSTANCE_IPV4": "10.0.0.999", "AWS_INSTANCE_PORT": "1"})
    assert code == "InvalidInput" and "IPv4" in message
    sd.register_instance(ServiceId=svc["Id"], InstanceId="x", Attributes={"AWS_INSTANCE_IPV4": "10.0.0.1",
                                                                         "AWS_INSTANCE_PORT": "5432"})
    assert err(sd.update_instance_custom_health_status, ServiceId=svc["Id"], InstanceId="x",
               Status="HEALTHY")[0] == "CustomHealthNotFound"
    assert err(sd.deregister_instance, ServiceId=svc["Id"], InstanceId="nope")[0] == "InstanceNotFound"
    assert err(sd.get_instance, ServiceId=svc["Id"], InstanceId="nope")[0] == "InstanceNotFound"
    code, message, _ = err(sd.get_service_attributes, ServiceId=svc["Id"])
    assert code == "InvalidInput" and "GetServiceAttributes is not served" in message and "DiscoverInstances" in message
    # The model's own checks.
    assert err(sd.list_namespaces, MaxResults=1000)[0] in ("InvalidInput", "ParamValidation")
    # A credential scoped to another service is refused as AWS refuses it.
    r = helpers.raw_call(endpoint, target="Route53AutoNaming_v20170314.ListNamespaces", body={})
    assert r.status == 403 and r.json["__type"] == "InvalidSignatureException", r


# --- The task resolver, end to end on Docker -------------------------------------------------

VPC = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"],
                               "securityGroups": ["sg-0123456789abcdef0"], "assignPublicIp": "DISABLED"}}
OUTSIDE_NAME = "outside.flotilla-test"
OUTSIDE_ADDRESS = "192.0.2.77"


class FakeUpstream:
    """A resolver on 127.0.0.1 answering A OUTSIDE_ADDRESS for OUTSIDE_NAME and NXDOMAIN else:
    the agent's upstream, so a forwarded query never leaves the machine."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            qid, flags = struct.unpack(">HH", data[:4])
            labels, i = [], 12
            while data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode())
                i += 1 + data[i]
            qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
            question = data[12:i + 5]
            name = ".".join(labels).lower()
            self.asked.append((name, qtype))
            if name == OUTSIDE_NAME and qtype == 1:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(OUTSIDE_ADDRESS)
                header = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
            elif name == OUTSIDE_NAME:
                answer, header = b"", struct.pack(">HHHHHH", qid, 0x8180, 1, 0, 0, 0)
            else:
                answer, header = b"", struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0)
            self.sock.sendto(header + question + answer, peer)

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def upstream():
    u = FakeUpstream()
    yield u
    u.close()


@pytest.fixture(scope="module")
def dns_fleet(tmp_path_factory, test_image, upstream):
    from fleet import Fleet
    f = Fleet(tmp_path_factory.mktemp("cloudmap-fleet"))
    try:
        f.cluster = helpers.unique("dns")
        ecs = ecs_for(f)
        ecs.create_cluster(clusterName=f.cluster)
        f.add_agent(f.cluster, extra_args=["--task-dns-upstream", f"127.0.0.1:{upstream.port}"])
        f.pool = f.add_agent(managed=True, extra_args=["--task-dns-upstream", f"127.0.0.1:{upstream.port}"])
        instances_ready(ecs, f.cluster, 1)
        f.pool.wait_session()
    except BaseException:
        f.close()
        raise
    yield f
    f.close()
    remove_awsvpc_network_if_unused()


# Each round prints what nslookup says, between markers, on one line each.
SCRIPT = r"""
n=0
while true; do
  n=$((n+1))
  echo "ROUND $n A $(nslookup -type=a $SVC 2>&1 | tr '\n' ' ')"
  echo "ROUND $n SRV $(nslookup -type=srv $SVC 2>&1 | tr '\n' ' ')"
  echo "ROUND $n OUT $(nslookup -type=a %s 2>&1 | tr '\n' ' ')"
  echo "ROUND $n NX $(nslookup -type=a nope.$NS 2>&1 | tr '\n' ' ')"
  sleep 1
done
""" % OUTSIDE_NAME


def rounds(cluster, task_arn):
    """{round: {kind: text}} of the task's container output."""
    for cid in task_containers(cluster):
        labels = json.loads(docker("inspect", "--format", "{{json .Config.Labels}}", cid))
        if labels.get("com.flotilla.task-arn") == task_arn and labels.get("com.flotilla.container-name") == "app":
            out = {}
            for line in docker("logs", cid).splitlines():
                parts = line.split(" ", 3)
                if len(parts) == 4 and parts[0] == "ROUND":
                    out.setdefault(int(parts[1]), {})[parts[2]] = parts[3]
            return out
    return {}


def complete_round_after(ecs, cluster, task_arn, after):
    def check():
        t = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"][0]
        assert t["lastStatus"] != "STOPPED", t.get("stoppedReason")
        r = rounds(cluster, task_arn)
        done = [n for n, kinds in r.items() if n > after and len(kinds) == 4]
        return (max(done), r[max(done)]) if done else None
    return wait_for(check, timeout=120, what=f"a complete nslookup round of {task_arn}")


def run_task(ecs, fleet, family, network_mode, env):
    containers = [{"name": "app", "image": IMAGE, "essential": True, "command": ["sh", "-c", SCRIPT],
                   "environment": [{"name": k, "value": v} for k, v in env.items()], "stopTimeout": 2,
                   **({} if network_mode == "awsvpc" else {"memory": 32})}]
    td = {"family": family, "networkMode": network_mode, "containerDefinitions": containers}
    if network_mode == "awsvpc":
        td.update(requiresCompatibilities=["FARGATE"], cpu="256", memory="512")
    ecs.register_task_definition(**td)
    if network_mode == "awsvpc":
        fleet.track(fleet.cluster)

        def attempt():
            out = ecs.run_task(cluster=fleet.cluster, taskDefinition=family, launchType="FARGATE",
                               networkConfiguration=VPC)
            return out["tasks"][0] if out["tasks"] else None
        return wait_for(attempt, timeout=60, what="capacity on the managed pool")["taskArn"]
    out = ecs.run_task(cluster=fleet.cluster, taskDefinition=family)
    assert out["tasks"], out
    return out["tasks"][0]["taskArn"]


def addresses(text):
    """The addresses nslookup printed after the server's own lines."""
    words = text.split()
    out = []
    for i, w in enumerate(words):
        if w == "Address:" and i + 1 < len(words) and not words[i + 1].endswith(("#53", ":53")):
            out.append(words[i + 1])
    return sorted(out)


@pytest.mark.parametrize("network_mode", ["awsvpc", "bridge"])
def test_tasks_resolve_cloud_map_names_at_their_resolver(dns_fleet, upstream, network_mode):
    fleet = dns_fleet
    ecs = ecs_for(fleet)
    sd = client(fleet.endpoint, inject_host_prefix=False)
    ns_name = helpers.unique("mesh").lower() + ".local"
    ns = namespace_of(sd, sd.create_private_dns_namespace(Name=ns_name, Vpc="vpc-0abc")["OperationId"])
    svc = sd.create_service(Name="web", NamespaceId=ns, HealthCheckCustomConfig={"FailureThreshold": 1},
                            DnsConfig={"RoutingPolicy": "MULTIVALUE",
                                       "DnsRecords": [{"Type": "A", "TTL": 1}, {"Type": "SRV", "TTL": 1}]})["Service"]
    for i, (ip, port) in enumerate([("10.77.0.1", 8080), ("10.77.0.2", 8081)]):
        sd.register_instance(ServiceId=svc["Id"], InstanceId=f"web-{i}",
                             Attributes={"AWS_INSTANCE_IPV4": ip, "AWS_INSTANCE_PORT": str(port)})

    task = run_task(ecs, fleet, helpers.unique(f"dns-{network_mode}"), network_mode,
                    {"SVC": f"web.{ns_name}", "NS": ns_name})
    n, first = complete_round_after(ecs, fleet.cluster, task, 0)
    assert addresses(first["A"]) == ["10.77.0.1", "10.77.0.2"], first["A"]
    srv = first["SRV"]
    assert f"8080 web-0.web.{ns_name}" in srv and f"8081 web-1.web.{ns_name}" in srv, srv
    assert OUTSIDE_ADDRESS in first["OUT"], first["OUT"]
    assert (OUTSIDE_NAME, 1) in upstream.asked
    assert "NXDOMAIN" in first["NX"] or "can't find" in first["NX"], first["NX"]
    assert not any(name.endswith(ns_name) for name, _ in upstream.asked), "a Cloud Map name was forwarded"

    # Deregistered: gone from the answers within the cache second and the record's TTL.
    sd.deregister_instance(ServiceId=svc["Id"], InstanceId="web-0")
    n, later = complete_round_after(ecs, fleet.cluster, task, n + 2)
    assert addresses(later["A"]) == ["10.77.0.2"], later["A"]
    assert "8080" not in later["SRV"] and f"8081 web-1.web.{ns_name}" in later["SRV"], later["SRV"]

    # Unhealthy: gone too; healthy again: back.
    sd.register_instance(ServiceId=svc["Id"], InstanceId="web-0",
                         Attributes={"AWS_INSTANCE_IPV4": "10.77.0.3", "AWS_INSTANCE_PORT": "8082"})
    sd.update_instance_custom_health_status(ServiceId=svc["Id"], InstanceId="web-1", Status="UNHEALTHY")
    n, after = complete_round_after(ecs, fleet.cluster, task, n + 2)
    assert addresses(after["A"]) == ["10.77.0.3"], after["A"]

    ecs.stop_task(cluster=fleet.cluster, task=task, reason="test done")
    wait_for(lambda: ecs.describe_tasks(cluster=fleet.cluster, tasks=[task])["tasks"][0]["lastStatus"] == "STOPPED",
             timeout=90, what="the task STOPPED")
    rules = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout
    assert not [r for r in rules.splitlines() if f"task={task}" in r], "the task's NAT rules outlived it"
