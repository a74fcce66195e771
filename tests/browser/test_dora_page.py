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


# Where each axis label is drawn, in the chart's own units, and how wide the chart is.
LABEL_BOXES = """() => [...document.querySelectorAll('svg.dora-chart')].flatMap(svg => {
  const width = svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll('text.axis')].map(t => {
    const box = t.getBBox();
    return {label: t.textContent, left: box.x, right: box.x + box.width, width: width};
  });
})"""


def slow_lead_times(cast):
    """Releases that waited days for prod: the value axis reads in days."""
    now = timezone.now()
    for day in (6, 4, 2):
        at = now - timedelta(days=day)
        release = make_release(cast.service, version=f"2.{day}.0", created_at=at - timedelta(days=day, hours=14))
        make_deployment(release, cast.prod, state=states.SUCCEEDED, started_at=at, finished_at=at)


def test_it_draws_every_axis_label_whole_inside_its_chart(portal, login):
    in_thread(slow_lead_times, portal.cast)
    page = login("erin")
    page.goto(portal.url + "/dora/?days=7")
    expect(page.locator("svg.dora-chart")).to_have_count(2)
    boxes = page.evaluate(LABEL_BOXES)
    assert any(b["label"].endswith("days") for b in boxes), boxes
    for box in boxes:
        assert box["left"] >= 0, f"{box['label']!r} is cut off on the left: {box}"
        assert box["right"] <= box["width"], f"{box['label']!r} is cut off on the right: {box}"
