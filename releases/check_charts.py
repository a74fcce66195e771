"""The deployment page's check charts: each check's values over the rollout, with its threshold.

Drawn server-side as inline SVG (no chart library, nothing from a CDN, so the CSP holds): one
query for every sample of the deployment, then plain arithmetic into view-box coordinates.
"""

from dataclasses import dataclass, field

from plumbing import fragments
from plumbing.integrations import prometheus
from releases import verdicts
from releases.models import CheckSample, Deployment

WIDTH, HEIGHT = 360, 110
LEFT, TOP, BOTTOM = 46, 8, 18


@dataclass
class Chart:
    name: str
    threshold: float
    rule: str
    points: str = ""
    threshold_y: float = 0.0
    bake_x: float | None = None
    marks: list = field(default_factory=list)  # failed / unreachable samples: {x, y, outcome}
    last: CheckSample | None = None
    low: float = 0.0
    high: float = 0.0
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT


@dataclass
class Panel:
    """What the deployment page's Checks panel shows (`shown`: anything at all)."""

    charts: list[Chart]
    probe: dict | None
    checks: int
    prometheus_configured: bool

    @property
    def shown(self) -> bool:
        return bool(self.charts or self.probe or self.checks)


# Samples (each round of checks renews the report scope: releases.verdicts), the checks'
# thresholds and names (the catalog).
CHART_SCOPES = (fragments.REPORT, fragments.CATALOG)


def panel(deployment: Deployment) -> Panel:
    def read() -> tuple[int, list[Chart]]:
        checks = 0 if deployment.is_rollback else len(verdicts.checks_for(deployment))
        return checks, for_deployment(deployment)

    # The charts are drawn on the rollout's clock: from its start, with its bake marked.
    parts = [deployment.pk, deployment.started_at, deployment.bake_started_at]
    checks, charts = fragments.cached("check-charts", CHART_SCOPES, parts, read)
    return Panel(charts, deployment.probe_summary, checks, prometheus.configured())


def for_deployment(deployment: Deployment) -> list[Chart]:
    samples = list(CheckSample.objects.filter(deployment=deployment).select_related("check_rule").order_by("at", "id"))
    if not samples:
        return []
    start = (deployment.started_at or samples[0].at).timestamp()
    end = max(samples[-1].at.timestamp(), start + 1)
    by_name: dict[str, list[CheckSample]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    bake = deployment.bake_started_at.timestamp() if deployment.bake_started_at else None
    return [_chart(name, rows, start, end, bake) for name, rows in by_name.items()]


def _chart(name: str, rows: list[CheckSample], start: float, end: float, bake: float | None) -> Chart:
    last = rows[-1]
    rule = last.check_rule.rule if last.check_rule else f"threshold {last.threshold:g}"
    values = [r.value for r in rows if r.value is not None]
    low = min([0.0, last.threshold, *values])
    high = max([last.threshold, *values])
    high = high + (high - low) * 0.15 or 1.0

    def x(at) -> float:
        return round(LEFT + (WIDTH - LEFT - 4) * (at.timestamp() - start) / (end - start), 1)

    def y(value: float) -> float:
        return round(TOP + (HEIGHT - TOP - BOTTOM) * (high - value) / (high - low), 1)

    chart = Chart(name=name, threshold=last.threshold, rule=rule, last=last, low=low, high=high)
    chart.points = " ".join(f"{x(r.at)},{y(r.value)}" for r in rows if r.value is not None)
    chart.threshold_y = y(last.threshold)
    chart.marks = [
        {"x": x(r.at), "y": y(r.value) if r.value is not None else HEIGHT - BOTTOM, "outcome": r.outcome}
        for r in rows
        if r.outcome in (CheckSample.FAIL, CheckSample.UNREACHABLE)
    ]
    if bake is not None and start <= bake <= end:
        chart.bake_x = round(LEFT + (WIDTH - LEFT - 4) * (bake - start) / (end - start), 1)
    return chart
