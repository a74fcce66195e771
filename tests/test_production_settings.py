"""Production settings: `check --deploy` is clean with the manifest's settings; cookies, HSTS and the
HTTPS redirect behind a proxy; X-Forwarded-* believed only from TRUSTED_PROXIES."""

import ipaddress
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from auditlog.models import LogEntry
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "deploy" / "base" / "settings.yaml"


def manifest_settings() -> dict:
    """The non-secret settings the Kubernetes manifests give every process (the secrets, files in
    the pod named by *_FILE, are given here as plain variables)."""
    for document in yaml.safe_load_all(MANIFEST.read_text()):
        if document and document["kind"] == "ConfigMap" and document["metadata"]["name"] == "pampam-settings":
            return {k: v for k, v in document["data"].items() if not k.endswith("_FILE")}
    raise AssertionError("deploy/base/settings.yaml has no pampam-settings ConfigMap")


def manage(tmp_path, *args, **env):
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PAMPAM_VAR_DIR": str(tmp_path),
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pampam"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def test_it_passes_check_deploy_without_warnings_with_the_manifests_settings(tmp_path):
    result = manage(tmp_path, "check", "--deploy", SECRET_KEY=secrets.token_urlsafe(50), **manifest_settings())
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_it_warns_in_check_deploy_when_https_is_off(tmp_path):
    settings = {**manifest_settings(), "PORTAL_URL": "http://pampam.example.com"}
    result = manage(tmp_path, "check", "--deploy", SECRET_KEY=secrets.token_urlsafe(50), **settings)
    assert "security.W004" in result.stdout + result.stderr  # no HSTS
    assert "security.W012" in result.stdout + result.stderr  # session cookie not secure


@pytest.mark.parametrize(
    ("name", "value"),
    [("TRUSTED_PROXIES", "10.0.0.0/8,the-ingress"), ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https")],
)
def test_it_refuses_to_start_with_a_bad_proxy_setting_naming_the_variable(tmp_path, name, value):
    result = manage(tmp_path, "check", **{"SECRET_KEY": "k", "TRUSTED_PROXIES": "10.0.0.1", name: value})
    assert result.returncode != 0
    assert f"Environment variable {name}=" in result.stderr


def test_it_refuses_a_proxy_ssl_header_without_trusted_proxies(tmp_path):
    result = manage(tmp_path, "check", SECRET_KEY="k", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER needs TRUSTED_PROXIES" in result.stderr


# Behind a proxy ----------------------------------------------------------------------------------


@pytest.fixture
def production(settings):
    settings.ALLOWED_HOSTS = ["pampam.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return settings


def test_it_redirects_plain_http_to_https(production, cast):
    response = Client().get("/accounts/login/", HTTP_HOST="pampam.example.com", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 301
    assert response["Location"] == "https://pampam.example.com/accounts/login/"


def test_it_believes_the_proto_header_from_a_trusted_proxy(production, cast):
    response = Client().get(
        "/accounts/login/", HTTP_HOST="pampam.example.com", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_PROTO="https"
    )
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["Referrer-Policy"] == "same-origin"


def test_it_ignores_the_proto_header_from_anyone_else(production, cast):
    response = Client().get(
        "/accounts/login/", HTTP_HOST="pampam.example.com", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_PROTO="https"
    )
    assert response.status_code == 301


def test_it_keeps_health_checks_on_plain_http_for_the_kubelet(production, db):
    response = Client().get("/healthz", HTTP_HOST="pampam.example.com", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200


def test_it_sets_secure_http_only_cookies_at_login(production, cast):
    response = Client().post(
        "/accounts/login/",
        {"username": "alice", "password": "pampam-test"},
        HTTP_HOST="pampam.example.com",
        REMOTE_ADDR="10.1.2.3",
        HTTP_X_FORWARDED_PROTO="https",
        secure=True,
    )
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"]
    assert session["httponly"]
    assert session["samesite"] == "Lax"


# The audit log's address ------------------------------------------------------------------------


def change_an_environment(cast, **extra):
    client = Client()
    client.force_login(cast.admin)
    response = client.post("/admin/clusters/lock/add/", {"environment": cast.prod.pk, "reason": "db move"}, **extra)
    assert response.status_code == 302, response.content.decode()[:2000]
    return LogEntry.objects.order_by("-pk").first()


def test_it_records_the_peer_not_a_claimed_address_in_the_audit_log(cast):
    entry = change_an_environment(cast, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert entry.remote_addr == "198.51.100.7"


def test_it_records_the_client_a_trusted_proxy_saw(cast, settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    entry = change_an_environment(cast, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.0.0.9")
    assert entry.remote_addr == "203.0.113.9"
