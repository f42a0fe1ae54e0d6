"""Every example of examples-1.json whose operation Flotilla implements, sent as raw signed JSON
after creating what it refers to (names made unique), and checked to answer with the same shape:
every member the example output shows is present with the same JSON type, recursively; for a
list the first element's shape is compared. Flotilla may return more members than an example
shows (real ECS does too: the examples are abridged), so extra members are allowed.

Differences that cannot match are handled per example below, with the reason."""

import copy
import json

import pytest

from helpers import SPEC_DIR, call_ok, raw_call, unique

IMPLEMENTED = {
    "CreateCluster", "DescribeClusters", "ListClusters", "UpdateCluster", "UpdateClusterSettings",
    "PutClusterCapacityProviders", "DeleteCluster", "DescribeCapacityProviders",
    "RegisterTaskDefinition", "DescribeTaskDefinition", "ListTaskDefinitions",
    "ListTaskDefinitionFamilies", "DeregisterTaskDefinition", "DeleteTaskDefinitions",
    "TagResource", "UntagResource", "ListTagsForResource", "PutAttributes", "DeleteAttributes",
    "ListAttributes", "PutAccountSetting", "PutAccountSettingDefault", "DeleteAccountSetting",
    "ListAccountSettings",
}


def load_examples():
    with open(SPEC_DIR / "examples-1.json") as f:
        data = json.load(f)["examples"]
    return [
        pytest.param(op, ex, id=f"{op}-{ex['id']}")
        for op in sorted(data)
        if op in IMPLEMENTED
        for ex in data[op]
    ]


EXAMPLES = load_examples()


def json_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return "null"


def assert_same_shape(expected, actual, path="output"):
    assert json_type(actual) == json_type(expected), (
        f"{path}: expected {json_type(expected)}, got {json_type(actual)}: {actual!r}"
    )
    if isinstance(expected, dict):
        for k, v in expected.items():
            assert k in actual, f"{path}.{k} is missing; got members {sorted(actual)}"
            assert_same_shape(v, actual[k], f"{path}.{k}")
    elif isinstance(expected, list) and expected:
        assert actual, f"{path}: the example has items, the response has none"
        assert_same_shape(expected[0], actual[0], f"{path}[0]")


def container_defs(example_output):
    """The container definitions of an example output, as registrable input."""
    out = []
    for c in example_output["taskDefinition"]["containerDefinitions"]:
        out.append({k: v for k, v in c.items()})
    return out


@pytest.fixture(scope="module")
def ep(start_server):
    """A dedicated server: some examples use the `default` cluster and the caller's own account
    settings, which are shared state."""
    return start_server().endpoint


def cluster(ep, name=None):
    name = name or unique("ex")
    return call_ok(ep, "CreateCluster", {"clusterName": name})["cluster"]


def register(ep, family, containers):
    return call_ok(ep, "RegisterTaskDefinition",
                   {"family": family, "containerDefinitions": containers})["taskDefinition"]


def principal():
    return f"arn:aws:iam::000000000000:user/{unique('principal')}"


