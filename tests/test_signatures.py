"""Signatures checked whole (issue 18): a request signed with a valid key is still refused when
its credential scope names a service this endpoint does not serve for it (`s3`, or another
service than its target's), a region the installation does not serve, or a date that is not the
day of its X-Amz-Date, with AWS's `InvalidSignatureException` (awsQuery: `SignatureDoesNotMatch`)
and AWS's wording, for ECS and for every service beside it, with and without X-Amz-Target.

One `flotilla server` (single region, us-east-1: `flotilla dev` would open any region) and
raw HTTP signed with botocore's SigV4Auth for the chosen service, region and date."""

import re

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import helpers

JSON11 = "application/x-amz-json-1.1"
JSON10 = "application/x-amz-json-1.0"
FORM = "application/x-www-form-urlencoded; charset=utf-8"

# signing name -> (X-Amz-Target or None for awsQuery, content type, body of a harmless read)
SERVICES = {
    "ecs": ("AmazonEC2ContainerServiceV20141113.ListClusters", JSON11, b"{}"),
    "secretsmanager": ("secretsmanager.ListSecrets", JSON11, b"{}"),
    "ssm": ("AmazonSSM.DescribeParameters", JSON11, b"{}"),
    "logs": ("Logs_20140328.DescribeLogGroups", JSON11, b"{}"),
    "monitoring": ("GraniteServiceVersion20100801.ListMetrics", JSON10, b"{}"),
    "servicediscovery": ("Route53AutoNaming_v20170314.ListNamespaces", JSON11, b"{}"),
    "application-autoscaling": ("AnyScaleFrontendService.DescribeScalableTargets", JSON11,
                                b'{"ServiceNamespace": "ecs"}'),
    "elasticloadbalancing": (None, FORM, b"Action=DescribeLoadBalancers&Version=2015-12-01"),
}

WRONG_SERVICE = "Credential should be scoped to correct service: '{}'. "
WRONG_REGION = "Credential should be scoped to a valid region, not '{}'. "


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("signatures")
    s = helpers.Server(tmp / "data", tmp / "server.log", mode="server")
    yield s
    s.kill()


def send(server, *, service, region=helpers.REGION, target=None, content_type=JSON11, body=b"{}",
         tamper=None):
    headers = {"Content-Type": content_type}
    if target:
        headers["X-Amz-Target"] = target
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers=headers)
    SigV4Auth(Credentials(helpers.ACCESS_KEY, helpers.SECRET_KEY), service, region).add_auth(req)
    final = dict(req.headers.items())
    if tamper:
        tamper(final)
    return helpers.raw_call(server.endpoint, None, body, target="", sign=False, extra_headers=final)


def refusal(r):
    """(status, code, message) of an answer, JSON or awsQuery XML."""
    if r.json is not None:
        message = r.json.get("message", r.json.get("Message"))
        return r.status, r.json.get("__type"), message
    text = r.raw.decode(errors="replace")
    code = re.search(r"<Code>(.*?)</Code>", text)
    message = re.search(r"<Message>(.*?)</Message>", text, re.S)
    return (r.status, code and code.group(1),
            message and message.group(1).replace("&apos;", "'"))


def expected_code(service):
    return "SignatureDoesNotMatch" if service == "elasticloadbalancing" else "InvalidSignatureException"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_correct_scope_is_served(server, service):
    target, ctype, body = SERVICES[service]
    r = send(server, service=service, target=target, content_type=ctype, body=body)
    assert r.status == 200, r


@pytest.mark.parametrize("service,scope", [(service, scope) for service in sorted(SERVICES)
                                           for scope in ("s3", "sts", "ecs", "ssm") if scope != service])
def test_a_scope_for_another_service_is_refused(server, service, scope):
    target, ctype, body = SERVICES[service]
    r = send(server, service=scope, target=target, content_type=ctype, body=body)
    if target is None and scope == "ssm":
        # No target: the request goes to the service its scope names (SSM), which has no such
        # operation: never the ELB service answering a credential of SSM's.
        assert r.status == 400, r
        return
    if target is None:
        # awsQuery has no target: a request signed for a service not served is ECS's refusal
        # (an ECS-scoped one is ECS's, whose scope it is).
        status, code, message = refusal(r)
        if scope == "ecs":
            assert (status, code) == (400, "UnknownOperationException"), r
        else:
            assert (status, code, message) == (403, "InvalidSignatureException",
                                               WRONG_SERVICE.format("ecs")), r
        return
    assert refusal(r) == (403, expected_code(service), WRONG_SERVICE.format(service)), r


@pytest.mark.parametrize("scope", ["s3", "sts", "iam", "ec2"])
@pytest.mark.parametrize("target", [None, "Nope.Nothing", "AmazonEC2ContainerServiceV20141113.ListClusters"])
def test_a_service_not_served_is_refused_with_or_without_a_target(server, scope, target):
    r = send(server, service=scope, target=target)
    assert refusal(r) == (403, "InvalidSignatureException", WRONG_SERVICE.format("ecs")), r


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("region", ["eu-west-3", "us-west-2"])
def test_a_region_not_served_is_refused(server, service, region):
    target, ctype, body = SERVICES[service]
    r = send(server, service=service, region=region, target=target, content_type=ctype, body=body)
    assert refusal(r) == (403, expected_code(service), WRONG_REGION.format(region)), r


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_scope_date_not_the_requests_day_is_refused(server, service):
    target, ctype, body = SERVICES[service]

    def yesterday(h):
        amz_date = h["X-Amz-Date"][:8]
        other = "20000101" if amz_date != "20000101" else "20000102"
        h["Authorization"] = h["Authorization"].replace(f"/{amz_date}/", f"/{other}/", 1)

    r = send(server, service=service, target=target, content_type=ctype, body=body, tamper=yesterday)
    status, code, message = refusal(r)
    assert (status, code) == (403, expected_code(service)), r
    assert message.startswith("Date in Credential scope does not match YYYYMMDD from X-Amz-Date"), r


def test_an_agent_session_scoped_elsewhere_is_refused(server):
    # The WebSocket upgrade goes through the same check.
    req = AWSRequest(method="GET", url=server.endpoint + "/agent/v1/session",
                     headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    SigV4Auth(Credentials(helpers.ACCESS_KEY, helpers.SECRET_KEY), "ecs", "ap-south-1").add_auth(req)
    r = helpers.raw_call(server.endpoint, None, b"", target="", sign=False, method="GET",
                         path="/agent/v1/session", extra_headers=dict(req.headers.items()))
    assert r.status == 403, r
