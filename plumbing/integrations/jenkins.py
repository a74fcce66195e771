"""Jenkins through python-jenkins, returning our own dataclasses.

URL, user and API token come from settings (JENKINS_URL / JENKINS_USER / JENKINS_TOKEN);
the token is never put in a message or a log line. Every failure becomes an
IntegrationError: 401/403 (credentials), 404 (no such job, build or queue item) are
permanent; 5xx, timeouts and connection errors are transient and worth retrying.

Wire details are in PROTOCOLS.md §2.
"""

import re
import threading
from dataclasses import dataclass, field
from urllib.parse import quote

import jenkins
import requests
from django.conf import settings

from plumbing import weblinks
from plumbing.integrations import IntegrationError

TIMEOUT_SECONDS = 10
# Jenkins build results (hudson.model.Result).
SUCCESS, UNSTABLE, FAILURE, ABORTED, NOT_BUILT = "SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT"

WAITING, STARTED, CANCELLED = "waiting", "started", "cancelled"

_clients: dict[tuple, jenkins.Jenkins] = {}
_lock = threading.Lock()
_STATUS_IN_MESSAGE = re.compile(r"\[(\d{3})\]")


@dataclass
class QueueItem:
    """A queue item: still `waiting` (with Jenkins' `why`), `started` as a build, or `cancelled`."""

    id: int
    state: str
    why: str = ""
    number: int | None = None
    url: str = ""


@dataclass
class BuildInfo:
    number: int
    url: str
    building: bool
    result: str | None
    duration_ms: int = 0
    queue_id: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    tests: dict | None = None  # {"total", "failed", "skipped", "passed"}
    artifacts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FailedTest:
    name: str  # "tests.test_cart.CartTest.test_total", as the JUnit plugin names a case
    message: str


@dataclass
class TestReport:
    """A build's JUnit report: the counts and the failed cases with their messages."""

    __test__ = False  # not a pytest test class

    passed: int
    failed: int
    skipped: int
    failed_tests: list[FailedTest] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


@dataclass
class LogChunk:
    """Console text from a byte offset: `next_offset` is where to ask next, `more` while running."""

    text: str
    start: int
    next_offset: int
    more: bool
    size: int  # bytes received, for the tailing benchmark


def lines(text: str) -> list[str]:
    """Console text as lines (Jenkins sends whole lines while a build runs; CRLF or LF)."""
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [line.rstrip("\r") for line in parts]


def configured() -> bool:
    return bool(settings.JENKINS_URL)


def start_job(job: str, parameters: dict[str, str]) -> int:
    """Trigger `job` with `parameters`; return the queue item id from the Location header.

    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.build_job
    # Reference: https://www.jenkins.io/doc/book/using/remote-access-api/#submitting-jobs
    """
    return _call(f"starting job {job}", lambda server: server.build_job(job, parameters or None))


def queue_item(queue_id: int) -> QueueItem:
    """Read queue item `queue_id`: waiting, started (with number and URL) or cancelled.

    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.get_queue_item
    """
    doc = _call(f"reading queue item {queue_id}", lambda server: server.get_queue_item(queue_id))
    executable = doc.get("executable") or {}
    if executable.get("number"):
        return QueueItem(
            queue_id, STARTED, number=int(executable["number"]), url=weblinks.http_url(executable.get("url", ""))
        )
    if doc.get("cancelled"):
        return QueueItem(queue_id, CANCELLED, why="The queue item was cancelled in Jenkins.")
    return QueueItem(queue_id, WAITING, why=doc.get("why") or "")


def build_info(job: str, number: int) -> BuildInfo:
    """Read build `number` of `job`: state, result, parameters, test summary, artifacts.

    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.get_build_info
    """
    doc = _call(f"reading {job} #{number}", lambda server: server.get_build_info(job, number))
    return BuildInfo(
        number=int(doc["number"]),
        url=weblinks.http_url(doc.get("url", "")),
        building=bool(doc.get("building")),
        result=doc.get("result"),
        duration_ms=int(doc.get("duration") or 0),
        queue_id=doc.get("queueId"),
        parameters=_parameters(doc.get("actions") or []),
        tests=_tests(doc.get("actions") or []),
        artifacts=[a.get("relativePath", "") for a in doc.get("artifacts") or []],
    )


