#!/usr/bin/env python3
"""Benchmark: a Flotilla region (issue 13, acceptance 5) under faults, in one run.

Builds a region with `scripts/region up` (3 zones, 2 agents per zone, heartbeat 2 s so a lost
agent is noticed in ~6 s; the leader's etcd lease is 5 s) and prints:
  1. failover time: a service of 6 tasks spread over the zones; the leader replica is killed
     with SIGKILL and, at the same moment, one of the service's task containers (in the leader's
     zone, so its agent must also move to another replica) with `docker kill`; time until the
     killed task is replaced and RUNNING (the controllers act again on the new leader);
  2. the share of API requests answered during that failover: clients sending DescribeServices
     through all replicas' endpoints, retrying a connection failure / timeout / 5xx on the next
     endpoint as the SDKs' standard retry mode does (at most 3 attempts), from the kills until the
     replacement runs plus 5 s;
  3. time to re-place a zone's tasks: `scripts/region cut ZONE 60` of a zone that does not hold
     the leader, until 6 tasks run in the other zones; then, after the heal, until the service is
     steady at 6 again, sampling runningCount, the task list and Docker every second against
     maximumPercent;
  4. API requests/s and p99 for a fixed mix (DescribeServices + ListTasks, alternating, C
     concurrent clients for 10 s) against one replica on etcd, beside a `flotilla server` on its
     embedded SQLite store (started here on 127.0.0.1 with one agent and the same 6-task
     service), and the ratio.

Python 3 standard library only (requests are SigV4-signed here). Needs root, Docker, etcd 3.4
(see README "Running a region"); no region may be up. Always ends with `scripts/region down`.

    cargo build --release -p flotilla && python3 benches/region_failover.py
    FLOTILLA_BIN=target/debug/flotilla python3 benches/region_failover.py
"""

import datetime
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION_SCRIPT = str(ROOT / "scripts" / "region")
if "FLOTILLA_BIN" not in os.environ:
    rel = ROOT / "target" / "release" / "flotilla"
    os.environ["FLOTILLA_BIN"] = str(rel if rel.exists() else ROOT / "target" / "debug" / "flotilla")
BIN = os.environ["FLOTILLA_BIN"]
STATE = Path(os.environ.get("FLOTILLA_REGION_STATE", "/tmp/flotilla-region"))
REGION = "us-east-1"
ZONES = ["a", "b", "c"]
ADDR = {z: f"10.77.0.1{i + 1}" for i, z in enumerate(ZONES)}
ENDPOINT = {z: f"http://{ADDR[z]}:8080" for z in ZONES}
CLUSTER = "bench"
SERVICE = "bench-svc"
FAMILY = "bench-sleeper"
IMAGE = "flotilla/busybox:latest"
DESIRED = 6
HEARTBEAT = 2
CUT_SECONDS = 60
THROUGHPUT_CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
THROUGHPUT_SECONDS = 10
FAILOVER_CLIENTS = 4
TARGET = "AmazonEC2ContainerServiceV20141113."
CREDS = {}


def log(msg):
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- signed ECS calls (stdlib SigV4) -------------------------------------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_headers(host, op, body, access_key, secret_key):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-target": TARGET + op,
    }
    names = sorted(headers)
    canonical = "\n".join([
        "POST", "/", "",
        "".join(f"{k}:{headers[k]}\n" for k in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{day}/{REGION}/ecs/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), REGION), "ecs"), "aws4_request")
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return headers


