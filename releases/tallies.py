"""The figures /metrics serves, kept as rows: counted as things happen, never by scanning history.

A `Tally` row is one Prometheus series: the number of deployments in a state for a service and
environment (a gauge), or a histogram (count, sum and one cumulative count per bucket) of
rollout durations, approval waits or build durations. Each is updated in the transaction of the
change it counts: a deployment's transition (`Deployment.transition`, the one compare-and-swap),
a build's (`Build.move`), a deployment or build created or deleted directly (imports, tests). So a
scrape reads a few hundred rows whatever the history's size, the figures survive restarts and
are the same for every process, and histogram counts never go down (a deleted deployment leaves
its duration counted, as a Prometheus counter must).

`rebuild()` recomputes every row from the history itself: the migration that introduced these
rows runs it, and so does `manage.py rebuild_tallies` after rows were written around the models
(COPY, bulk_create, raw SQL).

This module imports no other model of ours (models.py imports it), so the objects it counts come
in as arguments.
"""

import hashlib
from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import Count, DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, Sum

from plumbing.rows import NEWEST_FIRST
from releases import states

# Seconds. Rollouts take minutes; approvals minutes to days; builds minutes. Eight buckets each
# (the row has eight columns); changing a bound means `manage.py rebuild_tallies`.
ROLLOUT_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600)
APPROVAL_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600, 3 * 86400)
BUILD_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600)

DEPLOYMENTS = "deployments"
DEPLOYMENT_DURATION = "deployment_duration"
APPROVAL_WAIT = "approval_wait"
BUILD_DURATION = "build_duration"
BUCKETS = {DEPLOYMENT_DURATION: ROLLOUT_BUCKETS, APPROVAL_WAIT: APPROVAL_BUCKETS, BUILD_DURATION: BUILD_BUCKETS}
BUCKET_FIELDS = tuple(f"le_{i}" for i in range(8))
assert all(len(b) == len(BUCKET_FIELDS) for b in BUCKETS.values())

# A deployment in one of these states was let go ahead by its approvals (a cancelled one only
# if it had started): the states today's approval-wait histogram has always counted.
WENT_AHEAD = (states.ACTIVE - {states.PENDING_APPROVAL}) | {states.SUCCEEDED, states.FAILED}


class Tally(models.Model):
    """One series of /metrics. Labels are ids (0: none), so renaming a service keeps its series;
    a series whose service or environment is gone is not shown."""

    metric = models.CharField(max_length=30)
    service_id = models.BigIntegerField(default=0)
    environment_id = models.BigIntegerField(default=0)
    state = models.CharField(max_length=20, blank=True)
    job_name = models.CharField(max_length=200, blank=True)
    count = models.BigIntegerField(default=0)
    total = models.FloatField(default=0.0, help_text="Sum of the observed seconds (histograms).")

    class Meta:
        app_label = "releases"
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "service_id", "environment_id", "state", "job_name"], name="one_tally_per_series"
            )
        ]

    def __str__(self):
        return f"{self.metric} s{self.service_id} e{self.environment_id} {self.state}{self.job_name}: {self.count}"

    def bucket_counts(self) -> list[tuple[float, int]]:
        return [(float(b), getattr(self, f)) for b, f in zip(BUCKETS[self.metric], BUCKET_FIELDS, strict=True)]


# The histogram's buckets, one column each (le_0 … le_7): how many observations were at most
# each bound of BUCKETS[metric], so the columns come from BUCKET_FIELDS rather than by hand.
for _bucket in BUCKET_FIELDS:
    Tally.add_to_class(_bucket, models.BigIntegerField(default=0))


