"""Long-polling a deployment: `GET /api/v1/deployments/<id>/?after_seq=N&wait=S`.

An ASGI wrapper around Django (portal/asgi.py) rather than an async view: several middleware
in the stack are sync-only, so Django runs every request, async views included, on a thread of
its own; a view that waited would hold that thread for the whole wait. Here Django answers the
request twice, each time as an ordinary request (authentication, the token's scopes,
validation of `wait` and `after_seq`, the deployment's JSON all happen there); in between, when
the first answer shows nothing new yet, this coroutine listens on the deployment's Channels
group (the one its page listens on) on the event loop, holding no thread, connection or query.
The second answer is the one the client gets.

The wait ends as soon as an event after `after_seq` (or, without it, after the first answer's
`last_seq`) is broadcast, the deployment is final, the client goes away, or `wait` seconds
pass. At most API_LONG_POLL_MAX_WAITERS wait at once per process; past that the first answer
goes back at once with `Retry-After: 1`. If the channel layer fails (Redis down), it polls one
row with backoff instead.
"""

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from releases import states
from releases.models import Deployment

log = logging.getLogger(__name__)

DETAIL = re.compile(r"^/api/v1/deployments/(\d{1,18})/$")


@dataclass
class Answer:
    """A response Django sent, held back so it can be sent later (or not at all)."""

    start: dict | None = None
    body: bytearray = field(default_factory=bytearray)

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def json(self) -> dict | None:
        if self.start is None or self.start["status"] != 200:
            return None
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def replay(self, send, extra_headers=()) -> None:
        if self.start is None:
            return  # the client went away while Django answered
        await send({**self.start, "headers": [*self.start.get("headers", []), *extra_headers]})
        await send({"type": "http.response.body", "body": bytes(self.body)})


class LongPoll:
    """ASGI middleware: everything passes straight through except a detail GET asking to wait."""

    def __init__(self, app):
        self.app = app
        self.waiting = 0  # touched only on the event loop

    async def __call__(self, scope, receive, send):
        match = DETAIL.match(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "GET" else None
        if match is None:
            return await self.app(scope, receive, send)
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if not _positive_int(params.get("wait")):
            return await self.app(scope, receive, send)
        request = await receive()  # a GET's (empty) body, handed to Django on each ask
        first = await self._ask(scope, request, receive)
        data = first.json()
        after = _int(params.get("after_seq"))
        if data is None or _changed(data, data["last_seq"] if after is None else after):
            return await first.replay(send)
        if self.waiting >= settings.API_LONG_POLL_MAX_WAITERS:
            return await first.replay(send, [(b"retry-after", b"1")])
        # Django accepted `wait`, so it is within API_LONG_POLL_MAX_SECONDS.
        seconds = min(int(params["wait"]), settings.API_LONG_POLL_MAX_SECONDS)
        baseline = data["last_seq"] if after is None else after
        self.waiting += 1
        try:
            went_away = await _wait_unless_gone(int(match.group(1)), baseline, seconds, receive)
        finally:
            self.waiting -= 1
        if went_away:
            return
        params.pop("wait")
        again = {**scope, "query_string": urlencode(params).encode("latin-1")}
        second = await self._ask(again, request, receive)
        await second.replay(send)

    async def _ask(self, scope, request: dict, receive) -> Answer:
        answer = Answer()
        delivered = False

        async def inner_receive():
            nonlocal delivered
            if not delivered:
                delivered = True
                return request
            return await receive()  # after the body, Django only listens for a disconnect

        await self.app(scope, inner_receive, answer.send)
        return answer


async def _wait_unless_gone(pk: int, after: int, seconds: float, receive) -> bool:
    """Wait for an event; True if the client disconnected meanwhile."""
    waiting = asyncio.create_task(wait_for_event(pk, after, seconds))
    gone = asyncio.create_task(receive())
    done, pending = await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    # Let the cancelled ones finish: a channel-layer receive releases its lock on the way out.
    await asyncio.gather(*pending, return_exceptions=True)
    return gone in done and gone.result().get("type") == "http.disconnect"


async def wait_for_event(pk: int, after: int, seconds: float) -> None:
    """Return when deployment `pk` has an event after `after` (or is final), or after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        await _listen(pk, after, deadline)
    except Exception as error:  # noqa: BLE001 - the channel layer (Redis) failing must not fail the request
        log.warning("long-poll on deployment %s falls back to polling: %s", pk, error)
        await _poll(pk, after, deadline)


async def _listen(pk: int, after: int, deadline: float) -> None:
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    group = Deployment(pk=pk).group
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        # An event may have committed between the first answer and joining the group.
        if await _moved(pk, after):
            return
        while (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(channel), left)
            except TimeoutError:
                return
            if any(seq > after for seq in _seqs(message)):
                return
    finally:
        await layer.group_discard(group, channel)


async def _poll(pk: int, after: int, deadline: float) -> None:
    """Without a channel layer: read one row, less and less often (0.5 s, 1 s, 2 s, then 4 s)."""
    loop = asyncio.get_running_loop()
    delay = 0.5
    while not await _moved(pk, after) and (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 4)


@sync_to_async
def _moved(pk: int, after: int) -> bool:
    try:
        row = Deployment.objects.filter(pk=pk).values("last_seq", "state").first()
    finally:
        close_old_connections()  # outside any request: nothing else would close it
    return row is None or row["state"] in states.FINAL or row["last_seq"] > after


def _seqs(message: dict) -> list[int]:
    """The seqs of the timeline events a group message carries (one event, or a batch)."""
    if message.get("type") == "deployment.event":
        return [message["event"]["seq"]]
    if message.get("type") == "timeline.events":
        return [event["seq"] for event in message["events"]]
    return []


def _changed(data: dict, after: int) -> bool:
    return bool(data.get("is_final")) or data.get("last_seq", 0) > after


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 12 else None


def _positive_int(value: str | None) -> bool:
    number = _int(value)
    return number is not None and number > 0
