"""The reconciler: re-ring the doorbells a crash, a lost job or an outage left unrung.

Run every RECONCILE_INTERVAL_SECONDS by rq's cron (portal/cron.py) or `manage.py reconcile`.
Every job it rings is idempotent and is not rung again while it is still queued, scheduled for
a retry or running (plumbing.queues), so a pass costs a few indexed queries when all is well. A job
whose worker died while running it counts as running no longer once its heartbeat has lapsed
(`queues.reclaim_abandoned`, first in every pass), and while no scheduler runs (a worker killed
with it, the next one not holding its lock yet) the reconciler queues the delayed jobs that are due
(`queues.run_due_without_scheduler`).
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from plumbing import queues
from releases import builds, deploy_jobs, jobs, slack_approvals, states, tracking
from releases.models import Build, Deployment


def reconcile() -> dict:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS)
    counts = {
        "reclaimed": queues.reclaim_abandoned(),
        "due": queues.run_due_without_scheduler(),
        "restarted": _ring(Deployment.objects.filter(state=states.APPROVED, created_at__lt=stale), jobs.run_deployment),
        "observed": _observe(stale),
        "followups": _ring_followups(),
        "verified": _ring_verify(),
    }
    _fail_overdue(now)
    counts.update(_ring_jenkins(stale))
    deploy_jobs.overdue(now)
    counts["slack_messages"] = _ring_slack_messages(now)
    return counts


def _ring(rows, job) -> int:
    pks = list(rows.values_list("pk", flat=True))
    for pk in pks:
        queues.enqueue(job, pk)
    return len(pks)


def _observe(stale) -> int:
    """Rollouts nobody observed lately (the watcher down or behind): read them straight."""
    pks = list(
        Deployment.objects.filter(state__in=states.IN_CLUSTER)
        .exclude(observed_at__gt=stale)
        .values_list("pk", flat=True)
    )
    for pk in pks:
        tracking.observe(pk)
    return len(pks)


def _ring_verify() -> int:
    """Guarded rollouts whose verify job was lost (it re-enqueues itself; a crash ends that)."""
    return _ring(Deployment.objects.guarded().filter(state=states.ROLLING_OUT), tracking.verify)


def _ring_followups() -> int:
    """Work owed to the cluster after a final state: stops of cancelled rollouts, automatic rollbacks."""
    rows = list(Deployment.objects.exclude(followup="").values_list("pk", "followup"))
    for pk, followup in rows:
        queues.enqueue(jobs.FOLLOWUPS[followup], pk)
    return len(rows)


def _fail_overdue(now) -> None:
    """No rollout stays active forever: past twice its deadline plus a margin, it fails."""
    for deployment in Deployment.objects.filter(state__in=states.IN_CLUSTER).select_related("environment"):
        limit = deployment.environment.progress_deadline_seconds * 2 + 60
        since = deployment.observed_at or deployment.started_at or deployment.created_at
        if deployment.bake_started_at is not None:  # a quiet bake is not a stuck rollout
            since = max(since, deployment.bake_started_at + timedelta(seconds=deployment.bake_seconds))
        if (now - since).total_seconds() > limit:
            tracking.fail(deployment, f"No progress seen for {limit} seconds; giving up.")


def _ring_jenkins(stale) -> dict:
    """Builds and deploy jobs nobody followed lately (a lost job, a worker killed)."""
    quiet = Q(last_event__lt=stale) | Q(last_event__isnull=True, created_at__lt=stale)
    active = Build.objects.filter(state__in=states.BUILD_ACTIVE).annotate(last_event=Max("events__created_at"))
    followed = 0
    for pk, queue_id in active.filter(quiet).values_list("pk", "queue_id"):
        queues.enqueue(builds.follow_build if queue_id else builds.trigger_build, pk)
        followed += 1
    building = Deployment.objects.filter(state=states.BUILDING, jenkins_queue_id__isnull=False)
    deploy = building.annotate(last_event=Max("events__created_at")).filter(quiet)
    return {"builds": followed, "deploy_jobs": _ring(deploy, deploy_jobs.follow)}


def _ring_slack_messages(now) -> int:
    """Slack approval messages behind their deployment (a lost refresh) are rewritten."""
    if not slack_approvals.configured():
        return 0
    pks = slack_approvals.behind(now)
    for pk in pks:
        queues.enqueue(slack_approvals.refresh, pk)
    return len(pks)
