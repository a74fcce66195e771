"""/metrics: refused without the token, valid Prometheus text (checked by promtool) with it."""

import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from django_rq.cron import DjangoCronScheduler
from prometheus_client import CollectorRegistry, generate_latest

from clusters.models import WatcherHeartbeat
from portal.metrics import DatabaseCollector, text_format
from releases import dora, states
from releases.models import Approval, Build, DoraFigure
from tests.factories import make_deployment, make_release, make_service
from tests.support.tools import require_tool

TOKEN = "metrics-test-token"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client):
    return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def history(cast, service=None):
    service = service or cast.service
    now = timezone.now()
    make_deployment(
        make_release(service),
        cast.prod,
        state=states.SUCCEEDED,
        started_at=now - timedelta(seconds=90),
        finished_at=now,
        created_at=now - timedelta(hours=1),
        required_approvals=2,
    )
    deployment = make_deployment(
        make_release(service),
        cast.staging,
        state=states.FAILED,
        started_at=now - timedelta(seconds=700),
        finished_at=now,
        required_approvals=1,
        created_at=now - timedelta(seconds=1000),
    )
    Approval.objects.create(
        deployment=deployment, user=cast.bob, decision="approve", created_at=now - timedelta(seconds=800)
    )
    make_deployment(make_release(service), cast.dev)
    Build.objects.create(
        job_name="storefront-build",
        state=states.BUILD_SUCCEEDED,
        started_at=now - timedelta(seconds=45),
        finished_at=now,
    )
    WatcherHeartbeat.objects.update_or_create(
        name="watcher-1", defaults=dict(beat_at=now - timedelta(seconds=3), streams=9, reconnects=2, lag_seconds=0.25)
    )


@pytest.fixture
def text(cast, client, token):
    """What a scrape exposes after `history(cast)`."""
    history(cast)
    return scrape(client).content.decode()


def test_it_refuses_a_scrape_without_the_token(db, client, token):
    answer = client.get("/metrics")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_scrape_with_a_wrong_token(db, client, token):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 401


