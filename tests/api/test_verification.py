"""The API's deployment detail says what the verification of a guarded rollout found: the bake,
the probe's counts and percentiles, and each check's last evaluation."""

from datetime import timedelta

from django.utils import timezone

from releases import states
from tests.factories import make_baked, make_check, make_deployment, make_release, record_samples
from tests.support.api import api_as


def test_it_shows_the_bake_the_probe_and_each_checks_last_reading(cast):
    check = make_check(cast.service)
    baked = timezone.now() - timedelta(seconds=20)
    deployment = make_baked(cast, [5.0, 6.0, 7.0, 90.0], failed=1, state=states.ROLLING_OUT, bake_started_at=baked)
    record_samples(deployment, check, baked, [(1, 0.0, "pass"), (6, 0.02, "pass")])

    body = api_as(cast.erin, "read").get(f"/api/v1/deployments/{deployment.pk}/").json()

    verification = body["verification"]
    assert verification["bake_seconds"] == 60
    assert verification["bake_started_at"]
    assert verification["probe"] == {
        "url": "http://svc/healthz",
        "requests": 4,
        "failed": 1,
        "p50": 6.0,
        "p95": 90.0,
        "p99": 90.0,
        "text": "4 requests, 1 failed, p99 90 ms",
    }
    assert [(c["name"], c["value"], c["threshold"], c["outcome"]) for c in verification["checks"]] == [
        ("5xx ratio", 0.02, 0.05, "pass")
    ]


def test_it_shows_an_unguarded_deployment_with_nothing_verified(cast):
    deployment = make_deployment(make_release(cast.service), cast.dev, state=states.SUCCEEDED)

    body = api_as(cast.erin, "read").get(f"/api/v1/deployments/{deployment.pk}/").json()

    assert body["verification"] == {"bake_started_at": None, "bake_seconds": 0, "probe": None, "checks": []}
