"""A release manager locks prod from the service page during an incident; everyone sees it."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clusters.models import FreezeWindow, Lock
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
