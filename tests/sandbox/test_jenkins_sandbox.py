"""The Jenkins sandbox, driven by the real python-jenkins client (and `requests` for raw bits)."""

import json
import subprocess
import sys
import threading
import time

import jenkins
import pytest
import requests

from sandbox.http import JSONHandler, serve
from sandbox.jenkins import start
from tests.support import wait_until

USER, TOKEN = "alice", "s3cret-token"


@pytest.fixture
def sandbox():
    handle = start(user=USER, token=TOKEN, queue_seconds=0.05, build_seconds=0.3, any_job=True)
    yield handle
    handle.stop()


@pytest.fixture
def server(sandbox):
    return jenkins.Jenkins(sandbox.url, USER, TOKEN, timeout=5)


class Recorder(JSONHandler):
    """Stub for both the cluster and the notification endpoint: records, then answers."""

    def _record(self):
        body = self.read_json()
        with self.server.lock:
            self.server.calls.append({"method": self.command, "path": self.path, "headers": self.headers, "body": body})
        status, reply = self.server.reply
        self.send_json(status, reply)

    do_PATCH = do_POST = _record


@pytest.fixture
def recorder():
    running = serve(Recorder, calls=[], lock=threading.Lock(), reply=(200, {"kind": "Deployment"}))
    yield running
    running.stop()


def run_to_end(server, job, params=None, timeout=10.0):
    """Trigger a build and poll like a client would; return its final build info."""
    number = wait_executable(server, server.build_job(job, params), timeout)["number"]
    return wait_finished(server, job, number, timeout)


