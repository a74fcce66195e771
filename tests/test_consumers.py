"""The websocket consumers, driven through the real ASGI application and the Redis layer.

Each test logs in with Django's test client and hands the session cookie to a
WebsocketCommunicator, so origin checking, session auth and routing are the production ones.
The tests are transactional (`cast_tx`): consumers read the database from other threads.
"""

import gc
import json
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client
from django.utils import timezone

from plumbing import live
from portal.asgi import application
from releases import consumers, flows, states
from releases.models import Build, Deployment, DeploymentEvent, Entry
from tests.factories import make_deployment, make_release

# Generous: a loaded CI machine can take seconds to deliver; a pass returns as soon as it arrives.
TIMEOUT = 30


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The cast's seven users are created per test; hashing them properly costs seconds."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_layer():
    """Groups live in Redis: start every test without channels left by earlier ones."""
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    return


def run(scenario):
    async_to_sync(scenario)()


def headers(user=None, origin=None):
    result = [(b"host", b"127.0.0.1"), (b"origin", (origin or settings.PORTAL_URL).encode())]
    if user is not None:
        client = Client()
        client.force_login(user)
        result.append((b"cookie", f"sessionid={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()))
    return result


def connector(user=None, **kwargs):
    """Log in now (synchronously) and return a function making sockets with that session."""
    prepared = headers(user, **kwargs)
    return lambda path: WebsocketCommunicator(application, path, headers=prepared)


@pytest.fixture
def erin(cast_tx):
    """Sockets opened with Erin's session."""
    return connector(cast_tx.erin)


@asynccontextmanager
async def opened(communicator):
    """The socket, accepted, for the block; disconnected after it."""
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    yield communicator
    await communicator.disconnect()


async def closed_with(communicator) -> int:
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return await close_code(communicator)


async def close_code(communicator) -> int:
    """The code of the close the server sends next (and nothing else first)."""
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close"
    return output["code"]


async def events(communicator, count) -> list[dict]:
    """The next `count` messages, whether they came one per frame or several to a frame (an
    array: the socket was behind)."""
    received = []
    while len(received) < count:
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        received.extend(frame if isinstance(frame, list) else [frame])
    assert len(received) == count, received
    return received


def make_logged(cast, count=0, **kwargs):
    deployment = make_deployment(make_release(cast.service), cast.prod, **kwargs)
    for n in range(count):
        deployment.log("note", f"note {n + 1}")
    return deployment


@sync_to_async
def log(deployment, message):
    return deployment.log("note", message).seq


def test_it_refuses_anonymous_users(cast_tx):
    deployment = make_logged(cast_tx)
    anonymous = connector()

    async def scenario():
        assert await closed_with(anonymous(f"/ws/deployments/{deployment.pk}/")) == consumers.UNAUTHENTICATED
        assert await closed_with(anonymous("/ws/activity/")) == consumers.UNAUTHENTICATED

    run(scenario)


def test_the_objects_made_at_start_are_kept_out_of_the_collectors_walks():
    # portal.asgi froze them (gc.freeze): a full collection walks what requests make, not them.
    assert gc.get_freeze_count() > 50_000


def test_it_refuses_foreign_origins(cast_tx):
    deployment = make_logged(cast_tx)
    foreign = connector(cast_tx.erin, origin="https://evil.example")

    async def scenario():
        for path in (f"/ws/deployments/{deployment.pk}/", "/ws/activity/"):
            communicator = foreign(path)
            connected, _ = await communicator.connect(timeout=TIMEOUT)
            assert not connected

    run(scenario)


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8001",  # another port of the portal's host: another site
        "https://127.0.0.1:8000",
        "http://localhost:8000",
        "http://127.0.0.1",
        "null",
    ],
)
def test_it_refuses_an_origin_that_is_not_exactly_the_portals(cast_tx, settings, origin):
    settings.PORTAL_URL = "http://127.0.0.1:8000"
    deployment = make_logged(cast_tx)
    foreign = connector(cast_tx.erin, origin=origin)

    async def scenario():
        for path in (f"/ws/deployments/{deployment.pk}/", "/ws/activity/"):
            connected, _ = await foreign(path).connect(timeout=TIMEOUT)
            assert not connected, origin

    run(scenario)


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8000", "https://portal.example.com", "https://a.corp.example"])
def test_it_accepts_the_portal_and_csrf_trusted_origins(cast_tx, settings, origin):
    settings.PORTAL_URL = "http://127.0.0.1:8000"
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.com:443", "https://*.corp.example"]
    deployment = make_logged(cast_tx)
    connect = connector(cast_tx.erin, origin=origin)

    async def scenario():
        async with opened(connect(f"/ws/deployments/{deployment.pk}/")) as communicator:
            assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "ready"

    run(scenario)


