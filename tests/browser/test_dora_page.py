"""The DORA page reads plainly: what each figure counts, and charts with values on their axes."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from releases import states
from tests.browser.conftest import DOCS, SCREENSHOTS, in_thread
from tests.factories import make_deployment, make_release

pytestmark = pytest.mark.browser


def a_month(cast):
    """Four weeks of prod: most deployments succeed, one fails and is rolled back at once."""
    now = timezone.now()
    for day in range(28, 0, -1):
        for n in range(1 + day % 3):
            at = now - timedelta(days=day, hours=n * 3)
            release = make_release(cast.service, version=f"1.{day}.{n}", created_at=at - timedelta(hours=5))
            bad = day == 9 and n == 0
            make_deployment(
                release,
                cast.prod,
                state=states.FAILED if bad else states.SUCCEEDED,
                created_at=at - timedelta(minutes=30),
                started_at=at - timedelta(minutes=10),
                finished_at=at,
            )
            if bad:
                make_deployment(
                    make_release(cast.service, version=f"1.{day}.{n}-back"),
                    cast.prod,
                    kind="rollback",
                    state=states.SUCCEEDED,
                    created_at=at,
                    started_at=at,
                    finished_at=at + timedelta(minutes=3),
                )


def test_it_says_what_each_figure_counts_and_labels_the_chart_axes(portal, login):
    in_thread(a_month, portal.cast)
    page = login("erin")
    page.goto(portal.url + "/dora/")
    expect(page.locator("#dora-frequency")).to_have_text("55")
    expect(page.locator("#dora-frequency + .muted")).to_contain_text("successful deployments in 30 days")
    expect(page.locator("#dora-failure-rate + .muted")).to_contain_text("1 of 56 deployments that ended")
    expect(page.locator("#dora-restore")).to_have_text("13 min")
    axis = page.locator("svg.dora-chart").first.locator("text.axis")
    labels = axis.all_text_contents()
    assert "0" in labels
    assert "3" in labels
    assert sum(1 for label in labels if label[:3].isalpha()) >= 4  # dates along the bottom
    if SCREENSHOTS:
        page.screenshot(path=str(DOCS / "dora.png"), full_page=True)
