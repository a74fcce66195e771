"""DORA figures: deployment frequency, lead time for changes, change failure rate and time
to restore, per service in an environment, over a window of days.

The computation is pure functions over `Row`s (one per deployment), so it is tested on
hand-built histories; `load_rows` reads them in one query and `page` renders /dora/.

- Deployment frequency: successful deployments (not rollbacks) finished in the window.
- Lead time: from the commit (when GitHub told us its time) or else the release's creation
  to the deployment's success.
- Change failure rate: of the finished deployments (succeeded, failed, rolled back), those
  that failed, were rolled back, or were followed by a rollback.
- Time to restore: from a failure (a failed rollout starting, or a rollback being requested
  after a bad one) to the next successful deployment of that service (a rollback included); a
  rollout that rolled itself back restored service when its rollback finished.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import median

from django.db import transaction
from django.db.models import FloatField, Func, OuterRef, Subquery
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone

from clusters.models import Environment
from plumbing import fragments
from releases import states, tallies
from releases.models import Commit, Deployment, DoraFigure, Release, Service, Tally

WINDOWS = (7, 30, 90)
FINISHED = frozenset({states.SUCCEEDED, states.FAILED})
FAILED = frozenset({states.FAILED})


@dataclass(frozen=True)
class Row:
    id: int
    service: str
    state: str
    created_at: datetime
    finished_at: datetime | None
    released_at: datetime
    committed_at: datetime | None = None
    rollback: bool = False
    started_at: datetime | None = None


@dataclass
class Summary:
    deployments: int = 0
    days: int = 1
    lead_times: list[timedelta] = field(default_factory=list)
    failures: int = 0
    finished: int = 0
    restore_times: list[timedelta] = field(default_factory=list)

    @property
    def per_week(self) -> float:
        return self.deployments * 7 / self.days

    @property
    def lead_time(self) -> timedelta | None:
        return _median(self.lead_times)

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.finished if self.finished else None

    @property
    def time_to_restore(self) -> timedelta | None:
        return _median(self.restore_times)

    @property
    def lead_time_text(self) -> str:
        return _hours(self.lead_time)

    @property
    def time_to_restore_text(self) -> str:
        return _hours(self.time_to_restore)

    @property
    def failure_rate_text(self) -> str:
        rate = self.failure_rate
        return "—" if rate is None else f"{rate:.0%}"


def _median(values: list[timedelta]) -> timedelta | None:
    return timedelta(seconds=median(v.total_seconds() for v in values)) if values else None


def finished_in(rows: list[Row], start: datetime, end: datetime) -> list[Row]:
    """Rows that reached a deciding final state in [start, end), oldest first."""
    found = [r for r in rows if r.state in FINISHED and r.finished_at and start <= r.finished_at < end]
    return sorted(found, key=lambda r: (r.finished_at, r.id))


def lead_time(row: Row) -> timedelta:
    return row.finished_at - (row.committed_at or row.released_at)


def summarize(rows: list[Row], start: datetime, end: datetime) -> Summary:
    """The four figures for one service's (or several services') history in [start, end)."""
    summary = Summary(days=max((end - start).days, 1))
    by_service = defaultdict(list)
    for row in finished_in(rows, start, end):
        by_service[row.service].append(row)
    for history in by_service.values():
        _add_history(summary, history)
    return summary


def per_service(rows: list[Row], start: datetime, end: datetime) -> list[tuple[str, Summary]]:
    """(service slug, its figures) for each service in `rows`, by slug: what /dora/ lists and
    /metrics exports."""
    by_service = defaultdict(list)
    for row in rows:
        by_service[row.service].append(row)
    return [(service, summarize(by_service[service], start, end)) for service in sorted(by_service)]


def _add_history(summary: Summary, history: list[Row]) -> None:
    incident_since = None
    for index, row in enumerate(history):
        following = history[index + 1] if index + 1 < len(history) else None
        if not row.rollback:
            summary.finished += 1
            bad = row.state in FAILED or (following is not None and following.rollback)
            summary.failures += bad
            if row.state == states.SUCCEEDED:
                summary.deployments += 1
                summary.lead_times.append(lead_time(row))
        if row.state in FAILED and incident_since is None:
            # The bad version went out when its rollout started; without that, when it failed.
            incident_since = row.started_at or row.finished_at
        elif row.state == states.SUCCEEDED and row.rollback and incident_since is None:
            incident_since = row.created_at  # someone asked for the rollback: the service was bad
        restored = row.state == states.SUCCEEDED
        if restored and incident_since is not None:
            summary.restore_times.append(row.finished_at - incident_since)
            incident_since = None


def per_day(rows: list[Row], start: datetime, end: datetime) -> list[tuple[date, int, int, timedelta | None]]:
    """(day, successful deployments, failed ones, median lead time) for each day of the window."""
    first, last = timezone.localdate(start), timezone.localdate(end - timedelta(microseconds=1))
    days = {first + timedelta(days=n): ([], 0) for n in range((last - first).days + 1)}
    zone = timezone.get_current_timezone()  # once: localdate() looks it up again for every row
    for row in finished_in(rows, start, end):
        if row.rollback:
            continue
        day = row.finished_at.astimezone(zone).date()
        leads, failed = days[day]
        if row.state == states.SUCCEEDED:
            leads.append(lead_time(row))
        days[day] = (leads, failed + (row.state in FAILED))
    return [(day, len(leads), failed, _median(leads)) for day, (leads, failed) in days.items()]


# --- charts: geometry for server-rendered SVG -----------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    tone: str
    label: str


@dataclass(frozen=True)
class Tick:
    """An axis label: where it goes (x or y in the chart) and what it says."""

    at: float
    label: str
    anchor: str = "middle"  # SVG text-anchor: the last date ends at the edge instead of crossing it


CHART_WIDTH, CHART_HEIGHT, CHART_BASE = 720, 160, 140
# Room on the left of the bars for the value axis: a label as long as "120.5 days" at font-size 11.
CHART_LEFT = 66


def _tallest(values) -> float:
    return max((sum(v for v, _ in parts) for _, parts in values), default=0) or 1


def bars(values: list[tuple[str, list[tuple[float, str]]]], width=CHART_WIDTH, base=CHART_BASE) -> list[Bar]:
    """Stacked bars, one per (label, [(value, tone), …]), scaled to the tallest stack, right of the axis."""
    if not values:
        return []
    tallest = _tallest(values)
    step = (width - CHART_LEFT) / len(values)
    drawn = []
    for index, (label, parts) in enumerate(values):
        top = base
        for value, tone in parts:
            height = value / tallest * (base - 10)
            if height > 0:
                top -= height
                x = CHART_LEFT + index * step + 1
                drawn.append(Bar(round(x, 1), round(top, 1), max(step - 2, 1), round(height, 1), tone, label))
    return drawn


def value_ticks(values, label, base=CHART_BASE) -> list[Tick]:
    """Labels for the value axis: 0, the middle and the top of the tallest bar."""
    tallest = _tallest(values)
    if not values or tallest <= 0:
        return []
    return [Tick(round(base - share * (base - 10), 1), label(tallest * share)) for share in (0, 0.5, 1)]


def day_ticks(days, width=CHART_WIDTH) -> list[Tick]:
    """Dates under the bars: about six of them, at the middle of their day's bar."""
    if not days:
        return []
    step = (width - CHART_LEFT) / len(days)
    every = max(1, round(len(days) / 6))
    ticks = []
    for i, (day, *_rest) in enumerate(days):
        if i % every == 0:
            x = round(CHART_LEFT + (i + 0.5) * step, 1)
            ticks.append(Tick(x, f"{day:%b %-d}", "end" if x > width - 24 else "middle"))
    return ticks


