"""The shared cast: groups, users, a cluster, environments dev → staging → prod, a service.

Permission tests get their people for free: alice (developer: deploys to dev and staging),
bob and carol (approvers), dave (release manager: deploys to prod), erin (viewer: no
groups), admin (staff). Tests run on PostgreSQL and Redis only; start-up fails at once with
a clear message when either cannot be reached.
"""

import os

import pytest
from django.conf import settings

from tests.factories import make_cast


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
def cast_tx(transactional_db):
    """The cast for tests that need commits to happen (jobs, broadcasts, threads)."""
    return make_cast()


@pytest.fixture(autouse=True)
def _empty_queue():
    import django_rq

    django_rq.get_queue("default").empty()
    return


@pytest.fixture
def run_jobs():
    """Run every queued job in this process (a burst of rq's SimpleWorker)."""
    import django_rq
    from rq import SimpleWorker

    def run():
        queue = django_rq.get_queue("default")
        worker = SimpleWorker([queue], connection=queue.connection)
        worker.work(burst=True, with_scheduler=False)

    return run
