"""Shared helpers for the Flotilla end-to-end tests: server processes, raw signed HTTP calls,
unique names. Imported by conftest.py and the test modules (pytest puts tests/ on sys.path)."""

import datetime
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
FLOTILLA_BIN = Path(os.environ.get("FLOTILLA_BIN", REPO_ROOT / "target" / "debug" / "flotilla"))
# The ECS model vendored unmodified in the repository (crates/model/spec, a copy of
# ../shared/spec/ecs); tests/test_spec_copy.py checks it still matches the shared one.
SPEC_DIR = Path(os.environ.get("FLOTILLA_SPEC_DIR", REPO_ROOT / "crates" / "model" / "spec"))

ACCESS_KEY = "AKIDFLOTILLATEST0001"
SECRET_KEY = "flotilla-e2e-secret-key"
REGION = "us-east-1"
ACCOUNT = "000000000000"
TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."

# The AWS protocol errors a server may answer besides the ECS model's own error shapes.
PROTOCOL_ERRORS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "SerializationException",
    "UnknownOperationException",
}


class _Report(dict):
    """Figures the suite reports at the end of the run (see conftest.pytest_terminal_summary).
    With pytest-xdist each worker holds its own copy, so every figure is also appended to the
    file $FLOTILLA_TEST_REPORT (set by the controlling process) for the summary to read."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        path = os.environ.get("FLOTILLA_TEST_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps([key, str(value)]) + "\n")


REPORT = _Report()


def unique(prefix="t"):
    """A resource name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# Each pytest-xdist worker (PYTEST_XDIST_WORKER gw0, gw1, ...) takes ports from a range of its
# own, below Linux's ephemeral range (32768-60999), so two workers never pick the same port and an
# outgoing connection's ephemeral port never takes one a test is about to listen on.
_PORT_RANGE = 2000
_PORT_BASE = 12000 + _PORT_RANGE * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
_next_port = [_PORT_BASE + (os.getpid() % _PORT_RANGE)]


def free_port():
    """A port free on 127.0.0.1 now (and on every address: servers may listen on 0.0.0.0),
    from this worker's range."""
    for _ in range(_PORT_RANGE):
        port = _next_port[0]
        _next_port[0] = _PORT_BASE + (port + 1 - _PORT_BASE) % _PORT_RANGE
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORT_BASE}-{_PORT_BASE + _PORT_RANGE - 1}")


def load_model():
    with open(SPEC_DIR / "service-2.json") as f:
        return json.load(f)


def modeled_errors(model=None):
    model = model or load_model()
    return {name for name, s in model["shapes"].items() if s.get("exception")}


class Server:
    """One `flotilla dev` process on a free port."""

    def __init__(self, data_dir, log_path, port=None, region=REGION, account=ACCOUNT, mode="dev", extra_args=(), agent=False,
                 throttle=False):
        """`flotilla dev` (with `--no-agent` unless agent=True: the API tests need no Docker) or
        `flotilla server` (mode="server"). `flotilla server` throttles by default with ECS's rates
        per key (RegisterTaskDefinition and CreateCluster: 20, then 1 a second), which modules
        that create hundreds of resources would hit: it runs with --no-throttle unless
        throttle=True (tests/test_throttling.py)."""
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        env.pop("AWS_SESSION_TOKEN", None)
        if not FLOTILLA_BIN.exists():
            raise RuntimeError(
                f"{FLOTILLA_BIN} does not exist: build it first (cargo build -p flotilla) "
                "or point FLOTILLA_BIN at it"
            )
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(FLOTILLA_BIN), mode,
                "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir),
                "--region", region,
                "--account", account,
                *extra_args,
                *(["--no-agent"] if mode == "dev" and not agent else []),
                *(["--no-throttle"] if mode == "server" and not throttle else []),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self._ready = threading.Event()
        self._out = []
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(30):
            self.kill()
            raise RuntimeError(f"flotilla did not report listening; stdout: {self._out!r}")

    def _drain(self):
        for line in self.proc.stdout:
            text = line.decode(errors="replace")
            self._out.append(text)
            if text.startswith("listening on https://"):
                # Served over TLS (--tls-cert/--tls-key, or dev --tls).
                self.endpoint = f"https://127.0.0.1:{self.port}"
                self._ready.set()
            elif text.startswith("listening on http://"):
                self._ready.set()

    def alive(self):
        return self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)
        self._log.close()

    def remove_warm_containers(self):
        """Removes the warm pause containers of this `dev`'s managed agent (by its instance label).
        `dev` leaves them running when it stops, for its next start to adopt; a test's server
        never starts again, so its fixture removes them."""
        identity = self.data_dir / "managed-agent" / "identity.json"
        if not identity.exists():
            return
        instance = json.loads(identity.read_text())["container_instance_arn"].rsplit("/", 1)[1]
        ids = warm_container_ids(instance)
        if ids:
            subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True)


