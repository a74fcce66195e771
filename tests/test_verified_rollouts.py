"""Verified rollouts, end to end: Prometheus checks and the traffic probe (releases/verdicts.py).

The sandbox cluster serves traffic through each Deployment's load balancer and exposes /metrics
(sandbox/kube/traffic.py); synthetic users send it requests; a real Prometheus (Debian's
/usr/bin/prometheus) scrapes it every second. The watcher runs in threads and jobs run as the
worker runs them, scheduled ones at their real time (`run_jobs(real_time=True)`), since the
verify job looks again once a second.
"""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from clusters.watcher import Watcher
from releases import states
from releases.models import Check, CheckSample, Deployment, Verification
from sandbox.kube import start as start_kube
from tests.support import NAME, REPO, cluster_image, connect, deploy, kube_seed
from tests.support import prometheus as prometheus_process
from tests.support.tools import require_tool

ERROR_RATIO = (
    'sum(rate(sandbox_http_requests_total{namespace="$namespace",deployment="storefront",code=~"5.."}[$window]))'
    ' / sum(rate(sandbox_http_requests_total{namespace="$namespace",deployment="storefront"}[$window]))'
)
FAST = {"VERIFY_INTERVAL_SECONDS": 1, "CHECK_INTERVAL_SECONDS": 1, "PROBE_REQUESTS": 3}


@pytest.fixture
def cluster(cast_tx):
    """A sandbox cluster with users sending 20 requests a second to storefront (2 replicas in
    dev), the cast pointed at it, and the watcher running."""
    sandbox = start_kube(ready_after=0.3, bookmark_interval=0.2, seed=kube_seed(replicas=2), traffic_rate=20)
    connect(cast_tx, sandbox)
    watcher = Watcher(name="verify-watcher", heartbeat_seconds=0.2).start()
    yield sandbox
    watcher.shutdown()
    sandbox.stop()


class PrometheusControl:
    """The real Prometheus of a test: `server`, and `restart()` it on the same port."""

    def __init__(self, tmp_path, cluster):
        self.tmp_path, self.processes = tmp_path, []
        self.scrape = (
            "  - job_name: sandbox\n"
            "    metrics_path: /metrics\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{cluster.port}']\n"
        )
        self.server = prometheus_process.start(tmp_path, self.scrape, self.processes)
        assert self.server.target("sandbox")["health"] == "up"

    def restart(self) -> None:
        port = int(self.server.url.rsplit(":", 1)[1])
        self.server = prometheus_process.start(self.tmp_path, self.scrape, self.processes, port=port)

    def stop(self) -> None:
        for process in self.processes:
            prometheus_process.stop_process(process)


@pytest.fixture
def prometheus(tmp_path, cluster, settings):
    """A real Prometheus scraping the sandbox's /metrics; PROMETHEUS_URL points at it."""
    require_tool("prometheus")
    control = PrometheusControl(tmp_path, cluster)
    settings.PROMETHEUS_URL = control.server.url
    yield control
    control.stop()


def error_ratio_check(cast, threshold=0.05):
    return Check.objects.create(
        service=cast.service, name="5xx ratio", query=ERROR_RATIO, comparison="<", threshold=threshold, window="5s"
    )


def settle(deployment, run_jobs, *wanted):
    run_jobs(until=lambda: Deployment.objects.get(pk=deployment.pk).state in wanted, real_time=True, timeout=90)
    deployment.refresh_from_db()
    return deployment


