from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from clusters.models import WatcherHeartbeat
from plumbing import queues
from releases import board


def dashboard(request):
    return render(request, "dashboard.html", board.dashboard())


@login_not_required
def healthz(request):
    """Alive: the process answers. Load balancers restart it when this fails."""
    return JsonResponse({"status": "ok"})


@login_not_required
def readyz(request):
    """Ready: the database and Redis answer and the cluster watcher has beaten recently."""
    checks = {"database": _database_ok(), "redis": queues.redis_ok(), "watcher": _watcher_status()}
    ready = checks["database"] and checks["redis"] and checks["watcher"]["ok"]
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def _watcher_status() -> dict:
    try:
        beat = WatcherHeartbeat.objects.order_by("-beat_at").first()
    except Exception:  # noqa: BLE001
        return {"ok": False, "detail": "database unavailable"}
    if beat is None:
        return {"ok": False, "detail": "the cluster watcher has never run"}
    age = (timezone.now() - beat.beat_at).total_seconds()
    return {
        "ok": age <= settings.WATCHER_STALE_SECONDS,
        "age_seconds": round(age, 1),
        "streams": beat.streams,
        "reconnects": beat.reconnects,
    }


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)
