"""Every /api/v1/ endpoint through the HTTP client with bearer tokens: what it answers, what it
changes, and the 400s, 404s and 409s of bad input (which change nothing).

The cast (tests/factories.py): alice deploys to dev and staging, bob and carol approve, dave
deploys to prod and approves, erin only looks, admin is staff.
"""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import FreezeWindow, Lock
from releases import flows, states
from releases.models import Approval, Build, Deployment, Release
from tests.factories import make_deployment, make_release, make_service, make_user, pending_in_staging, succeed_in
from tests.support.api import api_as

JSON = {"format": "json"}


# Services and environments ------------------------------------------------------------------


def test_it_lists_services(cast):
    response = api_as(cast.erin, "read").get("/api/v1/services/")
    assert response.status_code == 200
    assert [s["slug"] for s in response.json()] == ["storefront"]
    assert response.json()[0]["web_url"] == "http://testserver/services/storefront/"


def test_it_shows_one_service_and_404s_an_unknown_one(cast):
    client = api_as(cast.erin, "read")
    assert client.get("/api/v1/services/storefront/").json()["image_repository"] == "registry.example/storefront"
    missing = client.get("/api/v1/services/nope/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found.", "reasons": ["Not found."]}


def test_it_lists_environments_in_promotion_order_with_what_runs_there(cast):
    old, new = make_release(cast.service, version="1.0.0"), make_release(cast.service, version="1.1.0")
    succeed_in(old, cast.dev)
    make_deployment(new, cast.dev, state=states.ROLLING_OUT)
    environments = api_as(cast.erin, "read").get("/api/v1/environments/").json()
    assert [e["slug"] for e in environments] == ["dev", "staging", "prod"]
    dev = environments[0]["services"][0]
    assert dev["service"] == "storefront"
    assert dev["version"] == "1.0.0"
    assert dev["latest"]["state"] == "rolling_out"
    assert dev["latest"]["version"] == "1.1.0"
    assert environments[2]["services"][0]["version"] == ""
    assert environments[2]["services"][0]["running"] is None
    assert environments[2]["required_approvals"] == 2


def test_it_shows_freezes_and_locks_of_an_environment(cast):
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=cast.prod, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), reason="12.12"
    )
    FreezeWindow.objects.create(environment=cast.prod, starts_at=now - timedelta(days=2), ends_at=now, reason="over")
    Lock.objects.create(environment=cast.prod, service_slug="storefront", reason="incident", locked_by=cast.dave)
    Lock.objects.create(environment=cast.prod, reason="old", released_at=now)
    prod = api_as(cast.erin, "read").get("/api/v1/environments/prod/").json()
    assert prod["frozen"] is True
    assert [f["reason"] for f in prod["freezes"]] == ["12.12"]
    assert [(lock["service"], lock["reason"], lock["locked_by"]) for lock in prod["locks"]] == [
        ("storefront", "incident", "dave")
    ]
    assert api_as(cast.erin, "read").get("/api/v1/environments/dev/").json()["frozen"] is False


def test_it_reads_environments_in_the_same_number_of_queries_whatever_the_data(cast):
    client = api_as(cast.erin, "read")
    succeed_in(make_release(cast.service), cast.dev)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/environments/").status_code == 200
        return len(queries)

    few = count()
    for n in range(5):
        service = make_service()
        release = make_release(service)
        for environment in (cast.dev, cast.staging, cast.prod):
            succeed_in(release, environment)
            Lock.objects.create(environment=environment, service_slug=service.slug, reason=f"lock {n}")
    assert count() == few


# Releases -----------------------------------------------------------------------------------

ARTIFACT = {
    "service": "storefront",
    "version": "1.4.2",
    "git_sha": "3F6C2A1B9D0E4F5A6B7C8D9E0F1A2B3C4D5E6F70",
    "build_url": "https://jenkins.example/job/storefront/112/",
    "test_summary": {"total": 412, "failed": 0, "skipped": 2},
}


def test_it_records_a_release_from_ci(cast):
    response = api_as(cast.alice, "deploy").post("/api/v1/releases/", ARTIFACT, **JSON)
    assert response.status_code == 201
    release = Release.objects.get()
    assert response.json()["id"] == release.pk
    assert release.image == "registry.example/storefront:1.4.2"
    assert release.git_sha == "3f6c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70"
    assert release.jenkins_build_url == ARTIFACT["build_url"]
    assert release.test_summary == {"total": 412, "passed": 410, "failed": 0, "skipped": 2, "failed_tests": []}
    assert (release.source, release.created_by) == ("api", cast.alice)


