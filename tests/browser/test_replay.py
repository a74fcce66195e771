"""Replaying a finished rollout: the bars, pods and timeline move as they did and end where they ended."""

import re

import pytest
from playwright.sync_api import expect

from releases import flows, states
from releases.models import Deployment
from tests.browser.conftest import DOCS, SCREENSHOTS, in_thread, wait_for
from tests.factories import make_release, succeed_in

pytestmark = pytest.mark.browser
WAIT = 60_000

# What a person sees of the rollout: counts, bar values, pods, availability, the banner, the timeline.
PICTURE = """() => ({
  counts: Array.from(document.querySelectorAll('#bars [data-count]')).map(e => e.textContent),
  bars: Array.from(document.querySelectorAll('#bars progress')).map(e => [e.max, e.value]),
  summary: document.getElementById('pod-summary').textContent,
  pods: Array.from(document.querySelectorAll('#pods tbody tr')).map(tr => tr.className + ' ' + tr.innerText),
  downtime: document.getElementById('downtime').innerText,
  banner: document.getElementById('state-badge').textContent,
  seqs: Array.from(document.querySelectorAll('#timeline li')).map(li => Number(li.dataset.seq)),
})"""


def finished_rollout(cast):
    old = make_release(cast.service, version="1.0.0", image="registry.example/storefront:1.0.0")
    succeed_in(old, cast.prod)
    new = make_release(cast.service, version="1.1.0", image="registry.example/storefront:1.1.0")
    succeed_in(new, cast.staging)
    deployment = flows.request_deployment(cast.dave, new, cast.prod)
    flows.decide(cast.bob, deployment, "approve")
    flows.decide(cast.carol, deployment, "approve")
    return deployment


def test_it_replays_a_finished_rollout_to_the_same_final_picture(portal, login):
    deployment = in_thread(finished_rollout, portal.cast)
    wait_for(lambda: Deployment.objects.get(pk=deployment.pk).state == states.SUCCEEDED)
    page = login("erin")
    page.goto(f"{portal.url}/deployments/{deployment.pk}/")
    expect(page.locator("#state-badge")).to_have_text("Succeeded")
    final = page.evaluate(PICTURE)
    assert final["counts"][2] == "4 available · needs 3 of 4"
    assert len([p for p in final["pods"] if "storefront:1.1.0" in p]) == 4

    if SCREENSHOTS:  # docs/replay.png: paused mid-rollout at 1×
        page.select_option("#replay-speed", "1")
        page.click("#replay-play")
        page.wait_for_function(
            "() => { const r = document.querySelector('[data-bar=ready]'); return r && r.value >= 1 && r.value < 4; }",
            timeout=WAIT,
        )
        page.click("#replay-play")
        page.locator("#rollout").screenshot(path=str(DOCS / "replay.png"))
    page.select_option("#replay-speed", "16")
    page.click("#replay-play")
    page.wait_for_function("() => ['playing', 'done'].includes(document.getElementById('deployment').dataset.replay)")
    page.wait_for_function("() => document.querySelectorAll('#timeline li').length > 0", timeout=WAIT)
    low = page.locator("#replay-low")
    expect(low).to_be_visible()
    expect(low).to_have_attribute("title", re.compile(r"^Lowest availability: 3 of 4 \(minimum 3\) at \d+:\d\d$"))
    page.wait_for_function("() => document.getElementById('deployment').dataset.replay === 'done'", timeout=WAIT)
    assert page.evaluate(PICTURE) == final

    # The scrubber goes back to any moment, the lowest included.
    low.click()
    expect(page.locator("[data-count=available]")).to_contain_text("3 available")
    # At the start nothing had changed in the cluster, and the live "took …" clock stays out of it.
    page.locator("#replay-scrubber").fill("0")
    expect(page.locator("#progress-message")).to_have_text(
        "Nothing changed in the cluster yet: the rollout starts once the deployment is approved."
    )
    expect(page.locator("#elapsed")).to_have_text("", timeout=WAIT)
    page.click("#replay-exit")
    assert page.evaluate(PICTURE) == final
    expect(page.locator("#elapsed")).to_contain_text("took", timeout=WAIT)
