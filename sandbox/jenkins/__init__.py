"""A fake Jenkins 2.462.3 that the real python-jenkins client cannot tell from a real one.

    from sandbox.jenkins import start
    jenkins = start(user="jenkins", token="jenkins-token")   # port 0 → ephemeral
    jenkins.url            # "http://127.0.0.1:PORT" (no trailing slash)
    jenkins.set_fault(status=500, count=3)   # or down=True, delay=2.0
    jenkins.wait_for_build("app", 1)         # → Build once finished
    jenkins.stop()

Jobs exist when the seed names them (their folders come with them) or a client creates them
(`createItem`, python-jenkins `create_job`); any other job path is a 404, unless the sandbox
runs with `any_job=True` (`--any-job`), where every path is a job. A triggered build waits in
the queue, runs on a thread printing a pipeline-like log, then succeeds, unless its parameters
or the seed file say otherwise: see `pipeline` for the SANDBOX_* build parameters and `seed` for
the file format. Builds with IMAGE, NAMESPACE and DEPLOYMENT (or SERVICE) patch the Deployment
in `kube_url` like `kubectl set image`; `notify_url` receives Notification plugin payloads
(`notify_log_lines`: the plugin's "Log" setting, 0 / N / -1 for the whole log).

Wire behaviour follows PROTOCOLS.md §2: X-Jenkins header on every reply, Basic auth (401 +
WWW-Authenticate otherwise; only `GET /` is anonymous so get_version works before any
authenticated call); the API token needs no crumb (Jenkins 2.96+), the optional `password`
does on POST; 201 + Location for builds; the progressive log with byte offsets; job and build
URLs percent-encoded per name (`job/Store%20Front/`) in the API, Location headers and
notifications; `tree=` and `depth` on every api/json; `computer/api/json` with the built-in
node, whose executors show the running builds.

`state` (`--state FILE`) keeps created jobs, the queue, build numbers and logs in a state file
(persist.py): a sandbox restarted on it, even after `kill -9`, carries on where it was.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.http import Running, Served, forwarded, serve

from . import seed as seed_file
from .handler import JenkinsHandler
from .model import Build, Jenkins, QueueItem
from .notify import Notifier
from .persist import JenkinsState
from .pipeline import Runner

__all__ = ["JenkinsSandbox", "start"]


@dataclass
class JenkinsSandbox(Served):
    """Handle returned by `start()`: URL, lifecycle, faults and inspection helpers."""

    running: Running
    state: Jenkins
    runner: Runner
    notifier: Notifier
    user = forwarded("state.user")
    token = forwarded("state.token")

    def stop(self) -> None:
        """Stop serving, and end build threads early so nothing outlives the test. With a state
        file, it is compacted first and then left alone, so the builds cut short here resume
        (instead of counting as aborted) when a sandbox starts on it again."""
        self.running.stop()
        with self.state.lock:
            if self.state.state is not None:
                self.state.state.close(self.state)
                self.state.state = None
            for item in self.state.queue.values():
                item.cancel.set()
            for build in self.state.all_builds():
                build.abort.set()
        self.notifier.stop()

    # -- faults -----------------------------------------------------------------------------

    def set_fault(
        self,
        status: int | None = None,
        count: int | None = None,
        down: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Misbehave on the next `count` requests (all of them if None).

        status: answer with this HTTP status; down: drop the connection unanswered;
        delay: sleep this long before answering (combine with the others or alone).
        """
        with self.state.lock:
            faults = self.state.faults
            faults.status, faults.count, faults.down, faults.delay = status, count, down, delay

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    # -- inspection -------------------------------------------------------------------------

    def builds(self, job: str | None = None) -> list[Build]:
        return [b for b in self.state.all_builds() if job is None or b.job == job]

    def get_build(self, job: str, number: int | str) -> Build | None:
        return self.state.get_build(job, number)

    def queue_item(self, queue_id: int) -> QueueItem | None:
        return self.state.queue.get(queue_id)

    def console(self, job: str, number: int) -> str:
        build = self.get_build(job, number)
        return build.log.decode("utf-8") if build else ""

    def wait_for_build(self, job: str, number: int, timeout: float = 10.0) -> Build:
        """Block until the build exists and has finished; raise TimeoutError otherwise."""

        def done() -> bool:
            build = self.get_build(job, number)
            return build is not None and not build.building

        if not sleep_until(done, timeout):
            raise TimeoutError(f"build {job} #{number} did not finish in {timeout}s")
        return self.get_build(job, number)

    @property
    def notifications(self) -> list[dict]:
        """Payloads handed to the notify worker, in order (sent or attempted)."""
        return list(self.notifier.sent)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request received, for asserting on client behaviour."""
        with self.state.lock:
            return list(self.state.requests)


def start(
    port: int = 0,
    user: str = "jenkins",
    token: str = "jenkins-token",
    seed=None,
    kube_url: str | None = None,
    notify_url: str | None = None,
    queue_seconds: float = 0.2,
    build_seconds: float = 1.0,
    kube_token: str | None = None,
    host: str = "127.0.0.1",
    verbose: bool = False,
    any_job: bool = False,
    password: str | None = None,
    notify_log_lines: int = 0,
    executors: int = 2,
    state_file=None,
) -> JenkinsSandbox:
    """Start the fake Jenkins on a background thread; `seed` is a path or a dict."""
    defaults, jobs = seed_file.load(seed)
    state = Jenkins(user, token, defaults, jobs, any_job=any_job, password=password, executors=executors)
    if state_file is not None:
        journal = JenkinsState(state_file)
        if not journal.load(state):
            journal.snapshot(state)
        state.state = journal
    notifier = Notifier(notify_url, notify_log_lines)
    runner = Runner(state, notifier, build_seconds, queue_seconds, kube_url, kube_token)
    running = serve(JenkinsHandler, port, host=host, jenkins=state, runner=runner, verbose=verbose)
    state.root_url = running.url
    for build in state.all_builds():  # URLs follow the port the sandbox serves on now
        build.url = f"{state.job_url(build.job)}{build.number}/"
    handle = JenkinsSandbox(running, state, runner, notifier)
    running.server.handle = handle
    runner.resume()
    return handle


def sleep_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