def test_it_answers_a_retried_release_unchanged(cast):
    client = api_as(cast.alice, "deploy")
    first = client.post("/api/v1/releases/", ARTIFACT, **JSON)
    again = client.post("/api/v1/releases/", ARTIFACT, **JSON)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Release.objects.count() == 1


def test_it_refuses_another_artifact_under_an_existing_version(cast):
    client = api_as(cast.alice, "deploy")
    client.post("/api/v1/releases/", ARTIFACT, **JSON)
    response = client.post("/api/v1/releases/", {**ARTIFACT, "image": "registry.example/storefront:other"}, **JSON)
    assert response.status_code == 409
    assert response.json()["reasons"] == [
        "Storefront already has a release 1.4.2 (registry.example/storefront:1.4.2). "
        "Releases are immutable: build a new version."
    ]
    assert Release.objects.get().image == "registry.example/storefront:1.4.2"


def test_it_keeps_releases_immutable(cast):
    release = make_release(cast.service, version="1.0.0")
    client = api_as(cast.admin, "admin")
    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(f"/api/v1/releases/{release.pk}/", {"image": "evil:1"}, **JSON)
        assert response.status_code == 405, method
        assert "not allowed" in response.json()["detail"]
    assert Release.objects.get().image == release.image


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"version": "1.0 beta"}, "version", "A version has letters, digits and . _ + - only."),
        ({"version": ""}, "version", "This field may not be blank."),
        ({"git_sha": "xyz"}, "git_sha", "A git sha is 7 to 40 hex digits."),
        ({"service": "nope"}, "service", "Object with slug=nope does not exist."),
        ({"image": "has space:1"}, "image", "An image reference has no spaces (at most 500 characters)."),
        ({"build_url": "javascript:alert(1)"}, "build_url", "Enter a valid URL."),
        ({"test_summary": {"total": 1, "failed": 2}}, "test_summary", "failed + skipped is more than total."),
        ({"test_summary": {"total": -1}}, "test_summary", "Ensure this value is greater than or equal to 0."),
        ({"test_summary": "green"}, "test_summary", "Expected an object."),
        ({"version": 7}, "version", "Expected a string."),
        ({"test_summary": {"total": "7"}}, "test_summary", "total: Expected a whole number."),
        ({"test_summary": {"total": 1, "failed_tests": [3]}}, "test_summary", "failed_tests: Expected a string."),
    ],
)
def test_it_rejects_bad_release_input_with_field_errors(cast, change, field, message):
    response = api_as(cast.alice, "deploy").post("/api/v1/releases/", {**ARTIFACT, **change}, **JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "The request is not valid: see errors."
    assert field in body["errors"]
    assert any(message in reason for reason in body["reasons"]), body
    assert not Release.objects.exists()


def test_it_answers_malformed_json_with_a_400(cast):
    response = api_as(cast.alice, "deploy").post(
        "/api/v1/releases/", data='{"service": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


def test_it_answers_a_form_body_with_a_415(cast):
    response = api_as(cast.alice, "deploy").post("/api/v1/releases/", {"service": "storefront", "version": "1"})
    assert response.status_code == 415
    assert not Release.objects.exists()


def test_it_lists_releases_newest_first_filtered_by_service(cast):
    other = make_service(slug="search")
    first, second = make_release(cast.service), make_release(cast.service)
    make_release(other)
    response = api_as(cast.erin, "read").get("/api/v1/releases/?service=storefront")
    assert [r["id"] for r in response.json()["results"]] == [second.pk, first.pk]
    assert api_as(cast.erin, "read").get("/api/v1/releases/?service=nope").status_code == 400


def test_it_shows_one_release(cast):
    release = make_release(cast.service, version="2.0.0", test_summary={"total": 3, "failed": 0})
    body = api_as(cast.erin, "read").get(f"/api/v1/releases/{release.pk}/").json()
    assert (body["service"], body["version"], body["test_summary"]) == ("storefront", "2.0.0", release.test_summary)
    assert api_as(cast.erin, "read").get("/api/v1/releases/999999/").status_code == 404


# Deployments: request, list, detail ---------------------------------------------------------


def test_it_requests_a_deployment_by_service_and_version(cast):
    make_release(cast.service, version="1.4.2")
    response = api_as(cast.alice, "deploy").post(
        "/api/v1/deployments/", {"service": "storefront", "version": "1.4.2", "environment": "dev"}, **JSON
    )
    assert response.status_code == 201
    deployment = Deployment.objects.get()
    body = response.json()
    assert body["id"] == deployment.pk
    assert body["state"] == deployment.state == states.APPROVED  # dev needs no approvals
    assert body["requested_by"] == "alice"
    assert [e["kind"] for e in body["timeline"]] == ["requested", "state"]


def test_it_requests_a_deployment_by_release_id_pending_approval(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    response = api_as(cast.alice, "deploy").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "staging"}, **JSON
    )
    assert response.status_code == 201
    assert response.json()["state"] == "pending_approval"
    assert response.json()["required_approvals"] == 1


def test_it_answers_409_with_the_reason_when_another_deployment_is_under_way(cast):
    pending = pending_in_staging(cast)
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    response = api_as(cast.alice, "deploy").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "staging"}, **JSON
    )
    assert response.status_code == 409
    assert response.json()["reasons"] == [
        f"Storefront already has deployment #{pending.pk} pending approval in Staging. "
        "Wait for it to finish or cancel it."
    ]
    assert Deployment.objects.filter(environment=cast.staging).count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"service": "storefront", "version": "9.9.9", "environment": "dev"}, "version"),
        ({"service": "storefront", "environment": "dev"}, "release"),
        ({"release": 999999, "environment": "dev"}, "release"),
        ({"release": "x", "environment": "dev"}, "release"),
        ({"service": "store\x00front", "version": "1.0.0", "environment": "dev"}, "service"),
        ({"service": "storefront", "version": "1.0\x00", "environment": "dev"}, "version"),
        ({"service": "storefront", "version": "1.0.0", "environment": "stagin"}, "environment"),
        ({"service": "storefront", "version": "1.0.0", "environment": "dev", "override_reason": "x" * 501}, None),
    ],
)
def test_it_rejects_a_bad_deployment_request_and_changes_nothing(cast, payload, field):
    make_release(cast.service, version="1.0.0")
    response = api_as(cast.admin, "admin").post("/api/v1/deployments/", payload, **JSON)
    assert response.status_code == 400
    assert (field or "override_reason") in response.json()["errors"]
    assert not Deployment.objects.exists()


