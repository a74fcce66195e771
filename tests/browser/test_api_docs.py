"""The API docs (/api/docs/, Swagger UI from drf-spectacular-sidecar) in Chromium: they render
every operation from the portal's own static files under the portal's CSP, with no violation,
and "Try it out" calls the API with the browser's session."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
WAIT = 30_000


def test_it_renders_the_api_docs_under_the_csp_and_tries_a_call(portal, login):
    page = login("erin")
    problems = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(portal.url + "/api/docs/")
    expect(page.locator(".opblock")).to_have_count(27, timeout=WAIT)
    expect(page.locator(".info .title")).to_contain_text("Pampam release portal API")

    me = page.locator("#operations-me-getMe")
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    expect(me.locator(".live-responses-table tr.response .response-col_status")).to_have_text("200", timeout=WAIT)
    expect(me.locator(".live-responses-table")).to_contain_text('"username": "erin"')

    assert [p for p in problems if "Content Security Policy" in p or "Refused" in p] == []
    assert all(url.startswith(portal.url) for url in requests), [u for u in requests if not u.startswith(portal.url)]
