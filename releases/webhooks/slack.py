"""`POST /hooks/slack/`: the Slack app's interactivity requests (Approve and Reject clicks).

Slack signs each request: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
"v0:<X-Slack-Request-Timestamp>:<raw body>")>`; a timestamp more than five minutes off is refused
as a possible replay. The body is a form with one `payload` field holding the JSON of a
`block_actions` interaction: who clicked (`user.id`, `team.id`), what (`actions[0].action_id`
and `value`, the deployment id) and where to answer privately (`response_url`).

The view answers Slack within its three seconds and queues the decision (`decide_from_slack`),
which finds the portal user (releases.slack_approvals.portal_user) and calls `flows.decide` with
the same rules as the browser. A refusal, or a Slack member who is nobody in the portal, gets an
ephemeral answer only they see and changes nothing. The message itself is rewritten by the job
that follows every decision and transition.

Answers: 200 accepted (or not an interaction the portal acts on), 400 malformed, 401 unsigned,
403 bad or stale signature or approvals from Slack not enabled, 405 not a POST, 413 too large.
"""

import logging
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from plumbing import queues
from plumbing.integrations import IntegrationError, slack
from releases import flows, rules, slack_approvals
from releases.models import Deployment
from releases.webhooks.signatures import load_json, read_limited_body

log = logging.getLogger(__name__)

# Slack's interaction payloads carry the whole message; a few hundred KiB at most.
MAX_BODY = 1024 * 1024
MAX_ID = 2**63 - 1

NOT_LINKED = (
    "Your Slack account is not linked to a Pampam user, so nothing was recorded. Ask a Pampam admin to "
    "link it (Admin → Slack accounts), or use the same verified e-mail address in Slack and in Pampam."
)


class Malformed(ValueError):
    pass


@dataclass(frozen=True)
class Click:
    team_id: str
    user_id: str
    action: str  # slack_approvals.APPROVE or REJECT
    deployment_id: int
    response_url: str


@csrf_exempt
@login_not_required
def receive(request):
    if request.method != "POST":
        return _answer(405, "Slack sends interactions with POST.")
    body = read_limited_body(request, MAX_BODY)
    if body is None:
        return _answer(413, f"The body is larger than {MAX_BODY} bytes.")
    try:
        slack.verify_request(
            settings.SLACK_SIGNING_SECRET,
            body,
            request.META.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
            request.META.get("HTTP_X_SLACK_SIGNATURE"),
        )
        click = parse(body)
    except slack.BadSignature as refused:
        return _answer(refused.status, str(refused))
    except Malformed as problem:
        return _answer(400, str(problem))
    if click is not None:
        queues.enqueue(
            decide_from_slack, click.team_id, click.user_id, click.action, click.deployment_id, click.response_url
        )
    # Slack wants an empty 200 within three seconds; the answer to the person follows.
    return HttpResponse(status=200)


def parse(body: bytes) -> Click | None:
    """The click in a signed body, or None for an interaction the portal does not act on."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload = load_json(form["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        raise Malformed("Expected a form with a JSON `payload` field, as Slack sends interactions.") from None
    if not isinstance(payload, dict):
        raise Malformed("The payload must be a JSON object.")
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    if action.get("action_id") not in slack_approvals.ACTIONS:
        return None
    return Click(
        team_id=_text(payload.get("team"), "id", "team.id", required=False),
        user_id=_text(payload.get("user"), "id", "user.id"),
        action=action["action_id"],
        deployment_id=_deployment_id(action.get("value")),
        response_url=_response_url(payload.get("response_url")),
    )


def _text(container, key: str, name: str, required: bool = True) -> str:
    value = container.get(key) if isinstance(container, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 32:
        return value
    if required or value is not None:
        raise Malformed(f"`{name}` must be a short string.")
    return ""


def _deployment_id(value) -> int:
    if isinstance(value, str) and value.isdigit() and 0 < int(value) <= MAX_ID:
        return int(value)
    raise Malformed("The button's value must be a deployment id.")


def _response_url(value) -> str:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 2000:
        return value
    raise Malformed("`response_url` must be an http(s) URL.")


def _answer(status: int, message: str) -> JsonResponse:
    return JsonResponse({"ok": status == 200, "message": message}, status=status)


# -- the job ---------------------------------------------------------------------------------------


def decide_from_slack(team_id: str, user_id: str, action: str, deployment_id: int, response_url: str) -> None:
    """Job: record a Slack member's click as their portal user's decision, under the usual rules."""
    try:
        user = slack_approvals.portal_user(team_id, user_id)
    except IntegrationError as error:
        _retry_or_tell(error, response_url, f"Slack could not tell Pampam who you are ({error}); nothing was recorded.")
        return
    if user is None:
        _tell(response_url, NOT_LINKED)
        return
    deployment = Deployment.objects.select_related("environment").filter(pk=deployment_id).first()
    if deployment is None:
        _tell(response_url, f"Deployment #{deployment_id} does not exist any more; nothing was recorded.")
        return
    decision = slack_approvals.ACTIONS[action]
    try:
        flows.decide(user, deployment, decision, via="Slack")
    except rules.Refused as refusal:
        _tell(response_url, f"Nothing was recorded: {' '.join(refusal.reasons)}")


def _tell(response_url: str, text: str) -> None:
    queues.enqueue(respond_privately, response_url, text)


def respond_privately(response_url: str, text: str) -> None:
    """Job: the ephemeral answer to a click (a decision or refusal stands even if this is lost)."""
    try:
        slack.respond(response_url, text)
    except IntegrationError as error:
        queues.retry_or_give_up(
            error, transient=not error.permanent, give_up=partial(log.warning, "Slack answer not delivered: %s", error)
        )


def _retry_or_tell(error: IntegrationError, response_url: str, text: str) -> None:
    queues.retry_or_give_up(error, transient=not error.permanent, give_up=lambda: _tell(response_url, text))
