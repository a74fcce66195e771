"""The pages through the HTTP client: 404s, invalid forms, double submits, rollback, history."""

import re
from datetime import datetime

import pytest
from django.utils import timezone

from clusters.models import Lock
from releases import flows, states
from releases.models import Approval, Deployment
from tests.factories import (
    client_for,
    make_deployment,
    make_release,
    make_service,
    pending_in_prod,
    pending_in_staging,
    succeed_in,
)

# Pages render -----------------------------------------------------------------------------


def test_it_renders_every_page_for_a_viewer(cast):
    release = make_release(cast.service)
    deployment = succeed_in(release, cast.dev)
    client = client_for(cast.erin)
    for url in ["/", "/services/storefront/", f"/releases/{release.pk}/", f"/deployments/{deployment.pk}/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert release.version.encode() in response.content, url
    assert client.get("/approvals/").status_code == 200
    assert client.get("/history/").status_code == 200


def test_it_shows_the_version_running_in_each_environment_on_the_dashboard(cast):
    old, new = make_release(cast.service, version="1.0.0"), make_release(cast.service, version="1.1.0")
    succeed_in(old, cast.dev)
    succeed_in(old, cast.staging)
    succeed_in(new, cast.dev)
    body = client_for(cast.erin).get("/").content.decode()
    dev_cell = body.split('data-environment="dev"')[1].split("</td>")[0]
    staging_cell = body.split('data-environment="staging"')[1].split("</td>")[0]
    prod_cell = body.split('data-environment="prod"')[1].split("</td>")[0]
    assert "1.1.0" in dev_cell
    assert "1.0.0" in staging_cell
    assert "never deployed" in prod_cell


def test_it_counts_what_waits_for_my_approval_on_the_dashboard(cast):
    pending_in_staging(cast)
    assert "1 waiting for your approval" in client_for(cast.bob).get("/").content.decode()
    assert "Nothing waits for your approval" in client_for(cast.erin).get("/").content.decode()


def test_it_lists_in_the_inbox_only_what_i_may_still_decide(cast):
    deployment = pending_in_staging(cast)
    assert f"#{deployment.pk}" in client_for(cast.bob).get("/approvals/").content.decode()
    assert f"#{deployment.pk}" not in client_for(cast.erin).get("/approvals/").content.decode()
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    assert f"#{deployment.pk}" not in client_for(cast.bob).get("/approvals/").content.decode()


def test_it_shows_disabled_deploy_buttons_with_their_reasons(cast):
    release = make_release(cast.service)
    body = client_for(cast.alice).get(f"/releases/{release.pk}/").content.decode()
    staging_row = body.split("Deploy to Staging")[0].rsplit("<tr", 1)[1] + body.split("Deploy to Staging")[1]
    assert "disabled" in staging_row
    assert "has not succeeded in Dev yet: deploy it there first." in body
    assert "You are not a deployer for Prod (release-managers). Ask an admin to add you." in body
    dev_button = body.split("Deploy to Dev")[0].rsplit("<button", 1)[1]
    assert "disabled" not in dev_button


# Unknown ids → the 404 page -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/services/no-such-service/"),
        ("get", "/releases/999999/"),
        ("get", "/deployments/999999/"),
        ("post", "/releases/999999/deploy/"),
        ("post", "/deployments/999999/decide/"),
        ("post", "/deployments/999999/cancel/"),
        ("post", "/services/storefront/environments/nowhere/rollback/"),
        ("post", "/services/nothing/environments/dev/rollback/"),
        ("get", "/no/such/page/"),
    ],
)
def test_it_answers_unknown_ids_with_the_404_page(cast, method, url):
    response = getattr(client_for(cast.admin), method)(url)
    assert response.status_code == 404
    assert b"There is nothing at this address" in response.content


def test_it_answers_an_id_too_large_for_the_database_with_404(cast):
    assert client_for(cast.erin).get("/deployments/99999999999999999999/").status_code == 404


def test_it_refuses_get_on_action_urls(cast):
    deployment = pending_in_staging(cast)
    assert client_for(cast.bob).get(f"/deployments/{deployment.pk}/decide/").status_code == 405


# Invalid forms → inline message, 400, nothing saved -----------------------------------------


def test_it_refuses_a_rejection_without_a_comment(cast):
    deployment = pending_in_staging(cast)
    response = client_for(cast.bob).post(
        f"/deployments/{deployment.pk}/decide/", {"decision": "reject", "comment": " "}
    )
    assert response.status_code == 400
    assert "Say why you reject it, so the requester can fix it." in response.content.decode()
    assert not Approval.objects.exists()
    deployment.refresh_from_db()
    assert deployment.state == states.PENDING_APPROVAL


