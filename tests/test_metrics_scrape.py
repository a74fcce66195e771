"""A real Prometheus scrapes the portal's /metrics: target up, series stored with our labels.

The portal runs in pytest-django's `live_server` (a threaded WSGI server on the test database,
hence the transactional `cast_tx`); Debian's `prometheus` runs as a subprocess with a one-second
scrape interval and its own temporary TSDB. Everything is read back through Prometheus's HTTP
API, polled with a deadline. Skipped when /usr/bin/prometheus is not installed (fails under CI=true).
"""

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from releases import states
from tests.factories import make_deployment, make_release
from tests.support.tools import require_tool

PROMETHEUS = Path("/usr/bin/prometheus")
TOKEN = "metrics-scrape-token"
DEADLINE = 30.0


@pytest.fixture(autouse=True)
def _prometheus_installed():
    require_tool("prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen
    log: Path

    def api(self, path: str, **params) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = get_json(f"{self.url}/api/v1/{path}{query}")
        assert body["status"] == "success", body
        return body["data"]

    def poll(self, what: str, probe):
        """`probe()` until it returns something truthy; fail with what Prometheus logged."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                found = probe()
            except OSError:  # not listening yet
                found = None
            if found:
                return found
            time.sleep(0.1)
        pytest.fail(f"no {what} within {DEADLINE:.0f} s; prometheus said: {self.log.read_text()}")

    def target(self) -> dict:
        """The scraped target once it has been scraped at least once (health no longer "unknown")."""

        def scraped():
            active = self.api("targets", state="active")["activeTargets"]
            return next((t for t in active if t["labels"]["job"] == "pampam" and t["health"] != "unknown"), None)

        return self.poll("scrape of the portal", scraped)

    def query(self, promql: str) -> list[dict]:
        return self.api("query", query=promql)["result"]


def _config(tmp_path, port: int, credentials: str):
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: pampam\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        "      type: Bearer\n"
        f"      credentials: {json.dumps(credentials)}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
    )
    return config


def _launch(tmp_path, config, attempt: int) -> Prometheus:
    listen = free_port()
    log = tmp_path / f"prometheus-{attempt}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / f'tsdb-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{listen}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Prometheus(f"http://127.0.0.1:{listen}", process, log)


def _ready(server: Prometheus) -> bool:
    """Wait until the server answers /-/ready (True) or exits (False)."""
    ready = time.monotonic() + DEADLINE
    while server.process.poll() is None and time.monotonic() < ready:
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    if server.process.poll() is None:
        pytest.fail(f"prometheus not ready within {DEADLINE:.0f} s: {server.log.read_text()}")
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def prometheus(tmp_path, live_server, settings):
    """Start Prometheus scraping the live server; `start(credentials)` returns a `Prometheus`."""
    settings.METRICS_TOKEN = TOKEN
    # The target is the IPv4 address the live server listens on, so no resolver is involved.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    port = urllib.parse.urlsplit(live_server.url).port
    processes: list[subprocess.Popen] = []

    def start(credentials: str) -> Prometheus:
        config = _config(tmp_path, port, credentials)
        # A free port can be taken between the probe and Prometheus binding it: try again then.
        for attempt in range(3):
            server = _launch(tmp_path, config, attempt)
            processes.append(server.process)
            if _ready(server):
                return server
            if "address already in use" not in server.log.read_text():
                pytest.fail(f"prometheus exited with {server.process.returncode}: {server.log.read_text()}")
        pytest.fail("prometheus found no free port in 3 attempts")

    yield start
    for process in processes:
        _stop(process)


def history(cast):
    now = timezone.now()
    make_deployment(
        make_release(cast.service),
        cast.prod,
        state=states.SUCCEEDED,
        started_at=now - timedelta(seconds=90),
        finished_at=now,
        created_at=now - timedelta(hours=1),
    )
    make_deployment(
        make_release(cast.service),
        cast.staging,
        state=states.FAILED,
        started_at=now - timedelta(seconds=700),
        finished_at=now,
    )
    make_deployment(make_release(cast.service), cast.staging, state=states.FAILED)
    make_deployment(make_release(cast.service), cast.dev)


def test_it_is_scraped_by_a_real_prometheus(cast_tx, live_server, prometheus):
    history(cast_tx)
    server = prometheus(TOKEN)

    target = server.target()
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

    target = server.target()
    assert target["health"] == "down"
    assert "401" in target["lastError"], target["lastError"]
    assert server.query("pampam_deployments") == []
    assert server.query('up{job="pampam"}')[0]["value"][1] == "0"
