"""Live fan-out inside one web process: one subscription per stream, however many sockets watch it.

A stream is a Channels group (`deployment-42`, `activity`). The first socket of this process
that watches a stream makes the process join the group with one channel of its own; every
message that arrives there is turned into frames once (the text a socket sends, encoded by the
sender in plumbing.live) and the same frames are handed to every socket watching the stream.
The last socket to leave makes the process leave the group. Several web processes share the
load: each joins the group once, and channels-redis delivers each message once per process.

Each socket has a bounded buffer drained by its own writer task, so a slow client holds up
nobody but itself. Frames that piled up while a client was behind go out as one frame, a JSON
array of the messages in order. A client whose buffer overflows is sent `{"type": "resync",
"seq": <last seq it was sent>}` and closed: it reconnects with `?after=<that seq>` and the
gapless replay (releases.consumers) gives it exactly what it missed.

Timeline streams are numbered: a stream knows the last seq it handed out and, when a message
skips ahead (two workers' broadcasts raced, or one was lost), reads the rows in between once
for every socket of the process (`fill`) instead of once per socket; late duplicates are dropped.
"""

import asyncio
import json
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

# Frames one socket may have waiting before it is told to resync. A rollout writes a few
# events a second; a Jenkins log tail a few hundred lines per poll.
BUFFER_LIMIT = 1000
# channels-redis forgets a group member after a day; a stream watched longer re-joins.
REJOIN_SECONDS = 3600.0

# (seq, text): seq is None for streams that are not numbered (activity).
Frame = tuple[int | None, str]
Fill = Callable[[int, int], Awaitable[list[dict]]]


def frames_of(message: dict) -> list[Frame]:
    """The frames a Channels message (plumbing.live) carries, each encoded once."""
    if message.get("type") == "timeline.events":
        texts = message.get("texts") or [json.dumps(e) for e in message["events"]]
        return [(event["seq"], text) for event, text in zip(message["events"], texts, strict=True)]
    if message.get("type") == "activity.update":
        return [(None, message.get("text") or json.dumps({"type": "update", **message["update"]}))]
    return []


def joined(texts: list[str]) -> str:
    """One websocket frame for several messages: a JSON array of them, in order."""
    return texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"


class Subscription:
    """One socket's view of a stream: a bounded buffer and the task that writes it out."""

    def __init__(self, stream: "Stream", limit: int):
        self.stream = stream
        self.limit = limit
        self.frames: deque[Frame] = deque()
        self.wake = asyncio.Event()
        self.overflowed = False
        self.writer: asyncio.Task | None = None

    def offer(self, frames: list[Frame]) -> None:
        if self.overflowed:
            return
        if len(self.frames) + len(frames) > self.limit:
            self.resync()
            return
        self.frames.extend(frames)
        self.wake.set()

    def resync(self) -> None:
        """Drop what is waiting and have the client catch up from the database instead."""
        self.overflowed = True
        self.frames.clear()
        self.wake.set()

    def start(self, deliver: Callable[[list[Frame]], Awaitable[None]], overflow: Callable[[], Awaitable[None]]):
        """Write frames as they come with `deliver(frames)` (every frame waiting, in order);
        on overflow call `overflow()` once and stop."""
        self.writer = asyncio.get_running_loop().create_task(self._write(deliver, overflow))

    async def _write(self, deliver, overflow) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                if self.overflowed:
                    await overflow()
                    return
                waiting = list(self.frames)
                self.frames.clear()
                if waiting:
                    await deliver(waiting)
        except OSError:
            return  # the client went away; its disconnect unsubscribes it

    def seen(self, seq: int) -> None:
        """The socket has been sent everything up to `seq` (its backlog): a stream that has
        handed out nothing yet fills gaps from there."""
        if self.stream.last_seq is None:
            self.stream.last_seq = seq

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
        await self.stream.leave(self)