def test_it_refuses_an_unknown_decision(cast):
    deployment = pending_in_staging(cast)
    response = client_for(cast.bob).post(f"/deployments/{deployment.pk}/decide/", {"decision": "maybe"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Approval.objects.exists()


@pytest.mark.parametrize(
    ("form", "message"),
    [({"environment": "moon"}, "Select a valid choice"), ({}, "This field is required")],
    ids=["unknown", "missing"],
)
def test_it_refuses_a_deploy_form_without_a_known_environment(cast, form, message):
    release = make_release(cast.service)
    response = client_for(cast.alice).post(f"/releases/{release.pk}/deploy/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Deployment.objects.exists()


def test_it_refuses_an_overlong_cancel_reason(cast):
    deployment = pending_in_staging(cast)
    response = client_for(cast.alice).post(f"/deployments/{deployment.pk}/cancel/", {"reason": "x" * 501})
    assert response.status_code == 400
    assert "500 characters at most" in response.content.decode()
    deployment.refresh_from_db()
    assert deployment.state == states.PENDING_APPROVAL


# Double submits ------------------------------------------------------------------------------


def test_it_creates_one_deployment_when_the_deploy_form_is_submitted_twice(cast):
    release = make_release(cast.service)
    client = client_for(cast.alice)
    succeed_in(release, cast.dev)
    first = client.post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    second = client.post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    deployment = Deployment.objects.get(environment=cast.staging)
    assert first.status_code == 302
    assert first["Location"] == f"/deployments/{deployment.pk}/"
    assert second.status_code == 409
    assert f"Storefront already has deployment #{deployment.pk} pending approval in Staging" in second.content.decode()


def test_it_counts_an_approval_submitted_twice_once(cast):
    deployment = pending_in_prod(cast)
    client = client_for(cast.bob)
    assert client.post(f"/deployments/{deployment.pk}/decide/", {"decision": "approve"}).status_code == 302
    second = client.post(f"/deployments/{deployment.pk}/decide/", {"decision": "approve"})
    assert second.status_code == 403
    assert "You have already decided on this deployment." in second.content.decode()
    assert deployment.approvals.count() == 1
    deployment.refresh_from_db()
    assert deployment.state == states.PENDING_APPROVAL


def test_it_refuses_to_cancel_twice(cast):
    deployment = pending_in_staging(cast)
    client = client_for(cast.alice)
    assert client.post(f"/deployments/{deployment.pk}/cancel/").status_code == 302
    second = client.post(f"/deployments/{deployment.pk}/cancel/")
    assert second.status_code == 403
    assert f"Deployment #{deployment.pk} is cancelled: too late to cancel." in second.content.decode()


def test_it_says_there_is_nothing_to_decide_once_decided(cast):
    deployment = pending_in_staging(cast)
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    response = client_for(cast.carol).post(f"/deployments/{deployment.pk}/decide/", {"decision": "reject"})
    assert response.status_code == 403
    assert f"Deployment #{deployment.pk} is approved: there is nothing to decide." in response.content.decode()


# Approve, reject, cancel through the pages -------------------------------------------------------


def test_it_approves_through_the_page_and_shows_it_in_the_timeline(cast):
    deployment = pending_in_staging(cast)
    response = client_for(cast.bob).post(
        f"/deployments/{deployment.pk}/decide/", {"decision": "approve", "comment": "looks good"}, follow=True
    )
    body = response.content.decode()
    assert "Your decision is recorded." in body
    assert "bob approved (1 of 1): “looks good”" in body
    assert "Approved by 1 of 1." in body
    deployment.refresh_from_db()
    assert deployment.state == states.APPROVED


def test_it_rejects_through_the_page_with_the_comment_as_reason(cast):
    deployment = pending_in_staging(cast)
    client_for(cast.bob).post(f"/deployments/{deployment.pk}/decide/", {"decision": "reject", "comment": "no tests"})
    deployment.refresh_from_db()
    assert deployment.state == states.REJECTED
    assert deployment.reason == "no tests"


def test_it_cancels_through_the_page_with_the_reason(cast):
    deployment = pending_in_staging(cast)
    client_for(cast.alice).post(f"/deployments/{deployment.pk}/cancel/", {"reason": "wrong build"})
    deployment.refresh_from_db()
    assert deployment.state == states.CANCELLED
    assert deployment.reason == "wrong build"
    assert deployment.events.filter(kind="state", message="Cancelled by alice. wrong build").exists()


# Rollback ---------------------------------------------------------------------------------------


def running_two_releases_in_dev(cast):
    old, new = make_release(cast.service, version="1.0.0"), make_release(cast.service, version="1.1.0")
    succeed_in(old, cast.dev)
    current = succeed_in(new, cast.dev, previous_release=old)
    return old, new, current


def test_it_rolls_back_to_the_previous_release_without_approvals(cast):
    old, new, _ = running_two_releases_in_dev(cast)
    response = client_for(cast.alice).post("/services/storefront/environments/dev/rollback/")
    rollback = Deployment.objects.get(kind=Deployment.ROLLBACK)
    assert response.status_code == 302
    assert response["Location"] == f"/deployments/{rollback.pk}/"
    assert rollback.release == old
    assert rollback.previous_release == new
    assert rollback.state == states.APPROVED
    assert [e.message for e in rollback.events.order_by("seq")] == [
        "alice rolled Storefront in Dev back from 1.1.0 to 1.0.0.",
        "Rollbacks need no approval: they restore a release that ran here.",
    ]


def test_it_rolls_back_even_where_approvals_and_promotion_are_required(cast):
    old, new = make_release(cast.service, version="1.0.0"), make_release(cast.service, version="1.1.0")
    succeed_in(old, cast.prod)
    succeed_in(new, cast.prod, previous_release=old)
    client_for(cast.dave).post("/services/storefront/environments/prod/rollback/", {"reason": "1.1.0 breaks checkout"})
    assert Deployment.objects.get(kind=Deployment.ROLLBACK).state == states.APPROVED


def test_it_refuses_a_rollback_with_nothing_to_go_back_to(cast):
    succeed_in(make_release(cast.service), cast.dev)
    response = client_for(cast.alice).post("/services/storefront/environments/dev/rollback/")
    assert response.status_code == 403
    assert "There is no earlier good release of Storefront to go back to." in response.content.decode()
    assert not Deployment.objects.filter(kind=Deployment.ROLLBACK).exists()


def test_it_refuses_a_rollback_by_someone_not_a_deployer(cast):
    running_two_releases_in_dev(cast)
    response = client_for(cast.bob).post("/services/storefront/environments/dev/rollback/")
    assert response.status_code == 403
    assert "You are not a deployer for Dev." in response.content.decode()


def test_it_refuses_a_rollback_while_locked_unless_an_admin_overrides(cast):
    running_two_releases_in_dev(cast)
    Lock.objects.create(environment=cast.dev, reason="incident", locked_by=cast.admin)
    response = client_for(cast.alice).post("/services/storefront/environments/dev/rollback/")
    assert response.status_code == 403
    assert "Dev is locked by admin: incident. An admin can override with a reason." in response.content.decode()
    response = client_for(cast.admin).post(
        "/services/storefront/environments/dev/rollback/", {"override_reason": "the incident is the release"}
    )
    rollback = Deployment.objects.get(kind=Deployment.ROLLBACK)
    assert response.status_code == 302
    assert rollback.override_reason == "the incident is the release"


def test_it_refuses_a_rollback_while_another_deployment_is_active(cast):
    running_two_releases_in_dev(cast)
    active = make_deployment(make_release(cast.service), cast.dev, state=states.ROLLING_OUT)
    response = client_for(cast.alice).post("/services/storefront/environments/dev/rollback/")
    assert response.status_code == 409
    assert f"already has deployment #{active.pk} rolling out in Dev" in response.content.decode()


def test_it_offers_rollback_only_on_the_deployment_that_runs_now(cast):
    old, new, current = running_two_releases_in_dev(cast)
    older = Deployment.objects.get(release=old)
    client = client_for(cast.alice)
    assert "Roll back to 1.0.0" in client.get(f"/deployments/{current.pk}/").content.decode()
    newest = succeed_in(make_release(cast.service, version="1.2.0"), cast.dev, previous_release=new)
    assert "Roll back to" not in client.get(f"/deployments/{current.pk}/").content.decode()
    assert "Roll back to 1.1.0" in client.get(f"/deployments/{newest.pk}/").content.decode()
    assert "Roll back to" not in client.get(f"/deployments/{older.pk}/").content.decode()


# History ------------------------------------------------------------------------------------------


@pytest.fixture
def history(cast):
    """Six deployments across services, environments, states, requesters and days."""
    other = make_service(slug="checkout", name="Checkout")
    day = lambda n: timezone.make_aware(datetime(2026, 3, n, 12))  # noqa: E731
    rows = {
        "a": make_deployment(
            make_release(cast.service), cast.dev, state=states.SUCCEEDED, requested_by=cast.alice, created_at=day(1)
        ),
        "b": make_deployment(
            make_release(cast.service), cast.staging, state=states.FAILED, requested_by=cast.alice, created_at=day(2)
        ),
        "c": make_deployment(
            make_release(other), cast.dev, state=states.SUCCEEDED, requested_by=cast.dave, created_at=day(3)
        ),
        "d": make_deployment(
            make_release(other), cast.prod, state=states.REJECTED, requested_by=cast.dave, created_at=day(4)
        ),
        "e": make_deployment(
            make_release(cast.service), cast.prod, state=states.CANCELLED, requested_by=cast.alice, created_at=day(5)
        ),
        "f": make_deployment(
            make_release(other), cast.staging, state=states.PENDING_APPROVAL, requested_by=cast.dave, created_at=day(6)
        ),
    }
    return rows


def listed(response) -> set[int]:
    body = response.content.decode()
    return {d.pk for d in Deployment.objects.all() if f'href="/deployments/{d.pk}/"' in body}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "abcdef"),
        ("service=checkout", "cdf"),
        ("environment=prod", "de"),
        ("state=succeeded", "ac"),
        ("requester=alice", "abe"),
        ("since=2026-03-03", "cdef"),
        ("until=2026-03-02", "ab"),
        ("since=2026-03-02&until=2026-03-04", "bcd"),
        ("service=storefront&environment=prod&state=cancelled&requester=alice", "e"),
        ("service=checkout&requester=alice", ""),
    ],
)
def test_it_filters_history(cast, history, query, expected):
    response = client_for(cast.erin).get(f"/history/?{query}")
    assert response.status_code == 200
    assert listed(response) == {history[k].pk for k in expected}


