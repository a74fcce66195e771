"""API tokens: shown once, stored hashed, scoped, expiring, revocable, last-used; the API tokens
page, the create_api_token and create_service_account commands, and the browser's session."""

import hashlib
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from releases.api.models import ApiToken, ServiceAccount
from tests.factories import make_release, make_user
from tests.support.api import api_as, token_for

TOKEN = re.compile(r"^pmp_[A-Za-z0-9_-]{43}$")


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# The token itself ---------------------------------------------------------------------------


def test_it_stores_only_a_digest_and_a_prefix_of_the_token(cast):
    token, plain = ApiToken.issue(cast.alice, "laptop", ["read"])
    assert TOKEN.match(plain)
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert plain not in str(stored.values())
    assert stored["digest"] == hashlib.sha256(plain.encode()).hexdigest()
    assert stored["prefix"] == plain[:12]


def test_it_answers_401_with_a_bearer_challenge_without_credentials(cast):
    response = APIClient().get("/api/v1/services/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="pampam"'
    assert response.json()["detail"] == "Authentication credentials were not provided."


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Bearer pmp_not-a-real-token", "This API token is not known. Check PAMPAM_TOKEN or make a new one."),
        ("Bearer", "Send the token as `Authorization: Bearer <token>`, nothing else."),
        ("Bearer a b", "Send the token as `Authorization: Bearer <token>`, nothing else."),
        ("Bearer " + "x" * 5000, "This API token is not known. Check PAMPAM_TOKEN or make a new one."),
    ],
)
def test_it_refuses_a_bad_authorization_header(cast, header, detail):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/services/")
    assert response.status_code == 401
    assert response.json()["detail"] == detail


def test_it_refuses_an_expired_token(cast):
    token, plain = ApiToken.issue(cast.alice, "old", ["read"], days=1)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(plain).get("/api/v1/services/")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("API token old expired on ")


def test_it_refuses_a_revoked_token(cast):
    token, plain = ApiToken.issue(cast.alice, "leaked", ["deploy"])
    assert bearer(plain).get("/api/v1/services/").status_code == 200
    token.revoke()
    response = bearer(plain).get("/api/v1/services/")
    assert response.status_code == 401
    assert response.json()["detail"] == "API token leaked was revoked."


def test_it_refuses_the_token_of_a_disabled_account(cast):
    plain = token_for(cast.alice, "read")
    cast.alice.is_active = False
    cast.alice.save()
    response = bearer(plain).get("/api/v1/services/")
    assert response.status_code == 401
    assert response.json()["detail"] == "The account alice is disabled."


