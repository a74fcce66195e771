"""Per-environment Slack webhook URLs are secrets: encrypted at rest, write-only in the admin,
never in the audit log; the migration encrypted the URLs stored before."""

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.test import Client

from clusters.models import Environment
from tests.support.admin import environment_form

HOOK = "https://hooks.slack.com/services/T000/B000/very-secret-token"


def admin_client(cast):
    client = Client()
    client.force_login(cast.admin)
    return client


def save(cast, **changes):
    response = admin_client(cast).post(
        f"/admin/clusters/environment/{cast.prod.pk}/change/", environment_form(cast.prod, **changes)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    cast.prod.refresh_from_db()


def raw_row(environment) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM clusters_environment WHERE id = %s", [environment.pk])
        return repr(cursor.fetchone())


def test_it_stores_the_slack_webhook_encrypted(cast):
    save(cast, slack_webhook=HOOK)
    assert cast.prod.slack_webhook_url == HOOK
    assert "very-secret-token" not in raw_row(cast.prod)
    assert "hooks.slack.com" not in raw_row(cast.prod)


def test_it_never_shows_the_stored_slack_webhook_in_the_admin(cast):
    save(cast, slack_webhook=HOOK)
    body = admin_client(cast).get(f"/admin/clusters/environment/{cast.prod.pk}/change/").content.decode()
    assert "very-secret-token" not in body
    assert cast.prod.slack_webhook_encrypted not in body


def test_it_keeps_the_slack_webhook_when_the_field_is_left_empty(cast):
    save(cast, slack_webhook=HOOK)
    save(cast, required_approvals=3)
    assert cast.prod.required_approvals == 3
    assert cast.prod.slack_webhook_url == HOOK


def test_it_clears_the_slack_webhook_on_request(cast):
    save(cast, slack_webhook=HOOK)
    save(cast, clear_slack_webhook="on")
    assert cast.prod.slack_webhook_url == ""


def test_it_refuses_a_slack_webhook_that_is_not_http(cast):
    response = admin_client(cast).post(
        f"/admin/clusters/environment/{cast.prod.pk}/change/",
        environment_form(cast.prod, slack_webhook="javascript:alert(1)"),
    )
    assert response.status_code == 200
    assert "Enter a valid URL." in response.content.decode()
    cast.prod.refresh_from_db()
    assert cast.prod.slack_webhook_url == ""


def test_it_keeps_the_slack_webhook_out_of_the_audit_log(cast):
    save(cast, slack_webhook=HOOK, required_approvals=3)
    entries = LogEntry.objects.get_for_object(cast.prod)
    assert entries.exists()
    for entry in entries:
        text = repr(entry.changes) + repr(entry.changes_text) + repr(entry.serialized_data)
        assert "very-secret-token" not in text
        assert cast.prod.slack_webhook_encrypted not in text


@pytest.mark.django_db(transaction=True)
def test_it_encrypts_slack_webhooks_stored_before_the_migration(cast_tx):
    call_command("migrate", "clusters", "0001", verbosity=0)
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE clusters_environment SET slack_webhook_url = %s WHERE slug = 'prod'", [HOOK])
    finally:
        # Every app back to its latest migration: going back to clusters 0001 also unapplied the
        # migrations of other apps that depend on later clusters migrations.
        call_command("migrate", verbosity=0)
    prod = Environment.objects.get(slug="prod")
    assert prod.slack_webhook_url == HOOK
    assert "very-secret-token" not in raw_row(prod)
    assert Environment.objects.get(slug="dev").slack_webhook_url == ""
