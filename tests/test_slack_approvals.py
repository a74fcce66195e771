"""Approvals from Slack: the request carries Approve and Reject buttons (slack_sdk's WebClient
against the Slack sandbox), signed clicks to /hooks/slack/ decide under the browser's rules, and
the message follows every decision and transition, from whichever side it came."""

import pytest

from releases import flows, states
from releases.models import Approval, Deployment, SlackAccount
from releases.reconcile import reconcile
from releases.webhooks.slack import NOT_LINKED
from sandbox import slack as slack_sandbox
from sandbox.slack.workspace import sign, signed_interaction
from tests.factories import make_release, succeed_in
from tests.support import run_scheduled_now
from tests.support.api import api_as

MEMBERS = (
    {"id": "U0BOB", "name": "bob", "email": "bob@example.com"},
    {"id": "U0CAROL", "name": "carol", "email": "carol@example.com"},
    {"id": "U0DAVE", "name": "dave", "email": "dave@example.com"},
    {"id": "U0ERIN", "name": "erin", "email": "erin@example.com", "email_confirmed": False},
    {"id": "U0DANA", "name": "dana", "email": "dana@elsewhere.example"},
)


@pytest.fixture
def slack_app(settings):
    handle = slack_sandbox.start(members=MEMBERS)
    settings.SLACK_WEBHOOK_URL = handle.webhook_url
    settings.SLACK_BOT_TOKEN = handle.bot_token
    settings.SLACK_SIGNING_SECRET = handle.signing_secret
    settings.SLACK_CHANNEL = "deploys"
    settings.SLACK_API_URL = handle.api_url
    settings.PORTAL_URL = "https://pampam.example"
    settings.GRAFANA_URL = ""
    yield handle
    handle.stop()


@pytest.fixture
def pending(cast_tx, slack_app, run_jobs):
    """Dave asks for Storefront 1.4.2 in Prod (two approvals); the request is in #deploys."""
    release = make_release(cast_tx.service, version="1.4.2")
    succeed_in(release, cast_tx.staging)
    deployment = flows.request_deployment(cast_tx.dave, release, cast_tx.prod)
    SlackAccount.objects.create(user=cast_tx.bob, slack_user_id="U0BOB")
    SlackAccount.objects.create(user=cast_tx.dave, slack_user_id="U0DAVE")
    run_jobs()
    return deployment


def request_message(slack_app) -> dict:
    [message] = slack_app.channel
    return message


def click(client, slack_app, action: str, user: str, *, skew: int = 0, secret: str | None = None, payload=None):
    """What Slack sends when `user` clicks `action` on the approval request (signed)."""
    payload = payload or slack_app.workspace.payload(request_message(slack_app)["ts"], action, user)
    body, headers = signed_interaction(secret or slack_app.signing_secret, payload, skew)
    return client.post(
        "/hooks/slack/",
        data=body,
        content_type=headers["Content-Type"],
        HTTP_X_SLACK_REQUEST_TIMESTAMP=headers["X-Slack-Request-Timestamp"],
        HTTP_X_SLACK_SIGNATURE=headers["X-Slack-Signature"],
    )


def texts(message: dict) -> str:
    return " ".join(slack_sandbox.server.block_texts(message["blocks"]))


