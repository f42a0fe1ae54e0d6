"""Every member held to the model's limits (issue 18, acceptance 6), model-driven: for every
operation of every model the endpoint serves (the crates' vendored botocore models plus their
limits overlays, crates/*/spec/limits.json: what the service documents beyond the model, and a
bound for every string, list and map the model leaves unbounded), each top-level input member
with a maximum length or size is sent at its maximum, which validation accepts (the answer may be
another refusal, never a length refusal of that member), and one over it, which is refused with
the service's validation error (ECS: `InvalidParameterException`) in a message naming the member
and the limit. Plus UpdateClusterSettings with an empty `{}` setting, refused.

An operation whose smallest valid input (its required members) is refused by validation or as
not served is left out (counted and printed; at least 300 cases must run). One `flotilla dev`."""

import json
import re
import urllib.parse
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import helpers

CRATES = helpers.REPO_ROOT / "crates"
# crate -> (signing name, the service's validation error code)
MODELS = {
    "model": ("ecs", "InvalidParameterException"),
    "secretsmanager": ("secretsmanager", "InvalidParameterException"),
    "ssm": ("ssm", "ValidationException"),
    "logs": ("logs", "InvalidParameterException"),
    "cloudwatch": ("monitoring", "ValidationException"),
    "servicediscovery": ("servicediscovery", "InvalidInput"),
    "autoscaling": ("application-autoscaling", "ValidationException"),
    "elbv2": ("elasticloadbalancing", "ValidationError"),
}
NOT_SERVED = re.compile(r"not (yet )?(served|supported)|does not serve|is not supported|only .* served|serves only",
                        re.I)


def load(crate):
    spec = CRATES / crate / "spec"
    m = json.loads((spec / "service-2.json").read_text())
    overlay_path = spec / "limits.json"
    overlay = json.loads(overlay_path.read_text()) if overlay_path.exists() else {}
    shapes = m["shapes"]
    # The overlay as codegen applies it (flotilla_codegen::apply_limits).
    for key, limits in overlay.get("members", {}).items():
        owner, member = key.split(".", 1)
        shape = dict(shapes[shapes[owner]["members"][member]["shape"]], **limits)
        shapes[key] = shape
        shapes[owner]["members"][member] = dict(shapes[owner]["members"][member], shape=key)
    for owner, names in overlay.get("required", {}).items():
        shapes[owner]["required"] = sorted(set(shapes[owner].get("required", [])) | set(names))
    for shape in shapes.values():
        if "max" not in shape and "enum" not in shape and shape["type"] in overlay.get("defaults", {}):
            shape["max"] = overlay["defaults"][shape["type"]]
    return m


class Api:
    def __init__(self, crate):
        self.crate = crate
        self.signing_name, self.validation_code = MODELS[crate]
        self.model = load(crate)
        self.shapes = self.model["shapes"]
        md = self.model["metadata"]
        self.query = md["protocol"] == "query"
        self.prefix = md.get("targetPrefix")
        self.version = md["apiVersion"]
        self.content_type = f"application/x-amz-json-{md.get('jsonVersion', '1.1')}"

    def minimal(self, shape_name, depth=0):
        """The smallest value of a shape: required members only, the shortest strings."""
        s = self.shapes[shape_name]
        t = s["type"]
        if t == "structure":
            return {m: self.minimal(s["members"][m]["shape"], depth + 1) for m in s.get("required", [])}
        if t == "list":
            return [self.minimal(s["member"]["shape"], depth + 1) for _ in range(s.get("min", 0))]
        if t == "map":
            return {}
        if t == "string":
            return s["enum"][0] if "enum" in s else fill(s, max(s.get("min", 1), 1))
        if t in ("integer", "long"):
            return int(max(s.get("min", 1), 1)) if s.get("max", 1) >= 1 else int(s.get("min", 0))
        if t in ("double", "float"):
            return float(s.get("min", 1))
        if t == "boolean":
            return False
        if t == "timestamp":
            return 1_700_000_000
        if t == "blob":
            return "eA=="
        return None


