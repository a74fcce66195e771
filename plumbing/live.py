"""The one broadcast helper: everything that reaches a browser live goes through here.

Messages are sent after the surrounding transaction commits, so a browser never sees an
event that was rolled back, and then re-reads nothing: the payload is complete. A broadcast
that fails (Redis down) is logged and dropped; the page catches up from the database on
reconnect, because the events are rows.
"""

import asyncio
import json
import logging
import os
import threading

from channels.layers import get_channel_layer
from django.db import transaction

from plumbing import fragments

log = logging.getLogger(__name__)

ACTIVITY_GROUP = "activity"
# Log lines are many and only matter on the deployment's own page.
QUIET_KINDS = frozenset({"log"})
# The dashboard draws a bar from these; pods and conditions stay on the deployment's page.
SUMMARY_COUNTS = ("desired", "updated", "ready", "available", "total", "max_total")


def send(group: str, message: dict) -> None:
    """Send `message` to a Channels group once the current transaction commits."""
    transaction.on_commit(lambda: _send_now(group, message))


def _send_now(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _sender_loop()).result(SEND_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - a lost broadcast must never break a transition
        log.warning("broadcast to %s failed: %s", group, exc)


# One event loop per process, in its own thread, does every send. `async_to_sync` would run
# each send in a fresh loop, and channels-redis keeps its Redis connections per loop: every
# broadcast would open a new connection (tens of ms on a busy host). One loop also keeps
# sends from one process in the order they were made.
SEND_TIMEOUT = 5.0
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _loop_lock:
        # A forked child (RQ's default worker) inherits the object but not the thread.
        if _loop is None or _loop_pid != os.getpid():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            threading.Thread(target=_loop.run_forever, name="live-sender", daemon=True).start()
        return _loop


def timeline(group: str, events: list[dict]) -> None:
    """Relay new timeline events (of a deployment or a build) to the pages watching `group`.

    Each event is encoded once here rather than once per watching socket (a thousand may watch
    one rollout); every web process writes the text as it is (plumbing.fanout).
    """
    send(group, {"type": "timeline.events", "events": events, "texts": [json.dumps(e) for e in events]})


def activity(summary: dict) -> None:
    """Relay a summary of a deployment to the dashboard and the other live lists.

    What tells an open page to redraw also retires the rendered fragments a new page would have
    been served: the summary's kind ("deployment", "workload", "guard", "build", "report") is a
    freshness scope (plumbing.fragments).
    """
    text = json.dumps({"type": "update", **summary})
    send(ACTIVITY_GROUP, {"type": "activity.update", "update": summary, "text": text})
    fragments.touch(summary["kind"])
