"""Slack through slack_sdk: incoming webhooks (`WebhookClient`), the Web API (`WebClient`: post
and update a message, look a user up) and request signatures (`SignatureVerifier`).

A message is text (the notification fallback) plus Block Kit blocks. `escape` makes any
value safe to put in either: Slack reads `&`, `<` and `>` as markup, so a reason such as
"<!channel>" would otherwise ping everyone.
"""

import logging
import time
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from plumbing.integrations import IntegrationError

TIMEOUT = 10
# Waiting in the worker for a short Retry-After is simplest; longer ones go back to RQ's backoff.
MAX_INLINE_RETRY_AFTER = 5
# The webhook URL is a secret and slack_sdk logs it when it retries: keep its logger quiet.
_sdk_log = logging.getLogger("plumbing.integrations.slack.sdk")
_sdk_log.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Delivery:
    status: int
    body: str


def escape(value) -> str:
    """Make `value` plain text for Slack's mrkdwn (control sequences like <!channel> become inert).

    # Reference: https://api.slack.com/reference/surfaces/formatting#escaping
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """`<url|label>` with both parts escaped (`|` cannot appear in a label)."""
    return f"<{escape(url)}|{escape(label).replace('|', '¦')}>"


class _ShortRateLimit(RateLimitErrorRetryHandler):
    """Retry a 429 once, after its Retry-After, but only when that is a short wait."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        try:
            wait = int(values[0] if isinstance(values, list) else values)
        except (TypeError, ValueError):
            return False
        return wait <= MAX_INLINE_RETRY_AFTER


def send(webhook_url: str, text: str, blocks: list[dict] | None = None) -> Delivery:
    """Post one message to an incoming webhook; raise IntegrationError unless Slack says ok.

    # Reference: https://api.slack.com/messaging/webhooks
    # Reference: https://docs.slack.dev/tools/python-slack-sdk/webhook/
    """
    if not webhook_url:
        raise IntegrationError("No Slack webhook is configured.", permanent=True)
    client = WebhookClient(
        webhook_url,
        timeout=TIMEOUT,
        logger=_sdk_log,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1), _ShortRateLimit(max_retry_count=1)],
    )
    try:
        response = client.send(text=text, blocks=blocks or None)
    except Exception as exc:  # noqa: BLE001 - urllib raises several types for network failures
        raise IntegrationError(f"Slack cannot be reached: {type(exc).__name__}.") from None
    if response.status_code == 200:
        return Delivery(response.status_code, response.body)
    return _refused(response.status_code, response.body or "")


def _refused(status: int, body: str) -> Delivery:
    detail = body.strip()[:100]
    message = f"Slack answered {status}" + (f" {detail}" if detail else "") + "."
    if status == 404:
        message += " The webhook URL is unknown or was revoked."
    raise IntegrationError(message, permanent=400 <= status < 500 and status not in (408, 429))


# -- the Web API (a Slack app's bot token) -------------------------------------------------------

# Web API errors worth trying again; every other `error` is a configuration problem.
_TRANSIENT_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


@dataclass(frozen=True)
class Posted:
    """Where a message lives: what chat.update needs to change it in place."""

    channel: str
    ts: str


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str
    email: str
    email_confirmed: bool
    active: bool  # not deactivated, not a bot


def _web(token: str, api_url: str) -> WebClient:
    if not token:
        raise IntegrationError("No Slack bot token is configured (SLACK_BOT_TOKEN).", permanent=True)
    return WebClient(
        token=token,
        base_url=api_url.rstrip("/") + "/",
        timeout=TIMEOUT,
        logger=_sdk_log,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1), _ShortRateLimit(max_retry_count=1)],
    )