@override_settings(**FAST)
def test_it_fails_a_release_answering_errors_on_its_check_and_rolls_it_back(cast_tx, cluster, prometheus, run_jobs):
    cast_tx.dev.auto_rollback = True
    cast_tx.dev.save()
    Verification.objects.create(environment=cast_tx.dev, bake_seconds=120)
    error_ratio_check(cast_tx)

    deployment = settle(deploy(cast_tx, "1.1.0-errors"), run_jobs, states.FAILED, states.SUCCEEDED)

    assert deployment.state == states.FAILED, deployment.reason
    assert "Check “5xx ratio” failed" in deployment.reason
    assert 'namespace="dev",deployment="storefront",code=~"5.."}[5s]' in deployment.reason  # as evaluated
    assert "which is not below 0.05" in deployment.reason
    failed = deployment.events.get(kind="state", data__to=states.FAILED)
    assert failed.message == deployment.reason
    sample = CheckSample.objects.filter(deployment=deployment, outcome=CheckSample.FAIL).last()
    assert sample.value > 0.05
    assert sample.threshold == 0.05

    rollback = Deployment.objects.get(rolls_back=deployment)
    rollback = settle(rollback, run_jobs, states.SUCCEEDED, states.FAILED)
    assert rollback.state == states.SUCCEEDED, rollback.reason
    assert rollback.automatic
    assert cluster_image(cluster) == f"{REPO}:1.0.0"
    assert not rollback.check_samples.exists()  # a rollback is not held by the alarm it answers


@override_settings(**FAST)
def test_it_passes_a_good_release_after_its_bake_time(cast_tx, cluster, prometheus, run_jobs):
    Verification.objects.create(environment=cast_tx.dev, bake_seconds=4)
    error_ratio_check(cast_tx)

    deployment = settle(deploy(cast_tx, "1.1.0"), run_jobs, states.FAILED, states.SUCCEEDED)

    assert deployment.state == states.SUCCEEDED, deployment.reason
    assert deployment.bake_seconds == 4
    assert (deployment.finished_at - deployment.bake_started_at).total_seconds() >= 4
    baking = deployment.events.get(kind="verify")
    assert "Verifying for 4 s" in baking.message
    success = deployment.events.get(kind="state", data__to=states.SUCCEEDED)
    assert success.message == "Rolled out and verified: 1 check held for 4 s."
    outcomes = set(deployment.check_samples.values_list("outcome", flat=True))
    assert outcomes <= {CheckSample.PASS, CheckSample.NO_DATA}
    # Users' traffic reached Prometheus, so the check saw values, not only "no data".
    assert CheckSample.PASS in outcomes
    assert cluster_image(cluster) == f"{REPO}:1.1.0"


def unreachable_prometheus(settings):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{prometheus_process.free_port()}"


@pytest.mark.parametrize(
    ("choice", "state", "said"),
    [
        (Verification.FAIL, states.FAILED, "This environment fails a rollout its checks cannot judge."),
        (Verification.PASS, states.SUCCEEDED, "The checks pass without it, as this environment asks."),
    ],
)
@override_settings(**FAST)
def test_it_gives_the_configured_outcome_when_prometheus_is_down(
    cast_tx, cluster, run_jobs, settings, choice, state, said
):
    unreachable_prometheus(settings)
    Verification.objects.create(environment=cast_tx.dev, bake_seconds=2, when_unreachable=choice)
    error_ratio_check(cast_tx)

    deployment = settle(deploy(cast_tx, "1.1.0"), run_jobs, states.FAILED, states.SUCCEEDED)

    assert deployment.state == state, deployment.reason
    assert deployment.events.filter(message__contains=said).exists()
    assert deployment.events.filter(message__contains="cannot be reached").exists()
    assert deployment.check_samples.filter(outcome=CheckSample.UNREACHABLE).exists()


@override_settings(**FAST)
def test_it_waits_for_an_unreachable_prometheus_and_fails_after_the_progress_deadline(
    cast_tx, cluster, run_jobs, settings
):
    unreachable_prometheus(settings)
    cast_tx.dev.progress_deadline_seconds = 10
    cast_tx.dev.save()
    Verification.objects.create(environment=cast_tx.dev, bake_seconds=1, when_unreachable=Verification.WAIT)
    error_ratio_check(cast_tx)

    deployment = deploy(cast_tx, "1.1.0")

    def well_past_the_bake():
        deployment.refresh_from_db()
        return deployment.bake_started_at and timezone.now() > deployment.bake_started_at + timedelta(seconds=3)

    run_jobs(until=well_past_the_bake, real_time=True)
    # Baked for three times its bake time, and still rolling out: an unchecked rollout does not pass.
    assert deployment.state == states.ROLLING_OUT
    assert deployment.events.filter(message__contains="Waiting for it: the rollout cannot pass unchecked.").exists()
    assert deployment.verification["unreachable_since"]

    deployment = settle(deployment, run_jobs, states.FAILED, states.SUCCEEDED)
    assert deployment.state == states.FAILED
    assert "Waited 10 s (the progress deadline) for it to answer." in deployment.reason


