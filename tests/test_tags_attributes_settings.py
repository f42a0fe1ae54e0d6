"""TagResource, UntagResource, ListTagsForResource; PutAttributes, DeleteAttributes,
ListAttributes; PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting,
ListAccountSettings."""

import pytest
from botocore.exceptions import ClientError

from conftest import make_client
from helpers import ACCOUNT, REGION, unique


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def tags_of(ecs, arn):
    return sorted((t["key"], t["value"]) for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"])


@pytest.fixture
def cluster_arn(ecs):
    return ecs.create_cluster(clusterName=unique("tagc"))["cluster"]["clusterArn"]


@pytest.fixture
def td_arn(ecs):
    return ecs.register_task_definition(
        family=unique("tagtd"), containerDefinitions=[{"name": "a", "image": "x", "memory": 32}]
    )["taskDefinition"]["taskDefinitionArn"]


# ---------------------------------------------------------------------------------------- tags


@pytest.mark.parametrize("resource", ["cluster_arn", "td_arn"])
def test_tag_untag_list(ecs, request, resource):
    arn = request.getfixturevalue(resource)
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == []
    r = ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "dev"},
                                                {"key": "env", "value": "test"}])
    assert set(r) == {"ResponseMetadata"}  # the output shape is empty
    assert tags_of(ecs, arn) == [("env", "test"), ("team", "dev")]
    # Same key again overwrites the value.
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "ops"}])
    assert tags_of(ecs, arn) == [("env", "test"), ("team", "ops")]
    r = ecs.untag_resource(resourceArn=arn, tagKeys=["team", "not-there"])
    assert set(r) == {"ResponseMetadata"}
    assert tags_of(ecs, arn) == [("env", "test")]


def test_tags_show_up_in_describe(ecs, cluster_arn, td_arn):
    ecs.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k", "value": "v"}])
    c = ecs.describe_clusters(clusters=[cluster_arn], include=["TAGS"])["clusters"][0]
    assert c["tags"] == [{"key": "k", "value": "v"}]
    ecs.tag_resource(resourceArn=td_arn, tags=[{"key": "k2", "value": "v2"}])
    d = ecs.describe_task_definition(taskDefinition=td_arn, include=["TAGS"])
    assert d["tags"] == [{"key": "k2", "value": "v2"}]


def test_fifty_tags_is_the_limit(ecs, cluster_arn):
    ecs.tag_resource(resourceArn=cluster_arn,
                     tags=[{"key": f"k{i}", "value": "v"} for i in range(30)])
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=cluster_arn,
                         tags=[{"key": f"n{i}", "value": "v"} for i in range(21)])
    assert code_of(e) == "LimitExceededException"
    assert len(tags_of(ecs, cluster_arn)) == 30
    # Overwriting existing keys does not count twice; exactly 50 is fine.
    ecs.tag_resource(resourceArn=cluster_arn,
                     tags=[{"key": f"k{i}", "value": "w"} for i in range(30)]
                     + [{"key": f"n{i}", "value": "v"} for i in range(20)])
    assert len(tags_of(ecs, cluster_arn)) == 50
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=cluster_arn, tags=[{"key": "one-more", "value": "v"}])
    assert code_of(e) == "LimitExceededException"


def test_more_than_fifty_tags_in_one_request(ecs, cluster_arn):
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=cluster_arn,
                         tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    assert code_of(e) in ("InvalidParameterException", "LimitExceededException")
    assert tags_of(ecs, cluster_arn) == []


@pytest.mark.parametrize(
    "tag",
    [
        {"key": "aws:reserved", "value": "v"},
        {"key": "AWS:Reserved", "value": "v"},
        {"key": "k" * 129, "value": "v"},
        {"key": "k", "value": "v" * 257},
        {"key": "", "value": "v"},
        {"key": "bad\u0001key", "value": "v"},
    ],
)
def test_invalid_tags(ecs, ecs_unchecked, cluster_arn, tag):
    with pytest.raises(ClientError) as e:
        ecs_unchecked.tag_resource(resourceArn=cluster_arn, tags=[tag])
    assert code_of(e) == "InvalidParameterException"
    assert tags_of(ecs, cluster_arn) == []


def test_longest_valid_tag(ecs, cluster_arn):
    ecs.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k" * 128, "value": "v" * 256}])
    assert tags_of(ecs, cluster_arn) == [("k" * 128, "v" * 256)]


def test_tags_on_unknown_cluster(ecs):
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{unique('ghost')}"
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "b"}])
    assert code_of(e) == "ClusterNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert code_of(e) == "ClusterNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.list_tags_for_resource(resourceArn=arn)
    assert code_of(e) == "ClusterNotFoundException"