def test_it_hides_metrics_when_no_token_is_configured(db, client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_it_counts_deployments_by_state_service_and_environment(text):
    assert 'pampam_deployments{environment="prod",service="storefront",state="succeeded"} 1.0' in text
    assert 'pampam_deployments{environment="staging",service="storefront",state="failed"} 1.0' in text
    assert 'pampam_deployments{environment="dev",service="storefront",state="pending_approval"} 1.0' in text


def test_it_turns_rows_into_duration_histograms(text):
    bucket = 'pampam_deployment_duration_seconds_bucket{environment="prod",le="%s",service="storefront"}'
    assert bucket % "60.0" + " 0.0" in text
    assert bucket % "120.0" + " 1.0" in text
    assert 'pampam_deployment_duration_seconds_sum{environment="prod",service="storefront"} 90.0' in text
    assert 'pampam_approval_wait_seconds_bucket{environment="staging",le="300.0"} 1.0' in text
    assert 'pampam_approval_wait_seconds_sum{environment="staging"} 200.0' in text
    build = 'pampam_build_duration_seconds_bucket{jenkins_job="storefront-build",le="60.0",state="succeeded"}'
    assert build + " 1.0" in text
    assert 'pampam_approval_oldest_pending_seconds{environment="dev"}' in text


def test_it_reports_the_watcher_the_queue_and_dora_figures(text):
    assert 'pampam_watcher_lag_seconds{watcher="watcher-1"} 0.25' in text
    assert 'pampam_watcher_reconnects{watcher="watcher-1"} 2.0' in text
    assert 'pampam_watcher_heartbeat_age_seconds{watcher="watcher-1"} 3.' in text
    assert 'pampam_queue_jobs{queue="default"} 0.0' in text
    assert "pampam_redis_up 1.0" in text
    assert 'pampam_dora_deployments{environment="prod",service="storefront"} 1.0' in text
    assert 'pampam_dora_change_failure_ratio{environment="prod",service="storefront"} 0.0' in text


def test_it_runs_the_same_number_of_queries_whatever_the_history(cast, client, token, django_assert_max_num_queries):
    history(cast)
    with django_assert_max_num_queries(20) as small:
        scrape(client)
    for _ in range(5):
        history(cast, make_service())
    with django_assert_max_num_queries(len(small.captured_queries)):
        scrape(client)


def test_it_passes_promtool_check_metrics(cast, client, token):
    promtool = require_tool("promtool")
    history(cast)
    body = scrape(client).content
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    assert body.count(b"# TYPE pampam_") >= 14


def test_it_ships_alert_rules_that_promtool_accepts_and_that_read_real_series(cast, client, token):
    import re
    from pathlib import Path

    promtool = require_tool("promtool")
    rules = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml"
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    history(cast)
    WatcherHeartbeat.objects.create(name="w", beat_at=timezone.now())
    exposed = set(re.findall(r"^# TYPE (pampam_\w+)", scrape(client).content.decode(), re.M))
    used = set(re.findall(r"\b(pampam_\w+)\b", rules.read_text()))
    assert used <= exposed, used - exposed
    assert {"pampam_watcher_up", "pampam_deployment_in_flight_seconds", "pampam_followups_pending"} <= used


def test_it_writes_the_text_format_exactly_as_prometheus_client_does(cast, token):
    history(cast)
    families = list(DatabaseCollector().collect())

    class Fixed:
        def collect(self):
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    assert text_format(families) == generate_latest(registry)


def dora_line(text: str) -> str:
    """The storefront's successful production deployments line of a scrape."""
    wanted = 'pampam_dora_deployments{environment="prod",service="storefront"}'
    return next(line for line in text.splitlines() if line.startswith(wanted))


def test_it_serves_stored_dora_figures_until_a_production_deployment_finishes(cast, client, token, monkeypatch):
    history(cast)
    assert dora_line(scrape(client).content.decode()).endswith(" 1.0")
    with monkeypatch.context() as patched:
        # Nothing finished since: the scrape reads the stored figures, not the window's deployments.
        patched.setattr(dora, "load_rows", lambda *args: pytest.fail("the scrape re-read the window"))
        assert dora_line(scrape(client).content.decode()).endswith(" 1.0")
    now = timezone.now()
    make_deployment(make_release(cast.service), cast.prod, state=states.SUCCEEDED, started_at=now, finished_at=now)
    assert dora_line(scrape(client).content.decode()).endswith(" 2.0")  # the stamp moved: recomputed


def test_it_recomputes_dora_figures_older_than_two_minutes_as_the_window_slides(cast, client, token):
    history(cast)
    scrape(client)
    # A success 31 days ago is outside the window; stored figures that are old are not trusted.
    DoraFigure.objects.update(computed_at=timezone.now() - dora.EXPORT_MAX_AGE - timedelta(seconds=1), deployments=7)
    assert dora_line(scrape(client).content.decode()).endswith(" 1.0")
    assert set(DoraFigure.objects.exclude(service_id=0).values_list("deployments", flat=True)) == {1}


def test_its_cron_job_keeps_the_dora_figures_computed(cast, client, token, monkeypatch):
    history(cast)
    assert dora.refresh_exported() == 1  # storefront in prod
    DoraFigure.objects.update(computed_at=timezone.now() - timedelta(seconds=61))
    dora.refresh_exported()  # a minute later: computed afresh, though nothing finished since
    marker = DoraFigure.objects.get(environment_id=cast.prod.pk, service_id=0)
    assert timezone.now() - marker.computed_at < timedelta(seconds=30)
    monkeypatch.setattr(dora, "load_rows", lambda *args: pytest.fail("the scrape re-read the window"))
    assert dora_line(scrape(client).content.decode()).endswith(" 1.0")
    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("portal.cron")
    (job,) = [job for job in scheduler.get_jobs() if job.func is dora.refresh_exported]
    assert job.interval == 60
