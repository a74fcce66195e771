"""What the pages offer and say (issue: a release manager's day), through the HTTP client."""

import re

from auditlog.models import LogEntry
from django.test import Client
from django.utils import timezone

from clusters.models import Environment, Workload
from releases import flows, preflight, states
from releases.models import Approval, Deployment
from tests.factories import client_for, make_deployment, make_environment, make_release, make_service, succeed_in


def ready_for_prod(cast, version="1.1.0"):
    release = make_release(cast.service, version=version)
    succeed_in(release, cast.staging)
    return release


def two_releases_in_prod(cast):
    old, new = make_release(cast.service, version="1.0.0"), make_release(cast.service, version="1.1.0")
    succeed_in(old, cast.prod)
    current = make_deployment(new, cast.prod, state=states.SUCCEEDED, previous_release=old, finished_at=timezone.now())
    return old, new, current


# Waiting for you ---------------------------------------------------------------------------------


def test_it_leaves_my_own_requests_out_of_what_waits_for_me(cast):
    deployment = flows.request_deployment(cast.dave, ready_for_prod(cast), cast.prod)
    dave, carol = client_for(cast.dave), client_for(cast.carol)
    assert f"#{deployment.pk}" not in dave.get("/approvals/").content.decode()
    assert dave.get("/approvals/waiting/").json() == {"count": 0, "ids": []}
    assert "Nothing waits for your approval." in dave.get("/").content.decode()
    assert f"#{deployment.pk}" in carol.get("/approvals/").content.decode()
    assert carol.get("/approvals/waiting/").json() == {"count": 1, "ids": [deployment.pk]}


def test_it_lists_my_own_request_where_the_environment_allows_self_approval(cast):
    Environment.objects.filter(pk=cast.prod.pk).update(allow_self_approval=True)
    deployment = flows.request_deployment(cast.dave, ready_for_prod(cast), cast.prod)
    assert client_for(cast.dave).get("/approvals/waiting/").json()["ids"] == [deployment.pk]


def test_it_shows_approvals_so_far_instead_of_an_empty_availability_column(cast):
    deployment = flows.request_deployment(cast.dave, ready_for_prod(cast), cast.prod)
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    body = client_for(cast.carol).get("/approvals/").content.decode()
    assert "<th>Availability</th>" not in body
    assert "<td>1 of 2</td>" in body


def test_it_says_no_approval_is_needed_where_none_is(cast):
    deployment = flows.request_deployment(cast.alice, make_release(cast.service), cast.dev)
    body = client_for(cast.erin).get(f"/deployments/{deployment.pk}/").content.decode()
    assert "No approval needed in Dev." in body
    assert "0 of 0" not in body


# What a pending deployment shows --------------------------------------------------------------------


def test_it_shows_what_runs_now_before_a_deployment_starts(cast):
    _, new, _ = two_releases_in_prod(cast)
    Workload.objects.create(
        environment=cast.prod,
        name="storefront",
        image=new.image,
        replicas=4,
        available=4,
        revision="7",
        observed_at=timezone.now(),
    )
    pending = make_deployment(make_release(cast.service, version="1.2.0"), cast.prod, previous_release=new)
    body = client_for(cast.erin).get(f"/deployments/{pending.pk}/").content.decode()
    assert "Runs now in Prod:" in body
    assert '<span class="mono">1.1.0</span>' in body
    assert "4 of 4 available · revision 7" in body
    assert "now 7" in body
    assert "? → ?" not in body


# Rollback: only where something changed; production asks for a reason -------------------------------


def test_it_offers_no_rollback_where_nothing_changed(cast):
    two_releases_in_prod(cast)
    rejected = make_deployment(make_release(cast.service), cast.prod, state=states.REJECTED)
    body = client_for(cast.dave).get(f"/deployments/{rejected.pk}/").content.decode()
    assert "Roll back to" not in body
    assert "nothing changed in the cluster" in body
    cancelled = make_deployment(make_release(cast.service), cast.prod, state=states.CANCELLED)
    body = client_for(cast.dave).get(f"/deployments/{cancelled.pk}/").content.decode()
    assert "Roll back to" not in body
    assert "Cancelled before it started" in body


