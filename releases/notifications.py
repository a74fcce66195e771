"""Slack messages about deployments, freezes and locks.

Receivers only queue jobs; each job re-reads the rows, builds the message and posts it to the
environment's incoming webhook (or the global SLACK_WEBHOOK_URL). A Slack outage never blocks a
deployment: jobs retry with backoff and the outcome of each message is kept in
`Deployment.reports["slack"]`. Clusters know nothing of releases, so the freeze and lock
receivers live here too.
"""

import functools
import logging

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from clusters.models import Environment, FreezeWindow, Lock
from plumbing import queues
from plumbing.integrations import IntegrationError, slack
from releases import slack_approvals, states
from releases.models import Deployment, deployment_transitioned

log = logging.getLogger(__name__)


def quiet(receiver_function):
    """A notification problem must never break the save or transition that sent the signal."""

    @functools.wraps(receiver_function)
    def wrapper(*args, **kwargs):
        try:
            receiver_function(*args, **kwargs)
        except Exception:
            log.exception("Slack notification receiver %s failed", receiver_function.__name__)

    return wrapper


STARTS = frozenset({states.BUILDING, states.ROLLING_OUT})
# Final states worth telling the channel about, by the event name used in reports.
OUTCOMES = {
    states.SUCCEEDED: "succeeded",
    states.FAILED: "failed",
    states.REJECTED: "rejected",
}


def webhook_for(environment) -> str:
    return environment.slack_webhook_url or settings.SLACK_WEBHOOK_URL


def _queue_deployment(deployment, event: str) -> None:
    if webhook_for(deployment.environment) or _with_buttons(event):
        queues.enqueue(notify_deployment, deployment.pk, event)


def _with_buttons(event: str) -> bool:
    """The approval request goes through the Slack app, with buttons, when one is configured."""
    return event == "approval_requested" and slack_approvals.configured()


@quiet
def approval_requested(deployment) -> None:
    """Called by flows.request_deployment when a deployment waits for approvers."""
    if deployment.state == states.PENDING_APPROVAL:
        _queue_deployment(deployment, "approval_requested")


@receiver(deployment_transitioned)
@quiet
def on_transition(sender, deployment, old, new, **kwargs):
    event = _event(deployment, old, new)
    if event:
        _queue_deployment(deployment, event)


def _event(deployment, old: str, new: str) -> str:
    if new in STARTS and old == states.APPROVED:
        return "started"
    if new == states.CANCELLED and deployment.started_at is not None:
        return "cancelled"
    return OUTCOMES.get(new, "")


def notify_deployment(pk: int, event: str) -> None:
    """Post the message for `event` of deployment `pk`, once (a second run sees it was sent)."""
    deployment = (
        Deployment.objects.select_related("service", "environment", "release", "previous_release", "requested_by")
        .filter(pk=pk)
        .first()
    )
    if deployment is None or event not in MESSAGES:
        return
    if (deployment.reports or {}).get("slack", {}).get("events", {}).get(event, {}).get("state") == "sent":
        return
    url = webhook_for(deployment.environment)
    if not url and not _with_buttons(event):
        return
    try:
        _deliver(deployment, event, url)
    except IntegrationError as error:
        retrying = not error.permanent and queues.retries_left()
        _report(pk, event, "retrying" if retrying else "failed", str(error))
        if retrying:
            raise
        return
    _report(pk, event, "sent", "")


def _deliver(deployment, event: str, url: str) -> None:
    if _with_buttons(event):
        slack_approvals.post_request(deployment)
        return
    headline, details = MESSAGES[event](deployment)
    slack.send(url, _plain(headline), _blocks(headline, details))


def _report(pk: int, event: str, state: str, error: str) -> None:
    at = timezone.now().isoformat(timespec="seconds")

    def change(old: dict) -> dict:
        events = {**old.get("events", {}), event: {"state": state, "error": error, "at": at}}
        return {"state": state, "event": event, "error": error, "events": events}

    Deployment.update_report(pk, "slack", change)


# --- messages ---------------------------------------------------------------------------
# Each returns (headline, details) in Slack mrkdwn, every outside value escaped.


def _what(d: Deployment) -> str:
    return (
        f"*{slack.escape(d.service.name)}* `{slack.escape(d.release.version)}` → *{slack.escape(d.environment.name)}*"
    )


def _page(d: Deployment) -> str:
    return slack.link(settings.PORTAL_URL + d.get_absolute_url(), f"deployment #{d.pk}")


def _who(d: Deployment) -> str:
    return slack.escape(d.requested_by.username) if d.requested_by else "someone"


def _reason(d: Deployment) -> str:
    return f": {slack.escape(d.reason[:500])}" if d.reason else ""


