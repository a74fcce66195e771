"""A stand-in for Grafana's solo panel page (`/d-solo/{uid}/{slug}?panelId=…`).

Draws a plausible time series as inline SVG. The series is pseudo-random but deterministic:
it depends on the dashboard uid, the panel id, the `var-*` values and the absolute time, so a
refresh shows the same curve moved along. Annotations in the window are drawn as lines (points)
and shaded bands (regions), and the series reacts to them (errors and latency rise, pods dip)
so a deploy looks like one.
"""

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
RELATIVE = re.compile(r"^now(?:-(\d+)([smhdw]))?$")
WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 450, 200, 62, 22, 26
POINTS = 120


@dataclass(frozen=True)
class PanelKind:
    title: str
    unit: str
    base: float
    swing: float  # amplitude of the daily wave, relative to base
    noise: float  # relative noise
    deploy_effect: float  # relative change while a region annotation is in progress
    integer: bool = False


PANELS = {
    1: PanelKind("Request rate", "req/s", 320, 0.25, 0.06, -0.05),
    2: PanelKind("Error rate (5xx)", "%", 0.4, 0.3, 0.35, 3.0),
    3: PanelKind("p95 latency", "ms", 180, 0.15, 0.08, 0.6),
    4: PanelKind("Pods available", "", 6, 0, 0, -0.34, integer=True),
}


def parse_time(value: str | None, now_ms: int, default: int) -> int:
    """Epoch ms, `now`, or `now-<n><s|m|h|d|w>`; anything else falls back to `default`."""
    if not value:
        return default
    if value.isdigit():
        return int(value)
    match = RELATIVE.match(value)
    if not match:
        return default
    amount, unit = match.groups()
    return now_ms - (int(amount) * UNITS_MS[unit] if amount else 0)