class Conn:
    """A keep-alive connection to one endpoint; reconnects after any error."""

    def __init__(self, endpoint, timeout=3.0):
        self.host = endpoint.split("//", 1)[1]
        h, p = self.host.split(":")
        self.hp, self.timeout, self.c = (h, int(p)), timeout, None

    def call(self, op, payload):
        """(status, json or None); raises OSError / http.client exceptions on transport failure."""
        body = json.dumps(payload).encode()
        hdrs = signed_headers(self.host, op, body, CREDS["AWS_ACCESS_KEY_ID"], CREDS["AWS_SECRET_ACCESS_KEY"])
        if self.c is None:
            self.c = http.client.HTTPConnection(*self.hp, timeout=self.timeout)
        try:
            self.c.request("POST", "/", body=body, headers=hdrs)
            r = self.c.getresponse()
            raw = r.read()
        except BaseException:
            self.close()
            raise
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, None

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class Client:
    """Like an SDK client in standard retry mode over an endpoint list: an attempt that fails to
    connect, times out or gets a 5xx/throttle is retried on the next endpoint, after a jittered
    exponential backoff, at most `attempts` attempts in all."""

    def __init__(self, endpoints, attempts=3, timeout=3.0, backoff=True):
        self.conns = [Conn(e, timeout) for e in endpoints]
        self.attempts, self.backoff, self.i = attempts, backoff, 0

    def call(self, op, payload, rotate=False):
        """Returns (json, attempts used) or raises RuntimeError after the last attempt."""
        if rotate:
            self.i = (self.i + 1) % len(self.conns)
        last = None
        for attempt in range(self.attempts):
            conn = self.conns[self.i]
            try:
                status, data = conn.call(op, payload)
                if status == 200:
                    return data, attempt + 1
                last = f"HTTP {status} from {conn.host}: {str(data)[:200]}"
                if status not in RETRYABLE_STATUS:
                    raise RuntimeError(last)
            except (OSError, http.client.HTTPException) as e:
                last = f"{type(e).__name__} from {conn.host}: {e}"
            self.i = (self.i + 1) % len(self.conns)
            if self.backoff and attempt + 1 < self.attempts:
                time.sleep(min(random.random() * 2 ** attempt, 20) * 0.1)  # standard mode's, scaled down
        raise RuntimeError(last)

    def close(self):
        for c in self.conns:
            c.close()


# ---- the region ------------------------------------------------------------------------------

def region(*args, timeout=180, check=True):
    r = subprocess.run([REGION_SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, FLOTILLA_BIN=BIN))
    if check and r.returncode != 0:
        raise RuntimeError(f"scripts/region {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}{r.stdout[-2000:]}")
    return r.stdout


def docker(*args, timeout=60):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=True).stdout.strip()


