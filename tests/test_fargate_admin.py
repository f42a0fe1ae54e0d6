"""Flotilla's own operation beside the ECS API, `FlotillaAdmin.ReclaimSpot` (what `flotilla fargate
reclaim-spot` calls): signed like any call, and bad input gets a modeled error, never a 5xx and
never a reclaim of everything."""

import pytest

from helpers import raw_call

TARGET = "FlotillaAdmin.ReclaimSpot"


def test_reclaim_spot_with_nothing_to_reclaim_answers_an_empty_list(endpoint):
    r = raw_call(endpoint, target=TARGET, body={})
    assert r.status == 200, r
    assert r.json == {"tasks": []}
    r = raw_call(endpoint, target=TARGET, body={"count": 2})
    assert r.status == 200 and r.json == {"tasks": []}, r


@pytest.mark.parametrize("body, error", [
    (b"{not json", "SerializationException"),
    (b"[1, 2]", "SerializationException"),
    ({"count": 0}, "InvalidParameterException"),
    ({"count": "all"}, "InvalidParameterException"),
    ({"cluster": 7}, "InvalidParameterException"),
    ({"cluster": "no-such-cluster"}, "ClusterNotFoundException"),
])
def test_reclaim_spot_rejects_bad_input(endpoint, body, error):
    r = raw_call(endpoint, target=TARGET, body=body)
    assert 400 <= r.status < 500, r
    assert r.json["__type"] == error, r.json


def test_admin_operations_need_a_signature_and_a_known_name(endpoint):
    r = raw_call(endpoint, target=TARGET, body={}, sign=False)
    assert r.status == 403, r
    r = raw_call(endpoint, target="FlotillaAdmin.ReclaimEverything", body={})
    assert r.status == 400 and r.json["__type"] == "UnknownOperationException", r.json