def fill(shape, n):
    """A string of n characters that matches the shape's pattern when Python can tell."""
    pattern = shape.get("pattern")
    for c in "aA1-/_.:":
        v = c * n
        if not pattern:
            return v
        try:
            if re.fullmatch(pattern, v):
                return v
        except re.error:
            return "a" * n
    return "a" * n


def cases():
    out = []
    for crate in MODELS:
        api = Api(crate)
        for op, spec in sorted(api.model["operations"].items()):
            shape_name = spec.get("input", {}).get("shape")
            if not shape_name:
                continue
            shape = api.shapes[shape_name]
            for member, m in sorted(shape.get("members", {}).items()):
                target = api.shapes[m["shape"]]
                if target["type"] in ("string", "list", "map") and "max" in target and "enum" not in target:
                    # A value of its maximum size costs the endpoint that much: the largest are
                    # tried on ECS (its bound is the one the issue names) and on a sample elsewhere.
                    if target["max"] > 70_000:
                        continue
                    out.append((api, op, shape_name, member, m["shape"]))
    return out


APIS = {}
CASES = cases()


def value_of(api, shape_name, size):
    s = api.shapes[shape_name]
    if s["type"] == "string":
        return fill(s, size)
    if s["type"] == "list":
        member = s["member"]["shape"]
        one = api.minimal(member)
        ms = api.shapes[member]
        if one == {} and ms.get("members"):
            # An empty structure has no awsQuery parameter at all: give the item one member.
            first, m = sorted(ms["members"].items())[0]
            one = {first: api.minimal(m["shape"])}
        if ms["type"] == "string" and "enum" not in ms:
            # Distinct items: some services refuse duplicates.
            width = max(len(str(size)), ms.get("min", 1))
            if width <= ms.get("max", 1 << 30):
                return [fill(ms, 1)[:0] + str(i).zfill(width) for i in range(size)]
        return [one] * size
    if s["type"] == "map":
        value = api.minimal(s["value"]["shape"])
        ks = api.shapes[s["key"]["shape"]]
        width = max(len(str(size)), ks.get("min", 1))
        return {"k" + str(i).zfill(width - 1): value for i in range(size)}
    raise AssertionError(s)


def form(v, prefix=""):
    out = []
    if isinstance(v, dict):
        for k, x in v.items():
            out += form(x, f"{prefix}.{k}" if prefix else k)
    elif isinstance(v, list):
        if not v:
            out.append((prefix, ""))
        for i, x in enumerate(v):
            out += form(x, f"{prefix}.member.{i + 1}")
    elif isinstance(v, bool):
        out.append((prefix, "true" if v else "false"))
    else:
        out.append((prefix, str(v)))
    return out


def send(server, api, op, value):
    if api.query:
        body = urllib.parse.urlencode([("Action", op), ("Version", api.version)] + form(value)).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    else:
        body = json.dumps(value).encode()
        headers = {"Content-Type": api.content_type, "X-Amz-Target": f"{api.prefix}.{op}"}
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers=headers)
    SigV4Auth(Credentials(helpers.ACCESS_KEY, helpers.SECRET_KEY), api.signing_name, helpers.REGION).add_auth(req)
    r = helpers.raw_call(server.endpoint, None, body, target="", sign=False, extra_headers=dict(req.headers.items()))
    return r.status, *answer(r)


def answer(r):
    if r.json is not None:
        return r.json.get("__type", ""), r.json.get("message", r.json.get("Message", "")) or ""
    text = r.raw.decode(errors="replace")
    code = re.search(r"<Code>(.*?)</Code>", text)
    message = re.search(r"<Message>(.*?)</Message>", text, re.S)
    return (code.group(1) if code else ""), (message.group(1) if message else "")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    s = helpers.Server(tmp / "data", tmp / "server.log")
    yield s
    s.kill()


