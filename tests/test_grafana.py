"""Grafana: embed URLs for panels, the CSP that lets them frame, annotations of rollouts."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.utils import timezone

from releases import grafana_panels, states
from releases.models import Deployment
from sandbox import grafana as grafana_sandbox
from tests.factories import make_deployment, make_release
from tests.support import run_scheduled_now

TOKEN = "grafana-test-token"


@pytest.fixture
def grafana(settings):
    handle = grafana_sandbox.start(token=TOKEN)
    settings.GRAFANA_URL = handle.url
    settings.GRAFANA_TOKEN = TOKEN
    yield handle
    handle.stop()


def with_panels(service, uid="svc-dash", panel_ids=(2, 3)):
    service.grafana_dashboard_uid = uid
    service.grafana_panel_ids = list(panel_ids)
    service.save()
    return service


def query(url):
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def ms(moment):
    return str(int(moment.timestamp() * 1000))


# --- embed URLs --------------------------------------------------------------------------------


def test_it_builds_the_embed_url_of_a_finished_rollout(cast, settings):
    settings.GRAFANA_URL = "https://grafana.example"
    with_panels(cast.service)
    started = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    deployment = make_deployment(
        make_release(cast.service),
        cast.prod,
        state=states.SUCCEEDED,
        started_at=started,
        finished_at=started + timedelta(minutes=3),
    )
    panels = grafana_panels.for_deployment(deployment)
    assert [p.panel_id for p in panels] == ["2", "3"]
    url = panels[0].url
    assert url.startswith("https://grafana.example/d-solo/svc-dash/storefront?")
    assert query(url) == [
        ("orgId", "1"),
        ("from", ms(started - timedelta(minutes=5))),
        ("to", ms(started + timedelta(minutes=8))),
        ("panelId", "2"),
        ("var-namespace", "prod"),
        ("var-service", "storefront"),
        ("theme", "light"),
    ]


def test_it_follows_an_active_rollout_up_to_now_with_refresh(cast, settings):
    settings.GRAFANA_URL = "https://grafana.example"
    with_panels(cast.service, panel_ids=[4])
    started = timezone.now() - timedelta(minutes=1)
    deployment = make_deployment(make_release(cast.service), cast.prod, state=states.ROLLING_OUT, started_at=started)
    params = dict(query(grafana_panels.for_deployment(deployment)[0].url))
    assert params["from"] == ms(started - timedelta(minutes=5))
    assert params["to"] == "now"
    assert params["refresh"] == "10s"


def test_it_starts_the_window_at_the_request_when_the_rollout_has_not_started(cast, settings):
    settings.GRAFANA_URL = "https://grafana.example"
    with_panels(cast.service)
    deployment = make_deployment(make_release(cast.service), cast.prod)
    params = dict(query(grafana_panels.for_deployment(deployment)[0].url))
    assert params["from"] == ms(deployment.created_at - timedelta(minutes=5))
    assert params["to"] == "now"


def test_it_escapes_odd_values_and_repeats_multi_value_variables(cast, settings):
    settings.GRAFANA_URL = "https://grafana.example/sub"
    with_panels(cast.service, uid="a&b/<x>", panel_ids=["panel-7", "bad id", True, 9])
    cast.prod.grafana_variables = {"cluster": "a&b", "pod": ["<x>", "y z"], "namespace": "shop#1"}
    cast.prod.save()
    panels = grafana_panels.for_service(cast.service, cast.prod)
    assert [p.panel_id for p in panels] == ["panel-7", "9"]
    url = panels[0].url
    assert url.startswith("https://grafana.example/sub/d-solo/a%26b%2F%3Cx%3E/storefront?")
    assert "var-cluster=a%26b" in url
    assert "var-pod=%3Cx%3E&var-pod=y%20z" in url
    assert query(url) == [
        ("orgId", "1"),
        ("from", "now-6h"),
        ("to", "now"),
        ("panelId", "panel-7"),
        ("var-namespace", "shop#1"),
        ("var-service", "storefront"),
        ("var-cluster", "a&b"),
        ("var-pod", "<x>"),
        ("var-pod", "y z"),
        ("theme", "light"),
    ]


@pytest.mark.parametrize(("grafana_url", "uid"), [("", "svc-dash"), ("https://grafana.example", "")])
def test_it_shows_no_panels_without_grafana_or_a_dashboard(cast, settings, client, grafana_url, uid):
    settings.GRAFANA_URL = grafana_url
    with_panels(cast.service, uid=uid)
    deployment = make_deployment(make_release(cast.service), cast.prod)
    client.force_login(cast.erin)
    assert b"<iframe" not in client.get(f"/deployments/{deployment.pk}/").content
    assert b"<iframe" not in client.get("/services/storefront/").content


def test_it_embeds_the_rollout_panels_on_the_deployment_page(cast, grafana, client):
    with_panels(cast.service)
    deployment = make_deployment(
        make_release(cast.service), cast.prod, state=states.ROLLING_OUT, started_at=timezone.now()
    )
    client.force_login(cast.erin)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    expected = grafana_panels.for_deployment(deployment)[0].url.replace("&", "&amp;")
    assert f'<iframe src="{expected}" width="450" height="200"' in page
    assert page.count("<iframe") == 2


def test_it_embeds_production_panels_on_the_service_page_and_switches_environment(cast, grafana, client):
    with_panels(cast.service, panel_ids=[1])
    client.force_login(cast.erin)
    prod_page = client.get("/services/storefront/").content.decode()
    assert "var-namespace=prod&amp;" in prod_page
    assert "from=now-6h&amp;to=now" in prod_page
    dev_page = client.get("/services/storefront/?grafana_env=dev").content.decode()
    assert "var-namespace=dev&amp;" in dev_page
    assert "var-namespace=prod" not in dev_page


def test_it_serves_the_embedded_panel_from_the_sandbox(cast, grafana):
    import requests

    with_panels(cast.service, uid="pampam", panel_ids=[2])
    url = grafana_panels.for_service(cast.service, cast.prod)[0].url
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200
    assert "Error rate (5xx) · namespace=prod, service=storefront" in answer.text
    assert "X-Frame-Options" not in answer.headers


# --- CSP -----------------------------------------------------------------------------------------


def test_it_allows_frames_from_grafana_only(cast, settings, client):
    settings.GRAFANA_URL = "http://127.0.0.1:3999"
    client.force_login(cast.erin)
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["frame-src"] == "http://127.0.0.1:3999"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"


def test_it_allows_a_grafana_sub_path_and_everything_below_it(cast, settings, client):
    settings.GRAFANA_URL = "https://ops.example/grafana"
    client.force_login(cast.erin)
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "frame-src https://ops.example/grafana/;" in policy


def test_it_allows_no_frames_without_grafana(cast, settings, client):
    settings.GRAFANA_URL = ""
    client.force_login(cast.erin)
    assert "frame-src 'none'" in client.get("/").headers["Content-Security-Policy"]


# --- annotations --------------------------------------------------------------------------------


def start_rollout(deployment):
    deployment.transition(states.ROLLING_OUT, kind="state", message="rolling out")


def test_it_annotates_the_start_of_a_rollout(cast_tx, grafana, run_jobs):
    with_panels(cast_tx.service, uid="svc-dash")
    deployment = make_deployment(make_release(cast_tx.service, version="1.4.2"), cast_tx.prod, state=states.APPROVED)
    start_rollout(deployment)
    run_jobs()
    [annotation] = grafana.annotations
    deployment.refresh_from_db()
    assert annotation["text"] == f"Deploy storefront 1.4.2 to prod (#{deployment.pk})"
    assert annotation["tags"] == ["deploy", "service:storefront", "env:prod", "version:1.4.2"]
    assert annotation["dashboardUID"] == "svc-dash"
    assert annotation["time"] == int(ms(deployment.started_at))
    assert deployment.grafana_annotation_id == annotation["id"]
    assert deployment.reports["grafana"]["state"] == "open"


def test_it_closes_the_annotation_with_the_outcome(cast_tx, grafana, run_jobs):
    deployment = make_deployment(make_release(cast_tx.service, version="1.4.2"), cast_tx.prod, state=states.APPROVED)
    start_rollout(deployment)
    run_jobs()
    deployment.transition(states.SUCCEEDED, kind="state", message="done")
    run_jobs()
    [annotation] = grafana.annotations
    deployment.refresh_from_db()
    assert annotation["dashboardUID"] == ""  # no dashboard: an organisation annotation
    assert annotation["timeEnd"] == int(ms(deployment.finished_at)) > annotation["time"]
    assert annotation["text"] == f"Deploy storefront 1.4.2 to prod (#{deployment.pk}): succeeded"
    assert "outcome:succeeded" in annotation["tags"]
    assert deployment.reports["grafana"]["state"] == "closed"


def test_it_closes_only_once_however_often_the_job_runs(cast_tx, grafana, run_jobs):
    from releases import annotations

    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod, state=states.APPROVED)
    start_rollout(deployment)
    deployment.transition(states.FAILED, kind="state", message="boom", reason="Pods crash-loop.")
    run_jobs()
    before = grafana.annotations
    annotations.sync_annotation(deployment.pk)
    annotations.sync_annotation(deployment.pk)
    assert grafana.annotations == before
    assert len(before) == 1
    assert before[0]["text"].endswith(": failed (Pods crash-loop.)")


def test_it_annotates_an_automatic_rollback_as_a_region_of_its_own(cast_tx, grafana, run_jobs):
    good = make_release(cast_tx.service, version="1.4.1")
    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod, state=states.APPROVED)
    start_rollout(deployment)
    deployment.transition(states.FAILED, message="boom")
    rollback = make_deployment(
        good, cast_tx.prod, state=states.APPROVED, kind=Deployment.ROLLBACK, rolls_back=deployment, automatic=True
    )
    start_rollout(rollback)
    rollback.transition(states.SUCCEEDED, message="Rolled back.")
    run_jobs()
    failed, rolled_back = sorted(grafana.annotations, key=lambda a: a["id"])
    assert "outcome:failed" in failed["tags"]
    assert {"rollback", "outcome:succeeded", "version:1.4.1"} <= set(rolled_back["tags"])


def test_it_does_not_annotate_a_deployment_that_never_started(cast_tx, grafana, run_jobs):
    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod, state=states.APPROVED)
    deployment.transition(states.CANCELLED, kind="state", message="no")
    run_jobs()
    assert grafana.annotations == []


def test_it_keeps_rolling_out_while_grafana_is_down_and_says_so(cast_tx, grafana, run_jobs):
    grafana.set_fault(500, count=-1)
    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod, state=states.APPROVED)
    start_rollout(deployment)
    run_jobs(later=False)
    deployment.transition(states.SUCCEEDED, kind="state", message="done")
    deployment = Deployment.objects.get(pk=deployment.pk)
    assert deployment.state == states.SUCCEEDED
    assert deployment.reports["grafana"]["state"] == "retrying"
    assert "Grafana answered 500" in deployment.reports["grafana"]["error"]
    grafana.clear_faults()
    run_scheduled_now()
    run_jobs()
    [annotation] = grafana.annotations
    assert "outcome:succeeded" in annotation["tags"]
    assert Deployment.objects.get(pk=deployment.pk).reports["grafana"]["state"] == "closed"


def test_it_gives_up_on_a_bad_token_and_reports_it(cast_tx, grafana, run_jobs, settings):
    settings.GRAFANA_TOKEN = "wrong"
    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod, state=states.APPROVED)
    start_rollout(deployment)
    run_jobs()
    report = Deployment.objects.get(pk=deployment.pk).reports["grafana"]
    assert report["state"] == "failed"
    assert "Grafana answered 401" in report["error"]
    assert "GRAFANA_TOKEN" in report["error"]
    assert "wrong" not in report["error"]


def test_it_shows_the_grafana_report_on_the_deployment_page(cast, client):
    deployment = make_deployment(
        make_release(cast.service),
        cast.prod,
        reports={"grafana": {"state": "failed", "error": "Grafana answered 503."}},
    )
    client.force_login(cast.erin)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert "report-grafana" in page
    assert "Grafana answered 503." in page
