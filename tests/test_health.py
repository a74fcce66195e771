"""/healthz says the process is alive; /readyz also checks the database, Redis and the watcher."""

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from clusters.models import WatcherHeartbeat


def test_it_answers_healthz_to_anonymous_callers(db):
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_is_not_ready_before_the_watcher_ever_beat(db):
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] is True
    assert body["checks"]["redis"] is True
    assert body["checks"]["watcher"] == {"ok": False, "detail": "the cluster watcher has never run"}


def test_it_is_ready_with_a_fresh_watcher_heartbeat(db):
    WatcherHeartbeat.objects.create(name="watcher-1", beat_at=timezone.now(), streams=3)
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["watcher"]["ok"] is True
    assert body["checks"]["watcher"]["streams"] == 3


def test_it_is_not_ready_when_the_heartbeat_is_stale(db, settings):
    stale = timezone.now() - timedelta(seconds=settings.WATCHER_STALE_SECONDS + 5)
    WatcherHeartbeat.objects.create(name="watcher-1", beat_at=stale)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["watcher"]["ok"] is False


def test_it_judges_readiness_by_the_newest_of_several_watchers(db, settings):
    stale = timezone.now() - timedelta(seconds=settings.WATCHER_STALE_SECONDS + 5)
    WatcherHeartbeat.objects.create(name="old", beat_at=stale)
    WatcherHeartbeat.objects.create(name="new", beat_at=timezone.now())
    assert Client().get("/readyz").status_code == 200


def test_it_reports_redis_down_as_not_ready(db, settings):
    from plumbing import queues

    WatcherHeartbeat.objects.create(name="watcher-1", beat_at=timezone.now())
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 10}}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/readyz")
    assert queues.redis_ok() is False
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] is False
