"""Logins are throttled per username and per address (the admin's too), passwords meet Django's
full set of validators, local passwords can be switched off, and SSO settings fail loudly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent

LOCKED = "Too many failed sign-ins"


def attempt(client, username, password, path="/accounts/login/", address="198.51.100.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_it_locks_a_username_after_five_failures_even_with_the_right_password(cast):
    client = Client()
    for _ in range(4):
        assert attempt(client, "alice", "wrong-password").status_code == 200
    attempt(client, "alice", "wrong-password")
    refused = attempt(client, "alice", "pampam-test", address="203.0.113.50")
    assert refused.status_code == 429
    assert LOCKED in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_locks_an_address_trying_many_usernames(cast):
    client = Client()
    for name in ["bob", "carol", "dave", "erin", "nobody"]:
        attempt(client, name, "wrong-password", address="198.51.100.9")
    refused = attempt(client, "alice", "pampam-test", address="198.51.100.9")
    assert refused.status_code == 429
    assert attempt(Client(), "alice", "pampam-test", address="198.51.100.10").status_code == 302


def test_it_throttles_the_admin_login_too(cast):
    client = Client()
    for _ in range(5):
        attempt(client, "admin", "wrong-password", path="/admin/login/")
    refused = attempt(client, "admin", "pampam-test", path="/admin/login/", address="203.0.113.51")
    assert refused.status_code == 429
    assert LOCKED in refused.content.decode()


def test_it_lets_the_right_password_in_before_the_limit(cast):
    client = Client()
    for _ in range(4):
        attempt(client, "alice", "wrong-password")
    assert attempt(client, "alice", "pampam-test").status_code == 302


@pytest.mark.parametrize("password", ["12345678", "password", "pampam", "alice-example", "1234567890123"])
def test_it_refuses_weak_passwords(cast, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=cast.alice)


def test_it_accepts_a_strong_password(cast):
    validate_password("correct horse battery staple", user=cast.alice)


def test_it_refuses_local_passwords_when_they_are_switched_off(cast, settings):
    settings.LOCAL_LOGIN = False
    settings.SSO_ENABLED = True
    settings.OIDC_ISSUER = "https://idp.example"
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with SSO" in page
    assert 'name="password"' not in page
    response = attempt(Client(), "alice", "pampam-test")
    assert response.status_code == 403
    assert "Local passwords are switched off" in response.content.decode()


def test_it_offers_sso_beside_the_local_form(cast, settings):
    settings.SSO_ENABLED = True
    settings.OIDC_ISSUER = "https://idp.example"
    page = Client().get("/accounts/login/?next=/history/").content.decode()
    assert 'href="/oidc/authenticate/?next=%2Fhistory%2F"' in page
    assert 'name="password"' in page


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OIDC_ISSUER", "idp.example"),
        ("OIDC_GROUP_MAP", "eng=developers,admins"),
        ("OIDC_GROUPS_CLAIM", "my groups"),
        ("OIDC_SESSION_MAX_AGE", "soon"),
        ("LOGIN_FAILURE_LIMIT", "0"),
    ],
)
def test_it_refuses_to_start_with_an_invalid_sign_in_setting(tmp_path, name, value):
    assert f"Environment variable {name}={value!r} is not" in refused_start(tmp_path, **{name: value})


def test_it_refuses_to_start_with_sso_but_no_client_credentials(tmp_path):
    assert "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET" in refused_start(tmp_path, OIDC_ISSUER="https://idp.example")


def test_it_refuses_to_start_with_local_passwords_off_and_no_sso(tmp_path):
    assert "Environment variable LOCAL_LOGIN=0 needs single sign-on" in refused_start(tmp_path, LOCAL_LOGIN="0")


def test_it_starts_with_sso_and_a_secret_file(tmp_path):
    (tmp_path / "secret").write_text("s3cret\n")
    result = start(
        tmp_path,
        OIDC_ISSUER="https://idp.example/realms/corp",
        OIDC_CLIENT_ID="pampam",
        OIDC_CLIENT_SECRET_FILE=str(tmp_path / "secret"),
        OIDC_GROUP_MAP="eng=developers,leads=release-managers",
        LOCAL_LOGIN="0",
    )
    assert result.returncode == 0, result.stderr


def refused_start(tmp_path, **env) -> str:
    """What the settings say on stderr as they refuse `env`."""
    result = start(tmp_path, **env)
    assert result.returncode != 0
    return result.stderr


def start(tmp_path, **env):
    """Load the settings in a fresh interpreter with only `env` (plus PATH and a secret key)."""
    base = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "portal.settings", "SECRET_KEY": "t"}
    base |= {"PAMPAM_VAR_DIR": str(tmp_path), **env}
    code = "import django; django.setup()"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)


def test_it_ends_an_sso_session_past_its_maximum_age(cast):
    import time

    client = Client()
    client.force_login(cast.alice)
    session = client.session
    session["sso"] = {"expires_at": time.time() - 1, "id_token": ""}
    session.save()
    response = client.get("/history/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
