"""Websocket consumers. They only relay: authenticate, join a group, forward events.

Gapless replay: the consumer joins the deployment's group *before* reading the backlog
from the database, then drops any live event it has already sent (seq ≤ last sent). A
browser that reconnects with `?after=<last seq it saw>` therefore misses nothing and sees
nothing twice.

Live events can also arrive out of order or not at all: two workers commit seq 5 and 6 one
after the other (the deployment row lock orders them) but their broadcasts race, and the
channel layer drops messages for a consumer that falls behind its capacity. Because seq N is
only handed out after seq N-1 committed, a live event N > last+1 proves the rows in between
exist, so the consumer reads them from the database before forwarding N.

Refusals are sent after accepting, as close codes a page can act on (a close before accept
reaches a browser only as an anonymous HTTP 403): 4401 not logged in, 4403 not allowed,
4404 no such deployment, 4400 malformed parameter or message.

A socket lives no longer than the session it was opened with: it joins the session's and the
user's groups (a logout or a deactivation closes it at once, 4401) and re-checks the session
every WEBSOCKET_SESSION_CHECK_SECONDS and when it expires (plumbing.sessions).
"""

import asyncio
import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from plumbing import sessions
from plumbing.live import ACTIVITY_GROUP
from releases import rules
from releases.models import Build, BuildEvent, Deployment, DeploymentEvent

UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
BAD_REQUEST = 4400
# Backlog rows read per query; the backlog is read in pages until it is exhausted.
BACKLOG_PAGE = 500


class RelayConsumer(AsyncJsonWebsocketConsumer):
    """Shared plumbing: refuse with a code, answer pings, close on anything else."""

    group: str | None = None
    session_groups: tuple[str, ...] = ()
    session_watch: asyncio.Task | None = None

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None:
            await self.close(code=BAD_REQUEST)
            return
        await super().receive(text_data=text_data, **kwargs)

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def receive_json(self, content, **kwargs):
        # Pages only listen; a ping keeps proxies from closing an idle socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", **self.pong()})
            return
        await self.close(code=BAD_REQUEST)

    def pong(self) -> dict:
        return {}

    async def disconnect(self, code):
        if self.session_watch:
            self.session_watch.cancel()
        for group in (self.group, *self.session_groups):
            if group:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def follow_session(self) -> None:
        """Close this socket when its session ends: at once on logout or deactivation (a group
        message), else when a periodic re-check finds it expired or no longer valid."""
        session = self.scope.get("session")
        user = self.scope["user"]
        if session is None or not session.session_key:
            return
        self.session_groups = (sessions.session_group(session.session_key), sessions.user_group(user.pk))
        for group in self.session_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.session_watch = asyncio.create_task(self._recheck(session.session_key, user.pk))

    async def _recheck(self, session_key: str, user_id) -> None:
        interval = settings.WEBSOCKET_SESSION_CHECK_SECONDS
        while True:
            left = await database_sync_to_async(sessions.seconds_left)(session_key, user_id)
            if left <= 0:
                await self.close(code=UNAUTHENTICATED)
                return
            await asyncio.sleep(min(interval, left + 0.5))

    async def session_ended(self, message):
        await self.close(code=UNAUTHENTICATED)


class SequencedConsumer(RelayConsumer):
    """A stream of rows numbered 1, 2, 3… per parent: backlog after `?after=`, then live, each once.

    Subclasses say how to find the parent (`find`, returning an object with `group` or None)
    and how to read its rows (`rows`); live messages carry ready-made row messages.
    """

    last_seq = 0

    async def connect(self):
        user = self.scope.get("user")
        if not rules.can_view(user):
            await self.refuse(UNAUTHENTICATED if not getattr(user, "is_authenticated", False) else FORBIDDEN)
            return
        after = _after_param(self.scope)
        if after is None:
            await self.refuse(BAD_REQUEST)
            return
        self.pk = self.scope["url_route"]["kwargs"]["pk"]
        parent = await database_sync_to_async(self.find)(self.pk)
        if parent is None:
            await self.refuse(NOT_FOUND)
            return
        if not rules.can_view(user, parent):
            await self.refuse(FORBIDDEN)
            return
        self.group = parent.group
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.follow_session()
        await self.accept()
        self.last_seq = after
        await self._catch_up()
        await self.send_json({"type": "ready", "seq": self.last_seq})

    def find(self, pk):
        raise NotImplementedError

    def rows(self, after: int, before: int | None) -> list[dict]:
        raise NotImplementedError

    def pong(self) -> dict:
        return {"seq": self.last_seq}

    async def timeline_events(self, message):
        """New rows of the timeline (plumbing.live.timeline), each with its ready-made text."""
        for event, text in zip(message["events"], message["texts"], strict=True):
            await self.relay(event, text)

    async def relay(self, event: dict, text: str | None = None) -> None:
        if event["seq"] <= self.last_seq:
            return
        if event["seq"] > self.last_seq + 1:
            await self._catch_up(before=event["seq"])
        await self._forward(event, text)

    async def _catch_up(self, before: int | None = None) -> None:
        """Send every stored row after last_seq (and below `before`), page by page."""
        while True:
            page = await self._events(self.last_seq, before)
            for event in page:
                await self._forward(event)
            if len(page) < BACKLOG_PAGE:
                return

    @database_sync_to_async
    def _events(self, after: int, before: int | None) -> list[dict]:
        return self.rows(after, before)

    async def _forward(self, event: dict, text: str | None = None) -> None:
        if event["seq"] <= self.last_seq:
            return
        self.last_seq = event["seq"]
        await self.send(text_data=text or json.dumps(event))


class DeploymentConsumer(SequencedConsumer):
    """`/ws/deployments/<id>/?after=<seq>`: the deployment's timeline events."""

    def find(self, pk):
        return Deployment.objects.filter(pk=pk).first()

    def rows(self, after, before):
        events = DeploymentEvent.objects.filter(deployment_id=self.pk, seq__gt=after)
        if before is not None:
            events = events.filter(seq__lt=before)
        return [e.as_message() for e in events.select_related("actor").order_by("seq")[:BACKLOG_PAGE]]


class BuildConsumer(SequencedConsumer):
    """`/ws/builds/<id>/?after=<seq>`: a Jenkins build's events and console lines."""

    def find(self, pk):
        return Build.objects.filter(pk=pk).first()

    def rows(self, after, before):
        events = BuildEvent.objects.filter(build_id=self.pk, seq__gt=after)
        if before is not None:
            events = events.filter(seq__lt=before)
        return [e.as_message() for e in events.order_by("seq")[:BACKLOG_PAGE]]


class ActivityConsumer(RelayConsumer):
    """`/ws/activity/`: summaries of deployments and workloads for the dashboard."""

    async def connect(self):
        user = self.scope.get("user")
        if not rules.can_view(user):
            await self.refuse(UNAUTHENTICATED if not getattr(user, "is_authenticated", False) else FORBIDDEN)
            return
        self.group = ACTIVITY_GROUP
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.follow_session()
        await self.accept()

    async def activity_update(self, message):
        await self.send_json({"type": "update", **message["update"]})


class UnknownPathConsumer(RelayConsumer):
    """Any other websocket path: a clear 4404 instead of a routing error in the server log."""

    async def connect(self):
        await self.refuse(NOT_FOUND)


def _after_param(scope) -> int | None:
    """The `after` query parameter as a non-negative int; 0 when absent, None when malformed."""
    try:
        values = parse_qs(scope.get("query_string", b"").decode("ascii"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return None
    raw = values.get("after", ["0"])[-1]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        return None
    return int(raw)
