from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone

from clusters.models import WatcherHeartbeat
from plumbing import fragments, queues
from releases import board, catalog, guards

# What the dashboard's matrix shows: deployments, workloads, guards, services and environments.
MATRIX_SCOPES = (fragments.DEPLOYMENT, fragments.WORKLOAD, fragments.GUARD, fragments.CATALOG)


def dashboard(request):
    """The matrix is the same for everyone: kept rendered until a change it shows (its scopes),
    a freeze or lock starting or ending, or the minute its "3 minutes ago" turns over."""
    environments = catalog.in_use()
    held = guards.in_force(environments)
    matrix = fragments.html(
        "dashboard-matrix",
        MATRIX_SCOPES,
        [guards.fingerprint(held), [e.pk for e in environments]],
        lambda: render_to_string("includes/matrix.html", board.dashboard(environments, held)),
    )
    return render(request, "dashboard.html", {"matrix": matrix, "watcher": watcher_status()})


@login_not_required
def healthz(request):
    """Alive: the process answers. Load balancers restart it when this fails."""
    return JsonResponse({"status": "ok"})


@login_not_required
def readyz(request):
    """Ready to serve pages: the database and Redis answer.

    The cluster watcher is another process: when it is down the pages still work (they show a
    banner and the reconciler reads rollouts straight from the cluster), so its state is reported
    here for information and in /metrics for alerting (pampam_watcher_up), but never takes the
    web pods out of the load balancer.
    """
    checks = {"database": _database_ok(), "redis": queues.redis_ok()}
    ready = checks["database"] and checks["redis"]
    body = {"status": "ok" if ready else "unavailable", "checks": checks, "watcher": watcher_status()}
    return JsonResponse(body, status=200 if ready else 503)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def watcher_status() -> dict:
    """Is the cluster watcher beating? (`ok`, with the heartbeat's age, streams and reconnects.)"""
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
