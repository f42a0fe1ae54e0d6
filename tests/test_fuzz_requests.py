"""A model-driven request fuzzer (issue 18, acceptance 5): every operation of every model the
endpoint serves (ECS, Secrets Manager, SSM, CloudWatch Logs, CloudWatch, Cloud Map, Application
Auto Scaling, ELBv2), read from the crates' vendored botocore models, gets requests built from its
input shape and then mutated: wrong JSON types, members left out or added, huge strings and lists,
deeply nested values, broken JSON and bad UTF-8, broken form encodings for awsQuery, bad or
missing signatures, wrong targets. At least 10,000 requests go to ONE real `flotilla dev`, and:
- no answer is a 5xx, and every request gets an answer (no connection dropped without one);
- the server's log has no panic, and /healthz answers 200 afterwards;
- the store is unchanged except by requests that were answered 2xx: a full listing (clusters,
  task definitions, services, secrets, parameters, log groups, namespaces, load balancers,
  target groups) is taken before and after, and every record that appeared, disappeared or
  changed must be named in the body of a request that got a 2xx.

Seeded and reproducible: FLOTILLA_FUZZ_SEED picks the seed (printed; a random one otherwise),
FLOTILLA_FUZZ_REQUESTS the count (10,000), FLOTILLA_FUZZ_SECONDS the time bound (170 s, reached
only on a slow machine: then the count is not met and the test fails, saying so)."""

import base64
import http.client
import json
import os
import random
import string
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import helpers

