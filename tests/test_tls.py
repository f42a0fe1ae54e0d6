"""TLS end to end (issue 18, acceptance 3): one `flotilla server --tls-cert --tls-key` with a
certificate signed by a CA this module makes with openssl (an RSA server key, an EC CA), one
`flotilla agent --ca-file` on the real Docker engine, and `flotilla dev --tls` making its own
local CA.

- the aws CLI with `--ca-bundle` (create-cluster, list-clusters), boto3 with `verify=CA`, curl
  with `--cacert` and `flotilla` verbs with `--ca-file` or `AWS_CA_BUNDLE` work;
- the agent registers and holds its session over TLS and runs a task to RUNNING; `flotilla exec`
  runs a command in it (the exec stream and the agent's dial-back are `wss://`);
- a client that does not trust the certificate fails with a certificate error: the aws CLI
  without `--ca-bundle`, boto3 with its default trust, curl without `--cacert`, `flotilla`
  without a CA file, an agent given another CA;
- plain HTTP to the TLS port gets no HTTP answer;
- a non-loopback `--listen` without TLS is refused, naming `--insecure-http`;
- `flotilla dev --tls`: the CA made once (kept across a restart), its keys 0600, the banner
  saying how to trust it, the aws CLI trusting it through AWS_CA_BUNDLE."""

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

import helpers
from fleet import IMAGE, Fleet, instances_ready, wait_for

