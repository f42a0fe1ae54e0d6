"""CloudWatch metrics end to end: the AWS/ECS utilization of a service that burns CPU, read with
`aws cloudwatch get-metric-statistics`, against what Docker's stats show for the same window;
alarms going OK -> ALARM -> OK on a custom metric; CloudWatch's errors for bad input.

One `flotilla server --metrics-period-seconds 5` and one agent sampling every second (shared
by the module), so a period is 5 s and alarms are evaluated every 5 s.
"""

import json
import os
import subprocess
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers
from fleet import IMAGE, Fleet, docker, instances_ready, wait_for

PERIOD = 5


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, test_image):
    f = Fleet(tmp_path_factory.mktemp("cw-fleet"), server_args=["--metrics-period-seconds", str(PERIOD)])
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
def cluster(fleet, ecs):
    name = helpers.unique("cw")
    ecs.create_cluster(clusterName=name)
    fleet.add_agent(name, extra_args=["--usage-interval-seconds", "1"])
    instances_ready(ecs, name, 1)
    return name


@pytest.fixture(scope="module")
def aws(fleet, aws_cli, tmp_path_factory):
    """Runs the aws CLI against the fleet; returns the parsed JSON output (or the process)."""
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=fleet.endpoint, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY, AWS_DEFAULT_REGION=helpers.REGION,
        AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_PAGER="", HOME=str(home),
    )

    def run(*args, check=True):
        out = subprocess.run([aws_cli, *args, "--output", "json"], capture_output=True, text=True, env=env,
                             timeout=120)
        if check:
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else {}
        return out

    return run


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def docker_cpu_percent(container):
    out = docker("stats", "--no-stream", "--format", "{{.CPUPerc}}", container)
    return float(out.strip().rstrip("%"))


