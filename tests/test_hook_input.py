"""Signed webhooks with hostile values: out-of-range numbers and times, deep nesting, `javascript:`
links and bad tag names answer 400 and record nothing; a re-sent release queues no second build."""

import json

import pytest

from releases.models import Build, Commit, Release, WebhookDelivery
from tests.support.hooks import SHA, github_delivery, sign
from tests.support.hooks import jenkins_report as report

JENKINS_SECRET = "hook-secret"
GITHUB_SECRET = "gh-secret"


@pytest.fixture
def service(cast, settings):
    settings.JENKINS_WEBHOOK_SECRET = JENKINS_SECRET
    settings.GITHUB_WEBHOOK_SECRET = GITHUB_SECRET
    cast.service.jenkins_build_job = "folder/storefront"
    cast.service.github_repo = "acme/web"
    cast.service.build_on_push = True
    cast.service.save()
    return cast.service


def jenkins(client, data):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return client.post(
        "/hooks/jenkins/",
        body,
        content_type="application/json",
        HTTP_X_PORTAL_SIGNATURE_256=sign(body, JENKINS_SECRET),
    )


def notification(**build_overrides):
    build = {"full_url": "http://j/job/folder/job/storefront/7/", "number": 7, "queue_id": 9, "phase": "STARTED"}
    return {"name": "storefront", "url": "job/folder/job/storefront/", "build": {**build, **build_overrides}}


def github(client, event, payload, delivery="d-1"):
    return github_delivery(client, event, payload, GITHUB_SECRET, delivery=delivery)


def refusal(response) -> str:
    """The message of a hook's 400 answer."""
    assert response.status_code == 400
    return response.json()["message"]


def release_payload(tag="v1.4.0", release_id=101):
    return {
        "action": "published",
        "release": {"id": release_id, "tag_name": tag, "draft": False, "prerelease": False},
        "repository": {"full_name": "acme/web", "default_branch": "main"},
    }


def push_payload(**commit_overrides):
    commit = {"id": SHA, "message": "Fix", "timestamp": "2026-01-05T10:12:00+01:00", "url": "https://gh/c/1"}
    commit.update(commit_overrides)
    return {
        "ref": "refs/heads/main",
        "after": SHA,
        "commits": [commit],
        "head_commit": commit,
        "repository": {"full_name": "acme/web", "default_branch": "main"},
    }


def nothing_recorded():
    return not (Build.objects.exists() or Release.objects.exists() or WebhookDelivery.objects.exists())


# Jenkins ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (report(number=2**63), "build number"),
        (report(number=2**31), "build number"),
        (report(queue_id=2**63), "queue id"),
        (report(queue_id=-1), "queue id"),
        (notification(timestamp=10**20), "timestamp"),
        (notification(timestamp=-5), "timestamp"),
        (notification(timestamp="yesterday"), "timestamp"),
        (report(test_summary={"total": 2**70, "failed": 0}), "test summary"),
    ],
)
def test_it_answers_400_to_out_of_range_jenkins_values(service, client, data, message):
    assert message in refusal(jenkins(client, data))
    assert nothing_recorded()


@pytest.mark.parametrize("depth", [40, 900])
def test_it_answers_400_to_deeply_nested_jenkins_json(service, client, depth):
    body = b'{"job": "folder/storefront", "number": 1, "params": ' + b"[" * depth + b"]" * depth + b"}"
    assert "nested" in refusal(jenkins(client, body))
    assert nothing_recorded()


@pytest.mark.parametrize(
    "url", ["javascript:alert(document.cookie)", " javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x"]
)
def test_it_refuses_a_jenkins_build_url_that_is_not_http(service, client, url):
    assert "http:// or https://" in refusal(jenkins(client, report(url=url)))
    assert nothing_recorded()


def test_it_still_accepts_a_plain_jenkins_report(service, client):
    assert jenkins(client, report()).status_code == 200
    assert Release.objects.get().jenkins_build_url == "http://jenkins.example/job/folder/job/storefront/12/"


# GitHub -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 900])
def test_it_answers_400_to_deeply_nested_github_json(service, client, depth):
    body = b'{"zen": ' + b"[" * depth + b"]" * depth + b"}"
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-deep"}
    headers["X-Hub-Signature-256"] = sign(body, GITHUB_SECRET)
    response = client.post("/hooks/github/", data=body, content_type="application/json", headers=headers)
    assert "nested" in refusal(response)
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    "timestamp", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2026-13-01T00:00:00Z", "soon", 12]
)
def test_it_answers_400_to_a_commit_time_out_of_range(service, client, timestamp):
    assert "time" in refusal(github(client, "push", push_payload(timestamp=timestamp)))
    assert not Commit.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_it_stores_no_javascript_commit_url(service, client):
    response = github(client, "push", push_payload(url="javascript:alert(1)"))
    assert response.status_code == 200
    assert Commit.objects.get().url == ""


@pytest.mark.parametrize(
    "tag",
    ["v1..2", "-rf", "v1 2", "v1~1", "v1^", "a:b", "v1?", "v1*", "v1[", "x\\y", "v1.lock", ".v1", "v1/", "@", "a@{b"],
)
def test_it_never_passes_an_invalid_tag_to_jenkins(service, client, tag):
    assert "not a valid git tag name" in refusal(github(client, "release", release_payload(tag=tag)))
    assert not Build.objects.exists()


def test_it_builds_a_valid_tag(service, client):
    response = github(client, "release", release_payload(tag="release/v1.4.0-rc.1"))
    assert response.status_code == 200
    assert Build.objects.get().parameters["GIT_REF"] == "release/v1.4.0-rc.1"


def test_it_queues_one_build_for_a_release_resent_with_a_new_delivery_id(service, client):
    assert github(client, "release", release_payload(), delivery="first").status_code == 200
    again = github(client, "release", release_payload(), delivery="second")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert Build.objects.count() == 1


def test_it_builds_a_different_release_of_the_same_tag_name(service, client):
    github(client, "release", release_payload(release_id=1), delivery="first")
    github(client, "release", release_payload(release_id=2), delivery="second")
    assert Build.objects.count() == 2