def _count(value: float) -> str:
    """Deployments come whole: a half-way tick gets no label."""
    return f"{value:.0f}" if value == int(value) else ""


def frequency_chart(days) -> list[Bar]:
    return bars([(f"{d:%b %-d}: {ok} deployed, {bad} failed", [(ok, "ok"), (bad, "bad")]) for d, ok, bad, _ in days])


def lead_time_chart(days) -> list[Bar]:
    return bars(
        [
            (f"{d:%b %-d}: median lead time {_hours(lead)}", [(lead.total_seconds() if lead else 0, "info")])
            for d, _, _, lead in days
        ]
    )


def _hours(value: timedelta | None) -> str:
    if value is None:
        return "—"
    hours = value.total_seconds() / 3600
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


# --- loading and the page ---------------------------------------------------------------------


class EpochSeconds(Func):
    """A moment as seconds since the epoch (a float). DORA reads thousands of moments a page;
    a float crosses the driver ten times faster than a timestamp with its time zone, and
    `datetime.fromtimestamp` rebuilds it exactly on PostgreSQL (to a tenth of a millisecond on
    SQLite, the demo's database, whose julianday() is a float of days)."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)::double precision"
    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)")


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def load_rows(environment, start: datetime, end: datetime) -> list[Row]:
    """One query: the environment's deployments that finished in the window, with commit times."""

    # Each subquery finds one row by a unique key: .order_by() keeps the models' default
    # orderings from adding a sort per row.
    release = Release.objects.filter(pk=OuterRef("release_id")).order_by()
    sha = Release.objects.filter(pk=OuterRef(OuterRef("release_id"))).order_by().values("git_sha")[:1]
    commits = Commit.objects.filter(service=OuterRef("service"), sha=Subquery(sha)).order_by()
    commit_time = commits.values("committed_at")[:1]
    # The release's columns by primary key for each row of the window: joined instead, PostgreSQL
    # hashed the whole release table (all of history) for a window of a few thousand rows.
    values = (
        Deployment.objects.filter(environment=environment, finished_at__gte=start, finished_at__lt=end)
        .filter(state__in=FINISHED)
        .annotate(
            created=EpochSeconds("created_at"),
            finished=EpochSeconds("finished_at"),
            released=EpochSeconds(Subquery(release.values("created_at")[:1])),
            committed=EpochSeconds(Subquery(commit_time)),
            started=EpochSeconds("started_at"),
        )
        .values_list("id", "service__slug", "state", "created", "finished", "released", "committed", "kind", "started")
        .order_by()
    )
    return [
        Row(
            pk,
            service,
            state,
            _moment(created),
            _moment(finished),
            _moment(released),
            _moment(committed),
            rollback=kind == "rollback",
            started_at=_moment(started),
        )
        for pk, service, state, created, finished, released, committed, kind, started in values
    ]