@override_settings(**FAST)
def test_it_waits_while_prometheus_is_down_and_passes_once_it_answers_again(cast_tx, cluster, prometheus, run_jobs):
    Verification.objects.create(environment=cast_tx.dev, bake_seconds=2, when_unreachable=Verification.WAIT)
    error_ratio_check(cast_tx)
    prometheus.server.stop()

    deployment = deploy(cast_tx, "1.1.0")
    run_jobs(until=lambda: deployment.events.filter(message__contains="Waiting for it").exists(), real_time=True)
    prometheus.restart()
    deployment = settle(deployment, run_jobs, states.FAILED, states.SUCCEEDED)

    assert deployment.state == states.SUCCEEDED, deployment.reason
    assert deployment.events.filter(message="Prometheus answers again; the checks go on.").exists()
    outcomes = list(deployment.check_samples.values_list("outcome", flat=True))
    assert outcomes[0] == CheckSample.UNREACHABLE
    assert outcomes[-1] in (CheckSample.PASS, CheckSample.NO_DATA)


# -- the probe --------------------------------------------------------------------------------


@pytest.fixture
def slow_cluster(cast_tx):
    """Pods Ready after 2 s (so a gap in service lasts long enough to be seen), no users."""
    clusters, watchers = [], []

    def make(**spec):
        sandbox = start_kube(ready_after=2.0, bookmark_interval=0.2, seed=kube_seed(replicas=2, **spec))
        clusters.append(sandbox)
        connect(cast_tx, sandbox)
        cast_tx.service.probe_url = f"{sandbox.url}/sandbox/traffic/{{namespace}}/{NAME}/"
        cast_tx.service.save()
        Verification.objects.create(environment=cast_tx.dev, bake_seconds=2)
        watchers.append(Watcher(name="probe-watcher", heartbeat_seconds=0.2).start())
        return sandbox

    yield make
    for watcher in watchers:
        watcher.shutdown()
    for sandbox in clusters:
        sandbox.stop()


@override_settings(**FAST)
def test_it_keeps_the_probe_at_zero_failures_through_a_default_rolling_update(cast_tx, slow_cluster, run_jobs):
    slow_cluster()

    deployment = settle(deploy(cast_tx, "1.1.0"), run_jobs, states.FAILED, states.SUCCEEDED)

    assert deployment.state == states.SUCCEEDED, deployment.reason
    summary = deployment.probe_summary
    assert summary["failed"] == 0
    assert summary["requests"] >= 9  # at least three rounds: the rollout takes 4 s, the bake 2 s
    assert summary["text"] == f"{summary['requests']} requests, 0 failed, p99 {summary['p99']:.0f} ms"
    assert f"probe: {summary['text']}" in deployment.events.get(kind="state", data__to=states.SUCCEEDED).message


@override_settings(**FAST)
def test_it_shows_the_failed_probe_requests_of_a_recreate(cast_tx, slow_cluster, run_jobs):
    slow_cluster(strategy={"type": "Recreate"})

    deployment = settle(deploy(cast_tx, "1.1.0"), run_jobs, states.FAILED, states.SUCCEEDED)

    assert deployment.state == states.FAILED
    summary = deployment.probe_summary
    assert summary["failed"] > 0
    assert f"{summary['failed']} of {summary['requests']} requests failed" in deployment.reason
    assert "more than the 0 % allowed); last: HTTP 503." in deployment.reason