def test_report(job: str, number: int) -> TestReport | None:
    """The JUnit report of build `number` of `job`, or None when the build recorded none.

    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.get_build_test_report
    # Reference: https://javadoc.jenkins.io/plugin/junit/hudson/tasks/junit/TestResult.html
    """
    doc = _call(f"reading the test report of {job} #{number}", lambda server: server.get_build_test_report(job, number))
    if not doc or doc.get("empty"):
        return None
    try:
        return TestReport(
            passed=int(doc.get("passCount") or 0),
            failed=int(doc.get("failCount") or 0),
            skipped=int(doc.get("skipCount") or 0),
            failed_tests=_failed_cases(doc.get("suites") or []),
        )
    except (TypeError, ValueError, AttributeError):
        raise IntegrationError(f"Jenkins sent a test report that could not be read ({job} #{number}).", True) from None


def find_run(job: str, parameter: str, value: str, recent: int = 10) -> QueueItem | None:
    """The queue item or recent build of `job` whose `parameter` is `value`, if Jenkins has one.

    What a job asks before triggering again after a crash or a retry: the portal passes its own
    id as a parameter (DEPLOYMENT_ID, PORTAL_BUILD_ID), so a run it asked for earlier is found
    rather than started twice.
    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.get_queue_info
    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.get_job_info
    """
    short_name = job.rstrip("/").split("/")[-1]
    for item in _call("reading the queue", lambda server: server.get_queue_info()):
        task = item.get("task") or {}
        if task.get("name") == short_name and _parameters(item.get("actions") or []).get(parameter) == str(value):
            return QueueItem(int(item["id"]), WAITING, why=item.get("why") or "")
    info = _call(f"reading {job}", lambda server: server.get_job_info(job))
    for ref in (info.get("builds") or [])[:recent]:
        build = build_info(job, int(ref["number"]))
        if build.parameters.get(parameter) == str(value):
            return QueueItem(int(build.queue_id or 0), STARTED, number=build.number, url=build.url)
    return None


def progressive_log(job: str, number: int, start: int) -> LogChunk:
    """Console text of `job` #`number` from byte `start`, as Jenkins' progressiveText serves it.

    While the build runs Jenkins sends whole lines only and `X-More-Data: true`;
    `X-Text-Size` is the offset to ask from next. python-jenkins does not wrap this
    endpoint, so it goes through the client's own session (same auth, crumb and errors).
    # Reference: https://github.com/jenkinsci/stapler/blob/master/core/src/main/java/org/kohsuke/stapler/framework/io/LargeText.java
    """

    def fetch(server: jenkins.Jenkins) -> requests.Response:
        url = f"{_job_url(job)}{number}/logText/progressiveText?start={start}"
        return server.jenkins_request(requests.Request("GET", url))

    response = _call(f"reading the log of {job} #{number}", fetch)
    body = response.content
    try:
        next_offset = int(response.headers.get("X-Text-Size", start + len(body)))
    except ValueError:
        next_offset = start + len(body)
    more = response.headers.get("X-More-Data", "").lower() == "true"
    return LogChunk(body.decode("utf-8", "replace"), start, next_offset, more, len(body))


def console_text(job: str, number: int) -> str:
    """The whole console log (used to compare against what was tailed).

    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.get_build_console_output
    """
    return _call(f"reading the log of {job} #{number}", lambda server: server.get_build_console_output(job, number))


def stop_build(job: str, number: int) -> None:
    """Abort a running build (POST …/stop); a finished build is left as it is.

    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.stop_build
    """
    _call(f"stopping {job} #{number}", lambda server: server.stop_build(job, number))


def cancel_quietly(queue_id: int) -> None:
    """Take a waiting item off the queue if Jenkins answers; a follower of a live item would see
    it run, and a lost item is harmless."""
    try:
        cancel_queue_item(queue_id)
    except IntegrationError:
        pass


def stop_quietly(job: str, number: int) -> None:
    """Ask Jenkins to stop a build if it answers (the caller checks later whether it stopped)."""
    try:
        stop_build(job, number)
    except IntegrationError:
        pass


def cancel_queue_item(queue_id: int) -> None:
    """Take a waiting item off the queue (Jenkins answers 404 or a redirect; both are fine).

    # Reference: https://python-jenkins.readthedocs.io/en/latest/api.html#jenkins.Jenkins.cancel_queue
    """
    _call(f"cancelling queue item {queue_id}", lambda server: server.cancel_queue(queue_id))