def test_it_lists_deployments_with_the_filters_of_history(cast):
    release = make_release(cast.service)
    in_dev = succeed_in(release, cast.dev, requested_by=cast.alice)
    failed = make_deployment(release, cast.staging, state=states.FAILED, requested_by=cast.dave)
    old = make_deployment(release, cast.prod, state=states.CANCELLED)
    Deployment.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    client = api_as(cast.erin, "read")

    def ids(query):
        response = client.get(f"/api/v1/deployments/?{query}")
        assert response.status_code == 200, response.json()
        return [d["id"] for d in response.json()["results"]]

    assert ids("") == [old.pk, failed.pk, in_dev.pk]
    assert ids("environment=dev") == [in_dev.pk]
    assert ids("state=failed") == [failed.pk]
    assert ids("requester=dave") == [failed.pk]
    assert ids("service=storefront&environment=staging") == [failed.pk]
    today = timezone.localdate()
    assert ids(f"since={today}") == [failed.pk, in_dev.pk]
    assert ids(f"until={today - timedelta(days=5)}") == [old.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("state=exploded", "state"),
        ("since=yesterday", "since"),
        ("since=2026-02-02&until=2026-02-01", "until"),
        ("requester=nobody", "requester"),
        ("cursor=garbage", "cursor"),
        ("service=", "service"),
        ("service=store%00front", "service"),
        ("limit=null", "limit"),
        ("limit=0", "limit"),
    ],
)
def test_it_rejects_bad_history_filters(cast, query, field):
    response = api_as(cast.erin, "read").get(f"/api/v1/deployments/?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_it_pages_deployments_by_keyset_without_gaps_or_repeats(cast):
    release = make_release(cast.service)
    made = [make_deployment(release, cast.dev, state=states.SUCCEEDED).pk for _ in range(7)]
    client = api_as(cast.erin, "read")
    seen, url = [], "/api/v1/deployments/?limit=3&environment=dev"
    while url:
        page = client.get(url).json()
        assert len(page["results"]) <= 3
        seen += [d["id"] for d in page["results"]]
        url = page["next"]
    assert seen == sorted(made, reverse=True)


def test_it_lists_deployments_in_the_same_number_of_queries_whatever_the_page(cast):
    client = api_as(cast.erin, "read")
    release = make_release(cast.service)

    def count():
        with CaptureQueriesContext(connection) as queries:
            client.get("/api/v1/deployments/")
        return len(queries)

    make_deployment(release, cast.dev, state=states.SUCCEEDED, requested_by=cast.alice)
    one = count()
    for user in (cast.bob, cast.dave, cast.admin):
        for environment in (cast.dev, cast.staging, cast.prod):
            make_deployment(make_release(make_service()), environment, state=states.FAILED, requested_by=user)
    assert count() == one


def test_it_shows_a_deployment_with_approvals_timeline_and_what_i_may_do(cast):
    deployment = pending_in_staging(cast)
    response = api_as(cast.bob, "approve").get(f"/api/v1/deployments/{deployment.pk}/")
    body = response.json()
    assert body["state"] == "pending_approval"
    assert body["approvals"] == []
    assert [e["seq"] for e in body["timeline"]] == [1]
    assert body["timeline"][0]["message"] == f"alice requested Storefront {deployment.release.version} in Staging."
    assert body["timeline_complete"] is True
    assert body["may"]["approve"] == {"allowed": True, "reasons": []}
    assert body["may"]["cancel"] == {
        "allowed": False,
        "reasons": [
            "Only the requester or a deployer for Staging can cancel.",
            "API token bob-approve has the scopes approve; this needs the deploy scope. "
            "Make a token with it on your API tokens page.",
        ],
    }


def test_it_gives_the_timeline_after_a_seq(cast):
    deployment = pending_in_staging(cast)
    for n in range(3):
        deployment.log("note", f"note {n}")
    body = api_as(cast.erin, "read").get(f"/api/v1/deployments/{deployment.pk}/?after_seq=2").json()
    assert [e["seq"] for e in body["timeline"]] == [3, 4]
    assert body["last_seq"] == 4


def test_it_404s_an_unknown_deployment(cast):
    assert api_as(cast.erin, "read").get("/api/v1/deployments/999999/").status_code == 404
    assert api_as(cast.bob, "approve").post("/api/v1/deployments/999999/approve/", {}, **JSON).status_code == 404


# Deployments: decide, cancel, rollback --------------------------------------------------------


def test_it_approves_with_a_token_and_the_timeline_says_so(cast):
    deployment = pending_in_staging(cast)
    response = api_as(cast.bob, "approve", name="ci-bot").post(
        f"/api/v1/deployments/{deployment.pk}/approve/", {"comment": "Dashboards are green."}, **JSON
    )
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "approved"
    assert body["approvals"][0]["user"] == "bob"
    assert body["approvals_count"] == 1
    event = deployment.events.get(kind="approval")
    assert event.message.startswith("bob approved")
    assert "API token ci-bot" in event.message
    assert event.message.endswith("(1 of 1): “Dashboards are green.”") or "(1 of 1) via" in event.message
    assert event.data["via"] == "API token ci-bot"
    assert event.actor == cast.bob


def test_it_rejects_with_a_comment_and_the_timeline_says_so(cast):
    deployment = pending_in_staging(cast)
    response = api_as(cast.bob, "approve", name="chatops").post(
        f"/api/v1/deployments/{deployment.pk}/reject/", {"comment": "Tests were skipped."}, **JSON
    )
    assert response.status_code == 200
    assert response.json()["state"] == "rejected"
    rejection = deployment.events.get(kind="rejection")
    assert rejection.message.startswith("bob rejected")
    assert "API token chatops" in rejection.message
    assert rejection.message.endswith("“Tests were skipped.”")
    assert rejection.data["via"] == "API token chatops"


def test_it_wants_a_comment_to_reject(cast):
    deployment = pending_in_staging(cast)
    response = api_as(cast.bob, "approve").post(
        f"/api/v1/deployments/{deployment.pk}/reject/", {"comment": " "}, **JSON
    )
    assert response.status_code == 400
    assert response.json()["errors"]["comment"] == ["Say why you reject it, so the requester can fix it."]
    assert not Approval.objects.exists()


def test_it_says_why_a_second_decision_is_refused(cast):
    deployment = pending_in_staging(cast)
    cast.bob.groups.add(cast.approvers)
    client = api_as(cast.dave, "approve")
    release = make_release(cast.service)
    succeed_in(release, cast.staging)
    prod = flows.request_deployment(cast.dave, release, cast.prod)
    assert client.post(f"/api/v1/deployments/{deployment.pk}/approve/", {}, **JSON).status_code == 200
    again = client.post(f"/api/v1/deployments/{deployment.pk}/approve/", {}, **JSON)
    assert again.status_code == 403
    assert again.json()["reasons"] == [f"Deployment #{deployment.pk} is approved: there is nothing to decide."]
    own = client.post(f"/api/v1/deployments/{prod.pk}/approve/", {}, **JSON)
    assert own.json()["reasons"] == ["You requested this deployment; Prod needs someone else to approve it."]


def test_it_cancels_a_deployment_with_a_reason(cast):
    deployment = pending_in_staging(cast)
    response = api_as(cast.alice, "deploy").post(
        f"/api/v1/deployments/{deployment.pk}/cancel/", {"reason": "wrong build"}, **JSON
    )
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["reason"] == "wrong build"


def test_it_answers_409_when_cancelling_a_deployment_that_changed_meanwhile(cast):
    deployment = pending_in_staging(cast)
    Deployment.objects.filter(pk=deployment.pk).update(state=states.SUCCEEDED)
    response = api_as(cast.alice, "deploy").post(f"/api/v1/deployments/{deployment.pk}/cancel/", {}, **JSON)
    assert response.status_code == 403
    assert response.json()["reasons"] == [f"Deployment #{deployment.pk} is succeeded: too late to cancel."]


def test_it_rolls_back_to_the_last_good_release(cast):
    good, bad = make_release(cast.service, version="1.0.0"), make_release(cast.service, version="1.1.0")
    succeed_in(good, cast.dev)
    failed = make_deployment(bad, cast.dev, state=states.FAILED, started_at=timezone.now(), finished_at=timezone.now())
    response = api_as(cast.alice, "deploy").post(
        "/api/v1/services/storefront/rollback/", {"environment": "dev", "reason": "5xx after 1.1.0"}, **JSON
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "rollback"
    assert (body["rolls_back"], body["automatic"]) == (failed.pk, False)
    assert body["release"]["version"] == "1.0.0"
    assert body["state"] == "approved"
    assert Deployment.objects.get(pk=body["id"]).reason == "5xx after 1.1.0"


def test_it_wants_a_reason_to_roll_back_production(cast):
    response = api_as(cast.dave, "deploy").post(
        "/api/v1/services/storefront/rollback/", {"environment": "prod"}, **JSON
    )
    assert response.status_code == 400
    assert response.json()["errors"]["reason"] == ["Say why you roll back in Prod."]


def test_it_refuses_a_rollback_with_nothing_to_go_back_to(cast):
    response = api_as(cast.alice, "deploy").post(
        "/api/v1/services/storefront/rollback/", {"environment": "dev", "reason": "x"}, **JSON
    )
    assert response.status_code == 403
    assert response.json()["reasons"]
    assert not Deployment.objects.exists()


def test_it_lists_what_waits_for_my_decision(cast):
    deployment = pending_in_staging(cast)
    assert [d["id"] for d in api_as(cast.bob, "read").get("/api/v1/approvals/").json()] == [deployment.pk]
    assert api_as(cast.erin, "read").get("/api/v1/approvals/").json() == []


# Builds -------------------------------------------------------------------------------------


@pytest.fixture
def buildable(cast):
    cast.service.jenkins_build_job = "storefront/build"
    cast.service.save()
    return cast


def test_it_starts_a_build(buildable):
    response = api_as(buildable.alice, "deploy").post(
        "/api/v1/builds/", {"service": "storefront", "ref": "v1.4.2", "version": "1.4.2"}, **JSON
    )
    assert response.status_code == 201
    build = Build.objects.get()
    assert response.json()["id"] == build.pk
    assert {k: build.parameters[k] for k in ("SERVICE", "GIT_REF", "VERSION")} == {
        "SERVICE": "storefront",
        "GIT_REF": "v1.4.2",
        "VERSION": "1.4.2",
    }
    assert build.triggered_by == buildable.alice
    assert response.json()["log"][0]["kind"] == "requested"


def test_it_refuses_a_build_of_a_service_without_a_build_job(cast):
    response = api_as(cast.alice, "deploy").post("/api/v1/builds/", {"service": "storefront"}, **JSON)
    assert response.status_code == 403
    assert response.json()["reasons"] == ["Storefront has no Jenkins build job. An admin can set one on the service."]


def test_it_rejects_a_bad_git_ref(buildable):
    response = api_as(buildable.alice, "deploy").post(
        "/api/v1/builds/", {"service": "storefront", "ref": "main; rm -rf /"}, **JSON
    )
    assert response.status_code == 400
    assert response.json()["errors"]["ref"] == ["A git ref has letters, digits and . _ / - only."]
    assert not Build.objects.exists()


def test_it_shows_a_build_with_its_log_and_lists_builds(buildable):
    client = api_as(buildable.alice, "deploy")
    build_id = client.post("/api/v1/builds/", {"service": "storefront"}, **JSON).json()["id"]
    body = client.get(f"/api/v1/builds/{build_id}/?after_seq=0").json()
    assert body["state"] == "queued"
    assert [e["seq"] for e in body["log"]] == [1]
    assert client.get(f"/api/v1/builds/{build_id}/?after_seq=1").json()["log"] == []
    assert [b["id"] for b in client.get("/api/v1/builds/?service=storefront").json()["results"]] == [build_id]


def test_it_aborts_a_build_jenkins_has_not_queued_yet(buildable):
    client = api_as(buildable.alice, "deploy")
    build_id = client.post("/api/v1/builds/", {"service": "storefront"}, **JSON).json()["id"]
    response = client.post(f"/api/v1/builds/{build_id}/abort/", **JSON)
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    again = client.post(f"/api/v1/builds/{build_id}/abort/", **JSON)
    assert again.status_code == 403
    assert again.json()["reasons"] == [f"Build #{build_id} is cancelled: there is nothing to stop."]


# Freezes and locks -------------------------------------------------------------------------------


def test_it_locks_a_service_and_deployments_are_refused_with_the_lock_reason(cast):
    release = make_release(cast.service)
    response = api_as(cast.alice, "admin").post(
        "/api/v1/locks/", {"environment": "dev", "service": "storefront", "reason": "checkout incident"}, **JSON
    )
    assert response.status_code == 201
    assert response.json()["locked_by"] == "alice"
    refused = api_as(cast.alice, "deploy").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "dev"}, **JSON
    )
    assert refused.status_code == 403
    assert refused.json()["reasons"] == [
        "Dev is locked for storefront by alice: checkout incident. An admin can override with a reason."
    ]