def test_it_records_when_a_token_was_last_used_at_most_once_a_minute(cast):
    token, plain = ApiToken.issue(cast.alice, "ci", ["read"])
    assert token.last_used_at is None
    bearer(plain).get("/api/v1/services/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    bearer(plain).get("/api/v1/services/")
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    bearer(plain).get("/api/v1/services/")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_it_lets_the_browser_session_use_the_api_with_csrf(cast):
    release = make_release(cast.service)
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.alice)
    assert client.get("/api/v1/me/").json()["token"] is None
    payload = {"release": release.pk, "environment": "dev"}
    refused = client.post("/api/v1/deployments/", payload, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    client.get("/account/tokens/")  # any page sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/deployments/", payload, content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 201


# create_api_token and create_service_account -------------------------------------------------------


def test_the_command_prints_only_the_token(cast):
    out = StringIO()
    call_command(
        "create_api_token", "alice", "--scope", "deploy", "--scope", "read,approve", "--expires", "30", stdout=out
    )
    plain = out.getvalue().strip()
    assert TOKEN.match(plain)
    token = ApiToken.find(plain)
    assert token.user == cast.alice
    assert token.scopes == ["read", "deploy", "approve"]
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert bearer(plain).get("/api/v1/me/").json()["username"] == "alice"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--scope", "read"], "There is no user nobody."),
        (["alice", "--scope", "root"], "Unknown scope root: use read, deploy, approve, admin."),
        (["alice", "--scope", "read", "--expires", "0"], "--expires takes a number of days from 1 to 3650."),
    ],
)
def test_the_command_refuses_what_it_cannot_make(cast, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("create_api_token", *args, stdout=StringIO())
    assert not ApiToken.objects.exists()


def test_a_service_account_cannot_log_in_and_acts_through_its_groups(cast):
    out = StringIO()
    call_command("create_service_account", "ci-bot", "--group", "developers", "--description", "Jenkins", stdout=out)
    assert out.getvalue().strip() == "Service account ci-bot created in developers."
    account = ServiceAccount.objects.select_related("user").get()
    assert not account.user.has_usable_password()
    refused = Client().post("/accounts/login/", {"username": "ci-bot", "password": ""})
    assert refused.status_code == 200  # the form again, not a redirect into the portal
    assert "_auth_user_id" not in refused.client.session
    token = StringIO()
    call_command("create_api_token", "ci-bot", "--scope", "deploy", "--name", "jenkins", stdout=token)
    client = bearer(token.getvalue().strip())
    me = client.get("/api/v1/me/").json()
    assert (me["username"], me["is_service_account"], me["groups"]) == ("ci-bot", True, ["developers"])
    release = make_release(cast.service)
    made = client.post("/api/v1/deployments/", {"release": release.pk, "environment": "dev"}, format="json")
    assert made.status_code == 201
    assert made.json()["requested_by"] == "ci-bot"


def test_the_service_account_command_refuses_an_unknown_group(cast):
    with pytest.raises(CommandError, match="There is no group deployers."):
        call_command("create_service_account", "ci-bot", "--group", "deployers", stdout=StringIO())
    assert not ServiceAccount.objects.exists()


# The API tokens page ------------------------------------------------------------------------------


def test_it_shows_a_new_token_once_on_the_tokens_page(cast):
    client = page_client(cast.alice)
    response = client.post("/account/tokens/", {"name": "laptop", "scopes": ["read", "deploy"], "expires_in": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    plain = re.search(r'value="(pmp_[^"]+)"', response.content.decode()).group(1)
    token = ApiToken.find(plain)
    assert (token.user, token.name, token.scopes) == (cast.alice, "laptop", ["read", "deploy"])
    later = client.get("/account/tokens/").content.decode()
    assert plain not in later
    assert token.prefix in later
    assert bearer(plain).get("/api/v1/me/").json()["token"]["name"] == "laptop"


def test_it_refuses_a_second_live_token_with_the_same_name(cast):
    ApiToken.issue(cast.alice, "laptop", ["read"])
    response = page_client(cast.alice).post(
        "/account/tokens/", {"name": "laptop", "scopes": ["read"], "expires_in": "7"}
    )
    assert response.status_code == 400
    assert "alice already has a token named “laptop”." in response.content.decode()
    assert ApiToken.objects.count() == 1


def test_it_rejects_a_token_form_without_scopes(cast):
    response = page_client(cast.alice).post("/account/tokens/", {"name": "x", "expires_in": "7"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_it_revokes_my_token_but_not_someone_elses(cast):
    mine, _ = ApiToken.issue(cast.alice, "mine", ["read"])
    theirs, _ = ApiToken.issue(cast.bob, "theirs", ["read"])
    client = page_client(cast.alice)
    assert client.post(f"/account/tokens/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/account/tokens/{mine.pk}/revoke/").status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None
    assert theirs.revoked_at is None
    assert "theirs" not in client.get("/account/tokens/").content.decode()


def test_admins_make_tokens_for_service_accounts_from_the_page(cast):
    call_command("create_service_account", "ci-bot", "--group", "developers", stdout=StringIO())
    bot = ServiceAccount.objects.get().user
    form = {"name": "jenkins", "scopes": ["deploy"], "expires_in": "90", "owner": bot.pk}
    response = page_client(cast.admin).post("/account/tokens/", form)
    assert response.status_code == 200
    token = ApiToken.objects.get()
    assert (token.user, token.created_by) == (bot, cast.admin)
    # Only admins get the owner field, and only service accounts are offered.
    assert 'name="owner"' not in page_client(cast.alice).get("/account/tokens/").content.decode()
    refused = page_client(cast.admin).post("/account/tokens/", {**form, "name": "x", "owner": cast.alice.pk})
    assert refused.status_code == 400


def test_it_sends_anonymous_visitors_of_the_tokens_page_to_login(cast):
    response = Client().get("/account/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_links_the_tokens_page_from_every_page(cast):
    assert 'href="/account/tokens/"' in page_client(cast.erin).get("/").content.decode()


def test_a_token_acts_as_its_owner_only(cast):
    """The owner's rules apply whatever scopes the token has: an admin-scoped token of erin cannot deploy."""
    release = make_release(cast.service)
    response = api_as(cast.erin, "admin").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "dev"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["reasons"] == ["You are not a deployer for Dev (developers). Ask an admin to add you."]


def test_admins_flag_a_user_as_a_service_account_in_the_admin(cast):
    bot = make_user("chatops", cast.approvers)
    client = page_client(cast.admin)
    assert client.get("/admin/releases/serviceaccount/add/").status_code == 200
    response = client.post("/admin/releases/serviceaccount/add/", {"user": bot.pk, "description": "Slack bot"})
    assert response.status_code == 302
    bot.refresh_from_db()
    assert ServiceAccount.objects.get(user=bot).created_by == cast.admin
    assert not bot.has_usable_password()


def test_admins_see_and_revoke_tokens_in_the_admin_but_never_make_them_there(cast):
    token, _ = ApiToken.issue(cast.alice, "laptop", ["read"])
    client = page_client(cast.admin)
    assert "laptop" in client.get("/admin/releases/apitoken/").content.decode()
    assert client.get("/admin/releases/apitoken/add/").status_code == 403
    client.post("/admin/releases/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
