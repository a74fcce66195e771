"""Prometheus checks are edited by admins and validated against a real Prometheus before they are
saved: the query must parse and return a scalar or a single series. The deployment page charts
each check's values with its threshold (inline SVG under the page's CSP) and says when there is
no Prometheus; the reconciler rings a lost verify job again."""

import django_rq
import pytest
from django.test import Client

from releases import states
from releases.models import Check
from releases.reconcile import reconcile
from tests.factories import client_for, make_check, make_deployment, make_failed_verification, make_release
from tests.support import prometheus as prometheus_process
from tests.support.tools import require_tool

ADD = "/admin/releases/check/add/"


@pytest.fixture(scope="module")
def prometheus_server(tmp_path_factory):
    """A real Prometheus scraping nothing: enough to parse and evaluate queries. It keeps no state
    the tests change, so one serves the module."""
    require_tool("prometheus")
    processes = []
    server = prometheus_process.start(tmp_path_factory.mktemp("prometheus"), "", processes)
    yield server
    for process in processes:
        prometheus_process.stop_process(process)


@pytest.fixture
def prometheus(prometheus_server, settings):
    settings.PROMETHEUS_URL = prometheus_server.url
    return prometheus_server


def admin_client(cast) -> Client:
    return client_for(cast.admin)


def check_form(cast, **fields):
    data = {
        "service": cast.service.pk,
        "name": "5xx ratio",
        "query": "vector(0.001) * 1",
        "comparison": "<",
        "threshold": "0.01",
        "window": "1m",
        "enabled": "on",
    }
    data.update(fields)
    return data


def test_it_saves_a_check_whose_query_returns_one_series(cast, prometheus):
    answer = admin_client(cast).post(ADD, check_form(cast, query="sum(rate(up[$window])) or vector(0)"))

    assert answer.status_code == 302
    check = Check.objects.get()
    assert check.promql("dev") == "sum(rate(up[1m])) or vector(0)"
    assert check.rule == "below 0.01"


def test_it_saves_a_scalar_query(cast, prometheus):
    assert admin_client(cast).post(ADD, check_form(cast, query="scalar(vector(3))")).status_code == 302


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("sum(rate(up[$window]", "Prometheus refused the query: Prometheus answered 400: "),
        (
            'label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")',
            "The query returns 2 series; a check needs a scalar or a single series",
        ),
        ('"text"', "The query returns a string; a check needs a scalar or a single series"),
    ],
)
def test_it_refuses_a_query_prometheus_refuses_or_that_is_not_one_series(cast, prometheus, query, says):
    answer = admin_client(cast).post(ADD, check_form(cast, query=query))

    assert answer.status_code == 200
    assert says in answer.content.decode()
    assert not Check.objects.exists()


def test_it_refuses_a_window_that_is_no_duration(cast, prometheus):
    answer = admin_client(cast).post(ADD, check_form(cast, window="five minutes"))

    assert answer.status_code == 200
    assert "Give a PromQL duration such as 30s, 5m or 1h." in answer.content.decode()
    assert not Check.objects.exists()


def test_it_saves_nothing_while_prometheus_cannot_be_reached(cast, settings):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{prometheus_process.free_port()}"

    answer = admin_client(cast).post(ADD, check_form(cast))

    assert answer.status_code == 200
    assert "The query could not be checked: Prometheus at" in answer.content.decode()
    assert not Check.objects.exists()


def test_it_keeps_checks_to_staff(cast, prometheus):
    answer = client_for(cast.alice).post(ADD, check_form(cast))
    assert answer.status_code == 302
    assert "/login/" in answer["Location"]
    assert not Check.objects.exists()


def test_it_charts_each_check_with_its_threshold_and_shows_the_probe(cast):
    deployment = make_failed_verification(cast)

    answer = client_for(cast.alice).get(deployment.get_absolute_url())

    page = answer.content.decode()
    assert answer.status_code == 200
    assert "90 requests, 28 failed, p99 41 ms" in page
    assert 'data-check="5xx ratio"' in page
    assert "must stay below 0.05" in page
    assert page.count('class="threshold"') == 1
    assert page.count('<polyline class="values"') == 1
    assert page.count('class="mark-fail"') == 8
    assert 'class="bake"' in page
    assert "default-src 'self'" in answer["Content-Security-Policy"]


def test_it_says_on_the_page_when_prometheus_is_not_configured(cast, settings):
    settings.PROMETHEUS_URL = ""
    make_check(cast.service)
    deployment = make_deployment(make_release(cast.service), cast.dev, state=states.ROLLING_OUT)

    page = client_for(cast.alice).get(deployment.get_absolute_url()).content.decode()

    assert "Prometheus is not configured (PROMETHEUS_URL is empty), so 1 check cannot be evaluated" in page
    assert "No check has been evaluated for this deployment yet." in page


def test_it_rings_the_verify_job_of_a_guarded_rollout_again(cast_tx):
    cast = cast_tx
    cast.service.probe_url = "http://svc.example/healthz"
    cast.service.save()
    guarded = make_deployment(make_release(cast.service), cast.dev, state=states.ROLLING_OUT)
    make_deployment(make_release(cast.service), cast.staging)  # not rolling out: nothing to verify

    assert reconcile()["verified"] == 1
    queued = [job for job in django_rq.get_queue("default").jobs if job.func_name == "releases.tracking.verify"]
    assert [job.args for job in queued] == [(guarded.pk,)]


def test_it_saves_a_service_with_untouched_checks_while_prometheus_is_away(cast, settings):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{prometheus_process.free_port()}"
    check = Check.objects.create(service=cast.service, name="5xx ratio", query="vector(0)", threshold=0.05)
    service = cast.service
    form = {
        "slug": service.slug,
        "name": service.name,
        "description": "Now with a description",
        "image_repository": service.image_repository,
        "k8s_deployment": service.k8s_deployment,
        "k8s_container": service.k8s_container,
        "grafana_panel_ids": "[]",
        "probe_max_failed_percent": "0",
        "checks-TOTAL_FORMS": "1",
        "checks-INITIAL_FORMS": "1",
        "checks-MIN_NUM_FORMS": "0",
        "checks-MAX_NUM_FORMS": "1000",
        "checks-0-id": check.pk,
        "checks-0-service": service.pk,
        "checks-0-name": check.name,
        "checks-0-query": check.query,
        "checks-0-comparison": check.comparison,
        "checks-0-threshold": "0.05",
        "checks-0-window": check.window,
        "checks-0-enabled": "on",
    }

    answer = admin_client(cast).post(f"/admin/releases/service/{service.pk}/change/", form)

    assert answer.status_code == 302, answer.content.decode()[:3000]
    service.refresh_from_db()
    assert service.description == "Now with a description"

    form["checks-0-query"] = "vector(1)"
    answer = admin_client(cast).post(f"/admin/releases/service/{service.pk}/change/", form)
    assert answer.status_code == 200
    assert "The query could not be checked" in answer.content.decode()
    check.refresh_from_db()
    assert check.query == "vector(0)"