class DoraFigure(models.Model):
    """/metrics' DORA gauges for one service in one production environment over the last 30 days,
    as `releases.dora` computes them for /dora/, stored so that a scrape reads them instead of
    the window's deployments (thousands of rows a scrape at a high deployment rate). A row with
    service_id 0 marks an environment as computed, from which finished-deployment counts
    (`finished_stamps`) and when; `dora.exported` recomputes an environment when either moved."""

    environment_id = models.BigIntegerField()
    service_id = models.BigIntegerField(default=0)
    deployments = models.IntegerField(default=0)
    finished = models.IntegerField(default=0)
    failure_ratio = models.FloatField(null=True, blank=True)
    lead_time_seconds = models.FloatField(null=True, blank=True)
    stamp = models.CharField(max_length=64, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        app_label = "releases"
        constraints = [models.UniqueConstraint(fields=["environment_id", "service_id"], name="one_dora_figure")]

    def __str__(self):
        return f"dora e{self.environment_id} s{self.service_id}: {self.deployments} at {self.computed_at}"


def finished_stamps(rows) -> dict[int, str]:
    """Per environment id, a digest of its finished-deployment counts (succeeded and failed, per
    service) among the `deployments` tally rows `rows`: it moves whenever a deployment there
    finishes (or a finished one is deleted), which is when its DORA figures change."""
    counts: dict[int, list] = {}
    for tally in rows:
        if tally.metric == DEPLOYMENTS and tally.state in (states.SUCCEEDED, states.FAILED):
            counts.setdefault(tally.environment_id, []).append((tally.service_id, tally.state, tally.count))
    return {env: hashlib.sha256(repr(sorted(found)).encode()).hexdigest() for env, found in counts.items()}


def add(metric: str, *, count: int = 1, seconds: float | None = None, **labels) -> None:
    """Add `count` to a series (and `seconds` to a histogram), creating the row the first time.

    An UPDATE with F() expressions, so concurrent transactions add up instead of overwriting
    each other; two creating the same series at once settle it on the unique constraint.
    """
    changes = {"count": F("count") + count}
    if seconds is not None:
        changes["total"] = F("total") + seconds
        for bound, name in zip(BUCKETS[metric], BUCKET_FIELDS, strict=True):
            if seconds <= bound:
                changes[name] = F(name) + count
    series = Tally.objects.filter(metric=metric, **labels)
    if series.update(**changes):
        return
    try:
        with transaction.atomic():
            Tally.objects.create(metric=metric, **labels)
    except IntegrityError:
        pass  # another transaction created it first: add to theirs
    series.update(**changes)


def _seconds(end, start) -> float | None:
    return (end - start).total_seconds() if end and start else None


def _pair(deployment) -> dict:
    return {"service_id": deployment.service_id, "environment_id": deployment.environment_id}


# --- what each change adds ----------------------------------------------------------------------


def deployment_created(deployment) -> None:
    add(DEPLOYMENTS, state=deployment.state, **_pair(deployment))
    _finished(deployment, deployment.state)


def deployment_moved(deployment, old: str, new: str) -> None:
    """A deployment went from `old` to `new` (its fields already hold the new values)."""
    for state, count in sorted([(old, -1), (new, 1)]):  # a fixed order: no deadlock between two moves
        add(DEPLOYMENTS, count=count, state=state, **_pair(deployment))
    if new in states.FINAL and deployment.started_at is None:
        # Another process may have started it since this instance was read.
        started = type(deployment).objects.values_list("started_at", flat=True).get(pk=deployment.pk)
        deployment.started_at = started
    _finished(deployment, new)
    if old == states.PENDING_APPROVAL and new == states.APPROVED:
        decided = (
            deployment.approvals.filter(decision="approve")
            .order_by(*NEWEST_FIRST)
            .values_list("created_at", flat=True)
            .first()
        )
        if decided is not None:
            approved(deployment, decided)


def deployment_deleted(deployment) -> None:
    """The gauge counts rows that exist; histograms keep what they observed."""
    add(DEPLOYMENTS, count=-1, state=deployment.state, **_pair(deployment))


def _finished(deployment, state: str) -> None:
    seconds = _seconds(deployment.finished_at, deployment.started_at)
    if state in states.FINAL and seconds is not None:
        add(DEPLOYMENT_DURATION, seconds=seconds, **_pair(deployment))


def approved(deployment, decided_at) -> None:
    """The approval that let `deployment` go ahead came at `decided_at`."""
    if deployment.required_approvals > 0:
        waited = _seconds(decided_at, deployment.created_at)
        add(APPROVAL_WAIT, seconds=waited, environment_id=deployment.environment_id)


def approval_created(approval) -> None:
    """An approval written for a deployment that is already past approval (an import, the admin,
    seed data): the one that makes the required number let it go ahead (so a deployment's
    approvals written one by one count once). In the portal's own flow the approvals come first
    and the move to approved observes the wait (`deployment_moved`)."""
    deployment = approval.deployment
    went_ahead = deployment.state in WENT_AHEAD or (
        deployment.state == states.CANCELLED and deployment.started_at is not None
    )
    if approval.decision != "approve" or not went_ahead:
        return
    given = type(approval).objects.filter(deployment_id=deployment.pk, decision="approve").count()
    if given == deployment.required_approvals:
        approved(deployment, approval.created_at)


def build_finished(build) -> None:
    seconds = _seconds(build.finished_at, build.started_at)
    if build.state in states.BUILD_FINAL and seconds is not None:
        add(BUILD_DURATION, seconds=seconds, job_name=build.job_name, state=build.state)


# --- from history -------------------------------------------------------------------------------


def _duration(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _histogram_columns(buckets) -> dict:
    columns = {"count": Count("pk"), "total": Sum("duration")}
    for bound, name in zip(buckets, BUCKET_FIELDS, strict=True):
        columns[name] = Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
    return columns


def _histogram_rows(metric: str, rows, labels: dict) -> list:
    found = []
    for row in rows:
        total = row.pop("total")
        seconds = total.total_seconds() if isinstance(total, timedelta) else float(total or 0)
        found.append(Tally(metric=metric, total=seconds, **{labels.get(k, k): v for k, v in row.items()}))
    return found


def rebuild(deployment_model, approval_model, build_model, tally_model=None) -> int:
    """Recompute every series from the rows themselves, with the definitions the live updates
    follow; returns how many series there are. Takes the models so that a migration can pass
    its historical ones."""
    tally_model = tally_model or Tally
    deployments = deployment_model.objects.order_by()
    series = [
        tally_model(metric=DEPLOYMENTS, **row)
        for row in deployments.values("service_id", "environment_id", "state").annotate(count=Count("pk"))
    ]
    durations = (
        deployments.filter(started_at__isnull=False, finished_at__isnull=False, state__in=states.FINAL)
        .alias(duration=_duration("finished_at", "started_at"))
        .values("service_id", "environment_id")
        .annotate(**_histogram_columns(ROLLOUT_BUCKETS))
    )
    series += _histogram_rows(DEPLOYMENT_DURATION, durations, {})
    series += _histogram_rows(APPROVAL_WAIT, _approval_waits(approval_model), {"env": "environment_id"})
    builds = (
        build_model.objects.filter(started_at__isnull=False, finished_at__isnull=False, state__in=states.BUILD_FINAL)
        .alias(duration=_duration("finished_at", "started_at"))
        .values("job_name", "state")
        .annotate(**_histogram_columns(BUILD_BUCKETS))
        .order_by()
    )
    series += _histogram_rows(BUILD_DURATION, builds, {})
    with transaction.atomic():
        tally_model.objects.all().delete()
        # Plain instances of whichever model class `tally_model` is (a migration's historical one).
        tally_model.objects.bulk_create([_as(tally_model, s) for s in series])
    return len(series)


def _as(model, tally: Tally):
    fields = ["metric", "service_id", "environment_id", "state", "job_name", "count", "total", *BUCKET_FIELDS]
    return model(**{name: getattr(tally, name) for name in fields})


def _approval_waits(approval_model):
    """Per environment, the wait for the approval that let each deployment go ahead: its last one
    (no later approval exists, ties broken by id)."""
    later = approval_model.objects.filter(deployment=OuterRef("deployment"), decision="approve").filter(
        Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
    )
    went_ahead = Q(deployment__state__in=WENT_AHEAD) | Q(
        deployment__state=states.CANCELLED, deployment__started_at__isnull=False
    )
    return (
        approval_model.objects.filter(decision="approve", deployment__required_approvals__gt=0)
        .filter(went_ahead)
        .filter(~Exists(later))
        .alias(duration=_duration("created_at", "deployment__created_at"))
        .values(env=F("deployment__environment_id"))
        .annotate(**_histogram_columns(APPROVAL_BUCKETS))
        .order_by()
    )
