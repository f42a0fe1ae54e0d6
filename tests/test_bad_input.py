"""Hundreds of malformed or invalid requests, sent as raw HTTP (signed with botocore's SigV4Auth
unless the case is about signing). Every one must be answered with a 4xx status and a JSON body
whose `__type` is an ECS modeled error shape or one of the AWS protocol errors, with a non-empty
message; the server must stay up, and the store must be unchanged afterwards.

Cases are generated: for several operations, every top-level input member (from service-2.json)
gets a value of each wrong JSON type, and every required member is left out; then oversized
strings, container counts, Fargate sizes, enum values, broken JSON, targets and signatures."""

import copy
import json

import pytest

import helpers
from helpers import ACCOUNT, PROTOCOL_ERRORS, REGION, TARGET_PREFIX, load_model, raw_call, unique

MODEL = load_model()
ALLOWED_TYPES = helpers.modeled_errors(MODEL) | PROTOCOL_ERRORS

WRONG_VALUES = {
    "string": "not-the-right-type",
    "number": 12345,
    "float": 1.5,
    "boolean": True,
    "list": ["x"],
    "object": {"k": "v"},
}
# Which JSON kinds a model type accepts.
ACCEPTS = {
    "string": {"string"},
    "integer": {"number"},
    "long": {"number"},
    "double": {"number", "float"},
    "float": {"number", "float"},
    "boolean": {"boolean"},
    "list": {"list"},
    "map": {"object"},
    "structure": {"object"},
    "timestamp": {"number", "float"},
}


class Victims:
    """Resources that exist before the bad requests, so that a request that wrongly went through
    would show in the snapshot."""

    def __init__(self, ecs):
        self.cluster = unique("victim")
        self.cluster_arn = ecs.create_cluster(
            clusterName=self.cluster, tags=[{"key": "keep", "value": "me"}]
        )["cluster"]["clusterArn"]
        self.family = unique("victimfam")
        cd = [{"name": "a", "image": "busybox", "memory": 32}]
        self.td_arn = ecs.register_task_definition(
            family=self.family, containerDefinitions=cd, tags=[{"key": "keep", "value": "me"}]
        )["taskDefinition"]["taskDefinitionArn"]
        self.inactive_family = unique("victimgone")
        ecs.register_task_definition(family=self.inactive_family, containerDefinitions=cd)
        ecs.deregister_task_definition(taskDefinition=f"{self.inactive_family}:1")
        self.principal = f"arn:aws:iam::{ACCOUNT}:user/{unique('victim')}"
        ecs.put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=self.principal)
        self.bystander = f"arn:aws:iam::{ACCOUNT}:user/{unique('bystander')}"


