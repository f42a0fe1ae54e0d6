#!/usr/bin/env python3
"""Benchmark: the ECS API's requests/s and latency with a load generator lighter than the server.

`wrk` (Debian's) replays one SigV4-signed request (signed once by botocore; the signature stays
valid for the 15 minutes the server allows) over 16 connections against a `flotilla server` on
the embedded store, for DescribeTaskDefinition and RegisterTaskDefinition. It measures the
binary under test and a baseline binary in the same run, one after the other on the same
machine, and prints each figure beside the baseline's and their ratio.

The baseline is another build of Flotilla: `--baseline BIN`, or `--baseline-rev REV`, which
checks that git revision out into a worktree under /tmp and builds it in release there (its
own target directory, kept for the next run).

    cargo build --release -p flotilla
    .venv/bin/python benches/api_wrk.py --baseline-rev b4440be [--seconds 10] [--connections 16]

The binary under test is FLOTILLA_BIN, default target/release/flotilla.

A binary that throttles by default (`flotilla server` since throttling came) is started with
both operations' limits at the most a limit may be (`--throttle-limit`), so the limiter's cost
per request is measured while nothing is refused; an older one has no limiter to configure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

AKID, SECRET, REGION = "AKIDAPIBENCH", "api-bench-secret", "us-east-1"
TARGET = "AmazonEC2ContainerServiceV20141113."


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed(endpoint, operation, body):
    """The headers of one signed request (botocore's SigV4, as the SDKs sign)."""
    data = json.dumps(body).encode()
    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + operation},
    )
    SigV4Auth(Credentials(AKID, SECRET), "ecs", REGION).add_auth(req)
    return dict(req.headers.items()), data


def call(endpoint, operation, body):
    headers, data = signed(endpoint, operation, body)
    req = urllib.request.Request(endpoint + "/", data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class Server:
    def __init__(self, binary, tmp):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET, RUST_LOG="warn")
        self.log = open(Path(tmp) / "server.log", "ab")
        limits = throttle_limits(binary)
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(binary), "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(tmp), "--region", REGION]
            + limits,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=env,
        )
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + "/healthz", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() - started > 30:
                    raise RuntimeError(f"{binary} did not start (log in {tmp}/server.log)")
                time.sleep(0.005)
        self.startup_ms = (time.monotonic() - started) * 1000

    def rss_mib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# The most a throttling limit may be (flotilla_throttle::MAX_LIMIT), burst and rate.
MAX_LIMIT = 1_000_000


def throttle_limits(binary):
    """The flags that keep a throttling server from refusing the benchmark's requests (none for
    a binary without throttling)."""
    help_text = subprocess.run([str(binary), "server", "--help"], capture_output=True, text=True).stdout
    if "--throttle-limit" not in help_text:
        return []
    flags = []
    for op in ("DescribeTaskDefinition", "RegisterTaskDefinition"):
        flags += ["--throttle-limit", f"ecs:{op}={MAX_LIMIT}/{MAX_LIMIT}"]
    return flags


LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers = {{ {headers} }}
"""


def lua_string(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def run_wrk(endpoint, operation, body, seconds, connections, tmp):
    headers, data = signed(endpoint, operation, body)
    script = Path(tmp) / f"{operation}.lua"
    script.write_text(
        LUA.format(
            body=lua_string(data.decode()),
            headers=", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()),
        )
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), endpoint + "/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = latency(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = latency(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError(f"{operation}: wrk saw failures:\n{out}")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


def latency(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def task_definition(family):
    return {
        "family": family,
        "containerDefinitions": [
            {
                "name": f"c{i}",
                "image": "flotilla/busybox:latest",
                "memory": 64,
                "command": ["sleep", "600"],
                "environment": [{"name": f"K{j}", "value": f"v{j}"} for j in range(5)],
                "portMappings": [{"containerPort": 8000 + i}],
            }
            for i in range(3)
        ],
    }


def measure(binary, seconds, connections):
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(binary, tmp)
        try:
            call(server.endpoint, "RegisterTaskDefinition", task_definition("bench"))
            describe = run_wrk(server.endpoint, "DescribeTaskDefinition", {"taskDefinition": "bench"}, seconds, connections, tmp)
            register = run_wrk(server.endpoint, "RegisterTaskDefinition", task_definition("bench"), seconds, connections, tmp)
            return {
                "startup_ms": server.startup_ms,
                "binary_mib": binary.stat().st_size / 2**20,
                "rss_mib": server.rss_mib(),
                "DescribeTaskDefinition": describe,
                "RegisterTaskDefinition": register,
            }
        finally:
            server.stop()


def build_baseline(rev):
    tree = Path(f"/tmp/flotilla-baseline-{rev}")
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True)
    target = Path(f"/tmp/flotilla-baseline-target-{rev}")
    print(f"building the baseline {rev} in {tree} (release) ...", flush=True)
    subprocess.run(
        ["cargo", "build", "--release", "-p", "flotilla", "--bin", "flotilla"],
        cwd=tree,
        env=dict(os.environ, CARGO_TARGET_DIR=str(target)),
        check=True,
    )
    return target / "release" / "flotilla"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--baseline", type=Path, help="the baseline flotilla binary")
    group.add_argument("--baseline-rev", help="a git revision to build as the baseline")
    ap.add_argument("--seconds", type=int, default=10, help="per operation and binary (default 10)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--output", choices=["table", "json"], default="table")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    current = Path(os.environ.get("FLOTILLA_BIN", ROOT / "target" / "release" / "flotilla"))
    if not current.exists():
        sys.exit(f"{current} is missing: cargo build --release -p flotilla")
    baseline = args.baseline or build_baseline(args.baseline_rev)
    results = {}
    for name, binary in (("baseline", baseline), ("current", current)):
        print(f"measuring {name}: {binary} ...", flush=True)
        results[name] = measure(binary, args.seconds, args.connections)
    if args.output == "json":
        print(json.dumps(results, indent=2))
        return
    b, c = results["baseline"], results["current"]
    print(f"\n{'':34}{'baseline':>12}{'current':>12}{'ratio':>9}")
    for op in ("DescribeTaskDefinition", "RegisterTaskDefinition"):
        for key, label in (("rps", "requests/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
            bv, cv = b[op][key], c[op][key]
            print(f"{op + ' ' + label:34}{bv:12.2f}{cv:12.2f}{cv / bv:8.2f}x")
    for key, label in (("startup_ms", "start-up to /healthz, ms"), ("binary_mib", "binary size, MiB"), ("rss_mib", "server RSS after, MiB")):
        print(f"{label:34}{b[key]:12.1f}{c[key]:12.1f}{c[key] / b[key]:8.2f}x")


if __name__ == "__main__":
    main()