def test_it_rejects_a_lock_of_an_unknown_service(cast):
    response = api_as(cast.alice, "admin").post(
        "/api/v1/locks/", {"environment": "dev", "service": "storefrnt", "reason": "typo"}, **JSON
    )
    assert response.status_code == 400
    assert response.json()["errors"]["service"] == ["Object with slug=storefrnt does not exist."]
    assert not Lock.objects.exists()


def test_it_releases_a_lock_once(cast):
    lock = Lock.objects.create(environment=cast.dev, reason="incident", locked_by=cast.alice)
    client = api_as(cast.alice, "admin")
    response = client.post(f"/api/v1/locks/{lock.pk}/release/", **JSON)
    assert response.status_code == 200
    assert response.json()["active"] is False
    again = client.post(f"/api/v1/locks/{lock.pk}/release/", **JSON)
    assert again.status_code == 403
    assert again.json()["reasons"] == ["This lock was released already."]
    assert client.get("/api/v1/locks/").json() == []


def test_it_records_who_locked_and_released_in_the_audit_log(cast):
    client = api_as(cast.alice, "admin")
    lock_id = client.post("/api/v1/locks/", {"environment": "dev", "reason": "incident"}, **JSON).json()["id"]
    client.post(f"/api/v1/locks/{lock_id}/release/", **JSON)
    entries = LogEntry.objects.filter(object_pk=str(lock_id), content_type__model="lock")
    assert [(e.action, e.actor) for e in entries.order_by("timestamp")] == [
        (LogEntry.Action.CREATE, cast.alice),
        (LogEntry.Action.UPDATE, cast.alice),
    ]


