"""Cluster operations through boto3: CreateCluster, DescribeClusters, ListClusters,
UpdateCluster, UpdateClusterSettings, PutClusterCapacityProviders, DeleteCluster,
DescribeCapacityProviders."""

import re

import pytest
from botocore.exceptions import ClientError

from conftest import make_client
from helpers import ACCOUNT, REGION, unique

CLUSTER_ARN = re.compile(rf"^arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/([A-Za-z0-9_-]+)$")


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def error_message(excinfo):
    return excinfo.value.response["Error"]["Message"]


def test_create_cluster_returns_an_active_cluster_with_long_arn(ecs):
    name = unique("c")
    c = ecs.create_cluster(clusterName=name)["cluster"]
    assert c["clusterName"] == name
    assert c["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}"
    assert CLUSTER_ARN.match(c["clusterArn"])
    assert c["status"] == "ACTIVE"
    for counter in (
        "registeredContainerInstancesCount",
        "runningTasksCount",
        "pendingTasksCount",
        "activeServicesCount",
    ):
        assert c[counter] == 0, counter


def test_create_cluster_is_idempotent(ecs):
    name = unique("c")
    first = ecs.create_cluster(clusterName=name, tags=[{"key": "a", "value": "1"}])["cluster"]
    second = ecs.create_cluster(clusterName=name)["cluster"]
    assert second["clusterArn"] == first["clusterArn"]
    assert second["status"] == "ACTIVE"
    arns = set(ecs.get_paginator("list_clusters").paginate().build_full_result()["clusterArns"])
    assert first["clusterArn"] in arns
    # The second call did not create another cluster or drop the first one's tags.
    tags = ecs.list_tags_for_resource(resourceArn=first["clusterArn"])["tags"]
    assert tags == [{"key": "a", "value": "1"}]


def test_create_cluster_with_tags_settings_and_capacity_providers(ecs):
    name = unique("c")
    c = ecs.create_cluster(
        clusterName=name,
        tags=[{"key": "team", "value": "dev"}, {"key": "empty", "value": ""}],
        settings=[{"name": "containerInsights", "value": "enabled"}],
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[
            {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 3},
        ],
        configuration={"executeCommandConfiguration": {"logging": "DEFAULT"}},
    )["cluster"]
    assert c["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    strategy = {s["capacityProvider"]: s for s in c["defaultCapacityProviderStrategy"]}
    assert strategy["FARGATE"]["weight"] == 1 and strategy["FARGATE"]["base"] == 1
    assert strategy["FARGATE_SPOT"]["weight"] == 3
    d = ecs.describe_clusters(
        clusters=[name], include=["TAGS", "SETTINGS", "CONFIGURATIONS", "STATISTICS"]
    )["clusters"][0]
    assert sorted((t["key"], t["value"]) for t in d["tags"]) == [("empty", ""), ("team", "dev")]
    assert {"name": "containerInsights", "value": "enabled"} in d["settings"]
    assert d["configuration"]["executeCommandConfiguration"]["logging"] == "DEFAULT"
    assert isinstance(d["statistics"], list)
    for kv in d["statistics"]:
        assert set(kv) == {"name", "value"}


@pytest.mark.parametrize(
    "bad_name", ["has space", "slash/inside", "dot.name", "x" * 256, "ünïcode"]
)
def test_create_cluster_rejects_invalid_names(ecs, bad_name):
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName=bad_name)
    assert error_code(e) == "InvalidParameterException"
    assert error_message(e)


def test_create_cluster_rejects_bad_setting_value(ecs):
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(
            clusterName=unique("c"), settings=[{"name": "containerInsights", "value": "maybe"}]
        )
    assert error_code(e) == "InvalidParameterException"


def test_create_cluster_rejects_unknown_capacity_provider(ecs):
    name = unique("c")
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName=name, capacityProviders=["NOPE"])
    assert error_code(e) == "InvalidParameterException"
    # Nothing was created.
    d = ecs.describe_clusters(clusters=[name])
    assert d["clusters"] == [] and d["failures"][0]["reason"] == "MISSING"


def test_create_cluster_rejects_reserved_tag_prefix(ecs):
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName=unique("c"), tags=[{"key": "aws:owner", "value": "x"}])
    assert error_code(e) == "InvalidParameterException"


def test_create_cluster_unknown_service_connect_namespace(ecs):
    # A namespace name that does not exist is created (tests/test_ecs_differences.py); an ARN
    # must name one that does.
    missing = f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/ns-aaaaaaaaaaaaaaaa"
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(
            clusterName=unique("c"), serviceConnectDefaults={"namespace": missing}
        )
    assert error_code(e) == "NamespaceNotFoundException"


