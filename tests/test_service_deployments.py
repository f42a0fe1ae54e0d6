"""Service deployment history through boto3 against the session server (no Docker: the
services have desiredCount 0, which still creates deployments): ListServiceDeployments,
DescribeServiceDeployments, DescribeServiceRevisions and StopServiceDeployment."""

import pytest
from botocore.exceptions import ClientError

import helpers


def register(ecs, family, image):
    r = ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "app", "image": image, "memory": 64}],
    )
    return r["taskDefinition"]["taskDefinitionArn"]


def deployments(ecs, cluster, service, **kw):
    return ecs.list_service_deployments(cluster=cluster, service=service, **kw)["serviceDeployments"]


@pytest.fixture
def service(ecs):
    cluster = helpers.unique("sd")
    ecs.create_cluster(clusterName=cluster)
    family = helpers.unique("sdfam")
    td1 = register(ecs, family, "busybox:1")
    td2 = register(ecs, family, "busybox:2")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=td1, desiredCount=0)
    assert helpers.wait_until(
        lambda: [d["status"] for d in deployments(ecs, cluster, "web")] == ["SUCCESSFUL"]
    )
    ecs.update_service(cluster=cluster, service="web", taskDefinition=td2)
    yield cluster, td1, td2
    ecs.delete_service(cluster=cluster, service="web", force=True)


def test_list_newest_first_with_statuses(ecs, service):
    cluster, _, _ = service
    assert helpers.wait_until(
        lambda: [d["status"] for d in deployments(ecs, cluster, "web")] == ["SUCCESSFUL", "SUCCESSFUL"]
    )
    ds = deployments(ecs, cluster, "web")
    assert ds[0]["createdAt"] >= ds[1]["createdAt"]
    assert ds[0]["serviceDeploymentArn"].startswith(
        f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:service-deployment/{cluster}/web/"
    )
    assert ds[0]["clusterArn"].endswith(f":cluster/{cluster}")
    assert ds[0]["serviceArn"].endswith(f":service/{cluster}/web")
    assert len(deployments(ecs, cluster, "web", status=["IN_PROGRESS"])) == 0
    page = ecs.list_service_deployments(cluster=cluster, service="web", maxResults=1)
    assert len(page["serviceDeployments"]) == 1 and page["nextToken"]
    with pytest.raises(ClientError) as e:
        ecs.list_service_deployments(cluster=cluster, service="nope")
    assert e.value.response["Error"]["Code"] == "ServiceNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.list_service_deployments(cluster=helpers.unique("nocluster"), service="web")
    assert e.value.response["Error"]["Code"] == "ClusterNotFoundException"


def test_describe_deployments_and_revisions(ecs, service):
    cluster, td1, td2 = service
    assert helpers.wait_until(lambda: deployments(ecs, cluster, "web")[0]["status"] == "SUCCESSFUL")
    new, old = deployments(ecs, cluster, "web")
    missing = new["serviceDeploymentArn"].rsplit("/", 1)[0] + "/1"
    r = ecs.describe_service_deployments(serviceDeploymentArns=[new["serviceDeploymentArn"], missing])
    assert r["failures"] == [{"arn": missing, "reason": "MISSING"}]
    sd = r["serviceDeployments"][0]
    assert sd["status"] == "SUCCESSFUL"
    assert sd["targetServiceRevision"]["arn"] == new["targetServiceRevisionArn"]
    assert sd["targetServiceRevision"]["requestedTaskCount"] == 0
    assert [s["arn"] for s in sd["sourceServiceRevisions"]] == [old["targetServiceRevisionArn"]]
    assert sd["deploymentConfiguration"]["maximumPercent"] == 200

    revs = ecs.describe_service_revisions(
        serviceRevisionArns=[new["targetServiceRevisionArn"], old["targetServiceRevisionArn"]]
    )
    assert revs["failures"] == []
    by_td = {r["taskDefinition"]: r for r in revs["serviceRevisions"]}
    assert set(by_td) == {td1, td2}
    assert by_td[td2]["containerImages"] == [{"containerName": "app", "image": "busybox:2"}]
    assert by_td[td1]["containerImages"] == [{"containerName": "app", "image": "busybox:1"}]
    assert by_td[td2]["serviceRevisionArn"].startswith(
        f"arn:aws:ecs:{helpers.REGION}:{helpers.ACCOUNT}:service-revision/{cluster}/web/"
    )