def test_it_freezes_an_environment_and_ends_the_freeze(cast):
    client = api_as(cast.dave, "admin")
    ends = timezone.now() + timedelta(hours=2)
    response = client.post(
        "/api/v1/freezes/", {"environment": "prod", "ends_at": ends.isoformat(), "reason": "12.12"}, **JSON
    )
    assert response.status_code == 201
    assert response.json()["active"] is True
    assert client.get("/api/v1/environments/prod/").json()["frozen"] is True
    ended = client.post(f"/api/v1/freezes/{response.json()['id']}/end/", **JSON)
    assert ended.status_code == 200
    assert client.get("/api/v1/environments/prod/").json()["frozen"] is False
    assert client.post(f"/api/v1/freezes/{response.json()['id']}/end/", **JSON).status_code == 409


def test_it_removes_a_freeze_that_has_not_started(cast):
    client = api_as(cast.dave, "admin")
    later = timezone.now() + timedelta(days=1)
    made = client.post(
        "/api/v1/freezes/",
        {
            "environment": "prod",
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(hours=1)).isoformat(),
            "reason": "holiday",
        },
        **JSON,
    ).json()
    assert client.get("/api/v1/freezes/?environment=prod").json()[0]["active"] is False
    assert client.post(f"/api/v1/freezes/{made['id']}/end/", **JSON).status_code == 204
    assert not FreezeWindow.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ends_at": "2020-01-01T00:00:00Z"}, "This freeze would be over already."),
        ({"starts_at": "2099-01-02T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"}, "A freeze ends after it starts."),
        ({"ends_at": "tomorrow"}, "Datetime has wrong format."),
    ],
)
def test_it_rejects_a_freeze_that_makes_no_sense(cast, change, message):
    payload = {"environment": "prod", "reason": "x", **change}
    response = api_as(cast.dave, "admin").post("/api/v1/freezes/", payload, **JSON)
    assert response.status_code == 400
    assert any(message in reason for reason in response.json()["reasons"])
    assert not FreezeWindow.objects.exists()