def _api(what: str, call):
    try:
        return call()
    except SlackApiError as exc:
        error = str((exc.response.data or {}).get("error", "") if isinstance(exc.response.data, dict) else "")
        status = exc.response.status_code
        detail = error or f"HTTP {status}"
        raise IntegrationError(
            f"Slack refused {what}: {detail}.",
            permanent=error not in _TRANSIENT_API_ERRORS and status < 500 and status != 429,
        ) from None
    except Exception as exc:  # noqa: BLE001 - urllib raises several types for network failures
        raise IntegrationError(f"Slack cannot be reached ({what}): {type(exc).__name__}.") from None


def post_message(token: str, api_url: str, channel: str, text: str, blocks: list[dict]) -> Posted:
    """Post a message as the app's bot; return where it lives (channel id and ts).

    # Reference: https://docs.slack.dev/reference/methods/chat.postMessage
    """
    response = _api(
        "chat.postMessage", lambda: _web(token, api_url).chat_postMessage(channel=channel, text=text, blocks=blocks)
    )
    return Posted(str(response["channel"]), str(response["ts"]))


def update_message(token: str, api_url: str, posted: Posted, text: str, blocks: list[dict]) -> None:
    """Replace the text and blocks of a message the bot posted (buttons included).

    # Reference: https://docs.slack.dev/reference/methods/chat.update
    """
    client = _web(token, api_url)
    _api("chat.update", lambda: client.chat_update(channel=posted.channel, ts=posted.ts, text=text, blocks=blocks))


def user_info(token: str, api_url: str, user_id: str) -> SlackUser:
    """A workspace member's e-mail and whether Slack has confirmed it (needs users:read.email).

    # Reference: https://docs.slack.dev/reference/methods/users.info
    """
    data = _api("users.info", lambda: _web(token, api_url).users_info(user=user_id))["user"]
    profile = data.get("profile") or {}
    return SlackUser(
        id=str(data.get("id", user_id)),
        name=str(data.get("name", "")),
        email=str(profile.get("email") or ""),
        email_confirmed=bool(data.get("is_email_confirmed")),
        active=not data.get("deleted") and not data.get("is_bot"),
    )


def respond(response_url: str, text: str) -> None:
    """Answer an interaction privately: an ephemeral message only the clicking user sees.

    # Reference: https://docs.slack.dev/interactivity/handling-user-interaction#message_responses
    """
    client = WebhookClient(response_url, timeout=TIMEOUT, logger=_sdk_log)
    try:
        response = client.send(text=text, response_type="ephemeral", replace_original=False)
    except Exception as exc:  # noqa: BLE001 - urllib raises several types for network failures
        raise IntegrationError(f"Slack cannot be reached: {type(exc).__name__}.") from None
    if response.status_code != 200:
        _refused(response.status_code, response.body or "")


# -- request signatures ---------------------------------------------------------------------------

# Slack's rule: a request whose timestamp is more than five minutes off may be a replay.
MAX_CLOCK_SKEW_SECONDS = 5 * 60


class BadSignature(Exception):
    """Why a request claiming to come from Slack was refused; `status` is 401 or 403."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def verify_request(signing_secret: str, body: bytes, timestamp: str | None, signature: str | None) -> None:
    """Raise BadSignature unless `X-Slack-Signature` (v0) signs `body` at a fresh timestamp.

    # Reference: https://docs.slack.dev/authentication/verifying-requests-from-slack/
    """
    if not signing_secret:
        raise BadSignature("Slack approvals are not enabled: set SLACK_SIGNING_SECRET.", 403)
    if not timestamp or not signature:
        raise BadSignature("Missing X-Slack-Signature or X-Slack-Request-Timestamp.", 401)
    try:
        skew = abs(time.time() - int(timestamp))
    except ValueError:
        raise BadSignature("X-Slack-Request-Timestamp is not a Unix time.", 401) from None
    if skew > MAX_CLOCK_SKEW_SECONDS:
        raise BadSignature("Stale request: X-Slack-Request-Timestamp is more than five minutes off.", 403)
    if not SignatureVerifier(signing_secret).is_valid(body=body, timestamp=timestamp, signature=signature):
        raise BadSignature("X-Slack-Signature does not match: check SLACK_SIGNING_SECRET.", 403)