# --- the figures /metrics exports --------------------------------------------------------------

EXPORT_WINDOW = timedelta(days=30)
# Twice the cron job's interval (portal.cron): with the cron running no scrape computes; without
# it one scrape in two minutes does. The 30-day window slides by at most this between two.
EXPORT_MAX_AGE = timedelta(seconds=120)


@dataclass(frozen=True)
class Exported:
    service: str
    environment: str
    figure: DoraFigure


def exported(
    stamps: dict[int, str] | None = None,
    services: dict[int, str] | None = None,
    now: datetime | None = None,
    max_age: timedelta = EXPORT_MAX_AGE,
) -> list[Exported]:
    """The DORA figures of each production environment over the last 30 days, by service: the
    stored ones, recomputed first for an environment where a deployment finished since they were
    computed (its `tallies.finished_stamps` moved) or that are older than `max_age` (two minutes
    for a scrape). A scrape passes what it has read already: the `stamps` of its tallies and its
    `services` (slug by id)."""
    now = now or timezone.now()
    if stamps is None:
        stamps = tallies.finished_stamps(Tally.objects.filter(metric=tallies.DEPLOYMENTS))
    if services is None:
        services = dict(Service.objects.values_list("pk", "slug"))
    environments = list(Environment.objects.filter(is_production=True).order_by("position", "slug"))
    stored = defaultdict(list)
    for figure in DoraFigure.objects.filter(environment_id__in=[e.pk for e in environments]):
        stored[figure.environment_id].append(figure)
    service_ids = {slug: pk for pk, slug in services.items()}
    found = []
    for environment in environments:
        figures = stored[environment.pk]
        marker = next((f for f in figures if f.service_id == 0), None)
        stamp = stamps.get(environment.pk, "")
        if marker is None or marker.stamp != stamp or now - marker.computed_at >= max_age:
            figures = export(environment, stamp, now, service_ids)
        named = [(services[f.service_id], f) for f in figures if f.service_id in services]
        found.extend(Exported(slug, environment.slug, f) for slug, f in sorted(named, key=lambda pair: pair[0]))
    return found


