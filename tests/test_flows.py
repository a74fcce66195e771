"""Requesting, approving, rejecting and cancelling deployments, with each rule's reason."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import FreezeWindow, Lock
from releases import flows, rules, states
from releases.models import Approval
from tests.factories import make_deployment, make_release


def succeed_in(release, environment):
    return make_deployment(release, environment, state=states.SUCCEEDED, finished_at=timezone.now())


def test_it_requests_a_dev_deployment_without_approvals(cast):
    release = make_release(cast.service)
    deployment = flows.request_deployment(cast.alice, release, cast.dev)
    assert deployment.state == states.APPROVED
    assert [e.kind for e in deployment.events.all()] == ["requested", "state"]


def test_it_refuses_a_request_from_someone_not_a_deployer(cast):
    with pytest.raises(rules.Refused, match="You are not a deployer for Dev"):
        flows.request_deployment(cast.erin, make_release(cast.service), cast.dev)


def test_it_refuses_staging_before_dev_succeeded(cast):
    release = make_release(cast.service)
    with pytest.raises(rules.Refused, match="has not succeeded in Dev yet: deploy it there first"):
        flows.request_deployment(cast.alice, release, cast.staging)


def test_it_lets_promotion_through_after_success_in_the_previous_environment(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    deployment = flows.request_deployment(cast.alice, release, cast.staging)
    assert deployment.state == states.PENDING_APPROVAL


def test_it_refuses_self_approval(cast):
    cast.alice.groups.add(cast.approvers)
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    deployment = flows.request_deployment(cast.alice, release, cast.staging)
    with pytest.raises(rules.Refused, match="You requested this deployment; Staging needs someone else"):
        flows.decide(cast.alice, deployment, Approval.APPROVE)


def test_it_allows_self_approval_where_the_environment_allows_it(cast):
    cast.alice.groups.add(cast.approvers)
    cast.staging.allow_self_approval = True
    cast.staging.save()
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    deployment = flows.request_deployment(cast.alice, release, cast.staging)
    flows.decide(cast.alice, deployment, Approval.APPROVE)
    deployment.refresh_from_db()
    assert deployment.state == states.APPROVED


def test_it_needs_two_distinct_approvals_in_prod(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.staging)
    deployment = flows.request_deployment(cast.dave, release, cast.prod)
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    deployment.refresh_from_db()
    assert deployment.state == states.PENDING_APPROVAL
    with pytest.raises(rules.Refused, match="already decided"):
        flows.decide(cast.bob, deployment, Approval.APPROVE)
    flows.decide(cast.carol, deployment, Approval.APPROVE)
    deployment.refresh_from_db()
    assert deployment.state == states.APPROVED


def test_it_rejects_on_one_rejection(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.staging)
    deployment = flows.request_deployment(cast.dave, release, cast.prod)
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    flows.decide(cast.carol, deployment, Approval.REJECT, "Error rate is up in staging")
    deployment.refresh_from_db()
    assert deployment.state == states.REJECTED
    assert deployment.reason == "Error rate is up in staging"


def test_it_refuses_approval_from_outside_the_approver_group(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    deployment = flows.request_deployment(cast.alice, release, cast.staging)
    with pytest.raises(rules.Refused, match="You are not an approver for Staging"):
        flows.decide(cast.erin, deployment, Approval.APPROVE)


def test_it_refuses_during_a_freeze_with_the_window_in_the_reason(cast):
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=cast.dev,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=2),
        reason="group-buy event",
    )
    with pytest.raises(rules.Refused, match=r"Dev is frozen until .* \(group-buy event\)\. An admin can override"):
        flows.request_deployment(cast.alice, make_release(cast.service), cast.dev)


def test_it_lets_an_admin_override_a_freeze_with_a_reason_and_records_it(cast):
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=cast.dev, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=2), reason="sale"
    )
    deployment = flows.request_deployment(
        cast.admin, make_release(cast.service), cast.dev, override_reason="hotfix for checkout"
    )
    assert deployment.override_reason == "hotfix for checkout"
    override = deployment.events.get(kind="override")
    assert "hotfix for checkout" in override.message
    assert override.actor == cast.admin


def test_it_ignores_an_override_reason_from_a_non_admin(cast):
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=cast.dev, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=2), reason="sale"
    )
    with pytest.raises(rules.Refused, match="frozen"):
        flows.request_deployment(cast.alice, make_release(cast.service), cast.dev, override_reason="please")


def test_it_refuses_while_the_environment_is_locked(cast):
    Lock.objects.create(environment=cast.dev, reason="database migration", locked_by=cast.admin)
    with pytest.raises(rules.Refused, match="Dev is locked by admin: database migration"):
        flows.request_deployment(cast.alice, make_release(cast.service), cast.dev)


def test_it_refuses_a_second_active_deployment_of_the_same_service(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    first = flows.request_deployment(cast.alice, release, cast.staging)
    with pytest.raises(rules.Refused, match=f"already has deployment #{first.pk} pending approval in Staging"):
        flows.request_deployment(cast.alice, make_release(cast.service), cast.dev.__class__.objects.get(slug="staging"))


def test_it_lets_the_requester_cancel(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    deployment = flows.request_deployment(cast.alice, release, cast.staging)
    flows.cancel(cast.alice, deployment, "wrong build")
    deployment.refresh_from_db()
    assert deployment.state == states.CANCELLED


def test_it_refuses_cancel_by_a_viewer(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    deployment = flows.request_deployment(cast.alice, release, cast.staging)
    with pytest.raises(rules.Refused, match="Only the requester or a deployer"):
        flows.cancel(cast.erin, deployment)


def test_it_rolls_back_to_the_release_before_the_current_success(cast):
    old, current = make_release(cast.service), make_release(cast.service)
    succeed_in(old, cast.dev)
    running = make_deployment(
        current, cast.dev, state=states.SUCCEEDED, previous_release=old, finished_at=timezone.now()
    )
    assert flows.rollback_target(running, running) == old


def test_it_rolls_back_to_the_last_success_when_the_newest_deployment_broke_the_cluster(cast):
    old, good, broken = make_release(cast.service), make_release(cast.service), make_release(cast.service)
    running = make_deployment(good, cast.dev, state=states.SUCCEEDED, previous_release=old, finished_at=timezone.now())
    failed = make_deployment(broken, cast.dev, state=states.FAILED, previous_release=good, started_at=timezone.now())
    assert flows.rollback_target(failed, running) == good
    deployment = flows.rollback(cast.alice, cast.service, cast.dev)
    assert deployment.kind == deployment.ROLLBACK
    assert deployment.release == good
    assert deployment.previous_release == broken
