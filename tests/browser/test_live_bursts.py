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


def open_deployment(portal, login):
    """Erin's live page of a deployment with one event, and the URLs of the deployment sockets
    the page opens (the list grows as it opens more)."""
    sockets = []
    deployment = in_thread(lambda: make_deployment(make_release(portal.cast.service), portal.cast.prod))
    in_thread(deployment.log, "note", "before the page")
    page = login("erin")
    page.on("websocket", lambda ws: sockets.append(ws.url) if "/ws/deployments/" in ws.url else None)
    page.goto(f"{portal.url}/deployments/{deployment.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-live", "up", timeout=WAIT)
    page.wait_for_function("() => document.getElementById('deployment').dataset.synced !== undefined")
    return page, deployment, sockets


def seqs_after_a_burst(page, deployment, count) -> list[int]:
    """The seqs the timeline shows once it has all `count` events appended at once."""
    in_thread(deployment.append, [Entry("note", f"burst {n}") for n in range(count)])
    page.wait_for_function(f"() => ({SEQS})().length >= {count + 1}", timeout=WAIT)
    return page.evaluate(SEQS)


def test_it_shows_a_burst_sent_as_one_frame_in_order(portal, login):
    page, deployment, sockets = open_deployment(portal, login)
    assert seqs_after_a_burst(page, deployment, 8) == list(range(1, 10))
    assert len(sockets) == 1


def test_it_resyncs_from_its_last_seq_when_its_buffer_overflows(portal, login, monkeypatch):
    monkeypatch.setattr(fanout, "BUFFER_LIMIT", 3)
    page, deployment, sockets = open_deployment(portal, login)
    assert seqs_after_a_burst(page, deployment, 10) == list(range(1, 12))
    # Told to resync: one new socket, from the last seq the page had.
    assert len(sockets) == 2
    assert sockets[-1].endswith("?after=1")
    expect(page.locator("#live-indicator")).to_have_attribute("data-live", "up", timeout=WAIT)