CRATES = helpers.REPO_ROOT / "crates"
# crate -> signing name; the model says its protocol and target prefix.
MODELS = {
    "model": "ecs",
    "secretsmanager": "secretsmanager",
    "ssm": "ssm",
    "logs": "logs",
    "cloudwatch": "monitoring",
    "servicediscovery": "servicediscovery",
    "autoscaling": "application-autoscaling",
    "elbv2": "elasticloadbalancing",
}
SEED = int(os.environ.get("FLOTILLA_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
REQUESTS = int(os.environ.get("FLOTILLA_FUZZ_REQUESTS", "10000"))
SECONDS = float(os.environ.get("FLOTILLA_FUZZ_SECONDS", "170"))
THREADS = 6
READ_PREFIXES = ("Describe", "List", "Get", "Batch Get", "Search", "Discover", "Validate", "Test")


class Api:
    """One served model: its operations, shapes and how a request for it is framed."""

    def __init__(self, crate, signing_name):
        m = json.loads((CRATES / crate / "spec" / "service-2.json").read_text())
        self.signing_name = signing_name
        self.shapes = m["shapes"]
        self.operations = sorted(m["operations"])
        self.inputs = {op: m["operations"][op].get("input", {}).get("shape") for op in self.operations}
        md = m["metadata"]
        self.query = md["protocol"] == "query"
        self.prefix = md.get("targetPrefix")
        self.version = md["apiVersion"]
        self.content_type = f"application/x-amz-json-{md.get('jsonVersion', '1.1')}"


APIS = [Api(c, s) for c, s in MODELS.items()]
ALL_TARGETS = [f"{a.prefix}.{op}" for a in APIS if a.prefix for op in a.operations]


class Gen:
    """Values for a model's shapes: valid as far as types and limits go, then broken."""

    def __init__(self, rng, api):
        self.rng = rng
        self.api = api

    def word(self, lo=1, hi=12):
        n = self.rng.randint(lo, max(lo, hi))
        return "".join(self.rng.choice(string.ascii_lowercase + string.digits + "-_") for _ in range(n))

    def value(self, shape_name, depth=0):
        s = self.api.shapes[shape_name]
        t = s["type"]
        r = self.rng
        if t == "structure":
            out = {}
            required = set(s.get("required", []))
            for name, m in s.get("members", {}).items():
                if name in required or (depth < 3 and r.random() < 0.3):
                    out[name] = self.value(m["shape"], depth + 1)
            return out
        if t == "list":
            n = 0 if depth >= 4 else r.randint(s.get("min", 0), min(s.get("max", 3), 3))
            return [self.value(s["member"]["shape"], depth + 1) for _ in range(n)]
        if t == "map":
            n = 0 if depth >= 4 else r.randint(0, min(s.get("max", 2), 2))
            return {self.word(): self.value(s["value"]["shape"], depth + 1) for _ in range(n)}
        if t == "string":
            if "enum" in s:
                return r.choice(s["enum"])
            lo, hi = s.get("min", 1), s.get("max", 16)
            return self.word(lo, min(hi, lo + 16))
        if t in ("integer", "long"):
            return r.randint(int(s.get("min", 0)), int(min(s.get("max", 100), 10_000)))
        if t in ("double", "float"):
            return round(r.uniform(s.get("min", 0), min(s.get("max", 100), 100)), 3)
        if t == "boolean":
            return r.random() < 0.5
        if t == "timestamp":
            return int(time.time()) - r.randint(0, 3600)
        if t == "blob":
            return base64.b64encode(self.word().encode()).decode()
        return None

    def wrong(self):
        r = self.rng
        makers = [
            lambda: r.choice([None, True, -1, 2**63, -2**70, 1.5e308, "x", "", [], {}, [None], {"": None}]),
            # Huge values, the largest rarely (each costs the client time to build and send).
            lambda: "x" * r.choice([257, 1_000, 2_049, 4_097] * 3 + [65_537, 70_000, 300_000, 1_500_000]),
            lambda: [r.choice(["x", 1, {}])] * r.choice([51, 1_001] * 5 + [10_000, 100_000]),
            lambda: {f"k{i}": "v" for i in range(r.choice([10, 51, 1_001] * 3 + [20_000]))},
            lambda: deep(r.choice([10, 100, 127, 129, 1_000] * 3 + [20_000]), r.random() < 0.5),
            lambda: r.choice(["\u0000\ud7ff\ue000\ufffd", "' OR 1=1 --", "../../etc/passwd", "%s%n%x",
                              "\u202e"]),
        ]
        # Plain wrong values most often: each huge one costs both ends time to build and read.
        return r.choices(makers, weights=[5, 1, 1, 1, 1, 2])[0]()


def deep(n, as_list):
    v = "x"
    for _ in range(n):
        v = [v] if as_list else {"a": v}
    return v


def paths(v, prefix=()):
    """The (path, value) pairs inside a JSON value, down to 8 levels and 5 items of a list."""
    yield prefix, v
    if len(prefix) >= 8:
        return
    if isinstance(v, dict):
        for k, x in list(v.items())[:5]:
            yield from paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v[:5]):
            yield from paths(x, prefix + (i,))


def set_at(root, path, value):
    if not path:
        return value
    cur = root
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return root


def dumps(v):
    """JSON text of a value that may be nested past Python's recursion limit."""
    try:
        return json.dumps(v)
    except RecursionError:
        return '{"a":' * 20_000 + '"x"' + "}" * 20_000


def form(v, prefix="", depth=0):
    """awsQuery parameters of a JSON input: members as Prefix.Member, lists as .member.N (a value
    nested past 50 levels is cut there)."""
    out = []
    if depth > 50:
        out.append((prefix, "deep"))
    elif isinstance(v, dict):
        for k, x in list(v.items())[:1_100]:
            out += form(x, f"{prefix}.{k}" if prefix else k, depth + 1)
    elif isinstance(v, list):
        if not v:
            out.append((prefix, ""))
        for i, x in enumerate(v[:1_100]):
            out += form(x, f"{prefix}.member.{i + 1}", depth + 1)
    elif isinstance(v, bool):
        out.append((prefix, "true" if v else "false"))
    elif v is None:
        out.append((prefix, ""))
    else:
        out.append((prefix, str(v)))
    return out


class Request:
    def __init__(self, api, op, body, headers, sign=("good", None), mutating=False):
        self.api, self.op, self.body, self.headers = api, op, body, headers
        self.sign = sign
        self.mutating = mutating


def build(rng, n):
    """The n-th request: an operation of a model, its input, one or more mutations."""
    api = rng.choice(APIS)
    op = rng.choice(api.operations)
    g = Gen(rng, api)
    shape = api.inputs[op]
    value = g.value(shape) if shape else {}
    kind = rng.choices(
        ["valid", "wrong", "drop", "extra", "json", "utf8", "sign", "target", "form"],
        weights=[12, 30, 8, 6, 8, 4, 8, 8, 16 if api.query else 0],
    )[0]
    if kind == "wrong":
        for _ in range(rng.randint(1, 3)):
            ps = list(paths(value))
            path, _ = rng.choice(ps)
            value = set_at(value, path, g.wrong())
    elif kind == "drop" and isinstance(value, dict) and value:
        value.pop(rng.choice(list(value)))
    elif kind == "extra" and isinstance(value, dict):
        value[rng.choice(["extra", "__proto__", "Action", "", "x" * 300])] = g.wrong()
    headers = {}
    if api.query:
        params = [("Action", op), ("Version", api.version)] + form(value)
        if kind == "form":
            params = mutate_form(rng, params)
        body = urllib.parse.urlencode(params, safe="").encode() if kind != "form" else encode_form(rng, params)
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    else:
        body = dumps(value).encode()
        headers["Content-Type"] = api.content_type
        headers["X-Amz-Target"] = f"{api.prefix}.{op}"
    if kind == "json":
        body = rng.choice([
            body[: rng.randint(0, max(0, len(body) - 1))], b"", b"null", b"[]", b"1", b'"x"',
            b"{" * 100_000, b'{"a":NaN}', b'{"a":1,"a":2}', body + b"}", b"\xef\xbb\xbf" + body,
            b'{"a":"\\ud800"}', b'{"a":1e999999}', b"{\x00}",
        ])
    elif kind == "utf8":
        cut = rng.randint(0, len(body))
        body = body[:cut] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"]) + body[cut:]
    sign = ("good", None)
    if kind == "sign":
        sign = rng.choice([("none", None), ("bad-sig", None), ("bad-key", None), ("skew", 3600),
                           ("service", rng.choice(["s3", "ecs", "ssm", "sts"])),
                           ("region", rng.choice(["eu-west-3", "cn-north-1", "xx"])),
                           ("junk-auth", None), ("no-date", None)])
    if kind == "target":
        headers["X-Amz-Target"] = rng.choice(ALL_TARGETS + [
            "", ".", "Nope.Nope", "AmazonEC2ContainerServiceV20141113.", "FlotillaAdmin.Nope",
            "secretsmanager." + "x" * 5_000, "\u00e9.\u00e9",
        ])
    mutating = not op.startswith(READ_PREFIXES)
    return Request(api, op, body, headers, sign, mutating)


def mutate_form(rng, params):
    choice = rng.randrange(6)
    if choice == 0:
        params.append((f"X.member.{rng.choice([0, -1, 99999999999, 'a'])}", "v"))
    elif choice == 1:
        params.append((".".join(["a.member.1"] * rng.choice([10, 200, 2_000])), "v"))
    elif choice == 2 and len(params) > 2:
        params.pop(rng.randrange(2, len(params)))
    elif choice == 3:
        params.append((rng.choice([p[0] for p in params]), "x" * rng.choice([10, 100_000])))
    elif choice == 4:
        params = [(k, rng.choice(["", "true", "-1", "1e999", "NaN", v])) for k, v in params]
    else:
        params.append(("Version", "1999-01-01"))
    return params


def encode_form(rng, params):
    body = urllib.parse.urlencode(params, safe="").encode()
    return rng.choice([
        body, body + b"&%zz=1", body + b"&a=%", body + b"&=&&=", body + b"&a=%ff%fe",
        body.replace(b"=", b"", 1), b"Action", b"Action=" + b"A" * 10_000,
    ])


class Client(threading.local):
    def conn(self, port):
        c = getattr(self, "c", None)
        if c is None:
            c = self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        return c

    def reset(self):
        c = getattr(self, "c", None)
        if c is not None:
            c.close()
        self.c = None


def signed_headers(endpoint, req):
    headers = dict(req.headers)
    kind, arg = req.sign
    if kind == "none":
        return headers
    service = arg if kind == "service" else req.api.signing_name
    region = arg if kind == "region" else helpers.REGION
    secret = "wrong-secret" if kind == "bad-key" else helpers.SECRET_KEY
    a = AWSRequest(method="POST", url=endpoint + "/", data=req.body, headers=headers)
    if kind == "skew":
        a.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - arg))
    SigV4Auth(Credentials(helpers.ACCESS_KEY, secret), service, region).add_auth(a)
    out = dict(a.headers.items())
    if kind == "bad-sig":
        out["Authorization"] = out["Authorization"][:-4] + "0000"
    elif kind == "junk-auth":
        out["Authorization"] = "AWS4-HMAC-SHA256 Credential=" + "/" * 50 + ", Signature=zz"
    elif kind == "no-date":
        out.pop("X-Amz-Date", None)
    return out


