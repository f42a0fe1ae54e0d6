#!/usr/bin/env python3
"""Benchmark: what a user installs, its size and how fast it starts.

For the binary under test (FLOTILLA_BIN, default target/release/flotilla) and, when given, a
baseline binary (`--baseline BIN`, measured in the same run, the runs interleaved so both see
the same machine load), it prints:
- the file size of the binary, and whether it is stripped (no `.symtab`);
- start-up: the time from spawning `flotilla server` on a fresh data directory (new SQLite
  store, new secrets key, embedded store) to its first answer to `GET /healthz`, the median,
  min and max of `--runs` runs (default 11). The probe is a raw HTTP/1.1 request on a new TCP
  connection, retried in a tight loop (every 0.2 ms) while the port refuses or closes; the
  listener is bound before the store is opened, so a connection accepted early waits for the
  server's first answer, which is what is timed;
- the CPU time the server had used by then (all its threads, from `/proc/PID/task/*/schedstat`),
  the median: on a loaded machine the wall-clock start-up is mostly waiting for a core, and the
  CPU time is what the binary itself costs.

    cargo build --release -p flotilla
    python3 benches/startup.py [--baseline /tmp/flotilla-old] [--runs 11] [--output json]

No Python packages beyond the standard library; no Docker.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AKID, SECRET, REGION = "AKIDSTARTUPBENCH", "startup-bench-secret", "us-east-1"
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(port):
    """One `GET /healthz`: the status code, or None while nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(REQUEST)
            data = s.recv(64)
    except OSError:
        return None
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data[9:12])


def cpu_ms(pid):
    """The CPU time all threads of `pid` have used, in milliseconds (from their schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e6


def start_once(binary):
    """Milliseconds from spawn to the first answer of a server on a fresh data directory, and
    the CPU milliseconds the server had used by then."""
    with tempfile.TemporaryDirectory(prefix="flotilla-startup-") as tmp:
        port = free_port()
        env = dict(os.environ, AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET, RUST_LOG="warn")
        log = open(Path(tmp) / "server.log", "wb")
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(binary), "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp), "--region", REGION],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
        try:
            while True:
                status = probe(port)
                if status is not None:
                    elapsed = (time.perf_counter() - started) * 1000
                    cpu = cpu_ms(proc.pid)
                    if status != 200:
                        raise RuntimeError(f"{binary}: /healthz answered {status}")
                    return elapsed, cpu
                if proc.poll() is not None or time.perf_counter() - started > 30:
                    raise RuntimeError(f"{binary} did not start: {(Path(tmp) / 'server.log').read_text()}")
                time.sleep(0.0002)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def stripped(binary):
    """Whether the ELF file has no symbol table (`.symtab`)."""
    out = subprocess.run(["readelf", "-S", "-W", str(binary)], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return ".symtab" not in out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, help="a baseline flotilla binary, measured in the same run")
    ap.add_argument("--runs", type=int, default=11, help="start-ups per binary (default 11)")
    ap.add_argument("--output", choices=["table", "json"], default="table")
    args = ap.parse_args()
    current = Path(os.environ.get("FLOTILLA_BIN", ROOT / "target" / "release" / "flotilla"))
    if not current.exists():
        sys.exit(f"{current} is missing: cargo build --release -p flotilla")
    binaries = {"current": current}
    if args.baseline:
        binaries = {"baseline": args.baseline, "current": current}
    for b in binaries.values():
        start_once(b)  # warm the page cache: a user starts an installed binary more than once
    times = {name: [] for name in binaries}
    cpus = {name: [] for name in binaries}
    for _ in range(args.runs):
        for name, b in binaries.items():
            wall, cpu = start_once(b)
            times[name].append(wall)
            cpus[name].append(cpu)
    results = {
        name: {
            "binary": str(b),
            "size_bytes": b.stat().st_size,
            "stripped": stripped(b),
            "startup_ms_median": statistics.median(times[name]),
            "startup_ms_min": min(times[name]),
            "startup_ms_max": max(times[name]),
            "startup_cpu_ms_median": statistics.median(cpus[name]),
            "runs": len(times[name]),
        }
        for name, b in binaries.items()
    }
    if args.output == "json":
        print(json.dumps(results, indent=2))
        return
    names = list(binaries)
    print(f"{'':34}" + "".join(f"{n:>14}" for n in names) + ("     ratio" if len(names) == 2 else ""))
    rows = (
        ("binary size, MB", lambda r: r["size_bytes"] / 1e6),
        ("binary size, MiB", lambda r: r["size_bytes"] / 2**20),
        ("start-up to /healthz median, ms", lambda r: r["startup_ms_median"]),
        ("start-up min, ms", lambda r: r["startup_ms_min"]),
        ("start-up max, ms", lambda r: r["startup_ms_max"]),
        ("CPU used by then median, ms", lambda r: r["startup_cpu_ms_median"]),
    )
    for label, f in rows:
        vals = [f(results[n]) for n in names]
        ratio = f"{vals[1] / vals[0]:9.2f}x" if len(vals) == 2 and vals[0] else ""
        print(f"{label:34}" + "".join(f"{v:14.1f}" for v in vals) + ratio)
    print(f"{'stripped':34}" + "".join(f"{str(results[n]['stripped']):>14}" for n in names))
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"({args.runs} runs each, interleaved; load average {load} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
