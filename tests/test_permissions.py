"""Who may do what, through the real views: viewer, deployer, approver, admin and anonymous.

The cast (tests/factories.py): erin is a viewer (no groups), alice deploys to dev and staging,
bob approves, dave deploys to prod and approves, admin is a superuser (and so holds the release
admin permission). `staff` below is staff and nothing else: admin-site access, no deploying.
A refused action answers 403 with the reason in the body; an anonymous request is sent to the
login page.
"""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import get_resolver
from django.utils import timezone

from releases import states
from releases.models import Build, Deployment
from tests.factories import (
    assert_still_pending,
    client_for,
    make_deployment,
    make_release,
    make_user,
    pending_in_staging,
    release_ready_for_staging,
    succeed_in,
)
from tests.support import permissions

# Anonymous ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/", "/services/storefront/", "/releases/1/", "/deployments/1/", "/approvals/", "/history/?state=failed"],
)
def test_it_sends_anonymous_page_requests_to_the_login_page(cast, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert Client().get(response["Location"]).status_code == 200


def test_it_keeps_the_full_path_in_next(cast):
    response = Client().get("/history/?state=failed")
    assert response["Location"] == "/accounts/login/?next=/history/%3Fstate%3Dfailed"


@pytest.mark.parametrize("url", ["/releases/1/deploy/", "/deployments/1/decide/", "/deployments/1/cancel/"])
def test_it_sends_anonymous_actions_to_the_login_page_and_changes_nothing(cast, url):
    deployment = pending_in_staging(cast)
    url = url.replace("/1/", f"/{deployment.release_id if 'releases' in url else deployment.pk}/")
    response = Client().post(url, {"environment": "dev", "decision": "approve"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert_still_pending(deployment)


def test_it_sends_anonymous_rollbacks_to_the_login_page(cast):
    response = Client().post("/services/storefront/environments/dev/rollback/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_it_exempts_only_health_checks_hooks_and_login_from_logging_in():
    """Every view that skips the login check is listed here; a new one must be added on purpose."""
    exempt = set()

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif getattr(pattern.callback, "login_required", True) is False:
                exempt.add(prefix + str(pattern.pattern))

    walk(get_resolver().url_patterns)
    # /metrics checks its own bearer token; hooks check their signatures; the login page needs its
    # icon; the API answers 401 itself (tests/api/test_permissions.py), except its docs page.
    allowed = {
        "healthz",
        "readyz",
        "metrics",
        "accounts/login/",
        "admin/login/",
        "oidc/authenticate/",
        "oidc/callback/",
        "favicon.ico",
    }
    assert {"healthz", "readyz", "accounts/login/"} <= exempt
    assert "api/docs/" not in exempt
    assert {path for path in exempt if not path.startswith(("hooks/", "api/"))} <= allowed, exempt


def test_it_offers_no_password_reset_since_no_mail_is_configured(cast):
    response = Client().post("/accounts/password_reset/", {"email": "alice@example.com"})
    assert response.status_code == 404


# Viewing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["erin", "alice", "bob", "dave", "admin"])
def test_it_lets_any_logged_in_user_view_every_page(cast, who):
    deployment = pending_in_staging(cast)
    client = client_for(getattr(cast, who))
    for url in [
        "/",
        "/services/storefront/",
        f"/releases/{deployment.release_id}/",
        f"/deployments/{deployment.pk}/",
        "/approvals/",
        "/history/",
    ]:
        assert client.get(url).status_code == 200, url


# Request ------------------------------------------------------------------------------------------


def post_as(user, url, form=None, *, refused_with=None):
    """POST `form` to `url` as `user`: refused (403) with the reason on the page, or, without
    one, done (a redirect)."""
    response = client_for(user).post(url, form or {})
    assert response.status_code == (403 if refused_with else 302)
    if refused_with:
        assert refused_with in response.content.decode()


def refuse(reason, *people):
    """Rows of a permission matrix: each of `people` is refused with `reason`."""
    return [(who, reason) for who in people]


def allow(*people):
    return refuse(None, *people)


@pytest.mark.parametrize(
    ("who", "reason"), refuse(permissions.NOT_A_DEPLOYER, "erin", "bob", "dave") + allow("alice", "admin")
)
def test_it_lets_only_deployers_request(cast, who, reason):
    release = release_ready_for_staging(cast)
    post_as(getattr(cast, who), f"/releases/{release.pk}/deploy/", {"environment": "staging"}, refused_with=reason)
    permissions.assert_requested(cast, who, done=not reason)


def test_it_lets_release_managers_deploy_to_prod_but_not_developers(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.staging)
    url, form = f"/releases/{release.pk}/deploy/", {"environment": "prod"}
    post_as(cast.alice, url, form, refused_with="You are not a deployer for Prod (release-managers).")
    post_as(cast.dave, url, form)


# Approve ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "reason"), refuse(permissions.NOT_AN_APPROVER, "erin", "alice", "admin") + allow("bob", "dave")
)
def test_it_lets_only_approvers_approve(cast, who, reason):
    deployment = pending_in_staging(cast)
    post_as(getattr(cast, who), f"/deployments/{deployment.pk}/decide/", {"decision": "approve"}, refused_with=reason)
    permissions.assert_approved(deployment, done=not reason)


def test_it_refuses_the_requester_approving_their_own_deployment(cast):
    cast.alice.groups.add(cast.approvers)
    url = f"/deployments/{pending_in_staging(cast).pk}/decide/"
    post_as(cast.alice, url, {"decision": "approve"}, refused_with=permissions.SELF_APPROVAL)


def test_it_lets_the_requester_reject_their_own_deployment_when_an_approver(cast):
    cast.alice.groups.add(cast.approvers)
    deployment = pending_in_staging(cast)
    response = client_for(cast.alice).post(
        f"/deployments/{deployment.pk}/decide/", {"decision": "reject", "comment": "wrong build"}
    )
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.state == states.REJECTED


def test_it_shows_why_the_approve_button_is_disabled(cast):
    deployment = pending_in_staging(cast)
    body = client_for(cast.erin).get(f"/deployments/{deployment.pk}/").content.decode()
    approve = body.split('value="approve"')[1].split(">")[0]
    assert "disabled" in approve
    assert "You are not an approver for Staging (approvers)." in body


# Cancel -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "reason"), refuse(permissions.MAY_NOT_CANCEL, "erin", "bob", "dave") + allow("alice", "admin")
)
def test_it_lets_only_the_requester_deployers_and_admins_cancel(cast, who, reason):
    deployment = pending_in_staging(cast)
    post_as(getattr(cast, who), f"/deployments/{deployment.pk}/cancel/", refused_with=reason)
    permissions.assert_cancelled(deployment, done=not reason)


def test_it_lets_the_requester_cancel_after_leaving_the_deployer_group(cast):
    deployment = pending_in_staging(cast)
    cast.alice.groups.clear()
    assert client_for(cast.alice).post(f"/deployments/{deployment.pk}/cancel/").status_code == 302


# Override -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["erin", "alice", "bob", "dave"])
def test_it_refuses_an_override_from_anyone_but_an_admin(cast, frozen_dev, who):
    release = make_release(cast.service)
    response = client_for(getattr(cast, who)).post(
        f"/releases/{release.pk}/deploy/", {"environment": "dev", "override_reason": "I really need to"}
    )
    assert response.status_code == 403
    assert "Dev is frozen until" in response.content.decode()
    assert "(group buy). An admin can override with a reason." in response.content.decode()
    assert not Deployment.objects.exists()


def test_it_refuses_an_admin_override_without_a_reason(cast, frozen_dev):
    release = make_release(cast.service)
    form = {"environment": "dev", "override_reason": "   "}
    post_as(cast.admin, f"/releases/{release.pk}/deploy/", form, refused_with="Dev is frozen until")


def test_it_lets_an_admin_override_with_a_reason(cast, frozen_dev):
    release = make_release(cast.service)
    response = client_for(cast.admin).post(
        f"/releases/{release.pk}/deploy/", {"environment": "dev", "override_reason": "checkout is down"}
    )
    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert deployment.override_reason == "checkout is down"
    assert deployment.events.get(kind="override").actor == cast.admin


def test_it_offers_the_override_form_to_admins_only(cast, frozen_dev):
    release = make_release(cast.service)
    assert "Override and deploy" in client_for(cast.admin).get(f"/releases/{release.pk}/").content.decode()
    assert "Override and deploy" not in client_for(cast.alice).get(f"/releases/{release.pk}/").content.decode()


def test_it_does_not_let_an_admin_override_a_non_overridable_rule(cast, frozen_dev):
    release = make_release(cast.service)
    form = {"environment": "staging", "override_reason": "skip promotion"}
    post_as(cast.admin, f"/releases/{release.pk}/deploy/", form, refused_with="has not succeeded in Dev yet")


# Admin pages --------------------------------------------------------------------------------------


ADMIN_PAGES = [
    "/admin/",
    "/admin/clusters/cluster/",
    "/admin/clusters/cluster/add/",
    "/admin/clusters/environment/",
    "/admin/clusters/freezewindow/",
    "/admin/clusters/lock/",
    "/admin/releases/service/",
    "/admin/auditlog/logentry/",
]


@pytest.mark.parametrize("who", ["erin", "alice", "bob", "dave"])
def test_it_keeps_non_staff_out_of_the_admin(cast, who):
    client = client_for(getattr(cast, who))
    for url in ADMIN_PAGES:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url
    login_page = client.get("/admin/login/?next=/admin/").content.decode()
    assert f"You are authenticated as {who}, but are not authorized to access this page" in login_page


def test_it_refuses_non_staff_changing_a_cluster_through_the_admin(cast):
    response = client_for(cast.alice).post(
        f"/admin/clusters/cluster/{cast.cluster.pk}/change/", {"name": "hijacked", "api_url": "https://evil.example"}
    )
    assert response.status_code == 302
    cast.cluster.refresh_from_db()
    assert cast.cluster.name == "main"


def test_it_lets_admins_into_every_admin_page(cast):
    client = client_for(cast.admin)
    for url in ADMIN_PAGES:
        assert client.get(url).status_code == 200, url


def test_it_sends_anonymous_admin_requests_to_the_login_page(cast):
    response = Client().get("/admin/clusters/cluster/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/clusters/cluster/"


# Staff is admin-site access only; release admin is a permission ---------------------------------


@pytest.fixture
def staff(cast):
    """Staff with no groups and no permissions: may open the admin site, nothing more."""
    return make_user("sam", is_staff=True)


@pytest.fixture
def release_admin(cast):
    """No groups, only the release admin permission."""
    user = make_user("rita")
    user.user_permissions.add(Permission.objects.get(codename="release_admin", content_type__app_label="clusters"))
    return user


def succeeded_in_prod(cast):
    """Two releases ran in prod, one after the other: there is something to roll back to."""
    first, second = make_release(cast.service), make_release(cast.service)
    make_deployment(first, cast.prod, state=states.SUCCEEDED, finished_at=timezone.now() - timedelta(hours=1))
    make_deployment(second, cast.prod, state=states.SUCCEEDED, finished_at=timezone.now(), previous_release=first)


def test_it_refuses_staff_without_groups_a_deployment(cast, staff):
    release = release_ready_for_staging(cast)
    response = client_for(staff).post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    assert response.status_code == 403
    assert "You are not a deployer for Staging (developers)." in response.content.decode()
    assert not Deployment.objects.filter(environment=cast.staging).exists()


def test_it_refuses_staff_without_groups_a_rollback_of_prod(cast, staff):
    succeeded_in_prod(cast)
    response = client_for(staff).post("/services/storefront/environments/prod/rollback/", {"reason": "why not"})
    assert response.status_code == 403
    assert "You are not a deployer for Prod." in response.content.decode()
    assert not Deployment.objects.filter(kind=Deployment.ROLLBACK).exists()


def test_it_refuses_staff_an_override_of_a_freeze(cast, staff, frozen_dev):
    staff.groups.add(cast.developers)
    release = make_release(cast.service)
    response = client_for(staff).post(
        f"/releases/{release.pk}/deploy/", {"environment": "dev", "override_reason": "checkout is down"}
    )
    assert response.status_code == 403
    assert "Dev is frozen until" in response.content.decode()
    assert not Deployment.objects.exists()


def test_it_offers_staff_no_override_form(cast, staff, frozen_dev):
    staff.groups.add(cast.developers)
    release = make_release(cast.service)
    assert "Override and deploy" not in client_for(staff).get(f"/releases/{release.pk}/").content.decode()


def test_it_refuses_staff_without_groups_a_build(cast, staff):
    cast.service.jenkins_build_job = "storefront-build"
    cast.service.save()
    response = client_for(staff).post("/services/storefront/build/", {"ref": "main"})
    assert response.status_code == 403
    assert "Only deployers of an environment can start builds." in response.content.decode()
    assert not Build.objects.exists()


def test_it_lets_staff_into_the_admin_site(cast, staff):
    assert client_for(staff).get("/admin/").status_code == 200


def test_it_lets_a_release_admin_deploy_anywhere_and_says_so_in_the_timeline(cast, release_admin):
    release = release_ready_for_staging(cast)
    response = client_for(release_admin).post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    assert response.status_code == 302
    deployment = Deployment.objects.get(environment=cast.staging)
    event = deployment.events.get(kind="release_admin")
    assert event.actor == release_admin
    assert "rita acted as release admin: not in the deployer group developers of Staging." == event.message


def test_it_lets_a_release_admin_roll_back_prod(cast, release_admin):
    succeeded_in_prod(cast)
    response = client_for(release_admin).post("/services/storefront/environments/prod/rollback/", {"reason": "slow"})
    assert response.status_code == 302
    rollback = Deployment.objects.get(kind=Deployment.ROLLBACK)
    assert rollback.events.filter(kind="release_admin", actor=release_admin).exists()


def test_it_lets_a_release_admin_override_a_freeze_with_a_reason(cast, release_admin, frozen_dev):
    release = make_release(cast.service)
    response = client_for(release_admin).post(
        f"/releases/{release.pk}/deploy/", {"environment": "dev", "override_reason": "checkout is down"}
    )
    assert response.status_code == 302
    assert Deployment.objects.get().events.get(kind="override").actor == release_admin


def test_it_records_no_release_admin_event_for_a_member_of_the_deployer_group(cast, release_admin):
    release_admin.groups.add(cast.developers)
    release = release_ready_for_staging(cast)
    client_for(release_admin).post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    assert not Deployment.objects.get(environment=cast.staging).events.filter(kind="release_admin").exists()


def test_it_never_lets_a_release_admin_approve_without_the_approver_group(cast, release_admin):
    deployment = pending_in_staging(cast)
    response = client_for(release_admin).post(f"/deployments/{deployment.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 403
    assert "You are not an approver for Staging (approvers)." in response.content.decode()


def test_it_audits_granting_the_release_admin_permission(cast, staff):
    permission = Permission.objects.get(codename="release_admin", content_type__app_label="clusters")
    client = client_for(cast.admin)
    response = client.post(
        f"/admin/auth/user/{staff.pk}/change/",
        {
            "username": staff.username,
            "is_active": "on",
            "is_staff": "on",
            "user_permissions": [permission.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entries = [e for e in LogEntry.objects.get_for_object(staff) if "user_permissions" in e.changes_dict]
    assert len(entries) == 1
    assert entries[0].actor == cast.admin
    assert "Release admin" in str(entries[0].changes_dict["user_permissions"])