def logged_in_session(user):
    client = Client()
    client.force_login(user)
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def socket_with(session_key):
    return WebsocketCommunicator(
        application,
        "/ws/activity/",
        headers=[
            (b"host", b"127.0.0.1"),
            (b"origin", settings.PORTAL_URL.encode()),
            (b"cookie", f"sessionid={session_key}".encode()),
        ],
    )


def close_code_after(session_key, change) -> int:
    """The code the socket of a session closes with once `change` has run."""

    async def scenario():
        socket = socket_with(session_key)
        assert (await socket.connect(timeout=TIMEOUT))[0]
        await sync_to_async(change)()
        return await close_code(socket)

    return async_to_sync(scenario)()


def test_it_closes_a_socket_when_its_session_logs_out(cast_tx):
    client, key = logged_in_session(cast_tx.erin)
    other_client, other_key = logged_in_session(cast_tx.erin)

    async def scenario():
        mine, other = socket_with(key), socket_with(other_key)
        assert (await mine.connect(timeout=TIMEOUT))[0]
        assert (await other.connect(timeout=TIMEOUT))[0]
        await sync_to_async(client.post)("/accounts/logout/")
        assert await close_code(mine) == consumers.UNAUTHENTICATED
        assert await other.receive_nothing(timeout=0.5)  # the same person's other session stays
        await other.disconnect()

    run(scenario)


def test_it_closes_every_socket_of_a_deactivated_account(cast_tx):
    _, key = logged_in_session(cast_tx.erin)

    def deactivate():
        cast_tx.erin.is_active = False
        cast_tx.erin.save()

    assert close_code_after(key, deactivate) == consumers.UNAUTHENTICATED


def test_it_closes_a_socket_when_its_session_expires(cast_tx, settings):
    settings.WEBSOCKET_SESSION_CHECK_SECONDS = 1
    client, key = logged_in_session(cast_tx.erin)

    def expire():
        Session.objects.filter(session_key=key).update(expire_date=timezone.now())

    assert close_code_after(key, expire) == consumers.UNAUTHENTICATED


def test_it_refuses_users_the_rules_do_not_let_view(cast_tx):
    """An account deactivated while its socket's scope still holds it: rules.can_view says no."""
    deployment = make_logged(cast_tx)
    cast_tx.erin.is_active = False

    async def scenario():
        for path, consumer, kwargs in (
            (f"/ws/deployments/{deployment.pk}/", consumers.DeploymentConsumer, {"pk": deployment.pk}),
            ("/ws/activity/", consumers.ActivityConsumer, {}),
        ):
            communicator = WebsocketCommunicator(consumer.as_asgi(), path)
            communicator.scope.update(user=cast_tx.erin, url_route={"args": (), "kwargs": kwargs})
            assert await closed_with(communicator) == consumers.FORBIDDEN

    run(scenario)


def test_it_treats_a_deactivated_account_as_logged_out(cast_tx):
    deployment = make_logged(cast_tx)
    communicator = connector(cast_tx.erin)(f"/ws/deployments/{deployment.pk}/")
    cast_tx.erin.is_active = False
    cast_tx.erin.save()

    async def scenario():
        assert await closed_with(communicator) == consumers.UNAUTHENTICATED

    run(scenario)


@pytest.mark.parametrize("query", ["after=-1", "after=abc", "after=1.5", "after=", "after=%FF", "after=1234567890123"])
def test_it_closes_on_a_malformed_after_parameter(cast_tx, erin, query):
    deployment = make_logged(cast_tx)

    async def scenario():
        communicator = erin(f"/ws/deployments/{deployment.pk}/?{query}")
        assert await closed_with(communicator) == consumers.BAD_REQUEST

    run(scenario)


@pytest.mark.parametrize("path", ["/ws/deployments/999999/", "/ws/deployments/99999999999999999999999/", "/ws/nope/"])
def test_it_closes_with_not_found_for_unknown_deployments_and_paths(erin, path):
    async def scenario():
        assert await closed_with(erin(path)) == consumers.NOT_FOUND

    run(scenario)