def wait_executable(server, queue_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = server.get_queue_item(queue_id)
        if item.get("executable"):
            return item["executable"]
        time.sleep(0.02)
    raise AssertionError(f"queue item {queue_id} never left the queue")


def wait_finished(server, job, number, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = server.get_build_info(job, number)
        if not info["building"]:
            return info
        time.sleep(0.02)
    raise AssertionError(f"build {job} #{number} never finished")


def action(info, cls):
    return next(a for a in info["actions"] if a.get("_class") == cls)


# -- identity and jobs ------------------------------------------------------------------------


def test_version_whoami_and_info(server, sandbox):
    assert server.get_version() == "2.462.3"
    me = server.get_whoami()
    assert me["id"] == USER
    assert me["_class"] == "hudson.model.User"
    assert server.get_info()["_class"] == "hudson.model.Hudson"
    assert requests.get(sandbox.url + "/", timeout=5).headers["X-Jenkins"] == "2.462.3"


def test_job_info_in_a_folder(server, sandbox):
    info = server.get_job_info("platform/web-deploy")
    assert info["fullName"] == "platform/web-deploy"
    assert info["name"] == "web-deploy"
    assert info["url"] == f"{sandbox.url}/job/platform/job/web-deploy/"
    assert info["nextBuildNumber"] == 1
    assert info["builds"] == []
    assert server.get_info()["jobs"] == []  # reading a job does not create it
    run_to_end(server, "platform/web-deploy")
    assert server.get_job_info("platform/web-deploy")["color"] == "blue"
    folder = server.get_job_info("platform")
    assert folder["_class"] == "com.cloudbees.hudson.plugins.folder.Folder"
    assert [j["name"] for j in folder["jobs"]] == ["web-deploy"]


# -- the build lifecycle ----------------------------------------------------------------------


def test_build_job_queue_build_console(server, sandbox):
    queue_id = server.build_job("team/app", {"VERSION": "1.4.2"})
    assert isinstance(queue_id, int)
    waiting = server.get_queue_item(queue_id)
    assert waiting["_class"] == "hudson.model.Queue$WaitingItem"
    assert waiting["why"]

    executable = wait_executable(server, queue_id)
    assert executable["url"] == f"{sandbox.url}/job/team/job/app/{executable['number']}/"
    left = server.get_queue_item(queue_id)
    assert left["_class"] == "hudson.model.Queue$LeftItem"
    assert left["cancelled"] is False

    running = server.get_build_info("team/app", executable["number"])
    assert running["building"] is True
    assert running["result"] is None

    info = wait_finished(server, "team/app", executable["number"])
    assert info["result"] == "SUCCESS"
    assert info["queueId"] == queue_id
    assert info["duration"] > 0
    assert info["timestamp"] <= time.time() * 1000
    assert info["fullDisplayName"] == "team » app #1"
    params = action(info, "hudson.model.ParametersAction")["parameters"]
    assert {"name": "VERSION", "value": "1.4.2"}.items() <= params[0].items()
    cause = action(info, "hudson.model.CauseAction")["causes"][0]
    assert cause["shortDescription"] == f"Started by user {USER}"
    tests = action(info, "hudson.tasks.junit.TestResultAction")
    assert (tests["totalCount"], tests["failCount"]) == (42, 0)

    console = server.get_build_console_output("team/app", 1)
    assert console.startswith(f"Started by user {USER}\n")
    assert "+ make test\n" in console
    assert console.endswith("Finished: SUCCESS\n")
    assert server.get_job_info("team/app")["lastCompletedBuild"]["number"] == 1
    assert server.get_job_info("team/app", fetch_all_builds=True)["builds"][0]["number"] == 1
    assert server.get_build_test_report("team/app", 1)["passCount"] == 42


def test_build_without_parameters_and_aliases(server, sandbox):
    info = run_to_end(server, "plain")
    assert info["result"] == "SUCCESS"
    last = requests.get(f"{sandbox.url}/job/plain/lastBuild/api/json", auth=(USER, TOKEN), timeout=5).json()
    assert last["number"] == info["number"]


def test_progressive_log_uses_byte_offsets_and_whole_lines(sandbox):
    http = requests.Session()
    http.auth = (USER, TOKEN)
    crumb = http.get(f"{sandbox.url}/crumbIssuer/api/json", timeout=5).json()
    http.headers[crumb["crumbRequestField"]] = crumb["crumb"]
    reply = http.post(
        f"{sandbox.url}/job/app/buildWithParameters",
        params={"SANDBOX_DURATION": "0.8", "SANDBOX_LOG_LINES": "20"},
        timeout=5,
    )
    assert reply.status_code == 201
    queue_id = int(reply.headers["Location"].rstrip("/").split("/")[-1])
    wait_until(lambda: sandbox.queue_item(queue_id).build is not None)

    url = f"{sandbox.url}/job/app/1/logText/progressiveText"
    chunks, offset, saw_more = [], 0, False
    while True:
        reply = http.get(url, params={"start": offset}, timeout=5)
        more = reply.headers.get("X-More-Data") == "true"
        if more and reply.content:
            assert reply.content.endswith(b"\n"), "only whole lines while running"
        saw_more |= more
        chunks.append(reply.content)
        offset = int(reply.headers["X-Text-Size"])
        if not more:
            break
        time.sleep(0.03)

    full = http.get(f"{sandbox.url}/job/app/1/consoleText", timeout=5).content
    assert saw_more
    assert b"".join(chunks) == full
    assert offset == len(full)
    assert "✓".encode() in full
    again = http.get(url, params={"start": offset}, timeout=5)
    assert again.content == b""
    assert "X-More-Data" not in again.headers


@pytest.mark.parametrize("result", ["FAILURE", "ABORTED", "UNSTABLE"])
def test_scripted_results(server, result):
    info = run_to_end(server, "app", {"SANDBOX_RESULT": result})
    assert info["result"] == result
    console = server.get_build_console_output("app", info["number"])
    assert console.endswith(f"Finished: {result}\n")
    if result == "ABORTED":
        assert f"Aborted by {USER}\n" in console
    if result == "FAILURE":
        assert "ERROR: script returned exit code 1\n" in console


def test_a_testfail_tag_fails_two_tests_in_a_build_that_still_succeeds(server):
    info = run_to_end(server, "app", {"VERSION": "1.5.0-testfail"})
    assert info["result"] == "SUCCESS"
    report = server.get_build_test_report("app", info["number"])
    assert (report["passCount"], report["failCount"], report["skipCount"]) == (40, 2, 0)
    cases = [case for suite in report["suites"] for case in suite["cases"]]
    assert len(cases) == 42
    failed = [case for case in cases if case["status"] == "FAILED"]
    assert [(c["className"], c["name"]) for c in failed] == [
        ("tests.test_checkout.CheckoutTest", "test_case_1"),
        ("tests.test_cart.CartTest", "test_case_2"),
    ]
    assert failed[0]["errorDetails"] == "AssertionError: expected status 200, got 500"


def test_a_build_without_testfail_passes_every_test(server):
    info = run_to_end(server, "app", {"VERSION": "1.5.0"})
    report = server.get_build_test_report("app", info["number"])
    assert (report["passCount"], report["failCount"]) == (42, 0)
    assert all(case["status"] == "PASSED" for suite in report["suites"] for case in suite["cases"])


def test_stop_build_aborts_a_running_build(server, sandbox):
    queue_id = server.build_job("app", {"SANDBOX_DURATION": "5"})
    number = wait_executable(server, queue_id)["number"]
    server.stop_build("app", number)
    info = wait_finished(server, "app", number, timeout=3)
    assert info["result"] == "ABORTED"
    console = server.get_build_console_output("app", number)
    assert f"Aborted by {USER}\n" in console
    assert console.endswith("Finished: ABORTED\n")
    assert "+ kubectl" not in console


def test_queue_cancellation(server, sandbox):
    queue_id = server.build_job("app", {"SANDBOX_QUEUE": "5"})
    server.cancel_queue(queue_id)
    item = server.get_queue_item(queue_id)
    assert item["_class"] == "hudson.model.Queue$LeftItem"
    assert item["cancelled"] is True
    assert not item.get("executable")

    scripted = server.build_job("app", {"SANDBOX_CANCEL_QUEUE": "1"})
    wait_until(lambda: server.get_queue_item(scripted).get("cancelled"))
    assert sandbox.builds("app") == []


def test_unknown_build_and_queue_item_are_404(server, sandbox):
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_build_info("app", 99)
    with pytest.raises(jenkins.JenkinsException, match="queue number\\[99\\] does not exist"):
        server.get_queue_item(99)


# -- auth and faults --------------------------------------------------------------------------


def test_wrong_token_is_401(sandbox):
    wrong = jenkins.Jenkins(sandbox.url, USER, "nope", timeout=5)
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        wrong.get_whoami()
    reply = requests.get(f"{sandbox.url}/api/json", timeout=5)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic")


def test_it_refuses_a_post_with_the_password_and_no_crumb():
    handle = start(user=USER, token=TOKEN, password="s3cret", seed={"jobs": {"app": {}}})
    try:
        reply = requests.post(f"{handle.url}/job/app/build", auth=(USER, "s3cret"), timeout=5)
        assert reply.status_code == 403
        assert reply.reason == "No valid crumb was included in the request"
        crumb = requests.get(f"{handle.url}/crumbIssuer/api/json", auth=(USER, "s3cret"), timeout=5).json()
        headers = {crumb["crumbRequestField"]: crumb["crumb"]}
        reply = requests.post(f"{handle.url}/job/app/build", auth=(USER, "s3cret"), headers=headers, timeout=5)
        assert reply.status_code == 201
    finally:
        handle.stop()


def test_it_needs_no_crumb_with_the_api_token(sandbox):
    reply = requests.post(f"{sandbox.url}/job/app/build", auth=(USER, TOKEN), timeout=5)
    assert reply.status_code == 201
    assert reply.headers["Location"].startswith(f"{sandbox.url}/queue/item/")


def test_fault_500_then_recovers(server, sandbox):
    assert server.get_whoami()["id"] == USER  # resolve auth and crumb first
    sandbox.set_fault(status=500, count=2)
    for _ in range(2):
        with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
            server.get_whoami()
    assert server.get_whoami()["id"] == USER


def test_fault_down_via_control_endpoint(sandbox):
    requests.post(f"{sandbox.url}/sandbox/faults", json={"down": True}, timeout=5)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox.url}/api/json", auth=(USER, TOKEN), timeout=5)
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)
    assert requests.get(f"{sandbox.url}/api/json", auth=(USER, TOKEN), timeout=5).ok