def test_tags_on_deleted_cluster(ecs, cluster_arn):
    ecs.delete_cluster(cluster=cluster_arn)
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=cluster_arn, tags=[{"key": "a", "value": "b"}])
    # ECS's answer for an INACTIVE cluster (a cluster that never existed is not found).
    assert code_of(e) == "InvalidParameterException"


def test_tags_on_unknown_task_definition(ecs):
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{unique('ghost')}:1"
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "b"}])
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.list_tags_for_resource(resourceArn=arn)
    assert code_of(e) in ("InvalidParameterException", "ClientException",
                          "ResourceNotFoundException")


@pytest.mark.parametrize(
    "arn",
    [
        "not-an-arn",
        "arn:aws:ecs",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/short-format-service",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/0123456789abcdef0123456789abcdef",
    ],
)
def test_tags_on_invalid_arns(ecs, arn):
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "b"}])
    assert code_of(e) == "InvalidParameterException"


# ---------------------------------------------------------------------------------- attributes


def test_put_attributes_without_container_instances(ecs):
    name = ecs.create_cluster(clusterName=unique("attr"))["cluster"]["clusterName"]
    with pytest.raises(ClientError) as e:
        ecs.put_attributes(
            cluster=name,
            attributes=[{"name": "stack", "value": "prod", "targetType": "container-instance",
                         "targetId": "0123456789abcdef0123456789abcdef"}],
        )
    assert code_of(e) == "TargetNotFoundException"
    assert e.value.response["Error"]["Message"]
    assert ecs.list_attributes(cluster=name, targetType="container-instance")["attributes"] == []


def test_put_attributes_limit(ecs):
    name = ecs.create_cluster(clusterName=unique("attr"))["cluster"]["clusterName"]
    with pytest.raises(ClientError) as e:
        ecs.put_attributes(
            cluster=name,
            attributes=[{"name": f"a{i}", "value": "v", "targetId": "abc"} for i in range(11)],
        )
    assert code_of(e) == "AttributeLimitExceededException"


@pytest.mark.parametrize(
    "attribute",
    [
        {"name": "no-target", "value": "v"},
        {"name": "bad name!", "value": "v", "targetId": "abc"},
        {"name": "n" * 129, "value": "v", "targetId": "abc"},
        {"name": "n", "value": " leading", "targetId": "abc"},
        {"name": "n", "value": "v" * 129, "targetId": "abc"},
    ],
)
def test_put_attributes_invalid(ecs, attribute):
    name = ecs.create_cluster(clusterName=unique("attr"))["cluster"]["clusterName"]
    with pytest.raises(ClientError) as e:
        ecs.put_attributes(cluster=name, attributes=[attribute])
    assert code_of(e) == "InvalidParameterException"


