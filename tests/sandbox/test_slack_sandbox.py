"""The Slack sandbox with the real slack_sdk WebhookClient."""

import json
import threading
from urllib.parse import parse_qs

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from sandbox.http import JSONHandler, serve
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


# -- the bot's Web API and interactivity ----------------------------------------------------------

BUTTONS = {
    "type": "actions",
    "block_id": "decide-7",
    "elements": [
        {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "Approve"}, "value": "7"}
    ],
}


def bot(slack, token=None):
    return WebClient(token=token or slack.bot_token, base_url=slack.api_url)


def test_web_client_posts_and_updates_a_message_in_place(slack):
    posted = bot(slack).chat_postMessage(channel="deploys", text="Approval needed", blocks=[BUTTONS])
    assert posted["ok"] is True
    assert posted["channel"] == "C0DEPLOYS"
    bot(slack).chat_update(channel=posted["channel"], ts=posted["ts"], text="Approved", blocks=[])
    [message] = [m for m in slack.channel if m["ts"] == posted["ts"]]
    assert (message["text"], message["blocks"]) == ("Approved", [])
    assert message["updates"] == [{"text": "Approved", "blocks": []}]


def test_web_client_errors_are_slack_api_errors(slack):
    with pytest.raises(SlackApiError) as refused:
        bot(slack, token="xoxb-wrong").chat_postMessage(channel="deploys", text="hi")
    assert refused.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        bot(slack).chat_update(channel="C0DEPLOYS", ts="1.000001", text="hi")
    assert missing.value.response["error"] == "message_not_found"


def test_users_info_tells_the_email_and_whether_it_is_confirmed(slack):
    user = bot(slack).users_info(user="U0BOB")["user"]
    assert (user["name"], user["profile"]["email"], user["is_email_confirmed"]) == ("bob", "bob@pampam.local", True)
    with pytest.raises(SlackApiError):
        bot(slack).users_info(user="U0NOBODY")


@pytest.fixture
def app():
    """An app's interactivity endpoint that records what arrives and answers 200."""

    class Recorder(JSONHandler):
        def do_POST(self):
            with self.server.lock:
                self.server.calls.append({"headers": dict(self.headers), "body": self.read_body()})
            self.send_bytes(200, b"", "text/plain")

    running = serve(Recorder, calls=[], lock=threading.Lock())
    yield running
    running.stop()


def test_a_click_sends_a_block_actions_payload_signed_like_slack(slack, app):
    posted = bot(slack).chat_postMessage(channel="deploys", text="Approval needed", blocks=[BUTTONS])
    slack.set_interactivity_url(app.url + "/hooks/slack/")
    assert slack.click(posted["ts"], "approve", "U0CAROL") == (200, "")
    [call] = app.server.calls
    assert SignatureVerifier(slack.signing_secret).is_valid_request(call["body"], call["headers"])
    payload = json.loads(parse_qs(call["body"].decode())["payload"][0])
    assert (payload["type"], payload["user"]["id"], payload["team"]["id"]) == ("block_actions", "U0CAROL", "T0SANDBOX")
    assert (payload["actions"][0]["action_id"], payload["actions"][0]["value"]) == ("approve", "7")
    assert payload["response_url"].startswith(slack.url + "/actions/")
    # The private answer to the click lands back in the sandbox.
    requests.post(
        payload["response_url"], json={"text": "Nothing was recorded.", "response_type": "ephemeral"}, timeout=5
    )
    assert slack.answers[-1]["text"] == "Nothing was recorded."


def test_a_stale_click_carries_an_old_timestamp(slack, app):
    posted = bot(slack).chat_postMessage(channel="deploys", text="Approval needed", blocks=[BUTTONS])
    slack.set_interactivity_url(app.url + "/hooks/slack/")
    slack.click(posted["ts"], "approve", "U0BOB", skew_seconds=-600)
    [call] = app.server.calls
    assert not SignatureVerifier(slack.signing_secret).is_valid_request(call["body"], call["headers"])
