"""Configuration changes made in the admin are audited; cluster tokens stay secret."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from clusters.models import Cluster, Environment, FreezeWindow, Lock
from portal.admin import readable_changes
from releases.models import Deployment
from tests.factories import client_for, make_deployment, make_release
from tests.support.admin import environment_form

TOKEN = "eyJhbGciOiJSUzI1NiJ9.super-secret-service-account-token"


def entries_for(obj):
    return LogEntry.objects.get_for_object(obj).order_by("timestamp", "pk")


def cluster_form(**fields):
    fields.setdefault("name", "edge")
    fields.setdefault("api_url", "https://k8s.example:6443")
    return fields


# Audit trail ---------------------------------------------------------------------------------------


def test_it_audits_an_environment_change_with_actor_and_before_after(cast):
    response = client_for(cast.admin).post(
        f"/admin/clusters/environment/{cast.prod.pk}/change/", environment_form(cast.prod, required_approvals=3)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = entries_for(cast.prod).last()
    assert entry.action == LogEntry.Action.UPDATE
    assert entry.actor == cast.admin
    assert entry.changes_dict["required_approvals"] == ["2", "3"]
    assert entry.timestamp > timezone.now() - timedelta(minutes=1)


def test_it_audits_creating_a_freeze_window_and_a_lock_with_the_admin_as_actor(cast):
    client = client_for(cast.admin)
    now = timezone.localtime()
    response = client.post(
        "/admin/clusters/freezewindow/add/",
        {
            "environment": cast.prod.pk,
            "starts_at_0": now.strftime("%Y-%m-%d"),
            "starts_at_1": "10:00:00",
            "ends_at_0": (now + timedelta(days=1)).strftime("%Y-%m-%d"),
            "ends_at_1": "10:00:00",
            "reason": "group-buy event",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    freeze = FreezeWindow.objects.get()
    assert freeze.created_by == cast.admin
    entry = entries_for(freeze).get()
    assert (entry.action, entry.actor) == (LogEntry.Action.CREATE, cast.admin)
    assert entry.changes_dict["reason"] == ["None", "group-buy event"]

    response = client.post("/admin/clusters/lock/add/", {"environment": cast.prod.pk, "reason": "incident 42"})
    assert response.status_code == 302
    lock = Lock.objects.get()
    assert (lock.locked_by, entries_for(lock).get().actor) == (cast.admin, cast.admin)


def test_it_audits_deleting_a_lock(cast):
    lock = Lock.objects.create(environment=cast.dev, reason="db migration", locked_by=cast.admin)
    response = client_for(cast.admin).post(f"/admin/clusters/lock/{lock.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry = LogEntry.objects.filter(object_pk=str(lock.pk), action=LogEntry.Action.DELETE).get()
    assert entry.actor == cast.admin


def test_it_audits_releasing_locks_with_the_admin_action(cast):
    lock = Lock.objects.create(environment=cast.dev, reason="db migration", locked_by=cast.admin)
    response = client_for(cast.admin).post(
        "/admin/clusters/lock/", {"action": "release", "_selected_action": [lock.pk]}
    )
    assert response.status_code == 302
    lock.refresh_from_db()
    assert lock.released_at is not None
    entry = entries_for(lock).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == cast.admin
    assert "released_at" in entry.changes_dict


def test_it_saves_nothing_and_logs_nothing_for_an_invalid_admin_form(cast):
    before = LogEntry.objects.count()
    response = client_for(cast.admin).post(
        f"/admin/clusters/environment/{cast.prod.pk}/change/",
        environment_form(cast.prod, required_approvals=5, namespace="Not A DNS Label"),
    )
    assert response.status_code == 200
    assert "Use lower-case letters, digits and" in response.content.decode()
    cast.prod.refresh_from_db()
    assert cast.prod.required_approvals == 2
    assert LogEntry.objects.count() == before


def test_it_shows_the_audit_log_to_admins(cast):
    client = client_for(cast.admin)
    client.post(f"/admin/clusters/environment/{cast.prod.pk}/change/", environment_form(cast.prod, name="Production"))
    body = client.get("/admin/auditlog/logentry/").content.decode()
    assert "Production" in body
    entry = entries_for(cast.prod).last()
    detail = client.get(f"/admin/auditlog/logentry/{entry.pk}/change/")
    assert detail.status_code == 200
    assert "Production" in detail.content.decode()


def test_it_names_the_groups_given_to_and_taken_from_a_person(cast):
    before = entries_for(cast.alice).count()
    cast.alice.groups.add(cast.release_managers)
    cast.alice.groups.remove(cast.developers)
    added, removed = entries_for(cast.alice)[before:]
    client = client_for(cast.admin)
    assert "1 change: groups" in client.get("/admin/auditlog/logentry/").content.decode()
    added_page = client.get(f"/admin/auditlog/logentry/{added.pk}/change/").content.decode()
    assert "added release-managers" in added_page
    removed_page = client.get(f"/admin/auditlog/logentry/{removed.pk}/change/").content.decode()
    assert "removed developers" in removed_page


def test_it_records_a_new_person_without_reverse_relations_or_ids(cast):
    response = client_for(cast.admin).post(
        "/admin/auth/user/add/",
        {"username": "frank", "password1": "a-long-pass-phrase-42", "password2": "a-long-pass-phrase-42"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = entries_for(User.objects.get(username="frank")).get(action=LogEntry.Action.CREATE)
    fields = [name for name, _, _ in readable_changes(created)]
    assert "username" in fields
    assert not {"ID", "approvals", "api_tokens", "deployments", "password", "last login"} & set(fields)
    detail = client_for(cast.admin).get(f"/admin/auditlog/logentry/{created.pk}/change/").content.decode()
    assert ".None" not in detail


def test_it_hides_the_audit_log_from_non_staff(cast):
    response = client_for(cast.alice).get("/admin/auditlog/logentry/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# Cluster credentials ---------------------------------------------------------------------------


@pytest.fixture
def cluster_with_token(cast):
    response = client_for(cast.admin).post("/admin/clusters/cluster/add/", cluster_form(token=TOKEN))
    assert response.status_code == 302, response.content.decode()[:2000]
    return Cluster.objects.get(name="edge")


def test_it_encrypts_the_token_in_the_database_column(cluster_with_token):
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_encrypted FROM clusters_cluster WHERE id = %s", [cluster_with_token.pk])
        (stored,) = cursor.fetchone()
    assert stored
    assert TOKEN not in stored
    assert "super-secret" not in stored
    assert cluster_with_token.token == TOKEN


def test_it_keeps_the_token_out_of_the_audit_log(cluster_with_token, cast):
    client = client_for(cast.admin)
    client.post(f"/admin/clusters/cluster/{cluster_with_token.pk}/change/", cluster_form(token=TOKEN + "-rotated"))
    entries = list(entries_for(cluster_with_token))
    assert entries
    assert all(e.actor == cast.admin for e in entries)
    cluster_with_token.refresh_from_db()
    ciphertext = cluster_with_token.token_encrypted
    for entry in entries:
        text = f"{entry.changes} {entry.changes_text} {entry.additional_data} {entry.object_repr}"
        assert "super-secret" not in text
        assert "token" not in entry.changes_dict
        assert ciphertext not in text
    for page in ["/admin/auditlog/logentry/"] + [f"/admin/auditlog/logentry/{e.pk}/change/" for e in entries]:
        assert "super-secret" not in client.get(page).content.decode()


def test_it_never_renders_the_token_in_the_admin(cluster_with_token, cast):
    client = client_for(cast.admin)
    ciphertext = cluster_with_token.token_encrypted
    for url in [
        "/admin/clusters/cluster/",
        f"/admin/clusters/cluster/{cluster_with_token.pk}/change/",
        f"/admin/clusters/cluster/{cluster_with_token.pk}/history/",
    ]:
        body = client.get(url).content.decode()
        assert "super-secret" not in body, url
        assert ciphertext[:20] not in body, url


def test_it_keeps_the_stored_token_when_the_field_is_left_empty(cluster_with_token, cast):
    response = client_for(cast.admin).post(
        f"/admin/clusters/cluster/{cluster_with_token.pk}/change/", cluster_form(api_url="https://k8s2.example:6443")
    )
    assert response.status_code == 302
    cluster_with_token.refresh_from_db()
    assert cluster_with_token.api_url == "https://k8s2.example:6443"
    assert cluster_with_token.token == TOKEN


def test_it_clears_the_token_when_asked(cluster_with_token, cast):
    client_for(cast.admin).post(
        f"/admin/clusters/cluster/{cluster_with_token.pk}/change/", cluster_form(clear_token="on")
    )
    cluster_with_token.refresh_from_db()
    assert not cluster_with_token.has_token


def test_it_does_not_render_a_token_back_after_a_failed_save(cast):
    response = client_for(cast.admin).post("/admin/clusters/cluster/add/", {"name": "edge", "token": TOKEN})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Give the API URL, or tick in-cluster." in body
    assert "super-secret" not in body
    assert not Cluster.objects.filter(name="edge").exists()


def test_it_refuses_to_delete_an_environment_in_use_by_deployments_silently(cast):
    """Environments are protected by their cluster: deleting a cluster in use is refused."""
    response = client_for(cast.admin).post(f"/admin/clusters/cluster/{cast.cluster.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200
    assert Cluster.objects.filter(pk=cast.cluster.pk).exists()
    assert Environment.objects.filter(cluster=cast.cluster).count() == 3


def test_it_offers_to_archive_an_environment_with_history_instead_of_deleting_it(cast):
    release = make_release(cast.service)
    for _ in range(3):
        make_deployment(release, cast.staging, state="succeeded", finished_at=timezone.now())
    client = client_for(cast.admin)
    page = client.get(f"/admin/clusters/environment/{cast.staging.pk}/delete/").content.decode()
    assert "Staging: 3 deployments" in page
    assert 'id="archive-instead"' in page
    assert client.post(f"/admin/clusters/environment/{cast.staging.pk}/delete/", {"post": "yes"}).status_code == 200
    selected = {"action": "delete_selected", "_selected_action": [cast.staging.pk, cast.prod.pk], "index": 0}
    listed = client.post("/admin/clusters/environment/", selected).content.decode()
    assert "Staging: 3 deployments" in listed
    assert "Archive them instead" in listed
    response = client.post(
        "/admin/clusters/environment/", {"action": "archive", "_selected_action": cast.staging.pk, "index": 0}
    )
    assert response.status_code == 302
    cast.staging.refresh_from_db()
    assert cast.staging.archived_at is not None
    assert Deployment.objects.filter(environment=cast.staging).count() == 3


def test_it_still_deletes_an_environment_without_history(cast):
    spare = Environment.objects.create(slug="spare", name="Spare", position=9, cluster=cast.cluster, namespace="spare")
    client = client_for(cast.admin)
    assert "Are you sure" in client.get(f"/admin/clusters/environment/{spare.pk}/delete/").content.decode()
    assert client.post(f"/admin/clusters/environment/{spare.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Environment.objects.filter(slug="spare").exists()