MESSAGES = {
    "approval_requested": lambda d: (
        f":raised_hand: Approval needed: {_what(d)}",
        f"Requested by {_who(d)}; needs {d.required_approvals} approval(s). Review {_page(d)}",
    ),
    "started": lambda d: (
        f":rocket: {'Rolling back' if d.kind == d.ROLLBACK else 'Deploying'} {_what(d)}",
        f"{'Started automatically' if d.automatic else f'Requested by {_who(d)}'}{_reason(d)}. Follow {_page(d)}",
    ),
    "succeeded": lambda d: _succeeded(d),
    "failed": lambda d: (
        f":x: {'Rollback failed' if d.is_rollback else 'Deploy failed'}: {_what(d)}",
        f"Failed{_reason(d)}. See {_page(d)}",
    ),
    "rejected": lambda d: (f":no_entry: Rejected: {_what(d)}", f"Rejected{_reason(d)}. See {_page(d)}"),
    "cancelled": lambda d: (f":octagonal_sign: Cancelled: {_what(d)}", f"Cancelled{_reason(d)}. See {_page(d)}"),
}


def _succeeded(d: Deployment) -> tuple[str, str]:
    if not d.is_rollback:
        return f":white_check_mark: Deployed {_what(d)}", f"Succeeded. See {_page(d)}"
    left = slack.escape(d.previous_release.version) if d.previous_release else "the release before"
    how = "automatically" if d.automatic else f"by {_who(d)}"
    return (
        f":leftwards_arrow_with_hook: Rolled back: {_what(d)}",
        f"{slack.escape(d.environment.name)} runs `{slack.escape(d.release.version)}` again instead of `{left}`, "
        f"rolled back {how}{_reason(d)}. See {_page(d)}",
    )


def _blocks(headline: str, details: str) -> list[dict]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": details}]},
    ]


def _plain(headline: str) -> str:
    """The notification fallback: the headline without emoji codes."""
    return headline.split(" ", 1)[1] if headline.startswith(":") else headline


# --- freezes and locks ------------------------------------------------------------------


def notify_environment(environment_id: int, headline: str, details: str) -> None:
    """Post an environment-wide message (freeze or lock change); retried like the others."""
    environment = Environment.objects.filter(pk=environment_id).first()
    url = webhook_for(environment) if environment else settings.SLACK_WEBHOOK_URL
    if not url:
        return
    try:
        slack.send(url, _plain(headline), _blocks(headline, details))
    except IntegrationError as error:
        if not error.permanent and queues.retries_left():
            raise
        log.warning("Slack message about environment %s not delivered: %s", environment_id, error)


def _queue_environment(environment, headline: str, details: str) -> None:
    if webhook_for(environment):
        queues.enqueue(notify_environment, environment.pk, headline, details)


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def _scope(lock: Lock) -> str:
    return f"`{slack.escape(lock.service_slug)}`" if lock.service_slug else "all services"


@receiver(post_save, sender=Lock)
@quiet
def on_lock_saved(sender, instance: Lock, created: bool, update_fields=None, **kwargs):
    env = slack.escape(instance.environment.name)
    who = slack.escape(instance.locked_by.username) if instance.locked_by else "someone"
    reason = slack.escape(instance.reason)
    if created and instance.released_at is None:
        until = f" until {_when(instance.until)}" if instance.until else ""
        _queue_environment(
            instance.environment, f":lock: *{env}* locked for {_scope(instance)}{until}", f"By {who}: {reason}"
        )
    elif instance.released_at and (update_fields is None or "released_at" in update_fields):
        if instance.released_by:
            by = f" by {slack.escape(instance.released_by.username)}"
        else:
            by = " (its time ran out)" if instance.until and instance.released_at >= instance.until else ""
        _queue_environment(
            instance.environment, f":unlock: *{env}* unlocked for {_scope(instance)}{by}", f"The lock was: {reason}"
        )


@receiver(post_delete, sender=Lock)
@quiet
def on_lock_deleted(sender, instance: Lock, **kwargs):
    if instance.released_at is None:
        env = slack.escape(instance.environment.name)
        _queue_environment(
            instance.environment, f":unlock: *{env}* unlocked for {_scope(instance)}", "The lock was removed."
        )


@receiver(post_save, sender=FreezeWindow)
@quiet
def on_freeze_saved(sender, instance: FreezeWindow, created: bool, **kwargs):
    env = slack.escape(instance.environment.name)
    verb = "will be frozen" if created else "freeze changed:"
    _queue_environment(
        instance.environment,
        f":snowflake: *{env}* {verb} {_when(instance.starts_at)} → {_when(instance.ends_at)}",
        slack.escape(instance.reason),
    )


@receiver(post_delete, sender=FreezeWindow)
@quiet
def on_freeze_deleted(sender, instance: FreezeWindow, **kwargs):
    env = slack.escape(instance.environment.name)
    _queue_environment(
        instance.environment,
        f":sunny: *{env}* freeze removed ({_when(instance.starts_at)} → {_when(instance.ends_at)})",
        slack.escape(instance.reason),
    )
