"""A real portal for a real browser: uvicorn serving portal.asgi (pages and websockets) on an
ephemeral port, the RQ worker and the cluster watcher in threads, the sandbox cluster, all on
the test database; and Debian's Chromium driven by Playwright.

`live_server` from pytest-django is WSGI-only (no websockets), hence uvicorn in a thread. The
tests are transactional because every one of those threads reads what the test wrote.
"""

import os
import time
from pathlib import Path

import pytest

from tests.support.stack import in_thread, running_portal
from tests.support.tools import require_tool

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pampam-test"
# Set PAMPAM_SCREENSHOTS=1 to (re)write docs/dashboard.png and docs/deployment-live.png.
SCREENSHOTS = os.environ.get("PAMPAM_SCREENSHOTS") == "1"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(autouse=True)
def _chromium_installed():
    require_tool("chromium")  # fails under CI=true, skips elsewhere


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def start_kube():
    from sandbox.kube import start

    deployment = {
        "namespace": "prod",
        "name": "storefront",
        "image": "registry.example/storefront:1.0.0",
        "replicas": 4,
    }
    return start(port=0, ready_after=0.6, seed={"deployments": [deployment]})


def wait_for(predicate, timeout=60.0):
    """Poll `predicate` (in another thread: it may use the ORM) until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        value = in_thread(predicate)
        if value:
            return value
        assert time.monotonic() < deadline, f"not true within {timeout}s: {predicate}"
        time.sleep(0.1)


@pytest.fixture
def portal(transactional_db, settings):
    with running_portal(start_kube(), "browser-tests", settings) as running:
        yield running


@pytest.fixture
def browser(transactional_db, monkeypatch):
    """Chromium, per test. Playwright's sync API keeps an event loop running in this thread,
    which Django's async-safety check takes for async code; the test's ORM calls are plain
    synchronous ones, so the check is lifted for as long as Playwright runs (and only then:
    this fixture stops before the database teardown, which it depends on)."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def login(browser, portal):
    """login("bob") → a page in bob's own browser context (own cookies), logged in."""
    contexts = []

    def open_as(username, width=1280, height=900):
        context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(portal.url + "/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(portal.url + "/")
        return page

    yield open_as
    for context in contexts:
        context.close()