def test_attributes_on_unknown_cluster(ecs):
    ghost = unique("ghost")
    attr = [{"name": "a", "value": "b", "targetId": "abc"}]
    for call in (
        lambda: ecs.put_attributes(cluster=ghost, attributes=attr),
        lambda: ecs.delete_attributes(cluster=ghost, attributes=attr),
        lambda: ecs.list_attributes(cluster=ghost, targetType="container-instance"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "ClusterNotFoundException"


def test_delete_attributes_target_not_found(ecs):
    name = ecs.create_cluster(clusterName=unique("attr"))["cluster"]["clusterName"]
    with pytest.raises(ClientError) as e:
        ecs.delete_attributes(
            cluster=name, attributes=[{"name": "stack", "targetId": "abc"}]
        )
    assert code_of(e) == "TargetNotFoundException"


def test_list_attributes(ecs):
    name = ecs.create_cluster(clusterName=unique("attr"))["cluster"]["clusterName"]
    r = ecs.list_attributes(cluster=name, targetType="container-instance",
                            attributeName="stack", attributeValue="prod", maxResults=5)
    assert r["attributes"] == [] and "nextToken" not in r
    with pytest.raises(ClientError) as e:
        ecs.list_attributes(cluster=name, targetType="container-instance", attributeValue="x")
    assert code_of(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.list_attributes(cluster=name, targetType="task")
    assert code_of(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.list_attributes(cluster=name, targetType="container-instance", maxResults=0)
    assert code_of(e) == "InvalidParameterException"


# ---------------------------------------------------------------------------- account settings


def principal():
    return f"arn:aws:iam::{ACCOUNT}:user/{unique('p')}"


def test_put_account_setting_for_the_caller(start_server):
    # A dedicated server: the caller's own settings are account-wide state.
    ecs = make_client(start_server().endpoint)
    s = ecs.put_account_setting(name="serviceLongArnFormat", value="disabled")["setting"]
    assert s["name"] == "serviceLongArnFormat" and s["value"] == "disabled"
    assert s["principalArn"].startswith(f"arn:aws:iam::{ACCOUNT}:")
    listed = ecs.list_account_settings(name="serviceLongArnFormat")["settings"]
    assert [(x["name"], x["value"]) for x in listed] == [("serviceLongArnFormat", "disabled")]
    d = ecs.delete_account_setting(name="serviceLongArnFormat")["setting"]
    assert d["name"] == "serviceLongArnFormat"
    assert ecs.list_account_settings(name="serviceLongArnFormat")["settings"] == []
    eff = ecs.list_account_settings(name="serviceLongArnFormat", effectiveSettings=True)
    assert [(x["name"], x["value"]) for x in eff["settings"]] == [("serviceLongArnFormat", "enabled")]


def test_put_account_setting_for_a_principal(ecs):
    p = principal()
    s = ecs.put_account_setting(name="containerInstanceLongArnFormat", value="enabled",
                                principalArn=p)["setting"]
    assert s == {"name": "containerInstanceLongArnFormat", "value": "enabled",
                 "principalArn": p, "type": s.get("type", "user")}
    ecs.put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=p)
    mine = ecs.list_account_settings(principalArn=p)["settings"]
    assert sorted((x["name"], x["value"]) for x in mine) == [
        ("awsvpcTrunking", "enabled"), ("containerInstanceLongArnFormat", "enabled")
    ]
    assert all(x["principalArn"] == p for x in mine)
    only = ecs.list_account_settings(principalArn=p, name="awsvpcTrunking", value="enabled")
    assert [x["name"] for x in only["settings"]] == ["awsvpcTrunking"]
    none = ecs.list_account_settings(principalArn=p, name="awsvpcTrunking", value="disabled")
    assert none["settings"] == []
    # Another principal is unaffected.
    assert ecs.list_account_settings(principalArn=principal())["settings"] == []
    d = ecs.delete_account_setting(name="awsvpcTrunking", principalArn=p)["setting"]
    assert (d["name"], d["principalArn"]) == ("awsvpcTrunking", p)
    assert [x["name"] for x in ecs.list_account_settings(principalArn=p)["settings"]] == [
        "containerInstanceLongArnFormat"
    ]


def test_effective_settings_and_pagination(ecs):
    p = principal()
    ecs.put_account_setting(name="taskLongArnFormat", value="disabled", principalArn=p)
    pages = list(ecs.get_paginator("list_account_settings").paginate(
        principalArn=p, effectiveSettings=True, PaginationConfig={"PageSize": 3}))
    assert len(pages) >= 2
    settings = [s for pg in pages for s in pg["settings"]]
    by_name = {s["name"]: s["value"] for s in settings}
    assert len(by_name) == len(settings)
    assert by_name["taskLongArnFormat"] == "disabled"
    assert {"serviceLongArnFormat", "containerInstanceLongArnFormat", "awsvpcTrunking",
            "containerInsights"} <= set(by_name)
    with pytest.raises(ClientError) as e:
        ecs.list_account_settings(principalArn=p, maxResults=11)
    assert code_of(e) == "InvalidParameterException"


def test_put_account_setting_default(start_server):
    ecs = make_client(start_server().endpoint)
    s = ecs.put_account_setting_default(name="containerInsights", value="enhanced")["setting"]
    assert (s["name"], s["value"]) == ("containerInsights", "enhanced")
    assert s["principalArn"] == f"arn:aws:iam::{ACCOUNT}:root"
    p = principal()
    eff = ecs.list_account_settings(principalArn=p, name="containerInsights",
                                    effectiveSettings=True)["settings"]
    assert [(x["name"], x["value"]) for x in eff] == [("containerInsights", "enhanced")]
    # A principal's own setting wins over the default.
    ecs.put_account_setting(name="containerInsights", value="disabled", principalArn=p)
    eff = ecs.list_account_settings(principalArn=p, name="containerInsights",
                                    effectiveSettings=True)["settings"]
    assert [x["value"] for x in eff] == ["disabled"]


@pytest.mark.parametrize(
    "name,value",
    [("serviceLongArnFormat", "maybe"), ("containerInsights", "on"),
     ("fargateTaskRetirementWaitPeriod", "3"), ("notASetting", "enabled")],
)
def test_put_account_setting_rejects_bad_values(ecs, name, value):
    p = principal()
    for call in (
        lambda: ecs.put_account_setting(name=name, value=value, principalArn=p),
        lambda: ecs.put_account_setting_default(name=name, value=value),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "InvalidParameterException"
    assert ecs.list_account_settings(principalArn=p)["settings"] == []


def test_list_account_settings_value_needs_name(ecs):
    with pytest.raises(ClientError) as e:
        ecs.list_account_settings(value="enabled")
    assert code_of(e) == "InvalidParameterException"
