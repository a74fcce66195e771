"""The deployment page charts each Prometheus check over the rollout, with its threshold line,
and shows what the probe saw, in a real Chromium under the page's Content-Security-Policy."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from releases import states
from releases.models import CheckSample, Deployment
from tests.browser.conftest import in_thread
from tests.factories import make_check, make_deployment, make_failed_verification, make_release

pytestmark = pytest.mark.browser


def test_it_charts_a_check_against_its_threshold_under_the_csp(portal, login):
    pk = in_thread(make_failed_verification, portal.cast).pk
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


def a_rollout_being_verified(cast):
    check = make_check(cast.service)
    deployment = make_deployment(
        make_release(cast.service, version="2.1.0"), cast.dev, state=states.ROLLING_OUT, started_at=timezone.now()
    )
    return deployment.pk, check.pk


def bake_starts(pk, check_pk):
    """What the verify job leaves behind after a few looks, then the bake's event."""
    deployment = Deployment.objects.get(pk=pk)
    Deployment.objects.filter(pk=pk).update(
        probe={"url": "http://svc/healthz", "requests": 12, "failed": 0, "latencies_ms": [7.0] * 12}
    )
    CheckSample.objects.create(
        deployment=deployment, check_rule_id=check_pk, name="5xx ratio", value=0.0, threshold=0.05, outcome="pass"
    )
    deployment.log("verify", "Rolled out: done. Verifying for 60 s before it counts as succeeded.")


def test_it_shows_the_probe_and_the_checks_as_the_verification_goes_on(portal, login):
    pk, check_pk = in_thread(a_rollout_being_verified, portal.cast)
    page = login("alice")
    page.goto(f"{portal.url}/deployments/{pk}/")
    expect(page.locator("#no-samples")).to_be_visible()
    expect(page.locator("#probe-evidence")).to_have_count(0)

    in_thread(bake_starts, pk, check_pk)

    expect(page.locator("#probe-evidence")).to_have_text("probe: 12 requests, 0 failed, p99 7 ms")
    expect(page.locator('#checks figure[data-check="5xx ratio"]')).to_be_visible()
    expect(page.locator("#timeline")).to_contain_text("Verifying for 60 s")
