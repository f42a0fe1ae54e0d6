"""Task definition operations through boto3: RegisterTaskDefinition, DescribeTaskDefinition,
ListTaskDefinitions, ListTaskDefinitionFamilies, DeregisterTaskDefinition,
DeleteTaskDefinitions."""

import datetime
import re
import time

import pytest
from botocore.exceptions import ClientError

from helpers import ACCOUNT, REGION, raw_call, unique

TD_ARN = re.compile(rf"^arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/([A-Za-z0-9_-]+):(\d+)$")


def container(name="app", **kw):
    c = {"name": name, "image": "public.ecr.aws/docker/library/busybox:latest", "memory": 64}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def register(ecs, family, containers=None, **kw):
    return ecs.register_task_definition(
        family=family, containerDefinitions=containers or [container()], **kw
    )


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def td_arn(family, rev):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{rev}"


def test_register_returns_the_full_definition(ecs):
    family = unique("web")
    before = time.time()
    r = register(
        ecs,
        family,
        [
            container(
                "web",
                cpu=128,
                portMappings=[{"containerPort": 80}],
                environment=[{"name": "MODE", "value": "prod"}],
                dockerLabels={"tier": "front"},
            ),
            {"name": "sidecar", "image": "busybox", "essential": False, "memoryReservation": 32},
        ],
        tags=[{"key": "team", "value": "web"}],
    )
    td = r["taskDefinition"]
    assert r["tags"] == [{"key": "team", "value": "web"}]
    assert td["taskDefinitionArn"] == td_arn(family, 1)
    assert TD_ARN.match(td["taskDefinitionArn"])
    assert td["family"] == family and td["revision"] == 1
    assert td["status"] == "ACTIVE"
    assert td["networkMode"] == "bridge"
    assert isinstance(td["registeredAt"], datetime.datetime)
    assert before - 5 <= td["registeredAt"].timestamp() <= time.time() + 5
    assert td["registeredBy"].startswith(f"arn:aws:iam::{ACCOUNT}:")
    assert "EC2" in td["compatibilities"]
    web, sidecar = td["containerDefinitions"]
    assert web["name"] == "web" and web["essential"] is True
    assert web["portMappings"][0]["containerPort"] == 80
    assert web["portMappings"][0]["protocol"] == "tcp"
    assert web["environment"] == [{"name": "MODE", "value": "prod"}]
    assert web["dockerLabels"] == {"tier": "front"}
    assert sidecar["essential"] is False and sidecar["memoryReservation"] == 32
    attrs = {a["name"] for a in td["requiresAttributes"]}
    assert "com.amazonaws.ecs.capability.docker-remote-api.1.21" in attrs  # memoryReservation


def test_timestamps_are_epoch_numbers_on_the_wire(ecs, endpoint):
    family = unique("ts")
    r = raw_call(
        endpoint,
        "RegisterTaskDefinition",
        {"family": family, "containerDefinitions": [container()]},
    )
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/x-amz-json-1.1"
    assert r.headers.get("x-amzn-requestid")
    at = r.json["taskDefinition"]["registeredAt"]
    assert isinstance(at, (int, float)) and not isinstance(at, bool)
    assert abs(at - time.time()) < 300
    ecs.deregister_task_definition(taskDefinition=f"{family}:1")
    d = raw_call(endpoint, "DescribeTaskDefinition", {"taskDefinition": f"{family}:1"}).json
    assert isinstance(d["taskDefinition"]["deregisteredAt"], (int, float))
    assert d["taskDefinition"]["deregisteredAt"] >= at


def test_fargate_definition_normalizes_cpu_and_memory(ecs):
    family = unique("fg")
    td = register(
        ecs,
        family,
        [container(memory=None)],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="1 vCPU",
        memory="2GB",
    )["taskDefinition"]
    assert (td["cpu"], td["memory"]) == ("1024", "2048")
    assert "FARGATE" in td["compatibilities"]
    assert td["requiresCompatibilities"] == ["FARGATE"]
    assert td["networkMode"] == "awsvpc"


