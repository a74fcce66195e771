"""The pages' permission matrix (tests/test_permissions.py), repeated through the API with tokens
of each scope: a rule's refusal is a 403 with the same reason the page shows; a scope the
token lacks is a 403 naming it; no credentials is a 401; nothing changes on a refusal.

The cast: erin is a viewer (no groups), alice deploys to dev and staging, bob approves, dave
deploys to prod and approves, admin is staff.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clusters.models import FreezeWindow, Lock
from releases import states
from releases.models import Approval, Build, Deployment, Release
from tests.factories import (
    assert_still_pending,
    make_deployment,
    make_release,
    pending_in_staging,
    release_ready_for_staging,
    succeed_in,
)
from tests.support import permissions
from tests.support.api import api_as

JSON = {"format": "json"}
SCOPES = ["read", "deploy", "approve", "admin"]


def scope_reason(who, scope, needed):
    return (
        f"API token {who}-{scope} has the scopes {scope}; this needs the {needed} scope. "
        "Make a token with it on your API tokens page."
    )


# Anonymous ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/services/"),
        ("get", "/api/v1/services/storefront/"),
        ("get", "/api/v1/environments/"),
        ("get", "/api/v1/environments/dev/"),
        ("get", "/api/v1/releases/"),
        ("post", "/api/v1/releases/"),
        ("get", "/api/v1/releases/1/"),
        ("get", "/api/v1/deployments/"),
        ("post", "/api/v1/deployments/"),
        ("get", "/api/v1/deployments/1/"),
        ("get", "/api/v1/deployments/1/?wait=5"),
        ("post", "/api/v1/deployments/1/approve/"),
        ("post", "/api/v1/deployments/1/reject/"),
        ("post", "/api/v1/deployments/1/cancel/"),
        ("post", "/api/v1/services/storefront/rollback/"),
        ("get", "/api/v1/approvals/"),
        ("get", "/api/v1/builds/"),
        ("post", "/api/v1/builds/"),
        ("get", "/api/v1/builds/1/"),
        ("post", "/api/v1/builds/1/abort/"),
        ("get", "/api/v1/freezes/"),
        ("post", "/api/v1/freezes/"),
        ("post", "/api/v1/freezes/1/end/"),
        ("get", "/api/v1/locks/"),
        ("post", "/api/v1/locks/"),
        ("post", "/api/v1/locks/1/release/"),
        ("get", "/api/v1/dora/"),
        ("get", "/api/v1/me/"),
        ("get", "/api/schema/"),
    ],
)
def test_it_answers_401_to_anonymous_requests_and_changes_nothing(cast, method, url):
    deployment = pending_in_staging(cast)
    url = url.replace("/1/", f"/{deployment.pk}/")
    response = getattr(APIClient(), method)(url, {"environment": "dev", "comment": "x"}, **JSON)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="pampam"'
    assert_still_pending(deployment)


def test_it_sends_anonymous_visitors_of_the_docs_to_the_login_page(cast):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/api/docs/"


@pytest.mark.parametrize("scope", SCOPES)
def test_every_scope_reads(cast, scope):
    deployment = pending_in_staging(cast)
    client = api_as(cast.erin, scope)
    for url in ["/api/v1/services/", "/api/v1/environments/", "/api/v1/deployments/", "/api/v1/dora/"]:
        assert client.get(url).status_code == 200, url
    assert client.get(f"/api/v1/deployments/{deployment.pk}/").status_code == 200


# Request --------------------------------------------------------------------------------------


def lacking_scope(who, needed, *scopes):
    """Rows of a permission matrix: `who` with a token of each of `scopes`, refused for want of
    the `needed` scope."""
    return [(who, scope, [scope_reason(who, scope, needed)]) for scope in scopes]


def answered(response, reasons, done_status):
    """Refused (403) for exactly `reasons`, or, with none, done (`done_status`)."""
    assert response.status_code == (403 if reasons else done_status)
    if reasons:
        assert response.json()["reasons"] == reasons


@pytest.mark.parametrize(
    ("who", "scope", "reasons"),
    [(who, "deploy", [permissions.NOT_A_DEPLOYER]) for who in ("erin", "bob", "dave")]
    + lacking_scope("alice", "deploy", "read", "approve")
    + [("alice", "deploy", []), ("alice", "admin", []), ("admin", "deploy", [])],
)
def test_it_lets_only_deployers_request_with_a_deploy_token(cast, who, scope, reasons):
    release = release_ready_for_staging(cast)
    payload = {"release": release.pk, "environment": "staging"}
    response = api_as(getattr(cast, who), scope).post("/api/v1/deployments/", payload, **JSON)
    answered(response, reasons, 201)
    permissions.assert_requested(cast, who, done=not reasons)


def test_it_lets_release_managers_deploy_to_prod_but_not_developers(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.staging)
    payload = {"release": release.pk, "environment": "prod"}
    refused = api_as(cast.alice, "deploy").post("/api/v1/deployments/", payload, **JSON)
    assert refused.status_code == 403
    assert refused.json()["reasons"] == ["You are not a deployer for Prod (release-managers). Ask an admin to add you."]
    assert api_as(cast.dave, "deploy").post("/api/v1/deployments/", payload, **JSON).status_code == 201


def test_it_lists_every_reason_a_request_is_refused(cast):
    release = make_release(cast.service)
    response = api_as(cast.erin, "deploy").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "prod"}, **JSON
    )
    assert response.json()["reasons"] == [
        "You are not a deployer for Prod (release-managers). Ask an admin to add you.",
        f"Storefront {release.version} has not succeeded in Staging yet: deploy it there first.",
    ]


# Approve ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "scope", "reasons"),
    [("erin", "approve", [permissions.NOT_AN_APPROVER]), ("admin", "admin", [permissions.NOT_AN_APPROVER])]
    + [("alice", "approve", [permissions.NOT_AN_APPROVER, permissions.SELF_APPROVAL])]  # alice requested it too
    + lacking_scope("bob", "approve", "read", "deploy")
    + [("bob", "approve", []), ("dave", "approve", []), ("dave", "admin", [])],
)
def test_it_lets_only_approvers_approve_with_an_approve_token(cast, who, scope, reasons):
    deployment = pending_in_staging(cast)
    response = api_as(getattr(cast, who), scope).post(f"/api/v1/deployments/{deployment.pk}/approve/", {}, **JSON)
    answered(response, reasons, 200)
    permissions.assert_approved(deployment, done=not reasons)


@pytest.mark.parametrize("scope", ["approve", "admin"])
def test_it_refuses_the_requester_approving_their_own_deployment_whatever_the_token(cast, scope):
    cast.alice.groups.add(cast.approvers)
    deployment = pending_in_staging(cast)
    response = api_as(cast.alice, scope).post(f"/api/v1/deployments/{deployment.pk}/approve/", {}, **JSON)
    assert response.status_code == 403
    assert response.json()["reasons"] == [permissions.SELF_APPROVAL]
    assert not Approval.objects.exists()


def test_it_lets_the_requester_reject_their_own_deployment_when_an_approver(cast):
    cast.alice.groups.add(cast.approvers)
    deployment = pending_in_staging(cast)
    response = api_as(cast.alice, "approve").post(
        f"/api/v1/deployments/{deployment.pk}/reject/", {"comment": "wrong build"}, **JSON
    )
    assert response.status_code == 200
    deployment.refresh_from_db()
    assert deployment.state == states.REJECTED


@pytest.mark.parametrize(
    ("who", "scope", "status"),
    [("erin", "approve", 403), ("alice", "admin", 403), ("bob", "deploy", 403), ("bob", "approve", 200)],
)
def test_it_lets_only_approvers_reject(cast, who, scope, status):
    deployment = pending_in_staging(cast)
    response = api_as(getattr(cast, who), scope).post(
        f"/api/v1/deployments/{deployment.pk}/reject/", {"comment": "no"}, **JSON
    )
    assert response.status_code == status
    deployment.refresh_from_db()
    assert (deployment.state == states.REJECTED) == (status == 200)


def test_it_says_in_the_detail_why_a_token_may_not_approve(cast):
    deployment = pending_in_staging(cast)
    body = api_as(cast.bob, "read").get(f"/api/v1/deployments/{deployment.pk}/").json()
    assert body["may"]["approve"] == {"allowed": False, "reasons": [scope_reason("bob", "read", "approve")]}
    body = api_as(cast.erin, "approve").get(f"/api/v1/deployments/{deployment.pk}/").json()
    assert body["may"]["approve"]["reasons"] == [permissions.NOT_AN_APPROVER]


# Cancel -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "scope", "reasons"),
    [
        (who, scope, [permissions.MAY_NOT_CANCEL])
        for who, scope in (("erin", "deploy"), ("bob", "admin"), ("dave", "deploy"))
    ]
    + lacking_scope("alice", "deploy", "read", "approve")
    + [("alice", "deploy", []), ("admin", "deploy", [])],
)
def test_it_lets_only_the_requester_deployers_and_admins_cancel(cast, who, scope, reasons):
    deployment = pending_in_staging(cast)
    response = api_as(getattr(cast, who), scope).post(f"/api/v1/deployments/{deployment.pk}/cancel/", {}, **JSON)
    answered(response, reasons, 200)
    permissions.assert_cancelled(deployment, done=not reasons)


def test_it_lets_the_requester_cancel_after_leaving_the_deployer_group(cast):
    deployment = pending_in_staging(cast)
    cast.alice.groups.clear()
    response = api_as(cast.alice, "deploy").post(f"/api/v1/deployments/{deployment.pk}/cancel/", {}, **JSON)
    assert response.status_code == 200


# Override ---------------------------------------------------------------------------------------


def request_dev(client, release, override_reason=""):
    payload = {"release": release.pk, "environment": "dev", "override_reason": override_reason}
    return client.post("/api/v1/deployments/", payload, **JSON)


@pytest.mark.parametrize("who", ["erin", "alice", "bob", "dave"])
def test_it_refuses_an_override_from_anyone_but_an_admin(cast, frozen_dev, who):
    response = request_dev(api_as(getattr(cast, who), "admin"), make_release(cast.service), "I really need to")
    assert response.status_code == 403
    reasons = " ".join(response.json()["reasons"])
    assert "Dev is frozen until" in reasons
    assert "(group buy). An admin can override with a reason." in reasons
    assert not Deployment.objects.exists()


def test_it_refuses_an_admin_override_without_a_reason(cast, frozen_dev):
    response = request_dev(api_as(cast.admin, "admin"), make_release(cast.service), "   ")
    assert response.status_code == 403
    assert "Dev is frozen until" in response.json()["reasons"][0]


def test_it_lets_an_admin_override_with_a_reason_and_the_admin_scope(cast, frozen_dev):
    response = request_dev(api_as(cast.admin, "admin"), make_release(cast.service), "checkout is down")
    assert response.status_code == 201
    deployment = Deployment.objects.get()
    assert deployment.override_reason == "checkout is down"
    assert deployment.events.get(kind="override").actor == cast.admin


def test_it_refuses_an_override_with_a_deploy_token(cast, frozen_dev):
    response = request_dev(api_as(cast.admin, "deploy"), make_release(cast.service), "checkout is down")
    assert response.status_code == 403
    assert response.json()["reasons"] == [scope_reason("admin", "deploy", "admin")]
    assert not Deployment.objects.exists()


def test_it_does_not_let_an_admin_override_a_non_overridable_rule(cast, frozen_dev):
    release = make_release(cast.service)
    response = api_as(cast.admin, "admin").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "staging", "override_reason": "skip"}, **JSON
    )
    assert response.status_code == 403
    assert "has not succeeded in Dev yet" in response.json()["reasons"][0]


# Releases, builds, rollbacks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "scope", "status"),
    [("erin", "deploy", 403), ("bob", "deploy", 403), ("alice", "read", 403), ("alice", "approve", 403)]
    + [("alice", "deploy", 201), ("dave", "deploy", 201), ("admin", "deploy", 201)],
)
def test_it_lets_only_deployers_record_releases_with_a_deploy_token(cast, who, scope, status):
    response = api_as(getattr(cast, who), scope).post(
        "/api/v1/releases/", {"service": "storefront", "version": "9.0.0"}, **JSON
    )
    assert response.status_code == status
    assert Release.objects.exists() == (status == 201)
    if who in ("erin", "bob"):
        assert response.json()["reasons"] == [
            "Only deployers of an environment can record releases of Storefront. Ask an admin to add you "
            "(or your pipeline's service account) to a deployer group."
        ]


@pytest.mark.parametrize(
    ("who", "scope", "status"),
    [("erin", "deploy", 403), ("bob", "admin", 403), ("alice", "read", 403), ("alice", "deploy", 201)],
)
def test_it_lets_only_deployers_start_builds(cast, who, scope, status):
    cast.service.jenkins_build_job = "storefront/build"
    cast.service.save()
    response = api_as(getattr(cast, who), scope).post("/api/v1/builds/", {"service": "storefront"}, **JSON)
    assert response.status_code == status
    assert Build.objects.exists() == (status == 201)


def test_it_lets_only_deployers_abort_builds(cast):
    cast.service.jenkins_build_job = "storefront/build"
    cast.service.save()
    build_id = api_as(cast.alice, "deploy").post("/api/v1/builds/", {"service": "storefront"}, **JSON).json()["id"]
    refused = api_as(cast.erin, "admin").post(f"/api/v1/builds/{build_id}/abort/", **JSON)
    assert refused.status_code == 403
    assert refused.json()["reasons"] == ["Only deployers of an environment can start builds. Ask an admin to add you."]
    assert api_as(cast.alice, "read").post(f"/api/v1/builds/{build_id}/abort/", **JSON).status_code == 403
    assert Build.objects.get().state == "queued"


@pytest.mark.parametrize(
    ("who", "scope", "status"),
    [("erin", "deploy", 403), ("bob", "admin", 403), ("alice", "read", 403), ("alice", "approve", 403)],
)
def test_it_lets_only_deployers_roll_back_with_a_deploy_token(cast, who, scope, status):
    good, bad = make_release(cast.service, version="1.0.0"), make_release(cast.service, version="1.1.0")
    succeed_in(good, cast.dev)
    make_deployment(bad, cast.dev, state=states.SUCCEEDED, previous_release=good, finished_at=timezone.now())
    response = api_as(getattr(cast, who), scope).post(
        "/api/v1/services/storefront/rollback/", {"environment": "dev", "reason": "bad"}, **JSON
    )
    assert response.status_code == status
    assert not Deployment.objects.filter(kind=Deployment.ROLLBACK).exists()


# Freezes and locks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "scope", "environment", "status", "reason"),
    [
        ("erin", "admin", "dev", 403, "Only deployers of Dev (developers) can lock it or schedule its freezes."),
        ("bob", "admin", "dev", 403, "Only deployers of Dev (developers) can lock it or schedule its freezes."),
        (
            "alice",
            "admin",
            "prod",
            403,
            "Only deployers of Prod (release-managers) can lock it or schedule its freezes.",
        ),
        ("alice", "deploy", "dev", 403, scope_reason("alice", "deploy", "admin")),
        ("alice", "admin", "dev", 201, None),
        ("dave", "admin", "prod", 201, None),
        ("admin", "admin", "prod", 201, None),
    ],
)
def test_it_lets_deployers_of_an_environment_and_admins_lock_it(cast, who, scope, environment, status, reason):
    client = api_as(getattr(cast, who), scope)
    locked = client.post("/api/v1/locks/", {"environment": environment, "reason": "incident"}, **JSON)
    frozen = client.post(
        "/api/v1/freezes/",
        {"environment": environment, "ends_at": (timezone.now() + timedelta(hours=1)).isoformat(), "reason": "12.12"},
        **JSON,
    )
    assert (locked.status_code, frozen.status_code) == (status, status)
    if reason:
        assert locked.json()["reasons"] == frozen.json()["reasons"] == [reason]
    assert Lock.objects.exists() == FreezeWindow.objects.exists() == (status == 201)


def test_it_lets_only_deployers_of_the_environment_release_a_lock(cast):
    lock = Lock.objects.create(environment=cast.prod, reason="incident", locked_by=cast.dave)
    refused = api_as(cast.alice, "admin").post(f"/api/v1/locks/{lock.pk}/release/", **JSON)
    assert refused.status_code == 403
    assert api_as(cast.dave, "deploy").post(f"/api/v1/locks/{lock.pk}/release/", **JSON).status_code == 403
    assert api_as(cast.dave, "admin").post(f"/api/v1/locks/{lock.pk}/release/", **JSON).status_code == 200


def test_it_lets_only_deployers_of_the_environment_end_a_freeze(cast):
    now = timezone.now()
    freeze = FreezeWindow.objects.create(
        environment=cast.prod, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), reason="x"
    )
    assert api_as(cast.alice, "admin").post(f"/api/v1/freezes/{freeze.pk}/end/", **JSON).status_code == 403
    assert api_as(cast.dave, "admin").post(f"/api/v1/freezes/{freeze.pk}/end/", **JSON).status_code == 200