def parse_refresh(value: str | None) -> int | None:
    """`30s`, `1m`, `5m` → seconds (at least 5, like Grafana's min_refresh_interval)."""
    match = re.fullmatch(r"(\d+)([smhd])", value or "")
    if not match:
        return None
    return max(int(match.group(1)) * UNITS_MS[match.group(2)] // 1000, 5)


def parse_panel_id(value: str | None) -> int:
    """`3` or Scenes' `panel-3`."""
    match = re.fullmatch(r"(?:panel-)?(\d+)", value or "")
    return int(match.group(1)) if match else 1


@dataclass(frozen=True)
class PanelRequest:
    uid: str
    panel_id: int
    start: int  # epoch ms
    end: int
    variables: tuple[tuple[str, str], ...]
    theme: str
    refresh: int | None

    @property
    def kind(self) -> PanelKind:
        return PANELS.get(self.panel_id, PanelKind(f"Panel {self.panel_id}", "", 50, 0.3, 0.1, 0))

    @property
    def title(self) -> str:
        labels = ", ".join(f"{name}={value}" for name, value in self.variables)
        return f"{self.kind.title} · {labels}" if labels else self.kind.title


def _unit_noise(*parts) -> float:
    """A deterministic number in [-1, 1] for the given parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**63 - 1


def series(request: PanelRequest, regions: list[tuple[int, int]]) -> list[tuple[int, float]]:
    """POINTS samples over the window; samples fall on absolute multiples of the step."""
    kind = request.kind
    seed = (request.uid, request.panel_id, request.variables)
    # step <= span, so at least one multiple of it lies in the window.
    step = max((request.end - request.start) // POINTS, 1)
    phase = _unit_noise(*seed, "phase") * math.pi
    samples = []
    for tick in range(-(-request.start // step), request.end // step + 1):
        t = tick * step
        wave = math.sin(2 * math.pi * t / UNITS_MS["d"] + phase) * kind.swing
        value = kind.base * (1 + wave + _unit_noise(*seed, tick) * kind.noise)
        if any(start <= t <= end for start, end in regions):
            value *= 1 + kind.deploy_effect
        samples.append((t, round(value) if kind.integer else max(value, 0.0)))
    return samples


THEMES = {
    "dark": {"bg": "#181b1f", "fg": "#ccccdc", "grid": "#2c3235", "line": "#73bf69"},
    "light": {"bg": "#ffffff", "fg": "#24292e", "grid": "#e4e7e7", "line": "#56a64b"},
}


def render_page(request: PanelRequest, annotations: list[dict]) -> str:
    colors = THEMES.get(request.theme, THEMES["dark"])
    refresh = f'<meta http-equiv="refresh" content="{request.refresh}">' if request.refresh else ""
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{escape(request.title)} - Grafana</title>{refresh}"
        f"<style>html,body{{margin:0;height:100%;background:{colors['bg']};color:{colors['fg']};"
        "font:12px sans-serif}svg{display:block;width:100%;height:100%}</style></head>"
        f"<body>{render_svg(request, annotations, colors)}</body></html>"
    )


def render_svg(request: PanelRequest, annotations: list[dict], colors: dict) -> str:
    regions = [(a["time"], a["timeEnd"]) for a in annotations if a["timeEnd"] > a["time"]]
    samples = series(request, regions)
    values = [v for _, v in samples]
    low, high = min(values + [0.0]), max(values) * 1.1 or 1.0
    if request.kind.integer:
        high = 4 * math.ceil((max(values) + 1) / 4)  # whole-number grid lines
    span = max(request.end - request.start, 1)

    def x(t: int) -> float:
        return PAD_LEFT + (t - request.start) / span * (WIDTH - PAD_LEFT - 8)

    def y(v: float) -> float:
        return HEIGHT - PAD_BOTTOM - (v - low) / (high - low) * (HEIGHT - PAD_BOTTOM - PAD_TOP)

    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in samples)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'preserveAspectRatio="none" role="img">',
        # The panel's own name on the chart; the variables stay in the page title (a tooltip).
        f'<text x="8" y="16" fill="{colors["fg"]}" font-weight="bold">',
        f"{escape(request.kind.title)}</text>",
        *_grid(request, low, high, x, y, colors),
        *_annotation_marks(annotations, x, colors),
        f'<polyline fill="none" stroke="{colors["line"]}" stroke-width="1.5" points="{points}"/>',
        "</svg>",
    ]
    return "".join(parts)


def _grid(request: PanelRequest, low, high, x, y, colors) -> list[str]:
    unit = escape(request.kind.unit if request.kind.unit in ("", "%") else f" {request.kind.unit}")
    lines = []
    for i in range(5):
        value = low + (high - low) * i / 4
        lines.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - 8}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="{colors["grid"]}"/><text x="{PAD_LEFT - 4}" y="{y(value) + 4:.1f}" '
            f'fill="{colors["fg"]}" text-anchor="end">{_format(value)}{unit}</text>'
        )
    for i in range(5):
        t = request.start + (request.end - request.start) * i // 4
        label = datetime.fromtimestamp(t / 1000, UTC).strftime("%H:%M")
        lines.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 6}" fill="{colors["fg"]}" text-anchor="middle">{label}</text>')
    return lines


def _annotation_marks(annotations: list[dict], x, colors) -> list[str]:
    marks = []
    for a in annotations:
        tip = f"<title>{escape(a['text'])} [{escape(', '.join(a['tags']))}]</title>"
        top, bottom = PAD_TOP, HEIGHT - PAD_BOTTOM
        if a["timeEnd"] > a["time"]:
            left, right = x(a["time"]), x(a["timeEnd"])
            marks.append(
                f'<rect class="annotation-region" x="{left:.1f}" y="{top}" '
                f'width="{max(right - left, 1):.1f}" height="{bottom - top}" '
                f'fill="#3274d9" fill-opacity="0.15">{tip}</rect>'
            )
        marks.append(
            f'<line class="annotation" x1="{x(a["time"]):.1f}" x2="{x(a["time"]):.1f}" y1="{top}" '
            f'y2="{bottom}" stroke="#3274d9" stroke-dasharray="3 2">{tip}</line>'
        )
    return marks


def _format(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2f}".rstrip("0").rstrip(".")
