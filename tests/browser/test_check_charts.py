"""The deployment page charts each Prometheus check over the rollout, with its threshold line,
and shows what the probe saw, in a real Chromium under the page's Content-Security-Policy."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from releases import states
from releases.models import Check, CheckSample
from tests.browser.conftest import in_thread
from tests.factories import make_deployment, make_release

pytestmark = pytest.mark.browser


def a_failed_check(cast):
    """A rollout whose 5xx ratio climbed past its threshold during the bake."""
    check = Check.objects.create(service=cast.service, name="5xx ratio", query="x", threshold=0.05)
    started = timezone.now() - timedelta(seconds=40)
    deployment = make_deployment(
        make_release(cast.service, version="2.0.0-errors"),
        cast.dev,
        state=states.FAILED,
        reason="Check “5xx ratio” failed: x = 0.31, which is not below 0.05.",
        started_at=started,
        finished_at=started + timedelta(seconds=30),
        bake_started_at=started + timedelta(seconds=8),
        bake_seconds=60,
        probe={"url": "http://svc/healthz", "requests": 90, "failed": 28, "latencies_ms": [8.0] * 80 + [41.0] * 10},
    )
    for second in range(2, 30, 2):
        value = 0.0 if second < 12 else 0.31 * (second - 10) / 20
        CheckSample.objects.create(
            deployment=deployment,
            check_rule=check,
            name=check.name,
            at=started + timedelta(seconds=second),
            value=value,
            threshold=0.05,
            outcome=CheckSample.PASS if value < 0.05 else CheckSample.FAIL,
        )
    return deployment.pk


def test_it_charts_a_check_against_its_threshold_under_the_csp(portal, login):
    pk = in_thread(a_failed_check, portal.cast)
    page = login("alice")
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(f"{portal.url}/deployments/{pk}/")

    chart = page.locator('#checks figure[data-check="5xx ratio"]')
    expect(chart).to_be_visible()
    expect(chart.locator("figcaption")).to_contain_text("must stay below 0.05")
    expect(chart.locator("svg line.threshold")).to_have_count(1)
    expect(chart.locator("svg polyline.values")).to_have_count(1)
    expect(chart.locator("svg circle.mark-fail")).not_to_have_count(0)
    box = chart.locator("svg").bounding_box()
    assert box["width"] > 200
    assert box["height"] > 50
    expect(page.locator("#probe-evidence")).to_have_text("probe: 90 requests, 28 failed, p99 41 ms")
    assert violations == []
