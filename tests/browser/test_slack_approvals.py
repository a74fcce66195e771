"""Slack and the browser in step: a click in the Slack sandbox's page (as a chosen member) shows on
the open deployment page at once, and the browser's approval rewrites the Slack message."""

import pytest
from playwright.sync_api import expect

from releases import flows
from sandbox import slack as slack_sandbox
from tests.browser.conftest import in_thread, wait_for
from tests.factories import make_release, succeed_in

pytestmark = pytest.mark.browser
WAIT = 30_000
MEMBERS = (
    {"id": "U0BOB", "name": "bob", "email": "bob@example.com"},
    {"id": "U0CAROL", "name": "carol", "email": "carol@example.com"},
)


@pytest.fixture
def slack_app(portal, settings):
    handle = slack_sandbox.start(interactivity_url=portal.url + "/hooks/slack/", members=MEMBERS)
    settings.SLACK_BOT_TOKEN = handle.bot_token
    settings.SLACK_SIGNING_SECRET = handle.signing_secret
    settings.SLACK_CHANNEL = "deploys"
    settings.SLACK_API_URL = handle.api_url
    yield handle
    handle.stop()


def request_prod(cast):
    release = make_release(cast.service, version="1.1.0", image="registry.example/storefront:1.1.0")
    succeed_in(release, cast.staging)
    return flows.request_deployment(cast.dave, release, cast.prod)


def has_buttons(message: dict) -> bool:
    return any(block["type"] == "actions" for block in message["blocks"])


def test_it_keeps_slack_and_the_browser_in_step_both_ways(portal, slack_app, login):
    deployment = in_thread(request_prod, portal.cast)
    [message] = wait_for(lambda: slack_app.channel)
    bob = login("bob")
    bob.goto(f"{portal.url}/deployments/{deployment.pk}/")

    # Carol approves in Slack: the sandbox sends the signed click to the portal.
    slack = login("carol")
    slack.goto(slack_app.url + "/?refresh=0")
    approve = slack.locator(f'article.bot[data-ts="{message["ts"]}"] form.click').filter(has_text="Approve")
    approve.locator("select").select_option("U0CAROL")
    approve.locator("button").click()
    expect(slack.locator(".note")).to_have_text("The app answered 200", timeout=WAIT)
    expect(bob.locator("#timeline")).to_contain_text("carol approved (1 of 2) via Slack.", timeout=WAIT)
    wait_for(lambda: "1 of 2 approvals: carol." in str(slack_app.channel[0]["blocks"]))

    # Bob approves in the browser: the Slack message says so and loses its buttons.
    bob.locator("#decision-form button[value=approve]").click()
    expect(bob.locator("#timeline")).to_contain_text("bob approved (2 of 2).", timeout=WAIT)
    wait_for(lambda: not has_buttons(slack_app.channel[0]))
    updates = slack_app.channel[0]["updates"]
    assert any(update["text"] == "Approved: *Storefront* `1.1.0` → *Prod*" for update in updates)
    slack.goto(slack_app.url + "/?refresh=0")
    expect(slack.locator(f'article.bot[data-ts="{message["ts"]}"] form.click')).to_have_count(0)