def test_stop_completed_or_unknown(ecs, service):
    cluster, _, _ = service
    assert helpers.wait_until(lambda: deployments(ecs, cluster, "web")[0]["status"] == "SUCCESSFUL")
    done = deployments(ecs, cluster, "web")[0]["serviceDeploymentArn"]
    with pytest.raises(ClientError) as e:
        ecs.stop_service_deployment(serviceDeploymentArn=done, stopType="ROLLBACK")
    assert e.value.response["Error"]["Code"] == "ConflictException"
    unknown = done.rsplit("/", 1)[0] + "/1234567890123456789"
    with pytest.raises(ClientError) as e:
        ecs.stop_service_deployment(serviceDeploymentArn=unknown)
    assert e.value.response["Error"]["Code"] == "ServiceDeploymentNotFoundException"


def test_deployment_strategies_without_load_balancers_and_what_is_not_served_are_refused(ecs, service):
    cluster, td1, _ = service

    def refused(config, message, update=False, code="UnsupportedFeatureException"):
        with pytest.raises(ClientError) as e:
            if update:
                ecs.update_service(cluster=cluster, service="web", deploymentConfiguration=config)
            else:
                ecs.create_service(cluster=cluster, serviceName=helpers.unique("bg"), taskDefinition=td1,
                                   desiredCount=0, deploymentConfiguration=config)
        err = e.value.response["Error"]
        assert (err["Code"], err["Message"]) == (code, message)

    # BLUE_GREEN, LINEAR and CANARY move listener traffic: without load balancers they are
    # refused, never turned into a rolling update (tests/test_blue_green.py runs them).
    for strategy in ("BLUE_GREEN", "LINEAR", "CANARY"):
        refused({"strategy": strategy, "bakeTimeInMinutes": 1},
                f"The {strategy} deployment strategy requires a load balancer: specify loadBalancers with an advancedConfiguration (Service Connect is not supported by this Flotilla server).",
                code="InvalidParameterException")
    refused({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1},
            "The BLUE_GREEN deployment strategy requires a load balancer: specify loadBalancers with an advancedConfiguration (Service Connect is not supported by this Flotilla server).",
            update=True, code="InvalidParameterException")
    refused({"bakeTimeInMinutes": 5},
            "bakeTimeInMinutes is only valid with the BLUE_GREEN, LINEAR and CANARY deployment strategies.",
            code="InvalidParameterException")
    refused({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1, "lifecycleHooks": [
                {"hookTargetArn": "arn:aws:lambda:us-east-1:000000000000:function:f",
                 "roleArn": "arn:aws:iam::000000000000:role/r", "lifecycleStages": ["POST_SCALE_UP"]}]},
            "Deployment lifecycle hooks (deploymentConfiguration.lifecycleHooks) are not supported by this Flotilla server: AWS_LAMBDA hooks invoke AWS Lambda and PAUSE hooks wait for ContinueServiceDeployment, neither of which it serves.")
    # What is served is kept and shown: ROLLING, and an alarms block that is off.
    s = ecs.create_service(cluster=cluster, serviceName=helpers.unique("rolling"), taskDefinition=td1, desiredCount=0,
                           deploymentConfiguration={"strategy": "ROLLING",
                                                    "alarms": {"alarmNames": [], "enable": False, "rollback": False}})["service"]
    assert s["deploymentConfiguration"]["strategy"] == "ROLLING"
    assert s["deploymentConfiguration"]["alarms"]["enable"] is False
    ecs.delete_service(cluster=cluster, service=s["serviceName"], force=True)
    assert ecs.describe_services(cluster=cluster, services=["web"])["services"][0]["deploymentConfiguration"].get("strategy") != "BLUE_GREEN"


def test_service_options_not_served_are_refused_not_ignored(ecs, service):
    cluster, td1, _ = service
    cases = [
        ({"serviceConnectConfiguration": {"enabled": True, "namespace": "internal"}},
         "Service Connect (serviceConnectConfiguration) is not supported by this Flotilla server yet; use serviceRegistries (Cloud Map) and load balancers."),
        ({"volumeConfigurations": [{"name": "data", "managedEBSVolume": {"roleArn": "arn:aws:iam::000000000000:role/ebs"}}]},
         "Service-managed Amazon EBS volumes (volumeConfigurations) are not supported by this Flotilla server."),
    ]
    for extra, message in cases:
        for call in (
            lambda: ecs.create_service(cluster=cluster, serviceName=helpers.unique("opt"), taskDefinition=td1,
                                       desiredCount=0, **extra),
            lambda: ecs.update_service(cluster=cluster, service="web", **extra),
        ):
            with pytest.raises(ClientError) as e:
                call()
            err = e.value.response["Error"]
            assert (err["Code"], err["Message"]) == ("UnsupportedFeatureException", message)
    # Turning Service Connect off asks for nothing: accepted.
    ecs.update_service(cluster=cluster, service="web", serviceConnectConfiguration={"enabled": False})
