"""The one enqueue helper and the one retry policy: every background job goes through `enqueue`.

The database is the truth and a queued job is a doorbell. Jobs take primary keys, re-read, and
return quietly when the work is done already, so ringing twice is harmless; still, a bell that
is already ringing (queued, scheduled for a retry, or running) is not rung again, so a reconciler
that re-rings every 30 s cannot flood the queue while a job waits for its retry.

Retries: every job gets the same policy, exponential backoff with jitter. A job raises a
*transient* error to be retried (see `retry_or_give_up`); a *permanent* one, or the last attempt,
is recorded once by the job and not raised. Nothing sleeps inside a worker to wait: a job that
must look again later enqueues itself with `delay`.

With RQ's COMMIT_MODE "on_db_commit" (django-rq 4), a job enqueued inside a transaction is sent
only once it commits (and returns None).
"""

import hashlib
import logging
import random
import re
import time
from contextlib import contextmanager
from datetime import timedelta

import django_rq
from redis.exceptions import RedisError
from rq import Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler
from rq.worker import Worker

from plumbing import alive

log = logging.getLogger(__name__)

# Seconds before each retry; the sum (about four minutes) outlasts an API server restart.
BACKOFF = (2, 5, 15, 30, 60, 120)
JITTER = 0.2
PENDING = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED})
KEY_TTL = 24 * 3600


def policy() -> Retry:
    """The retry policy of every job: BACKOFF with ±20 % jitter, so retries of many jobs spread out."""
    return Retry(
        max=len(BACKOFF), interval=[max(1, round(s * random.uniform(1 - JITTER, 1 + JITTER))) for s in BACKOFF]
    )


def job_key(func, *args) -> str:
    """A stable name for "this function with these arguments" (what counts as the same bell)."""
    text = "-".join([func.__name__, *(str(a) for a in args)])
    key = re.sub(r"[^A-Za-z0-9_-]", "_", text)
    return key if len(key) <= 120 else key[:80] + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def enqueue(func, *args, delay: float = 0) -> Job | None:
    """Queue `func(*args)` with the retry policy, unless the same call is already pending.

    `delay` (seconds) schedules it for later (the worker runs with --with-scheduler). Returns the
    job, or None when the same call is pending, when queued for after the commit, or when Redis
    is down (the reconciler rings again).
    """
    queue = django_rq.get_queue("default")
    key = job_key(func, *args)
    try:
        if _pending(queue.connection, key):
            return None
        job_id = f"{key}-{random.getrandbits(48):012x}"
        options = {"job_id": job_id, "retry": policy()}
        if delay:
            job = queue.enqueue_in(timedelta(seconds=delay), func, *args, **options)
        else:
            job = queue.enqueue(func, *args, **options)
        queue.connection.set(_pointer(key), job_id, ex=KEY_TTL)
        return job
    except RedisError as exc:
        log.warning("could not enqueue %s: %s", key, exc)
        return None


def _pointer(key: str) -> str:
    return f"pampam:job:{key}"


def _pending(connection, key: str) -> bool:
    """Is the last job queued for `key` still waiting, scheduled or running (and not us)?"""
    job_id = connection.get(_pointer(key))
    if not job_id:
        return False
    job_id = job_id.decode()
    current = get_current_job()
    if current is not None and current.id == job_id:
        return False  # a job re-enqueuing itself to look again later
    try:
        return Job.fetch(job_id, connection=connection).get_status() in PENDING
    except NoSuchJobError:
        return False


def reclaim_abandoned() -> int:
    """Hand back the jobs of workers that died in the middle of one (kill -9, OOM, a lost node).

    rq marks a running job started, with a heartbeat its worker renews (every 30 s, good for 90 s).
    A worker that dies leaves its job started, so `enqueue` counts that bell as still ringing and
    the reconciler cannot ring it again. rq's own maintenance retries such a job (or fails it, with
    no retries left) once the heartbeat has lapsed, but a worker runs that maintenance only when it
    starts and then every ten minutes: an approved deployment whose run died with its worker sat
    in "Approved" for ten minutes. The reconciler calls this at every pass. Returns how many.
    """
    registry = django_rq.get_queue("default").started_job_registry
    try:
        abandoned = registry.get_expired_job_ids()
        if abandoned:
            log.warning("retrying jobs whose worker died: %s", ", ".join(abandoned))
            registry.cleanup()
        return len(abandoned)
    except RedisError as exc:
        log.warning("could not reclaim the jobs of dead workers: %s", exc)
        return 0


def run_due_without_scheduler() -> int:
    """Queue the delayed jobs whose time has come while no scheduler is running. Returns how many.

    `rqworker --with-scheduler` runs rq's scheduler under a lock that outlives its last renewal by
    61 s. A worker killed with its scheduler leaves the lock behind; a worker started before it
    expires does not get the lock and asks again only at its registry maintenance, ten minutes
    later: until then no retry and no next look at a Jenkins job would run. The reconciler, which
    rq's cron rings without the scheduler, does the scheduler's part whenever nobody holds the lock.
    """
    queue = django_rq.get_queue("default")
    registry = queue.scheduled_job_registry
    try:
        if queue.connection.exists(RQScheduler.get_locking_key(queue.name)):
            return 0  # a scheduler runs (or died less than a minute ago)
        due = registry.get_jobs_to_schedule(int(time.time()))
        moved = 0
        for job in Job.fetch_many(due, connection=queue.connection):
            if job is not None and registry.remove(job):  # whoever removes it queues it
                queue.enqueue_job(job)
                moved += 1
        return moved
    except RedisError as exc:
        log.warning("could not queue the delayed jobs that are due: %s", exc)
        return 0


def retries_left() -> bool:
    """Will the queue run the current job again if it raises? (False outside a worker.)"""
    job = get_current_job()
    return bool(job and job.retries_left)


def retry_or_give_up(error: Exception, *, transient: bool, give_up, note=None) -> None:
    """The one way a job handles an outside failure.

    A transient error is raised again while the policy has retries left, so the queue runs the
    job again after a backoff; `note(message)` says so once, at the first retry, for a timeline.
    A permanent error, or the last attempt, calls `give_up()` once and returns.
    """
    if transient and retries_left():
        if note is not None and get_current_job().retries_left == len(BACKOFF):
            note(f"{error} Retrying with backoff, up to {len(BACKOFF)} times over about {sum(BACKOFF) // 60} minutes.")
        raise error
    give_up()


def depth() -> int:
    try:
        return django_rq.get_queue("default").count
    except RedisError:
        return -1


def redis_ok() -> bool:
    try:
        return bool(django_rq.get_connection("default").ping())
    except RedisError:
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


class LivenessWorker(Worker):
    """rq's worker, touching the liveness file ($PAMPAM_ALIVE_FILE) at every heartbeat: idle, it
    beats every worker_ttl − 15 s; busy, every job_monitoring_interval. Run it with
    `rqworker --worker-class plumbing.queues.LivenessWorker` (deploy/)."""

    def heartbeat(self, *args, **kwargs):
        super().heartbeat(*args, **kwargs)
        alive.touch()