def test_service_cpu_utilization_matches_docker_stats(fleet, ecs, cw, aws, cluster):
    family = helpers.unique("burn")
    ecs.register_task_definition(
        family=family, cpu="1024", memory="64",
        containerDefinitions=[{
            "name": "burn", "image": IMAGE, "essential": True, "cpu": 1024, "memory": 64,
            "command": ["sh", "-c", "while :; do :; done"],
        }],
    )
    service = helpers.unique("svc")
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=family, desiredCount=1)

    def running():
        arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
        if not arns:
            return None
        t = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"][0]
        return t if t["lastStatus"] == "RUNNING" else None

    task = wait_for(running, timeout=120, what="the service's task RUNNING")
    container = task["containers"][0]["runtimeId"]
    # Let the first periods pass, then measure a window of whole periods with both.
    time.sleep(PERIOD * 2)
    start = (int(time.time()) // PERIOD + 1) * PERIOD
    while time.time() < start:
        time.sleep(0.1)
    end = start + 4 * PERIOD
    docker_samples = []
    while time.time() < end:
        docker_samples.append(docker_cpu_percent(container))
    docker_avg = sum(docker_samples) / len(docker_samples)

    dims = [f"Name=ClusterName,Value={cluster}", f"Name=ServiceName,Value={service}"]

    def stats():
        out = aws("cloudwatch", "get-metric-statistics", "--namespace", "AWS/ECS",
                  "--metric-name", "CPUUtilization", "--dimensions", *dims,
                  "--start-time", str(start), "--end-time", str(end), "--period", str(PERIOD),
                  "--statistics", "Average", "Maximum", "SampleCount")
        return out if len(out["Datapoints"]) == 4 else None

    out = wait_for(stats, timeout=4 * PERIOD, what="four periods of CPUUtilization")
    assert out["Label"] == "CPUUtilization"
    assert all(d["Unit"] == "Percent" for d in out["Datapoints"])
    ecs_avg = sum(d["Average"] for d in out["Datapoints"]) / 4
    print(f"docker stats {docker_avg:.1f} % ({len(docker_samples)} samples), CloudWatch {ecs_avg:.1f} %")
    assert ecs_avg > 10, "a busy loop shows as busy"
    assert abs(ecs_avg - docker_avg) <= 10, (ecs_avg, docker_avg, out["Datapoints"])

    # The same figures through GetMetricData, and the cluster's figures beside them.
    data = cw.get_metric_data(
        StartTime=start, EndTime=end,
        MetricDataQueries=[{
            "Id": "cpu", "MetricStat": {
                "Metric": {"Namespace": "AWS/ECS", "MetricName": "CPUUtilization",
                           "Dimensions": [{"Name": "ClusterName", "Value": cluster},
                                          {"Name": "ServiceName", "Value": service}]},
                "Period": PERIOD, "Stat": "Average"},
        }],
    )["MetricDataResults"][0]
    assert data["StatusCode"] == "Complete" and len(data["Values"]) == 4
    assert data["Timestamps"] == sorted(data["Timestamps"], reverse=True)
    assert abs(sum(data["Values"]) / 4 - ecs_avg) < 1e-6
    listed = cw.list_metrics(Namespace="AWS/ECS", Dimensions=[{"Name": "ClusterName", "Value": cluster}])["Metrics"]
    names = {(m["MetricName"], len(m["Dimensions"])) for m in listed}
    assert {("CPUUtilization", 2), ("MemoryUtilization", 2), ("CPUUtilization", 1),
            ("CPUReservation", 1), ("MemoryReservation", 1)} <= names
    reservation = cw.get_metric_statistics(
        Namespace="AWS/ECS", MetricName="CPUReservation",
        Dimensions=[{"Name": "ClusterName", "Value": cluster}],
        StartTime=start, EndTime=end, Period=PERIOD, Statistics=["Average"])["Datapoints"]
    assert reservation and all(d["Average"] > 0 for d in reservation)

    # The same figures in /metrics for Prometheus (the service's, its task's, its instance's)
    # and in `flotilla top`, while the task still burns.
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    instance_id = task["containerInstanceArn"].rsplit("/", 1)[-1]

    def gauge(text, name, **labels):
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name}{{{want}}} in /metrics")

    def scrape():
        with urllib.request.urlopen(f"{fleet.endpoint}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def same_period_figures():
        # /metrics shows the last complete period's figure: the same one CloudWatch answers for
        # that period (a scrape straddling a period boundary, or one before the period was
        # recorded, is taken again).
        before = time.time()
        text = scrape()
        if int(before) // PERIOD != int(time.time()) // PERIOD:
            return None
        try:
            service_cpu = gauge(text, "flotilla_ecs_utilization_percent", cluster=cluster, service=service,
                                metric="CPUUtilization")
        except AssertionError:
            return None
        period_end = int(before) // PERIOD * PERIOD
        points = cw.get_metric_statistics(
            Namespace="AWS/ECS", MetricName="CPUUtilization",
            Dimensions=[{"Name": "ClusterName", "Value": cluster}, {"Name": "ServiceName", "Value": service}],
            StartTime=period_end - PERIOD, EndTime=period_end, Period=PERIOD, Statistics=["Average"])["Datapoints"]
        return (text, service_cpu, points[0]["Average"]) if len(points) == 1 else None

    text, service_cpu, cloudwatch_cpu = wait_for(same_period_figures, timeout=6 * PERIOD,
                                                 what="/metrics and CloudWatch on the same period")
    task_cpu = gauge(text, "flotilla_task_cpu_utilization_percent", cluster=cluster, service=service, task=task_id)
    instance_cpu = gauge(text, "flotilla_container_instance_cpu_utilization_percent", cluster=cluster,
                         container_instance=instance_id)
    print(f"/metrics: service {service_cpu:.1f} % (CloudWatch, same period: {cloudwatch_cpu:.1f} %), "
          f"task {task_cpu:.1f} %, instance {instance_cpu:.1f} %")
    assert abs(service_cpu - cloudwatch_cpu) < 1e-6
    # The latest sample of a busy loop held to one core, and its share of a two-core host.
    assert 10 < task_cpu <= 110, task_cpu
    assert 0 < instance_cpu <= 100, instance_cpu
    cli_env = dict(os.environ, AWS_ACCESS_KEY_ID=helpers.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=helpers.SECRET_KEY,
                   AWS_DEFAULT_REGION=helpers.REGION)
    cli_env.pop("AWS_SESSION_TOKEN", None)
    top = subprocess.run([str(helpers.FLOTILLA_BIN), "top", "--endpoint", fleet.endpoint, "--cluster", cluster,
                          "--service", service, "--output", "json"],
                         capture_output=True, text=True, timeout=30, env=cli_env)
    assert top.returncode == 0, top.stderr
    shown = json.loads(top.stdout)
    row = next(r for r in shown["services"] if r["service"] == service)
    assert 10 < row["percent"]["CPUUtilization"] <= 110, row
    assert [t["task"] for t in shown["tasks"]] == [task_id]
    table = subprocess.run([str(helpers.FLOTILLA_BIN), "top", "--endpoint", fleet.endpoint, "--cluster", cluster,
                            "--once"], capture_output=True, text=True, timeout=30, env=cli_env)
    assert table.returncode == 0, table.stderr
    assert service in table.stdout and "CPU%" in table.stdout and instance_id in table.stdout
    ecs.update_service(cluster=cluster, service=service, desiredCount=0)


def test_an_alarm_goes_ok_alarm_ok_on_a_custom_metric(cw):
    name = helpers.unique("alarm")
    dims = [{"Name": "Host", "Value": "a"}]
    cw.put_metric_alarm(
        AlarmName=name, Namespace="Flotilla/Test", MetricName="Load", Dimensions=dims,
        Statistic="Average", Period=PERIOD, EvaluationPeriods=1, Threshold=50,
        ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore",
    )
    alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert alarm["StateReason"] == "Unchecked: Initial alarm creation"
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:{helpers.REGION}:{helpers.ACCOUNT}:alarm:{name}"

    def state_after_putting(value, want):
        def check():
            cw.put_metric_data(Namespace="Flotilla/Test", MetricData=[
                {"MetricName": "Load", "Dimensions": dims, "Value": value, "Unit": "Percent"}])
            a = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
            return a if a["StateValue"] == want else None
        return wait_for(check, timeout=6 * PERIOD, interval=1, what=f"the alarm in {want}")

    high = state_after_putting(90, "ALARM")
    assert "was greater than the threshold (50.0)" in high["StateReason"], high["StateReason"]
    assert json.loads(high["StateReasonData"])["threshold"] == 50
    assert cw.describe_alarms(StateValue="ALARM", AlarmNamePrefix=name)["MetricAlarms"][0]["AlarmName"] == name
    low = state_after_putting(10, "OK")
    assert "was not greater than the threshold" in low["StateReason"]
    assert low["StateUpdatedTimestamp"] > high["StateUpdatedTimestamp"]
    cw.delete_alarms(AlarmNames=[name])
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []


def test_bad_input_gets_cloudwatchs_errors(cw, aws):
    now = int(time.time())
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="AWS/ECS", MetricData=[{"MetricName": "CPUUtilization", "Value": 1}])
    assert code(e) == "InvalidParameterValueException"
    assert "AWS/ECS for parameter Namespace is invalid" in str(e.value)
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="Custom", MetricData=[
            {"MetricName": "ok", "Value": 1},
            {"MetricName": "bad", "Value": 1, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}},
        ])
    assert code(e) == "InvalidParameterCombinationException"
    # Nothing half-written: the valid datum of the refused call was not recorded.
    assert cw.list_metrics(Namespace="Custom", MetricName="ok")["Metrics"] == []
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace="Custom", MetricName="x", StartTime=now - 60, EndTime=now,
                                 Period=PERIOD + 2, Statistics=["Average"])
    assert code(e) == "InvalidParameterValueException"
    assert f"multiple of {PERIOD}" in str(e.value)
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace="Custom", MetricName="x", StartTime=now, EndTime=now - 60,
                                 Period=PERIOD, Statistics=["Average"])
    assert "StartTime must be less than the parameter EndTime" in str(e.value)
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(StartTime=now - 60, EndTime=now,
                           MetricDataQueries=[{"Id": "e1", "Expression": "SUM(METRICS())"}])
    assert code(e) == "InvalidParameterValueException" and "Metric math" in str(e.value)
    with pytest.raises(ClientError) as e:
        cw.put_metric_alarm(AlarmName="x", Namespace="N", MetricName="M", Statistic="Average", Period=PERIOD,
                            EvaluationPeriods=1, DatapointsToAlarm=2, Threshold=1,
                            ComparisonOperator="GreaterThanThreshold")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        cw.put_metric_alarm(AlarmName="x", Namespace="N", MetricName="M", Statistic="Average", Period=PERIOD,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
                            AlarmActions=["arn:aws:sns:us-east-1:123456789012:topic"])
    assert "only name Application Auto Scaling policies" in str(e.value)
    with pytest.raises(ClientError) as e:
        cw.delete_alarms(AlarmNames=[helpers.unique("missing")])
    assert code(e) == "ResourceNotFound"
    with pytest.raises(ClientError) as e:
        cw.list_dashboards()
    assert code(e) == "UnsupportedOperationException" and "ListDashboards" in str(e.value)
    # The aws CLI shows the same refusal.
    out = aws("cloudwatch", "put-metric-data", "--namespace", "AWS/Custom", "--metric-name", "m", "--value", "1",
              check=False)
    assert out.returncode != 0 and "for parameter Namespace is invalid" in out.stderr