def older_link(body):
    """The query of the page's rel="next" (older) link."""
    return body.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")


def test_it_pages_history_with_an_older_link(cast, history, settings):
    settings.HISTORY_PAGE_SIZE = 4
    client = client_for(cast.erin)
    first = client.get("/history/?requester=")
    newest_four = sorted((d.pk for d in history.values()), reverse=True)[:4]
    assert listed(first) == set(newest_four)
    body = first.content.decode()
    assert "« Newest" not in body
    older = older_link(body)
    assert f"before={newest_four[-1]}" in older
    second = client.get(f"/history/{older}")
    assert listed(second) == {history["a"].pk, history["b"].pk}
    assert 'rel="next"' not in second.content.decode()
    assert "« Newest" in second.content.decode()


def test_it_keeps_filters_on_the_older_link(cast, history, settings):
    settings.HISTORY_PAGE_SIZE = 2
    body = client_for(cast.erin).get("/history/?requester=alice").content.decode()
    older = older_link(body)
    second = client_for(cast.erin).get(f"/history/{older}")
    assert listed(second) == {history["a"].pk}


BROKEN_HISTORY_QUERIES = {
    "That page link is broken; start again from the first page.": [
        "before=abc",
        "before=99999999999999999999999",
        "before=-3",
    ],
    "Enter a valid date.": ["since=yesterday"],
    "The end date is before the start date.": ["since=2026-03-05&until=2026-03-01"],
    "Select a valid choice.": ["service=nope", "state=exploded", "requester=nobody"],
}