# -- deploy jobs, notifications, seed ---------------------------------------------------------


def test_deploy_job_patches_the_deployment(recorder):
    handle = start(user=USER, token=TOKEN, kube_url=recorder.url, kube_token="kt", build_seconds=0.2, any_job=True)
    try:
        server = jenkins.Jenkins(handle.url, USER, TOKEN, timeout=5)
        params = {"IMAGE": "registry/web:1.4.2", "NAMESPACE": "prod", "DEPLOYMENT": "web"}
        info = run_to_end(server, "deploy/web", params)
        console = server.get_build_console_output("deploy/web", info["number"])
    finally:
        handle.stop()
    assert info["result"] == "SUCCESS"
    [call] = recorder.server.calls
    assert call["method"] == "PATCH"
    assert call["path"].startswith("/apis/apps/v1/namespaces/prod/deployments/web?")
    assert call["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    assert call["headers"]["Authorization"] == "Bearer kt"
    assert call["body"]["spec"] == {
        "template": {
            "spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"name": "web", "image": "registry/web:1.4.2"}],
            }
        }
    }
    assert "kubernetes.io/change-cause" in call["body"]["metadata"]["annotations"]
    assert "+ kubectl set image deployment/web web=registry/web:1.4.2 -n prod\n" in console
    assert "deployment.apps/web image updated\n" in console


def test_failed_patch_fails_the_build(recorder):
    message = 'deployments.apps "web" not found'
    recorder.server.reply = (404, {"kind": "Status", "reason": "NotFound", "message": message})
    handle = start(user=USER, token=TOKEN, kube_url=recorder.url, build_seconds=0.2, any_job=True)
    try:
        server = jenkins.Jenkins(handle.url, USER, TOKEN, timeout=5)
        params = {"IMAGE": "web:2", "NAMESPACE": "prod", "SERVICE": "web", "CONTAINER": "app"}
        info = run_to_end(server, "deploy/web", params)
        console = server.get_build_console_output("deploy/web", info["number"])
    finally:
        handle.stop()
    assert info["result"] == "FAILURE"
    assert f"Error from server (NotFound): {message}\n" in console
    assert recorder.server.calls[0]["body"]["spec"]["template"]["spec"]["containers"][0] == {
        "name": "app",
        "image": "web:2",
    }


