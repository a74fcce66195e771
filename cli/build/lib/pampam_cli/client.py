"""A small client for the portal's REST API (/api/v1/): one session, bearer token, JSON in and
out, and an `ApiError` that carries the portal's `detail` and `reasons`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests

# Answers worth asking again a little later (the portal restarting, a proxy in between).
TRANSIENT = {429, 502, 503, 504}


@dataclass
class ApiError(Exception):
    """The portal said no (status ≥ 400), or could not be reached (status 0)."""

    status: int
    detail: str
    reasons: list[str] = field(default_factory=list)
    errors: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail

    @property
    def refused(self) -> bool:
        """A rule said no (403) or something else is under way (409)."""
        return self.status in (403, 409)

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status in TRANSIENT or self.status >= 500


@dataclass
class Answer:
    data: dict | list
    retry_after: float = 0.0


class Client:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "pampam-cli"}
        )

    def get(self, path: str, params: dict | None = None, *, timeout: float | None = None) -> Answer:
        return self._call("GET", path, params=params, timeout=timeout)

    def post(self, path: str, body: dict | None = None) -> Answer:
        return self._call("POST", path, json=body or {})

    def _call(self, method: str, path: str, *, timeout: float | None = None, **kwargs) -> Answer:
        try:
            reply = self.session.request(method, f"{self.url}{path}", timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as error:
            raise ApiError(0, f"Cannot reach the portal at {self.url}: {error}") from None
        if reply.status_code >= 400:
            raise _error(reply)
        if reply.status_code == 204:
            return Answer({})
        retry_after = _seconds(reply.headers.get("Retry-After"))
        try:
            return Answer(reply.json(), retry_after)
        except ValueError:
            raise ApiError(reply.status_code, f"The portal answered {method} {path} with something else than JSON.")


def _error(reply: requests.Response) -> ApiError:
    try:
        body = reply.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or f"The portal answered {reply.status_code} {reply.reason}."
    return ApiError(reply.status_code, str(detail), list(body.get("reasons") or []), dict(body.get("errors") or {}))


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def backoff(attempt: int) -> float:
    """Seconds to wait before the next try after `attempt` transient failures: 1, 2, 4, … 15."""
    return min(15.0, 2.0 ** max(0, attempt - 1))


def sleep(seconds: float) -> None:
    time.sleep(seconds)
