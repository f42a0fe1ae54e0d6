#!/usr/bin/env python3
"""Benchmark: Flotilla's load balancer data plane (crates/lb) beside HAProxy, same backends.

Three small Rust HTTP backends (`crates/lb/examples/lb_backend.rs`, one process, one thread)
on 127.0.0.1; in front of them Flotilla's data plane (`crates/lb/examples/lb_serve.rs`, a table
from a JSON file) and HAProxy (Debian's `haproxy`, 2.6 on bookworm) with the equivalent setup:
an HTTP listener (keep-alive to clients and backends, round robin, X-Forwarded-For/-Proto/-Port)
and a TCP listener (round robin, spliced). `wrk` (Debian's `wrk`) drives each with the same
threads, connections and duration, in interleaved rounds; the table shows the median round of
each: requests/s, p50 and p99 latency, and the ratios Flotilla / HAProxy. The backends alone
(wrk straight at one) are the ceiling of this machine.

Both proxies get the same cores (HAProxy `nbthread`, Flotilla's tokio worker threads).

    apt-get install -y haproxy wrk     # if missing
    cargo build --release -p flotilla-lb --examples && python3 benches/lb_vs_haproxy.py

Environment: LB_BENCH_SECS (10), LB_BENCH_CONNS (64), LB_BENCH_WRK_THREADS (2),
LB_BENCH_ROUNDS (3), LB_BENCH_PROXY_THREADS (2).
"""

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
EXAMPLES = TARGET / "release" / "examples"
SECS = int(os.environ.get("LB_BENCH_SECS", "10"))
CONNS = int(os.environ.get("LB_BENCH_CONNS", "64"))
WRK_THREADS = int(os.environ.get("LB_BENCH_WRK_THREADS", "2"))
ROUNDS = int(os.environ.get("LB_BENCH_ROUNDS", "3"))
PROXY_THREADS = int(os.environ.get("LB_BENCH_PROXY_THREADS", "2"))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_port(port, timeout=10):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def get(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return r.read().decode().strip()


def ms(value):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(value)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk(port, secs=SECS):
    out = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CONNS}", f"-d{secs}s", "--latency", f"http://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"  wrk on {port}: {errors.group(0)}", file=sys.stderr)
    return rps, p50, p99


def haproxy_config(http_port, tcp_port, backends):
    servers = "\n".join(f"  server b{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    return f"""global
  maxconn 4000
  nbthread {PROXY_THREADS}
defaults
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend fe_http
  mode http
  option http-keep-alive
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Port %[dst_port]
  bind 127.0.0.1:{http_port}
  default_backend be_http
backend be_http
  mode http
  balance roundrobin
{servers}
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:{tcp_port}
  default_backend be_tcp
backend be_tcp
  mode tcp
  balance roundrobin
{servers}
"""


def flotilla_table(http_port, tcp_port, backends):
    fwd = [{"target_group": "tg", "weight": 1}]
    return {
        "listeners": [
            {"id": "http", "bind": f"127.0.0.1:{http_port}", "protocol": "Http", "rules": [{"forward": fwd}]},
            {"id": "tcp", "bind": f"127.0.0.1:{tcp_port}", "protocol": "Tcp", "rules": [{"forward": fwd}]},
        ],
        "target_groups": {"tg": {"id": "tg", "algorithm": "RoundRobin",
                                 "targets": [{"addr": f"127.0.0.1:{p}", "routing": "Serve"} for p in backends]}},
    }


def main():
    for tool in ("haproxy", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y haproxy wrk")
    for ex in ("lb_backend", "lb_serve"):
        if not (EXAMPLES / ex).exists():
            sys.exit(f"{EXAMPLES / ex} is missing: cargo build --release -p flotilla-lb --examples")
    hap_version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split()[2]

    ports = free_ports(7)
    backends, (f_http, f_tcp, h_http, h_tcp) = ports[:3], ports[3:]
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            procs.append(subprocess.Popen([str(EXAMPLES / "lb_backend"), "--threads", "1"]
                                          + [f"{n}=127.0.0.1:{p}" for n, p in zip("abc", backends)],
                                          stdout=subprocess.DEVNULL))
            table = Path(tmp, "table.json")
            table.write_text(json.dumps(flotilla_table(f_http, f_tcp, backends)))
            procs.append(subprocess.Popen([str(EXAMPLES / "lb_serve"), str(table), "--threads", str(PROXY_THREADS)],
                                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL))
            cfg = Path(tmp, "haproxy.cfg")
            cfg.write_text(haproxy_config(h_http, h_tcp, backends))
            procs.append(subprocess.Popen(["haproxy", "-db", "-f", str(cfg)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for p in ports:
                wait_port(p)
            # Both front the same three backends, in turn.
            for port in (f_http, h_http):
                assert sorted(get(port) for _ in range(3)) == ["a", "b", "c"], port
            for port in (f_tcp, h_tcp):
                assert get(port) in "abc"

            cases = [("backend alone", backends[0]), ("flotilla http", f_http), ("haproxy http", h_http),
                     ("flotilla tcp", f_tcp), ("haproxy tcp", h_tcp)]
            for _, port in cases:
                wrk(port, secs=1)  # warm pools and caches
            runs = {name: [] for name, _ in cases}
            for r in range(ROUNDS):
                order = cases if r % 2 == 0 else list(reversed(cases))
                for name, port in order:
                    runs[name].append(wrk(port))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    def median(name):
        rows = runs[name]
        return tuple(statistics.median(r[i] for r in rows) for i in range(3))

    print(f"load balancers on 127.0.0.1, 3 backends, wrk -t{WRK_THREADS} -c{CONNS} -d{SECS}s, "
          f"median of {ROUNDS} interleaved rounds, {PROXY_THREADS} proxy threads, HAProxy {hap_version}, "
          f"{os.cpu_count()} cores")
    print(f"{'':16} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}   {'rounds: req/s':>20} {'p99 ms':>14}")
    for name, _ in cases:
        rps, p50, p99 = median(name)
        lo_r, hi_r = min(r[0] for r in runs[name]), max(r[0] for r in runs[name])
        lo_p, hi_p = min(r[2] for r in runs[name]), max(r[2] for r in runs[name])
        print(f"{name:16} {rps:10.0f} {p50:8.2f} {p99:8.2f}   {lo_r:9.0f}-{hi_r:<10.0f} {lo_p:6.2f}-{hi_p:<7.2f}")
    print(f"{'flotilla/haproxy':16} {'req/s':>10} {'p50':>8} {'p99':>8}")
    for mode in ("http", "tcp"):
        f, h = median(f"flotilla {mode}"), median(f"haproxy {mode}")
        print(f"{mode:16} {f[0] / h[0]:10.2f} {f[1] / h[1]:8.2f} {f[2] / h[2]:8.2f}")


if __name__ == "__main__":
    main()
