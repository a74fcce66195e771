"""Approvals from Slack: the approval request with Approve and Reject buttons, kept up to date
in place, and who a Slack member is in the portal.

With a Slack app's bot token and a channel (SLACK_BOT_TOKEN, SLACK_CHANNEL) the approval request
is posted through the Web API (chat.postMessage) instead of the incoming webhook, so that the
portal knows where it lives (`Deployment.reports["slack_message"]`) and can change it: whenever
someone decides (in the browser, through the API or in Slack) and whenever the deployment moves
(approved, rejected, cancelled, finished), a job re-reads the deployment and rewrites the message
with chat.update; the buttons go once nothing is left to decide. Clicks come back through
`/hooks/slack/` (releases.webhooks.slack) and go through `flows.decide` like every other decision.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.db.models.signals import post_save
from django.dispatch import receiver

from plumbing import queues
from plumbing.integrations import IntegrationError, slack
from releases import states
from releases.models import Approval, Deployment, SlackAccount, deployment_transitioned

log = logging.getLogger(__name__)

APPROVE, REJECT = "approve", "reject"
ACTIONS = {APPROVE: Approval.APPROVE, REJECT: Approval.REJECT}
MESSAGE_REPORT = "slack_message"


def configured() -> bool:
    """Approval requests go to Slack with buttons (else, as before, through the webhook)."""
    return bool(settings.SLACK_BOT_TOKEN and settings.SLACK_CHANNEL)


def posted_message(deployment) -> slack.Posted | None:
    where = (deployment.reports or {}).get(MESSAGE_REPORT) or {}
    return slack.Posted(where["channel"], where["ts"]) if where.get("channel") and where.get("ts") else None


def post_request(deployment) -> None:
    """Post the approval request with its buttons, once; remember where it lives.

    Raises IntegrationError for the caller's retry policy (releases.notifications).
    """
    if posted_message(deployment) is not None:
        return
    text, blocks = render(deployment, _approvals(deployment))
    where = slack.post_message(settings.SLACK_BOT_TOKEN, settings.SLACK_API_URL, settings.SLACK_CHANNEL, text, blocks)
    mark = shown(deployment.state, 0)
    Deployment.update_report(
        deployment.pk,
        MESSAGE_REPORT,
        lambda old: {"channel": where.channel, "ts": where.ts, "shown": mark},
        announce=False,  # where the message is: bookkeeping, not a report the panel shows
    )


def refresh(pk: int) -> None:
    """Job: rewrite deployment `pk`'s approval message to show where it stands now."""
    deployment = _load(pk)
    where = posted_message(deployment) if deployment else None
    if where is None:
        return
    approvals = _approvals(deployment)
    text, blocks = render(deployment, approvals)
    try:
        slack.update_message(settings.SLACK_BOT_TOKEN, settings.SLACK_API_URL, where, text, blocks)
    except IntegrationError as error:
        _not_updated(pk, error)
        return
    mark = shown(deployment.state, len(approvals))
    Deployment.update_report(pk, MESSAGE_REPORT, lambda old: {**old, "shown": mark}, announce=False)


def shown(state: str, decisions: int) -> str:
    """What a message showed, to tell (in the reconciler) whether it is behind its deployment."""
    return f"{state}:{decisions}"


def behind(now) -> list[int]:
    """Deployments (active, or finished in the last day) whose Slack message shows an older
    state or fewer decisions: a refresh was lost (Redis down, a worker killed, Slack down too long)."""
    recent = Q(state__in=states.ACTIVE) | Q(finished_at__gt=now - timedelta(days=1))
    rows = (
        Deployment.objects.filter(recent, reports__has_key=MESSAGE_REPORT)
        .annotate(decisions=Count("approvals"))
        .values_list("pk", "state", "decisions", "reports")
    )
    return [pk for pk, state, decided, reports in rows if reports[MESSAGE_REPORT].get("shown") != shown(state, decided)]


def _not_updated(pk: int, error: IntegrationError) -> None:
    queues.retry_or_give_up(
        error,
        transient=not error.permanent,
        give_up=lambda: log.warning("Slack message of deployment %s not updated: %s", pk, error),
    )


def _load(pk: int) -> Deployment | None:
    related = ("service", "environment", "release", "requested_by")
    return Deployment.objects.select_related(*related).filter(pk=pk).first()


def _approvals(deployment) -> list[Approval]:
    return list(deployment.approvals.select_related("user").order_by("created_at", "pk"))


# Whoever moved or decided (a browser, the API, Slack, the worker), the message follows once it
# commits. Only deployments that waited for approvers have a message (rollbacks and environments
# without approvals never do); the job returns at once for one whose request was not posted.
@receiver(deployment_transitioned)
def on_transition(sender, deployment, old, new, **kwargs):
    if configured() and deployment.required_approvals:
        queues.enqueue(refresh, deployment.pk)


