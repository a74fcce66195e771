"""The figures /metrics serves are rows updated with each change, equal to what history says."""

import importlib
from datetime import timedelta

from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from releases import flows, states, tallies
from releases.models import Approval, Build, Deployment
from releases.tallies import Tally
from tests.factories import make_deployment, make_release, make_service

TOKEN = "tallies-test-token"


def series(metric, **labels):
    return Tally.objects.filter(metric=metric, **labels).first()


def gauge(deployment, state):
    pair = {"service_id": deployment.service_id, "environment_id": deployment.environment_id}
    row = series(tallies.DEPLOYMENTS, state=state, **pair)
    return row.count if row else 0


def snapshot() -> set:
    fields = ["metric", "service_id", "environment_id", "state", "job_name", "count", *tallies.BUCKET_FIELDS]
    return {(*(getattr(t, f) for f in fields), round(t.total, 3)) for t in Tally.objects.exclude(count=0)}


def test_it_moves_a_deployment_between_states_in_the_gauge(cast):
    deployment = make_deployment(make_release(cast.service), cast.staging)
    assert gauge(deployment, states.PENDING_APPROVAL) == 1
    deployment.transition(states.CANCELLED, message="Not today.")
    assert gauge(deployment, states.PENDING_APPROVAL) == 0
    assert gauge(deployment, states.CANCELLED) == 1


def test_it_observes_the_approval_wait_when_enough_people_approve(cast):
    deployment = make_deployment(
        make_release(cast.service), cast.staging, created_at=timezone.now() - timedelta(seconds=600)
    )
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    wait = series(tallies.APPROVAL_WAIT, environment_id=cast.staging.pk)
    assert wait.count == 1
    assert 590 < wait.total < 700
    assert [n for _, n in wait.bucket_counts()] == [0, 0, 1, 1, 1, 1, 1, 1]  # 600 s: not ≤ 300, ≤ 900
    assert gauge(deployment, states.APPROVED) == 1


def test_it_observes_a_rollout_when_it_ends(cast):
    deployment = make_deployment(make_release(cast.service), cast.dev, state=states.ROLLING_OUT)
    Deployment.objects.filter(pk=deployment.pk).update(started_at=timezone.now() - timedelta(seconds=100))
    deployment = Deployment.objects.get(pk=deployment.pk)
    deployment.transition(states.SUCCEEDED, message="Rolled out.")
    duration = series(tallies.DEPLOYMENT_DURATION, service_id=cast.service.pk, environment_id=cast.dev.pk)
    assert duration.count == 1
    assert [n for _, n in duration.bucket_counts()][:3] == [0, 0, 1]  # 100 s: not ≤ 60, ≤ 120


def test_it_counts_a_build_once_it_finishes(cast):
    build = Build.objects.create(
        job_name="storefront-build", state=states.BUILD_RUNNING, started_at=timezone.now() - timedelta(seconds=40)
    )
    assert series(tallies.BUILD_DURATION) is None
    assert build.move(states.BUILD_SUCCEEDED, "Built.")
    assert not build.move(states.BUILD_FAILED, "Too late: it already finished.")
    built = series(tallies.BUILD_DURATION, job_name="storefront-build", state=states.BUILD_SUCCEEDED)
    assert built.count == 1
    assert [n for _, n in built.bucket_counts()][:2] == [0, 1]


def test_it_keeps_histograms_when_history_is_deleted(cast):
    now = timezone.now()
    deployment = make_deployment(
        make_release(cast.service),
        cast.dev,
        state=states.SUCCEEDED,
        started_at=now - timedelta(seconds=50),
        finished_at=now,
    )
    deployment.delete()
    assert gauge(deployment, states.SUCCEEDED) == 0
    assert series(tallies.DEPLOYMENT_DURATION, service_id=cast.service.pk).count == 1


def test_it_backfills_the_same_figures_the_changes_add_up_to(cast):
    """The migration's backfill (run on an existing history) and the live updates agree."""
    now = timezone.now()
    for service in (cast.service, make_service()):
        old = now - timedelta(hours=2)
        for env, state in ((cast.dev, states.SUCCEEDED), (cast.staging, states.FAILED), (cast.prod, states.REJECTED)):
            make_deployment(make_release(service), env, state=state, created_at=old, started_at=old, finished_at=now)
        waiting = make_deployment(make_release(service), cast.staging, created_at=now - timedelta(seconds=900))
        flows.decide(cast.bob, waiting, Approval.APPROVE)
        running = make_deployment(make_release(service), cast.dev, state=states.ROLLING_OUT)
        running.transition(states.FAILED, message="Crash loop.")
        # Approvals written after the fact (seed data, an import): the second of two lets it go.
        imported = make_deployment(
            make_release(service), cast.prod, state=states.SUCCEEDED, created_at=old, finished_at=now
        )
        for voter, minutes in ((cast.bob, 5), (cast.carol, 9)):
            Approval.objects.create(
                deployment=imported, user=voter, decision="approve", created_at=old + timedelta(minutes=minutes)
            )
    Build.objects.create(
        job_name="b", state=states.BUILD_FAILED, started_at=now - timedelta(seconds=70), finished_at=now
    )
    counted = snapshot()
    prod_waits = series(tallies.APPROVAL_WAIT, environment_id=cast.prod.pk)
    assert (prod_waits.count, prod_waits.total) == (2, 2 * 9 * 60)

    Tally.objects.all().delete()
    migration = importlib.import_module("releases.migrations.0008_tallies")
    migration.backfill(apps, connection.schema_editor())
    assert snapshot() == counted


def test_it_scrapes_without_reading_history(cast, client, settings):
    settings.METRICS_TOKEN = TOKEN
    for _ in range(3):
        make_deployment(make_release(cast.service), cast.prod, state=states.SUCCEEDED, finished_at=timezone.now())
    with CaptureQueriesContext(connection) as captured:
        answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200
    assert (
        'pampam_deployments{environment="prod",service="storefront",state="succeeded"} 3.0' in answer.content.decode()
    )
    read = " ".join(q["sql"] for q in captured.captured_queries)
    assert "releases_approval" not in read
    assert "releases_build" not in read
    # Deployments are read only for what is under way now and the 30-day DORA window.
    for query in captured.captured_queries:
        if 'FROM "releases_deployment"' in query["sql"]:
            assert "state" in query["sql"] or "finished_at" in query["sql"] or "followup" in query["sql"]
