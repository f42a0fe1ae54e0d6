"""Application Auto Scaling for ECS services, end to end, and deployment alarms.

One `flotilla server --metrics-period-seconds 5` and one agent sampling every second (shared by
the module): a period is 5 s, so alarms are evaluated and cooldowns counted in 5 s periods (a
300 s cooldown lasts 25 s). The API through boto3 and the aws CLI (targets, policies, their
CloudWatch alarms, activities, errors); a target tracking policy at 50% CPU scaling a burning
service of 1 out to 4 and back in to 1 when the load stops (issue 17, acceptance 2); a step
policy driven by PutMetricData; a deployment whose alarm goes to ALARM failing and rolling back
(acceptance 3).
"""

import json
import os
import re
import subprocess

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers
from fleet import IMAGE, Fleet, instances_ready, wait_for

PERIOD = 5
DIM = "ecs:service:DesiredCount"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("as-fleet"), server_args=["--metrics-period-seconds", str(PERIOD)])
    yield f
    f.close()


def client(fleet, service):
    return boto3.client(
        service, endpoint_url=fleet.endpoint, region_name=helpers.REGION,
        aws_access_key_id=helpers.ACCESS_KEY, aws_secret_access_key=helpers.SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def ecs(fleet):
    return client(fleet, "ecs")


@pytest.fixture(scope="module")
def cw(fleet):
    return client(fleet, "cloudwatch")


@pytest.fixture(scope="module")
def aas(fleet):
    return client(fleet, "application-autoscaling")


@pytest.fixture(scope="module")
def cluster(fleet, ecs):
    name = helpers.unique("as")
    ecs.create_cluster(clusterName=name)
    fleet.add_agent(name, extra_args=["--usage-interval-seconds", "1"])
    instances_ready(ecs, name, 1)
    return name


@pytest.fixture(scope="module")
def aws(fleet, aws_cli, tmp_path_factory):
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=fleet.endpoint, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY, AWS_DEFAULT_REGION=helpers.REGION,
        AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_PAGER="", HOME=str(home),
    )

    def run(*args):
        out = subprocess.run([aws_cli, *args, "--output", "json"], capture_output=True, text=True, env=env,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    return run


def error(excinfo):
    e = excinfo.value.response["Error"]
    return e["Code"], e["Message"]


def task_definition(ecs, family, command, cpu="256"):
    return ecs.register_task_definition(
        family=family, cpu=cpu, memory="64",
        containerDefinitions=[{
            "name": "app", "image": IMAGE, "essential": True, "memory": 64,
            "command": ["sh", "-c", command], "stopTimeout": 2,
        }],
    )["taskDefinition"]["taskDefinitionArn"]


BURN = "while :; do :; done"
SLEEP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def service(ecs, cluster, name):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def activities(aas, resource):
    return aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=resource)["ScalingActivities"]


