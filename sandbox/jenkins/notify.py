"""Notification plugin payloads (jenkinsci/notification-plugin), posted in the background.

The plugin serialises its JobState with Gson LOWER_CASE_WITH_UNDERSCORES and skips nulls,
so optional fields are simply left out. It fires QUEUED and STARTED together when a run
starts (QUEUED carries the enqueue time), COMPLETED when the result is known and FINALIZED
once the run is closed. Posts go through one worker thread so they arrive in phase order.

As in the plugin (Phase.buildJobState): `name` is the job's item name, `display_name` its
display name, `url` and `build.url` are `Job.getUrl()` / `Run.getUrl()` (each item name
percent-encoded by Util.rawEncode: `job/Store%20Front/job/build/`, a multibranch branch
`feature/x` is the item `feature%2Fx`, so `job/feature%252Fx/`), and `full_url` is the root URL
plus `build.url`. `log_lines` is the endpoint's "Log" setting: 0 sends no log, N the last N
lines, -1 the whole console log.
"""

import json
import queue
import threading
from urllib.parse import unquote

import requests

from . import junit
from .model import Build, job_path


def display_name(item_name: str) -> str:
    """A branch job's display name is the branch (its item name is the encoded branch)."""
    return unquote(item_name) if "%" in item_name else item_name


def console_excerpt(build: Build, log_lines: int) -> str:
    if not log_lines:
        return ""
    text = build.log.decode("utf-8", "replace")
    if log_lines < 0:
        return text
    return "".join(f"{line}\n" for line in text.splitlines()[-log_lines:])


def payload(root_url: str, build: Build, phase: str, timestamp: int, log_lines: int = 0) -> dict:
    path = job_path(build.job)
    short_name = build.job.split("/")[-1]
    state = {
        "full_url": f"{root_url}/{path}{build.number}/",
        "number": build.number,
        "queue_id": build.queue_id,
        "timestamp": timestamp,
        "duration": build.duration,
        "phase": phase,
        "url": f"{path}{build.number}/",
        "display_name": build.display_name,
        "scm": _scm(build.params),
        "log": console_excerpt(build, log_lines),
        "notes": "",
        "artifacts": {
            path.split("/")[-1]: {"archive": f"{build.url}artifact/{path}"} for path in build.config.artifacts
        },
    }
    if build.result is not None:
        state["status"] = build.result
    if build.params:
        state["parameters"] = dict(build.params)
    if build.tests is not None:
        state["test_summary"] = {**build.tests, "failed_tests": _failed_tests(build.tests)}
    return {"name": short_name, "display_name": display_name(short_name), "url": path, "build": state}


def _scm(params: dict[str, str]) -> dict:
    # The plugin fills url/branch/commit from the GIT_* environment; parameters stand in.
    scm = {"changes": [], "culprits": []}
    for key, name in (("url", "GIT_URL"), ("branch", "GIT_BRANCH"), ("commit", "GIT_COMMIT")):
        if params.get(name):
            scm[key] = params[name]
    return scm


def _failed_tests(tests: dict) -> list[str]:
    return junit.failed_names(tests)


class Notifier:
    """Best-effort POSTs of payloads to one endpoint URL; failures are swallowed."""

    def __init__(self, url: str | None, log_lines: int = 0):
        self.url = url
        self.log_lines = log_lines
        self.sent: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = None
        if url:
            self._thread = threading.Thread(target=self._work, name="jenkins-notify", daemon=True)
            self._thread.start()

    def send(self, root_url: str, build: Build, phase: str, timestamp: int) -> None:
        if self.url:
            self._queue.put(payload(root_url, build, phase, timestamp, self.log_lines))

    def stop(self) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join(timeout=5)

    def _work(self) -> None:
        while (body := self._queue.get()) is not None:
            self.sent.append(body)
            try:
                requests.post(
                    self.url,
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json;charset=UTF-8"},
                    timeout=5,
                )
            except requests.RequestException:
                pass  # the plugin only logs a failed notification
