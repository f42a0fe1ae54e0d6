"""The web console in a real headless browser (Debian's chromium, driven through chromedriver
with tests/webdriver.py) against `flotilla dev` with its in-process agent on real Docker.

- a bad sign-in is refused and sets no session; pages need one;
- a person signs in with the server's access key pair, sees the cluster and its capacity,
  creates a service with the console's form, and watches it reach a steady state on the
  service page, which updates itself without a reload, and its CPU and memory utilization
  chart drawn from the service's AWS/ECS metrics (5-second periods here); opens a task's page and reads its
  container's CloudWatch Logs; stops a task and scales the service to 0 with the console;
  reads a task definition's JSON; signs out;
- a form without the session's CSRF token, or from another site, is refused.

Screenshots of each page are saved to $FLOTILLA_SCREENSHOTS (default tests/screenshots/, which
git ignores); the run's summary prints the directory."""

import http.client
import os
import signal
import urllib.parse
from pathlib import Path

import pytest

import helpers
from conftest import make_client
from fleet import IMAGE, cluster_containers, docker, instances_ready, wait_for
from webdriver import Browser

PERIOD = 5
SCREENSHOTS = Path(os.environ.get("FLOTILLA_SCREENSHOTS", helpers.TESTS_DIR / "screenshots"))


@pytest.fixture(scope="module")
def cluster():
    return helpers.unique("console")


@pytest.fixture(scope="module")
def server(tmp_path_factory, test_image, cluster):
    d = tmp_path_factory.mktemp("console")
    s = helpers.Server(d / "data", d / "dev.log", agent=True, extra_args=[
        "--cluster", cluster,
        # Utilization in 5-second periods, sampled every second: the charts fill in seconds.
        "--metrics-period-seconds", str(PERIOD), "--usage-interval-seconds", "1",
    ])
    yield s
    s.kill(signal.SIGTERM)
    s.remove_warm_containers()
    ids = cluster_containers(cluster)
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)


@pytest.fixture(scope="module")
def ecs(server, cluster):
    client = make_client(server.endpoint, retries=3)
    instances_ready(client, cluster, 1)
    return client


@pytest.fixture(scope="module")
def shots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    helpers.REPORT["console screenshots"] = str(SCREENSHOTS)

    def save(browser, name, **kw):
        return browser.screenshot(str(SCREENSHOTS / f"console-{name}.png"), **kw)

    return save


@pytest.fixture
def browser():
    with Browser() as b:
        yield b


def sign_in(browser, endpoint, secret=helpers.SECRET_KEY, path="/console/clusters"):
    browser.get(endpoint + path)
    browser.wait_for(lambda: "/console/signin" in browser.url, what="the sign-in page")
    browser.find("#accessKeyId").send_keys(helpers.ACCESS_KEY)
    browser.find("#secretAccessKey").send_keys(secret)
    browser.find("#signin").click()


def session_cookie(browser):
    return [c for c in browser.cookies() if c["name"] == "flotilla_console"]


def test_a_bad_sign_in_is_refused(server, ecs, browser, shots):
    sign_in(browser, server.endpoint, secret="not-the-secret")
    alert = browser.wait_for(lambda: browser.text("#signin-error"), what="the refusal")
    assert "not a key pair of this server" in alert
    assert "/console/signin" in browser.url
    assert session_cookie(browser) == []
    shots(browser, "signin-refused")
    # Without a session every page sends the browser to sign in, and comes back after.
    browser.get(server.endpoint + "/console/task-definitions")
    browser.wait_for(lambda: "/console/signin?next=%2Fconsole%2Ftask-definitions" in browser.url,
                     what="the sign-in page")


