"""Freezes and locks for release managers, outside the admin: pages, rules, Slack, the dashboard."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import FreezeWindow, Lock
from releases import guards, rules
from sandbox import slack as slack_sandbox
from tests.factories import client_for, make_release


def later(hours=2):
    return timezone.localtime(timezone.now() + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def slack(settings):
    handle = slack_sandbox.start()
    settings.SLACK_WEBHOOK_URL = handle.webhook_url
    yield handle
    handle.stop()


def lock_storefront_in_prod(cast, **extra):
    data = {"environment": "prod", "service": "storefront", "reason": "incident 42: checkout errors", **extra}
    return client_for(cast.dave).post("/freezes-and-locks/locks/", {"next": "/services/storefront/", **data})


def test_it_lets_a_release_manager_lock_a_service_from_its_page(cast):
    response = lock_storefront_in_prod(cast, until=later())
    assert response.status_code == 302
    assert response["Location"] == "/services/storefront/"
    lock = Lock.objects.get()
    assert (lock.environment, lock.service_slug, lock.locked_by) == (cast.prod, "storefront", cast.dave)
    assert lock.until > timezone.now()
    body = client_for(cast.erin).get("/services/storefront/").content.decode()
    assert "locked</span> <strong>storefront</strong> by dave" in body
    assert "incident 42: checkout errors" in body
    line = re.sub(r"<[^>]+>", "", body.split('data-role="lock"')[1].split("Release…")[0])
    assert re.search(r"by dave now, until \w+ \d+ \d\d:\d\d: incident 42: checkout errors", line), line


def test_it_offers_the_lock_form_only_where_you_deploy(cast):
    assert "Lock Storefront…" in client_for(cast.dave).get("/services/storefront/").content.decode()
    assert "Lock Storefront…" not in client_for(cast.erin).get("/services/storefront/").content.decode()


def test_it_refuses_a_lock_from_someone_who_does_not_deploy_there(cast):
    response = client_for(cast.alice).post(
        "/freezes-and-locks/locks/", {"environment": "prod", "service": "", "reason": "because"}
    )
    assert response.status_code == 403
    assert "Only deployers of Prod (release-managers) can lock it" in response.content.decode()
    assert not Lock.objects.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"service": "storefrnt"}, "Select a valid choice"),
        ({"reason": ""}, "This field is required"),
        ({"until": "2001-01-01T10:00"}, "That moment has passed"),
        ({"until": "tomorrow"}, "Enter a valid date/time"),
    ],
)
def test_it_refuses_a_bad_lock_form_and_saves_nothing(cast, extra, message):
    response = lock_storefront_in_prod(cast, **extra)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Lock.objects.exists()


def test_it_blocks_deployments_and_says_until_when(cast):
    lock_storefront_in_prod(cast, until=later())
    release = make_release(cast.service)
    body = client_for(cast.dave).get(f"/releases/{release.pk}/").content.decode()
    assert "Prod is locked for storefront by dave until" in body
    verdict = rules.can_request(cast.dave, release, cast.prod)
    assert not verdict
    assert "incident 42" in verdict.message


def test_it_stops_blocking_once_the_lock_runs_out_and_records_its_release(cast):
    now = timezone.now()
    lock = Lock.objects.create(
        environment=cast.prod,
        reason="migration",
        locked_by=cast.dave,
        created_at=now - timedelta(minutes=2),
        until=now - timedelta(seconds=1),
    )
    assert not Lock.objects.in_force().exists()
    assert guards.release_expired_locks() == 1
    lock.refresh_from_db()
    assert lock.released_at == lock.until
    assert lock.released_by is None


def test_it_asks_before_releasing_a_lock_then_releases_it_once(cast):
    lock_storefront_in_prod(cast)
    lock = Lock.objects.get()
    client = client_for(cast.dave)
    confirm = client.get(f"/freezes-and-locks/locks/{lock.pk}/release/?next=/services/storefront/")
    assert confirm.status_code == 200
    assert "Release the lock on Prod for storefront?" in confirm.content.decode()
    lock.refresh_from_db()
    assert lock.released_at is None
    released = client.post(f"/freezes-and-locks/locks/{lock.pk}/release/", {"next": "/services/storefront/"})
    assert released.status_code == 302
    lock.refresh_from_db()
    assert (lock.released_by, lock.released_at is not None) == (cast.dave, True)
    again = client.post(f"/freezes-and-locks/locks/{lock.pk}/release/")
    assert again.status_code == 403
    assert "released already" in again.content.decode()


def test_it_lets_only_the_locker_or_a_deployer_release_a_lock(cast):
    lock = Lock.objects.create(environment=cast.prod, reason="migration", locked_by=cast.dave)
    response = client_for(cast.alice).post(f"/freezes-and-locks/locks/{lock.pk}/release/")
    assert response.status_code == 403
    assert "Only whoever locked it or a deployer of Prod can release this lock." in response.content.decode()
    lock.refresh_from_db()
    assert lock.released_at is None


def test_it_tells_slack_who_locked_until_when_and_who_released(cast_tx, slack, run_jobs):
    lock_storefront_in_prod(cast_tx, until=later())
    lock = Lock.objects.get()
    client_for(cast_tx.dave).post(f"/freezes-and-locks/locks/{lock.pk}/release/")
    run_jobs()
    headlines = [m["text"] for m in slack.messages]
    assert headlines[0].startswith("*Prod* locked for `storefront` until ")
    assert headlines[1] == "*Prod* unlocked for `storefront` by dave"


def test_it_lets_a_release_manager_schedule_change_and_remove_a_freeze(cast):
    client = client_for(cast.dave)
    response = client.post(
        "/freezes-and-locks/freezes/",
        {"environment": "prod", "starts_at": later(1), "ends_at": later(5), "reason": "Singles' day"},
    )
    assert response.status_code == 302
    freeze = FreezeWindow.objects.get()
    assert (freeze.environment, freeze.created_by, freeze.reason) == (cast.prod, cast.dave, "Singles' day")
    assert "Singles&#x27; day" in client_for(cast.erin).get("/freezes-and-locks/").content.decode()
    changed = client.post(
        f"/freezes-and-locks/freezes/{freeze.pk}/",
        {"environment": "prod", "starts_at": later(2), "ends_at": later(6), "reason": "Singles' day, moved"},
    )
    assert changed.status_code == 302
    freeze.refresh_from_db()
    assert freeze.reason == "Singles' day, moved"
    assert client.post(f"/freezes-and-locks/freezes/{freeze.pk}/delete/").status_code == 302
    assert not FreezeWindow.objects.exists()


def test_it_refuses_freezes_that_end_before_they_start_or_from_non_deployers(cast):
    bad = client_for(cast.dave).post(
        "/freezes-and-locks/freezes/",
        {"environment": "prod", "starts_at": later(5), "ends_at": later(1), "reason": "x"},
    )
    assert bad.status_code == 400
    assert "The freeze must end after it starts." in bad.content.decode()
    refused = client_for(cast.alice).post(
        "/freezes-and-locks/freezes/",
        {"environment": "prod", "starts_at": later(1), "ends_at": later(5), "reason": "x"},
    )
    assert refused.status_code == 403
    assert not FreezeWindow.objects.exists()


def test_it_marks_locks_and_freezes_on_the_dashboard(cast):
    lock_storefront_in_prod(cast)
    Lock.objects.create(environment=cast.staging, reason="db upgrade", locked_by=cast.admin)
    FreezeWindow.objects.create(
        environment=cast.prod,
        starts_at=timezone.now() - timedelta(hours=1),
        ends_at=timezone.now() + timedelta(hours=1),
        reason="group buy",
    )
    body = client_for(cast.erin).get("/").content.decode()
    prod_cell = body.split('data-service="storefront" data-environment="prod"')[1].split("</td>")[0]
    assert "locked</span> by dave" in prod_cell
    header = body.split("</thead>")[0]
    assert "frozen</span> until" in header
    assert "group buy" in header
    assert "locked</span> by admin" in header
    assert "db upgrade" in header