def test_targets_policies_and_their_alarms_through_the_api(ecs, aas, cw, aws, cluster):
    td = task_definition(ecs, helpers.unique("api"), SLEEP)
    name = helpers.unique("svc")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=0)
    resource = f"service/{cluster}/{name}"

    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=f"service/{cluster}/nope",
                                     ScalableDimension=DIM, MinCapacity=0, MaxCapacity=2)
    assert error(e) == ("ValidationException", f"ECS service doesn't exist: service/{cluster}/nope")
    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(ServiceNamespace="dynamodb", ResourceId="table/t",
                                     ScalableDimension="dynamodb:table:ReadCapacityUnits", MinCapacity=1, MaxCapacity=2)
    assert error(e)[0] == "ValidationException" and "'dynamodb'" in error(e)[1]
    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM,
                                     MinCapacity=3, MaxCapacity=1)
    assert error(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        aas.put_scaling_policy(PolicyName="p", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={"TargetValue": 50.0, "PredefinedMetricSpecification": {
                                   "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}})
    assert error(e)[0] == "ObjectNotFoundException"

    arn = aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM,
                                       MinCapacity=0, MaxCapacity=2)["ScalableTargetARN"]
    assert re.fullmatch(rf"arn:aws:application-autoscaling:{helpers.REGION}:{helpers.ACCOUNT}:scalable-target/[0-9a-f]{{36}}", arn)
    # Registering again changes what is given and keeps the rest.
    aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM, MaxCapacity=3,
                                 SuspendedState={"DynamicScalingInSuspended": True})
    listed = aws("application-autoscaling", "describe-scalable-targets", "--service-namespace", "ecs",
                 "--resource-ids", resource)["ScalableTargets"]
    assert len(listed) == 1
    t = listed[0]
    assert (t["MinCapacity"], t["MaxCapacity"], t["ScalableTargetARN"]) == (0, 3, arn)
    assert t["SuspendedState"] == {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": False,
                                   "ScheduledScalingSuspended": False}

    tracking = {"TargetValue": 50.0, "ScaleOutCooldown": 60, "ScaleInCooldown": 120,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}
    put = aas.put_scaling_policy(PolicyName="cpu50", ServiceNamespace="ecs", ResourceId=resource,
                                 ScalableDimension=DIM, PolicyType="TargetTrackingScaling",
                                 TargetTrackingScalingPolicyConfiguration=tracking)
    policy_arn = put["PolicyARN"]
    assert re.fullmatch(rf"arn:aws:autoscaling:{helpers.REGION}:{helpers.ACCOUNT}:scalingPolicy:[0-9a-f-]{{36}}"
                        rf":resource/ecs/{resource}:policyName/cpu50", policy_arn)
    names = sorted(a["AlarmName"] for a in put["Alarms"])
    assert len(names) == 2
    assert re.fullmatch(rf"TargetTracking-{resource}-AlarmHigh-[0-9a-f-]{{36}}", names[0])
    assert re.fullmatch(rf"TargetTracking-{resource}-AlarmLow-[0-9a-f-]{{36}}", names[1])
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNames=names)["MetricAlarms"]}
    high, low = alarms[names[0]], alarms[names[1]]
    assert (high["Threshold"], high["EvaluationPeriods"], high["ComparisonOperator"]) == (50.0, 3, "GreaterThanThreshold")
    assert (low["Threshold"], low["EvaluationPeriods"], low["ComparisonOperator"]) == (45.0, 15, "LessThanThreshold")
    assert high["Period"] == PERIOD and high["Namespace"] == "AWS/ECS" and high["MetricName"] == "CPUUtilization"
    assert sorted((d["Name"], d["Value"]) for d in high["Dimensions"]) == [("ClusterName", cluster), ("ServiceName", name)]
    assert high["AlarmActions"] == [policy_arn] == low["AlarmActions"]

    # An update keeps the ARN and the alarm names; without scale-in AlarmLow goes.
    again = aas.put_scaling_policy(PolicyName="cpu50", ServiceNamespace="ecs", ResourceId=resource,
                                   ScalableDimension=DIM, PolicyType="TargetTrackingScaling",
                                   TargetTrackingScalingPolicyConfiguration=dict(tracking, DisableScaleIn=True))
    assert again["PolicyARN"] == policy_arn
    assert [a["AlarmName"] for a in again["Alarms"]] == [names[0]]
    assert cw.describe_alarms(AlarmNames=[names[1]])["MetricAlarms"] == []

    steps = {"AdjustmentType": "ChangeInCapacity", "Cooldown": 60,
             "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]}
    step_arn = aas.put_scaling_policy(PolicyName="steps", ServiceNamespace="ecs", ResourceId=resource,
                                      ScalableDimension=DIM, PolicyType="StepScaling",
                                      StepScalingPolicyConfiguration=steps)["PolicyARN"]
    alarm = helpers.unique("queue")
    cw.put_metric_alarm(AlarmName=alarm, Namespace="Flotilla/Test", MetricName="Queue", Statistic="Average",
                        Period=PERIOD, EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold",
                        AlarmActions=[step_arn])
    policies = {p["PolicyName"]: p for p in aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource)["ScalingPolicies"]}
    assert set(policies) == {"cpu50", "steps"}
    assert [a["AlarmName"] for a in policies["steps"]["Alarms"]] == [alarm]
    assert policies["steps"]["StepScalingPolicyConfiguration"] == steps
    assert policies["cpu50"]["TargetTrackingScalingPolicyConfiguration"]["DisableScaleIn"] is True

    bad = [
        ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
                {"MetricIntervalLowerBound": 5, "ScalingAdjustment": 2}]}}, "overlap"),
        ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {"StepAdjustments": [
            {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]}}, "AdjustmentType"),
        ({"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 50.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "DynamoDBReadCapacityUtilization"}}},
         "DynamoDBReadCapacityUtilization"),
        ({"PolicyType": "PredictiveScaling"}, "PredictiveScaling"),
    ]
    for extra, words in bad:
        with pytest.raises(ClientError) as e:
            aas.put_scaling_policy(PolicyName="bad", ServiceNamespace="ecs", ResourceId=resource,
                                   ScalableDimension=DIM, **extra)
        assert error(e)[0] == "ValidationException" and words in error(e)[1], error(e)
    with pytest.raises(ClientError) as e:
        aas.put_scheduled_action(ServiceNamespace="ecs", ScheduledActionName="nightly", ResourceId=resource,
                                 ScalableDimension=DIM, Schedule="cron(0 0 * * ? *)")
    assert error(e)[0] == "ValidationException" and "PutScheduledAction is not supported" in error(e)[1]
    with pytest.raises(ClientError) as e:
        aas.describe_scaling_activities(ServiceNamespace="ecs", IncludeNotScaledActivities=True)
    assert error(e)[0] == "ValidationException"

    aas.delete_scaling_policy(PolicyName="cpu50", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM)
    assert cw.describe_alarms(AlarmNames=[names[0]])["MetricAlarms"] == []
    with pytest.raises(ClientError) as e:
        aas.delete_scaling_policy(PolicyName="cpu50", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM)
    assert error(e)[0] == "ObjectNotFoundException"
    aas.deregister_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM)
    assert aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource)["ScalingPolicies"] == []
    assert aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])["ScalableTargets"] == []
    with pytest.raises(ClientError) as e:
        aas.deregister_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM)
    assert error(e) == ("ObjectNotFoundException",
                        f"No scalable target registered for service namespace: ecs, resource ID: {resource}, "
                        "scalable dimension: ecs:service:DesiredCount")
    cw.delete_alarms(AlarmNames=[alarm])
    ecs.delete_service(cluster=cluster, service=name, force=True)


