"""Prometheus's HTTP query API over `requests`: one PromQL expression evaluated now.

Callers get our own `Reading`; every failure is an `IntegrationError`. `permanent` says whether
asking again can help: Prometheus refusing the query (400 bad_data, 422 execution) cannot; a
network error, a timeout or a 5xx can, and is what "Prometheus is unreachable" means to callers.
"""

import math
import re
from dataclasses import dataclass, field

import requests
from django.conf import settings

from plumbing.integrations import IntegrationError

TIMEOUT = (2, 5)
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_session = requests.Session()


@dataclass(frozen=True)
class Reading:
    """What a query returned now: one number (or none: no series, or NaN), and how many series."""

    value: float | None
    result_type: str
    series: int
    labels: dict = field(default_factory=dict)

    @property
    def single(self) -> bool:
        """A scalar or at most one series: something a threshold can be compared with."""
        return self.result_type == "scalar" or (self.result_type == "vector" and self.series <= 1)


def configured() -> bool:
    return bool(settings.PROMETHEUS_URL)


def valid_duration(text: str) -> bool:
    """A PromQL duration such as `30s`, `5m` or `1h30m`."""
    return bool(DURATION.match(text or ""))


def query(promql: str) -> Reading:
    """Evaluate `promql` at the current time.

    # Reference: https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries
    """
    data = _call("/api/v1/query", {"query": promql})
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return Reading(_number(result), "scalar", 1)
    if kind == "vector" and isinstance(result, list):
        if not result:
            return Reading(None, "vector", 0)
        first = result[0] if isinstance(result[0], dict) else {}
        return Reading(_number(first.get("value")), "vector", len(result), dict(first.get("metric") or {}))
    return Reading(None, str(kind), len(result) if isinstance(result, list) else 0)


def _number(sample) -> float | None:
    """The value of a `[time, "1.5"]` pair; None for NaN or anything else."""
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError):
        return None
    return None if math.isnan(value) else value


def _call(path: str, params: dict) -> dict:
    if not configured():
        raise IntegrationError("Prometheus is not configured (PROMETHEUS_URL is empty).")
    try:
        response = _session.get(settings.PROMETHEUS_URL + path, params=params, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise IntegrationError(
            f"Prometheus at {settings.PROMETHEUS_URL} cannot be reached: {type(exc).__name__}."
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400 or body.get("status") != "success":
        detail = body.get("error") if isinstance(body, dict) else ""
        status = response.status_code
        message = f"Prometheus answered {status}" + (f": {detail}" if detail else "") + "."
        raise IntegrationError(message, permanent=status in (400, 422))
    return body.get("data") or {}
