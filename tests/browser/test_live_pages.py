"""Pages that stay true without a reload: the approvals badge, the inbox, and what you may do."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from releases import flows, states
from releases.models import Deployment
from tests.browser.conftest import in_thread
from tests.factories import make_deployment, make_release, succeed_in

pytestmark = pytest.mark.browser
WAIT = 30_000


def request_prod(cast, who="dave"):
    release = make_release(cast.service, version="1.1.0", image="registry.example/storefront:1.1.0")
    succeed_in(release, cast.staging)
    return flows.request_deployment(getattr(cast, who), release, cast.prod)


def test_it_counts_and_lists_what_waits_for_me_as_it_happens(portal, login):
    carol = login("carol")
    expect(carol.locator("#waiting-line")).to_have_text("Nothing waits for your approval.")
    expect(carol.locator("#nav-waiting")).to_be_hidden()
    inbox = login("carol")
    inbox.goto(portal.url + "/approvals/")
    expect(inbox.locator("#waiting-list")).to_contain_text("Nothing waits for your approval.")

    deployment = in_thread(request_prod, portal.cast)
    expect(carol.locator("#nav-waiting")).to_have_text("1", timeout=WAIT)
    expect(carol.locator("#waiting-line")).to_have_text("1 waiting for your approval", timeout=WAIT)
    expect(inbox.locator(f'#waiting-list tr[data-deployment="{deployment.pk}"]')).to_be_visible(timeout=WAIT)
    expect(inbox.locator("#nav-waiting")).to_have_text("1")

    in_thread(flows.cancel, portal.cast.dave, deployment, "wrong build")
    expect(carol.locator("#nav-waiting")).to_be_hidden(timeout=WAIT)
    expect(carol.locator("#waiting-line")).to_have_text("Nothing waits for your approval.", timeout=WAIT)
    expect(inbox.locator("#waiting-list")).to_contain_text("Nothing waits for your approval.", timeout=WAIT)


def test_it_never_counts_my_own_request_as_waiting_for_me(portal, login):
    dave = login("dave")  # a release manager who is also an approver
    carol = login("carol")
    deployment = in_thread(request_prod, portal.cast)
    expect(carol.locator("#nav-waiting")).to_have_text("1", timeout=WAIT)
    expect(dave.locator("#nav-waiting")).to_be_hidden()
    expect(dave.locator("#waiting-line")).to_have_text("Nothing waits for your approval.")
    dave.goto(portal.url + "/approvals/")
    expect(dave.locator("#waiting-list")).not_to_contain_text(f"#{deployment.pk}")
    dave.goto(f"{portal.url}/deployments/{deployment.pk}/")
    expect(dave.locator("#decision-form button[value=approve]")).to_be_disabled()
    expect(dave.locator("#decision-form .reasons")).to_contain_text(
        "You requested this deployment; Prod needs someone else to approve it."
    )


def test_it_offers_the_rollback_once_a_rollout_succeeds_without_a_reload(portal, login):
    old = in_thread(
        lambda: make_release(portal.cast.service, version="1.0.0", image="registry.example/storefront:1.0.0")
    )
    in_thread(make_deployment, old, portal.cast.prod, state=states.SUCCEEDED, finished_at=timezone.now())
    deployment = in_thread(request_prod, portal.cast)
    dave = login("dave")
    dave.goto(f"{portal.url}/deployments/{deployment.pk}/")
    dave.evaluate("() => { window.loadedOnce = true; }")
    expect(dave.locator("#actions")).not_to_contain_text("Roll back")
    in_thread(flows.decide, portal.cast.bob, deployment, "approve")
    in_thread(flows.decide, portal.cast.carol, deployment, "approve")
    expect(dave.locator("#state-badge")).to_have_text("Succeeded", timeout=WAIT)
    link = dave.locator("#actions a", has_text="Roll back to 1.0.0…")
    expect(link).to_be_visible(timeout=WAIT)
    expect(dave.locator("#approvals-panel")).to_contain_text("2 of 2")
    assert dave.evaluate("() => window.loadedOnce") is True
    link.click()
    expect(dave.locator("h1")).to_have_text("Roll back Storefront in Prod?")


def test_it_shows_a_report_that_lands_after_the_last_event_without_a_reload(portal, login):
    release = in_thread(lambda: make_release(portal.cast.service, version="1.0.0"))
    done = in_thread(make_deployment, release, portal.cast.dev, state=states.SUCCEEDED, finished_at=timezone.now())
    alice = login("alice")
    alice.goto(f"{portal.url}/deployments/{done.pk}/")
    expect(alice.locator("#reports")).to_contain_text("Nothing reported to GitHub, Grafana or Slack yet.")
    expect(alice.locator(".live-indicator")).to_have_attribute("data-live", "up", timeout=WAIT)
    # What the Grafana job records once it closed its annotation (Deployment.update_report is how
    # every reporting job writes its result).
    in_thread(Deployment.update_report, done.pk, "grafana", lambda r: {**r, "state": "closed", "annotation_id": 41})
    expect(alice.locator("#reports .report-grafana")).to_contain_text("annotated", timeout=WAIT)
    expect(alice.locator("#reports")).to_contain_text("#41")


def test_it_drops_what_i_decided_from_my_inbox_and_recounts_the_others(portal, login):
    deployment = in_thread(request_prod, portal.cast)
    carol = login("carol")
    carol.goto(portal.url + "/approvals/")
    bob = login("bob")
    bob.goto(portal.url + "/approvals/")
    row = f'#waiting-list tr[data-deployment="{deployment.pk}"]'
    expect(bob.locator(row)).to_contain_text("0 of 2")
    expect(carol.locator("#nav-waiting")).to_have_text("1")

    in_thread(flows.decide, portal.cast.carol, deployment, "approve")  # from another tab, or Slack
    expect(carol.locator(row)).to_have_count(0, timeout=WAIT)
    expect(carol.locator("#nav-waiting")).to_be_hidden(timeout=WAIT)
    expect(bob.locator(row)).to_contain_text("1 of 2", timeout=WAIT)
    expect(bob.locator("#nav-waiting")).to_have_text("1")


def test_it_moves_the_service_page_with_a_deployment_and_offers_what_follows(portal, login):
    old = in_thread(
        lambda: make_release(portal.cast.service, version="1.0.0", image="registry.example/storefront:1.0.0")
    )
    in_thread(make_deployment, old, portal.cast.prod, state=states.SUCCEEDED, finished_at=timezone.now())
    dave = login("dave")
    dave.goto(portal.url + "/services/storefront/")
    dave.evaluate("() => { window.loadedOnce = true; }")
    prod = dave.locator('#service-cells td[data-environment="prod"]')
    expect(prod).to_contain_text("Succeeded")

    deployment = in_thread(request_prod, portal.cast)
    expect(prod).to_contain_text("Pending approval", timeout=WAIT)
    in_thread(flows.decide, portal.cast.bob, deployment, "approve")
    in_thread(flows.decide, portal.cast.carol, deployment, "approve")
    expect(prod).to_contain_text("1.1.0", timeout=WAIT)
    expect(prod).to_contain_text("Succeeded", timeout=WAIT)
    expect(prod.locator("a, button", has_text="Roll back to 1.0.0")).to_be_enabled(timeout=WAIT)
    assert dave.evaluate("() => window.loadedOnce") is True
