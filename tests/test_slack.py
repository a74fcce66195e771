"""Slack: a message for each deployment event, freezes and locks, escaping, and outages that
never hold a deployment up."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import FreezeWindow, Lock
from releases import flows, states
from releases.models import Deployment
from sandbox import slack as slack_sandbox
from tests.factories import make_deployment, make_release, succeed_in
from tests.support import run_scheduled_now


@pytest.fixture
def slack(settings):
    handle = slack_sandbox.start()
    settings.SLACK_WEBHOOK_URL = handle.webhook_url
    settings.GRAFANA_URL = ""
    yield handle
    handle.stop()


def texts(handle):
    return [m["text"] for m in handle.messages]


def blocks_text(message):
    return " ".join(
        b.get("text", {}).get("text", "") + " ".join(e.get("text", "") for e in b.get("elements", []))
        for b in message["blocks"]
    )


def approved(cast, version="1.4.2"):
    return make_deployment(make_release(cast.service, version=version), cast.prod, state=states.APPROVED)


def test_it_asks_for_approval_with_a_link_to_the_deployment(cast_tx, slack, run_jobs, settings):
    settings.PORTAL_URL = "https://pampam.example"
    release = make_release(cast_tx.service, version="1.4.2")
    succeed_in(release, cast_tx.staging)
    deployment = flows.request_deployment(cast_tx.dave, release, cast_tx.prod)
    run_jobs()
    [message] = slack.messages
    assert message["text"] == "Approval needed: *Storefront* `1.4.2` → *Prod*"
    assert f"<https://pampam.example/deployments/{deployment.pk}/|deployment #{deployment.pk}>" in blocks_text(message)
    assert "Requested by dave; needs 2 approval(s)" in blocks_text(message)
    assert Deployment.objects.get(pk=deployment.pk).reports["slack"]["events"]["approval_requested"]["state"] == "sent"


def test_it_asks_nobody_when_no_approval_is_needed(cast_tx, slack, run_jobs):
    flows.request_deployment(cast_tx.alice, make_release(cast_tx.service), cast_tx.dev)
    run_jobs()
    assert not any("Approval needed" in t for t in texts(slack))


def test_it_tells_the_channel_a_rollout_started_and_succeeded(cast_tx, slack, run_jobs):
    deployment = approved(cast_tx)
    deployment.transition(states.ROLLING_OUT, kind="state", message="go")
    deployment.transition(states.SUCCEEDED, kind="state", message="done")
    run_jobs()
    assert texts(slack) == ["Deploying *Storefront* `1.4.2` → *Prod*", "Deployed *Storefront* `1.4.2` → *Prod*"]
    events = Deployment.objects.get(pk=deployment.pk).reports["slack"]["events"]
    assert {e: v["state"] for e, v in events.items()} == {"started": "sent", "succeeded": "sent"}


def test_it_tells_the_channel_a_rollout_failed_and_was_rolled_back(cast_tx, slack, run_jobs):
    previous = make_release(cast_tx.service, version="1.4.1")
    deployment = approved(cast_tx)
    Deployment.objects.filter(pk=deployment.pk).update(previous_release=previous)
    deployment.refresh_from_db()
    deployment.transition(states.ROLLING_OUT, kind="state", message="go")
    deployment.transition(states.FAILED, kind="state", message="boom", reason="Pods crash-loop.")
    rollback = make_deployment(
        previous,
        cast_tx.prod,
        state=states.APPROVED,
        kind=Deployment.ROLLBACK,
        rolls_back=deployment,
        previous_release=deployment.release,
        automatic=True,
    )
    rollback.transition(states.ROLLING_OUT, message="go back")
    rollback.transition(states.SUCCEEDED, message="Rolled back.")
    run_jobs()
    failed, rolling_back, rolled_back = slack.messages[1:]
    assert failed["text"] == "Deploy failed: *Storefront* `1.4.2` → *Prod*"
    assert "Failed: Pods crash-loop." in blocks_text(failed)
    assert rolling_back["text"] == "Rolling back *Storefront* `1.4.1` → *Prod*"
    assert "Started automatically" in blocks_text(rolling_back)
    assert rolled_back["text"] == "Rolled back: *Storefront* `1.4.1` → *Prod*"
    assert "runs `1.4.1` again instead of `1.4.2`, rolled back automatically" in blocks_text(rolled_back)


def test_it_uses_the_environment_webhook_when_it_has_one(cast_tx, slack, run_jobs):
    cast_tx.prod.slack_webhook_url = slack.hook_url("/services/T1/B1/prod")
    cast_tx.prod.save()
    approved(cast_tx).transition(states.ROLLING_OUT, kind="state", message="go")
    run_jobs()
    assert [d["hook"] for d in slack.deliveries] == ["/services/T1/B1/prod"]


def test_it_escapes_what_people_typed(cast_tx, slack, run_jobs):
    cast_tx.service.name = "a&b <x>"
    cast_tx.service.save()
    deployment = approved(cast_tx)
    deployment.transition(states.ROLLING_OUT, kind="state", message="go")
    deployment.transition(states.FAILED, kind="state", message="boom", reason="<!channel> & <@U123>")
    run_jobs()
    failed = slack.messages[-1]
    assert "*a&amp;b &lt;x&gt;*" in failed["text"]
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in blocks_text(failed)
    assert "<!channel>" not in str(failed)


def test_it_announces_locks_and_their_release(cast_tx, slack, run_jobs):
    lock = Lock.objects.create(environment=cast_tx.prod, reason="Group buy at 18:00", locked_by=cast_tx.dave)
    lock.released_at = timezone.now()
    lock.save(update_fields=["released_at"])
    run_jobs()
    assert texts(slack) == ["*Prod* locked for all services", "*Prod* unlocked for all services"]
    assert "By dave: Group buy at 18:00" in blocks_text(slack.messages[0])


def test_it_announces_freeze_windows(cast_tx, slack, run_jobs):
    start = timezone.now() + timedelta(hours=1)
    freeze = FreezeWindow.objects.create(
        environment=cast_tx.prod, starts_at=start, ends_at=start + timedelta(hours=2), reason="Double 11 <sale>"
    )
    freeze.delete()
    run_jobs()
    assert texts(slack)[0].startswith("*Prod* will be frozen ")
    assert "Double 11 &lt;sale&gt;" in blocks_text(slack.messages[0])
    assert texts(slack)[1].startswith("*Prod* freeze removed")


def test_it_does_not_send_a_message_twice(cast_tx, slack, run_jobs):
    from releases import notifications

    deployment = approved(cast_tx)
    deployment.transition(states.ROLLING_OUT, kind="state", message="go")
    run_jobs()
    notifications.notify_deployment(deployment.pk, "started")
    assert len(slack.messages) == 1


def test_it_keeps_deploying_through_a_slack_outage_and_reports_failure(cast_tx, slack, run_jobs):
    slack.set_fault(500, count=1000)
    deployment = approved(cast_tx)
    deployment.transition(states.ROLLING_OUT, kind="state", message="go")
    run_jobs(later=False)
    deployment.transition(states.SUCCEEDED, kind="state", message="done")
    run_jobs(later=False)
    assert Deployment.objects.get(pk=deployment.pk).state == states.SUCCEEDED
    assert Deployment.objects.get(pk=deployment.pk).reports["slack"]["state"] == "retrying"
    for _ in range(10):  # every retry, now rather than after its backoff
        run_scheduled_now()
        run_jobs()
    report = Deployment.objects.get(pk=deployment.pk).reports["slack"]
    assert report["state"] == "failed"
    assert "Slack answered 500 internal_error" in report["error"]
    assert {e["state"] for e in report["events"].values()} == {"failed"}
    assert slack.messages == []


def test_it_recovers_when_slack_comes_back(cast_tx, slack, run_jobs):
    slack.set_fault(500, count=1)
    deployment = approved(cast_tx)
    deployment.transition(states.ROLLING_OUT, kind="state", message="go")
    run_jobs()
    run_scheduled_now()
    run_jobs()
    assert texts(slack) == ["Deploying *Storefront* `1.4.2` → *Prod*"]
    assert Deployment.objects.get(pk=deployment.pk).reports["slack"]["state"] == "sent"


def test_it_waits_out_a_short_rate_limit(cast_tx, slack, run_jobs):
    slack.set_fault(429, count=1, retry_after=1)
    approved(cast_tx).transition(states.ROLLING_OUT, kind="state", message="go")
    run_jobs()
    assert len(slack.messages) == 1


def test_it_shows_the_slack_report_on_the_deployment_page(cast, client):
    deployment = make_deployment(
        make_release(cast.service),
        cast.prod,
        reports={
            "slack": {"state": "failed", "error": "Slack answered 500.", "events": {"started": {"state": "failed"}}}
        },
    )
    client.force_login(cast.erin)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert "report-slack" in page
    assert "started: failed" in page
