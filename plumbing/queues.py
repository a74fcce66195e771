"""The one enqueue helper: every background job goes through `enqueue`.

Jobs take primary keys, re-read, and return quietly when the object is gone or already
past that step, so enqueuing twice is harmless. With RQ's COMMIT_MODE "on_db_commit"
(django-rq 4), a job enqueued inside a transaction is sent only once it commits.
"""

import logging
from contextlib import contextmanager

import django_rq

log = logging.getLogger(__name__)


def enqueue(func, *args, delay_seconds: float = 0, job_id: str | None = None, **kwargs):
    """Queue `func(*args, **kwargs)` on the default queue (optionally after a delay)."""
    queue = django_rq.get_queue("default")
    options = {"job_id": job_id} if job_id else {}
    try:
        if delay_seconds:
            from datetime import timedelta

            return queue.enqueue_in(timedelta(seconds=delay_seconds), func, *args, **options, **kwargs)
        return queue.enqueue(func, *args, **options, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Redis down: the reconciler rings the bell again
        log.warning("could not enqueue %s: %s", getattr(func, "__name__", func), exc)
        return None


def depth() -> int:
    try:
        return django_rq.get_queue("default").count
    except Exception:  # noqa: BLE001
        return -1


def redis_ok() -> bool:
    try:
        return bool(django_rq.get_connection("default").ping())
    except Exception:  # noqa: BLE001
        return False


class Busy(Exception):
    """Another job holds the lock; raise out of the job so RQ retries it later."""


@contextmanager
def exclusive(name: str, seconds: int = 60):
    """Run the block while holding the Redis lock `name`, so two jobs never do the same work at once."""
    lock = django_rq.get_connection("default").lock(f"pampam:{name}", timeout=seconds)
    if not lock.acquire(blocking=True, blocking_timeout=seconds / 2):
        raise Busy(f"Another job is working on {name}; trying again later.")
    try:
        yield
    finally:
        lock.release()