def test_sign_in_create_a_service_and_watch_it_reach_a_steady_state(server, ecs, cluster, browser, shots):
    family = helpers.unique("console-web")
    group = f"/console/{family}"
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{
            "name": "web", "image": IMAGE, "cpu": 64, "memory": 32, "essential": True, "stopTimeout": 1,
            # A little work each second, so the CPU line has something to show.
            "command": ["sh", "-c", "echo hello from the console; while true; do echo tick; "
                        "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 1; done"],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": group, "awslogs-region": helpers.REGION,
                "awslogs-stream-prefix": "app", "awslogs-create-group": "true"}},
        }],
    )
    sign_in(browser, server.endpoint)
    browser.wait_for(lambda: browser.url.endswith("/console/clusters"), what="the cluster list")
    (cookie,) = session_cookie(browser)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # The cluster, with its capacity: the in-process agent's host registered CPU and memory.
    card = browser.wait_for(lambda: [e for e in browser.find_all(".card") if cluster in e.text],
                            what="the cluster's card")[0].text
    assert "CPU units reserved" in card and "Instances (connected)\n1 (1)" in card, card
    shots(browser, "clusters")
    browser.find(f"a.cluster-link[href='/console/clusters/{cluster}']").click()
    browser.wait_for(lambda: browser.title.startswith(cluster), what="the cluster page")
    assert "CONNECTED" in browser.text("#instances")
    shots(browser, "cluster")

    # Create a service with the console's form.
    service = helpers.unique("svc")
    browser.find("#serviceName").send_keys(service)
    browser.find(f"#taskDefinition option[value='{family}:1']").click()
    desired = browser.find("#desiredCount")
    desired.clear()
    desired.send_keys("2")
    browser.find("#create-service-submit").click()
    browser.wait_for(lambda: browser.url.endswith(f"/console/clusters/{cluster}/services/{service}"),
                     what="the service page")
    # The console created it through the API: the service is what the form said.
    (svc,) = ecs.describe_services(cluster=cluster, services=[service])["services"]
    assert (svc["desiredCount"], svc["launchType"]) == (2, "EC2")
    assert svc["taskDefinition"].endswith(f"task-definition/{family}:1")

    # Watch the rollout on the page, which refreshes itself: no reload happens (the marker
    # set on this document survives).
    browser.execute("window.__notReloaded = true")
    browser.wait_for(lambda: browser.text("#running-count") == "2", timeout=90, what="2 running tasks")
    browser.wait_for(lambda: "COMPLETED" in browser.text("#deployments"), timeout=90,
                     what="the deployment COMPLETED")
    browser.wait_for(lambda: "has reached a steady state" in browser.text("#events"), timeout=90,
                     what="the steady-state event")
    # The service's utilization chart, drawn from its AWS/ECS metrics as they come in.
    browser.wait_for(lambda: browser.find_all("#utilization svg.chart polyline"), timeout=90,
                     what="the utilization chart with a line")
    assert "CPU and memory utilization of service" in browser.source
    assert "Memory" in browser.text("#utilization")
    assert browser.execute("return window.__notReloaded === true")
    shots(browser, "service")
    # The same page on a phone.
    browser.resize(390, 844)
    shots(browser, "service-phone", full_page=False)
    browser.resize(1280, 1000)

    # A task's page: its container, and its logs read from CloudWatch Logs.
    link = browser.find("#tasks-table a[href*='/tasks/']")
    task_id = link.text
    link.click()
    browser.wait_for(lambda: browser.title.startswith(f"Task {task_id}"), what="the task page")
    assert "RUNNING" in browser.text("#containers")
    logs = browser.wait_for(lambda: (lambda t: t if "hello from the console" in t else None)(browser.text("#logs")),
                            timeout=60, what="the container's log lines")
    assert f"{group} / app/web/{task_id}" in logs
    shots(browser, "task")

    # Stop it from the console: the API records the console's reason.
    browser.find("#stop-task-submit").click()
    browser.wait_for(lambda: "STOPPED" in browser.text("#task-status"), timeout=60, what="the task STOPPED")
    assert browser.text("#stopped-reason") == "Stopped from the Flotilla console"
    (t,) = ecs.describe_tasks(cluster=cluster, tasks=[task_id])["tasks"]
    assert t["stoppedReason"] == "Stopped from the Flotilla console"

    # The task definition's JSON.
    browser.get(server.endpoint + f"/console/task-definitions/{family}:1")
    assert f'"family": "{family}"' in browser.text("#task-definition-json")
    shots(browser, "task-definition")

    # Scale to 0 from the service page.
    browser.get(server.endpoint + f"/console/clusters/{cluster}/services/{service}")
    count = browser.find("#desiredCount")
    count.clear()
    count.send_keys("0")
    browser.find("#desired-count-submit").click()
    browser.wait_for(lambda: browser.text("#running-count") == "0", timeout=90, what="0 running tasks")
    assert ecs.describe_services(cluster=cluster, services=[service])["services"][0]["desiredCount"] == 0
    ecs.delete_service(cluster=cluster, service=service, force=True)

    # Sign out: the cookie is gone and pages need a new sign-in.
    browser.find("header button[type=submit]").click()
    browser.wait_for(lambda: "/console/signin" in browser.url, what="the sign-in page")
    assert session_cookie(browser) == []
    browser.get(server.endpoint + "/console/clusters")
    browser.wait_for(lambda: "/console/signin" in browser.url, what="the sign-in page")


def post(endpoint, path, fields, cookie=None, origin=None):
    parts = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    try:
        conn.request("POST", path, body=urllib.parse.urlencode(fields), headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def test_forms_need_the_sessions_csrf_token_and_this_origin(server, ecs, cluster):
    status, headers, _ = post(server.endpoint, "/console/signin",
                              {"accessKeyId": helpers.ACCESS_KEY, "secretAccessKey": helpers.SECRET_KEY})
    assert status == 303
    cookie = headers["set-cookie"].split(";")[0]
    form = {"serviceName": helpers.unique("nope"), "taskDefinition": "x:1", "desiredCount": "1"}
    path = f"/console/clusters/{cluster}/services"
    assert post(server.endpoint, path, form, cookie=cookie)[0] == 403
    assert post(server.endpoint, path, dict(form, csrf="forged"), cookie=cookie)[0] == 403
    # Another site's page, even with a token, and a sign-in posted from another site.
    assert post(server.endpoint, path, dict(form, csrf="forged"), cookie=cookie,
                origin="http://evil.example")[0] == 403
    assert post(server.endpoint, "/console/signin",
                {"accessKeyId": helpers.ACCESS_KEY, "secretAccessKey": helpers.SECRET_KEY},
                origin="http://evil.example")[0] == 403
    # Nothing was created.
    assert not ecs.list_services(cluster=cluster)["serviceArns"] or all(
        form["serviceName"] not in a for a in ecs.list_services(cluster=cluster)["serviceArns"])