# DORA, me, errors ---------------------------------------------------------------------------------


def test_it_gives_the_dora_figures_of_the_page(cast):
    release = make_release(cast.service)
    now = timezone.now()
    Release.objects.filter(pk=release.pk).update(created_at=now - timedelta(hours=3))
    succeed_in(release, cast.prod, finished_at=now - timedelta(hours=1))
    make_deployment(make_release(cast.service), cast.prod, state=states.FAILED, finished_at=now)
    body = api_as(cast.erin, "read").get("/api/v1/dora/?days=7").json()
    assert body["environment"] == "prod"
    assert body["days"] == 7
    overall = body["overall"]
    assert overall["deployments"] == 1
    assert overall["lead_time_seconds"] == pytest.approx(2 * 3600, abs=5)
    assert overall["change_failure_rate"] == 0.5
    assert [s["service"] for s in body["services"]] == ["storefront"]


@pytest.mark.parametrize("query", ["days=14", "environment=nope", "days=x"])
def test_it_rejects_bad_dora_parameters(cast, query):
    assert api_as(cast.erin, "read").get(f"/api/v1/dora/?{query}").status_code == 400


def test_it_says_who_a_token_acts_as(cast):
    body = api_as(cast.dave, "approve", "deploy", name="laptop", days=30).get("/api/v1/me/").json()
    assert body["username"] == "dave"
    assert body["groups"] == ["approvers", "release-managers"]
    assert body["token"]["name"] == "laptop"
    assert body["token"]["scopes"] == ["deploy", "approve"]
    assert body["is_service_account"] is False


def test_it_answers_unknown_api_paths_with_json_and_never_a_login_page(cast):
    for client in (api_as(cast.erin, "read"), api_as(cast.erin, "read").__class__()):
        response = client.get("/api/v1/nothing/")
        assert response.status_code == 404
        assert response.json()["detail"] == "There is no API endpoint /api/v1/nothing/."
    assert (
        api_as(cast.erin).post("/api/v1/releases", {}, **JSON).json()["detail"].endswith("API paths end with a slash.")
    )


def test_it_keeps_a_deployment_view_working_for_a_user_made_later(cast):
    """Regression guard: a token made for a brand-new user works at once (no cached groups)."""
    newcomer = make_user("frank", cast.approvers)
    deployment = pending_in_staging(cast)
    response = api_as(newcomer, "approve").post(f"/api/v1/deployments/{deployment.pk}/approve/", {}, **JSON)
    assert response.status_code == 200
