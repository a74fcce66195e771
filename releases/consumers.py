"""Websocket consumers. They only relay: authenticate, subscribe to a stream, forward events.

Live frames come from the web process's one subscription per stream (plumbing.fanout): each
event is encoded once by its sender and the same text is written to every socket watching; a
socket that fell behind gets what piled up as one frame (a JSON array), and one whose buffer
overflowed gets `{"type": "resync", "seq": N}` and a 4000 close, and comes back with `?after=N`.

Gapless replay: the consumer subscribes to the deployment's stream *before* reading the backlog
from the database, then drops any live event it has already sent (seq ≤ last sent). A
browser that reconnects with `?after=<last seq it saw>` therefore misses nothing and sees
nothing twice.

Live events can also arrive out of order or not at all: two workers commit seq 5 and 6 one
after the other (the deployment row lock orders them) but their broadcasts race, and the
channel layer drops messages for a process that falls behind its capacity. Because seq N is
only handed out after seq N-1 committed, a live event N > last+1 proves the rows in between
exist: the stream reads them from the database once for the process, and a socket that still
sees a hole reads them itself, before N is forwarded.

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

from plumbing import fanout, sessions
from plumbing.live import ACTIVITY_GROUP
from releases import rules
from releases.models import Build, BuildEvent, Deployment, DeploymentEvent

UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
BAD_REQUEST = 4400
# Not a refusal: the socket fell behind (plumbing.fanout); the page reconnects at once.
RESYNC = 4000
# Backlog rows read per query; the backlog is read in pages until it is exhausted.
BACKLOG_PAGE = 500


class RelayConsumer(AsyncJsonWebsocketConsumer):
    """Shared plumbing: refuse with a code, answer pings, close on anything else."""

    subscription: fanout.Subscription | None = None
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
        if self.subscription:
            await self.subscription.close()
        for group in self.session_groups:
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
    and how to read its rows (`rows`); live frames come ready-made from the process's
    subscription to the parent's group (plumbing.fanout).
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
        self.subscription = await fanout.subscribe(parent.group, fill=self._events)
        await self.follow_session()
        await self.accept()
        self.last_seq = after
        await self._catch_up()
        await self.send_json({"type": "ready", "seq": self.last_seq})
        self.subscription.seen(self.last_seq)
        self.subscription.start(self.deliver, self.resync)

    parent_model: type  # Deployment or Build
    events = None  # the events queryset, filtered on `parent_field` (the parent's pk)
    parent_field = ""

    def find(self, pk):
        return self.parent_model.objects.filter(pk=pk).first()

    def rows(self, after: int, before: int | None) -> list[dict]:
        """A page of the parent's events after seq `after` (and before `before`), in order."""
        events = self.events.filter(**{self.parent_field: self.pk}, seq__gt=after)
        if before is not None:
            events = events.filter(seq__lt=before)
        return [e.as_message() for e in events.order_by("seq")[:BACKLOG_PAGE]]

    def pong(self) -> dict:
        return {"seq": self.last_seq}

    async def deliver(self, frames: list[fanout.Frame]) -> None:
        """Write live frames after the ones already sent, filling a gap from the database."""
        texts = []
        for seq, text in frames:
            if seq <= self.last_seq:
                continue
            if seq > self.last_seq + 1:
                texts.extend(await self._missing(before=seq))
            self.last_seq = seq
            texts.append(text)
        if texts:
            await self.send(text_data=fanout.joined(texts))

    async def resync(self) -> None:
        """This socket fell too far behind: the page reconnects from the last seq it was sent."""
        await self.send_json({"type": "resync", "seq": self.last_seq})
        await self.close(code=RESYNC)

    async def _missing(self, before: int) -> list[str]:
        texts = []
        while True:
            page = await self._events(self.last_seq, before)
            texts.extend(json.dumps(event) for event in page)
            if page:
                self.last_seq = page[-1]["seq"]
            if len(page) < BACKLOG_PAGE:
                return texts

    async def _catch_up(self) -> None:
        """Send every stored row after last_seq, page by page."""
        while True:
            page = await self._events(self.last_seq, None)
            for event in page:
                self.last_seq = event["seq"]
                await self.send(text_data=json.dumps(event))
            if len(page) < BACKLOG_PAGE:
                return

    @database_sync_to_async
    def _events(self, after: int, before: int | None) -> list[dict]:
        return self.rows(after, before)


class DeploymentConsumer(SequencedConsumer):
    """`/ws/deployments/<id>/?after=<seq>`: the deployment's timeline events."""

    parent_model = Deployment
    events = DeploymentEvent.objects.select_related("actor")
    parent_field = "deployment_id"


class BuildConsumer(SequencedConsumer):
    """`/ws/builds/<id>/?after=<seq>`: a Jenkins build's events and console lines."""

    parent_model = Build
    events = BuildEvent.objects.all()
    parent_field = "build_id"


class ActivityConsumer(RelayConsumer):
    """`/ws/activity/`: summaries of deployments and workloads for the dashboard."""

    async def connect(self):
        user = self.scope.get("user")
        if not rules.can_view(user):
            await self.refuse(UNAUTHENTICATED if not getattr(user, "is_authenticated", False) else FORBIDDEN)
            return
        self.subscription = await fanout.subscribe(ACTIVITY_GROUP)
        await self.follow_session()
        await self.accept()
        self.subscription.start(self.deliver, self.resync)

    async def deliver(self, frames: list[fanout.Frame]) -> None:
        await self.send(text_data=fanout.joined([text for _, text in frames]))

    async def resync(self) -> None:
        """Too far behind: the page reconnects and re-reads what it shows (static/live.js)."""
        await self.send_json({"type": "resync"})
        await self.close(code=RESYNC)


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