def prepare(ep, op, ex):
    """Creates what the example refers to and returns the adapted input, plus a check of the
    content that goes beyond the shape (or None)."""
    inp = copy.deepcopy(ex["input"])
    out = ex.get("output", {})
    if op == "CreateCluster":
        name = unique("my_cluster")
        inp["clusterName"] = name
        return inp, lambda r: r["cluster"]["clusterName"] == name
    if op == "DescribeClusters":
        assert inp == {"clusters": ["default"]}
        call_ok(ep, "CreateCluster", {})
        return inp, lambda r: [c["clusterName"] for c in r["clusters"]] == ["default"]
    if op == "ListClusters":
        arns = {cluster(ep)["clusterArn"] for _ in range(2)}
        return inp, lambda r: arns <= set(r["clusterArns"])
    if op == "DeleteCluster":
        inp["cluster"] = cluster(ep)["clusterName"]
        return inp, lambda r: r["cluster"]["status"] == "INACTIVE"
    if op == "RegisterTaskDefinition":
        family = unique(inp["family"])
        inp["family"] = family
        # The example sends "taskRoleArn": "" and its output has no taskRoleArn: an empty role
        # is no role (and so no task-iam-role requirement).
        return inp, lambda r: r["taskDefinition"]["family"] == family and (
            r["taskDefinition"]["containerDefinitions"][0]["command"] == ["sleep", "360"]
        ) and "taskRoleArn" not in r["taskDefinition"] and not any(
            a["name"] == "com.amazonaws.ecs.capability.task-iam-role"
            for a in r["taskDefinition"].get("requiresAttributes", [])
        )
    if op == "DescribeTaskDefinition":
        family, rev = inp["taskDefinition"].split(":")
        family = unique(family)
        for _ in range(int(rev)):
            register(ep, family, container_defs(out))
        inp["taskDefinition"] = f"{family}:{rev}"
        return inp, lambda r: r["taskDefinition"]["revision"] == int(rev)
    if op == "ListTaskDefinitions":
        family = unique(inp.get("familyPrefix", "sleep360"))
        for _ in range(2):
            register(ep, family, [{"name": "a", "image": "busybox", "memory": 32}])
        if "familyPrefix" in inp:
            inp["familyPrefix"] = family
            return inp, lambda r: [a.rsplit("/", 1)[1] for a in r["taskDefinitionArns"]] == [
                f"{family}:1", f"{family}:2"
            ]
        return inp, None
    if op == "ListTaskDefinitionFamilies":
        stem = unique("hpcc")
        fams = [stem, f"{stem}-c4-8xlarge"]
        for f in fams:
            register(ep, f, [{"name": "a", "image": "busybox", "memory": 32}])
        if "familyPrefix" in inp:
            inp["familyPrefix"] = stem
            return inp, lambda r: r["families"] == fams
        return inp, None
    if op in ("TagResource", "UntagResource", "ListTagsForResource"):
        # The example ARN has placeholders for region and account; use a real cluster's ARN.
        arn = cluster(ep, unique("dev"))["clusterArn"]
        inp["resourceArn"] = arn
        if op != "TagResource":
            call_ok(ep, "TagResource", {"resourceArn": arn,
                                        "tags": [{"key": "team", "value": "dev"}]})
        if op == "ListTagsForResource":
            return inp, lambda r: r["tags"] == [{"key": "team", "value": "dev"}]
        return inp, lambda r: r == {}
    if op in ("PutAccountSetting", "DeleteAccountSetting", "ListAccountSettings"):
        if "principalArn" in inp:
            inp["principalArn"] = principal()
        if op == "DeleteAccountSetting":
            put = {"name": inp["name"], "value": "enabled"}
            if "principalArn" in inp:
                put["principalArn"] = inp["principalArn"]
            call_ok(ep, "PutAccountSetting", put)
        if op == "ListAccountSettings":
            return inp, lambda r: {"serviceLongArnFormat", "taskLongArnFormat",
                                   "containerInstanceLongArnFormat"} <= {
                s["name"] for s in r["settings"]}
        return inp, lambda r: r["setting"]["name"] == inp["name"] and (
            "principalArn" not in inp or r["setting"]["principalArn"] == inp["principalArn"])
    if op == "PutAccountSettingDefault":
        return inp, lambda r: r["setting"]["principalArn"].endswith(":root")
    raise AssertionError(f"no adaptation for the {op} example {ex['id']}")


def test_there_are_examples_to_check():
    ops = {p.values[0] for p in EXAMPLES}
    assert len(EXAMPLES) >= 20
    assert {"CreateCluster", "RegisterTaskDefinition", "DescribeTaskDefinition",
            "ListAccountSettings", "TagResource"} <= ops


@pytest.mark.parametrize("op,ex", EXAMPLES)
def test_example(ep, op, ex):
    inp, check = prepare(ep, op, ex)
    r = raw_call(ep, op, inp)
    assert r.status == 200, (op, inp, r)
    assert_same_shape(ex.get("output", {}), r.json)
    if check is not None:
        assert check(r.json), (op, r.json)