@pytest.mark.parametrize("frame", [{"text_data": "not json"}, {"text_data": "[1, 2]"}, {"bytes_data": b"\x00"}])
def test_it_closes_on_a_malformed_message(cast_tx, erin, frame):
    deployment = make_logged(cast_tx)

    async def scenario():
        for path in (f"/ws/deployments/{deployment.pk}/", "/ws/activity/"):
            communicator = erin(path)
            assert (await communicator.connect(timeout=TIMEOUT))[0]
            if "deployments" in path:
                assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "ready"
            await communicator.send_to(**frame)
            assert await close_code(communicator) == consumers.BAD_REQUEST

    run(scenario)


def test_it_answers_a_ping_with_the_last_seq_sent(cast_tx, erin):
    deployment = make_logged(cast_tx, count=2)

    async def scenario():
        async with opened(erin(f"/ws/deployments/{deployment.pk}/")) as communicator:
            await events(communicator, 3)
            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from(timeout=TIMEOUT) == {"type": "pong", "seq": 2}

    run(scenario)


def test_it_sends_the_backlog_then_live_events_each_once(cast_tx, erin, monkeypatch):
    """Events made before connect, while the consumer joins (between joining the group and
    reading the backlog, so the event is both a row and a live message) and after it."""
    deployment = make_logged(cast_tx, count=3)
    read_backlog = consumers.DeploymentConsumer.rows

    def events_with_one_racing_in(self, after, before):
        if not getattr(self, "raced", False):
            self.raced = True
            deployment.log("note", "made while connecting")
        return read_backlog(self, after, before)

    monkeypatch.setattr(consumers.DeploymentConsumer, "rows", events_with_one_racing_in)

    async def scenario():
        async with opened(erin(f"/ws/deployments/{deployment.pk}/")) as communicator:
            first = await events(communicator, 5)
            assert [m.get("seq") for m in first] == [1, 2, 3, 4, 4]
            assert [m["type"] for m in first] == ["event"] * 4 + ["ready"]
            await log(deployment, "after connect")
            await log(deployment, "after connect, again")
            later = await events(communicator, 2)
            assert [m["seq"] for m in later] == [5, 6]
            assert later[0]["message"] == "after connect"
            assert await communicator.receive_nothing(timeout=0.3)

    run(scenario)


def test_it_resumes_after_the_last_seq_seen_with_exactly_the_missing_events(cast_tx, erin):
    deployment = make_logged(cast_tx, count=2)

    async def scenario():
        async with opened(erin(f"/ws/deployments/{deployment.pk}/?after=0")) as first:
            seen = [m["seq"] for m in await events(first, 3) if m["type"] == "event"]
        for n in range(3):
            await log(deployment, f"while away {n}")
        async with opened(erin(f"/ws/deployments/{deployment.pk}/?after={seen[-1]}")) as again:
            replay = await events(again, 4)
            assert [m["seq"] for m in replay] == [3, 4, 5, 5]
            assert replay[-1] == {"type": "ready", "seq": 5}
            await log(deployment, "live again")
            assert (await again.receive_json_from(timeout=TIMEOUT))["seq"] == 6
            assert await again.receive_nothing(timeout=0.3)

    run(scenario)


def _silent_events(deployment, count) -> list[dict]:
    """Rows written without a broadcast, as if their messages were lost."""
    messages = []
    for _ in range(count):
        deployment.last_seq += 1
        messages.append(
            DeploymentEvent.objects.create(
                deployment=deployment, seq=deployment.last_seq, kind="note", message="quiet"
            ).as_message()
        )
    Deployment.objects.filter(pk=deployment.pk).update(last_seq=deployment.last_seq)
    return messages


def test_it_fills_a_gap_when_a_live_event_overtakes_an_earlier_one(cast_tx, erin):
    """Seq 4 is a row whose broadcast was lost (or is late); seq 5 arrives live first."""
    deployment = make_logged(cast_tx, count=3)

    async def scenario():
        async with opened(erin(f"/ws/deployments/{deployment.pk}/?after=3")) as communicator:
            assert await communicator.receive_json_from(timeout=TIMEOUT) == {"type": "ready", "seq": 3}
            fourth, fifth = await sync_to_async(_silent_events)(deployment, 2)
            for late in (fifth, fourth):
                message = {"type": "timeline.events", "events": [late], "texts": [json.dumps(late)]}
                await get_channel_layer().group_send(deployment.group, message)
            assert [m["seq"] for m in await events(communicator, 2)] == [4, 5]
            assert await communicator.receive_nothing(timeout=0.3)

    run(scenario)


