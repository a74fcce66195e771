"""Races settled by PostgreSQL: real threads, each with its own connection, started together.

Each round lines the threads up on a barrier so their transactions overlap; several rounds
make a lucky pass unlikely. Threads close their connections so the test database can be dropped.
"""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from releases import flows, rules, states
from releases.models import Approval, Deployment
from tests.factories import client_for, make_release, make_user, succeed_in

ROUNDS = 5


def run_together(*calls):
    """Run each call in its own thread, all released at once; return results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread met
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return results


def pending_in_prod(cast, required):
    cast.prod.required_approvals = required
    cast.prod.save()
    release = make_release(cast.service)
    succeed_in(release, cast.staging)
    return flows.request_deployment(cast.admin, release, cast.prod)


def decide(user, deployment_id, decision=Approval.APPROVE, comment=""):
    return lambda: flows.decide(user, Deployment.objects.get(pk=deployment_id), decision, comment)


def refusals(results):
    return [r for r in results if isinstance(r, rules.Refused)]


def test_it_counts_simultaneous_approvals_by_the_same_person_once(cast_tx):
    for _ in range(ROUNDS):
        deployment = pending_in_prod(cast_tx, required=2)
        results = run_together(*[decide(cast_tx.bob, deployment.pk) for _ in range(6)])
        assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, rules.Refused)], results
        assert len(refusals(results)) == 5
        assert all(str(r) == "You have already decided on this deployment." for r in refusals(results))
        assert deployment.approvals.count() == 1
        deployment.refresh_from_db()
        assert deployment.state == states.PENDING_APPROVAL
        flows.cancel(cast_tx.admin, deployment)


@pytest.mark.parametrize("required", [2, 3])
def test_it_approves_exactly_once_when_the_last_approvals_arrive_together(cast_tx, required):
    approvers = [cast_tx.bob, cast_tx.carol, cast_tx.dave]
    for _ in range(ROUNDS):
        deployment = pending_in_prod(cast_tx, required=required)
        results = run_together(*[decide(user, deployment.pk) for user in approvers])
        deployment.refresh_from_db()
        assert deployment.state == states.APPROVED
        approved_events = deployment.events.filter(kind="state", data__to=states.APPROVED)
        assert approved_events.count() == 1
        # The deployment moved only once the required number of distinct people had approved.
        assert approved_events.get().message == f"Approved by {required} of {required}."
        counts = sorted(deployment.events.filter(kind="approval").values_list("data__count", flat=True))
        assert counts == list(range(1, len(counts) + 1)), "two approvals saw the same count"
        # Anyone arriving after the move is told there is nothing left to decide.
        assert len(refusals(results)) == len(approvers) - required
        assert deployment.approvals.count() == required
        Deployment.objects.filter(pk=deployment.pk).update(state=states.SUCCEEDED, finished_at=timezone.now())


def test_it_never_approves_with_fewer_than_the_required_distinct_approvals(cast_tx):
    for _ in range(ROUNDS):
        deployment = pending_in_prod(cast_tx, required=3)
        # Two people, each clicking three times at once: two distinct approvals, not six.
        calls = [decide(user, deployment.pk) for user in (cast_tx.bob, cast_tx.carol) for _ in range(3)]
        run_together(*calls)
        deployment.refresh_from_db()
        assert deployment.state == states.PENDING_APPROVAL
        assert sorted(deployment.approvals.values_list("user__username", flat=True)) == ["bob", "carol"]
        assert not deployment.events.filter(kind="state").exists()
        flows.cancel(cast_tx.admin, deployment)


def test_it_settles_a_rejection_racing_the_last_approval(cast_tx):
    for _ in range(ROUNDS):
        deployment = pending_in_prod(cast_tx, required=2)
        flows.decide(cast_tx.bob, deployment, Approval.APPROVE)
        run_together(
            decide(cast_tx.carol, deployment.pk),
            decide(cast_tx.dave, deployment.pk, Approval.REJECT, "error budget spent"),
        )
        deployment.refresh_from_db()
        assert deployment.state in (states.APPROVED, states.REJECTED)
        assert deployment.events.filter(kind="state").count() == 1
        assert deployment.approvals.count() == 2 if deployment.state == states.REJECTED else True
        if deployment.state == states.APPROVED:
            Deployment.objects.filter(pk=deployment.pk).update(state=states.SUCCEEDED)


def test_it_creates_one_active_deployment_from_simultaneous_requests(cast_tx):
    for _ in range(ROUNDS):
        releases = [make_release(cast_tx.service) for _ in range(4)]
        for release in releases:
            succeed_in(release, cast_tx.dev)
        results = run_together(
            *[lambda r=release: flows.request_deployment(cast_tx.alice, r, cast_tx.staging) for release in releases]
        )
        created = [r for r in results if isinstance(r, Deployment)]
        assert len(created) == 1, results
        assert len(refusals(results)) == 3
        assert all("already has" in str(r) and "in Staging" in str(r) for r in refusals(results))
        active = Deployment.objects.active().filter(service=cast_tx.service, environment=cast_tx.staging)
        assert list(active) == created
        flows.cancel(cast_tx.alice, created[0])


def test_it_creates_one_deployment_from_a_form_submitted_twice_at_once(cast_tx):
    release = make_release(cast_tx.service)
    succeed_in(release, cast_tx.dev)

    def submit():
        return client_for(cast_tx.alice).post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})

    responses = run_together(submit, submit, submit)
    assert sorted(r.status_code for r in responses) == [302, 409, 409]
    assert all(b"already has" in r.content for r in responses if r.status_code == 409)
    assert Deployment.objects.filter(environment=cast_tx.staging).count() == 1


def test_it_counts_one_approval_from_an_approve_button_clicked_twice_at_once(cast_tx):
    deployment = pending_in_prod(cast_tx, required=2)
    make_user("frank", cast_tx.approvers)

    def click():
        return client_for(cast_tx.bob).post(f"/deployments/{deployment.pk}/decide/", {"decision": "approve"})

    responses = run_together(click, click, click)
    assert sorted(r.status_code for r in responses) == [302, 403, 403]
    assert deployment.approvals.count() == 1


def test_it_settles_a_cancel_racing_the_last_approval(cast_tx):
    for _ in range(ROUNDS):
        deployment = pending_in_prod(cast_tx, required=1)
        results = run_together(
            decide(cast_tx.bob, deployment.pk),
            lambda: flows.cancel(cast_tx.admin, Deployment.objects.get(pk=deployment.pk), "changed my mind"),
        )
        assert all(r is None or isinstance(r, (Deployment, rules.Refused)) for r in results), results
        deployment.refresh_from_db()
        path = list(deployment.events.filter(kind="state").order_by("seq").values_list("data__to", flat=True))
        # Either order is fine (an approved deployment may still be cancelled); an approval
        # landing on a cancelled deployment is not.
        assert path in ([states.CANCELLED], [states.APPROVED], [states.APPROVED, states.CANCELLED]), path
        if path == [states.CANCELLED]:
            assert not deployment.approvals.exists()
        if deployment.state == states.APPROVED:
            flows.cancel(cast_tx.admin, deployment)
