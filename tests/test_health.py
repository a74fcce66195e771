"""/healthz says the process is alive; /readyz says a web process can serve (database and Redis).

The watcher is another process: its health is reported (and alerted on through /metrics), but a
web process stays in the load balancer while the watcher is down.
"""

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from clusters.models import WatcherHeartbeat


def test_it_answers_healthz_to_anonymous_callers(db):
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_stays_ready_before_the_watcher_ever_beat_and_says_so(db):
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": True, "redis": True}
    assert body["watcher"] == {"ok": False, "detail": "the cluster watcher has never run"}


def test_it_is_ready_with_a_fresh_watcher_heartbeat(db):
    WatcherHeartbeat.objects.create(name="watcher-1", beat_at=timezone.now(), streams=3)
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["watcher"]["ok"] is True
    assert body["watcher"]["streams"] == 3


def test_it_stays_ready_with_a_stale_watcher_and_shows_a_banner(cast, settings):
    stale = timezone.now() - timedelta(seconds=settings.WATCHER_STALE_SECONDS + 5)
    WatcherHeartbeat.objects.create(name="watcher-1", beat_at=stale)
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["watcher"]["ok"] is False
    client = Client()
    client.force_login(cast.erin)
    assert "The cluster watcher has not reported for" in client.get("/").content.decode()


def test_it_judges_the_watcher_by_the_newest_of_several(db, settings):
    stale = timezone.now() - timedelta(seconds=settings.WATCHER_STALE_SECONDS + 5)
    WatcherHeartbeat.objects.create(name="old", beat_at=stale)
    WatcherHeartbeat.objects.create(name="new", beat_at=timezone.now())
    assert Client().get("/readyz").json()["watcher"]["ok"] is True


def test_it_reports_redis_down_as_not_ready(db, settings):
    from plumbing import queues

    WatcherHeartbeat.objects.create(name="watcher-1", beat_at=timezone.now())
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 10}}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/readyz")
    assert queues.redis_ok() is False
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] is False
