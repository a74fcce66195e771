"""A real Prometheus scrapes the portal's /metrics: target up, series stored with our labels.

The portal runs in pytest-django's `live_server` (a threaded WSGI server on the test database,
hence the transactional `cast_tx`); Debian's `prometheus` runs as a subprocess with a one-second
scrape interval and its own temporary TSDB. Everything is read back through Prometheus's HTTP
API, polled with a deadline. Skipped when /usr/bin/prometheus is not installed (fails under CI=true).
"""

import json
import subprocess
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from releases import states
from tests.factories import make_deployment, make_release
from tests.support import prometheus as prometheus_process
from tests.support.tools import require_tool

TOKEN = "metrics-scrape-token"


@pytest.fixture(autouse=True)
def _prometheus_installed():
    require_tool("prometheus")


def _scrape_configs(port: int, credentials: str) -> str:
    return (
        "  - job_name: pampam\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        "      type: Bearer\n"
        f"      credentials: {json.dumps(credentials)}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
    )


@pytest.fixture
def prometheus(tmp_path, live_server, settings):
    """Start Prometheus scraping the live server; `start(credentials)` returns a `Prometheus`."""
    settings.METRICS_TOKEN = TOKEN
    # The target is the IPv4 address the live server listens on, so no resolver is involved.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    port = urllib.parse.urlsplit(live_server.url).port
    processes: list[subprocess.Popen] = []

    def start(credentials: str) -> prometheus_process.Prometheus:
        return prometheus_process.start(tmp_path, _scrape_configs(port, credentials), processes)

    yield start
    for process in processes:
        prometheus_process.stop_process(process)


def history(cast):
    now = timezone.now()

    def ran_until_now(environment, state, seconds, **kwargs):
        started_at = now - timedelta(seconds=seconds)
        make_deployment(
            make_release(cast.service), environment, state=state, started_at=started_at, finished_at=now, **kwargs
        )

    ran_until_now(cast.prod, states.SUCCEEDED, 90, created_at=now - timedelta(hours=1))
    ran_until_now(cast.staging, states.FAILED, 700)
    make_deployment(make_release(cast.service), cast.staging, state=states.FAILED)
    make_deployment(make_release(cast.service), cast.dev)


def test_it_is_scraped_by_a_real_prometheus(cast_tx, live_server, prometheus):
    history(cast_tx)
    server = prometheus(TOKEN)

    target = server.target("pampam")
    assert target["health"] == "up", target
    assert target["lastError"] == ""
    assert target["scrapeUrl"] == f"http://127.0.0.1:{urllib.parse.urlsplit(live_server.url).port}/metrics"

    series = server.query("pampam_deployments")
    found = {(s["metric"]["service"], s["metric"]["environment"], s["metric"]["state"]): s["value"][1] for s in series}
    assert found == {
        ("storefront", "prod", "succeeded"): "1",
        ("storefront", "staging", "failed"): "2",
        ("storefront", "dev", "pending_approval"): "1",
    }
    for s in series:
        assert s["metric"]["job"] == "pampam"
        assert s["metric"]["instance"] == target["labels"]["instance"]

    # Histograms arrive whole: the bucket Prometheus stored for the 90 s prod rollout.
    buckets = server.query('pampam_deployment_duration_seconds_bucket{environment="prod",le="120.0"}')
    assert [b["value"][1] for b in buckets] == ["1"]

    # Prometheus kept every sample the portal sent: none dropped as duplicate or out of order.
    scraped = server.query('scrape_samples_scraped{job="pampam"}')
    stored = server.query('scrape_samples_post_metric_relabeling{job="pampam"}')
    assert float(scraped[0]["value"][1]) > 0
    assert scraped[0]["value"][1] == stored[0]["value"][1]
    families = server.query('count by (__name__) ({job="pampam", __name__=~"pampam_.+"})')
    assert {"pampam_deployments", "pampam_redis_up", "pampam_queue_jobs"} <= {f["metric"]["__name__"] for f in families}
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as answer:
        own = answer.read().decode()
    for problem in ("sample_duplicate_timestamp_total", "sample_out_of_order_total", "sample_out_of_bounds_total"):
        lines = [line for line in own.splitlines() if line.startswith(f"prometheus_target_scrapes_{problem}")]
        assert lines, problem
        assert all(line.endswith(" 0") for line in lines), lines


def test_it_marks_the_target_down_with_a_wrong_token(cast_tx, live_server, prometheus):
    history(cast_tx)
    server = prometheus("not-the-token")

    target = server.target("pampam")
    assert target["health"] == "down"
    assert "401" in target["lastError"], target["lastError"]
    assert server.query("pampam_deployments") == []
    assert server.query('up{job="pampam"}')[0]["value"][1] == "0"
