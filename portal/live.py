"""The one broadcast helper: everything that reaches a browser live goes through here.

Messages are sent after the surrounding transaction commits, so a browser never sees an
event that was rolled back, and then re-reads nothing: the payload is complete. A broadcast
that fails (Redis down) is logged and dropped; the page catches up from the database on
reconnect, because the events are rows.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

ACTIVITY_GROUP = "activity"
# Log lines are many and only matter on the deployment's own page.
QUIET_KINDS = frozenset({"log"})


def send(group: str, message: dict) -> None:
    """Send `message` to a Channels group once the current transaction commits."""
    transaction.on_commit(lambda: _send_now(group, message))


def _send_now(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:  # noqa: BLE001 - a lost broadcast must never break a transition
        log.warning("broadcast to %s failed: %s", group, exc)


def deployment_event(deployment, event) -> None:
    """Relay a new timeline event to the deployment's page and a summary to the dashboard."""
    send(deployment.group, {"type": "deployment.event", "event": event.as_message()})
    if event.kind not in QUIET_KINDS:
        send(ACTIVITY_GROUP, {"type": "activity.update", "update": activity_summary(deployment)})


def workload_changed(summary: dict) -> None:
    """Relay what the cluster runs (including changes made behind the portal's back)."""
    send(ACTIVITY_GROUP, {"type": "activity.update", "update": summary})


def activity_summary(deployment) -> dict:
    return {
        "kind": "deployment",
        "deployment": deployment.pk,
        "service": deployment.service.slug,
        "environment": deployment.environment.slug,
        "version": deployment.release.version,
        "state": deployment.state,
        "state_label": deployment.state_label,
        "tone": deployment.tone,
        "progress": deployment.progress,
        "url": deployment.get_absolute_url(),
    }
