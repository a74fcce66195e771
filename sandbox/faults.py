"""Fault injection and the request pipeline the HTTP sandboxes share.

A sandbox handler subclasses `FaultingHandler` and lists its `routes`; every request then goes
through the same steps:

1. `POST /sandbox/faults` (and `GET` to read them) controls the faults over HTTP, so a demo or a
   test in another process can make the service misbehave;
2. the configured delay is slept (a slow upstream);
3. an injected fault, if one is armed, answers instead of the service (an outage);
4. `authorized()` is checked (each sandbox knows its own auth scheme);
5. the first route whose method and path pattern match is called with the named groups.

`SandboxHandle` is the base of the objects that `start()` returns in tests.
"""

import re
import threading
import time
from dataclasses import dataclass

from sandbox.http import JSONHandler, Running, Served

CONTROL_PATH = "/sandbox/faults"


@dataclass(frozen=True)
class Fault:
    status: int
    retry_after: int | None = None


class Faults:
    """Thread-safe fault state: the next `count` requests fail, each request may be delayed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._remaining = 0  # -1 means "until cleared"
        self.delay = 0.0

    def set_fault(self, status: int = 500, count: int = 1, retry_after: int | None = None):
        """Fail the next `count` requests with `status`; count=-1 means until cleared, status=0
        clears."""
        with self._lock:
            self._fault = Fault(status, retry_after) if status else None
            self._remaining = count if status else 0

    def set_delay(self, seconds: float) -> None:
        self.delay = max(0.0, float(seconds))

    def clear(self) -> None:
        self.set_fault(status=0)
        self.set_delay(0)

    def take(self) -> Fault | None:
        """Consume one armed fault, if any."""
        with self._lock:
            if self._fault is None or self._remaining == 0:
                return None
            fault = self._fault
            if self._remaining > 0:
                self._remaining -= 1
            return fault

    def describe(self) -> dict:
        with self._lock:
            fault = self._fault if self._remaining else None
            return {
                "status": fault.status if fault else 0,
                "count": self._remaining if fault else 0,
                "retry_after": fault.retry_after if fault else None,
                "delay": self.delay,
            }

    def configure(self, body: dict) -> None:
        """Apply a `POST /sandbox/faults` body: {"status", "count", "retry_after", "delay"}."""
        if "status" in body:
            self.set_fault(int(body["status"] or 0), int(body.get("count", 1)), body.get("retry_after"))
        if "delay" in body:
            self.set_delay(body["delay"])


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    action: str  # name of the handler method, called with the pattern's named groups


def route_table(table: dict[str, str]) -> tuple[Route, ...]:
    """Routes from `{"METHOD path-pattern": action}`, tried in this order."""
    routes = []
    for spec, action in table.items():
        method, pattern = spec.split(" ", 1)
        routes.append(Route(method, re.compile(f"^{pattern}$"), action))
    return tuple(routes)


class FaultingHandler(JSONHandler):
    """A `JSONHandler` with routing, fault injection and an auth hook (see the module docstring)."""

    routes: tuple[Route, ...] = ()
    # Only paths matching this pattern can be delayed or failed; UI pages usually stay up.
    faultable = re.compile(r"")

    # --- hooks for subclasses -------------------------------------------------------------
    def authorized(self) -> bool:
        return True

    def send_unauthorized(self) -> None:
        self.send_json(401, {"message": "Unauthorized"})

    def invoke(self, action, params: dict) -> None:
        """Call a route's action; override to add locking or error translation."""
        action(**params)

    def send_not_found(self) -> None:
        self.send_json(404, {"message": "Not Found"})

    def send_fault(self, fault: Fault) -> None:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        self.send_json(fault.status, {"message": "Injected fault"}, headers)

    # --- pipeline -------------------------------------------------------------------------
    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self) -> None:
        self.read_body()  # drained up front: every answer, even a 404, leaves the connection usable
        path = self.path_only
        if path == CONTROL_PATH:
            self.control_faults()
            return
        if self.faultable.match(path) and self.inject_fault():
            return
        if not self.authorized():
            self.send_unauthorized()
            return
        for candidate in self.routes:
            match = candidate.pattern.match(path)
            if match and candidate.method == self.command:
                self.invoke(getattr(self, candidate.action), match.groupdict())
                return
        self.send_not_found()

    def inject_fault(self) -> bool:
        faults: Faults = self.server.faults
        if faults.delay:
            time.sleep(faults.delay)
        fault = faults.take()
        if fault is None:
            return False
        # The body is drained so the keep-alive connection stays usable for the retry.
        self.read_body()
        self.send_fault(fault)
        return True

    def control_faults(self) -> None:
        faults: Faults = self.server.faults
        if self.command == "POST":
            try:
                faults.configure(self.read_json() or {})
            except (ValueError, TypeError, AttributeError) as exc:
                self.send_json(400, {"message": f"bad fault spec: {exc}"})
                return
        elif self.command == "DELETE":
            faults.clear()
        self.send_json(200, faults.describe())


class SandboxHandle(Served):
    """What `start()` returns: the running server and its fault controls; a context manager."""

    def __init__(self, running: Running, faults: Faults):
        self.running = running
        self.faults = faults

    def stop(self) -> None:
        self.running.stop()

    def set_fault(self, status: int = 500, count: int = 1, retry_after: int | None = None):
        self.faults.set_fault(status, count, retry_after)

    def set_delay(self, seconds: float) -> None:
        self.faults.set_delay(seconds)

    def clear_faults(self) -> None:
        self.faults.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
