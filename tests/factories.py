"""Plain `make_*` factories (kwargs.setdefault), and `make_cast` for the shared people."""

from dataclasses import dataclass
from datetime import timedelta
from itertools import count

from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from clusters.models import Cluster, Environment
from releases import flows, states
from releases.models import Check, CheckSample, Deployment, Release, Service

_numbers = count(1)


def make_user(username, *groups, **kwargs):
    kwargs.setdefault("email", f"{username}@example.com")
    user = User.objects.create_user(username, password="pampam-test", **kwargs)
    user.groups.set(groups)
    return user


def make_cluster(**kwargs):
    kwargs.setdefault("name", f"cluster-{next(_numbers)}")
    kwargs.setdefault("api_url", "http://127.0.0.1:1")
    return Cluster.objects.create(**kwargs)


def make_environment(**kwargs):
    n = next(_numbers)
    kwargs.setdefault("slug", f"env-{n}")
    kwargs.setdefault("name", kwargs["slug"].title())
    kwargs.setdefault("position", n)
    kwargs.setdefault("namespace", kwargs["slug"])
    if "cluster" not in kwargs:
        kwargs["cluster"] = make_cluster()
    return Environment.objects.create(**kwargs)


def make_service(**kwargs):
    n = next(_numbers)
    kwargs.setdefault("slug", f"svc-{n}")
    kwargs.setdefault("name", kwargs["slug"].title())
    kwargs.setdefault("image_repository", f"registry.example/{kwargs['slug']}")
    kwargs.setdefault("k8s_deployment", kwargs["slug"])
    kwargs.setdefault("k8s_container", kwargs["slug"])
    return Service.objects.create(**kwargs)


def make_release(service, **kwargs):
    kwargs.setdefault("version", f"1.0.{next(_numbers)}")
    kwargs.setdefault("image", f"{service.image_repository}:{kwargs['version']}")
    kwargs.setdefault("git_sha", f"{next(_numbers):040x}")
    return Release.objects.create(service=service, **kwargs)


def make_deployment(release, environment, **kwargs):
    """A deployment row; one that reached the cluster (building, rolling out, ended) has started."""
    kwargs.setdefault("state", states.PENDING_APPROVAL)
    if kwargs["state"] in states.OBSERVED | {states.SUCCEEDED, states.FAILED}:
        kwargs.setdefault("started_at", kwargs.get("finished_at") or timezone.now())
    kwargs.setdefault("required_approvals", environment.required_approvals)
    return Deployment.objects.create(service=release.service, release=release, environment=environment, **kwargs)


def make_check(service, **kwargs):
    """A Prometheus check of the service: its 5xx ratio must stay below 0.05."""
    kwargs.setdefault("name", "5xx ratio")
    kwargs.setdefault("query", "x")
    kwargs.setdefault("threshold", 0.05)
    return Check.objects.create(service=service, **kwargs)


def make_baked(cast, latencies_ms, failed=0, release=None, **kwargs):
    """A guarded rollout in dev that reached its 60 s bake, with what its probe saw: one request
    per latency, `failed` of them failed."""
    kwargs.setdefault("bake_seconds", 60)
    kwargs["probe"] = {
        "url": "http://svc/healthz",
        "requests": len(latencies_ms),
        "failed": failed,
        "latencies_ms": latencies_ms,
    }
    return make_deployment(release or make_release(cast.service), cast.dev, **kwargs)


def make_failed_verification(cast):
    """A rollout in dev whose 5xx ratio climbed past its threshold during the bake: 8 of its 14
    samples fail, and its probe saw 90 requests, 28 of them failed, p99 41 ms."""
    check = make_check(cast.service)
    started = timezone.now() - timedelta(seconds=40)
    deployment = make_baked(
        cast,
        [8.0] * 80 + [41.0] * 10,
        failed=28,
        release=make_release(cast.service, version="2.0.0-errors"),
        state=states.FAILED,
        reason="Check “5xx ratio” failed: x = 0.31, which is not below 0.05.",
        started_at=started,
        finished_at=started + timedelta(seconds=30),
        bake_started_at=started + timedelta(seconds=8),
    )
    values = {second: 0.0 if second < 12 else 0.31 * (second - 10) / 20 for second in range(2, 30, 2)}
    outcome = {True: CheckSample.PASS, False: CheckSample.FAIL}
    record_samples(deployment, check, started, [(s, v, outcome[v < 0.05]) for s, v in values.items()])
    return deployment


def record_samples(deployment, check, since, readings):
    """One sample of `check` in `deployment` per (seconds after `since`, value, outcome) reading."""
    for second, value, outcome in readings:
        CheckSample.objects.create(
            deployment=deployment,
            check_rule=check,
            name=check.name,
            at=since + timedelta(seconds=second),
            value=value,
            threshold=check.threshold,
            outcome=outcome,
        )


@dataclass
class Cast:
    developers: Group
    approvers: Group
    release_managers: Group
    alice: User
    bob: User
    carol: User
    dave: User
    erin: User
    admin: User
    cluster: Cluster
    dev: Environment
    staging: Environment
    prod: Environment
    service: Service


def make_cast(cluster=None) -> Cast:
    developers = Group.objects.create(name="developers")
    approvers = Group.objects.create(name="approvers")
    release_managers = Group.objects.create(name="release-managers")
    cluster = cluster or make_cluster(name="main")
    common = {"cluster": cluster, "approver_group": approvers}
    dev = make_environment(slug="dev", position=1, deployer_group=developers, requires_previous=False, **common)
    staging = make_environment(slug="staging", position=2, deployer_group=developers, required_approvals=1, **common)
    prod = make_environment(
        slug="prod", position=3, deployer_group=release_managers, required_approvals=2, is_production=True, **common
    )
    return Cast(
        developers=developers,
        approvers=approvers,
        release_managers=release_managers,
        alice=make_user("alice", developers),
        bob=make_user("bob", approvers),
        carol=make_user("carol", approvers),
        dave=make_user("dave", release_managers, approvers),
        erin=make_user("erin"),
        admin=make_user("admin", is_staff=True, is_superuser=True),
        cluster=cluster,
        dev=dev,
        staging=staging,
        prod=prod,
        service=make_service(slug="storefront", name="Storefront"),
    )


def succeed_in(release, environment, **kwargs):
    """A finished, succeeded deployment of `release` in `environment`."""
    kwargs.setdefault("finished_at", timezone.now())
    return make_deployment(release, environment, state=states.SUCCEEDED, **kwargs)


def release_ready_for_staging(cast):
    """A new release of the cast's service that succeeded in dev (promotion allows staging)."""
    release = make_release(cast.service)
    succeed_in(release, cast.dev)
    return release


def pending_in_staging(cast):
    """alice's request of a new release in staging, waiting for one approval."""
    return flows.request_deployment(cast.alice, release_ready_for_staging(cast), cast.staging)


def pending_in_prod(cast):
    """dave's request of a new release in prod (it succeeded in staging), waiting for two approvals."""
    release = make_release(cast.service)
    succeed_in(release, cast.staging)
    return flows.request_deployment(cast.dave, release, cast.prod)


def assert_still_pending(deployment):
    """`deployment` (from `pending_in_staging`) still waits, and no other deployment was added."""
    deployment.refresh_from_db()
    assert deployment.state == states.PENDING_APPROVAL
    assert Deployment.objects.count() == 2  # it and its release's success in dev


def client_for(user):
    """A test client logged in as `user`."""
    client = Client()
    client.force_login(user)
    return client