def base_inputs(v):
    """A valid input per operation; each case breaks exactly one thing in it."""
    cd = [{"name": "app", "image": "busybox", "memory": 64}]
    return {
        "CreateCluster": {"clusterName": unique("never"), "tags": [{"key": "a", "value": "b"}],
                          "settings": [{"name": "containerInsights", "value": "enabled"}],
                          "capacityProviders": ["FARGATE"]},
        "DescribeClusters": {"clusters": [v.cluster], "include": ["TAGS"]},
        "ListClusters": {"maxResults": 10},
        "UpdateCluster": {"cluster": v.cluster,
                          "settings": [{"name": "containerInsights", "value": "enabled"}]},
        "UpdateClusterSettings": {"cluster": v.cluster,
                                  "settings": [{"name": "containerInsights", "value": "enabled"}]},
        "PutClusterCapacityProviders": {"cluster": v.cluster, "capacityProviders": ["FARGATE"],
                                        "defaultCapacityProviderStrategy": []},
        "DeleteCluster": {"cluster": v.cluster},
        "DescribeCapacityProviders": {"capacityProviders": ["FARGATE"], "maxResults": 5},
        "RegisterTaskDefinition": {"family": v.family, "containerDefinitions": cd,
                                   "networkMode": "bridge", "cpu": "256", "memory": "512",
                                   "tags": [{"key": "a", "value": "b"}]},
        "DescribeTaskDefinition": {"taskDefinition": v.td_arn, "include": ["TAGS"]},
        "ListTaskDefinitions": {"familyPrefix": v.family, "status": "ACTIVE", "sort": "ASC",
                                "maxResults": 10},
        "ListTaskDefinitionFamilies": {"familyPrefix": v.family, "status": "ALL",
                                       "maxResults": 10},
        "DeregisterTaskDefinition": {"taskDefinition": v.td_arn},
        "DeleteTaskDefinitions": {"taskDefinitions": [f"{v.inactive_family}:1"]},
        "TagResource": {"resourceArn": v.cluster_arn, "tags": [{"key": "new", "value": "tag"}]},
        "UntagResource": {"resourceArn": v.cluster_arn, "tagKeys": ["keep"]},
        "ListTagsForResource": {"resourceArn": v.cluster_arn},
        "PutAttributes": {"cluster": v.cluster,
                          "attributes": [{"name": "a", "value": "b", "targetId": "abc"}]},
        "DeleteAttributes": {"cluster": v.cluster, "attributes": [{"name": "a", "targetId": "abc"}]},
        "ListAttributes": {"cluster": v.cluster, "targetType": "container-instance"},
        "PutAccountSetting": {"name": "awsvpcTrunking", "value": "disabled",
                              "principalArn": v.principal},
        "PutAccountSettingDefault": {"name": "containerInsights", "value": "enhanced"},
        "DeleteAccountSetting": {"name": "awsvpcTrunking", "principalArn": v.principal},
        "ListAccountSettings": {"principalArn": v.principal, "maxResults": 5},
    }


def input_shape(op):
    return MODEL["shapes"][MODEL["operations"][op]["input"]["shape"]]


def member_type(shape, member):
    return MODEL["shapes"][shape["members"][member]["shape"]]["type"]