def test_target_tracking_scales_a_burning_service_out_and_back_in(ecs, aas, cluster):
    """Acceptance 2: 50% CPU, min 1, max 4; the busy loop takes each task's 0.25 vCPU (100%)."""
    family = helpers.unique("burn")
    burn = task_definition(ecs, family, BURN)
    name = helpers.unique("web")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=burn, desiredCount=1)
    resource = f"service/{cluster}/{name}"
    aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM,
                                 MinCapacity=1, MaxCapacity=4)
    aas.put_scaling_policy(
        PolicyName="cpu50", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0, "ScaleOutCooldown": 60, "ScaleInCooldown": 60,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}})

    def at(count):
        s = service(ecs, cluster, name)
        return s if s["desiredCount"] == count and s["runningCount"] == count else None

    wait_for(lambda: at(4), timeout=300, interval=2, what="the service scaled out to 4")
    out = [a for a in activities(aas, resource) if "AlarmHigh" in a["Cause"]]
    assert out, activities(aas, resource)
    for a in out:
        assert re.fullmatch(r"Setting desired count to [234]\.", a["Description"]), a
        assert re.fullmatch(rf"monitor alarm TargetTracking-{resource}-AlarmHigh-[0-9a-f-]{{36}} in state ALARM "
                            r"triggered policy cpu50", a["Cause"]), a
        assert a["StatusCode"] == "Successful"
    assert out[0]["Description"] == "Setting desired count to 4."

    # The load stops: the service moves to a task definition that sleeps.
    sleep = task_definition(ecs, family, SLEEP)
    ecs.update_service(cluster=cluster, service=name, taskDefinition=sleep)
    wait_for(lambda: at(1), timeout=400, interval=2, what="the service scaled back in to 1")
    back = [a for a in activities(aas, resource) if "AlarmLow" in a["Cause"]]
    assert back and back[0]["Description"] == "Setting desired count to 1.", activities(aas, resource)
    assert back[0]["StatusCode"] == "Successful"
    assert back[0]["StatusMessage"] == "Successfully set desired count to 1. Change successfully fulfilled by ecs."
    aas.deregister_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM)
    ecs.update_service(cluster=cluster, service=name, desiredCount=0)