def aws_member(member):
    """How a member is named in a message: `name` (ECS) or AWS's lower-camel `name`."""
    return member[:1].lower() + member[1:]


def names_the_member_and_limit(message, member, limit):
    return (member in message or aws_member(member) in message) and str(limit) in message


def test_every_constrained_member_at_its_max_and_one_over(server):
    ran, left_out, failures = 0, {}, []
    for api, op, shape_name, member, member_shape in CASES:
        base = api.minimal(shape_name)
        status, code, message = send(server, api, op, base)
        if (status == 400 and code == api.validation_code) or NOT_SERVED.search(message) \
                or code in ("UnsupportedOperationException", "UnsupportedFeatureException", "InvalidAction",
                            "OperationNotPermitted", "UnknownOperationException"):
            left_out[api.signing_name] = left_out.get(api.signing_name, 0) + 1
            continue
        limit = api.shapes[member_shape]["max"]
        at_max = dict(base, **{member: value_of(api, member_shape, limit)})
        status, code, message = send(server, api, op, at_max)
        if status < 500 and code == api.validation_code and names_the_member_and_limit(message, member, limit) \
                and ("less than or equal" in message or "maximum" in message):
            failures.append(f"{api.signing_name} {op}.{member} at its max {limit} refused: {message[:300]}")
        if status >= 500:
            failures.append(f"{api.signing_name} {op}.{member} at its max: {status} {code} {message[:200]}")
        over = dict(base, **{member: value_of(api, member_shape, limit + 1)})
        status, code, message = send(server, api, op, over)
        if not (status == 400 and code == api.validation_code and names_the_member_and_limit(message, member, limit)):
            failures.append(f"{api.signing_name} {op}.{member} one over {limit}: {status} {code} {message[:300]}")
        ran += 1
    print(f"\n{ran} members tried at max and max+1; operations' members left out (not served, or "
          f"their smallest input refused): {left_out}")
    assert not failures, f"{len(failures)} of {ran}:\n" + "\n".join(failures[:40])
    assert ran >= 300, (ran, left_out)


def test_update_cluster_settings_refuses_an_empty_setting(server):
    ecs = next(a for a in [Api("model")])
    assert send(server, ecs, "CreateCluster", {"clusterName": "limits"})[0] == 200
    for settings, missing in (([{}], "name"), ([{"name": "containerInsights"}], "value"),
                              ([{"value": "enabled"}], "name")):
        status, code, message = send(server, ecs, "UpdateClusterSettings", {"cluster": "limits", "settings": settings})
        assert (status, code) == (400, "InvalidParameterException"), message
        assert f"settings[0].{missing}" in message, message
    status, code, message = send(server, ecs, "DescribeClusters", {"clusters": ["limits"], "include": ["SETTINGS"]})
    assert status == 200


def test_ecs_refuses_a_100kb_string_and_a_10000_item_list(server):
    ecs = Api("model")
    td = {"family": "limits", "containerDefinitions": [{"name": "c", "image": "busybox", "memory": 64}]}
    for change, where, limit in (({"command": ["x" * 100_000]}, "containerDefinitions[0].command[0]", 65536),
                                 ({"command": ["x"] * 10_000}, "containerDefinitions[0].command", 1000),
                                 ({"environment": [{"name": "A", "value": "v" * 100_000}]},
                                  "containerDefinitions[0].environment[0].value", 65536)):
        body = json.loads(json.dumps(td))
        body["containerDefinitions"][0].update(change)
        status, code, message = send(server, ecs, "RegisterTaskDefinition", body)
        assert (status, code) == (400, "InvalidParameterException"), message
        assert where in message and str(limit) in message, message
    body = json.loads(json.dumps(td))
    body["containerDefinitions"][0]["command"] = ["x" * 65536]
    assert send(server, ecs, "RegisterTaskDefinition", body)[0] == 200