def test_it_asks_for_a_confirmation_and_a_reason_before_a_production_rollback(cast):
    two_releases_in_prod(cast)
    client = client_for(cast.dave)
    service_page = client.get("/services/storefront/").content.decode()
    assert 'href="/services/storefront/environments/prod/rollback/">Roll back to 1.0.0…</a>' in service_page
    confirm = client.get("/services/storefront/environments/prod/rollback/").content.decode()
    assert "Roll back Storefront in Prod?" in confirm
    assert 'name="reason"' in confirm
    assert "required" in confirm
    refused = client.post("/services/storefront/environments/prod/rollback/", {"reason": "  "})
    assert refused.status_code == 400
    assert "Prod is production: say why you roll back" in refused.content.decode()
    assert not Deployment.objects.filter(kind=Deployment.ROLLBACK).exists()
    done = client.post("/services/storefront/environments/prod/rollback/", {"reason": "1.1.0 breaks checkout"})
    rollback = Deployment.objects.get(kind=Deployment.ROLLBACK)
    assert done["Location"] == f"/deployments/{rollback.pk}/"
    assert rollback.reason == "1.1.0 breaks checkout"
    assert "Reason: 1.1.0 breaks checkout" in rollback.events.order_by("seq").first().message
    page = client.get(f"/deployments/{rollback.pk}/").content.decode()
    assert '<span id="state-target"> to 1.0.0</span>' in page


def test_it_shows_a_disabled_rollback_with_the_reason_to_someone_who_may_not(cast):
    two_releases_in_prod(cast)
    body = client_for(cast.alice).get("/services/storefront/").content.decode()
    assert "Roll back to 1.0.0</button>" in body
    assert "disabled" in body.split("Roll back to 1.0.0</button>")[0].rsplit("<button", 1)[1]
    assert "You are not a deployer for Prod." in body


# Replay's data ---------------------------------------------------------------------------------------


def test_it_serves_a_deployments_events_for_its_replay(cast):
    deployment = flows.request_deployment(cast.alice, make_release(cast.service), cast.dev)
    data = client_for(cast.erin).get(f"/deployments/{deployment.pk}/events/").json()
    assert [e["seq"] for e in data["events"]] == list(range(1, deployment.events.count() + 1))
    assert data["events"][0]["message"].startswith("alice requested Storefront")
    assert Client().get(f"/deployments/{deployment.pk}/events/").status_code == 302


# Environments own their history --------------------------------------------------------------------


def test_it_refuses_to_delete_an_environment_with_deployments_in_the_admin(cast):
    make_deployment(make_release(cast.service), cast.staging, state=states.SUCCEEDED)
    client = client_for(cast.admin)
    page = client.get(f"/admin/clusters/environment/{cast.staging.pk}/delete/").content.decode()
    assert "Staging keeps the history of what was deployed there, so it cannot be deleted" in page
    client.post(f"/admin/clusters/environment/{cast.staging.pk}/delete/", {"post": "yes"})
    assert Environment.objects.filter(pk=cast.staging.pk).exists()
    assert Deployment.objects.filter(environment=cast.staging).count() == 1


def test_it_archives_an_environment_out_of_the_dashboard_keeping_its_history(cast):
    deployment = make_deployment(make_release(cast.service), cast.staging, state=states.SUCCEEDED)
    response = client_for(cast.admin).post(
        "/admin/clusters/environment/", {"action": "archive", "_selected_action": [cast.staging.pk]}
    )
    assert response.status_code == 302
    cast.staging.refresh_from_db()
    assert cast.staging.archived_at is not None
    erin = client_for(cast.erin)
    assert 'data-environment="staging"' not in erin.get("/").content.decode()
    assert erin.get(f"/deployments/{deployment.pk}/").status_code == 200
    assert f"#{deployment.pk}" in erin.get("/history/?environment=staging").content.decode()
    release = make_release(cast.service)
    refused = client_for(cast.alice).post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    assert refused.status_code == 400
    assert not Deployment.objects.filter(release=release).exists()


# The audit trail reads like a sentence -------------------------------------------------------------