def warm_container_ids(instance_id):
    """The warm pause containers (adopted or not) of the managed agent of container instance
    `instance_id`: by its instance label, as they carry no cluster of a user's."""
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.flotilla.container-instance={instance_id}",
                           "--filter", "label=com.flotilla.warm-address"],
                          capture_output=True, text=True).stdout.split()


def _sign(req, creds, skew_seconds=0):
    signer = SigV4Auth(creds, "ecs", REGION)
    if not skew_seconds:
        signer.add_auth(req)
        return
    real = botocore.auth.get_current_datetime
    with _SIGN_LOCK:
        botocore.auth.get_current_datetime = lambda: real() + datetime.timedelta(seconds=skew_seconds)
        try:
            signer.add_auth(req)
        finally:
            botocore.auth.get_current_datetime = real


_SIGN_LOCK = threading.Lock()


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


def raw_call(
    endpoint,
    operation=None,
    body=b"{}",
    *,
    target=None,
    sign=True,
    access_key=ACCESS_KEY,
    secret_key=SECRET_KEY,
    token=None,
    skew_seconds=0,
    tamper=None,
    method="POST",
    path="/",
    extra_headers=None,
):
    """Sends one HTTP request, SigV4-signed with botocore unless sign=False.

    `operation` sets X-Amz-Target to the ECS prefix + operation; `target` sets it verbatim (pass
    target="" together with operation=None to send no X-Amz-Target at all). `tamper(headers)` may
    change the signed headers before sending (e.g. break the signature)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is None and operation is not None:
        target = TARGET_PREFIX + operation
    if target:
        headers["X-Amz-Target"] = target
    headers.update(extra_headers or {})
    url = endpoint + path
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    if sign:
        _sign(req, Credentials(access_key, secret_key, token), skew_seconds)
    final = dict(req.headers.items())
    if tamper:
        tamper(final)
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=final)
        resp = conn.getresponse()
        raw = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
    finally:
        conn.close()


def call_ok(endpoint, operation, body):
    """A raw call that must succeed; returns its JSON."""
    r = raw_call(endpoint, operation, body)
    assert r.status == 200, (operation, body, r)
    return r.json


def wait_until(pred, timeout=10.0, interval=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


class SoloEtcd:
    """A one-member etcd on loopback for a test's replicas (`with SoloEtcd(dir) as etcd:`),
    killed on exit; `etcd.store(prefix)` is a `--store` URL under a prefix of its own."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.client_port, self.peer_port = free_port(), free_port()
        self.proc = None
        self.log = None

    def __enter__(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = open(self.directory / "etcd.log", "wb")
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://127.0.0.1:{self.client_port}"
        self.proc = subprocess.Popen([
            "etcd", "--name", "solo", "--data-dir", str(self.directory / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"solo={peer}",
        ], stdout=self.log, stderr=self.log)
        return self

    def store(self, prefix):
        return f"etcd://127.0.0.1:{self.client_port}/{unique(prefix)}"

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()
        return False


def secrets_key_file(directory):
    """A fresh secrets key (32 random bytes, base64) in `directory/secrets.key`, mode 0600: the
    key replicas on etcd must share (a server on etcd refuses to start without one)."""
    import base64
    key = Path(directory) / "secrets.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    key.chmod(0o600)
    return key
