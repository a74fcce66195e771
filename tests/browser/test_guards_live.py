"""A release manager locks prod from the service page during an incident; everyone sees it."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clusters.models import FreezeWindow, Lock
from releases import guards
from tests.browser.conftest import DOCS, SCREENSHOTS, in_thread
from tests.factories import make_release, make_service, succeed_in

pytestmark = pytest.mark.browser
WAIT = 30_000


def history(cast):
    release = make_release(cast.service, version="1.0.0", image="registry.example/storefront:1.0.0")
    for env in (cast.dev, cast.staging, cast.prod):
        succeed_in(release, env)
    if SCREENSHOTS:  # a fuller board for docs/dashboard.png: other services, a freeze to come
        start = timezone.now() + timedelta(days=2)
        FreezeWindow.objects.create(
            environment=cast.prod, starts_at=start, ends_at=start + timedelta(hours=6), reason="Singles' day group buy"
        )
        for slug, version in (("checkout", "2.4.1"), ("search", "0.9.3")):
            other = make_release(make_service(slug=slug, name=slug.title()), version=version)
            for env in (cast.dev, cast.staging, cast.prod):
                succeed_in(other, env)


def test_it_shows_a_lock_made_on_the_service_page_on_the_dashboard(portal, login):
    in_thread(history, portal.cast)
    board = login("erin")
    board.evaluate("() => { window.loadedOnce = true; }")
    cell = board.locator('td[data-service="storefront"][data-environment="prod"]')
    expect(cell.locator("[data-role=lock]")).to_have_count(0)

    dave = login("dave")
    dave.goto(portal.url + "/services/storefront/")
    dave.click("summary:has-text('Lock Storefront')")
    dave.select_option(".lock-form select[name=environment]", "prod")
    dave.fill(".lock-form input[name=reason]", "incident 42: checkout errors")
    dave.click(".lock-form button[type=submit]")
    expect(dave.locator(".messages")).to_contain_text("Storefront in Prod is locked")
    expect(dave.locator('#service-cells td[data-environment="prod"] [data-role=lock]')).to_contain_text(
        "incident 42: checkout errors"
    )

    # The open dashboard shows it without a reload; so does a fresh one.
    expect(cell.locator("[data-role=lock]")).to_contain_text("locked by dave", timeout=WAIT)
    assert board.evaluate("() => window.loadedOnce") is True
    if SCREENSHOTS:
        board.screenshot(path=str(DOCS / "dashboard.png"), full_page=True)
    fresh = login("bob")
    expect(fresh.locator('td[data-service="storefront"][data-environment="prod"] [data-role=lock]')).to_contain_text(
        "locked by dave"
    )

    # Releasing asks first.
    dave.locator('#service-cells td[data-environment="prod"] a.release-lock').click()
    expect(dave.locator("h1")).to_have_text("Release the lock on Prod for storefront?")
    assert in_thread(lambda: Lock.objects.get().released_at) is None
    dave.click("#release-form button[type=submit]")
    expect(dave.locator(".messages")).to_contain_text("Lock on Prod released.")
    expect(cell.locator("[data-role=lock]")).to_have_count(0, timeout=WAIT)


# Counts the page's own re-reads (Pampam.refresh fetches with X-Pampam-Refresh) and asks for one
# every 100 ms, as a busy board would.
REREAD_OFTEN = """() => {
  window.rereads = 0;
  const fetch = window.fetch;
  window.fetch = function (url, options) {
    if (options && options.headers && options.headers["X-Pampam-Refresh"]) window.rereads += 1;
    return fetch.apply(this, arguments);
  };
  setInterval(Pampam.refresh, 100);
}"""


def test_a_lock_form_being_filled_in_stays_while_the_page_rereads_itself(portal, login):
    in_thread(history, portal.cast)
    alice = login("alice")
    alice.goto(portal.url + "/services/storefront/")
    alice.evaluate("() => { document.getElementById('service-cells').dataset.first = 'yes'; }")
    alice.evaluate(REREAD_OFTEN)

    # Nothing it shows changed: however often it re-reads, the region stays the same element
    # (though each render masks its CSRF token anew).
    alice.wait_for_function("() => window.rereads >= 5", timeout=WAIT)
    assert alice.evaluate("() => document.getElementById('service-cells').dataset.first") == "yes"

    # While alice fills in the form, dave locks prod: the region waits for her.
    alice.click("summary:has-text('Lock Storefront')")
    alice.select_option(".lock-form select[name=environment]", "dev")
    alice.click(".lock-form input[name=reason]")
    in_thread(guards.lock, portal.cast.dave, portal.cast.prod, reason="load test in prod")
    seen = alice.evaluate("() => window.rereads")
    alice.wait_for_function(f"() => window.rereads >= {seen + 5}", timeout=WAIT)
    alice.keyboard.type("dev is broken")
    expect(alice.locator(".lock-form input[name=reason]")).to_have_value("dev is broken")
    assert alice.evaluate("() => document.getElementById('service-cells').dataset.first") == "yes"

    # When she leaves the form, the region catches up and keeps what she chose and typed.
    alice.click("h1")
    prod = alice.locator('#service-cells td[data-environment="prod"] [data-role=lock]')
    expect(prod).to_contain_text("load test in prod", timeout=WAIT)
    assert alice.evaluate("() => document.getElementById('service-cells').dataset.first") is None
    expect(alice.locator(".lock-form")).to_have_attribute("open", "")
    expect(alice.locator(".lock-form select[name=environment]")).to_have_value("dev")
    expect(alice.locator(".lock-form input[name=reason]")).to_have_value("dev is broken")

    # Caught up, with her typing carried over, it equals every later render: it is neither
    # replaced again and again while she is away from the form nor loses what she typed.
    alice.evaluate("() => { document.getElementById('service-cells').dataset.second = 'yes'; }")
    seen = alice.evaluate("() => window.rereads")
    alice.wait_for_function(f"() => window.rereads >= {seen + 5}", timeout=WAIT)
    assert alice.evaluate("() => document.getElementById('service-cells').dataset.second") == "yes"
    expect(alice.locator(".lock-form input[name=reason]")).to_have_value("dev is broken")

    # A press on its button holds it too: replaced between the press and the release, the button
    # would be gone from under the pointer, no click would be made, and the lock would not be.
    alice.hover(".lock-form button[type=submit]")
    alice.mouse.down()
    in_thread(guards.lock, portal.cast.alice, portal.cast.staging, reason="staging too")
    seen = alice.evaluate("() => window.rereads")
    alice.wait_for_function(f"() => window.rereads >= {seen + 5}", timeout=WAIT)
    assert alice.evaluate("() => document.getElementById('service-cells').dataset.second") == "yes"
    alice.mouse.up()
    expect(alice.locator(".messages")).to_contain_text("Storefront in Dev is locked")
