"""Requesting, approving, rejecting and cancelling deployments, with each rule's reason."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import FreezeWindow, Lock
from releases import flows, rules, states
from releases.models import Approval, Deployment
from tests.factories import make_deployment, make_release, pending_in_prod, pending_in_staging, succeed_in


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


def decided(user, deployment, decision, comment=""):
    """The deployment's state, read back, after `user`'s decision on it."""
    flows.decide(user, deployment, decision, comment)
    deployment.refresh_from_db()
    return deployment.state


def test_it_lets_promotion_through_after_success_in_the_previous_environment(cast):
    deployment = pending_in_staging(cast)
    assert deployment.state == states.PENDING_APPROVAL


def test_it_refuses_self_approval(cast):
    cast.alice.groups.add(cast.approvers)
    deployment = pending_in_staging(cast)
    with pytest.raises(rules.Refused, match="You requested this deployment; Staging needs someone else"):
        flows.decide(cast.alice, deployment, Approval.APPROVE)


def test_it_allows_self_approval_where_the_environment_allows_it(cast):
    cast.alice.groups.add(cast.approvers)
    cast.staging.allow_self_approval = True
    cast.staging.save()
    assert decided(cast.alice, pending_in_staging(cast), Approval.APPROVE) == states.APPROVED


def test_it_needs_two_distinct_approvals_in_prod(cast):
    deployment = pending_in_prod(cast)
    assert decided(cast.bob, deployment, Approval.APPROVE) == states.PENDING_APPROVAL
    with pytest.raises(rules.Refused, match="already decided"):
        flows.decide(cast.bob, deployment, Approval.APPROVE)
    assert decided(cast.carol, deployment, Approval.APPROVE) == states.APPROVED


def test_it_rejects_on_one_rejection(cast):
    deployment = pending_in_prod(cast)
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    assert decided(cast.carol, deployment, Approval.REJECT, "Error rate is up in staging") == states.REJECTED
    assert deployment.reason == "Error rate is up in staging"


def test_it_refuses_approval_from_outside_the_approver_group(cast):
    deployment = pending_in_staging(cast)
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
    deployment = pending_in_staging(cast)
    flows.cancel(cast.alice, deployment, "wrong build")
    deployment.refresh_from_db()
    assert deployment.state == states.CANCELLED


def test_it_refuses_cancel_by_a_viewer(cast):
    deployment = pending_in_staging(cast)
    with pytest.raises(rules.Refused, match="Only the requester or a deployer"):
        flows.cancel(cast.erin, deployment)


# -- rollbacks: "last good" is one definition --------------------------------------------------


def ran(release, environment, state=states.SUCCEEDED, **kwargs):
    """A deployment that reached the cluster and ended in `state`."""
    now = timezone.now()
    kwargs.setdefault("started_at", now)
    kwargs.setdefault("finished_at", now)
    return make_deployment(release, environment, state=state, **kwargs)


def test_it_rolls_back_to_the_release_before_the_current_success(cast):
    old, current = make_release(cast.service), make_release(cast.service)
    ran(old, cast.dev)
    running = ran(current, cast.dev, previous_release=old)
    plan = Deployment.objects.rollback_plan(cast.service, cast.dev)
    assert (plan.undoes, plan.target) == (running, old)
    assert flows.last_good(cast.service, cast.dev) == old


def test_it_rolls_back_to_the_last_good_release_when_the_newest_deployment_failed(cast):
    good, broken = make_release(cast.service), make_release(cast.service, version="1.4.0-crash")
    ran(good, cast.dev)
    failed = ran(broken, cast.dev, state=states.FAILED)
    deployment = flows.rollback(cast.alice, cast.service, cast.dev)
    assert deployment.kind == deployment.ROLLBACK
    assert (deployment.release, deployment.previous_release, deployment.rolls_back) == (good, broken, failed)
    assert deployment.state == states.APPROVED
    assert deployment.state_label == "Approved"
    failed.refresh_from_db()
    assert failed.state == states.FAILED  # failed stays final


def test_it_never_rolls_back_to_an_earlier_crashing_release(cast):
    good = make_release(cast.service, version="1.3.0")
    first_crash = make_release(cast.service, version="1.4.0-crash")
    second_crash = make_release(cast.service, version="1.5.0-crash")
    ran(good, cast.dev)
    ran(first_crash, cast.dev, state=states.FAILED)
    ran(good, cast.dev, kind="rollback")
    failed = ran(second_crash, cast.dev, state=states.FAILED)
    assert failed.last_good_before() == good


def test_it_never_restores_a_release_whose_last_deployment_there_failed(cast):
    older, flaky, newest = make_release(cast.service), make_release(cast.service), make_release(cast.service)
    ran(older, cast.dev)
    ran(flaky, cast.dev)
    ran(flaky, cast.dev, state=states.FAILED)  # it ran once, then failed when deployed again
    ran(newest, cast.dev)
    assert Deployment.objects.rollback_plan(cast.service, cast.dev).target == older


def never_started(release, environment):
    """A deployment that failed before it reached the cluster (a preflight refusal, Jenkins down)."""
    return make_deployment(release, environment, state=states.FAILED, finished_at=timezone.now(), started_at=None)


def test_a_failure_that_never_reached_the_cluster_says_nothing_about_its_release(cast):
    good, broken = make_release(cast.service), make_release(cast.service)
    ran(good, cast.dev)
    never_started(good, cast.dev)  # asked again while Jenkins was down: the release never ran
    failed = ran(broken, cast.dev, state=states.FAILED)
    assert failed.last_good_before() == good
    never_started(good, cast.dev)  # and once more after the failure, before anyone rolled back
    plan = Deployment.objects.rollback_plan(cast.service, cast.dev)
    assert (plan.undoes, plan.target) == (failed, good)


def test_it_never_rolls_back_a_rollback(cast):
    good, bad = make_release(cast.service), make_release(cast.service)
    ran(good, cast.dev)
    ran(bad, cast.dev, state=states.FAILED)
    ran(good, cast.dev, kind="rollback")
    with pytest.raises(rules.Refused, match="was a rollback to .*: deploy a newer release rather than roll back"):
        flows.rollback(cast.alice, cast.service, cast.dev)


def test_it_refuses_a_rollback_with_nothing_to_go_back_to(cast):
    ran(make_release(cast.service), cast.dev)
    with pytest.raises(rules.Refused, match="There is no earlier good release of Storefront to go back to"):
        flows.rollback(cast.alice, cast.service, cast.dev)
    with pytest.raises(rules.Refused, match="Nothing has been deployed to Staging yet"):
        flows.rollback(cast.alice, cast.service, cast.staging)


def test_it_asks_for_a_reason_to_roll_back_production(cast):
    old, current = make_release(cast.service), make_release(cast.service)
    ran(old, cast.prod)
    ran(current, cast.prod)
    with pytest.raises(rules.Refused, match="Prod is production: say why you are rolling back"):
        flows.rollback(cast.dave, cast.service, cast.prod)
    deployment = flows.rollback(cast.dave, cast.service, cast.prod, reason="Checkout errors since 14:02")
    assert deployment.reason == "Checkout errors since 14:02"
    assert "Reason: Checkout errors since 14:02" in deployment.events.get(kind="requested").message


def test_it_refuses_a_second_rollback_while_one_is_under_way_with_a_conflict(cast):
    old, current = make_release(cast.service), make_release(cast.service)
    ran(old, cast.dev)
    ran(current, cast.dev)
    flows.rollback(cast.alice, cast.service, cast.dev)
    with pytest.raises(rules.Refused, match="already has deployment #\\d+ approved in Dev") as refusal:
        flows.rollback(cast.alice, cast.service, cast.dev)
    assert refusal.value.conflict


def test_it_rolls_back_automatically_once_to_the_last_good_release(cast):
    cast.dev.auto_rollback = True
    cast.dev.save()
    good, broken = make_release(cast.service), make_release(cast.service, version="2.0.0-crash")
    ran(good, cast.dev)
    failed = ran(broken, cast.dev, state=states.FAILED, followup=Deployment.AUTO_ROLLBACK)
    rollback = flows.roll_back_automatically(failed)
    assert (rollback.kind, rollback.automatic, rollback.requested_by) == ("rollback", True, None)
    assert (rollback.release, rollback.rolls_back, rollback.state) == (good, failed, states.APPROVED)
    failed.refresh_from_db()
    assert failed.followup == ""
    assert flows.roll_back_automatically(failed) is None  # rung twice: done once
    assert Deployment.objects.filter(kind="rollback").count() == 1


def test_it_closes_a_superseded_failure_once_without_rolling_back(cast):
    cast.dev.auto_rollback = True
    cast.dev.save()
    good, broken, newer = make_release(cast.service), make_release(cast.service), make_release(cast.service)
    ran(good, cast.dev)
    failed = ran(broken, cast.dev, state=states.FAILED, followup=Deployment.AUTO_ROLLBACK)
    ran(newer, cast.dev)
    assert flows.roll_back_automatically(failed) is None
    failed.refresh_from_db()
    assert failed.followup == ""
    note = failed.events.get(kind="rollback")
    assert note.message.startswith("Not rolled back automatically: deployment #")
    assert "came after it" in note.message
    assert not Deployment.objects.filter(kind="rollback").exists()


def test_it_does_not_roll_back_a_failed_rollback_automatically(cast):
    cast.dev.auto_rollback = True
    cast.dev.save()
    good, broken = make_release(cast.service), make_release(cast.service)
    ran(good, cast.dev)
    ran(broken, cast.dev, state=states.FAILED)
    failed_rollback = ran(good, cast.dev, state=states.FAILED, kind="rollback")
    assert flows.after_failure(failed_rollback) == ""
