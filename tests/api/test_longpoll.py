"""Waiting for an outcome: GET /api/v1/deployments/<id>/?wait=N&after_seq=S answers as soon as
the deployment has an event after S (or is final), else after N seconds; it listens on the
deployment's Channels group (Redis), and polls the database with backoff when that fails.

Requests go through portal.asgi.application (where the waiting happens, around Django), as
uvicorn sends them. Transactional: events must commit to be broadcast, and are written from
another thread.
"""

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import pytest
from channels.layers import channel_layers
from channels.testing import HttpCommunicator
from django.db import connections

from portal.asgi import application
from releases import flows
from releases.models import Deployment
from tests.factories import pending_in_staging
from tests.support.api import token_for


@pytest.fixture(autouse=True)
def _own_channel_layer():
    """Each test drives the application on an event loop of its own (asyncio.run): give it a
    channel layer of its own too, and drop it after, so no other loop ever shares it."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


class AsgiClient:
    """GETs through the ASGI application with a bearer token (None: no credentials)."""

    def __init__(self, token):
        self.token = token

    def get(self, path):
        headers = [(b"host", b"testserver")]
        if self.token:
            headers.append((b"authorization", f"Bearer {self.token}".encode()))

        async def call():
            communicator = HttpCommunicator(application, "GET", path, headers=headers)
            answer = await communicator.get_response(timeout=90)
            await communicator.wait(timeout=10)
            return answer

        answer = asyncio.run(call())
        found = dict(answer["headers"])
        return SimpleNamespace(
            status_code=answer["status"],
            json=lambda: json.loads(answer["body"]),
            headers={k.decode().lower(): v.decode() for k, v in found.items()},
        )


def api_as(user, *scopes):
    return AsgiClient(token_for(user, *scopes))


def later(seconds, func, *args):
    """Run func(*args) in a thread after `seconds`, with its own database connection."""

    def run():
        time.sleep(seconds)
        try:
            func(*args)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def note(pk, text="written while a client waits"):
    Deployment.objects.get(pk=pk).log("note", text)


def timed_get(client, url):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


def test_it_answers_at_once_when_there_are_events_after_after_seq(cast_tx):
    deployment = pending_in_staging(cast_tx)
    response, took = timed_get(
        api_as(cast_tx.erin, "read"), f"/api/v1/deployments/{deployment.pk}/?after_seq=0&wait=30"
    )
    assert response.status_code == 200
    assert [e["seq"] for e in response.json()["timeline"]] == [1]
    assert took < 30


def test_it_answers_as_soon_as_a_new_event_arrives(cast_tx):
    deployment = pending_in_staging(cast_tx)
    writer = later(0.5, note, deployment.pk)
    response, took = timed_get(
        api_as(cast_tx.erin, "read"), f"/api/v1/deployments/{deployment.pk}/?after_seq=1&wait=30"
    )
    writer.join()
    assert response.status_code == 200
    assert [(e["seq"], e["message"]) for e in response.json()["timeline"]] == [(2, "written while a client waits")]
    assert took < 30  # it did not sit out the whole wait


def test_it_waits_for_the_next_event_without_after_seq(cast_tx):
    deployment = pending_in_staging(cast_tx)
    writer = later(0.5, flows.decide, cast_tx.bob, deployment, "approve")
    response = api_as(cast_tx.erin, "read").get(f"/api/v1/deployments/{deployment.pk}/?wait=30")
    writer.join()
    assert response.json()["last_seq"] > 1
    assert response.json()["timeline"][0]["seq"] == 1  # without after_seq the whole timeline comes back


def test_it_answers_unchanged_when_the_wait_is_over(cast_tx):
    deployment = pending_in_staging(cast_tx)
    response, took = timed_get(api_as(cast_tx.erin, "read"), f"/api/v1/deployments/{deployment.pk}/?after_seq=1&wait=1")
    assert response.status_code == 200
    assert response.json()["timeline"] == []
    assert response.json()["state"] == "pending_approval"
    assert took >= 1


def test_it_answers_at_once_for_a_final_deployment(cast_tx):
    deployment = pending_in_staging(cast_tx)
    flows.cancel(cast_tx.alice, deployment)
    deployment.refresh_from_db()
    url = f"/api/v1/deployments/{deployment.pk}/?after_seq={deployment.last_seq}&wait=30"
    response, took = timed_get(api_as(cast_tx.erin, "read"), url)
    assert response.json()["is_final"] is True
    assert took < 30


@pytest.mark.parametrize("query", ["wait=61", "wait=-1", "wait=soon", "after_seq=-3&wait=5"])
def test_it_rejects_a_bad_wait(cast_tx, query):
    deployment = pending_in_staging(cast_tx)
    response = api_as(cast_tx.erin, "read").get(f"/api/v1/deployments/{deployment.pk}/?{query}")
    assert response.status_code == 400
    assert response.json()["detail"] == "The request is not valid: see errors."


def test_it_answers_at_once_with_retry_after_when_too_many_wait(cast_tx, settings):
    settings.API_LONG_POLL_MAX_WAITERS = 0
    deployment = pending_in_staging(cast_tx)
    response, took = timed_get(
        api_as(cast_tx.erin, "read"), f"/api/v1/deployments/{deployment.pk}/?after_seq=1&wait=30"
    )
    assert response.status_code == 200
    assert response.headers["retry-after"] == "1"
    assert took < 30


def test_it_polls_the_database_when_the_channel_layer_is_down(cast_tx, settings):
    # Nothing listens on port 1: every channel-layer call fails, as with Redis down.
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    channel_layers.backends.clear()
    try:
        deployment = pending_in_staging(cast_tx)
        writer = later(0.5, note, deployment.pk)
        response, took = timed_get(
            api_as(cast_tx.erin, "read"), f"/api/v1/deployments/{deployment.pk}/?after_seq=1&wait=30"
        )
        writer.join()
    finally:
        channel_layers.backends.clear()
    assert [e["seq"] for e in response.json()["timeline"]] == [2]
    assert took < 30


def test_it_still_checks_the_token_before_waiting(cast_tx):
    deployment = pending_in_staging(cast_tx)
    response, took = timed_get(AsgiClient(None), f"/api/v1/deployments/{deployment.pk}/?after_seq=1&wait=30")
    assert response.status_code == 401
    assert took < 30


def test_it_stops_waiting_when_the_client_goes_away(cast_tx):
    deployment = pending_in_staging(cast_tx)
    token = token_for(cast_tx.erin, "read")
    path = f"/api/v1/deployments/{deployment.pk}/?after_seq=1&wait=30"
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())]

    async def call():
        communicator = HttpCommunicator(application, "GET", path, headers=headers)
        await communicator.send_input({"type": "http.request", "body": b""})
        await asyncio.sleep(0.5)
        await communicator.send_input({"type": "http.disconnect"})
        started = time.monotonic()
        await communicator.wait(timeout=20)  # raises if the application is still waiting
        return time.monotonic() - started, await communicator.receive_nothing()

    took, nothing_sent = asyncio.run(call())
    assert nothing_sent
    assert took < 20