def test_notification_payloads(recorder):
    notify_url = f"{recorder.url}/hooks/jenkins/?token=abc"
    handle = start(user=USER, token=TOKEN, notify_url=notify_url, build_seconds=0.2, any_job=True)
    try:
        server = jenkins.Jenkins(handle.url, USER, TOKEN, timeout=5)
        info = run_to_end(server, "team/app", {"VERSION": "1.4.2", "GIT_COMMIT": "abc123"})
        wait_until(lambda: len(recorder.server.calls) == 4)
    finally:
        handle.stop()
    calls = recorder.server.calls
    assert all(c["path"] == "/hooks/jenkins/?token=abc" for c in calls)
    assert calls[0]["headers"]["Content-Type"] == "application/json;charset=UTF-8"
    bodies = [c["body"] for c in calls]
    assert [b["build"]["phase"] for b in bodies] == ["QUEUED", "STARTED", "COMPLETED", "FINALIZED"]
    first, last = bodies[0], bodies[-1]
    assert first["name"] == "app"
    assert first["url"] == "job/team/job/app/"
    assert "status" not in first["build"]
    assert last["build"]["status"] == "SUCCESS"
    assert last["build"]["number"] == info["number"]
    assert last["build"]["queue_id"] == info["queueId"]
    assert last["build"]["full_url"] == info["url"]
    assert last["build"]["parameters"]["VERSION"] == "1.4.2"
    assert last["build"]["scm"]["commit"] == "abc123"
    assert last["build"]["test_summary"]["total"] == 42


def test_seed_file_configures_jobs(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "jobs:\n"
        "  ci/app-build:\n"
        "    duration: 0.2\n"
        "    result: unstable\n"
        "    tests: {total: 10, failed: 1, passed: 8, skipped: 1}\n"
        "    artifacts: [dist/app.tar.gz]\n"
    )
    handle = start(user=USER, token=TOKEN, seed=str(seed), queue_seconds=0.05)
    try:
        server = jenkins.Jenkins(handle.url, USER, TOKEN, timeout=5)
        assert [j["name"] for j in server.get_info()["jobs"]] == ["ci"]
        info = run_to_end(server, "ci/app-build")
    finally:
        handle.stop()
    assert info["result"] == "UNSTABLE"
    tests = action(info, "hudson.tasks.junit.TestResultAction")
    assert (tests["totalCount"], tests["failCount"], tests["skipCount"]) == (10, 1, 1)
    assert info["artifacts"] == [
        {"displayPath": "app.tar.gz", "fileName": "app.tar.gz", "relativePath": "dist/app.tar.gz"}
    ]


def test_command_line_entry_point():
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.jenkins", "--port", "0", "--user", "u", "--token", "t"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().split()[-1]
        server = jenkins.Jenkins(url, "u", "t", timeout=5)
        assert server.get_whoami()["id"] == "u"
        assert json.loads(requests.get(f"{url}/sandbox/builds", timeout=5).text) == []
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_sh_steps_run_with_the_build_environment():
    seed = {"jobs": {"app": {"sh": ['echo "v=$VERSION n=$BUILD_NUMBER $BUILD_URL t=$TOKEN"'], "env": {"TOKEN": "t0"}}}}
    sandbox = start(user=USER, token=TOKEN, queue_seconds=0.05, build_seconds=0.3, seed=seed)
    try:
        server = jenkins.Jenkins(sandbox.url, USER, TOKEN, timeout=5)
        info = run_to_end(server, "app", {"VERSION": "1.2.3"})
        console = server.get_build_console_output("app", info["number"])
    finally:
        sandbox.stop()
    assert info["result"] == "SUCCESS"
    assert "[Pipeline] { (publish)\n" in console
    assert "+ echo " in console  # sh -x echoes the command
    assert f"v=1.2.3 n=1 {sandbox.url}/job/app/1/ t=t0\n" in console


def test_a_failing_sh_step_fails_the_build():
    sandbox = start(
        user=USER, token=TOKEN, queue_seconds=0.05, build_seconds=0.3, seed={"jobs": {"app": {"sh": ["false"]}}}
    )
    try:
        server = jenkins.Jenkins(sandbox.url, USER, TOKEN, timeout=5)
        info = run_to_end(server, "app")
        console = server.get_build_console_output("app", info["number"])
    finally:
        sandbox.stop()
    assert info["result"] == "FAILURE"
    assert "ERROR: script returned exit code 1\n" in console
