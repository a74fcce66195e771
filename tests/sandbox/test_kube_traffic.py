"""The sandbox cluster serves traffic and metrics: a load balancer per Deployment routed only to
Ready pods, and /metrics in Prometheus's text format (sandbox/kube/traffic.py)."""

import threading

import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox.kube import start
from tests.support import wait_until


def get(sandbox, name="web", namespace="default"):
    return requests.get(sandbox.traffic_url(namespace, name), timeout=10)


def metrics(sandbox) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample /metrics exposes."""
    answer = requests.get(f"{sandbox.url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def requests_total(sandbox, **labels) -> float:
    return sum(
        value
        for (name, pairs), value in metrics(sandbox).items()
        if name == "sandbox_http_requests_total" and labels.items() <= dict(pairs).items()
    )


def started(image, replicas=2, ready_after=0.1, **spec):
    sandbox = start(ready_after=ready_after, token="secret")
    sandbox.create_deployment("default", "web", image, replicas=replicas, **spec)
    return sandbox


def test_it_spreads_requests_over_the_ready_pods_without_credentials():
    with started("shop:1.0") as sandbox:
        sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"))
        answers = [get(sandbox) for _ in range(6)]

        assert [a.status_code for a in answers] == [200] * 6
        assert {a.json()["version"] for a in answers} == {"1.0"}
        assert len({a.headers["X-Pod"] for a in answers}) == 2
        assert requests_total(sandbox, deployment="web", version="1.0", code="200") == 6


def test_it_answers_503_while_no_pod_is_ready():
    with started("shop:1.0", ready_after=1.0) as sandbox:
        answer = get(sandbox)
        assert answer.status_code == 503
        assert "no ready pods" in answer.json()["error"]
        assert requests_total(sandbox, deployment="web", code="503") == 1

        sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"))
        assert get(sandbox).status_code == 200


def test_it_answers_404_for_an_unknown_deployment():
    with started("shop:1.0") as sandbox:
        assert get(sandbox, name="nope").status_code == 404
        assert requests.get(f"{sandbox.url}/sandbox/traffic/default", timeout=5).status_code == 404


def test_it_answers_a_share_with_500_for_an_errors_tag():
    with started("shop:2.0-errors", replicas=1) as sandbox:
        sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"))
        codes = [get(sandbox).status_code for _ in range(9)]

        assert codes.count(500) == 3
        assert codes.count(200) == 6
        assert requests_total(sandbox, version="2.0-errors", code="500") == 3


def test_it_adds_latency_for_a_slow_tag():
    with started("shop:2.0-slow", replicas=1) as sandbox:
        sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"))
        for _ in range(3):
            assert get(sandbox).status_code == 200

        samples = metrics(sandbox)
        slow = {k: v for k, v in samples.items() if dict(k[1]).get("version") == "2.0-slow"}
        assert next(v for (name, _), v in slow.items() if name == "sandbox_http_request_duration_seconds_count") == 3
        assert next(v for (name, _), v in slow.items() if name == "sandbox_http_request_duration_seconds_sum") > 0.75
        fast = [v for (name, pairs), v in slow.items() if name.endswith("_bucket") and dict(pairs)["le"] == "0.1"]
        assert fast == [0]


def test_it_keeps_serving_through_a_rolling_update_and_not_through_a_recreate():
    """The load balancer, not the portal: a default rolling update never leaves it without a
    ready pod; Recreate kills the old pods before the new ones are ready."""
    with started("shop:1.0", ready_after=0.5) as sandbox:
        sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"))
        assert _codes_during_update(sandbox, "shop:1.1") == {200}

        recreate = {"type": "Recreate", "rollingUpdate": None}
        deployment = sandbox.deployment("default", "web")
        deployment["spec"]["strategy"] = recreate
        sandbox.cluster.replace("deployments", "default", "web", deployment)
        sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"))
        assert 503 in _codes_during_update(sandbox, "shop:1.2")


def _codes_during_update(sandbox, image) -> set:
    seen, done = set(), threading.Event()

    def hammer():
        while not done.is_set():
            seen.add(get(sandbox).status_code)

    thread = threading.Thread(target=hammer)
    thread.start()
    deployment = sandbox.deployment("default", "web")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
    sandbox.cluster.replace("deployments", "default", "web", deployment)
    wait_until(lambda: sandbox.deployment("default", "web")["metadata"]["generation"] > 1)
    sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"), timeout=30)
    done.set()
    thread.join()
    return seen


def test_it_generates_user_traffic_at_a_rate():
    sandbox = start(ready_after=0.1, traffic_rate=20)
    try:
        sandbox.create_deployment("default", "web", "shop:1.0", replicas=1)
        sandbox.wait_for(lambda c: sandbox.rollout_complete("default", "web"))
        wait_until(lambda: requests_total(sandbox, deployment="web", version="1.0", code="200") >= 5)
    finally:
        sandbox.stop()
