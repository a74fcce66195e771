"""Slack incoming webhooks through slack_sdk's `WebhookClient`.

A message is text (the notification fallback) plus Block Kit blocks. `escape` makes any
value safe to put in either: Slack reads `&`, `<` and `>` as markup, so a reason such as
"<!channel>" would otherwise ping everyone.
"""

import logging
from dataclasses import dataclass

from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
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
