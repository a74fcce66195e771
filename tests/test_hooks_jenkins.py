"""`/hooks/jenkins/`: authentication, idempotency, bad input, and payloads from the real sandbox."""

import json
import time

import pytest

from releases import states
from releases.models import Build, Release, WebhookDelivery
from releases.webhooks.jenkins import MAX_BODY
from sandbox.jenkins import start
from tests.support import hooks

SECRET = "hook-secret"
SHA = hooks.SHA


@pytest.fixture(autouse=True)
def secret(settings):
    settings.JENKINS_WEBHOOK_SECRET = SECRET


@pytest.fixture
def service(cast):
    cast.service.jenkins_build_job = "folder/storefront"
    cast.service.save()
    return cast.service


def sign(body: bytes, secret=SECRET) -> str:
    return hooks.sign(body, secret)


def pipeline(**overrides):
    return json.dumps(hooks.jenkins_report(**overrides)).encode()


def notification(phase, status=None, number=7):
    build = {"full_url": "http://j/job/folder/job/storefront/7/", "number": number, "queue_id": 9, "phase": phase}
    build |= {"parameters": {"VERSION": "2.0.0"}, "scm": {"commit": SHA}}
    if status:
        build |= {"status": status, "test_summary": {"total": 5, "failed": 0, "passed": 5, "skipped": 0}}
    return json.dumps({"name": "storefront", "url": "job/folder/job/storefront/", "build": build}).encode()


def post(client, body, signature=None, query=""):
    headers = {"HTTP_X_PORTAL_SIGNATURE_256": signature} if signature else {}
    return client.post(f"/hooks/jenkins/{query}", body, content_type="application/json", **headers)


def nothing_recorded():
    return not (Build.objects.exists() or Release.objects.exists() or WebhookDelivery.objects.exists())


def test_it_records_a_signed_pipeline_report_and_makes_a_release(service, client):
    body = pipeline()
    response = post(client, body, sign(body))
    assert response.status_code == 200
    build = Build.objects.get()
    assert (build.trigger, build.number, build.state, build.service) == ("jenkins", 12, states.BUILD_SUCCEEDED, service)
    release = Release.objects.get()
    assert (release.version, release.git_sha, release.source) == ("1.4.2", SHA, "jenkins")
    assert release.image == "registry.example/storefront:1.4.2"
    assert build.release == release


def test_it_handles_the_same_delivery_once(service, client):
    body = pipeline()
    post(client, body, sign(body))
    again = post(client, body, sign(body))
    assert again.status_code == 200
    assert "already handled" in again.json()["message"]
    assert Build.objects.count() == 1
    assert Release.objects.count() == 1


def test_it_makes_one_release_from_completed_and_finalized(service, client):
    for phase, status in (("STARTED", None), ("COMPLETED", "SUCCESS"), ("FINALIZED", "SUCCESS")):
        assert post(client, notification(phase, status), query=f"?token={SECRET}").status_code == 200
    build = Build.objects.get()
    assert build.state == states.BUILD_SUCCEEDED
    assert build.test_summary["passed"] == 5
    assert Release.objects.get().version == "2.0.0"
    assert Release.objects.get().git_sha == SHA


def test_it_records_a_failed_build_without_a_release(service, client):
    body = pipeline(status="FAILURE")
    assert post(client, body, sign(body)).status_code == 200
    assert Build.objects.get().state == states.BUILD_FAILED
    assert not Release.objects.exists()


def test_it_matches_a_portal_build_by_its_queue_item(cast, service, client):
    mine = Build.objects.create(service=service, job_name="folder/storefront", queue_id=345, parameters={})
    body = pipeline()
    post(client, body, sign(body))
    mine.refresh_from_db()
    assert Build.objects.count() == 1
    assert mine.number == 12
    assert mine.state == states.BUILD_SUCCEEDED


@pytest.mark.parametrize(
    ("signature", "query", "status"),
    [
        (None, "", 401),
        (sign(b"other body"), "", 403),
        (sign(pipeline(), "wrong-secret"), "", 403),
        ("sha1=abc", "", 403),
        (None, "?token=wrong", 403),
    ],
)
def test_it_refuses_unauthenticated_reports(service, client, signature, query, status):
    assert post(client, pipeline(), signature, query).status_code == status
    assert nothing_recorded()


def test_it_refuses_everything_when_no_secret_is_set(service, client, settings):
    settings.JENKINS_WEBHOOK_SECRET = ""
    body = pipeline()
    assert post(client, body, sign(body, "")).status_code == 403
    assert nothing_recorded()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"{}",
        json.dumps({"job": "x", "number": "12"}).encode(),
        json.dumps({"job": "x", "number": 0}).encode(),
        json.dumps({"job": "x", "number": 1, "status": "GREAT"}).encode(),
        json.dumps({"job": "x", "number": 1, "params": ["a"]}).encode(),
        json.dumps({"job": "x", "number": 1, "params": {"A": {"nested": 1}}}).encode(),
        json.dumps({"job": "x", "number": 1, "status": "SUCCESS", "test_summary": {"total": -1}}).encode(),
        json.dumps({"name": "x", "build": {"number": 1, "phase": "LATER"}}).encode(),
    ],
)
def test_it_answers_400_to_malformed_reports(service, client, body):
    response = post(client, body, sign(body))
    assert response.status_code == 400
    assert response.json()["message"]
    assert nothing_recorded()


def test_it_answers_413_to_oversized_bodies(service, client):
    body = json.dumps({"job": "x", "number": 1, "pad": "x" * MAX_BODY}).encode()
    response = post(client, body, sign(body))
    assert response.status_code == 413
    assert "Set the Notification plugin's Log to 0" in response.json()["message"]
    assert nothing_recorded()