def generate_cases(v):
    cases = []

    def add(name, op=None, body=None, **kw):
        cases.append((name, dict(operation=op, body=body if body is not None else b"{}", **kw)))

    bases = base_inputs(v)
    # 1. Every top-level member with a value of each wrong JSON type.
    for op, base in bases.items():
        shape = input_shape(op)
        for member in shape["members"]:
            accepted = ACCEPTS[member_type(shape, member)]
            for kind, value in WRONG_VALUES.items():
                if kind in accepted:
                    continue
                body = copy.deepcopy(base)
                body[member] = value
                add(f"{op}.{member}={kind}", op, body)
        # 2. Every required member left out.
        for member in shape.get("required", []):
            body = copy.deepcopy(base)
            body.pop(member, None)
            add(f"{op} without {member}", op, body)

    # 3. Nested wrong types.
    rtd = bases["RegisterTaskDefinition"]
    nested = [
        ("memory", "64"), ("cpu", "1"), ("essential", "yes"), ("portMappings", {"a": 1}),
        ("environment", {"A": "1"}), ("dockerLabels", {"k": 5}), ("command", "sleep 1"),
        ("links", [1]), ("name", 7), ("image", ["busybox"]), ("portMappings", [{"containerPort": "80"}]),
        ("healthCheck", {"command": "CMD true"}), ("ulimits", [{"name": "nofile"}]),
    ]
    for member, value in nested:
        body = copy.deepcopy(rtd)
        body["containerDefinitions"][0][member] = value
        add(f"RegisterTaskDefinition container.{member}={value!r}", "RegisterTaskDefinition", body)
    for bad_item in ("x", 1, None, [], {"key": 5, "value": "v"}):
        body = copy.deepcopy(bases["TagResource"])
        body["tags"] = [bad_item]
        add(f"TagResource tags=[{bad_item!r}]", "TagResource", body)

    # 4. Oversized and malformed strings.
    def variant(op, label, **changes):
        body = copy.deepcopy(bases[op])
        body.update(changes)
        add(f"{op} {label}", op, body)

    variant("TagResource", "tag key of 129", tags=[{"key": "k" * 129, "value": "v"}])
    variant("TagResource", "tag value of 257", tags=[{"key": "k", "value": "v" * 257}])
    variant("TagResource", "51 tags", tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    variant("TagResource", "aws: tag", tags=[{"key": "aws:x", "value": "v"}])
    variant("TagResource", "empty key", tags=[{"key": "", "value": "v"}])
    variant("TagResource", "duplicate keys", tags=[{"key": "d", "value": "1"}, {"key": "d", "value": "2"}])
    variant("TagResource", "1 existing + 50 new",
            tags=[{"key": f"z{i}", "value": "v"} for i in range(50)])
    variant("TagResource", "arn of an unknown cluster",
            resourceArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{unique('ghost')}")
    variant("TagResource", "not an arn", resourceArn="cluster/x")
    variant("TagResource", "short service arn",
            resourceArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/short")
    variant("UntagResource", "tag key of 129", tagKeys=["k" * 129])
    variant("CreateCluster", "name of 256", clusterName="c" * 256)
    variant("CreateCluster", "name with a space", clusterName="a b")
    variant("CreateCluster", "name with a slash", clusterName="a/b")
    variant("CreateCluster", "empty name", clusterName="")
    variant("CreateCluster", "tag key of 129", tags=[{"key": "k" * 129, "value": "v"}])
    variant("CreateCluster", "51 tags", tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    variant("CreateCluster", "unknown capacity provider", capacityProviders=["NOPE"])
    variant("CreateCluster", "bad setting value", settings=[{"name": "containerInsights", "value": "x"}])
    variant("CreateCluster", "bad setting name", settings=[{"name": "insights", "value": "enabled"}])
    variant("CreateCluster", "unknown namespace ARN", serviceConnectDefaults={
        "namespace": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/ns-aaaaaaaaaaaaaaaa"})
    variant("CreateCluster", "bad namespace name", serviceConnectDefaults={"namespace": "a b"})
    variant("CreateCluster", "strategy weight 1001", capacityProviders=["FARGATE"],
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1001}])
    variant("CreateCluster", "strategy base -1", capacityProviders=["FARGATE"],
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1, "base": -1}])
    variant("RegisterTaskDefinition", "family of 256", family="f" * 256)
    variant("RegisterTaskDefinition", "family with a colon", family="f:1")
    variant("RegisterTaskDefinition", "empty family", family="")
    variant("RegisterTaskDefinition", "container name of 256",
            containerDefinitions=[{"name": "n" * 256, "image": "i", "memory": 64}])
    variant("RegisterTaskDefinition", "tag key of 129", tags=[{"key": "k" * 129, "value": "v"}])
    variant("PutAttributes", "attribute name of 129",
            attributes=[{"name": "a" * 129, "value": "b", "targetId": "abc"}])
    variant("PutAttributes", "11 attributes",
            attributes=[{"name": f"a{i}", "value": "b", "targetId": "abc"} for i in range(11)])
    variant("PutAttributes", "unknown target", attributes=[{"name": "a", "value": "b", "targetId": "nope"}])
    variant("PutAttributes", "no target", attributes=[{"name": "a", "value": "b"}])
    variant("PutAttributes", "unknown cluster", cluster=unique("ghost"))
    variant("DeleteAttributes", "unknown target", attributes=[{"name": "a", "targetId": "nope"}])
    variant("ListAttributes", "value without name", attributeValue="v")
    variant("PutAccountSetting", "bad value", value="sometimes")
    variant("PutAccountSetting", "bad name", name="longArns")
    variant("PutAccountSettingDefault", "bad value", value="sometimes")
    variant("PutAccountSettingDefault", "retirement 3 days", name="fargateTaskRetirementWaitPeriod", value="3")

    add("CreateCluster 3 MB body", "CreateCluster",
        {"clusterName": unique("never"), "tags": [{"key": "k", "value": "v" * 3_000_000}]})

    # 5. Container counts, memory rules, Fargate sizes.
    c = {"name": "c", "image": "busybox", "memory": 64}
    variant("RegisterTaskDefinition", "0 containers", containerDefinitions=[])
    variant("RegisterTaskDefinition", "11 containers",
            containerDefinitions=[dict(c, name=f"c{i}") for i in range(11)])
    variant("RegisterTaskDefinition", "duplicate container names", containerDefinitions=[c, c])
    variant("RegisterTaskDefinition", "no image", containerDefinitions=[{"name": "c", "memory": 64}])
    variant("RegisterTaskDefinition", "no essential container",
            containerDefinitions=[dict(c, essential=False)])
    variant("RegisterTaskDefinition", "no memory anywhere",
            containerDefinitions=[{"name": "c", "image": "busybox"}], cpu=None, memory=None)
    variant("RegisterTaskDefinition", "memory below reservation",
            containerDefinitions=[dict(c, memory=64, memoryReservation=128)])
    variant("RegisterTaskDefinition", "container memory above task memory",
            containerDefinitions=[dict(c, memory=4096)], memory="512")
    variant("RegisterTaskDefinition", "task cpu 64", cpu="64")
    variant("RegisterTaskDefinition", "task cpu words", cpu="lots")
    variant("RegisterTaskDefinition", "task memory words", memory="a lot")
    for cpu, mem in [("256", "4096"), ("512", "512"), ("1024", "1024"), ("2048", "2048"),
                     ("4096", "4096"), ("8192", "8192"), ("16384", "16384"), ("300", "1024"),
                     ("256", "513"), ("0.25 vCPU", "3GB")]:
        variant("RegisterTaskDefinition", f"fargate {cpu}/{mem}", requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc", cpu=cpu, memory=mem, containerDefinitions=[
                    {"name": "c", "image": "busybox"}])
    variant("RegisterTaskDefinition", "fargate on bridge", requiresCompatibilities=["FARGATE"],
            networkMode="bridge", cpu="256", memory="512")
    variant("RegisterTaskDefinition", "fargate without sizes", requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc", cpu=None, memory=None)
    variant("RegisterTaskDefinition", "ephemeral storage 20", ephemeralStorage={"sizeInGiB": 20})
    variant("RegisterTaskDefinition", "healthCheck interval 1", containerDefinitions=[
        dict(c, healthCheck={"command": ["CMD", "true"], "interval": 1})])
    variant("RegisterTaskDefinition", "containerPort 70000", containerDefinitions=[
        dict(c, portMappings=[{"containerPort": 70000}])])
    variant("RegisterTaskDefinition", "integer overflow", containerDefinitions=[
        dict(c, memory=2 ** 40)])
    variant("RegisterTaskDefinition", "mountPoint to unknown volume", containerDefinitions=[
        dict(c, mountPoints=[{"sourceVolume": "nope", "containerPath": "/x"}])])
    variant("RegisterTaskDefinition", "dependsOn unknown container", containerDefinitions=[
        dict(c, dependsOn=[{"containerName": "nope", "condition": "START"}])])

    # 6. Bad enum values.
    for op, member, value in [
        ("RegisterTaskDefinition", "networkMode", "weird"),
        ("RegisterTaskDefinition", "requiresCompatibilities", ["MARS"]),
        ("RegisterTaskDefinition", "pidMode", "everything"),
        ("RegisterTaskDefinition", "ipcMode", "shared"),
        ("ListTaskDefinitions", "status", "DELETED"),
        ("ListTaskDefinitions", "status", "active"),
        ("ListTaskDefinitions", "sort", "UP"),
        ("ListTaskDefinitionFamilies", "status", "SOME"),
        ("DescribeClusters", "include", ["EVERYTHING"]),
        ("DescribeTaskDefinition", "include", ["tags"]),
        ("ListAttributes", "targetType", "task"),
        ("DescribeCapacityProviders", "include", ["ALL"]),
        ("ListAccountSettings", "name", "nothing"),
        ("DeleteAccountSetting", "name", "nothing"),
    ]:
        variant(op, f"{member}={value!r}", **{member: value})

    # 7. Limits and references.
    variant("ListClusters", "maxResults 0", maxResults=0)
    variant("ListClusters", "maxResults 101", maxResults=101)
    variant("ListClusters", "maxResults -5", maxResults=-5)
    variant("ListClusters", "garbage nextToken", nextToken="%%%")
    variant("ListTaskDefinitions", "maxResults 1000", maxResults=1000)
    variant("ListTaskDefinitionFamilies", "maxResults 0", maxResults=0)
    variant("ListAccountSettings", "maxResults 11", maxResults=11)
    variant("DescribeCapacityProviders", "maxResults 11", maxResults=11)
    variant("DescribeClusters", "101 clusters", clusters=[f"c{i}" for i in range(101)])
    variant("DeleteTaskDefinitions", "11 definitions",
            taskDefinitions=[f"{v.inactive_family}:{i}" for i in range(1, 12)])
    variant("DeleteTaskDefinitions", "no definitions", taskDefinitions=[])
    variant("DeleteTaskDefinitions", "no revision", taskDefinitions=[v.inactive_family])
    variant("DescribeTaskDefinition", "unknown family", taskDefinition=unique("ghost"))
    variant("DescribeTaskDefinition", "revision 0", taskDefinition=f"{v.family}:0")
    variant("DescribeTaskDefinition", "revision x", taskDefinition=f"{v.family}:x")
    variant("DescribeTaskDefinition", "cluster arn", taskDefinition=v.cluster_arn)
    variant("DeregisterTaskDefinition", "no revision", taskDefinition=v.family)
    variant("DeregisterTaskDefinition", "unknown revision", taskDefinition=f"{v.family}:999")
    variant("DeleteCluster", "unknown cluster", cluster=unique("ghost"))
    variant("DeleteCluster", "bad arn", cluster="arn:aws:ecs:us-east-1:1:service/x")
    variant("UpdateCluster", "unknown cluster", cluster=unique("ghost"))
    variant("UpdateClusterSettings", "unknown cluster", cluster=unique("ghost"))
    variant("PutClusterCapacityProviders", "unknown provider", capacityProviders=["EC2"])
    variant("PutClusterCapacityProviders", "strategy outside providers",
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    variant("ListTagsForResource", "unknown cluster",
            resourceArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{unique('ghost')}")

    # 8. Bodies that are not JSON, or not a JSON object.
    for op in ("ListClusters", "CreateCluster", "RegisterTaskDefinition", "TagResource",
               "PutAccountSetting"):
        for raw in (b"{", b"not json", b"{'single': 'quotes'}", b'{"a": 1,}', b"{}garbage",
                    b"\xff\xfe\x00", b'{"clusterName": "x"', b"[]", b"1", b'"a string"',
                    b"null", b"true", b'[{"clusterName": "x"}]'):
            add(f"{op} body {raw[:20]!r}", op, raw)

    # 9. X-Amz-Target problems.
    for target in (TARGET_PREFIX + "NoSuchOperation", TARGET_PREFIX, "ListClusters",
                   "AmazonEC2ContainerServiceV20141113.listClusters",
                   "AmazonEC2ContainerServiceV20141112.ListClusters",
                   "DynamoDB_20120810.ListTables", TARGET_PREFIX + "ListClusters.Extra",
                   TARGET_PREFIX + "List Clusters"):
        add(f"target {target!r}", None, b"{}", target=target)
    # Targets of the other services Flotilla serves, signed for ECS: refused for the scope.
    for target in ("secretsmanager.ListSecrets", "AmazonSSM.GetParameter", "secretsmanager.",
                   "AmazonSSM.NoSuchOperation"):
        add(f"target {target!r} with an ecs scope", None, b"{}", target=target)
    add("no X-Amz-Target", None, b"{}")
    add("no X-Amz-Target, CreateCluster body", None, {"clusterName": unique("never")})
    add("GET /", None, b"", target=TARGET_PREFIX + "ListClusters", method="GET")
    add("POST /other", None, b"{}", target=TARGET_PREFIX + "ListClusters", path="/other")

    # 10. Authentication and signatures.
    create = {"clusterName": unique("never")}
    add("unsigned", "CreateCluster", create, sign=False)
    add("unsigned ListClusters", "ListClusters", b"{}", sign=False)
    add("unknown access key", "CreateCluster", create, access_key="AKIDNOBODYKNOWS00000")
    add("wrong secret", "CreateCluster", create, secret_key="wrong")
    add("empty secret", "CreateCluster", create, secret_key="x")
    add("session token not issued", "CreateCluster", create, token="FAKE-SESSION-TOKEN")

    def set_header(name, value):
        def tamper(h):
            for k in list(h):
                if k.lower() == name.lower():
                    del h[k]
            if value is not None:
                h[name] = value
        return tamper

    def flip_signature(h):
        auth = h["Authorization"]
        last = auth[-1]
        h["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")

    add("flipped signature", "CreateCluster", create, tamper=flip_signature)
    add("target changed after signing", "ListClusters", create,
        tamper=set_header("X-Amz-Target", TARGET_PREFIX + "CreateCluster"))
    add("body changed after signing", "CreateCluster", create,
        tamper=lambda h: None, extra_headers={}, body_after={"clusterName": unique("other")})
    add("no X-Amz-Date", "CreateCluster", create, tamper=set_header("X-Amz-Date", None))
    add("bad X-Amz-Date", "CreateCluster", create, tamper=set_header("X-Amz-Date", "yesterday"))
    add("Authorization garbage", "CreateCluster", create,
        tamper=set_header("Authorization", "AWS4-HMAC-SHA256 garbage"))
    add("Authorization basic", "CreateCluster", create,
        tamper=set_header("Authorization", "Basic dXNlcjpwYXNz"))
    add("Authorization empty", "CreateCluster", create, tamper=set_header("Authorization", ""))
    add("credential scope for s3", "CreateCluster", create,
        tamper=lambda h: h.__setitem__("Authorization", h["Authorization"].replace("/ecs/", "/s3/")))
    add("credential scope truncated", "CreateCluster", create,
        tamper=lambda h: h.__setitem__("Authorization", h["Authorization"].replace("/aws4_request", "")))
    add("signed headers reduced", "CreateCluster", create,
        tamper=lambda h: h.__setitem__("Authorization", h["Authorization"].replace(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-target", "SignedHeaders=host")))
    for minutes in (16, -16, 60, -60, 24 * 60, -24 * 60 * 365):
        add(f"date {minutes:+d} min", "CreateCluster", create, skew_seconds=minutes * 60)
    return cases


def snapshot(ecs, v):
    def all_pages(op, key, **kw):
        return sorted(ecs.get_paginator(op).paginate(**kw).build_full_result()[key])

    return {
        "clusters": all_pages("list_clusters", "clusterArns"),
        "families": all_pages("list_task_definition_families", "families", status="ALL"),
        "active": all_pages("list_task_definitions", "taskDefinitionArns", status="ACTIVE"),
        "inactive": all_pages("list_task_definitions", "taskDefinitionArns", status="INACTIVE"),
        "deleting": all_pages("list_task_definitions", "taskDefinitionArns",
                              status="DELETE_IN_PROGRESS"),
        "victim cluster": ecs.describe_clusters(
            clusters=[v.cluster], include=["TAGS", "SETTINGS"])["clusters"],
        "victim td": {k: x for k, x in ecs.describe_task_definition(
            taskDefinition=v.td_arn, include=["TAGS"]).items() if k != "ResponseMetadata"},
        "victim settings": ecs.list_account_settings(principalArn=v.principal)["settings"],
        "bystander effective": ecs.list_account_settings(
            principalArn=v.bystander, effectiveSettings=True)["settings"],
    }


def send(endpoint, kw):
    kw = dict(kw)
    body_after = kw.pop("body_after", None)
    if body_after is not None:
        # Sign one body, send another.
        signed_body = kw["body"]
        kw["body"] = signed_body
        kw["tamper"] = None
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        req = AWSRequest(method="POST", url=endpoint + "/", data=json.dumps(signed_body).encode(),
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": TARGET_PREFIX + kw["operation"]})
        helpers._sign(req, Credentials(helpers.ACCESS_KEY, helpers.SECRET_KEY))
        headers = dict(req.headers.items())
        return raw_call(endpoint, None, json.dumps(body_after).encode(), sign=False,
                        target="", extra_headers=headers)
    return raw_call(endpoint, **kw)


def check_answer(r):
    problems = []
    if not 400 <= r.status < 500:
        problems.append(f"status {r.status}")
    if not isinstance(r.json, dict):
        problems.append("body is not a JSON object")
        return problems
    if r.json.get("__type") not in ALLOWED_TYPES:
        problems.append(f"__type {r.json.get('__type')!r}")
    if not isinstance(r.json.get("message"), str) or not r.json["message"].strip():
        problems.append("no message")
    return problems


def test_bad_input_is_rejected_cleanly(server, ecs):
    v = Victims(ecs)
    before = snapshot(ecs, v)
    cases = generate_cases(v)
    helpers.REPORT["bad-input cases"] = len(cases)
    print(f"\n{len(cases)} bad-input cases")
    assert len(cases) >= 200
    failures = []
    for name, kw in cases:
        try:
            r = send(server.endpoint, kw)
        except OSError as e:
            failures.append(f"{name}: connection error {e!r}")
            continue
        problems = check_answer(r)
        if problems:
            failures.append(f"{name}: {', '.join(problems)}: {r!r}")
        assert server.alive(), f"the server died on case {name!r}"
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
    # The server still serves valid calls, and nothing changed.
    assert ecs.describe_clusters(clusters=[v.cluster])["clusters"][0]["status"] == "ACTIVE"
    after = snapshot(ecs, v)
    for key in before:
        assert after[key] == before[key], key


def test_error_responses_carry_protocol_headers(endpoint):
    r = raw_call(endpoint, "DeleteCluster", {"cluster": unique("ghost")})
    assert r.status == 400
    assert r.headers["content-type"] == "application/x-amz-json-1.1"
    assert r.headers.get("x-amzn-requestid")
    assert r.json == {"__type": "ClusterNotFoundException", "message": "Cluster not found."}


@pytest.mark.parametrize(
    "kw,expected",
    [
        (dict(operation="ListClusters", sign=False), "MissingAuthenticationTokenException"),
        (dict(operation="ListClusters", access_key="AKIDNOBODYKNOWS00000"),
         "UnrecognizedClientException"),
        (dict(operation="ListClusters", secret_key="wrong"), "InvalidSignatureException"),
        (dict(operation="ListClusters", skew_seconds=20 * 60), "InvalidSignatureException"),
        (dict(operation="ListClusters", body=b"{"), "SerializationException"),
        (dict(operation="CreateCluster", body={"clusterName": 5}), "SerializationException"),
        (dict(operation=None, target=TARGET_PREFIX + "Nope"), "UnknownOperationException"),
        (dict(operation="ListServicesByNamespace"), "UnsupportedFeatureException"),
    ],
)
def test_specific_protocol_errors(endpoint, kw, expected):
    r = raw_call(endpoint, **kw)
    assert 400 <= r.status < 500
    assert r.json["__type"] == expected, r
