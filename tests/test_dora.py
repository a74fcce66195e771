"""DORA figures on hand-built histories with known answers, and the /dora/ page."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from releases import dora, states
from releases.models import Commit
from tests.factories import make_deployment, make_release, make_service

T0 = datetime(2025, 1, 1, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def row(id, state, finished, released, committed=None, rollback=False, created=None, service="shop"):
    return dora.Row(id, service, state, created or released, finished, released, committed, rollback)


HISTORY = [
    row(0, states.SUCCEEDED, T0 - D, T0 - 2 * D),  # before the window
    row(1, states.SUCCEEDED, T0 + 2 * H, T0),
    row(2, states.FAILED, D + T0 + H, T0 + D),
    row(3, states.SUCCEEDED, T0 + D + 4 * H, T0 + D + 2 * H),
    row(4, states.SUCCEEDED, T0 + 3 * D + 6 * H, T0 + 3 * D + 5 * H, committed=T0 + 3 * D),
    row(5, states.SUCCEEDED, T0 + 3 * D + 8 * H, T0 + D + 2 * H, rollback=True, created=T0 + 3 * D + 7 * H),
]


def test_it_counts_successful_deployments_in_the_window_but_not_rollbacks():
    summary = dora.summarize(HISTORY, T0, T0 + 7 * D)
    assert summary.deployments == 3
    assert summary.per_week == 3.0


def test_it_measures_lead_time_from_the_commit_when_known_else_from_the_release():
    summary = dora.summarize(HISTORY, T0, T0 + 7 * D)
    assert sorted(summary.lead_times) == [2 * H, 2 * H, 6 * H]
    assert summary.lead_time == 2 * H


def test_it_counts_failures_and_deployments_followed_by_a_rollback():
    summary = dora.summarize(HISTORY, T0, T0 + 7 * D)
    assert (summary.failures, summary.finished) == (2, 4)
    assert summary.failure_rate == 0.5
    assert summary.failure_rate_text == "50%"


def test_it_measures_time_to_restore_to_the_next_success():
    summary = dora.summarize(HISTORY, T0, T0 + 7 * D)
    # #2 failed at 1d+1h, #3 succeeded at 1d+4h; the rollback #5 was asked at 3d+7h, done at 3d+8h.
    assert sorted(summary.restore_times) == [H, 3 * H]
    assert summary.time_to_restore == 2 * H


def test_it_counts_one_incident_for_consecutive_failures():
    history = [
        row(1, states.FAILED, T0 + H, T0),
        row(2, states.FAILED, T0 + 2 * H, T0),
        row(3, states.SUCCEEDED, T0 + 5 * H, T0),
    ]
    summary = dora.summarize(history, T0, T0 + D)
    assert summary.restore_times == [4 * H]
    assert (summary.failures, summary.finished) == (2, 3)


def test_it_measures_an_automatic_rollback_from_the_bad_rollout_to_the_rollback():
    """A failure restored at once by auto-rollback takes minutes to restore, not days until the next release."""
    bad = dora.Row(1, "shop", states.FAILED, T0, T0 + 10 * M, T0, started_at=T0 + M)
    undo = dora.Row(2, "shop", states.SUCCEEDED, T0 + 10 * M, T0 + 12 * M, T0, rollback=True, started_at=T0 + 10 * M)
    later = dora.Row(3, "shop", states.SUCCEEDED, T0 + 13 * D, T0 + 13 * D, T0 + 13 * D)
    summary = dora.summarize([bad, undo, later], T0, T0 + 20 * D)
    assert summary.restore_times == [11 * M]
    assert summary.time_to_restore_text == "11 min"


def test_it_labels_the_value_axis_and_the_days():
    days = dora.per_day(HISTORY, T0, T0 + 4 * D)
    ticks = dora.value_ticks([(None, [(ok + bad, "")]) for _, ok, bad, _ in days], dora._count)
    assert [t.label for t in ticks] == ["0", "1", "2"]
    assert [t.label for t in dora.day_ticks(days)] == ["Jan 1", "Jan 2", "Jan 3", "Jan 4"]


def test_it_keeps_services_apart():
    history = [row(1, states.FAILED, T0 + H, T0, service="a"), row(2, states.SUCCEEDED, T0 + 2 * H, T0, service="b")]
    summary = dora.summarize(history, T0, T0 + D)
    assert summary.restore_times == []  # b's success does not restore a


def test_it_reports_nothing_rather_than_zero_without_data():
    summary = dora.summarize([], T0, T0 + 7 * D)
    assert (summary.lead_time, summary.failure_rate, summary.time_to_restore) == (None, None, None)
    assert summary.lead_time_text == "—"


def test_it_buckets_deployments_per_day():
    days = dora.per_day(HISTORY, T0, T0 + 4 * D)
    assert [(d.day, ok, bad) for d, ok, bad, _ in days] == [(1, 1, 0), (2, 1, 1), (3, 0, 0), (4, 1, 0)]
    assert days[3][3] == 6 * H


def test_it_draws_stacked_bars_scaled_to_the_tallest_day():
    bars = dora.frequency_chart(dora.per_day(HISTORY, T0, T0 + 4 * D))
    assert [(b.tone, b.height) for b in bars] == [("ok", 65.0), ("ok", 65.0), ("bad", 65.0), ("ok", 65.0)]
    assert bars[2].y == bars[1].y - 65.0


# --- the page ------------------------------------------------------------------------------


def finished(cast, env, state, hours_ago, **kwargs):
    release = make_release(kwargs.pop("service", cast.service))
    now = timezone.now()
    return make_deployment(release, env, state=state, finished_at=now - hours_ago * H, **kwargs)


def test_it_shows_the_figures_for_production(cast, client):
    finished(cast, cast.prod, states.SUCCEEDED, 5)
    finished(cast, cast.prod, states.FAILED, 4)
    finished(cast, cast.prod, states.SUCCEEDED, 2)
    finished(cast, cast.staging, states.FAILED, 1)
    client.force_login(cast.erin)
    page = client.get("/dora/").content.decode()
    assert '<p class="figure" id="dora-frequency">2</p>' in page
    assert '<p class="figure" id="dora-failure-rate">33%</p>' in page
    assert '<p class="figure" id="dora-restore">2.0 h</p>' in page
    assert "<svg" in page
    assert "<rect" in page
    assert " style=" not in page
    assert "<script>" not in page


def test_it_uses_the_commit_time_for_lead_time(cast, client):
    deployment = finished(cast, cast.prod, states.SUCCEEDED, 0)
    Commit.objects.create(
        service=cast.service, sha=deployment.release.git_sha, message="fix", committed_at=deployment.finished_at - 3 * H
    )
    client.force_login(cast.erin)
    assert '<p class="figure" id="dora-lead-time">3.0 h</p>' in client.get("/dora/").content.decode()


def test_it_switches_environment_and_window(cast, client):
    finished(cast, cast.staging, states.SUCCEEDED, 24 * 20)
    client.force_login(cast.erin)
    assert 'id="dora-frequency">0<' in client.get("/dora/?environment=staging&days=7").content.decode()
    assert 'id="dora-frequency">1<' in client.get("/dora/?environment=staging&days=30").content.decode()


def test_it_refuses_bad_choices_with_a_message(cast, client):
    client.force_login(cast.erin)
    answer = client.get("/dora/?days=365")
    assert answer.status_code == 400
    assert "Choose a window of 7, 30 or 90 days" in answer.content.decode()
    answer = client.get("/dora/?environment=<nope>")
    assert answer.status_code == 400
    assert "There is no environment “&lt;nope&gt;”" in answer.content.decode()


def test_it_needs_a_login(db, client):
    answer = client.get("/dora/")
    assert answer.status_code == 302
    assert "/accounts/login/" in answer.headers["Location"]


def test_it_runs_a_constant_number_of_queries(cast, client, django_assert_max_num_queries):
    client.force_login(cast.erin)
    finished(cast, cast.prod, states.SUCCEEDED, 1)
    with django_assert_max_num_queries(30) as few:
        client.get("/dora/")
    for n in range(10):
        finished(cast, cast.prod, states.SUCCEEDED, n + 2, service=make_service())
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/dora/")


def test_it_links_to_dora_from_the_navigation(cast, client):
    client.force_login(cast.erin)
    assert '<a href="/dora/">DORA</a>' in client.get("/").content.decode()