AWS = str(Path(sys.executable).parent / "aws")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    """A CA (EC P-256): its certificate and key in `d`."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / f"{name}.pem"


def make_server_cert(d):
    """A server certificate for localhost and 127.0.0.1 (RSA 2048, PKCS#8), signed by `ca`."""
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d / "server.pem", d / "server.key"


def clean_env(**extra):
    """The environment of a client process: the test's keys, and no CA bundle inherited."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("FLOTILLA_CA_FILE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    env.update(AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
               AWS_DEFAULT_REGION=helpers.REGION, AWS_PAGER="", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    env.update(extra)
    return env


def aws(endpoint, *args, ca=None, env=None):
    cmd = [AWS, "--endpoint-url", endpoint, "--output", "json"]
    if ca:
        cmd += ["--ca-bundle", str(ca)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60, env=env or clean_env())


def flotilla(*args, env=None, timeout=60):
    return subprocess.run([str(helpers.FLOTILLA_BIN), *args], capture_output=True, text=True,
                          timeout=timeout, env=env or clean_env())


def ecs_client(endpoint, verify):
    return boto3.client("ecs", endpoint_url=endpoint, region_name=helpers.REGION,
                        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
                        verify=verify, config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "ca")
    cert, key = make_server_cert(d)
    other = make_ca(d, "other")
    return {"ca": ca, "cert": cert, "key": key, "other": other, "dir": d}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image, pki):
    f = Fleet(tmp_path_factory.mktemp("tls-fleet"),
              server_args=["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])])
    assert f.endpoint.startswith("https://127.0.0.1:"), f.endpoint
    yield f
    f.close()


@pytest.fixture(scope="module")
def ecs(fleet, pki):
    return ecs_client(fleet.endpoint, str(pki["ca"]))


@pytest.fixture(scope="module")
def cluster(fleet, ecs, pki):
    name = helpers.unique("tls")
    ecs.create_cluster(clusterName=name)
    fleet.add_agent(name, extra_args=["--ca-file", str(pki["ca"])], env={"AWS_CA_BUNDLE": ""})
    instances_ready(ecs, name, 1)
    return name


def test_the_aws_cli_with_the_ca_bundle_works_and_without_it_fails(fleet, pki):
    name = helpers.unique("tlscli")
    created = aws(fleet.endpoint, "ecs", "create-cluster", "--cluster-name", name, ca=pki["ca"])
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["cluster"]["status"] == "ACTIVE"
    listed = aws(fleet.endpoint, "ecs", "list-clusters", ca=pki["ca"])
    assert listed.returncode == 0, listed.stderr
    assert any(a.endswith(f"/{name}") for a in json.loads(listed.stdout)["clusterArns"])
    # AWS_CA_BUNDLE is what the aws CLI reads when --ca-bundle is not given.
    by_env = aws(fleet.endpoint, "ecs", "list-clusters", env=clean_env(AWS_CA_BUNDLE=str(pki["ca"])))
    assert by_env.returncode == 0, by_env.stderr
    untrusted = aws(fleet.endpoint, "ecs", "list-clusters")
    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    wrong = aws(fleet.endpoint, "ecs", "list-clusters", ca=pki["other"])
    assert wrong.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in wrong.stderr, wrong.stderr


def test_boto3_verifies_with_the_ca_and_refuses_with_its_default_trust(fleet, ecs):
    name = helpers.unique("tlsboto")
    assert ecs.create_cluster(clusterName=name)["cluster"]["clusterName"] == name
    assert ecs.describe_clusters(clusters=[name])["clusters"][0]["status"] == "ACTIVE"
    default = ecs_client(fleet.endpoint, None)
    with pytest.raises(botocore.exceptions.SSLError) as err:
        default.list_clusters()
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_curl_needs_the_ca_and_plain_http_gets_no_answer(fleet, pki):
    url = fleet.endpoint
    ok = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(pki["ca"]), f"{url}/healthz"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "ok", (ok.returncode, ok.stdout, ok.stderr)
    metrics = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(pki["ca"]), f"{url}/metrics"],
                             capture_output=True, text=True)
    assert metrics.returncode == 0 and "flotilla_" in metrics.stdout, metrics.stderr
    bad = subprocess.run(["curl", "-sS", "--max-time", "10", f"{url}/healthz"], capture_output=True, text=True)
    assert bad.returncode == 60, (bad.returncode, bad.stderr)  # peer certificate cannot be authenticated
    assert "certificate" in bad.stderr, bad.stderr
    # Plain HTTP to the TLS port: no HTTP answer of any kind, and the connection is closed.
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: "
                  b"AmazonEC2ContainerServiceV20141113.ListClusters\r\nContent-Length: 2\r\n\r\n{}")
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    assert not got.startswith(b"HTTP/"), got[:200]
    assert b"clusterArns" not in got and b"__type" not in got, got[:200]


def test_an_agent_over_tls_runs_a_task_and_flotilla_exec_reaches_it(fleet, ecs, cluster, pki):
    family = helpers.unique("tlsfam")
    ecs.register_task_definition(family=family, containerDefinitions=[
        {"name": "main", "image": IMAGE, "memory": 16, "command": ["sleep", "3600"], "stopTimeout": 1}])
    out = ecs.run_task(cluster=cluster, taskDefinition=family, enableExecuteCommand=True)
    assert not out["failures"], out["failures"]
    arn = out["tasks"][0]["taskArn"]

    def running():
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        agents = [a["lastStatus"] for c in t["containers"] for a in c.get("managedAgents", [])]
        return t if t["lastStatus"] == "RUNNING" and agents == ["RUNNING"] else None
    wait_for(running, timeout=90, what=f"task {arn} RUNNING")
    agent_log = fleet.agents[0].log()
    assert "session established" in agent_log
    # ExecuteCommand's stream is wss:// on the replica that answered; the agent dials back over
    # TLS too.
    session = ecs.execute_command(cluster=cluster, task=arn, command="true", interactive=True)["session"]
    assert session["streamUrl"].startswith(f"wss://127.0.0.1:{fleet.endpoint.rsplit(':', 1)[1]}/"), session
    ran = flotilla("exec", arn, "--cluster", cluster, "--endpoint", fleet.endpoint, "--ca-file", str(pki["ca"]),
                   "--", "sh", "-c", "echo over-tls; exit 4")
    assert ran.returncode == 4, (ran.returncode, ran.stdout, ran.stderr)
    assert ran.stdout == "over-tls\n", ran.stdout


def test_flotilla_verbs_trust_the_ca_file_or_aws_ca_bundle_and_nothing_else(fleet, ecs, cluster, pki):
    ep = ["--endpoint", fleet.endpoint]
    listed = flotilla("clusters", *ep, "--ca-file", str(pki["ca"]), "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert cluster in listed.stdout
    status = flotilla("status", *ep, "--output", "json", env=clean_env(AWS_CA_BUNDLE=str(pki["ca"])))
    assert status.returncode == 0, status.stderr
    replica = json.loads(status.stdout)["replica"]
    assert replica["url"].startswith("https://"), replica
    family = helpers.unique("tlssvc")
    ecs.register_task_definition(family=family, containerDefinitions=[
        {"name": "main", "image": IMAGE, "memory": 16, "command": ["sleep", "3600"], "stopTimeout": 1}])
    svc = helpers.unique("web")
    ca_env = clean_env(FLOTILLA_CA_FILE=str(pki["ca"]))
    created = flotilla("service", "create", svc, "--cluster", cluster, "--task-definition", family,
                       "--desired-count", "1", *ep, env=ca_env)
    assert created.returncode == 0, created.stderr
    services = flotilla("service", "ls", "--cluster", cluster, *ep, "--output", "json", env=ca_env)
    assert services.returncode == 0, services.stderr
    assert svc in services.stdout
    untrusted = flotilla("clusters", *ep)
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr and "--ca-file" in untrusted.stderr, untrusted.stderr
    wrong = flotilla("clusters", *ep, "--ca-file", str(pki["other"]))
    assert wrong.returncode != 0
    assert "UnknownIssuer" in wrong.stderr or "certificate" in wrong.stderr, wrong.stderr


def test_an_agent_that_trusts_another_ca_cannot_register(fleet, ecs, pki):
    name = helpers.unique("tlsrogue")
    ecs.create_cluster(clusterName=name)
    agent = fleet.add_agent(name, extra_args=["--ca-file", str(pki["other"])], env={"AWS_CA_BUNDLE": ""})
    wait_for(lambda: "UnknownIssuer" in agent.log() or "certificate" in agent.log(), timeout=30,
             what="the agent's certificate error")
    assert ecs.list_container_instances(cluster=name)["containerInstanceArns"] == []
    agent.kill()


def test_plain_http_off_loopback_is_refused_naming_the_flag(tmp_path):
    port = helpers.free_port()
    refused = flotilla("server", "--listen", f"0.0.0.0:{port}", "--data-dir", str(tmp_path / "d"),
                       env=clean_env(), timeout=30)
    assert refused.returncode != 0
    assert "--insecure-http" in refused.stderr and "not a loopback address" in refused.stderr, refused.stderr
    assert not (tmp_path / "d" / "secrets.key").exists(), "nothing is written for a server that will not start"
    bad_key = flotilla("server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d"),
                       "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "k.pem"),
                       env=clean_env(), timeout=30)
    assert bad_key.returncode != 0
    assert "reading the TLS certificate" in bad_key.stderr and "missing.pem" in bad_key.stderr, bad_key.stderr


def test_dev_tls_makes_a_local_ca_once_and_says_how_to_trust_it(tmp_path):
    data = tmp_path / "dev"

    def start():
        return helpers.Server(data, tmp_path / "dev.log", extra_args=["--tls"])
    server = start()
    try:
        assert server.endpoint.startswith("https://"), server.endpoint
        tls = data / "tls"
        ca = tls / "ca.pem"
        for key in ("ca-key.pem", "server-key.pem"):
            assert stat.S_IMODE((tls / key).stat().st_mode) == 0o600, key
        banner = "".join(server._out)
        assert f"export AWS_CA_BUNDLE={ca}" in banner, banner
        assert f"--ca-bundle {ca}" in banner, banner
        listed = aws(server.endpoint, "ecs", "list-clusters", env=clean_env(AWS_CA_BUNDLE=str(ca)))
        assert listed.returncode == 0, listed.stderr
        assert aws(server.endpoint, "ecs", "list-clusters").returncode != 0
        # Python's ssl with the CA alone (what boto3 does with verify=CA).
        ctx = ssl.create_default_context(cafile=str(ca))
        port = int(server.endpoint.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")
        first = ca.read_bytes()
    finally:
        server.kill()
    again = start()
    try:
        assert ca.read_bytes() == first, "the CA is made once and kept"
        assert aws(again.endpoint, "ecs", "list-clusters", ca=ca).returncode == 0
    finally:
        again.kill()