def test_it_replays_a_backlog_longer_than_one_page(cast_tx, erin):
    deployment = make_logged(cast_tx)
    total = consumers.BACKLOG_PAGE * 2 + 7
    DeploymentEvent.objects.bulk_create(
        DeploymentEvent(deployment=deployment, seq=n, kind="log", message=f"line {n}") for n in range(1, total + 1)
    )

    async def scenario():
        async with opened(erin(f"/ws/deployments/{deployment.pk}/?after=5")) as communicator:
            received = await events(communicator, total - 5 + 1)
        assert [m["seq"] for m in received[:-1]] == list(range(6, total + 1))
        assert received[-1] == {"type": "ready", "seq": total}

    run(scenario)


def test_it_streams_state_changes_with_their_transition(cast_tx, erin):
    deployment = make_logged(cast_tx)

    async def scenario():
        async with opened(erin(f"/ws/deployments/{deployment.pk}/")) as communicator:
            assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "ready"
            await sync_to_async(flows.decide)(cast_tx.bob, deployment, "approve", "looks good")
            approval = await communicator.receive_json_from(timeout=TIMEOUT)
            assert (approval["kind"], approval["actor"]) == ("approval", "bob")
            await sync_to_async(flows.decide)(cast_tx.carol, deployment, "approve")
            approval, state = await events(communicator, 2)
        assert approval["kind"] == "approval"
        assert state["kind"] == "state"
        assert {k: state["data"][k] for k in ("from", "to")} == {"from": "pending_approval", "to": "approved"}

    run(scenario)


def test_it_sends_deployment_and_workload_summaries_to_the_dashboard(cast_tx, erin):
    deployment = make_logged(cast_tx)
    workload = {"type": "activity.update", "update": {"kind": "workload", "environment": "prod", "workload": "x"}}

    async def scenario():
        async with opened(erin("/ws/activity/")) as communicator:
            await sync_to_async(deployment.transition)(
                states.CANCELLED, kind="state", message="stop", actor=cast_tx.dave
            )
            update = await communicator.receive_json_from(timeout=TIMEOUT)
            assert update["type"] == "update"
            assert update["kind"] == "deployment"
            assert (update["service"], update["environment"], update["state"]) == ("storefront", "prod", "cancelled")
            assert set(update["progress"]) == set(live.SUMMARY_COUNTS)
            await sync_to_async(live._send_now)(live.ACTIVITY_GROUP, workload)
            assert (await communicator.receive_json_from(timeout=TIMEOUT))["workload"] == "x"

    run(scenario)


def test_it_sends_nothing_from_a_rolled_back_transaction(cast_tx, erin):
    deployment = make_logged(cast_tx, count=1)

    def log_then_roll_back():
        def log_and_fail():
            with transaction.atomic():
                deployment.log("note", "never happened")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            log_and_fail()

    async def scenario():
        async with opened(erin(f"/ws/deployments/{deployment.pk}/?after=1")) as communicator:
            assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "ready"
            await sync_to_async(log_then_roll_back)()
            assert await communicator.receive_nothing(timeout=0.3)

    run(scenario)


def test_it_lets_active_users_view_and_nobody_anonymous(cast_tx):
    assert consumers.rules.can_view(AnonymousUser()) is False
    assert consumers.rules.can_view(cast_tx.erin) is True


def test_it_streams_a_builds_events_after_its_backlog(cast_tx, erin):
    build = Build.objects.create(service=cast_tx.service, job_name="storefront-build")
    build.append([Entry("log", "line 1"), Entry("log", "line 2")])

    async def scenario():
        async with opened(erin(f"/ws/builds/{build.pk}/?after=1")) as communicator:
            first = await events(communicator, 2)
            assert [(m["type"], m.get("seq")) for m in first] == [("event", 2), ("ready", 2)]
            await sync_to_async(build.append)([Entry("log", "line 3"), Entry("state", "done", {"state": "succeeded"})])
            assert [m["seq"] for m in await events(communicator, 2)] == [3, 4]

    run(scenario)
