"""A traffic probe: one GET of a service's own URL (its health endpoint behind its load balancer).

Unlike the other integrations this one never raises: a refused connection, a timeout or a 5xx is
exactly what a probe is there to count, so every outcome is a `Hit`.
"""

import time
from dataclasses import dataclass

import requests

TIMEOUT = (1, 2)
_session = requests.Session()


@dataclass(frozen=True)
class Hit:
    ok: bool
    status: int  # 0: no answer at all
    ms: float
    error: str = ""


def hit(url: str) -> Hit:
    """GET `url` once; a 2xx or 3xx answer is a success.

    # Reference: https://requests.readthedocs.io/en/latest/api/#requests.Session.get
    """
    started = time.perf_counter()
    try:
        response = _session.get(url, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        return Hit(False, 0, (time.perf_counter() - started) * 1000, type(exc).__name__)
    ms = (time.perf_counter() - started) * 1000
    return Hit(response.status_code < 400, response.status_code, ms)
