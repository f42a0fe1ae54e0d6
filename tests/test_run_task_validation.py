"""RunTask refuses, with a clear InvalidParameterException, what Flotilla's container agent
cannot run, instead of accepting the task and failing it later."""

import pytest
from botocore.exceptions import ClientError

import helpers

CASES = [
    ("gpu", {"resourceRequirements": [{"type": "GPU", "value": "1"}]}, "GPU"),
    ("envfiles", {"environmentFiles": [{"value": "arn:aws:s3:::b/f.env", "type": "s3"}]}, "environmentFiles"),
]


@pytest.mark.parametrize("name,extra,word", CASES, ids=[c[0] for c in CASES])
def test_run_task_refuses_what_the_agent_cannot_run(ecs, name, extra, word):
    cluster = helpers.unique("c")
    ecs.create_cluster(clusterName=cluster)
    family = helpers.unique(name)
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "main", "image": "flotilla/busybox:latest", "memory": 16, **extra}],
    )
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster=cluster, taskDefinition=family)
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidParameterException"
    assert word in err["Message"] and "cannot run this task" in err["Message"], err["Message"]
    assert ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"] == []