@pytest.mark.parametrize(
    ("query", "message"), [(query, message) for message, queries in BROKEN_HISTORY_QUERIES.items() for query in queries]
)
def test_it_answers_broken_history_queries_with_400_and_a_message(cast, history, query, message):
    response = client_for(cast.erin).get(f"/history/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_it_keeps_the_conflict_of_a_refusing_verdict():
    """A refusing verdict is falsy: the conflict must still reach the refusal (HTTP 409, not 403)."""
    from releases import rules

    verdict = rules.Verdict()
    verdict.conflict = True
    verdict.refuse("Storefront already has deployment #7 rolling out in Prod.")
    assert rules.Refused(verdict).conflict is True


def test_it_shows_in_history_that_a_failed_deployment_was_rolled_back_automatically(cast):
    good, crash = make_release(cast.service, version="1.3.0"), make_release(cast.service, version="1.4.0-crash")
    succeed_in(good, cast.dev)
    failed = make_deployment(crash, cast.dev, state=states.FAILED, finished_at=timezone.now())
    rollback = make_deployment(
        good, cast.dev, state=states.SUCCEEDED, kind=Deployment.ROLLBACK, rolls_back=failed, automatic=True
    )
    html = client_for(cast.erin).get("/history/?service=storefront").content.decode()
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "1.4.0-crash Dev Failed → rolled back to 1.3.0 (automatic)" in text
    assert f"1.3.0 rollback of #{failed.pk} Dev Rolled back" in text
    assert f'href="/deployments/{rollback.pk}/"' in html
    assert "the portal" in text