def http_get(endpoint, path, timeout=1.0):
    h, p = endpoint.split("//", 1)[1].split(":")
    c = http.client.HTTPConnection(h, int(p), timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def leader_zone(zones=ZONES):
    for z in zones:
        try:
            status, text = http_get(ENDPOINT[z], "/metrics", timeout=0.5)
        except (OSError, http.client.HTTPException):
            continue
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "flotilla_leader" and float(parts[1]) == 1:
                return z
    return None


def server_pid(z):
    pid = int((STATE / f"z{z}" / "server.pid").read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert str(STATE) + "/" in cmdline and " server " in cmdline, f"pid {pid} is not zone {z}'s server"
    return pid


def until(pred, timeout, interval=0.2, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def service_tasks(cl, cluster=CLUSTER, service=SERVICE):
    """The service's tasks with desiredStatus RUNNING, described: [(arn, zone, lastStatus)]."""
    arns = cl.call("ListTasks", {"cluster": cluster, "serviceName": service, "desiredStatus": "RUNNING"})[0]["taskArns"]
    out = []
    for i in range(0, len(arns), 100):
        for t in cl.call("DescribeTasks", {"cluster": cluster, "tasks": arns[i:i + 100]})[0]["tasks"]:
            out.append((t["taskArn"], t.get("availabilityZone", "?"), t["lastStatus"]))
    return out


def describe_service(cl, cluster=CLUSTER, service=SERVICE):
    return cl.call("DescribeServices", {"cluster": cluster, "services": [service]})[0]["services"][0]


def steady(cl, cluster=CLUSTER):
    s = describe_service(cl, cluster)
    tasks = service_tasks(cl, cluster)
    running = [t for t in tasks if t[2] == "RUNNING"]
    ok = (s["runningCount"] == DESIRED and s["pendingCount"] == 0 and len(tasks) == DESIRED
          and len(running) == DESIRED and len(s.get("deployments", [])) == 1)
    return running if ok else None


def docker_running(cluster=CLUSTER):
    out = docker("ps", "-q", "--filter", f"label=com.flotilla.cluster={cluster}")
    return len(out.split()) if out else 0


def create_service(cl, cluster=CLUSTER):
    cl.call("RegisterTaskDefinition", {
        "family": FAMILY,
        "containerDefinitions": [{"name": "main", "image": IMAGE, "memory": 16,
                                  "command": ["sleep", "3600"], "stopTimeout": 2}],
    })
    cl.call("CreateService", {"cluster": cluster, "serviceName": SERVICE, "taskDefinition": FAMILY,
                              "desiredCount": DESIRED})


def zone_of(az):
    return az[-1] if az and az.startswith(REGION) else az


# ---- 1 + 2: failover -------------------------------------------------------------------------

def api_load(stop, results, idx):
    cl = Client([ENDPOINT[z] for z in ZONES], attempts=3, timeout=3.0)
    cl.i = idx % len(ZONES)
    while not stop.is_set():
        t = time.monotonic()
        try:
            _, attempts = cl.call("DescribeServices", {"cluster": CLUSTER, "services": [SERVICE]}, rotate=True)
            results.append((t, True, attempts, None))
        except RuntimeError as e:
            results.append((t, False, 3, str(e)))
        time.sleep(0.01)
    cl.close()


def failover(mon):
    lz = until(leader_zone, 30, what="a leader")
    tasks = service_tasks(mon)
    victims = [t for t in tasks if zone_of(t[1]) == lz] or tasks
    victim = victims[0][0]
    cid = docker("ps", "-q", "--filter", f"label=com.flotilla.task-arn={victim}")
    assert cid, f"no container for {victim}"
    pid = server_pid(lz)
    others = [z for z in ZONES if z != lz]
    log(f"leader in zone {lz} (pid {pid}); victim task {victim.rsplit('/', 1)[-1]} in {victims[0][1]}, container {cid[:12]}")

    stop, results = threading.Event(), []
    loaders = [threading.Thread(target=api_load, args=(stop, results, i), daemon=True) for i in range(FAILOVER_CLIENTS)]
    # The monitor prefers the surviving replicas (it is not the measured client).
    mcl = Client([ENDPOINT[z] for z in others] + [ENDPOINT[lz]], attempts=3, timeout=2.0, backoff=False)
    dk = subprocess.Popen(["docker", "kill", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    for th in loaders:
        th.start()
    os.kill(pid, signal.SIGKILL)
    dk.wait(30)
    t_dk = time.monotonic() - t0
    new_leader = stopped_seen = replaced = None
    new_zone = None
    try:
        while time.monotonic() - t0 < 120:
            now = time.monotonic() - t0
            if new_leader is None:
                z = leader_zone(others)
                if z:
                    new_leader, new_zone = now, z
            try:
                ts = service_tasks(mcl)
            except RuntimeError:
                ts = None
            if ts is not None:
                running = [t for t in ts if t[2] == "RUNNING" and t[0] != victim]
                if stopped_seen is None and all(t[0] != victim for t in ts):
                    stopped_seen = time.monotonic() - t0
                if stopped_seen is not None and len(running) >= DESIRED:
                    replaced = time.monotonic() - t0
                    break
            time.sleep(0.1)
        if replaced is None:
            raise TimeoutError("the killed task was not replaced within 120 s")
        time.sleep(5)
    finally:
        stop.set()
        for th in loaders:
            th.join(15)
        mcl.close()
    t_end = (replaced or (time.monotonic() - t0)) + 5
    window = [r for r in results if r[0] - t0 <= t_end]
    ok = sum(1 for r in window if r[1])
    retried = sum(1 for r in window if r[1] and r[2] > 1)
    errors = {}
    for r in window:
        if not r[1]:
            key = r[3].split(" from ")[0]
            errors[key] = errors.get(key, 0) + 1
    return dict(leader_zone=lz, new_zone=new_zone, new_leader=new_leader, stopped_seen=stopped_seen,
                replaced=replaced, docker_kill=t_dk, answered=ok, total=len(window), retried=retried,
                errors=errors, window=t_end)


# ---- 3: a zone cut -------------------------------------------------------------------------------

def link_up(dev):
    out = subprocess.run(["ip", "-o", "link", "show", dev], capture_output=True, text=True, timeout=10).stdout
    return "UP" in out.partition("<")[2].partition(">")[0].split(",")


def zone_cut():
    lz = until(leader_zone, 30, what="a leader")
    cl_all = Client([ENDPOINT[z] for z in ZONES], timeout=2.0, backoff=False)
    tasks = service_tasks(cl_all)
    cl_all.close()
    per_zone = {z: sum(1 for t in tasks if zone_of(t[1]) == z) for z in ZONES}
    cz = max((z for z in ZONES if z != lz), key=lambda z: per_zone[z])
    n_cut = per_zone[cz]
    others = [z for z in ZONES if z != cz]
    cl = Client([ENDPOINT[z] for z in others], timeout=2.0, backoff=False)
    svc = describe_service(cl)
    max_pct = svc.get("deploymentConfiguration", {}).get("maximumPercent", 200)
    bound = DESIRED * max_pct // 100
    log(f"leader in zone {lz}; cutting zone {cz} ({n_cut} of the service's tasks) for {CUT_SECONDS} s; tasks per zone {per_zone}")
    samples = []
    t0 = time.monotonic()
    region("cut", cz, str(CUT_SECONDS), timeout=30)
    elsewhere = clean = None
    next_sample = 0.0
    try:
        # until the heal (sampling every 0.5 s, kept every second), then every second until steady
        t_heal, max_cut_listed = None, 0
        while t_heal is None:
            now = time.monotonic() - t0
            if now > CUT_SECONDS + 30:
                raise TimeoutError(f"zone {cz} not healed {CUT_SECONDS + 30} s after the cut")
            if now > CUT_SECONDS - 2 and link_up(f"flot-v{cz}"):
                t_heal = now
                break
            try:
                s = describe_service(cl)
                ts = service_tasks(cl)
            except RuntimeError:
                time.sleep(0.5)
                continue
            run_else = sum(1 for t in ts if t[2] == "RUNNING" and zone_of(t[1]) != cz)
            run_cut = sum(1 for t in ts if t[2] == "RUNNING" and zone_of(t[1]) == cz)
            if elsewhere is None and run_else >= DESIRED:
                elsewhere = now
                log(f"{DESIRED} RUNNING outside zone {cz} at {now:.1f} s; runningCount {s['runningCount']}, "
                    f"{run_cut} still listed RUNNING in zone {cz}")
            if elsewhere is not None:
                max_cut_listed = max(max_cut_listed, run_cut)
            if clean is None and s["runningCount"] == DESIRED and run_cut == 0 and run_else >= DESIRED:
                clean = now
            if now >= next_sample:
                samples.append((now, s["runningCount"], sum(1 for t in ts if t[2] == "RUNNING"), len(ts), docker_running(), "cut"))
                next_sample += 1.0
            time.sleep(0.5)
        cl.close()
        cl = Client([ENDPOINT[z] for z in ZONES], timeout=2.0, backoff=False)
        steady_at, streak = None, 0
        while time.monotonic() - t_heal - t0 < 180:
            now = time.monotonic() - t0
            try:
                s = describe_service(cl)
                ts = service_tasks(cl)
            except RuntimeError:
                time.sleep(1)
                continue
            dk = docker_running()
            running = sum(1 for t in ts if t[2] == "RUNNING")
            samples.append((now, s["runningCount"], running, len(ts), dk, "healed"))
            if clean is None and s["runningCount"] == DESIRED and not any(
                    t[2] == "RUNNING" and zone_of(t[1]) == cz for t in ts):
                clean = now
            if (s["runningCount"] == DESIRED and running == DESIRED and len(ts) == DESIRED
                    and s["pendingCount"] == 0 and dk == DESIRED):
                streak += 1
                if streak >= 5:
                    steady_at = now - 4
                    break
            else:
                streak = 0
            time.sleep(1)
        final = service_tasks(cl)
    finally:
        cl.close()
        region("heal", cz, timeout=30, check=False)
    post = [x for x in samples if x[5] == "healed"]
    return dict(cut_zone=cz, leader_zone=lz, n_cut=n_cut, max_cut_listed=max_cut_listed, elsewhere=elsewhere, clean=clean, heal=t_heal,
                steady=steady_at, bound=bound, max_pct=max_pct,
                max_api=max(max(x[1], x[2]) for x in samples),
                max_rc=max(x[1] for x in samples), max_listed=max(x[2] for x in samples),
                max_api_healed=max((max(x[1], x[2]) for x in post), default=0),
                max_docker_healed=max((x[4] for x in post), default=0),
                max_docker_cut=max((x[4] for x in samples if x[5] == "cut"), default=0),
                final_zones={z: sum(1 for t in final if zone_of(t[1]) == z) for z in ZONES})


# ---- 4: throughput -------------------------------------------------------------------------------

def _tp_worker(args):
    endpoint, cluster, seconds, creds = args
    CREDS.update(creds)
    conn = Conn(endpoint, timeout=10)
    ops = [("DescribeServices", {"cluster": cluster, "services": [SERVICE]}),
           ("ListTasks", {"cluster": cluster, "serviceName": SERVICE})]
    lat, errors, i = [], 0, 0
    warm_end = time.monotonic() + 1
    end = warm_end + seconds
    while True:
        t = time.monotonic()
        if t >= end:
            break
        op, payload = ops[i % 2]
        i += 1
        try:
            status, _ = conn.call(op, payload)
            ok = status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        d = time.monotonic() - t
        if t >= warm_end:
            if ok:
                lat.append(d)
            else:
                errors += 1
    conn.close()
    return lat, errors


def throughput(endpoint, cluster):
    with multiprocessing.get_context("fork").Pool(THROUGHPUT_CLIENTS) as pool:
        res = pool.map_async(_tp_worker, [(endpoint, cluster, THROUGHPUT_SECONDS, dict(CREDS))] * THROUGHPUT_CLIENTS)
        out = res.get(THROUGHPUT_SECONDS + 60)
    lat = sorted(x for l, _ in out for x in l)
    errors = sum(e for _, e in out)
    p = lambda q: lat[min(len(lat) - 1, round((len(lat) - 1) * q))] if lat else float("nan")  # noqa: E731
    return dict(rps=len(lat) / THROUGHPUT_SECONDS, p50=p(0.5), p99=p(0.99), n=len(lat), errors=errors)


def sqlite_fleet(tmp):
    """A `flotilla server` on its embedded SQLite store on 127.0.0.1, one agent, the same service."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=CREDS["AWS_ACCESS_KEY_ID"],
               AWS_SECRET_ACCESS_KEY=CREDS["AWS_SECRET_ACCESS_KEY"], AWS_DEFAULT_REGION=REGION)
    env.pop("AWS_SESSION_TOKEN", None)
    procs = []
    srv_log = open(Path(tmp) / "server.log", "ab")
    procs.append(subprocess.Popen([BIN, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(Path(tmp) / "server"),
                                   "--region", REGION, "--heartbeat-seconds", str(HEARTBEAT)],
                                  stdout=srv_log, stderr=srv_log, env=env, start_new_session=True))
    endpoint = f"http://127.0.0.1:{port}"
    until(lambda: _ok(http_get, endpoint, "/readyz"), 30, what="the SQLite server's /readyz")
    return endpoint, procs, env


def _ok(f, *a):
    try:
        return f(*a)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def main():
    if os.geteuid() != 0:
        sys.exit("needs root (scripts/region)")
    subprocess.run([str(ROOT / "scripts" / "images")], check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log(f"binary {BIN}")
    sq_cluster = f"bench-sqlite-{uuid.uuid4().hex[:8]}"
    procs = []
    tmp = tempfile.mkdtemp(prefix="flotilla-bench-sqlite-")
    fo = cut = tp_etcd = tp_sql = None
    tp_zone = tp_role = None
    try:
        t = time.monotonic()
        region("up", "--zones", "3", "--agents-per-zone", "2", "--cluster", CLUSTER,
               "--heartbeat-seconds", str(HEARTBEAT), timeout=240)
        log(f"region up in {time.monotonic() - t:.0f} s")
        for line in (STATE / "credentials.env").read_text().splitlines():
            k, _, v = line.partition("=")
            CREDS[k.strip()] = v.strip()
        mon = Client([ENDPOINT[z] for z in ZONES], timeout=3.0)
        create_service(mon)
        until(lambda: steady(mon), 120, 0.5, "6 RUNNING tasks")
        log("service steady: " + str(sorted(zone_of(t[1]) for t in service_tasks(mon))))

        fo = failover(mon)
        log(f"failover: {fo}")
        region("start", fo["leader_zone"], "server", timeout=60)
        until(lambda: _ok(http_get, ENDPOINT[fo["leader_zone"]], "/readyz"), 60, what="the restarted replica")
        until(lambda: steady(mon), 120, 0.5, "steady after failover")

        cut = zone_cut()
        log(f"cut: {cut}")
        until(lambda: steady(mon), 120, 0.5, "steady after the cut")

        tp_zone = "a"
        tp_role = "leader" if leader_zone() == tp_zone else "standby"
        log(f"throughput against zone {tp_zone}'s replica ({tp_role}) on etcd")
        tp_etcd = throughput(ENDPOINT[tp_zone], CLUSTER)
        log(f"etcd: {tp_etcd}")

        endpoint, procs, env = sqlite_fleet(tmp)
        sq = Client([endpoint])
        sq.call("CreateCluster", {"clusterName": sq_cluster})
        agent_log = open(Path(tmp) / "agent.log", "ab")
        procs.append(subprocess.Popen([BIN, "agent", "--cluster", sq_cluster, "--server", endpoint,
                                       "--availability-zone", REGION + "a", "--data-dir", str(Path(tmp) / "agent")],
                                      stdout=agent_log, stderr=agent_log, env=env, start_new_session=True))
        create_service(sq, sq_cluster)
        until(lambda: steady(sq, sq_cluster), 120, 0.5, "6 RUNNING tasks on SQLite")
        log("throughput against the SQLite server")
        tp_sql = throughput(endpoint, sq_cluster)
        log(f"sqlite: {tp_sql}")
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
        try:
            ids = docker("ps", "-aq", "--filter", f"label=com.flotilla.cluster={sq_cluster}")
            if ids:
                docker("rm", "-f", *ids.split())
        except Exception as e:  # noqa: BLE001
            log(f"cleanup of the SQLite run's containers failed: {e}")
        subprocess.run(["rm", "-rf", tmp])
        log("scripts/region down")
        region("down", timeout=120, check=False)

    print(f"Flotilla region benchmark ({Path(BIN).parent.name} build {BIN}); scripts/region up: 3 zones x 2 agents,")
    print(f"--heartbeat-seconds {HEARTBEAT} (a silent agent is noticed after ~{3 * HEARTBEAT} s), leader lease 5 s; "
          f"a service of {DESIRED} x `sleep` on {IMAGE}")
    print()
    print(f"1. failover: leader replica (zone {fo['leader_zone']}) kill -9 + docker kill of one of its zone's task containers")
    print(f"   new leader (zone {fo['new_zone']}) seen in /metrics after      {fo['new_leader']:6.2f} s")
    print(f"   killed task off the RUNNING list after          {fo['stopped_seen']:6.2f} s")
    print(f"   killed task replaced, replacement RUNNING after {fo['replaced']:6.2f} s   (goal <= 10 s: "
          f"{'met' if fo['replaced'] <= 10 else 'MISSED'})")
    pct_ok = 100.0 * fo["answered"] / max(1, fo["total"])
    print(f"2. API during the failover ({FAILOVER_CLIENTS} clients, DescribeServices round-robin over 3 replicas, "
          f"up to 3 attempts, {fo['window']:.1f} s window)")
    print(f"   answered {fo['answered']}/{fo['total']} = {pct_ok:.2f}%  ({fo['retried']} needed a retry; "
          f"failures: {fo['errors'] or 'none'})   (goal >= 99%: {'met' if pct_ok >= 99 else 'MISSED'})")
    print(f"3. zone cut: `scripts/region cut {cut['cut_zone']} {CUT_SECONDS}` ({cut['n_cut']} tasks there; leader in "
          f"zone {cut['leader_zone']})")
    print(f"   {DESIRED} tasks RUNNING in the other zones after      {cut['elsewhere'] if cut['elsewhere'] is not None else float('nan'):6.2f} s"
          f"   (goal <= 45 s: {'met' if cut['elsewhere'] is not None and cut['elsewhere'] <= 45 else 'MISSED'})")
    print(f"   while cut: up to {cut['max_cut_listed']} of zone {cut['cut_zone']}'s unreachable tasks still listed "
          f"RUNNING (desiredStatus RUNNING) beside their replacements: ListTasks up to {cut['max_listed']} RUNNING, "
          f"runningCount up to {cut['max_rc']}")
    print(f"   runningCount {DESIRED}, none RUNNING in zone {cut['cut_zone']}, after   "
          f"{cut['clean'] if cut['clean'] is not None else float('nan'):6.2f} s")
    st = f"{cut['steady'] - cut['heal']:.1f} s after the heal" if cut["steady"] is not None else "NOT within 180 s of the heal"
    print(f"   healed at {cut['heal']:.1f} s (timed heal); steady at {DESIRED} (API and Docker) {st}; final tasks per zone {cut['final_zones']}")
    print(f"   maximumPercent {cut['max_pct']} -> bound {cut['bound']}: max running seen by the API {cut['max_api']} "
          f"(after heal {cut['max_api_healed']}), Docker after heal {cut['max_docker_healed']} "
          f"(during the cut {cut['max_docker_cut']}, the cut zone's containers included) -> "
          f"{'EXCEEDED' if max(cut['max_api'], cut['max_docker_healed']) > cut['bound'] else 'never exceeded'}")
    print(f"4. API throughput, DescribeServices + ListTasks alternating, {THROUGHPUT_CLIENTS} client processes x "
          f"{THROUGHPUT_SECONDS} s, keep-alive, one replica")
    print(f"   {'':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in ((f"etcd (zone {tp_zone} replica, {tp_role})", tp_etcd), ("SQLite (embedded, 127.0.0.1)", tp_sql)):
        print(f"   {name:34} {r['rps']:8.0f} {r['p50'] * 1000:8.1f} {r['p99'] * 1000:8.1f} {r['errors']:7d}")
    print(f"   {'ratio etcd / SQLite':34} {tp_etcd['rps'] / tp_sql['rps']:8.2f} "
          f"{tp_etcd['p50'] / tp_sql['p50']:8.2f} {tp_etcd['p99'] / tp_sql['p99']:8.2f}")


if __name__ == "__main__":
    main()
