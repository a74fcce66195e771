"""The Slack sandbox with the real slack_sdk WebhookClient."""

import pytest
import requests
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from sandbox.slack import start

BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Deployed web 1.4.2"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*prod* <b>rev 7</b>"}},
]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def slack():
    with start() as handle:
        yield handle


@pytest.fixture(autouse=True)
def clean(slack):
    slack.clear_faults()
    slack.clear()


def test_webhook_client_posts_are_captured(slack):
    reply = WebhookClient(slack.webhook_url).send(text="Deployed web 1.4.2", blocks=BLOCKS)
    assert (reply.status_code, reply.body) == (200, "ok")
    assert slack.messages == [{"text": "Deployed web 1.4.2", "blocks": BLOCKS}]
    assert slack.deliveries[0]["hook"] == "/services/T000/B000/XXXX"
    assert requests.get(f"{slack.url}/api/messages", timeout=5).json()[0]["payload"]["text"]


def test_invalid_and_empty_payloads(slack):
    hook = slack.webhook_url
    assert requests.post(hook, data=b"not json", timeout=5).text == "invalid_payload"
    assert requests.post(hook, data=b"", timeout=5).status_code == 400
    assert requests.post(hook, json={"username": "x"}, timeout=5).text == "no_text"
    form = requests.post(hook, data={"payload": '{"text": "from a form"}'}, timeout=5)
    assert form.text == "ok"
    assert slack.messages[-1]["text"] == "from a form"
    # curl -d '{"text": …}' sends JSON with a form content type; Slack takes it.
    curl = requests.post(hook, data=b'{"text": "curl"}', headers=FORM, timeout=5)
    assert curl.text == "ok"
    assert slack.messages[-1]["text"] == "curl"


def test_fixed_hooks_reject_unknown_paths():
    with start(hooks=["/services/T1/B1/good"]) as slack:
        assert WebhookClient(slack.hook_url("/services/T1/B1/good")).send(text="hi").body == "ok"
        reply = WebhookClient(slack.hook_url("/services/T1/B1/bad")).send(text="hi")
        assert (reply.status_code, reply.body) == (404, "no_service")


def test_faults_for_retry_logic(slack):
    slack.set_fault(status=429, count=1, retry_after=3)
    reply = WebhookClient(slack.webhook_url).send(text="first try")
    assert (reply.status_code, reply.body) == (429, "rate_limited")
    assert reply.headers["Retry-After"] == "3"
    slack.set_fault(status=500, count=2)
    retry = ServerErrorRetryHandler(2, interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    reply = WebhookClient(slack.webhook_url, retry_handlers=[retry]).send(text="eventually")
    assert reply.body == "ok"
    assert [m["text"] for m in slack.messages] == ["eventually"]


def test_messages_page_escapes_content(slack):
    WebhookClient(slack.webhook_url).send(text="<script>x</script>", blocks=BLOCKS)
    page = requests.get(slack.url, timeout=5).text
    assert "<script>x" not in page
    assert "&lt;script&gt;x" in page
    assert "Deployed web 1.4.2" in page
    assert "&lt;b&gt;rev 7" in page