def export(environment, stamp: str, now: datetime, service_ids: dict[str, int]) -> list[DoraFigure]:
    """Compute `environment`'s figures now and store them (with the marker row, service 0)."""
    start = now - EXPORT_WINDOW
    figures = [DoraFigure(environment_id=environment.pk, stamp=stamp, computed_at=now)]
    for slug, summary in per_service(load_rows(environment, start, now), start, now):
        if slug not in service_ids:
            continue  # renamed or deleted since the rows were read
        lead = summary.lead_time
        figures.append(
            DoraFigure(
                environment_id=environment.pk,
                service_id=service_ids[slug],
                deployments=summary.deployments,
                finished=summary.finished,
                failure_ratio=summary.failure_rate,
                lead_time_seconds=None if lead is None else max(lead.total_seconds(), 0.0),
                computed_at=now,
            )
        )
    with transaction.atomic():
        kept = [f.service_id for f in figures]
        DoraFigure.objects.filter(environment_id=environment.pk).exclude(service_id__in=kept).delete()
        # An upsert: two scrapes computing at once both end with one row a service.
        DoraFigure.objects.bulk_create(
            figures,
            update_conflicts=True,
            unique_fields=["environment_id", "service_id"],
            update_fields=["deployments", "finished", "failure_ratio", "lead_time_seconds", "stamp", "computed_at"],
        )
        fragments.touch(fragments.DORA)
    return figures


def refresh_exported() -> int:
    """The cron job (every minute): compute /metrics' DORA figures afresh, so that a scrape finds
    them under two minutes old and never has to."""
    return len(exported(max_age=timedelta(0)))


def page(request):
    """/dora/?environment=<slug>&days=7|30|90: production by default, 30 days by default."""

    environments = list(Environment.objects.order_by("position", "slug"))
    days, environment, problem = _choices(request.GET, environments)
    if problem:
        return render(request, "refused.html", {"message": problem}, status=400)
    end = timezone.now()
    parts = [environment.pk if environment else None, days]
    body = fragments.html("dora", DORA_SCOPES, parts, lambda: _body(environments, environment, days, end))
    return render(request, "releases/dora.html", {"body": body})


# What /dora/ reads: deployments (finished ones), and services, releases and commits (lead time).
DORA_SCOPES = (fragments.DEPLOYMENT, fragments.CATALOG)


def _body(environments, environment, days: int, end: datetime) -> str:
    """The page's figures, tables and charts: the same for everyone, so kept rendered for the
    minute (the window slides) until a deployment changes."""
    start = end - timedelta(days=days)
    rows = load_rows(environment, start, end) if environment else []
    names = dict(Service.objects.values_list("slug", "name"))
    daily = per_day(rows, start, end)
    context = {
        "environments": environments,
        "environment": environment,
        "days": days,
        "windows": WINDOWS,
        "overall": summarize(rows, start, end),
        "services": [(names.get(slug, slug), summary) for slug, summary in per_service(rows, start, end)],
        "frequency_bars": frequency_chart(daily),
        "frequency_ticks": value_ticks([(None, [(ok + bad, "")]) for _, ok, bad, _ in daily], _count),
        "lead_bars": lead_time_chart(daily),
        "lead_ticks": value_ticks(
            [(None, [(lead.total_seconds() if lead else 0, "")]) for *_, lead in daily],
            lambda seconds: _hours(timedelta(seconds=seconds)) if seconds else "0",
        ),
        "day_ticks": day_ticks(daily),
        "chart": {"width": CHART_WIDTH, "height": CHART_HEIGHT, "base": CHART_BASE, "left": CHART_LEFT},
        "first_day": daily[0][0] if daily else None,
        "last_day": daily[-1][0] if daily else None,
    }
    return render_to_string("includes/dora_body.html", context)


def _choices(query, environments):
    raw_days = query.get("days", "30")
    if raw_days not in {str(w) for w in WINDOWS}:
        return 30, None, f"Choose a window of 7, 30 or 90 days (got “{raw_days[:20]}”)."
    wanted = query.get("environment", "")
    by_slug = {e.slug: e for e in environments}
    if wanted and wanted not in by_slug:
        return 30, None, f"There is no environment “{wanted[:50]}”. Pick one from the list on /dora/."
    production = [e for e in environments if e.is_production]
    default = production[0] if production else (environments[-1] if environments else None)
    return int(raw_days), by_slug.get(wanted, default), ""
