"""Live fan-out (plumbing.fanout): one subscription per web process per stream, a bounded buffer
per socket, bursts coalesced, overflow answered with a resync, several web processes sharing
the load through Redis.

Clients are the `websockets` library against uvicorn serving portal.asgi (in a thread, or as
separate processes for the several-processes case), on the test database and the Redis db.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import websockets
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from plumbing import fanout
from portal.asgi import application
from releases import consumers
from releases.models import Build, Entry
from tests.factories import make_deployment, make_release
from tests.support import free_port
from tests.support.stack import Background, serve

TIMEOUT = 30
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_redis():
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def server(transactional_db, settings):
    """uvicorn in a thread on the test database; sockets come from its own origin."""
    background = Background()
    try:
        url = serve(background)
        settings.PORTAL_URL = url
        yield url
    finally:
        background.close()


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def ws_headers(user, origin: str) -> dict:
    return {"Cookie": session_cookie(user), "Origin": origin}


def messages_of(raw: str) -> list[dict]:
    frame = json.loads(raw)
    return frame if isinstance(frame, list) else [frame]


async def read_until_seq(ws, last: int, into: list) -> None:
    """Read frames into `into` (every message) until the event `last` arrives."""
    while not any(m.get("seq") == last and m["type"] == "event" for m in into):
        into.extend(messages_of(await asyncio.wait_for(ws.recv(), TIMEOUT)))


def event_seqs(messages: list[dict]) -> list[int]:
    return [m["seq"] for m in messages if m["type"] == "event"]


def big_entries(count: int, size: int = 16_000) -> list[Entry]:
    return [Entry("note", f"{n}:" + "x" * size) for n in range(count)]


def test_it_coalesces_a_burst_into_one_frame_in_order(cast_tx):
    build = Build.objects.create(service=cast_tx.service, job_name="storefront-build")
    prepared = [(b"host", b"127.0.0.1"), (b"origin", settings.PORTAL_URL.encode())]
    prepared.append((b"cookie", session_cookie(cast_tx.erin).encode()))

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/builds/{build.pk}/", headers=prepared)
        assert (await communicator.connect(timeout=TIMEOUT))[0]
        assert await communicator.receive_json_from(timeout=TIMEOUT) == {"type": "ready", "seq": 0}
        await sync_to_async(build.append)([Entry("log", f"line {n}") for n in range(1, 6)])
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        assert isinstance(frame, list)
        assert [(m["seq"], m["message"]) for m in frame] == [(n, f"line {n}") for n in range(1, 6)]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    async_to_sync(scenario)()


class RawClient:
    """A websocket client on a plain socket whose kernel buffer stays small (no autotuning), so
    that a client that stops reading pushes back on the server after a few frames. Frames are
    parsed by the `websockets` sans-I/O protocol when the test chooses to read."""

    def __init__(self, url: str, headers: dict):
        parts = urlsplit(url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect((parts.hostname, parts.port))
        self.protocol = ClientProtocol(parse_uri(url), origin=headers["Origin"], max_size=None)
        request = self.protocol.connect()
        request.headers["Cookie"] = headers["Cookie"]
        self.protocol.send_request(request)
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        self.pending: list = []
        self.close_code = None

    def messages(self, until) -> list[dict]:
        """Read frames until `until(messages so far)` or the server closes."""
        received = []
        while not until(received) and self.close_code is None:
            data = self.sock.recv(65536)
            self.protocol.receive_data(data) if data else self.protocol.receive_eof()
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    received.extend(messages_of(event.data.decode()))
                elif isinstance(event, Frame) and event.opcode == Opcode.CLOSE:
                    self.close_code = Close.parse(event.data).code
            if not data:
                break
        return received


def test_it_tells_a_client_that_overflows_its_buffer_to_resync_and_keeps_the_others_going(cast_tx, server, monkeypatch):
    """The slow client stops reading; TCP pushes back, its buffer fills and overflows. The fast
    one meanwhile gets every event once, in order. The slow one, reading again, is told to
    resync from the last seq it was sent, and a reconnect from there gives it exactly the rest."""
    monkeypatch.setattr(fanout, "BUFFER_LIMIT", 20)
    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod)
    url = server.replace("http", "ws") + f"/ws/deployments/{deployment.pk}/"
    headers = ws_headers(cast_tx.erin, server)
    total = 400

    def has(seq):
        return lambda messages: any(m.get("seq") == seq and m["type"] in ("event", "ready") for m in messages)

    slow, fast = RawClient(url, headers), RawClient(url, headers)
    for client in (slow, fast):
        assert client.messages(until=has(0)) == [{"type": "ready", "seq": 0}]
    fast_messages = []
    reader = threading.Thread(target=lambda: fast_messages.extend(fast.messages(until=has(total))))
    reader.start()
    for _ in range(total // 10):
        deployment.append(big_entries(10))
    reader.join(TIMEOUT * 2)
    assert event_seqs(fast_messages) == list(range(1, total + 1))

    slow_messages = slow.messages(until=lambda messages: False)
    assert slow.close_code == consumers.RESYNC
    resync = slow_messages[-1]
    assert resync["type"] == "resync"
    assert 0 < resync["seq"] < total
    assert event_seqs(slow_messages) == list(range(1, resync["seq"] + 1))

    again = RawClient(f"{url}?after={resync['seq']}", headers)
    rest = again.messages(until=has(total))
    assert event_seqs(rest) == list(range(resync["seq"] + 1, total + 1))


# Several web processes: each subscribes once per stream and gets each message once through Redis.


def database_url() -> str:
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pampam"))
    return url._replace(path="/" + connection.settings_dict["NAME"]).geturl()


class WebProcesses:
    """`count` uvicorn processes serving portal.asgi on the test database."""

    def __init__(self, count: int):
        self.urls, self.processes = [], []
        for _ in range(count):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {**os.environ, "DATABASE_URL": database_url(), "PORTAL_URL": url, "LOG_LEVEL": "WARNING"}
            command = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--port", str(port)]
            command += ["--lifespan", "off", "--log-level", "warning", "--ws", "websockets-sansio"]
            self.processes.append(subprocess.Popen(command, cwd=ROOT, env=env))
            self.urls.append(url)
        for url in self.urls:
            _wait_for_port(int(url.rsplit(":", 1)[1]))

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"uvicorn on {port} did not start"
            time.sleep(0.1)


def test_it_delivers_every_event_exactly_once_in_order_across_several_web_processes(cast_tx):
    """Ten sockets on each of two web processes; two writers log at once, so broadcasts race
    (a later seq may arrive first): every socket still gets 1..N once, in order."""
    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod)
    cookie = session_cookie(cast_tx.erin)
    web = WebProcesses(2)
    per_writer = 40

    def write(tag):
        from django.db import connections

        try:
            for n in range(per_writer):
                deployment.log("note", f"{tag} {n}")
        finally:
            connections.close_all()

    async def watch(url, ready: asyncio.Event, total: int) -> list[dict]:
        ws_url = url.replace("http", "ws") + f"/ws/deployments/{deployment.pk}/"
        async with websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url}) as ws:
            received = messages_of(await asyncio.wait_for(ws.recv(), TIMEOUT))
            ready.set()
            await read_until_seq(ws, total, received)
            try:
                received.extend(messages_of(await asyncio.wait_for(ws.recv(), 0.5)))
            except TimeoutError:
                pass
            return received

    async def scenario():
        total = 2 * per_writer
        readies = [asyncio.Event() for _ in range(20)]
        watchers = [asyncio.create_task(watch(web.urls[i % 2], readies[i], total)) for i in range(20)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), TIMEOUT * 2)
        writers = [threading.Thread(target=write, args=(tag,)) for tag in ("a", "b")]
        for writer in writers:
            writer.start()
        for writer in writers:
            await asyncio.to_thread(writer.join)
        for received in await asyncio.gather(*watchers):
            assert event_seqs(received) == list(range(1, total + 1))

    try:
        async_to_sync(scenario)()
    finally:
        web.stop()
