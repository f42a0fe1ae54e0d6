"""Crash durability: a client registers task definitions as fast as it can while the server is
killed with SIGKILL; after a restart on the same data dir every registration that was
acknowledged (HTTP 200) is still there, with the same ARN and content."""

import os
import signal
import threading
import time

import boto3
from botocore.config import Config

import helpers
from helpers import unique


def client(endpoint):
    return boto3.client(
        "ecs", endpoint_url=endpoint, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )


def strip(d):
    return {k: v for k, v in d.items() if k != "ResponseMetadata"}


class Registrar(threading.Thread):
    """Registers revisions of one family back to back and records every acknowledged one."""

    def __init__(self, endpoint, family):
        super().__init__(daemon=True)
        self.ecs = client(endpoint)
        self.family = family
        self.acked = []  # (index, response)
        self.errors = 0
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                r = self.ecs.register_task_definition(
                    family=self.family,
                    containerDefinitions=[{
                        "name": "app", "image": f"busybox:{i}", "memory": 32 + i % 64,
                        "environment": [{"name": "SEQ", "value": str(i)}],
                    }],
                    tags=[{"key": "seq", "value": str(i)}],
                )
            except Exception:
                self.errors += 1
                time.sleep(0.01)
                continue
            self.acked.append((i, strip(r)))


def crash_round(start_server, data_dir, families):
    srv = start_server(data_dir=data_dir)
    workers = [Registrar(srv.endpoint, f) for f in families]
    for w in workers:
        w.start()
    time.sleep(2.0)
    # Kill while the clients are still sending.
    assert all(w.is_alive() for w in workers)
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    time.sleep(0.3)
    for w in workers:
        w.stop.set()
    for w in workers:
        w.join(10)
    for w in workers:
        assert len(w.acked) >= 5, f"only {len(w.acked)} registrations before the kill"
    return workers


def verify(ecs, worker):
    revisions = [resp["taskDefinition"]["revision"] for _, resp in worker.acked]
    # One client, one family, sequential calls: acknowledged revisions are 1..N in order.
    assert revisions == list(range(1, len(revisions) + 1))
    for i, resp in worker.acked:
        td = resp["taskDefinition"]
        got = ecs.describe_task_definition(taskDefinition=td["taskDefinitionArn"], include=["TAGS"])
        assert got["taskDefinition"] == td, f"revision {td['revision']} changed"
        assert got["tags"] == [{"key": "seq", "value": str(i)}]
        assert got["taskDefinition"]["containerDefinitions"][0]["environment"] == [
            {"name": "SEQ", "value": str(i)}]
    return revisions[-1]


def test_acknowledged_registrations_survive_kill_9(start_server, tmp_path):
    data_dir = tmp_path / "data"
    rounds = []
    for _ in range(2):
        families = [unique("durable"), unique("durable")]
        rounds.append(crash_round(start_server, data_dir, families))
        total = sum(len(w.acked) for w in rounds[-1])
        assert total > 0

        # Restart on the same data dir: everything acknowledged so far is intact.
        srv = start_server(data_dir=data_dir)
        ecs = client(srv.endpoint)
        for workers in rounds:
            for w in workers:
                last = verify(ecs, w)
                # The next revision never reuses an acknowledged number.
                nxt = ecs.register_task_definition(
                    family=w.family,
                    containerDefinitions=[{"name": "app", "image": "busybox", "memory": 32}],
                )["taskDefinition"]["revision"]
                assert nxt > last
        listed = set(ecs.get_paginator("list_task_definition_families").paginate(
            status="ALL").build_full_result()["families"])
        assert {w.family for workers in rounds for w in workers} <= listed
        srv.kill()