@pytest.mark.parametrize(
    "cpu,memory",
    [("256", "4096"), ("512", "512"), ("1024", "1024"), ("300", "1024"), ("4096", "4096"),
     ("8192", "17408")],
)
def test_fargate_rejects_bad_cpu_memory_pairs(ecs, cpu, memory):
    family = unique("fgbad")
    with pytest.raises(ClientError) as e:
        register(
            ecs, family, [container(memory=None)],
            requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=cpu, memory=memory,
        )
    assert code_of(e) == "ClientException"
    assert e.value.response["Error"]["Message"]
    assert family not in ecs.list_task_definition_families(familyPrefix=family)["families"]


def test_fargate_requires_awsvpc_and_sizes(ecs):
    with pytest.raises(ClientError) as e:
        register(ecs, unique("fg"), requiresCompatibilities=["FARGATE"], networkMode="bridge",
                 cpu="256", memory="512")
    assert code_of(e) == "ClientException"
    with pytest.raises(ClientError) as e:
        register(ecs, unique("fg"), requiresCompatibilities=["FARGATE"], networkMode="awsvpc")
    assert code_of(e) == "ClientException"


@pytest.mark.parametrize(
    "containers",
    [
        pytest.param([], id="no-containers"),
        pytest.param([container(f"c{i}") for i in range(11)], id="eleven-containers"),
        pytest.param([container("a"), container("a")], id="duplicate-names"),
        pytest.param([{"name": "a", "memory": 64}], id="no-image"),
        pytest.param([{"name": "a", "image": "busybox"}], id="no-memory"),
        pytest.param([container(essential=False)], id="no-essential"),
        pytest.param([container(memory=64, memoryReservation=128)], id="reservation-above-limit"),
        pytest.param([container(links=["ghost"])], id="link-to-unknown"),
        pytest.param([container(mountPoints=[{"sourceVolume": "v", "containerPath": "/v"}])],
                     id="unknown-volume"),
        pytest.param([container("a", portMappings=[{"containerPort": 80, "hostPort": 8080}]),
                      container("b", portMappings=[{"containerPort": 81, "hostPort": 8080}])],
                     id="host-port-clash"),
    ],
)
def test_register_rejects_invalid_definitions(ecs, containers):
    family = unique("bad")
    with pytest.raises(ClientError) as e:
        register(ecs, family, containers) if containers else ecs.register_task_definition(
            family=family, containerDefinitions=[]
        )
    assert code_of(e) == "ClientException", e.value.response
    assert e.value.response["Error"]["Message"]
    assert ecs.list_task_definition_families(familyPrefix=family)["families"] == []


def test_ten_containers_is_the_limit(ecs):
    family = unique("ten")
    td = register(ecs, family, [container(f"c{i}") for i in range(10)])["taskDefinition"]
    assert len(td["containerDefinitions"]) == 10


@pytest.mark.parametrize("family", ["has space", "a:b", "x" * 256, "dot.s"])
def test_register_rejects_invalid_family(ecs, family):
    with pytest.raises(ClientError) as e:
        register(ecs, family)
    assert code_of(e) in ("ClientException", "InvalidParameterException")


def test_register_rejects_too_many_tags(ecs):
    with pytest.raises(ClientError) as e:
        register(ecs, unique("tags"), tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    assert code_of(e) == "InvalidParameterException"


def test_revisions_increase_and_never_repeat(ecs):
    family = unique("rev")
    revs = [register(ecs, family)["taskDefinition"]["revision"] for _ in range(3)]
    assert revs == [1, 2, 3]
    ecs.deregister_task_definition(taskDefinition=f"{family}:3")
    assert register(ecs, family)["taskDefinition"]["revision"] == 4
    for r in (1, 2, 4):
        ecs.deregister_task_definition(taskDefinition=td_arn(family, r))
    ecs.delete_task_definitions(taskDefinitions=[f"{family}:{r}" for r in (1, 2, 3, 4)])
    td = register(ecs, family)["taskDefinition"]
    assert td["revision"] == 5
    assert td["taskDefinitionArn"] == td_arn(family, 5)


def test_describe_by_family_revision_and_arn(ecs):
    family = unique("desc")
    for _ in range(3):
        register(ecs, family)
    latest = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert latest["revision"] == 3
    assert ecs.describe_task_definition(taskDefinition=f"{family}:2")["taskDefinition"][
        "revision"
    ] == 2
    by_arn = ecs.describe_task_definition(taskDefinition=td_arn(family, 1))["taskDefinition"]
    assert by_arn["revision"] == 1 and by_arn["taskDefinitionArn"] == td_arn(family, 1)
    # Deregistering the latest makes the family resolve to the newest ACTIVE one.
    ecs.deregister_task_definition(taskDefinition=f"{family}:3")
    assert ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]["revision"] == 2
    inactive = ecs.describe_task_definition(taskDefinition=f"{family}:3")["taskDefinition"]
    assert inactive["status"] == "INACTIVE"
    assert isinstance(inactive["deregisteredAt"], datetime.datetime)


