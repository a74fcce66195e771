"""The small HTTP server every sandbox is built on.

Each sandbox defines a `BaseHTTPRequestHandler` subclass (usually of `JSONHandler`) and
runs it with `serve()`, which returns a `Running` handle. Tests start sandboxes on port 0
(an ephemeral port) and read the real one from `handle.url`.
"""

import json
import signal
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from operator import attrgetter
from urllib.parse import parse_qs, urlsplit

# How often an idle accept loop wakes to check for shutdown; `shutdown_server` pokes it awake, so
# this only bounds the cost of an idle server (two wake-ups a second), not how fast it stops.
POLL_INTERVAL = 0.5


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Watches and long polls keep many connections open at once.
    request_queue_size = 256


def shutdown_server(server: Server, thread: threading.Thread) -> None:
    """Stop `serve_forever` at once: ask it to stop, then connect to wake its select()."""
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    while stopper.is_alive():
        try:
            socket.create_connection(server.server_address[:2], timeout=0.2).close()
        except OSError:
            pass  # not listening any more
        stopper.join(0.02)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server accepts connections on `port`: one started in another process is up."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Running:
    server: Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        shutdown_server(self.server, self.thread)
        self.server.server_close()
        self.thread.join(timeout=5)


def forwarded(path: str) -> property:
    """A read-only attribute read through the dotted `path`: `url = forwarded("running.url")`."""
    return property(attrgetter(path))


class Served:
    """A sandbox's handle on its `Running` server (its `running` attribute): URL and port."""

    running: Running
    url = forwarded("running.url")
    port = forwarded("running.port")


def serve(handler_cls, port: int = 0, host: str = "127.0.0.1", **state) -> Running:
    """Start `handler_cls` on a background thread; extra keyword args become server attributes."""
    server = Server((host, port), handler_cls)
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, name=handler_cls.__name__, daemon=True
    )
    thread.start()
    return Running(server, thread)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def serve_forever(running: Running, name: str) -> None:
    """Block the command-line entry point until Ctrl-C or SIGTERM (both stop it cleanly)."""
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"{name} sandbox listening on {running.url}", flush=True)
    try:
        running.thread.join()
    except KeyboardInterrupt:
        running.stop()


def run_command(parser, start, name: str, argv=None, ignored=()) -> None:
    """A sandbox's command line: each option of `parser` (but the `ignored` ones) is a keyword of
    `start`; serve what it starts until Ctrl-C or SIGTERM, then stop it."""
    options = {key: value for key, value in vars(parser.parse_args(argv)).items() if key not in ignored}
    handle = start(**options)
    try:
        serve_forever(handle.running, name)
    finally:
        handle.stop()


class JSONHandler(BaseHTTPRequestHandler):
    """Helpers shared by the sandboxes: parsed URL, query, body and JSON replies."""

    protocol_version = "HTTP/1.1"
    server_version = "pampam-sandbox"

    def log_message(self, format, *args):
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def query_one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def parse_request(self) -> bool:
        self._request_body = None  # a new request on this keep-alive connection
        return super().parse_request()

    def read_body(self) -> bytes:
        """The request body, read once (an unread body would corrupt the next keep-alive request)."""
        if self._request_body is None:
            length = int(self.headers.get("Content-Length") or 0)
            self._request_body = self.rfile.read(length) if length else b""
        return self._request_body

    def read_json(self):
        body = self.read_body()
        return json.loads(body) if body else None

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        self.send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def send_bytes(self, status: int, body: bytes, content_type: str, headers: dict | None = None, reason=None):
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