def send(client, server, req):
    """(status, body) or ("dropped", reason)."""
    headers = signed_headers(server.endpoint, req)
    for attempt in (1, 2):
        conn = client.conn(server.port)
        try:
            conn.request("POST", "/", body=req.body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            if resp.getheader("connection", "").lower() == "close":
                client.reset()
            return resp.status, raw
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            client.reset()
            # A kept-alive connection the server closed between requests is retried once on a
            # fresh one; a fresh connection dropped without an answer is a failure.
            if attempt == 2:
                return "dropped", repr(e)
        except Exception as e:  # noqa: BLE001 - a failure of any kind is reported with its request
            client.reset()
            return "dropped", repr(e)
    return "dropped", "unreachable"


def call(server, target, body, content_type="application/x-amz-json-1.1", service="ecs"):
    r = helpers.raw_call(server.endpoint, None, json.dumps(body).encode(), target="", sign=False,
                         extra_headers=signed_headers(server.endpoint, Request(
                             next(a for a in APIS if a.signing_name == service), "", json.dumps(body).encode(),
                             {"Content-Type": content_type, "X-Amz-Target": target})))
    assert r.status == 200, (target, r)
    return r.json


def pages(server, target, key, service, body=None, token_in="nextToken", token_out="nextToken",
          content_type="application/x-amz-json-1.1"):
    items, body = [], dict(body or {})
    while True:
        out = call(server, target, body, content_type, service)
        items += out.get(key, [])
        if not out.get(token_out):
            return items
        body[token_in] = out[token_out]


def elb(server, action, key):
    body = f"Action={action}&Version=2015-12-01".encode()
    req = Request(next(a for a in APIS if a.query), action, body,
                  {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    r = helpers.raw_call(server.endpoint, None, body, target="", sign=False,
                         extra_headers=signed_headers(server.endpoint, req))
    assert r.status == 200, r
    text = r.raw.decode()
    import re
    return sorted(re.findall(f"<{key}>(.*?)</{key}>", text))


def named_in(body):
    """What a request body names, for matching record names: the raw text, and, when it parses
    (JSON, or an awsQuery form), every string value in it unescaped (a name with a quote, a
    backslash or a control character is escaped in the raw JSON)."""
    text = body.decode(errors="replace")
    found = [text]
    try:
        stack = [json.loads(text)]
    except ValueError:
        stack = [v for _, v in urllib.parse.parse_qsl(text, keep_blank_values=True)]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            found.append(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return "\n".join(found)


def snapshot(server):
    """Every record the fuzzer could change, by a name that a request changing it would carry."""
    E = "AmazonEC2ContainerServiceV20141113."
    snap = {}
    clusters = pages(server, E + "ListClusters", "clusterArns", "ecs")
    for i in range(0, len(clusters), 100):
        for c in call(server, E + "DescribeClusters",
                      {"clusters": clusters[i:i + 100], "include": ["SETTINGS", "CONFIGURATIONS", "TAGS"]})["clusters"]:
            for k in ("runningTasksCount", "pendingTasksCount", "activeServicesCount", "statistics"):
                c.pop(k, None)
            snap["cluster " + c["clusterName"]] = c
        for arn in clusters[i:i + 100]:
            for s in pages(server, E + "ListServices", "serviceArns", "ecs", {"cluster": arn}):
                snap["service " + s.rsplit("/", 1)[-1]] = s
    for status in ("ACTIVE", "INACTIVE"):
        for td in pages(server, E + "ListTaskDefinitions", "taskDefinitionArns", "ecs", {"status": status}):
            snap["task-definition " + td.rsplit("/", 1)[-1].split(":")[0] + " " + td] = status
    for s in pages(server, "secretsmanager.ListSecrets", "SecretList", "secretsmanager",
                   {"IncludePlannedDeletion": True}, "NextToken", "NextToken"):
        snap["secret " + s["Name"]] = {k: s.get(k) for k in ("Name", "Description", "Tags", "DeletedDate")}
    for p in pages(server, "AmazonSSM.DescribeParameters", "Parameters", "ssm", None, "NextToken", "NextToken"):
        snap["parameter " + p["Name"]] = {k: p.get(k) for k in ("Name", "Type", "Version", "Description")}
    for g in pages(server, "Logs_20140328.DescribeLogGroups", "logGroups", "logs"):
        snap["log-group " + g["logGroupName"]] = g.get("retentionInDays")
    for n in pages(server, "Route53AutoNaming_v20170314.ListNamespaces", "Namespaces", "servicediscovery",
                   None, "NextToken", "NextToken"):
        snap["namespace " + n["Name"]] = n["Id"]
    for name in elb(server, "DescribeLoadBalancers", "LoadBalancerName"):
        snap["load-balancer " + name] = True
    for name in elb(server, "DescribeTargetGroups", "TargetGroupName"):
        snap["target-group " + name] = True
    return snap


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    s = helpers.Server(tmp / "data", tmp / "server.log")
    s.log_path = tmp / "server.log"
    yield s
    s.kill()


def seed_records(server):
    """A few records of each kind, so that changes to existing records are looked for too."""
    E = "AmazonEC2ContainerServiceV20141113."
    call(server, E + "CreateCluster", {"clusterName": "fuzz-seed", "tags": [{"key": "k", "value": "v"}]})
    call(server, E + "RegisterTaskDefinition", {"family": "fuzz-seed", "containerDefinitions": [
        {"name": "c", "image": "busybox", "memory": 64}]})
    call(server, "secretsmanager.CreateSecret", {"Name": "fuzz-seed", "SecretString": "s"},
         service="secretsmanager")
    call(server, "AmazonSSM.PutParameter", {"Name": "fuzz-seed", "Value": "v", "Type": "String"}, service="ssm")
    call(server, "Logs_20140328.CreateLogGroup", {"logGroupName": "fuzz-seed"}, service="logs")


def test_ten_thousand_mutated_requests(server):
    print(f"\nfuzz seed {SEED} (FLOTILLA_FUZZ_SEED={SEED} reproduces it), {REQUESTS} requests")
    seed_records(server)
    before = snapshot(server)
    rng = random.Random(SEED)
    seeds = [rng.getrandbits(64) for _ in range(REQUESTS)]
    client = Client()
    deadline = time.monotonic() + SECONDS
    # Kept per request: its status, and the request itself only when it is needed afterwards
    # (a failure to show, or a 2xx change to explain): the bodies add up to hundreds of MB.
    results = [None] * REQUESTS

    def one(i):
        if time.monotonic() > deadline:
            return
        req = build(random.Random(seeds[i]), i)
        status, raw = send(client, server, req)
        keep = status == "dropped" or status >= 500 or (200 <= status < 300 and req.mutating)
        results[i] = (req if keep else None, (status, raw[:300] if keep else b""))

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(REQUESTS)))
    elapsed = time.monotonic() - started
    sent = [r for r in results if r is not None]
    statuses = {}
    for _, (status, _) in sent:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"sent {len(sent)} in {elapsed:.1f}s: {dict(sorted(statuses.items(), key=str))}")

    def show(req, res):
        return (f"{req.api.signing_name} {req.op} sign={req.sign} headers={req.headers} "
                f"body={req.body[:300]!r}... -> {res[0]} {res[1][:300]!r}")

    dropped = [show(q, r) for q, r in sent if r[0] == "dropped"]
    assert not dropped, f"seed {SEED}: {len(dropped)} dropped without an answer:\n" + "\n".join(dropped[:5])
    fives = [show(q, r) for q, r in sent if r[0] >= 500]
    assert not fives, f"seed {SEED}: {len(fives)} answered 5xx:\n" + "\n".join(fives[:10])
    assert len(sent) >= REQUESTS, f"seed {SEED}: only {len(sent)} of {REQUESTS} requests in {SECONDS}s"
    assert server.alive(), "the server died"
    h = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    h.request("GET", "/healthz")
    assert h.getresponse().status == 200
    log = Path(server.log_path).read_text(errors="replace")
    assert "panicked" not in log, f"seed {SEED}: a panic in the server log:\n" + log[log.index("panicked") - 2000:][:4000]

    after = snapshot(server)
    ok = [q for q, r in sent if q is not None and 200 <= r[0] < 300 and q.mutating]
    ok_bodies = [named_in(q.body) for q in ok]
    if any(q.op == "CreateCluster" for q in ok):
        ok_bodies.append("default")  # CreateCluster without a name creates `default`
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    unexplained = [k for k in changed if not any(k.partition(" ")[2] in b for b in ok_bodies)]
    assert not unexplained, (
        f"seed {SEED}: records changed by no 2xx request: "
        + "; ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in unexplained[:10]))