def test_it_answers_405_to_a_get(client, db):
    assert client.get("/hooks/jenkins/").status_code == 405


def test_it_records_what_the_sandbox_notification_plugin_sends(cast_tx, live_server):
    service = cast_tx.service
    service.jenkins_build_job = "app-build"
    service.save()
    jenkins = start(
        notify_url=f"{live_server.url}/hooks/jenkins/?token={SECRET}",
        queue_seconds=0.05,
        build_seconds=0.3,
        seed={"jobs": {"app-build": {}}},
    )
    try:
        import jenkins as python_jenkins

        server = python_jenkins.Jenkins(jenkins.url, "jenkins", "jenkins-token", timeout=5)
        server.build_job("app-build", {"VERSION": "5.0.0", "GIT_COMMIT": SHA})
        jenkins.wait_for_build("app-build", 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and WebhookDelivery.objects.count() < 4:
            time.sleep(0.05)
    finally:
        jenkins.stop()
    assert WebhookDelivery.objects.count() == 4  # QUEUED, STARTED, COMPLETED, FINALIZED
    build = Build.objects.get()
    assert (build.trigger, build.number, build.state) == ("jenkins", 1, states.BUILD_SUCCEEDED)
    release = Release.objects.get()
    assert (release.version, release.git_sha, release.test_summary["total"]) == ("5.0.0", SHA, 42)


# ----------------------------------------------------- encoded job URLs (folders, spaces, branches)

BRANCH_JOB = "Store Front/release%2F1.2"  # the Jenkins full name: a multibranch branch `release/1.2`


def plugin_payload(phase, number, queue_id, status=None):
    """What the Notification plugin sends for that branch: every name percent-encoded."""
    path = "job/Store%20Front/job/release%252F1.2/"
    build = {
        "full_url": f"http://jenkins.example/{path}{number}/",
        "url": f"{path}{number}/",
        "number": number,
        "queue_id": queue_id,
        "phase": phase,
        "parameters": {"VERSION": "1.2.0"},
        "scm": {"commit": SHA, "branch": "release/1.2"},
    }
    if status:
        build |= {"status": status}
    return json.dumps({"name": "release%2F1.2", "display_name": "release/1.2", "url": path, "build": build}).encode()


def test_it_matches_an_encoded_branch_job_to_the_build_the_portal_started(cast, client):
    cast.service.jenkins_build_job = BRANCH_JOB
    cast.service.save()
    started = Build.objects.create(service=cast.service, job_name=BRANCH_JOB, queue_id=41, trigger="portal")
    for phase, status in (("STARTED", None), ("COMPLETED", "SUCCESS")):
        response = post(client, plugin_payload(phase, 3, 41, status), query=f"?token={SECRET}")
        assert response.status_code == 200, response.json()
    build = Build.objects.get()
    assert build.pk == started.pk
    assert (build.number, build.state, build.service) == (3, states.BUILD_SUCCEEDED, cast.service)
    assert build.url == "http://jenkins.example/job/Store%20Front/job/release%252F1.2/3/"
    assert Release.objects.get().version == "1.2.0"


def test_it_matches_a_service_that_writes_the_branch_as_people_read_it(cast, client):
    cast.service.jenkins_build_job = "Store Front/release/1.2"
    cast.service.save()
    response = post(client, plugin_payload("COMPLETED", 8, 99, "SUCCESS"), query=f"?token={SECRET}")
    assert response.status_code == 200
    build = Build.objects.get()
    assert (build.job_name, build.service, build.number) == (BRANCH_JOB, cast.service, 8)


def test_it_matches_the_real_plugin_payload_of_a_portal_build_end_to_end(cast_tx, live_server, settings):
    """The portal starts the build through python-jenkins; the sandbox Jenkins (encoding names as
    Jenkins does) notifies; the notifications land on that same build, not on a new one."""
    from releases import builds

    service = cast_tx.service
    service.jenkins_build_job = BRANCH_JOB
    service.save()
    handle = start(
        notify_url=f"{live_server.url}/hooks/jenkins/?token={SECRET}",
        queue_seconds=0.05,
        build_seconds=0.3,
        seed={"jobs": {BRANCH_JOB: {}}},
    )
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = handle.url, handle.user, handle.token
    settings.JENKINS_POLL_SECONDS = 0.02
    try:
        build = builds.start_build(service, user=cast_tx.alice, version="1.2.0")
        builds.trigger_build(build.pk)  # queues in Jenkins, then follows it to the end
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and WebhookDelivery.objects.count() < 4:
            time.sleep(0.05)
    finally:
        handle.stop()
    assert WebhookDelivery.objects.count() == 4
    assert set(WebhookDelivery.objects.values_list("delivery_id", flat=True)) == {
        f"{BRANCH_JOB}#1:{phase}" for phase in ("QUEUED", "STARTED", "COMPLETED", "FINALIZED")
    }
    build = Build.objects.get()  # no second build "started outside the portal"
    assert (build.number, build.state, build.service) == (1, states.BUILD_SUCCEEDED, service)
    assert build.url.endswith("/job/Store%20Front/job/release%252F1.2/1/")
    assert build.release == Release.objects.get()


def test_it_accepts_a_notification_carrying_the_whole_log(service, client):
    build = json.loads(notification("COMPLETED", "SUCCESS"))
    build["build"]["log"] = "compiling…\n" * 400_000  # about 4.8 MB: the plugin's Log set to -1
    body = json.dumps(build).encode()
    assert len(body) > 4_000_000
    response = post(client, body, query=f"?token={SECRET}")
    assert response.status_code == 200
    assert Build.objects.get().state == states.BUILD_SUCCEEDED