def test_a_step_policy_follows_its_alarm(ecs, aas, cw, cluster):
    td = task_definition(ecs, helpers.unique("step"), SLEEP, cpu="128")
    name = helpers.unique("worker")
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=1)
    resource = f"service/{cluster}/{name}"
    aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM,
                                 MinCapacity=1, MaxCapacity=3)
    arn = aas.put_scaling_policy(
        PolicyName="queue", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity", "Cooldown": 600,
                                        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 2}]},
    )["PolicyARN"]
    alarm = helpers.unique("backlog")
    dims = [{"Name": "Queue", "Value": name}]
    cw.put_metric_alarm(AlarmName=alarm, Namespace="Flotilla/Test", MetricName="Backlog", Dimensions=dims,
                        Statistic="Average", Period=PERIOD, EvaluationPeriods=1, Threshold=10,
                        ComparisonOperator="GreaterThanThreshold", AlarmActions=[arn])

    def scaled():
        cw.put_metric_data(Namespace="Flotilla/Test", MetricData=[{"MetricName": "Backlog", "Dimensions": dims, "Value": 50}])
        return service(ecs, cluster, name)["desiredCount"] == 3

    wait_for(scaled, timeout=60, interval=1, what="the step policy to add 2 tasks")
    a = activities(aas, resource)[0]
    assert a["Description"] == "Setting desired count to 3."
    assert a["Cause"] == f"monitor alarm {alarm} in state ALARM triggered policy queue"
    cw.delete_alarms(AlarmNames=[alarm])
    aas.deregister_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIM)
    ecs.update_service(cluster=cluster, service=name, desiredCount=0)


def test_a_deployment_whose_alarm_goes_to_alarm_fails_and_rolls_back(ecs, cw, cluster):
    """Acceptance 3."""
    family = helpers.unique("dep")
    v1 = task_definition(ecs, family, SLEEP, cpu="128")
    v2 = task_definition(ecs, family, SLEEP + " # v2", cpu="128")
    alarm = helpers.unique("errors")
    dims = [{"Name": "Service", "Value": alarm}]
    # One breaching period of three alarms: the bake time (Period x EvaluationPeriods, 15 s) is
    # longer than the alarm takes to fire (the period's end plus half a period, at most 7.5 s), so
    # v2 cannot complete before its alarm is seen, however fast its task starts.
    cw.put_metric_alarm(AlarmName=alarm, Namespace="Flotilla/Test", MetricName="Errors", Dimensions=dims,
                        Statistic="Sum", Period=PERIOD, EvaluationPeriods=3, DatapointsToAlarm=1, Threshold=1,
                        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    name = helpers.unique("api")
    with pytest.raises(ClientError) as e:
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=v1, desiredCount=1,
                           deploymentConfiguration={"alarms": {"alarmNames": [], "enable": True, "rollback": True}})
    assert error(e)[0] == "InvalidParameterException"
    config = {"alarms": {"alarmNames": [alarm], "enable": True, "rollback": True}}
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=v1, desiredCount=1,
                       deploymentConfiguration=config)

    def steady_on(td):
        s = service(ecs, cluster, name)
        d = s["deployments"]
        ok = len(d) == 1 and d[0]["rolloutState"] == "COMPLETED" and d[0]["taskDefinition"] == td and s["runningCount"] == 1
        return s if ok else None

    first = wait_for(lambda: steady_on(v1), timeout=120, interval=1, what="the first deployment COMPLETED")
    assert first["deploymentConfiguration"]["alarms"] == config["alarms"]
    first_id = first["deployments"][0]["id"]
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v2)

    def rolled_back():
        cw.put_metric_data(Namespace="Flotilla/Test", MetricData=[{"MetricName": "Errors", "Dimensions": dims, "Value": 5}])
        s = service(ecs, cluster, name)
        failed = [d for d in s["deployments"] if d["rolloutState"] == "FAILED"]
        p = s["deployments"][0]
        if failed and p["taskDefinition"] == v1 and p["id"] != first_id:
            return s, failed[0]
        return None

    s, failed = wait_for(rolled_back, timeout=90, interval=1, what="the alarm to fail the deployment")
    assert failed["taskDefinition"] == v2
    assert failed["rolloutStateReason"] == f"ECS deployment failed: alarm(s) {alarm} in ALARM."
    assert s["deployments"][0]["rolloutStateReason"] == f"ECS deployment alarms: rolling back to deploymentId {first_id}."
    messages = [e["message"] for e in s["events"]]
    assert f"(service {name}) (deployment {failed['id']}) deployment failed: alarm(s) {alarm} in ALARM." in messages
    assert f"(service {name}) rolling back to deployment {first_id}." in messages
    # The alarm returns to OK without data; the rollback completes on v1.
    s = wait_for(lambda: steady_on(v1), timeout=120, interval=1, what="steady on v1 after the rollback")
    assert s["taskDefinition"] == v1
    cw.delete_alarms(AlarmNames=[alarm])
    ecs.update_service(cluster=cluster, service=name, desiredCount=0)
