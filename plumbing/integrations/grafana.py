"""Grafana's annotations HTTP API over `requests`, with a service-account token.

Callers get our own `Annotation` dataclass; every failure is an `IntegrationError` whose
`permanent` flag says whether trying the same call again can help (5xx, 429 and network
errors can; a bad token, a bad body or a missing annotation cannot).
"""

from dataclasses import dataclass, field

import requests
from django.conf import settings

from plumbing.integrations import IntegrationError

TIMEOUT = (3.05, 10)
_session = requests.Session()


@dataclass(frozen=True)
class Annotation:
    id: int
    text: str = ""
    tags: list[str] = field(default_factory=list)
    time: int = 0  # epoch ms
    time_end: int = 0
    dashboard_uid: str = ""
    panel_id: int = 0


def configured() -> bool:
    return bool(settings.GRAFANA_URL)


def create_annotation(
    *, text: str, tags: list[str], time_ms: int, time_end_ms: int | None = None, dashboard_uid: str = ""
) -> Annotation:
    """Add an annotation (a region when `time_end_ms` is given); without a dashboard uid it
    is an organisation annotation, found by its tags.

    # Reference: https://grafana.com/docs/grafana/latest/developers/http_api/annotations/#create-annotation
    """
    body: dict = {"time": time_ms, "tags": tags, "text": text}
    if time_end_ms is not None:
        body["timeEnd"] = time_end_ms
    if dashboard_uid:
        body["dashboardUID"] = dashboard_uid
    answer = _call("POST", "/api/annotations", body)
    if not isinstance(answer.get("id"), int):
        raise IntegrationError("Grafana did not return the new annotation's id.", permanent=True)
    return Annotation(
        id=answer["id"],
        text=text,
        tags=list(tags),
        time=time_ms,
        time_end=time_end_ms or time_ms,
        dashboard_uid=dashboard_uid,
    )


def update_annotation(annotation_id: int, *, text: str, tags: list[str], time_end_ms: int) -> None:
    """Change an annotation's end, text and tags (closes the region of a finished rollout).

    # Reference: https://grafana.com/docs/grafana/latest/developers/http_api/annotations/#patch-annotation
    """
    _call("PATCH", f"/api/annotations/{int(annotation_id)}", {"timeEnd": time_end_ms, "text": text, "tags": tags})


def find_annotations(*, tags: list[str], start_ms: int, end_ms: int, limit: int = 100) -> list[Annotation]:
    """Annotations carrying all `tags` that overlap [start_ms, end_ms], newest first.

    # Reference: https://grafana.com/docs/grafana/latest/developers/http_api/annotations/#find-annotations
    """
    params = {"tags": tags, "from": start_ms, "to": end_ms, "limit": limit, "type": "annotation"}
    items = _call("GET", "/api/annotations", None, params=params)
    if not isinstance(items, list):
        raise IntegrationError("Grafana answered the annotation search with something else than a list.", True)
    return [_annotation(item) for item in items if isinstance(item, dict)]


def _annotation(item: dict) -> Annotation:
    return Annotation(
        id=int(item.get("id") or 0),
        text=str(item.get("text") or ""),
        tags=[str(t) for t in item.get("tags") or []],
        time=int(item.get("time") or 0),
        time_end=int(item.get("timeEnd") or 0),
        dashboard_uid=str(item.get("dashboardUID") or ""),
        panel_id=int(item.get("panelId") or 0),
    )


def _call(method: str, path: str, body: dict | None, params: dict | None = None):
    if not configured():
        raise IntegrationError("Grafana is not configured (GRAFANA_URL is empty).", permanent=True)
    headers = {"Accept": "application/json"}
    if settings.GRAFANA_TOKEN:
        headers["Authorization"] = f"Bearer {settings.GRAFANA_TOKEN}"
    try:
        response = _session.request(
            method, settings.GRAFANA_URL + path, json=body, params=params, headers=headers, timeout=TIMEOUT
        )
    except requests.RequestException as exc:
        raise IntegrationError(f"Grafana cannot be reached: {type(exc).__name__}.") from None
    if response.status_code >= 400:
        raise _error(response)
    try:
        return response.json()
    except ValueError:
        raise IntegrationError(f"Grafana answered {response.status_code} without JSON.", permanent=True) from None


def _error(response: requests.Response) -> IntegrationError:
    try:
        detail = response.json().get("message", "")
    except (ValueError, AttributeError):
        detail = ""
    status = response.status_code
    message = f"Grafana answered {status}" + (f": {detail}" if detail else "") + "."
    if status in (401, 403):
        message += " Check GRAFANA_TOKEN (a service account token with annotation rights)."
    return IntegrationError(message, permanent=status < 500 and status not in (408, 429))
