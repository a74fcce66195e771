"""Single sign-on in Chromium against a real OpenID Connect provider process: first login creates
the user with the mapped groups, a group removed at the provider is gone at the next login, logout
reaches the provider, and a wrong audience, an expired token and a replayed state are refused
with a clear page."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from portal import sso
from portal.models import SsoIdentity
from tests.support.oidc import start_provider
from tests.support.stack import in_thread

pytestmark = pytest.mark.browser
CLIENT_ID = "pampam-portal"


@pytest.fixture
def provider(settings, portal):
    provider = start_provider()
    settings.PORTAL_URL = portal.url
    settings.OIDC_ISSUER = provider.url
    settings.SSO_ENABLED = True
    settings.OIDC_CLIENT_ID = settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET = "portal-secret"
    settings.OIDC_GROUP_MAP = [("eng", "developers"), ("eng-leads", "release-managers"), ("eng-leads", "approvers")]
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "portal.sso.Backend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    sso._discovery.clear()
    yield provider
    provider.stop()
    sso._discovery.clear()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def sign_in(page, portal, sub) -> list[str]:
    """Press "Sign in with SSO", authorize as `sub` at the provider; the URLs the browser asked for."""
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(portal.url + "/accounts/login/")
    page.get_by_role("link", name="Sign in with SSO").click()
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    return asked


def groups_of(username) -> set[str]:
    return in_thread(lambda: set(User.objects.get(username=username).groups.values_list("name", flat=True)))


def test_it_creates_the_user_with_mapped_groups_at_first_login(portal, provider, page):
    provider.set_user("dana-sub", email="dana@corp.example", preferred_username="dana", groups=["eng", "sales"])
    asked = sign_in(page, portal, "dana-sub")
    page.wait_for_url(portal.url + "/")
    expect(page.locator("body")).to_contain_text("dana")
    assert groups_of("dana") == {"developers"}
    identity = in_thread(lambda: SsoIdentity.objects.select_related("user").get(subject="dana-sub"))
    assert (identity.issuer, identity.user.email) == (provider.url, "dana@corp.example")
    assert not identity.user.has_usable_password()
    authorize = parse_qs(urlsplit(next(u for u in asked if "/oauth2/authorize" in u)).query)
    assert authorize["code_challenge_method"] == ["S256"]
    assert len(authorize["code_challenge"][0]) == 43
    assert authorize["nonce"]
    assert authorize["state"]
    assert authorize["client_id"] == [CLIENT_ID]


def test_it_drops_a_group_removed_at_the_provider_at_the_next_login(portal, provider, page):
    provider.set_user("erik-sub", email="erik@corp.example", preferred_username="erik", groups=["eng", "eng-leads"])
    sign_in(page, portal, "erik-sub")
    page.wait_for_url(portal.url + "/")
    assert groups_of("erik") == {"developers", "release-managers", "approvers"}

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{provider.url}/oauth2/end_session*")
    assert "id_token_hint=" in page.url
    page.get_by_role("button").first.click()
    page.wait_for_url(portal.url + "/accounts/login/*")

    provider.set_user("erik-sub", email="erik@corp.example", preferred_username="erik", groups=["eng"])
    sign_in(page, portal, "erik-sub")
    page.wait_for_url(portal.url + "/")
    assert groups_of("erik") == {"developers"}
    assert in_thread(lambda: User.objects.filter(username__startswith="erik").count()) == 1


def test_it_refuses_an_id_token_for_another_audience(portal, provider, page):
    provider.set_user("mallory-sub", email="m@corp.example", aud="another-app")
    sign_in(page, portal, "mallory-sub")
    expect(page.locator("#refusal")).to_contain_text("issued for another application, not pampam-portal")
    assert not in_thread(lambda: SsoIdentity.objects.exists())


def test_it_refuses_an_expired_id_token(portal, provider, page):
    provider.set_user("old-sub", email="old@corp.example", exp=int(time.time()) - 3600)
    sign_in(page, portal, "old-sub")
    expect(page.locator("#refusal")).to_contain_text("ID token has expired")
    assert not in_thread(lambda: SsoIdentity.objects.exists())


def test_it_refuses_a_replayed_state(portal, provider, page):
    provider.set_user("rita-sub", email="rita@corp.example", preferred_username="rita")
    asked = sign_in(page, portal, "rita-sub")
    page.wait_for_url(portal.url + "/")
    callback = next(u for u in asked if "/oidc/callback/" in u)
    response = page.goto(callback)
    assert response.status == 400
    expect(page.locator("#refusal")).to_contain_text("already used")
