"""A deployment page under bursts: several events in one frame, and a resync when its buffer on
the server overflows (plumbing.fanout). Either way the timeline shows every event once, in order."""

import pytest
from playwright.sync_api import expect

from plumbing import fanout
from releases.models import Entry
from tests.browser.conftest import in_thread
from tests.factories import make_deployment, make_release

pytestmark = pytest.mark.browser
WAIT = 60_000
SEQS = "() => Array.from(document.querySelectorAll('#timeline li')).map(li => Number(li.dataset.seq))"


def open_deployment(portal, login, sockets):
    deployment = in_thread(lambda: make_deployment(make_release(portal.cast.service), portal.cast.prod))
    in_thread(deployment.log, "note", "before the page")
    page = login("erin")
    page.on("websocket", lambda ws: sockets.append(ws.url) if "/ws/deployments/" in ws.url else None)
    page.goto(f"{portal.url}/deployments/{deployment.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-live", "up", timeout=WAIT)
    page.wait_for_function("() => document.getElementById('deployment').dataset.synced !== undefined")
    return page, deployment


def burst(deployment, count):
    return deployment.append([Entry("note", f"burst {n}") for n in range(count)])


def test_it_shows_a_burst_sent_as_one_frame_in_order(portal, login):
    sockets = []
    page, deployment = open_deployment(portal, login, sockets)
    in_thread(burst, deployment, 8)
    page.wait_for_function(f"() => ({SEQS})().length >= 9", timeout=WAIT)
    assert page.evaluate(SEQS) == list(range(1, 10))
    assert len(sockets) == 1


def test_it_resyncs_from_its_last_seq_when_its_buffer_overflows(portal, login, monkeypatch):
    monkeypatch.setattr(fanout, "BUFFER_LIMIT", 3)
    sockets = []
    page, deployment = open_deployment(portal, login, sockets)
    in_thread(burst, deployment, 10)
    page.wait_for_function(f"() => ({SEQS})().length >= 11", timeout=WAIT)
    assert page.evaluate(SEQS) == list(range(1, 12))
    # Told to resync: one new socket, from the last seq the page had.
    assert len(sockets) == 2
    assert sockets[-1].endswith("?after=1")
    expect(page.locator("#live-indicator")).to_have_attribute("data-live", "up", timeout=WAIT)
