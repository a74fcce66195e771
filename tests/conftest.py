"""The shared cast: groups, users, a cluster, environments dev → staging → prod, a service.

Permission tests get their people for free: alice (developer: deploys to dev and staging),
bob and carol (approvers), dave (release manager: deploys to prod), erin (viewer: no
groups), admin (staff). Tests run on PostgreSQL and Redis only; start-up fails at once with
a clear message when either cannot be reached.
"""

import os
import time
from datetime import timedelta

import pytest
from channels.layers import channel_layers
from django.conf import settings
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from clusters.models import FreezeWindow
from tests import support
from tests.factories import make_cast

# Hypothesis: the normal suite runs a fixed set of sequences (the same on every run, so CI is
# repeatable); `pytest --hypothesis-profile=long` explores many more, longer, new ones.
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
hypothesis_settings.register_profile(
    "default",
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SLOW_IS_FINE,
)
hypothesis_settings.register_profile(
    "long", max_examples=200, stateful_step_count=60, deadline=None, suppress_health_check=_SLOW_IS_FINE
)
hypothesis_settings.load_profile("default")


def pytest_configure(config):
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        pytest.exit(
            f"Tests need PostgreSQL: DATABASE_URL={os.environ.get('DATABASE_URL', '(unset)')} "
            "(run them with `make test`).",
            returncode=2,
        )
    _require_postgres()
    _require_redis()
    # Real hashing costs ~0.4 s per user; tests create a cast of seven per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _require_postgres():
    import psycopg

    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"],
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {db['HOST']}:{db['PORT']} cannot be reached: {exc}", returncode=2)


def _require_redis():
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis at {settings.REDIS_URL} cannot be reached: {exc}", returncode=2)


@pytest.fixture
def cast(db):
    return make_cast()


@pytest.fixture
def frozen_dev(cast):
    """Dev frozen for the group-buy event, from an hour ago to an hour from now."""
    now = timezone.now()
    return FreezeWindow.objects.create(
        environment=cast.dev, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), reason="group buy"
    )


@pytest.fixture
def cast_tx(transactional_db):
    """The cast for tests that need commits to happen (jobs, broadcasts, threads)."""
    return make_cast()


@pytest.fixture(autouse=True)
def _empty_queue():
    import django_rq

    queue = django_rq.get_queue("default")
    queue.empty()
    # Retries scheduled and jobs started by an earlier test, and the "already queued" pointers
    # to them, would make this test's doorbells look rung already.
    for registry in (queue.scheduled_job_registry, queue.started_job_registry, queue.deferred_job_registry):
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)
    stale = list(queue.connection.scan_iter("pampam:job:*"))
    if stale:
        queue.connection.delete(*stale)


@pytest.fixture(autouse=True)
def _own_channel_layer():
    """A channel layer per test. channels-redis keeps receive state (a lock, per-channel buffers
    and the loop they belong to) on the layer object, and every `async_to_sync` here runs an event
    loop of its own: a layer shared across tests can meet a lock bound to an earlier test's loop."""
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fragments_follow_commits(request, settings):
    """Under `db` nothing commits, so no change would retire a rendered fragment (plumbing.fragments
    renews tokens after commit): those tests get every page rendered anew. Tests whose writes commit
    (transactional_db, live_server) keep the real cache, as production does."""
    marked = request.node.get_closest_marker("django_db")
    committing = {"transactional_db", "live_server", "cast_tx"} & set(request.fixturenames)
    if not committing and not (marked and marked.kwargs.get("transaction")):
        settings.CACHES = {**settings.CACHES, "fragments": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


@pytest.fixture
def run_jobs():
    """Run queued jobs in this process (bursts of rq's SimpleWorker) until none is left.

    Jobs scheduled for later (a poll of Jenkins, a retry after backoff) are brought forward,
    so a test never waits for their time. With `until`, it runs until `until()` holds; with
    `later=False`, it runs only what is queued now (to look at a job waiting for its retry); with
    `real_time=True`, scheduled jobs run when their time comes, as rq's scheduler runs them.
    """
    import django_rq
    from rq import SimpleWorker

    def run(until=None, timeout=support.DEADLINE, later=True, real_time=False):
        queue = django_rq.get_queue("default")
        deadline = time.monotonic() + timeout
        while True:
            SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)
            if (until is not None and until()) or not later:
                return
            moved = support.run_scheduled_now(due_only=real_time)
            waiting = real_time and django_rq.get_queue("default").scheduled_job_registry.count
            if until is None and not moved and not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs did not settle within {timeout}s")
            if not moved:
                time.sleep(0.05)

    return run


# -- a sandbox Kubernetes cluster --------------------------------------------------------------


@pytest.fixture
def make_kube():
    """Start sandbox clusters (pods Ready after `ready_after` s) running tests.support.kube_seed."""
    from sandbox.kube import start

    started = []

    def make(ready_after=0.2, port=0, bookmark_interval=0.2, **seed_options):
        sandbox = start(
            port=port,
            ready_after=ready_after,
            bookmark_interval=bookmark_interval,
            seed=support.kube_seed(**seed_options),
        )
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def kube(make_kube):
    return make_kube()


@pytest.fixture
def kube_cast(cast_tx, kube):
    """The cast, its cluster pointed at `kube`, storefront 1.0.0 running in dev."""
    return support.connect(cast_tx, kube)


@pytest.fixture
def watcher(kube_cast):
    """The cluster watcher in background threads, as `manage.py watch_clusters` runs it."""
    from clusters.watcher import Watcher

    running = Watcher(name="test-watcher", heartbeat_seconds=0.2).start()
    yield running
    running.shutdown()


# -- a sandbox GitHub --------------------------------------------------------------------------


@pytest.fixture
def github_sandbox(settings):
    """A GitHub with `acme/web` (30 commits) on an ephemeral port; the portal points at it."""
    from django.core.cache import cache

    from sandbox import github

    handle = github.start(token=support.GITHUB_TOKEN, repos={support.GITHUB_REPO: 30})
    settings.GITHUB_API_URL = handle.api_url
    settings.GITHUB_TOKEN = support.GITHUB_TOKEN
    cache.clear()
    yield handle
    handle.stop()
    cache.clear()


@pytest.fixture
def repo_shas(github_sandbox):
    return github_sandbox.commits(support.GITHUB_REPO)