def test_it_shows_audit_entries_with_names_not_ids_and_without_noise(cast):
    client = client_for(cast.admin)
    client.post(
        "/admin/clusters/environment/add/",
        {
            "slug": "qa",
            "name": "QA",
            "position": 9,
            "cluster": cast.cluster.pk,
            "namespace": "qa",
            "required_approvals": 1,
            "approver_group": cast.approvers.pk,
            "deploy_via": "direct",
            "progress_deadline_seconds": 600,
            "cancel_action": "undo",
            "grafana_variables": "{}",
            "freeze_windows-TOTAL_FORMS": "0",
            "freeze_windows-INITIAL_FORMS": "0",
            "freeze_windows-MIN_NUM_FORMS": "0",
            "freeze_windows-MAX_NUM_FORMS": "1000",
        },
    )
    qa = Environment.objects.get(slug="qa")
    entry = LogEntry.objects.get_for_object(qa).get()
    assert "deployments" not in entry.changes_dict
    assert "id" not in entry.changes_dict
    page = client.get(f"/admin/auditlog/logentry/{entry.pk}/change/").content.decode()
    assert "approvers" in page
    assert "None" not in page.split("Changes")[-1]
    assert "releases.Deployment.None" not in page


def test_it_names_the_admin_after_the_portal(cast):
    body = client_for(cast.admin).get("/admin/").content.decode()
    assert "Pampam administration" in body
    assert "Django administration" not in body


# Small things -----------------------------------------------------------------------------------


def test_it_shows_its_own_404_page_even_with_debug_on(cast, settings):
    settings.DEBUG = True
    client = client_for(cast.erin)
    for url in ["/no/such/page/", "/deployments/999999/"]:
        response = client.get(url)
        assert response.status_code == 404
        assert b"There is nothing at this address" in response.content
        assert b"technical_404" not in response.content
        assert b"Django tried these URL patterns" not in response.content


def test_it_has_a_favicon_for_every_browser(cast):
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"
    assert '<link rel="icon" href="/static/favicon.svg"' in client_for(cast.erin).get("/").content.decode()


def test_it_reads_prod_once_in_the_dashboard_header(cast):
    header = client_for(cast.erin).get("/").content.decode().split("</thead>")[0]
    assert ">Prod</a>" in header
    assert "production</span>" not in header  # the name says it already
    make_environment(slug="live", name="Live", position=9, cluster=cast.cluster, is_production=True)
    header = client_for(cast.erin).get("/").content.decode().split("</thead>")[0]
    assert '>Live</a> <span class="badge tone-bad">production</span>' in header


def test_it_lists_services_and_releases_from_the_navigation(cast):
    other = make_service(slug="checkout", name="Checkout")
    old, new, _ = two_releases_in_prod(cast)
    make_release(other, version="9.9.9")
    client = client_for(cast.erin)
    dashboard = client.get("/").content.decode()
    assert 'href="/services/"' in dashboard
    assert 'href="/releases/"' in dashboard
    services = client.get("/services/").content.decode()
    assert "Checkout" in services
    assert "9.9.9" in services
    assert "1.1.0" in services
    releases = client.get("/releases/?service=storefront").content.decode()
    assert "1.1.0" in releases
    assert "1.0.0" in releases
    assert "9.9.9" not in releases
    assert client.get("/releases/?service=nope").status_code == 400


# A first deployment to a new environment ----------------------------------------------------------


def test_it_says_exactly_what_to_create_when_the_cluster_has_no_deployment(cast):
    Workload.objects.create(environment=cast.staging, name="storefront", image="x:1", exists=True)
    Workload.objects.create(environment=cast.prod, name="storefront", exists=False)
    reason = preflight.what_to_create(cast.service, cast.prod)
    assert "Prod has no Kubernetes Deployment “storefront” in namespace prod of cluster main" in reason
    assert "with a container named “storefront” in prod first" in reason
    assert "from Staging's: kubectl -n staging get deployment storefront -o yaml" in reason
    release = ready_for_prod(cast)
    body = client_for(cast.dave).get(f"/releases/{release.pk}/").content.decode()
    assert "Prod has no Kubernetes Deployment" in body


def test_it_draws_a_repeated_rollout_status_quietly(cast):
    deployment = make_deployment(make_release(cast.service), cast.dev, state=states.ROLLING_OUT)
    for kind, message in [
        ("progress", "1 of 2 new replicas updated."),
        ("progress", "1 old replica pending termination."),
        ("progress", "1 old replica pending termination."),
        ("progress", "1 old replica pending termination."),
        ("note", "1 old replica pending termination."),
    ]:
        deployment.log(kind, message)
    body = client_for(cast.erin).get(f"/deployments/{deployment.pk}/").content.decode()
    timeline = body.split('id="timeline">')[1].split("</ol>")[0]
    classes = re.findall(r'<li class="([^"]*)" data-seq', timeline)
    assert classes == ["kind-progress", "kind-progress", "kind-progress repeat", "kind-progress repeat", "kind-note"]
