"""Watching a production rollout live in Chromium: approvals, the rolling update, a cut socket."""

import pytest
from playwright.sync_api import expect

from releases.models import Deployment
from tests.browser.conftest import DOCS, SCREENSHOTS, in_thread
from tests.factories import make_deployment, make_release

pytestmark = pytest.mark.browser
WAIT = 30_000

# Functions, not bare expressions: the page's CSP forbids eval, which Playwright needs for those.
SEQS = "() => Array.from(document.querySelectorAll('#timeline li')).map(li => Number(li.dataset.seq))"


def pending_prod_deployment(cast):
    old = make_release(cast.service, version="1.0.0", image="registry.example/storefront:1.0.0")
    new = make_release(cast.service, version="1.1.0", image="registry.example/storefront:1.1.0")
    make_deployment(old, cast.prod, state="succeeded", requested_by=cast.dave)
    deployment = make_deployment(new, cast.prod, previous_release=old, requested_by=cast.dave)
    deployment.log("requested", "dave requested Storefront 1.1.0 in Prod.", actor=cast.dave)
    return deployment


def approve(page, comment):
    page.fill("#decision-form textarea[name=comment]", comment)
    page.click("#decision-form button[value=approve]")
    expect(page.locator(".messages")).to_contain_text("Your decision is recorded.")


REPEATS = """() => Array.from(document.querySelectorAll('#timeline li.repeat')).map(li => ({
  same: li.querySelector('.msg').textContent === li.previousElementSibling.querySelector('.msg').textContent,
  detail: !!li.querySelector('.detail'),
  shown: li.querySelector('.msg').offsetParent !== null,
}))"""


def wait_state(page, state):
    page.wait_for_function(f"() => document.getElementById('deployment').dataset.state === '{state}'", timeout=WAIT)


def test_it_shows_a_prod_rollout_live_without_reloads_gaps_or_duplicates(portal, login):
    deployment = in_thread(pending_prod_deployment, portal.cast)
    url = f"{portal.url}/deployments/{deployment.pk}/"
    viewer = login("erin")
    viewer.goto(url)
    viewer.evaluate("() => { window.loadedOnce = true; }")  # gone if the page ever reloads
    expect(viewer.locator("#live-indicator")).to_have_text("● live")

    bob = login("bob")
    bob.goto(url)
    approve(bob, "Checked the dashboards.")
    viewer.wait_for_function(f"() => ({SEQS})().length >= 2", timeout=WAIT)
    expect(viewer.locator("#timeline li.kind-approval")).to_contain_text("bob approved (1 of 2)")

    carol = login("carol")
    carol.goto(url)
    approve(carol, "Go.")
    wait_state(viewer, "rolling_out")
    expect(viewer.locator("#state-badge")).to_have_text("Rolling out")
    # What ran before the change gives way to the rollout's own picture.
    expect(viewer.locator("#runs-now")).to_have_count(0, timeout=WAIT)
    if SCREENSHOTS:
        viewer.wait_for_function(
            "() => { const bar = document.querySelector('[data-bar=updated]'); return bar && bar.value >= 2; }",
            timeout=WAIT,
        )
        viewer.screenshot(path=str(DOCS / "deployment-live.png"), full_page=True)

    # Cut the viewer's socket mid-rollout and write while it is away; it must catch up.
    viewer.evaluate("() => window.pampamLive.drop()")
    for n in range(3):
        in_thread(
            lambda n=n: Deployment.objects.get(pk=deployment.pk).log("note", f"written while the viewer is away {n}")
        )

    for page in (viewer, bob, carol):
        wait_state(page, "succeeded")
        expect(page.locator("#state-badge")).to_have_text("Succeeded")
    expect(viewer.locator("[data-count=updated]")).to_have_text("4/4")
    expect(viewer.locator("[data-count=ready]")).to_have_text("4/4")
    expect(viewer.locator("[data-count=available]")).to_have_text("4 available · needs 3 of 4")
    assert viewer.evaluate("() => document.querySelector('[data-bar=available]').value") == 4
    assert viewer.evaluate("() => window.loadedOnce") is True
    expect(viewer.locator("#downtime [data-downtime]")).to_have_text(
        "no downtime: never below 3 of 4 available (minimum 3)"
    )
    # The final picture is complete whichever watch stream spoke last: the rollout only counts
    # as done once the pods agree, so all four new pods are listed, ready, and no old one.
    new_pods = viewer.locator("#pods tbody tr:not(.pod-terminating)", has_text="storefront:1.1.0")
    expect(new_pods).to_have_count(4)
    expect(viewer.locator("#pods tbody tr.pod-ready", has_text="storefront:1.1.0")).to_have_count(4)
    expect(viewer.locator("#pods tbody tr:not(.pod-terminating)", has_text="storefront:1.0.0")).to_have_count(0)
    # What the page offers changed with the state, without a reload: no cancel, and a rollback
    # (disabled with its reason for erin, who does not deploy to prod).
    expect(viewer.locator("#cancel-form")).to_have_count(0)
    expect(viewer.locator("#actions button", has_text="Roll back to 1.0.0")).to_be_disabled()
    expect(viewer.locator("#actions .reasons")).to_contain_text("You are not a deployer for Prod.")

    deployment.refresh_from_db()
    everything = list(range(1, deployment.last_seq + 1))
    assert list(deployment.events.order_by("seq").values_list("seq", flat=True)) == everything
    for page in (viewer, bob, carol):
        page.wait_for_function(f"() => ({SEQS})().length >= {deployment.last_seq}", timeout=WAIT)
        assert page.evaluate(SEQS) == everything
    assert deployment.state == "succeeded"
    assert deployment.downtime["dropped"] is False
    # A status repeated by a later progress event is drawn quietly: what changed, not the status again.
    repeats = viewer.evaluate(REPEATS)
    assert all(r["same"] for r in repeats), repeats
    assert all(not r["shown"] for r in repeats if r["detail"]), repeats


def test_it_updates_the_dashboard_live_including_drift(portal, login):
    from plumbing.integrations import kube as kube_api

    deployment = in_thread(pending_prod_deployment, portal.cast)
    dashboard = login("erin")
    expect(dashboard.locator("#live-indicator")).to_have_text("● live")
    cell = dashboard.locator('td[data-service="storefront"][data-environment="prod"]')
    expect(cell.locator("[data-role=state]")).to_contain_text("Pending approval")

    from releases import flows

    in_thread(flows.decide, portal.cast.bob, deployment, "approve")
    in_thread(flows.decide, portal.cast.carol, deployment, "approve")
    expect(cell.locator("[data-role=state] .badge")).to_have_text("Rolling out", timeout=WAIT)
    expect(cell.locator("[data-role=state] .badge")).to_have_text("Succeeded", timeout=WAIT)
    expect(cell.locator("[data-role=version]")).to_have_text("1.1.0")
    expect(cell.locator("[data-role=drift]")).to_be_hidden()

    # Someone runs `kubectl set image` behind the portal's back.
    in_thread(
        kube_api.set_image,
        portal.cast.cluster,
        "prod",
        "storefront",
        "storefront",
        "registry.example/storefront:hotfix",
        change_cause="kubectl set image",
        deployment_id=0,
    )
    expect(cell.locator("[data-role=drift]")).to_be_visible(timeout=WAIT)
    expect(cell.locator("[data-role=image]")).to_have_text("registry.example/storefront:hotfix")
