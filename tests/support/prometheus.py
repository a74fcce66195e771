"""A real Prometheus for tests: Debian's /usr/bin/prometheus as a subprocess with a one-second
scrape interval, its own temporary TSDB and an ephemeral port, read back through its HTTP API.

`start(tmp_path, scrape_configs)` returns a running `Prometheus` (`stop()` it, or use the
`prometheus_server` helpers of the test modules). Everything is polled with a deadline and a
failure quotes what Prometheus logged.
"""

import json
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_port, stop_process

PROMETHEUS = Path("/usr/bin/prometheus")
DEADLINE = 30.0


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen
    log: Path
    processes: list = field(default_factory=list)

    def api(self, path: str, **params) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = get_json(f"{self.url}/api/v1/{path}{query}")
        assert body["status"] == "success", body
        return body["data"]

    def poll(self, what: str, probe, deadline: float = DEADLINE):
        """`probe()` until it returns something truthy; fail with what Prometheus logged."""
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                found = probe()
            except OSError:  # not listening yet
                found = None
            if found:
                return found
            time.sleep(0.1)
        pytest.fail(f"no {what} within {deadline:.0f} s; prometheus said: {self.log.read_text()}")

    def target(self, job: str) -> dict:
        """The target of `job` once it has been scraped at least once (health no longer "unknown")."""

        def scraped():
            active = self.api("targets", state="active")["activeTargets"]
            return next((t for t in active if t["labels"]["job"] == job and t["health"] != "unknown"), None)

        return self.poll(f"scrape of {job}", scraped)

    def query(self, promql: str) -> list[dict]:
        return self.api("query", query=promql)["result"]

    def stop(self) -> None:
        stop_process(self.process)


def config(tmp_path: Path, scrape_configs: str) -> Path:
    path = tmp_path / "prometheus.yml"
    path.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n" + scrape_configs
    )
    return path


def _launch(tmp_path: Path, config_file: Path, attempt: int, port: int | None = None) -> Prometheus:
    listen = port or free_port()
    log = tmp_path / f"prometheus-{attempt}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / f'tsdb-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{listen}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Prometheus(f"http://127.0.0.1:{listen}", process, log)


def _ready(server: Prometheus) -> bool:
    """Wait until the server answers /-/ready (True) or exits (False)."""
    ready = time.monotonic() + DEADLINE
    while server.process.poll() is None and time.monotonic() < ready:
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    if server.process.poll() is None:
        pytest.fail(f"prometheus not ready within {DEADLINE:.0f} s: {server.log.read_text()}")
    return False


def start(tmp_path: Path, scrape_configs: str, started: list, port: int | None = None) -> Prometheus:
    """Start Prometheus with `scrape_configs` (YAML list items), on `port` or a free one; each
    process started is appended to `started`, for the fixture to stop. A free port can be taken
    between the probe and Prometheus binding it: then it tries again."""
    config_file = config(tmp_path, scrape_configs)
    for attempt in range(3):
        server = _launch(tmp_path, config_file, len(started), port)
        started.append(server.process)
        if _ready(server):
            return server
        if "address already in use" not in server.log.read_text():
            pytest.fail(f"prometheus exited with {server.process.returncode}: {server.log.read_text()}")
    pytest.fail("prometheus found no free port in 3 attempts")