@pytest.mark.parametrize("ref", ["{ghost}", "{ghost}:1", "{family}:99",
                                 f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{{ghost}}:3"])
def test_describe_unknown_is_a_client_exception(ecs, ref):
    family = unique("known")
    register(ecs, family)
    with pytest.raises(ClientError) as e:
        ecs.describe_task_definition(taskDefinition=ref.format(ghost=unique("ghost"), family=family))
    assert code_of(e) == "ClientException"
    assert e.value.response["Error"]["Message"] == "Unable to describe task definition."


def test_describe_family_with_only_inactive_revisions_fails(ecs):
    family = unique("gone")
    register(ecs, family)
    ecs.deregister_task_definition(taskDefinition=f"{family}:1")
    with pytest.raises(ClientError) as e:
        ecs.describe_task_definition(taskDefinition=family)
    assert code_of(e) == "ClientException"


def test_describe_include_tags(ecs):
    family = unique("tags")
    register(ecs, family, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
    plain = ecs.describe_task_definition(taskDefinition=family)
    assert "tags" not in plain
    tagged = ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
    assert sorted((t["key"], t["value"]) for t in tagged["tags"]) == [("a", "1"), ("b", "2")]
    untagged_family = unique("notags")
    register(ecs, untagged_family)
    r = ecs.describe_task_definition(taskDefinition=untagged_family, include=["TAGS"])
    assert r["tags"] == []


def test_deregister(ecs):
    family = unique("dereg")
    register(ecs, family)
    td = ecs.deregister_task_definition(taskDefinition=f"{family}:1")["taskDefinition"]
    assert td["status"] == "INACTIVE"
    assert td["taskDefinitionArn"] == td_arn(family, 1)
    assert isinstance(td["deregisteredAt"], datetime.datetime)
    # Again: still INACTIVE, no error.
    again = ecs.deregister_task_definition(taskDefinition=td_arn(family, 1))["taskDefinition"]
    assert again["status"] == "INACTIVE"
    assert td_arn(family, 1) not in ecs.list_task_definitions(familyPrefix=family)[
        "taskDefinitionArns"
    ]
    assert ecs.list_task_definitions(familyPrefix=family, status="INACTIVE")[
        "taskDefinitionArns"
    ] == [td_arn(family, 1)]


@pytest.mark.parametrize("ref", ["{family}", "{family}:7", "{ghost}:1", "not a ref:x"])
def test_deregister_errors(ecs, ref):
    family = unique("dereg")
    register(ecs, family)
    with pytest.raises(ClientError) as e:
        ecs.deregister_task_definition(taskDefinition=ref.format(family=family, ghost=unique("g")))
    assert code_of(e) in ("ClientException", "InvalidParameterException")
    # The registered revision is untouched.
    assert ecs.describe_task_definition(taskDefinition=f"{family}:1")["taskDefinition"][
        "status"
    ] == "ACTIVE"


def test_delete_task_definitions_needs_inactive(ecs):
    family = unique("del")
    register(ecs, family)
    register(ecs, family)
    r = ecs.delete_task_definitions(taskDefinitions=[f"{family}:1"])
    assert r["taskDefinitions"] == []
    assert len(r["failures"]) == 1
    assert r["failures"][0]["arn"] == td_arn(family, 1)
    assert "ACTIVE" in r["failures"][0]["reason"]
    assert ecs.describe_task_definition(taskDefinition=f"{family}:1")["taskDefinition"][
        "status"
    ] == "ACTIVE"

    ecs.deregister_task_definition(taskDefinition=f"{family}:1")
    ghost = unique("ghost")
    r = ecs.delete_task_definitions(taskDefinitions=[td_arn(family, 1), f"{family}:2", f"{ghost}:1"])
    assert [t["taskDefinitionArn"] for t in r["taskDefinitions"]] == [td_arn(family, 1)]
    deleted = r["taskDefinitions"][0]
    assert deleted["status"] == "DELETE_IN_PROGRESS"
    assert isinstance(deleted["deleteRequestedAt"], datetime.datetime)
    assert {f["arn"] for f in r["failures"]} == {td_arn(family, 2), td_arn(ghost, 1)}
    listed = ecs.list_task_definitions(familyPrefix=family, status="DELETE_IN_PROGRESS")
    assert listed["taskDefinitionArns"] == [td_arn(family, 1)]
    assert ecs.list_task_definitions(familyPrefix=family, status="INACTIVE")[
        "taskDefinitionArns"
    ] == []


def test_delete_task_definitions_limits(ecs):
    family = unique("del")
    with pytest.raises(ClientError) as e:
        ecs.delete_task_definitions(taskDefinitions=[f"{family}:{i}" for i in range(1, 12)])
    assert code_of(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.delete_task_definitions(taskDefinitions=[])
    assert code_of(e) == "InvalidParameterException"
    register(ecs, family)
    with pytest.raises(ClientError) as e:
        ecs.delete_task_definitions(taskDefinitions=[family])  # no revision
    assert code_of(e) in ("ClientException", "InvalidParameterException")


def test_list_task_definitions_filters_and_sorts(ecs):
    a, b = unique("lista"), unique("listb")
    for _ in range(3):
        register(ecs, a)
    register(ecs, b)
    ecs.deregister_task_definition(taskDefinition=f"{a}:2")
    assert ecs.list_task_definitions(familyPrefix=a)["taskDefinitionArns"] == [
        td_arn(a, 1), td_arn(a, 3)
    ]
    assert ecs.list_task_definitions(familyPrefix=a, sort="DESC")["taskDefinitionArns"] == [
        td_arn(a, 3), td_arn(a, 1)
    ]
    assert ecs.list_task_definitions(familyPrefix=a, status="INACTIVE")["taskDefinitionArns"] == [
        td_arn(a, 2)
    ]
    # familyPrefix is the full family name, not a prefix.
    assert ecs.list_task_definitions(familyPrefix=a[:-3])["taskDefinitionArns"] == []
    everything = ecs.get_paginator("list_task_definitions").paginate().build_full_result()
    assert {td_arn(a, 1), td_arn(a, 3), td_arn(b, 1)} <= set(everything["taskDefinitionArns"])
    assert td_arn(a, 2) not in everything["taskDefinitionArns"]


def test_list_task_definitions_sorts_revisions_numerically(ecs):
    family = unique("num")
    for _ in range(12):
        register(ecs, family)
    arns = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    assert [int(a.rsplit(":", 1)[1]) for a in arns] == list(range(1, 13))


def test_list_task_definitions_paginates_through_250(ecs):
    family = unique("many")
    mine = [register(ecs, family)["taskDefinition"]["taskDefinitionArn"] for _ in range(260)]
    pages = list(
        ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family)
    )
    assert [len(p["taskDefinitionArns"]) for p in pages] == [100, 100, 60]
    assert [a for p in pages for a in p["taskDefinitionArns"]] == mine

    seen, token = [], None
    while True:
        kw = {"familyPrefix": family, "maxResults": 25, "sort": "DESC"}
        if token:
            kw["nextToken"] = token
        r = ecs.list_task_definitions(**kw)
        assert len(r["taskDefinitionArns"]) <= 25
        seen += r["taskDefinitionArns"]
        token = r.get("nextToken")
        if not token:
            break
    assert seen == list(reversed(mine))

    whole = ecs.get_paginator("list_task_definitions").paginate(
        PaginationConfig={"PageSize": 100}
    ).build_full_result()["taskDefinitionArns"]
    assert len(whole) == len(set(whole))
    assert set(mine) <= set(whole)


def test_list_task_definition_families(ecs):
    stem = unique("fam")
    active, inactive = f"{stem}-active", f"{stem}-inactive"
    register(ecs, active)
    register(ecs, inactive)
    ecs.deregister_task_definition(taskDefinition=f"{inactive}:1")
    assert ecs.list_task_definition_families(familyPrefix=stem)["families"] == [active, inactive]
    assert ecs.list_task_definition_families(familyPrefix=stem, status="ALL")["families"] == [
        active, inactive
    ]
    assert ecs.list_task_definition_families(familyPrefix=stem, status="ACTIVE")["families"] == [
        active
    ]
    assert ecs.list_task_definition_families(familyPrefix=stem, status="INACTIVE")[
        "families"
    ] == [inactive]
    # Registering again makes it ACTIVE again.
    register(ecs, inactive)
    assert ecs.list_task_definition_families(familyPrefix=stem, status="ACTIVE")["families"] == [
        active, inactive
    ]


def test_list_task_definition_families_paginates_through_250(ecs):
    stem = unique("pf")
    mine = sorted(f"{stem}-{i:03d}" for i in range(260))
    for f in mine:
        register(ecs, f)
    got = ecs.get_paginator("list_task_definition_families").paginate(
        familyPrefix=stem, PaginationConfig={"PageSize": 100}
    ).build_full_result()["families"]
    assert sorted(got) == mine and len(got) == len(set(got))

    seen, token, pages = [], None, 0
    while True:
        kw = {"familyPrefix": stem, "maxResults": 60}
        if token:
            kw["nextToken"] = token
        r = ecs.list_task_definition_families(**kw)
        pages += 1
        assert len(r["families"]) <= 60
        seen += r["families"]
        token = r.get("nextToken")
        if not token:
            break
    assert pages == 5
    assert sorted(seen) == mine

    everything = ecs.get_paginator("list_task_definition_families").paginate(
        status="ALL"
    ).build_full_result()["families"]
    assert set(mine) <= set(everything) and len(everything) == len(set(everything))


@pytest.mark.parametrize("op", ["list_task_definitions", "list_task_definition_families"])
@pytest.mark.parametrize("max_results", [0, 101])
def test_list_rejects_bad_max_results(ecs, op, max_results):
    with pytest.raises(ClientError) as e:
        getattr(ecs, op)(maxResults=max_results)
    assert code_of(e) == "InvalidParameterException"


def test_list_rejects_bad_status(ecs):
    with pytest.raises(ClientError) as e:
        ecs.list_task_definitions(status="ALL")  # ALL is only for families
    assert code_of(e) == "InvalidParameterException"


def test_concurrent_registrations_get_distinct_revisions(ecs):
    from concurrent.futures import ThreadPoolExecutor

    family = unique("race")
    with ThreadPoolExecutor(6) as pool:
        revs = list(pool.map(lambda _: register(ecs, family)["taskDefinition"]["revision"],
                             range(60)))
    assert sorted(revs) == list(range(1, 61))
    arns = ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix=family).build_full_result()["taskDefinitionArns"]
    assert arns == [td_arn(family, r) for r in range(1, 61)]


def test_arns_of_another_account_or_region_are_not_local_definitions(ecs):
    family = unique("foreign")
    register(ecs, family)
    ecs.deregister_task_definition(taskDefinition=f"{family}:1")
    register(ecs, family)
    for foreign in (f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/{family}:2",
                    f"arn:aws:ecs:{REGION}:999999999999:task-definition/{family}:2"):
        with pytest.raises(ClientError) as e:
            ecs.describe_task_definition(taskDefinition=foreign)
        assert code_of(e) == "ClientException"
        assert e.value.response["Error"]["Message"] == "Unable to describe task definition."
        with pytest.raises(ClientError) as e:
            ecs.deregister_task_definition(taskDefinition=foreign)
        assert code_of(e) == "ClientException"
        gone = foreign.replace(":2", ":1")
        r = ecs.delete_task_definitions(taskDefinitions=[gone])
        assert r["taskDefinitions"] == [] and r["failures"][0]["arn"] == gone
    assert ecs.describe_task_definition(taskDefinition=f"{family}:2")["taskDefinition"][
        "status"] == "ACTIVE"
    assert ecs.describe_task_definition(taskDefinition=f"{family}:1")["taskDefinition"][
        "status"] == "INACTIVE"