@dataclass(eq=False)
class Stream:
    """This process's one membership of a group and the sockets it feeds."""

    hub: "Hub"
    group: str
    fill: Fill | None = None
    subscribers: set = field(default_factory=set)
    last_seq: int | None = None
    channel: str = ""
    reader: asyncio.Task | None = None
    ready: asyncio.Future | None = None

    async def open(self) -> None:
        self.ready = asyncio.get_running_loop().create_future()
        self.reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.shield(self.ready)

    async def _read(self) -> None:
        layer = self.hub.layer
        try:
            # The default prefix: channels-redis reads every process-local channel of one prefix
            # with one blocking pop, which the consumers' own channels already hold.
            self.channel = await layer.new_channel()
            await layer.group_add(self.group, self.channel)
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            raise
        self.ready.set_result(None)
        try:
            await self._relay(layer)
        except Exception as exc:  # noqa: BLE001 - Redis gone: every socket resyncs when it can
            log.warning("live stream %s stopped: %s", self.group, exc)
            if self.hub.streams.get(self.group) is self:
                del self.hub.streams[self.group]
            for subscriber in list(self.subscribers):
                subscriber.resync()

    async def _relay(self, layer) -> None:
        loop = asyncio.get_running_loop()
        joined_at = loop.time()
        while True:
            message = await layer.receive(self.channel)
            if loop.time() - joined_at > REJOIN_SECONDS:
                await layer.group_add(self.group, self.channel)
                joined_at = loop.time()
            await self.dispatch(frames_of(message))

    async def dispatch(self, frames: list[Frame]) -> None:
        if frames and frames[0][0] is not None:
            frames = await self.in_order(frames)
        for subscriber in list(self.subscribers):
            subscriber.offer(frames)

    async def in_order(self, frames: list[Frame]) -> list[Frame]:
        """Drop frames already handed out; read the rows a message skipped over (once)."""
        ordered = []
        for seq, text in frames:
            last = self.last_seq
            if last is not None and seq <= last:
                continue
            if last is not None and seq > last + 1 and self.fill is not None:
                ordered.extend(await self._missing(last, seq))
            ordered.append((seq, text))
            self.last_seq = seq
        return ordered

    async def _missing(self, after: int, before: int) -> list[Frame]:
        missing = []
        while after + 1 < before:
            try:
                rows = await self.fill(after, before)
            except Exception as exc:  # noqa: BLE001 - each socket fills the gap itself then
                log.warning("live stream %s: reading seq %s..%s failed: %s", self.group, after, before, exc)
                return missing
            if not rows:
                return missing
            missing.extend((row["seq"], json.dumps(row)) for row in rows)
            after = rows[-1]["seq"]
        return missing

    async def leave(self, subscriber: Subscription) -> None:
        self.subscribers.discard(subscriber)
        if self.subscribers or self.hub.streams.get(self.group) is not self:
            return
        del self.hub.streams[self.group]
        if self.reader is not None:
            self.reader.cancel()
        if self.channel:
            try:
                await self.hub.layer.group_discard(self.group, self.channel)
            except Exception as exc:  # noqa: BLE001 - the membership expires on its own
                log.warning("leaving live stream %s failed: %s", self.group, exc)


class Hub:
    """Every stream this process (this event loop) is subscribed to."""

    def __init__(self):
        self.layer = get_channel_layer()
        self.streams: dict[str, Stream] = {}

    async def subscribe(self, group: str, fill: Fill | None = None, limit: int | None = None) -> Subscription:
        """Start buffering `group`'s frames for one socket; returns once the process is
        subscribed, so a backlog read after this misses nothing."""
        limit = limit or BUFFER_LIMIT
        stream = self.streams.get(group)
        if stream is None:
            stream = self.streams[group] = Stream(self, group, fill)
            subscription = Subscription(stream, limit)
            stream.subscribers.add(subscription)
            try:
                await stream.open()
            except BaseException:
                await stream.leave(subscription)
                raise
            return subscription
        subscription = Subscription(stream, limit)
        stream.subscribers.add(subscription)
        try:
            await asyncio.shield(stream.ready)
        except BaseException:
            stream.subscribers.discard(subscription)
            raise
        return subscription


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The hub of the running event loop (one per web process; tests run a loop per test)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]


async def subscribe(group: str, fill: Fill | None = None, limit: int | None = None) -> Subscription:
    return await hub().subscribe(group, fill, limit)
