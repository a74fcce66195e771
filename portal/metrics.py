"""`/metrics` for Prometheus: figures kept in the database, read at scrape time.

Nothing is counted in process memory, so the web and worker processes (and any number of
replicas) all report the same numbers. Nothing scans history either: deployments by state and
the rollout, approval and build duration histograms are `releases.tallies` rows, updated in the
transaction of each change they count (so they survive restarts, and histograms never go down);
the gauges of what is under way now read the active rows through partial indexes; the DORA
figures for production over the last 30 days are `releases.dora`'s, the ones /dora/ shows,
stored as rows (`DoraFigure`) that a scrape recomputes only when a production deployment finished
since, or every two minutes when the cron job (which refreshes them every minute) is not running.
The watcher's heartbeat and the RQ queue depth complete it.

The text of the families read from kept rows is itself kept (plumbing.fragments) until one of
those rows changes or the minute turns; the families that age with the clock are read at every
scrape.
"""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Min
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from clusters.models import Environment, WatcherHeartbeat
from plumbing import fragments, queues
from releases import dora, states, tallies
from releases.models import Deployment, Service

# The duration histograms: tally metric → (name, help, label names).
HISTOGRAMS = {
    tallies.DEPLOYMENT_DURATION: (
        "pampam_deployment_duration_seconds",
        "Time from the start of a rollout (or deploy job) to its final state, all finished deployments.",
        ["service", "environment"],
    ),
    tallies.APPROVAL_WAIT: (
        "pampam_approval_wait_seconds",
        "Time from a deployment's request to the approval that let it go ahead.",
        ["environment"],
    ),
    tallies.BUILD_DURATION: (
        "pampam_build_duration_seconds",
        # Not "job": Prometheus keeps that label for the scrape job and would rename ours.
        "Duration of finished Jenkins builds, by Jenkins job and result.",
        ["jenkins_job", "state"],
    ),
}


def _histogram(metric: str, series: dict, labels) -> HistogramMetricFamily:
    """The histogram of tally `metric` from the scrape's tallies (`series`, by metric)."""
    name, doc, names = HISTOGRAMS[metric]
    family = HistogramMetricFamily(name, doc, labels=names)
    for tally in series.get(metric, []):
        values = labels.of(tally, names)
        if values is not None:
            buckets = [(str(bound), n) for bound, n in tally.bucket_counts()] + [("+Inf", tally.count)]
            family.add_metric(values, buckets, tally.total)
    return family


class Labels:
    """Slugs for the ids tallies are kept by (two small queries per scrape)."""

    def __init__(self):
        self.services = dict(Service.objects.values_list("pk", "slug"))
        self.environments = dict(Environment.objects.values_list("pk", "slug"))

    def of(self, tally, names: list[str]) -> list[str] | None:
        """The label values of `tally`, or None when its service or environment is gone."""
        values = []
        for name in names:
            if name == "service":
                values.append(self.services.get(tally.service_id))
            elif name == "environment":
                values.append(self.environments.get(tally.environment_id))
            else:
                values.append({"jenkins_job": tally.job_name, "state": tally.state}[name])
        return None if None in values else values


class DatabaseCollector:
    """A prometheus_client custom collector: each `collect()` runs a fixed set of queries."""

    def collect(self):
        yield from self.counted()
        yield from self.now()

    def counted(self):
        """The families read from kept rows (tallies, DORA figures): they change only with a
        deployment, build, approval or DORA export, so `scrape` keeps their text between those."""
        series = {}
        for tally in tallies.Tally.objects.order_by("metric", "id"):
            series.setdefault(tally.metric, []).append(tally)
        labels = Labels()
        yield self.deployments(series.get(tallies.DEPLOYMENTS, []), labels)
        yield _histogram(tallies.DEPLOYMENT_DURATION, series, labels)
        yield _histogram(tallies.APPROVAL_WAIT, series, labels)
        yield _histogram(tallies.BUILD_DURATION, series, labels)
        yield from self.dora(tallies.finished_stamps(series.get(tallies.DEPLOYMENTS, [])), labels)

    def now(self):
        """The families that age with the clock (what is under way, the watcher, the queue): read
        at every scrape."""
        yield from self.in_flight()
        yield from self.pending_approvals()
        yield from self.watchers()
        yield from self.queue()

    def deployments(self, rows, labels):
        family = GaugeMetricFamily(
            "pampam_deployments",
            "Deployments by state, service and environment.",
            labels=["service", "environment", "state"],
        )
        for tally in rows:
            values = labels.of(tally, ["service", "environment", "state"])
            if values is not None:
                family.add_metric(values, tally.count)
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

    def dora(self, stamps: dict[int, str], labels: "Labels"):
        """/dora/'s figures for each production environment over the last 30 days, as stored by
        `dora.exported` (recomputed there only when a deployment finished since, or every two
        minutes for the sliding window: the cron job keeps them fresh)."""
        names = ["service", "environment"]
        deployments = GaugeMetricFamily(
            "pampam_dora_deployments", "Successful production deployments in the last 30 days.", labels=names
        )
        failure_ratio = GaugeMetricFamily(
            "pampam_dora_change_failure_ratio",
            "Production deployments that failed, were rolled back or were followed by a rollback, over "
            "finished ones, last 30 days (as /dora/ counts them).",
            labels=names,
        )
        lead_time = GaugeMetricFamily(
            "pampam_dora_lead_time_seconds",
            "Median time from commit (or release) to success in production, last 30 days (as /dora/).",
            labels=names,
        )
        for found in dora.exported(stamps, labels.services):
            key, figure = [found.service, found.environment], found.figure
            if figure.finished:
                deployments.add_metric(key, figure.deployments)
                failure_ratio.add_metric(key, figure.failure_ratio)
            if figure.lead_time_seconds is not None:
                lead_time.add_metric(key, figure.lead_time_seconds)
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


def _escaped(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def text_format(families) -> bytes:
    """Prometheus' text format, line for line what prometheus_client's generate_latest writes
    for gauges and histograms, for a tenth of its time: our label names are fixed identifiers,
    so only label values need escaping (generate_latest validates and escapes every name of
    every sample, and a scrape has a couple of thousand)."""
    lines = []
    for family in families:
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {family.name} {doc}\n# TYPE {family.name} {family.type}\n")
        for sample in family.samples:
            value = floatToGoString(sample.value)
            if sample.labels:
                labels = ",".join(f'{k}="{_escaped(v)}"' for k, v in sorted(sample.labels.items()))
                lines.append(f"{sample.name}{{{labels}}} {value}\n")
            else:
                lines.append(f"{sample.name} {value}\n")
    return "".join(lines).encode()


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
    collector = DatabaseCollector()
    # The counted families' text is kept until a change they count (their scopes), or the minute
    # turns (DORA's window slides; a miss also recomputes stale DORA figures, as before).
    counted = fragments.cached(
        "metrics", COUNTED_SCOPES, [fragments.minute()], lambda: text_format(collector.counted()).decode()
    )
    return HttpResponse(counted.encode() + text_format(collector.now()), content_type=CONTENT_TYPE_LATEST)


# What the counted families read: tallies (moved with deployments, approvals and builds), the
# names of services and environments (labels), and the stored DORA figures.
COUNTED_SCOPES = (fragments.DEPLOYMENT, fragments.BUILD, fragments.CATALOG, fragments.DORA)
