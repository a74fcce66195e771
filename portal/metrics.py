"""`/metrics` for Prometheus: figures read from the database at scrape time.

Nothing is counted in process memory, so the web and worker processes (and any number of
replicas) all report the same numbers. Every figure comes from one aggregate query, so a
scrape costs the same whatever the history size: deployments by state, rollout, approval and
build durations as histograms over all finished rows (monotonic, as Prometheus expects), DORA
figures for production over the last 30 days, the watcher's heartbeat and the RQ queue depth.
"""

import hmac
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Avg, Count, DurationField, Exists, ExpressionWrapper, F, Min, OuterRef, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from clusters.models import WatcherHeartbeat
from plumbing import queues
from releases import states
from releases.models import Approval, Build, Deployment

# Seconds. Rollouts take minutes; approvals minutes to days; builds minutes.
ROLLOUT_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600)
APPROVAL_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600, 3 * 86400)
BUILD_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600)
DORA_WINDOW = timedelta(days=30)


def _duration(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _bucket_counts(buckets) -> dict:
    return {f"le_{b}": Count("pk", filter=Q(duration__lte=timedelta(seconds=b))) for b in buckets}


def _histogram(name: str, doc: str, labels: list[str], rows, buckets) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for row in rows:
        counts = [(str(float(b)), row[f"le_{b}"]) for b in buckets] + [("+Inf", row["total"])]
        total = row["sum"].total_seconds() if row["sum"] is not None else 0.0
        family.add_metric([str(row[key] or "") for key in _keys(labels)], counts, total)
    return family


def _keys(labels: list[str]) -> list[str]:
    return [
        {"service": "service__slug", "environment": "environment__slug", "jenkins_job": "job_name"}.get(x, x)
        for x in labels
    ]


class DatabaseCollector:
    """A prometheus_client custom collector: each `collect()` runs a fixed set of queries."""

    def collect(self):
        yield self.deployments()
        yield from self.in_flight()
        yield self.rollout_durations()
        yield self.approval_waits()
        yield from self.pending_approvals()
        yield self.build_durations()
        yield from self.dora()
        yield from self.watchers()
        yield from self.queue()

    def deployments(self):

        family = GaugeMetricFamily(
            "pampam_deployments",
            "Deployments by state, service and environment.",
            labels=["service", "environment", "state"],
        )
        rows = Deployment.objects.values("service__slug", "environment__slug", "state").annotate(n=Count("pk"))
        for row in rows.order_by():
            family.add_metric([row["service__slug"], row["environment__slug"], row["state"]], row["n"])
        return family

    def in_flight(self):
        """How long the oldest deployment under way has been at it, and what the cluster is owed:
        the figures an alert on stuck deployments reads (active rows only: an index scan)."""
        oldest = GaugeMetricFamily(
            "pampam_deployment_in_flight_seconds",
            "Age of the oldest approved, building or rolling-out deployment, by environment.",
            labels=["environment"],
        )
        now = timezone.now()
        under_way = Deployment.objects.filter(state__in=[states.APPROVED, states.BUILDING, states.ROLLING_OUT])
        for row in under_way.values("environment__slug").annotate(since=Min("created_at")).order_by():
            oldest.add_metric([row["environment__slug"]], max((now - row["since"]).total_seconds(), 0.0))
        owed = GaugeMetricFamily(
            "pampam_followups_pending",
            "Cancelled rollouts still to stop and failed ones still to roll back (the reconciler retries them).",
        )
        owed.add_metric([], Deployment.objects.exclude(followup="").count())
        yield from (oldest, owed)

    def rollout_durations(self):

        rows = (
            Deployment.objects.filter(started_at__isnull=False, finished_at__isnull=False)
            .alias(duration=_duration("finished_at", "started_at"))
            .values("service__slug", "environment__slug")
            .annotate(total=Count("pk"), sum=Sum("duration"), **_bucket_counts(ROLLOUT_BUCKETS))
            .order_by()
        )
        return _histogram(
            "pampam_deployment_duration_seconds",
            "Time from the start of a rollout (or deploy job) to its final state, all finished deployments.",
            ["service", "environment"],
            rows,
            ROLLOUT_BUCKETS,
        )

    def approval_waits(self):

        # The approval that let a deployment go ahead is its last one: no later approval exists
        # (ties broken by id). An anti-join PostgreSQL hashes, rather than a correlated
        # subquery that ran again for the sum and for every bucket of every deployment.
        later = Approval.objects.filter(deployment=OuterRef("deployment"), decision=Approval.APPROVE).filter(
            Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
        )
        # Left pending approval for approved (cancelled ones only if they had started).
        past_approval = states.ACTIVE - {states.PENDING_APPROVAL}
        past_approval |= {states.SUCCEEDED, states.FAILED}
        went_ahead = Q(deployment__state__in=past_approval)
        rows = (
            Approval.objects.filter(decision=Approval.APPROVE, deployment__required_approvals__gt=0)
            .filter(went_ahead | Q(deployment__state=states.CANCELLED, deployment__started_at__isnull=False))
            .filter(~Exists(later))
            .alias(duration=_duration("created_at", "deployment__created_at"))
            .values(environment__slug=F("deployment__environment__slug"))
            .annotate(total=Count("pk"), sum=Sum("duration"), **_bucket_counts(APPROVAL_BUCKETS))
            .order_by()
        )
        return _histogram(
            "pampam_approval_wait_seconds",
            "Time from a deployment's request to the approval that let it go ahead.",
            ["environment"],
            rows,
            APPROVAL_BUCKETS,
        )

    def pending_approvals(self):

        oldest = GaugeMetricFamily(
            "pampam_approval_oldest_pending_seconds",
            "Age of the oldest deployment waiting for approval, per environment.",
            labels=["environment"],
        )
        now = timezone.now()
        rows = (
            Deployment.objects.filter(state=states.PENDING_APPROVAL)
            .values("environment__slug")
            .annotate(first=Min("created_at"))
            .order_by()
        )
        for row in rows:
            oldest.add_metric([row["environment__slug"]], max((now - row["first"]).total_seconds(), 0.0))
        yield oldest

    def build_durations(self):

        rows = (
            Build.objects.filter(started_at__isnull=False, finished_at__isnull=False, state__in=states.BUILD_FINAL)
            .alias(duration=_duration("finished_at", "started_at"))
            .values("job_name", "state")
            .annotate(total=Count("pk"), sum=Sum("duration"), **_bucket_counts(BUILD_BUCKETS))
            .order_by()
        )
        return _histogram(
            "pampam_build_duration_seconds",
            # Not "job": Prometheus keeps that label for the scrape job and would rename ours.
            "Duration of finished Jenkins builds, by Jenkins job and result.",
            ["jenkins_job", "state"],
            rows,
            BUILD_BUCKETS,
        )

    def dora(self):

        since = timezone.now() - DORA_WINDOW
        failures = Q(state=states.FAILED)
        succeeded = Q(state=states.SUCCEEDED)
        rows = (
            Deployment.objects.filter(environment__is_production=True, kind=Deployment.DEPLOY, finished_at__gte=since)
            .filter(succeeded | failures)
            .values("service__slug", "environment__slug")
            .annotate(
                ok=Count("pk", filter=succeeded),
                failed=Count("pk", filter=failures),
                lead=Avg(_duration("finished_at", "release__created_at"), filter=succeeded),
            )
            .order_by()
        )
        labels = ["service", "environment"]
        deployments = GaugeMetricFamily(
            "pampam_dora_deployments", "Successful production deployments in the last 30 days.", labels=labels
        )
        failure_ratio = GaugeMetricFamily(
            "pampam_dora_change_failure_ratio",
            "Failed or rolled back production deployments over finished ones, last 30 days.",
            labels=labels,
        )
        lead_time = GaugeMetricFamily(
            "pampam_dora_lead_time_seconds",
            "Mean time from release to success in production, last 30 days.",
            labels=labels,
        )
        for row in rows:
            key = [row["service__slug"], row["environment__slug"]]
            deployments.add_metric(key, row["ok"])
            failure_ratio.add_metric(key, row["failed"] / (row["ok"] + row["failed"]))
            if row["lead"] is not None:
                lead_time.add_metric(key, max(row["lead"].total_seconds(), 0.0))
        yield from (deployments, failure_ratio, lead_time)

    def watchers(self):
        labels = ["watcher"]
        lag = GaugeMetricFamily("pampam_watcher_lag_seconds", "Watch event lag the watcher last saw.", labels=labels)
        age = GaugeMetricFamily(
            "pampam_watcher_heartbeat_age_seconds", "Seconds since the watcher's last heartbeat.", labels=labels
        )
        streams = GaugeMetricFamily("pampam_watcher_streams", "Watch streams the watcher holds open.", labels=labels)
        reconnects = GaugeMetricFamily(
            "pampam_watcher_reconnects", "Watch reconnects since the watcher process started.", labels=labels
        )
        up = GaugeMetricFamily(
            "pampam_watcher_up",
            "1 when a cluster watcher beat within WATCHER_STALE_SECONDS (the portal sees rollouts live).",
        )
        now = timezone.now()
        freshest = None
        for beat in WatcherHeartbeat.objects.order_by("name")[:100]:
            seconds = max((now - beat.beat_at).total_seconds(), 0.0)
            freshest = seconds if freshest is None else min(freshest, seconds)
            lag.add_metric([beat.name], beat.lag_seconds)
            age.add_metric([beat.name], seconds)
            streams.add_metric([beat.name], beat.streams)
            reconnects.add_metric([beat.name], beat.reconnects)
        up.add_metric([], 1 if freshest is not None and freshest <= settings.WATCHER_STALE_SECONDS else 0)
        yield from (up, lag, age, streams, reconnects)

    def queue(self):
        depth = queues.depth()
        up = GaugeMetricFamily("pampam_redis_up", "1 when Redis (the RQ queue) answers.")
        up.add_metric([], 1 if depth >= 0 else 0)
        yield up
        if depth >= 0:
            queued = GaugeMetricFamily("pampam_queue_jobs", "Jobs waiting in the RQ queue.", labels=["queue"])
            queued.add_metric(["default"], depth)
            yield queued


_registry = CollectorRegistry(auto_describe=False)
_registry.register(DatabaseCollector())


def authorized(request) -> bool:
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {settings.METRICS_TOKEN}".encode())


@login_not_required
@require_GET
def scrape(request):
    """Prometheus text format, for `Authorization: Bearer <METRICS_TOKEN>` only.

    Without METRICS_TOKEN the endpoint does not exist (404): figures about deployments are
    not public by default, and an unset token must not mean "anyone may read".
    """
    if not settings.METRICS_TOKEN:
        return HttpResponse("Not found: set METRICS_TOKEN to enable /metrics.\n", status=404, content_type="text/plain")
    if not authorized(request):
        response = HttpResponse(
            "Unauthorized: send Authorization: Bearer <METRICS_TOKEN>.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