def test_describe_clusters_reports_missing_as_failures(ecs):
    name = unique("c")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    ghost = unique("ghost")
    r = ecs.describe_clusters(clusters=[arn, ghost])
    assert [c["clusterArn"] for c in r["clusters"]] == [arn]
    assert r["failures"] == [
        {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{ghost}", "reason": "MISSING"}
    ]


def test_describe_clusters_accepts_name_or_arn(ecs):
    name = unique("c")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    by_name = ecs.describe_clusters(clusters=[name])["clusters"][0]
    by_arn = ecs.describe_clusters(clusters=[arn])["clusters"][0]
    assert by_name == by_arn


def test_describe_clusters_include_controls_optional_members(ecs):
    name = unique("c")
    ecs.create_cluster(clusterName=name, tags=[{"key": "k", "value": "v"}])
    plain = ecs.describe_clusters(clusters=[name])["clusters"][0]
    for member in ("tags", "settings", "statistics", "configuration", "attachments"):
        assert member not in plain, member
    tagged = ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"][0]
    assert tagged["tags"] == [{"key": "k", "value": "v"}]
    assert "settings" not in tagged
    with_settings = ecs.describe_clusters(clusters=[name], include=["SETTINGS"])["clusters"][0]
    assert with_settings["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    assert "tags" not in with_settings


def test_describe_clusters_rejects_bad_include(ecs):
    # botocore does not check enum values on the client, so this reaches the server.
    with pytest.raises(ClientError) as e:
        ecs.describe_clusters(clusters=["x"], include=["EVERYTHING"])
    assert error_code(e) == "InvalidParameterException"


def test_describe_clusters_more_than_100_is_invalid(ecs):
    with pytest.raises(ClientError) as e:
        ecs.describe_clusters(clusters=[unique("c") for _ in range(101)])
    assert error_code(e) == "InvalidParameterException"


def test_default_cluster_is_used_when_cluster_is_omitted(start_server):
    srv = start_server()
    ecs = make_client(srv.endpoint)
    r = ecs.describe_clusters()
    assert r["clusters"] == []
    assert r["failures"] == [
        {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/default", "reason": "MISSING"}
    ]
    with pytest.raises(ClientError) as e:
        ecs.list_attributes(targetType="container-instance")
    assert error_code(e) == "ClusterNotFoundException"
    c = ecs.create_cluster()["cluster"]
    assert c["clusterName"] == "default"
    assert c["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/default"
    d = ecs.describe_clusters()
    assert [x["clusterName"] for x in d["clusters"]] == ["default"]
    assert d["failures"] == []
    assert ecs.list_attributes(targetType="container-instance")["attributes"] == []
    assert ecs.list_clusters()["clusterArns"] == [c["clusterArn"]]


def test_region_and_account_come_from_the_server(start_server):
    srv = start_server(region="eu-west-3", account="123456789012")
    ecs = make_client(srv.endpoint, region="eu-west-3")
    arn = ecs.create_cluster(clusterName="y")["cluster"]["clusterArn"]
    assert arn == "arn:aws:ecs:eu-west-3:123456789012:cluster/y"
    td = ecs.register_task_definition(
        family="fam", containerDefinitions=[{"name": "a", "image": "busybox", "memory": 32}]
    )["taskDefinition"]
    assert td["taskDefinitionArn"] == "arn:aws:ecs:eu-west-3:123456789012:task-definition/fam:1"


def test_list_clusters_paginates_through_250_clusters(ecs):
    prefix = unique("page")
    mine = set()
    for i in range(260):
        mine.add(ecs.create_cluster(clusterName=f"{prefix}-{i:03d}")["cluster"]["clusterArn"])

    pages = list(ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 100}))
    assert len(pages) >= 3
    all_arns = [a for p in pages for a in p["clusterArns"]]
    assert len(all_arns) == len(set(all_arns)), "a cluster appeared twice"
    assert mine <= set(all_arns)
    for p in pages:
        assert len(p["clusterArns"]) <= 100
    assert "nextToken" not in pages[-1]

    # By hand with maxResults.
    seen, token, calls = [], None, 0
    while True:
        kw = {"maxResults": 37}
        if token:
            kw["nextToken"] = token
        r = ecs.list_clusters(**kw)
        calls += 1
        assert len(r["clusterArns"]) <= 37
        seen += r["clusterArns"]
        token = r.get("nextToken")
        if not token:
            break
    assert calls >= 8
    assert sorted(seen) == sorted(all_arns)

    # Default page size is 100.
    first = ecs.list_clusters()
    assert len(first["clusterArns"]) == 100 and first.get("nextToken")

    # boto3's MaxItems gives a resumable token.
    part = ecs.get_paginator("list_clusters").paginate(
        PaginationConfig={"MaxItems": 150, "PageSize": 40}
    ).build_full_result()
    assert len(part["clusterArns"]) == 150
    rest = ecs.get_paginator("list_clusters").paginate(
        PaginationConfig={"StartingToken": part["NextToken"], "PageSize": 40}
    ).build_full_result()
    assert sorted(part["clusterArns"] + rest["clusterArns"]) == sorted(all_arns)


@pytest.mark.parametrize("max_results", [0, 101, -1])
def test_list_clusters_rejects_bad_max_results(ecs, max_results):
    with pytest.raises(ClientError) as e:
        ecs.list_clusters(maxResults=max_results)
    assert error_code(e) == "InvalidParameterException"


def test_list_clusters_rejects_garbage_next_token(ecs):
    with pytest.raises(ClientError) as e:
        ecs.list_clusters(nextToken="!!!not-a-token!!!")
    assert error_code(e) == "InvalidParameterException"


def test_update_cluster_settings_and_configuration(ecs):
    name = unique("c")
    ecs.create_cluster(clusterName=name)
    c = ecs.update_cluster(
        cluster=name,
        settings=[{"name": "containerInsights", "value": "enhanced"}],
        configuration={"executeCommandConfiguration": {"logging": "NONE"}},
    )["cluster"]
    assert c["clusterName"] == name
    assert {"name": "containerInsights", "value": "enhanced"} in c["settings"]
    d = ecs.describe_clusters(clusters=[name], include=["SETTINGS", "CONFIGURATIONS"])
    d = d["clusters"][0]
    assert d["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    assert d["configuration"]["executeCommandConfiguration"]["logging"] == "NONE"


def test_update_cluster_errors(ecs):
    with pytest.raises(ClientError) as e:
        ecs.update_cluster(cluster=unique("ghost"), settings=[])
    assert error_code(e) == "ClusterNotFoundException"
    assert error_message(e) == "Cluster not found."
    name = unique("c")
    ecs.create_cluster(clusterName=name)
    with pytest.raises(ClientError) as e:
        ecs.update_cluster(cluster=name, settings=[{"name": "containerInsights", "value": "on"}])
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.update_cluster(cluster=name, serviceConnectDefaults={
            "namespace": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/ns-aaaaaaaaaaaaaaaa"})
    assert error_code(e) == "NamespaceNotFoundException"


def test_update_cluster_settings(ecs):
    name = unique("c")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    c = ecs.update_cluster_settings(
        cluster=arn, settings=[{"name": "containerInsights", "value": "enabled"}]
    )["cluster"]
    assert c["clusterArn"] == arn
    assert c["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    with pytest.raises(ClientError) as e:
        ecs.update_cluster_settings(
            cluster=name, settings=[{"name": "containerInsights", "value": "bogus"}]
        )
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.update_cluster_settings(
            cluster=unique("ghost"), settings=[{"name": "containerInsights", "value": "enabled"}]
        )
    assert error_code(e) == "ClusterNotFoundException"


def test_put_cluster_capacity_providers(ecs):
    name = unique("c")
    ecs.create_cluster(clusterName=name)
    c = ecs.put_cluster_capacity_providers(
        cluster=name,
        capacityProviders=["FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 2}],
    )["cluster"]
    assert c["capacityProviders"] == ["FARGATE_SPOT"]
    assert c["defaultCapacityProviderStrategy"][0]["capacityProvider"] == "FARGATE_SPOT"
    assert c["defaultCapacityProviderStrategy"][0]["weight"] == 2
    d = ecs.describe_clusters(clusters=[name])["clusters"][0]
    assert d["capacityProviders"] == ["FARGATE_SPOT"]
    # Clearing both.
    c = ecs.put_cluster_capacity_providers(
        cluster=name, capacityProviders=[], defaultCapacityProviderStrategy=[]
    )["cluster"]
    assert c["capacityProviders"] == []


@pytest.mark.parametrize(
    "providers,strategy",
    [
        (["NOPE"], []),
        (["FARGATE", "FARGATE"], []),
        (["FARGATE"], [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]),
        (["FARGATE", "FARGATE_SPOT"], [
            {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 2},
        ]),
        (["FARGATE"], [{"capacityProvider": "FARGATE", "weight": 0}]),
    ],
)
def test_put_cluster_capacity_providers_rejects_bad_input(ecs, providers, strategy):
    name = unique("c")
    ecs.create_cluster(clusterName=name)
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(
            cluster=name, capacityProviders=providers, defaultCapacityProviderStrategy=strategy
        )
    assert error_code(e) == "InvalidParameterException"
    assert ecs.describe_clusters(clusters=[name])["clusters"][0]["capacityProviders"] == []


def test_put_cluster_capacity_providers_unknown_cluster(ecs):
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(
            cluster=unique("ghost"), capacityProviders=[], defaultCapacityProviderStrategy=[]
        )
    assert error_code(e) == "ClusterNotFoundException"


def test_delete_cluster_makes_it_inactive(ecs):
    name = unique("c")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    c = ecs.delete_cluster(cluster=name)["cluster"]
    assert c["clusterArn"] == arn and c["status"] == "INACTIVE"
    # Still describable, as INACTIVE, and still listed, as ECS keeps listing deleted clusters
    # for a while.
    d = ecs.describe_clusters(clusters=[arn])
    assert d["clusters"][0]["status"] == "INACTIVE"
    listed = ecs.get_paginator("list_clusters").paginate().build_full_result()["clusterArns"]
    assert arn in listed
    # Operations on an inactive cluster: not found.
    with pytest.raises(ClientError) as e:
        ecs.update_cluster_settings(
            cluster=name, settings=[{"name": "containerInsights", "value": "enabled"}]
        )
    assert error_code(e) == "ClusterNotFoundException"
    # Deleting again is idempotent.
    assert ecs.delete_cluster(cluster=arn)["cluster"]["status"] == "INACTIVE"
    # The name can be reused.
    again = ecs.create_cluster(clusterName=name)["cluster"]
    assert again["status"] == "ACTIVE" and again["clusterArn"] == arn
    assert arn in ecs.get_paginator("list_clusters").paginate().build_full_result()["clusterArns"]


def test_delete_cluster_unknown(ecs):
    with pytest.raises(ClientError) as e:
        ecs.delete_cluster(cluster=unique("ghost"))
    assert error_code(e) == "ClusterNotFoundException"
    assert error_message(e) == "Cluster not found."
    with pytest.raises(ClientError) as e:
        ecs.delete_cluster(cluster=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{unique('ghost')}")
    assert error_code(e) == "ClusterNotFoundException"


def test_describe_capacity_providers(ecs):
    r = ecs.describe_capacity_providers()
    names = [cp["name"] for cp in r["capacityProviders"]]
    assert names == ["FARGATE", "FARGATE_SPOT"]
    for cp in r["capacityProviders"]:
        assert cp["status"] == "ACTIVE"
        assert cp["capacityProviderArn"].startswith(f"arn:aws:ecs:{REGION}:{ACCOUNT}:")
    assert r["failures"] == []
    r = ecs.describe_capacity_providers(capacityProviders=["FARGATE", "nope"])
    assert [cp["name"] for cp in r["capacityProviders"]] == ["FARGATE"]
    assert r["failures"] == [{"arn": "nope", "reason": "MISSING"}]
    r = ecs.describe_capacity_providers(maxResults=1)
    assert len(r["capacityProviders"]) == 1 and r["nextToken"]
    r2 = ecs.describe_capacity_providers(maxResults=1, nextToken=r["nextToken"])
    assert [cp["name"] for cp in r2["capacityProviders"]] == ["FARGATE_SPOT"]
    assert "nextToken" not in r2
    with pytest.raises(ClientError) as e:
        ecs.describe_capacity_providers(maxResults=11)
    assert error_code(e) == "InvalidParameterException"


def test_arns_of_another_account_or_region_are_not_local_clusters(ecs):
    name = unique("c")
    ecs.create_cluster(clusterName=name, tags=[{"key": "k", "value": "v"}])
    for foreign in (f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{name}",
                    f"arn:aws:ecs:{REGION}:999999999999:cluster/{name}"):
        r = ecs.describe_clusters(clusters=[foreign])
        assert r["clusters"] == []
        assert r["failures"] == [{"arn": foreign, "reason": "MISSING"}]
        with pytest.raises(ClientError) as e:
            ecs.delete_cluster(cluster=foreign)
        assert error_code(e) == "ClusterNotFoundException"
        with pytest.raises(ClientError) as e:
            ecs.update_cluster_settings(
                cluster=foreign, settings=[{"name": "containerInsights", "value": "enabled"}])
        assert error_code(e) == "ClusterNotFoundException"
        with pytest.raises(ClientError) as e:
            ecs.untag_resource(resourceArn=foreign, tagKeys=["k"])
        assert error_code(e) == "ClusterNotFoundException"
    c = ecs.describe_clusters(clusters=[name], include=["TAGS", "SETTINGS"])["clusters"][0]
    assert c["status"] == "ACTIVE" and c["tags"] == [{"key": "k", "value": "v"}]
    assert c["settings"] == [{"name": "containerInsights", "value": "disabled"}]


def test_concurrent_create_cluster_yields_one_cluster(ecs):
    from concurrent.futures import ThreadPoolExecutor

    name = unique("race")
    with ThreadPoolExecutor(8) as pool:
        arns = set(pool.map(lambda _: ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"],
                            range(16)))
    assert arns == {f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}"}