# -- plumbing ---------------------------------------------------------------------------------


def _client() -> jenkins.Jenkins:
    """One client per (URL, user, token), reused so the crumb is fetched once."""
    if not settings.JENKINS_URL:
        raise IntegrationError("Jenkins is not configured: set JENKINS_URL, JENKINS_USER and JENKINS_TOKEN.", True)
    key = (settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN)
    with _lock:
        if key not in _clients:
            _clients[key] = jenkins.Jenkins(
                settings.JENKINS_URL, settings.JENKINS_USER or None, settings.JENKINS_TOKEN or None, TIMEOUT_SECONDS
            )
        return _clients[key]


def _call(what: str, action):
    server = _client()
    try:
        return action(server)
    except jenkins.NotFoundException:
        raise IntegrationError(f"Jenkins has no such item ({what}: 404).", permanent=True)
    except jenkins.TimeoutException:
        raise IntegrationError(f"Jenkins did not answer in {TIMEOUT_SECONDS}s ({what}).")
    except jenkins.JenkinsException as exc:
        raise _from_jenkins_exception(exc, what)
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        raise IntegrationError(f"Jenkins answered {status} ({what}).", permanent=400 <= status < 500)
    except (requests.ConnectionError, requests.Timeout):
        _forget(server)
        raise IntegrationError(f"Jenkins cannot be reached at {settings.JENKINS_URL} ({what}).")
    except requests.RequestException as exc:
        raise IntegrationError(f"Jenkins request failed ({what}): {type(exc).__name__}.")
    except (ValueError, KeyError, TypeError):
        raise IntegrationError(f"Jenkins sent an answer that could not be read ({what}).")


def _from_jenkins_exception(exc: jenkins.JenkinsException, what: str) -> IntegrationError:
    # python-jenkins folds 401/403/500 into one message; the status is in brackets.
    text = str(exc)
    match = _STATUS_IN_MESSAGE.search(text)
    status = int(match.group(1)) if match else 0
    if status in (401, 403):
        return IntegrationError(
            f"Jenkins refused the credentials ({status}) while {what}: check JENKINS_USER and JENKINS_TOKEN.",
            permanent=True,
        )
    if "does not exist" in text:
        return IntegrationError(f"Jenkins has no such item ({what}).", permanent=True)
    if status:
        return IntegrationError(f"Jenkins answered {status} ({what}).", permanent=status < 500)
    return IntegrationError(f"Jenkins request failed ({what}): {text.splitlines()[0][:200]}")


def _forget(server: jenkins.Jenkins) -> None:
    """After a dropped connection, start over (fresh session and crumb) on the next call."""
    with _lock:
        for key, value in list(_clients.items()):
            if value is server:
                del _clients[key]


def _job_url(job: str) -> str:
    """The job's URL as Jenkins builds it: `job/<name>/` per folder level, each name encoded
    (a multibranch branch `release%2F1.2` becomes `job/release%252F1.2/`)."""
    path = "".join(f"job/{quote(part, safe='')}/" for part in job.strip("/").split("/"))
    return f"{settings.JENKINS_URL.rstrip('/')}/{path}"


def _parameters(actions: list[dict]) -> dict[str, str]:
    for action in actions:
        if action and "parameters" in action:
            return {p["name"]: "" if p.get("value") is None else str(p.get("value")) for p in action["parameters"]}
    return {}


# A case's status in the JUnit plugin (CaseResult.Status): REGRESSION is a newly failed case.
_FAILED_STATUSES = frozenset({"FAILED", "REGRESSION"})


def _failed_cases(suites: list[dict]) -> list[FailedTest]:
    failed = []
    for suite in suites:
        for case in suite.get("cases") or []:
            if case.get("status") in _FAILED_STATUSES:
                name = ".".join(part for part in (case.get("className"), case.get("name")) if part)
                failed.append(FailedTest(name, (case.get("errorDetails") or "").strip()))
    return failed


def _tests(actions: list[dict]) -> dict | None:
    for action in actions:
        if action and action.get("_class", "").endswith("TestResultAction"):
            total, failed, skipped = (int(action.get(k) or 0) for k in ("totalCount", "failCount", "skipCount"))
            return {"total": total, "failed": failed, "skipped": skipped, "passed": total - failed - skipped}
    return None