def buttons(message: dict) -> list[tuple[str, str]]:
    return [
        (element["action_id"], element["value"])
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_it_posts_the_approval_request_with_approve_and_reject_buttons(cast_tx, pending, slack_app):
    message = request_message(slack_app)
    assert message["channel"] == "C0DEPLOYS"
    assert message["text"] == "Approval needed: *Storefront* `1.4.2` → *Prod*"
    assert buttons(message) == [("approve", str(pending.pk)), ("reject", str(pending.pk))]
    assert "0 of 2 approvals." in texts(message)
    assert f"<https://pampam.example/deployments/{pending.pk}/|deployment #{pending.pk}>" in texts(message)
    # The bot's message replaces the incoming-webhook one (no second "approval needed").
    assert not any("Approval needed" in m["text"] for m in slack_app.messages)
    deployment = Deployment.objects.get(pk=pending.pk)
    assert deployment.reports["slack_message"]["ts"] == message["ts"]
    assert deployment.reports["slack"]["events"]["approval_requested"]["state"] == "sent"


def test_it_approves_from_slack_as_the_linked_user(cast_tx, pending, slack_app, client, run_jobs):
    response = click(client, slack_app, "approve", "U0BOB")
    assert response.status_code == 200
    run_jobs()
    assert Approval.objects.get(deployment=pending).user == cast_tx.bob
    event = pending.events.get(kind="approval")
    assert event.message == "bob approved (1 of 2) via Slack."
    message = request_message(slack_app)
    assert "1 of 2 approvals: bob." in texts(message)
    assert buttons(message)  # one more approval is needed
    assert slack_app.answers == []


def test_it_rejects_from_slack_and_takes_the_buttons_away(cast_tx, pending, slack_app, client, run_jobs):
    assert click(client, slack_app, "reject", "U0BOB").status_code == 200
    run_jobs()
    assert Deployment.objects.get(pk=pending.pk).state == states.REJECTED
    message = request_message(slack_app)
    assert message["text"] == "Rejected: *Storefront* `1.4.2` → *Prod*"
    assert "Rejected by bob." in texts(message)
    assert buttons(message) == []


def test_it_finds_a_slack_member_by_their_verified_email_and_links_them(cast_tx, pending, slack_app, client, run_jobs):
    click(client, slack_app, "approve", "U0BOB")
    click(client, slack_app, "approve", "U0CAROL")
    run_jobs()
    account = SlackAccount.objects.get(slack_user_id="U0CAROL")
    assert (account.user, account.linked_via) == (cast_tx.carol, SlackAccount.EMAIL)
    assert Deployment.objects.get(pk=pending.pk).state != states.PENDING_APPROVAL
    approved = [u for u in request_message(slack_app)["updates"] if u["text"].startswith("Approved: ")]
    assert approved
    assert "Approved (2 of 2 approvals: bob, carol)." in texts(approved[0])
    assert buttons(request_message(slack_app)) == []


def test_it_refuses_self_approval_from_slack_privately(cast_tx, pending, slack_app, client, run_jobs):
    assert click(client, slack_app, "approve", "U0DAVE").status_code == 200
    run_jobs()
    assert not Approval.objects.exists()
    [answer] = slack_app.answers
    assert answer["text"] == (
        "Nothing was recorded: You requested this deployment; Prod needs someone else to approve it."
    )
    assert (answer["response_type"], answer["replace_original"]) == ("ephemeral", False)
    assert request_message(slack_app)["updates"] == []


def test_it_tells_a_slack_member_without_a_portal_account_privately_and_nothing_else(
    cast_tx, pending, slack_app, client, run_jobs
):
    assert click(client, slack_app, "approve", "U0DANA").status_code == 200
    run_jobs()
    assert [a["text"] for a in slack_app.answers] == [NOT_LINKED]
    assert not Approval.objects.exists()
    assert not SlackAccount.objects.filter(slack_user_id="U0DANA").exists()
    assert request_message(slack_app)["updates"] == []
    assert Deployment.objects.get(pk=pending.pk).last_seq == pending.last_seq


def test_it_does_not_trust_an_email_slack_has_not_confirmed(cast_tx, pending, slack_app, client, run_jobs):
    click(client, slack_app, "reject", "U0ERIN")
    run_jobs()
    assert [a["text"] for a in slack_app.answers] == [NOT_LINKED]
    assert Deployment.objects.get(pk=pending.pk).state == states.PENDING_APPROVAL


def test_it_refuses_a_linked_member_who_is_not_an_approver(cast_tx, pending, slack_app, client, run_jobs):
    SlackAccount.objects.create(user=cast_tx.alice, slack_user_id="U0ALICE")
    click(client, slack_app, "approve", "U0ALICE")
    run_jobs()
    assert [a["text"] for a in slack_app.answers] == [
        "Nothing was recorded: You are not an approver for Prod (approvers)."
    ]
    assert not Approval.objects.exists()


@pytest.mark.parametrize(
    ("options", "status", "message"),
    [
        ({"secret": "not-the-secret"}, 403, "X-Slack-Signature does not match: check SLACK_SIGNING_SECRET."),
        ({"skew": -6 * 60}, 403, "Stale request: X-Slack-Request-Timestamp is more than five minutes off."),
        ({"skew": 6 * 60}, 403, "Stale request: X-Slack-Request-Timestamp is more than five minutes off."),
    ],
)
def test_it_refuses_bad_or_stale_signatures_and_changes_nothing(
    cast_tx, pending, slack_app, client, run_jobs, options, status, message
):
    response = click(client, slack_app, "approve", "U0BOB", **options)
    assert (response.status_code, response.json()["message"]) == (status, message)
    run_jobs()
    assert not Approval.objects.exists()
    assert slack_app.answers == []


def test_it_asks_for_a_signature(cast_tx, pending, slack_app, client):
    response = client.post("/hooks/slack/", data=b"payload=%7B%7D", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert response.json()["message"] == "Missing X-Slack-Signature or X-Slack-Request-Timestamp."


def test_it_accepts_nothing_when_no_signing_secret_is_set(cast_tx, pending, slack_app, client, settings):
    settings.SLACK_SIGNING_SECRET = ""
    response = click(client, slack_app, "approve", "U0BOB")
    assert response.status_code == 403
    assert "set SLACK_SIGNING_SECRET" in response.json()["message"]


def test_it_answers_400_to_a_signed_body_that_is_not_an_interaction(cast_tx, pending, slack_app, client):
    payload = slack_app.workspace.payload(request_message(slack_app)["ts"], "approve", "U0BOB")
    payload["actions"][0]["value"] = "DROP TABLE"
    response = click(client, slack_app, "approve", "U0BOB", payload=payload)
    assert response.status_code == 400
    assert response.json()["message"] == "The button's value must be a deployment id."


def test_it_keeps_slack_in_step_with_decisions_made_in_the_browser(cast_tx, pending, slack_app, client, run_jobs):
    client.force_login(cast_tx.carol)
    response = client.post(f"/deployments/{pending.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 302
    run_jobs()
    assert "1 of 2 approvals: carol." in texts(request_message(slack_app))

    click(client, slack_app, "approve", "U0BOB")  # the second approval, from Slack
    run_jobs()
    page = client.get(f"/deployments/{pending.pk}/").content.decode()
    assert "bob approved (2 of 2) via Slack." in page
    assert Deployment.objects.get(pk=pending.pk).state != states.PENDING_APPROVAL
    assert buttons(request_message(slack_app)) == []


def test_it_updates_the_message_when_the_deployment_is_cancelled_in_the_browser(
    cast_tx, pending, slack_app, client, run_jobs
):
    stale = slack_app.workspace.payload(request_message(slack_app)["ts"], "approve", "U0BOB")
    client.force_login(cast_tx.dave)
    assert client.post(f"/deployments/{pending.pk}/cancel/", {"reason": "wrong build"}).status_code == 302
    run_jobs()
    message = request_message(slack_app)
    assert message["text"] == "Cancelled: *Storefront* `1.4.2` → *Prod*"
    assert "wrong build" in texts(message)
    assert buttons(message) == []

    # A click on the button as someone's Slack still showed it changes nothing and says why.
    assert click(client, slack_app, "approve", "U0BOB", payload=stale).status_code == 200
    run_jobs()
    assert [a["text"] for a in slack_app.answers] == [
        f"Nothing was recorded: Deployment #{pending.pk} is cancelled: there is nothing to decide."
    ]
    assert not Approval.objects.exists()


def test_it_keeps_slack_in_step_with_approvals_through_the_api(cast_tx, pending, slack_app, run_jobs):
    response = api_as(cast_tx.carol, "approve").post(f"/api/v1/deployments/{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 200, response.content
    run_jobs()
    assert "1 of 2 approvals: carol." in texts(request_message(slack_app))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["user"].update(id="U" * 40), "`user.id` must be a short string."),
        (lambda p: p.update(response_url="javascript:alert(1)"), "`response_url` must be an http(s) URL."),
        (lambda p: p["actions"][0].update(value="9" * 30), "The button's value must be a deployment id."),
    ],
)
def test_it_answers_400_to_hostile_values_and_records_nothing(
    cast_tx, pending, slack_app, client, run_jobs, change, message
):
    payload = slack_app.workspace.payload(request_message(slack_app)["ts"], "approve", "U0BOB")
    change(payload)
    response = click(client, slack_app, "approve", "U0BOB", payload=payload)
    assert (response.status_code, response.json()["message"]) == (400, message)
    run_jobs()
    assert not Approval.objects.exists()


def test_it_answers_400_to_a_signed_body_without_a_payload(cast_tx, slack_app, client):
    body = b"nothing=here"
    timestamp = signed_interaction(slack_app.signing_secret, {})[1]["X-Slack-Request-Timestamp"]
    response = client.post(
        "/hooks/slack/",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_SLACK_SIGNATURE=sign(slack_app.signing_secret, timestamp, body),
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Expected a form with a JSON `payload` field, as Slack sends interactions."


def test_it_acknowledges_interactions_it_does_not_act_on(cast_tx, pending, slack_app, client, run_jobs):
    payload = slack_app.workspace.payload(request_message(slack_app)["ts"], "approve", "U0BOB")
    payload["type"] = "view_closed"
    assert click(client, slack_app, "approve", "U0BOB", payload=payload).status_code == 200
    run_jobs()
    assert not Approval.objects.exists()
    assert slack_app.answers == []


def test_it_takes_clicks_by_post_only(client):
    response = client.get("/hooks/slack/")
    assert response.status_code == 405
    assert response.json()["message"] == "Slack sends interactions with POST."


def test_the_reconciler_rewrites_a_message_whose_refresh_was_lost(cast_tx, pending, slack_app, run_jobs):
    assert reconcile()["slack_messages"] == 0  # the message shows where the deployment stands
    # A decision whose refresh never ran (Redis down at commit, a worker killed): only the row moved.
    Approval.objects.bulk_create([Approval(deployment=pending, user=cast_tx.bob, decision=Approval.APPROVE)])
    assert reconcile()["slack_messages"] == 1
    run_jobs()
    assert "1 of 2 approvals: bob." in texts(request_message(slack_app))
    assert reconcile()["slack_messages"] == 0


def test_it_posts_the_request_once_slack_comes_back(cast_tx, slack_app, run_jobs):
    slack_app.set_fault(500, count=1)
    release = make_release(cast_tx.service, version="1.4.2")
    succeed_in(release, cast_tx.staging)
    deployment = flows.request_deployment(cast_tx.dave, release, cast_tx.prod)
    run_jobs(later=False)
    assert slack_app.channel == []
    assert Deployment.objects.get(pk=deployment.pk).reports["slack"]["state"] == "retrying"
    run_scheduled_now()
    run_jobs()
    assert len(slack_app.channel) == 1
    assert Deployment.objects.get(pk=deployment.pk).reports["slack"]["state"] == "sent"


def test_it_keeps_the_decision_when_slack_is_down_and_updates_the_message_later(
    cast_tx, pending, slack_app, client, run_jobs
):
    slack_app.set_fault(503, count=1)
    click(client, slack_app, "approve", "U0BOB")
    run_jobs(later=False)
    assert Approval.objects.filter(deployment=pending, user=cast_tx.bob).exists()
    run_scheduled_now()
    run_jobs()
    assert "1 of 2 approvals: bob." in texts(request_message(slack_app))