@receiver(post_save, sender=Approval)
def on_decision(sender, instance: Approval, created: bool, **kwargs):
    if created and configured():
        queues.enqueue(refresh, instance.deployment_id)


# -- who is who ----------------------------------------------------------------------------------


def portal_user(team_id: str, slack_user_id: str):
    """The active portal user this Slack member is, or None.

    A linked account first; else, once, the portal user with the same e-mail address when Slack
    says the member confirmed it (users.info; needs the users:read.email scope). Raises
    IntegrationError when Slack cannot answer.
    """
    account = SlackAccount.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    if account is not None:
        return account.user if account.user.is_active else None
    if not settings.SLACK_BOT_TOKEN:
        return None
    member = slack.user_info(settings.SLACK_BOT_TOKEN, settings.SLACK_API_URL, slack_user_id)
    if not (member.active and member.email_confirmed and member.email):
        return None
    users = list(get_user_model().objects.filter(email__iexact=member.email, is_active=True)[:2])
    if len(users) != 1:
        return None  # nobody, or an address two people share: an admin links the account instead
    return _link(users[0], team_id, slack_user_id)


def _link(user, team_id: str, slack_user_id: str):
    try:
        with transaction.atomic():
            SlackAccount.objects.create(
                user=user, slack_user_id=slack_user_id, team_id=team_id, linked_via=SlackAccount.EMAIL
            )
    except IntegrityError:
        return None  # the user is linked to another Slack member already
    return user


# -- the message ---------------------------------------------------------------------------------
# Text in Slack mrkdwn, every outside value escaped.

OUTCOME_EMOJI = {
    states.APPROVED: ":white_check_mark:",
    states.BUILDING: ":rocket:",
    states.ROLLING_OUT: ":rocket:",
    states.SUCCEEDED: ":white_check_mark:",
    states.FAILED: ":x:",
    states.REJECTED: ":no_entry:",
    states.CANCELLED: ":octagonal_sign:",
}


def render(deployment, approvals: list[Approval]) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of the approval message as the deployment stands now."""
    what = (
        f"*{slack.escape(deployment.service.name)}* `{slack.escape(deployment.release.version)}` → "
        f"*{slack.escape(deployment.environment.name)}*"
    )
    page = slack.link(settings.PORTAL_URL + deployment.get_absolute_url(), f"deployment #{deployment.pk}")
    who = slack.escape(deployment.requested_by.username) if deployment.requested_by else "someone"
    pending = deployment.state == states.PENDING_APPROVAL
    headline = f"Approval needed: {what}" if pending else f"{deployment.state_label}: {what}"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{_emoji(deployment)} {headline}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Requested by {who}. See {page}"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": _standing(deployment, approvals)}},
    ]
    if pending:
        blocks.append(_buttons(deployment))
    return headline, blocks


def _emoji(deployment) -> str:
    if deployment.state == states.PENDING_APPROVAL:
        return ":raised_hand:"
    return OUTCOME_EMOJI.get(deployment.state, ":information_source:")


def _standing(deployment, approvals: list[Approval]) -> str:
    approved = [slack.escape(a.user.username) for a in approvals if a.decision == Approval.APPROVE]
    count = f"{len(approved)} of {deployment.required_approvals} approvals"
    by = f": {', '.join(approved)}" if approved else ""
    if deployment.state == states.PENDING_APPROVAL:
        return f"{count}{by}."
    rejected = [a for a in approvals if a.decision == Approval.REJECT]
    if rejected:
        comment = f": {slack.escape(rejected[0].comment[:300])}" if rejected[0].comment else "."
        return f"Rejected by {slack.escape(rejected[0].user.username)}{comment}"
    reason = f" {slack.escape(deployment.reason[:300])}" if deployment.reason and deployment.state in _SAYS_WHY else ""
    return f"{deployment.state_label} ({count}{by}).{reason}"


_SAYS_WHY = frozenset({states.CANCELLED, states.FAILED})


def _buttons(deployment) -> dict:
    value = str(deployment.pk)
    return {
        "type": "actions",
        "block_id": f"decide-{deployment.pk}",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE,
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": value,
            },
            {
                "type": "button",
                "action_id": REJECT,
                "text": {"type": "plain_text", "text": "Reject"},
                "style": "danger",
                "value": value,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Reject this deployment?"},
                    "text": {"type": "plain_text", "text": "Any rejection rejects it."},
                    "confirm": {"type": "plain_text", "text": "Reject"},
                    "deny": {"type": "plain_text", "text": "Keep it"},
                },
            },
        ],
    }
