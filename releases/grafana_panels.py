"""Grafana panel embed URLs for a service in an environment (PROTOCOLS.md §4).

The URL is what Grafana's Share → Embed builds: `/d-solo/{uid}/{slug}` with `orgId`, the time
range, `panelId`, one `var-<name>` per dashboard variable (repeated for multi-value
variables), the theme and, for a live view, `refresh`. Panels come from the service
(dashboard uid + panel ids), variables from the environment: `namespace` and `service` are
filled in from the environment's namespace and the service's Kubernetes Deployment, and the
environment's `grafana_variables` add to or override them.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from django.conf import settings

# Grafana's classic ids (3) and the Scenes form (panel-3); anything else is ignored.
PANEL_ID = re.compile(r"^(?:panel-)?\d{1,9}$")
MARGIN = timedelta(minutes=5)
LIVE_REFRESH = "10s"


@dataclass(frozen=True)
class Panel:
    panel_id: str
    url: str


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def panel_ids(service) -> list[str]:
    """The service's panel ids as strings, in order, skipping malformed entries."""
    ids = service.grafana_panel_ids if isinstance(service.grafana_panel_ids, list) else []
    found = []
    for value in ids:
        text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
        if PANEL_ID.match(text):
            found.append(text)
    return found


def variables(service, environment) -> list[tuple[str, str]]:
    """`var-*` pairs: namespace and service first, then the environment's own, by name."""
    values: dict[str, list[str]] = {"namespace": [environment.namespace], "service": [service.k8s_deployment]}
    extra = environment.grafana_variables if isinstance(environment.grafana_variables, dict) else {}
    for name, value in extra.items():
        listed = value if isinstance(value, list) else [value]
        values[str(name)] = [str(v) for v in listed if v is not None and not isinstance(v, dict | list)]
    ordered = ["namespace", "service"] + sorted(n for n in values if n not in ("namespace", "service"))
    return [(f"var-{name}", value) for name in ordered for value in values[name]]


def embed_url(service, environment, panel_id: str, start, end, refresh: str = "") -> str:
    """One `/d-solo/` URL; `start`/`end` are datetimes or Grafana's relative `now`, `now-6h`."""
    params = [
        ("orgId", "1"),
        ("from", _time(start)),
        ("to", _time(end)),
        ("panelId", panel_id),
        *variables(service, environment),
        ("theme", "light"),
    ]
    if refresh:
        params.append(("refresh", refresh))
    uid = quote(service.grafana_dashboard_uid, safe="")
    slug = quote(service.slug, safe="")
    return f"{settings.GRAFANA_URL}/d-solo/{uid}/{slug}?{urlencode(params, quote_via=quote)}"


def _time(value) -> str:
    return str(epoch_ms(value)) if isinstance(value, datetime) else str(value)


def enabled(service) -> bool:
    return bool(settings.GRAFANA_URL and service.grafana_dashboard_uid and panel_ids(service))


def panels(service, environment, start, end, refresh: str = "") -> list[Panel]:
    """Embeds for every panel of the service, or none when Grafana or the dashboard is not set."""
    if environment is None or not enabled(service):
        return []
    return [Panel(pid, embed_url(service, environment, pid, start, end, refresh)) for pid in panel_ids(service)]


def rollout_window(deployment, now=None) -> tuple[datetime, datetime | str, str]:
    """(from, to, refresh) for a deployment: 5 minutes either side, or up to `now`, live, while
    it is still going."""
    begin = (deployment.started_at or deployment.created_at) - MARGIN
    if deployment.finished_at and not deployment.is_active:
        return begin, deployment.finished_at + MARGIN, ""
    return begin, "now", LIVE_REFRESH


def for_deployment(deployment) -> list[Panel]:
    start, end, refresh = rollout_window(deployment)
    return panels(deployment.service, deployment.environment, start, end, refresh)


def for_service(service, environment) -> list[Panel]:
    return panels(service, environment, "now-6h", "now")
