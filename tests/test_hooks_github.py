"""`/hooks/github/`: signatures, idempotency, bad input, and GitHub's real payload shapes."""

import json

import pytest

from releases.models import Build, Commit, WebhookDelivery
from releases.webhooks import github as hook
from releases.webhooks.signatures import verify_hmac_sha256
from tests.support import hooks

SECRET = "pampam-test-secret"
URL = "/hooks/github/"
SHA_A = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
SHA_B = "7638417db6d59f3c431d3e1f261cc637155684cd"
BEFORE = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
TREE_A = "f9d2a07e9488b91af2641b26b9407fe22a451433"
TREE_B = "a9d2a07e9488b91af2641b26b9407fe22a451433"
REPOSITORY = {
    "id": 1296269,
    "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
    "name": "web",
    "full_name": "acme/web",
    "private": True,
    "owner": {"login": "acme", "id": 1, "type": "Organization"},
    "html_url": "https://github.com/acme/web",
    "default_branch": "main",
    "master_branch": "main",
}
SENDER = {"login": "ada", "id": 583231, "type": "User"}


ADA = {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"}
GRACE = {"name": "Grace Hopper", "email": "grace@example.com", "username": "ghopper"}
WEB_FLOW = {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"}


def pushed_commit(sha, tree_id, message, at, author, committer=None, added=(), modified=()):
    """A commit as a push event lists it, made on 5 January 2026 at `at` (HH:MM, UTC+1)."""
    return {
        "id": sha,
        "tree_id": tree_id,
        "distinct": True,
        "message": message,
        "timestamp": f"2026-01-05T{at}:00+01:00",
        "url": f"https://github.com/acme/web/commit/{sha}",
        "author": author,
        "committer": committer or author,
        "added": list(added),
        "removed": [],
        "modified": list(modified),
    }


def push_payload(ref="refs/heads/main", commits=None):
    commits = commits or [
        pushed_commit(
            SHA_A, TREE_A, "Fix null check in checkout flow", "10:12", ADA, WEB_FLOW, modified=["app/views.py"]
        ),
        pushed_commit(
            SHA_B,
            TREE_B,
            "Add retry with backoff to payment client\n\nCloses #12.",
            "10:40",
            GRACE,
            added=["app/retry.py"],
        ),
    ]
    return {
        "ref": ref,
        "before": BEFORE,
        "after": commits[-1]["id"],
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/acme/web/compare/{BEFORE[:12]}...{SHA_B[:12]}",
        "commits": commits,
        "head_commit": commits[-1],
        "repository": REPOSITORY,
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "sender": SENDER,
    }


def create_payload(tag="v1.4.0"):
    return {
        "ref": tag,
        "ref_type": "tag",
        "master_branch": "main",
        "description": None,
        "pusher_type": "user",
        "repository": REPOSITORY,
        "sender": SENDER,
    }


def release_payload(action="published", tag="v1.4.0"):
    return {
        "action": action,
        "release": {
            "id": 1,
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "body": "Faster checkout.",
            "draft": False,
            "prerelease": False,
            "created_at": "2026-01-05T10:00:00Z",
            "published_at": "2026-01-05T10:05:00Z",
            "html_url": f"https://github.com/acme/web/releases/tag/{tag}",
            "author": SENDER,
        },
        "repository": REPOSITORY,
        "sender": SENDER,
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return hooks.sign(body, secret)


def deliver(client, event, payload, *, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958", signature=None, form=False):
    return hooks.github_delivery(client, event, payload, SECRET, delivery=delivery, signature=signature, form=form)


@pytest.fixture
def service(cast, settings):
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    cast.service.github_repo = "Acme/Web"  # GitHub names are case-insensitive
    cast.service.save()
    return cast.service


def nothing_recorded():
    return not WebhookDelivery.objects.exists() and not Commit.objects.exists()


def test_it_verifies_the_protocols_test_vector():
    assert verify_hmac_sha256(
        "It's a Secret to Everybody",
        b"Hello, World!",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )


def test_the_hook_accepts_the_test_vector_signature(client, service, settings):
    settings.GITHUB_WEBHOOK_SECRET = "It's a Secret to Everybody"
    vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    response = deliver(client, "ping", b"Hello, World!", signature=vector)
    # Past the signature check; refused only because "Hello, World!" is not JSON.
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
    assert nothing_recorded()


def test_it_answers_a_ping(client, service):
    response = deliver(client, "ping", {"zen": "Design for failure.", "hook_id": 292430182, "repository": REPOSITORY})
    assert response.status_code == 200
    assert response.json()["message"] == "pong"


def test_it_refuses_a_wrong_signature(client, service):
    response = deliver(client, "push", push_payload(), signature=sign(b"something else"))
    assert response.status_code == 401
    assert "X-Hub-Signature-256" in response.json()["message"]
    assert nothing_recorded()


def test_it_refuses_a_signature_made_with_another_secret(client, service):
    body = json.dumps(push_payload()).encode()
    response = deliver(client, "push", body, signature=sign(body, "not-the-secret"))
    assert response.status_code == 401
    assert nothing_recorded()


def test_it_refuses_a_missing_signature(client, service):
    response = deliver(client, "push", push_payload(), signature=False)
    assert response.status_code == 401
    assert nothing_recorded()


def test_it_refuses_everything_when_no_secret_is_configured(client, service, settings):
    settings.GITHUB_WEBHOOK_SECRET = ""
    response = deliver(client, "push", push_payload(), signature=sign(b"x", "x"))
    assert response.status_code == 403
    assert "GITHUB_WEBHOOK_SECRET" in response.json()["message"]
    assert nothing_recorded()


def test_it_records_a_delivery_once(client, service):
    first = deliver(client, "push", push_payload())
    again = deliver(client, "push", push_payload())
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["duplicate"] is True
    assert WebhookDelivery.objects.filter(source="github").count() == 1
    assert Commit.objects.count() == 2


def test_it_refuses_a_body_that_is_not_json(client, service):
    response = deliver(client, "push", b"{not json")
    assert response.status_code == 400
    assert nothing_recorded()


def test_it_refuses_json_that_is_not_an_object(client, service):
    response = deliver(client, "push", b"[1, 2]")
    assert response.status_code == 400
    assert nothing_recorded()


def test_it_refuses_a_push_with_a_bad_commit_and_records_nothing(client, service):
    payload = push_payload()
    payload["commits"][0]["id"] = "not-a-sha"
    response = deliver(client, "push", payload)
    assert response.status_code == 400
    assert "40-character" in response.json()["message"]
    assert nothing_recorded()


def test_it_refuses_a_push_without_a_repository(client, service):
    payload = push_payload()
    del payload["repository"]
    assert deliver(client, "push", payload).status_code == 400
    assert nothing_recorded()


def test_it_refuses_missing_delivery_headers(client, service):
    assert deliver(client, "push", push_payload(), delivery="").status_code == 400
    assert nothing_recorded()


def test_it_refuses_an_oversized_body_unread(client, service):
    body = b"{" + b" " * hook.MAX_BODY_BYTES + b"}"
    response = deliver(client, "push", body)
    assert response.status_code == 413
    assert nothing_recorded()


def test_it_records_pushed_commits_on_the_default_branch(client, service):
    response = deliver(client, "push", push_payload())
    assert response.status_code == 200
    first, second = Commit.objects.filter(service=service).order_by("id")
    assert (first.sha, first.author, first.message) == (SHA_A, "Ada Lovelace", "Fix null check in checkout flow")
    assert first.url == f"https://github.com/acme/web/commit/{SHA_A}"
    assert first.committed_at.isoformat() == "2026-01-05T09:12:00+00:00"
    assert second.message == "Add retry with backoff to payment client\n\nCloses #12."


def test_it_reads_form_encoded_deliveries(client, service):
    response = deliver(client, "push", push_payload(), form=True)
    assert response.status_code == 200
    assert Commit.objects.count() == 2


def test_it_ignores_pushes_to_other_branches(client, service):
    response = deliver(client, "push", push_payload(ref="refs/heads/feature/cart"))
    assert response.status_code == 202
    assert not Commit.objects.exists()
    assert WebhookDelivery.objects.count() == 1


def test_it_ignores_an_unknown_repository_but_records_the_delivery(client, service):
    payload = push_payload()
    payload["repository"] = {**REPOSITORY, "full_name": "acme/other", "name": "other"}
    response = deliver(client, "push", payload)
    assert response.status_code == 202
    assert "acme/other" in response.json()["message"]
    assert not Commit.objects.exists()
    assert WebhookDelivery.objects.count() == 1


def test_it_ignores_events_it_does_not_use(client, service):
    response = deliver(client, "issues", {"action": "opened", "repository": REPOSITORY, "sender": SENDER})
    assert response.status_code == 202
    assert WebhookDelivery.objects.get().event == "issues"


def test_it_acknowledges_a_new_tag_without_building(client, service):
    service.build_on_push, service.jenkins_build_job = True, "web-build"
    service.save()
    response = deliver(client, "create", create_payload())
    assert response.status_code == 200
    assert "v1.4.0" in response.json()["message"]
    assert not Build.objects.exists()


def test_it_ignores_a_release_that_is_not_published(client, service):
    response = deliver(client, "release", release_payload(action="created"))
    assert response.status_code == 202


def test_it_does_not_build_on_push_unless_the_service_asks(client, service):
    response = deliver(client, "push", push_payload())
    assert response.json()["builds"] == []
    assert not Build.objects.exists()


@pytest.mark.parametrize(("event", "payload"), [("push", push_payload()), ("release", release_payload())])
def test_it_starts_a_build_when_the_service_builds_on_push(client, service, event, payload):
    service.build_on_push, service.jenkins_build_job = True, "web-build"
    service.save()
    response = deliver(client, event, payload)
    assert response.status_code == 200
    (said,) = response.json()["builds"]
    build = Build.objects.get(service=service)
    assert build.trigger == "github"
    expected_ref = payload["after"] if event == "push" else payload["release"]["tag_name"]
    assert build.parameters["GIT_REF"] == expected_ref
    assert f"build #{build.pk} queued" in said
