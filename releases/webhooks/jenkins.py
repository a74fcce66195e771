"""`POST /hooks/jenkins/`: builds reported by Jenkins (started in the portal or elsewhere).

Two payload shapes are accepted:

1. The Notification plugin's (PROTOCOLS.md §2): `{"name", "url": "job/a/job/b/", "build":
   {"number", "phase", "status", "full_url", "queue_id", "parameters", "scm", "test_summary"}}`.
   The plugin cannot sign, so point it at `/hooks/jenkins/?token=<JENKINS_WEBHOOK_SECRET>`.
2. The portal's contract for a pipeline `post {}` step (curl or httpRequest):
   `{"job": "folder/app", "number": 12, "status": "SUCCESS", "url": "…", "queue_id": 345,
   "params": {"VERSION": "1.4.2", "GIT_COMMIT": "…"}}` (optional `"phase"`, default
   COMPLETED when a status is given, else STARTED; optional `"test_summary"`), signed with
   `X-Portal-Signature-256: sha256=<hex HMAC-SHA256(JENKINS_WEBHOOK_SECRET, raw body)>`.

Job names: Jenkins percent-encodes every item name in its URLs (hudson.Util.rawEncode), so
the plugin's `url` is `job/Store%20Front/job/build/`, and a multibranch branch `feature/x`, whose
item name is `feature%2Fx`, appears as `job/feature%252Fx/`. Each name is decoded once, giving
the job's Jenkins full name (`Store Front/build/feature%2Fx`, what python-jenkins and the
service's "Jenkins build job" use). A service or a portal-started build matches that full name,
or the same name with the branch written as people read it (`Store Front/build/feature/x`).

The Notification plugin's "Log" setting (lines of console log per notification) is best left at
0: the portal tails logs itself and ignores `build.log`. A full log (-1) is accepted up to
MAX_BODY (16 MiB); beyond that the answer is 413 with that advice.

Answers: 200 handled (or already handled), 400 malformed, 401 no credentials, 403 wrong
credentials or hooks not enabled, 405 not a POST, 413 body over 16 MiB. Nothing is recorded
unless the answer is 200. Each (job, number, phase) is handled once (WebhookDelivery).
"""

import hmac
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from plumbing import fragments, weblinks
from releases import builds, states
from releases.models import Build, Entry, Service, WebhookDelivery
from releases.webhooks.signatures import TooDeep, load_json, read_limited_body, verify_hmac_sha256

# A whole console log in a notification (the plugin's Log = -1) fits; the log itself is ignored.
MAX_BODY = 16 * 1024 * 1024
SIGNATURE_HEADER = "HTTP_X_PORTAL_SIGNATURE_256"
PHASES = ("QUEUED", "STARTED", "COMPLETED", "FINALIZED")
FINISHED = ("COMPLETED", "FINALIZED")
STATUSES = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT")
# Jenkins numbers builds with a Java int and queue items with a Java long; anything beyond
# cannot come from Jenkins (and would overflow the database columns).
MAX_BUILD_NUMBER = 2**31 - 1
MAX_QUEUE_ID = 2**63 - 1
# Build start times (ms since the epoch) the portal accepts: 2000-01-01 … 2100-01-01.
TIMESTAMP_RANGE_MS = (946_684_800_000, 4_102_444_800_000)


class Malformed(ValueError):
    """The body is not a build report we understand; the message says what is wrong."""


@dataclass
class Report:
    job: str
    number: int
    phase: str
    status: str = ""
    url: str = ""
    queue_id: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tests: dict | None = None

    @property
    def delivery_id(self) -> str:
        return f"{self.job}#{self.number}:{self.phase}"

    @property
    def job_names(self) -> list[str]:
        """The names a service or a build may know this job by: its Jenkins full name, and the
        same with encoded slashes (multibranch branches) written as plain slashes."""
        readable = "/".join(unquote(part) for part in self.job.split("/"))
        return [self.job] if readable == self.job else [self.job, readable]


@csrf_exempt
@login_not_required
def receive(request):
    if request.method != "POST":
        return _answer(405, "Send build reports with POST.")
    secret = settings.JENKINS_WEBHOOK_SECRET
    if not secret:
        return _answer(403, "Jenkins webhooks are not enabled: set JENKINS_WEBHOOK_SECRET.")
    body = read_limited_body(request, MAX_BODY)
    if body is None:
        return _answer(
            413,
            f"The body is larger than {MAX_BODY} bytes. Set the Notification plugin's Log to 0: "
            "the portal follows console logs itself.",
        )
    refused = _authenticate(request, secret, body)
    if refused:
        return refused
    try:
        report = parse(body)
    except Malformed as problem:
        return _answer(400, str(problem))
    return _answer(200, handle(report))


def _authenticate(request, secret: str, body: bytes):
    signature = request.META.get(SIGNATURE_HEADER, "")
    token = request.GET.get("token", "")
    if signature:
        if verify_hmac_sha256(secret, body, signature):
            return None
        return _answer(403, "The X-Portal-Signature-256 signature does not match the body.")
    if token:
        if hmac.compare_digest(token.encode(), secret.encode()):
            return None
        return _answer(403, "The token does not match JENKINS_WEBHOOK_SECRET.")
    return _answer(401, "Sign the body (X-Portal-Signature-256) or pass ?token=<JENKINS_WEBHOOK_SECRET>.")


def _answer(status: int, message: str) -> JsonResponse:
    return JsonResponse({"ok": status == 200, "message": message}, status=status)


# -- parsing ----------------------------------------------------------------------------------


def parse(body: bytes) -> Report:
    try:
        data = load_json(body)
    except TooDeep as problem:
        raise Malformed(f"The body is refused: {problem}")
    except (ValueError, UnicodeDecodeError):
        raise Malformed("The body is not JSON.")
    if not isinstance(data, dict):
        raise Malformed("The body must be a JSON object.")
    if isinstance(data.get("build"), dict):
        return _from_notification(data)
    if "job" in data:
        return _from_pipeline(data)
    raise Malformed('Expected a Notification plugin payload ("name", "build") or {"job", "number", "status"}.')


def _from_notification(data: dict) -> Report:
    build = data["build"]
    job = _job_from_url(data.get("url")) or _job_from_url(build.get("full_url")) or data.get("name")
    params = build.get("parameters") or {}
    scm = build.get("scm") if isinstance(build.get("scm"), dict) else {}
    if isinstance(params, dict) and scm.get("commit") and "GIT_COMMIT" not in params:
        params = {**params, "GIT_COMMIT": scm["commit"]}
    return _report(
        job=job,
        number=build.get("number"),
        phase=build.get("phase"),
        status=build.get("status"),
        url=build.get("full_url") or "",
        queue_id=build.get("queue_id"),
        params=params,
        tests=build.get("test_summary"),
        timestamp=build.get("timestamp"),
    )


def _from_pipeline(data: dict) -> Report:
    status = data.get("status")
    return _report(
        job=data.get("job"),
        number=data.get("number"),
        phase=data.get("phase") or ("COMPLETED" if status else "STARTED"),
        status=status,
        url=data.get("url") or "",
        queue_id=data.get("queue_id"),
        params=data.get("params") or {},
        tests=data.get("test_summary"),
    )


def _job_from_url(url) -> str:
    """A job's full name from its URL, each item name decoded once, as Jenkins resolves it:
    `job/Store%20Front/job/build/` → `Store Front/build`; `…/job/feature%252Fx/` → the item
    `feature%2Fx`. Takes `Job.getUrl()` or an absolute build URL (`…/job/app/12/`)."""
    if not isinstance(url, str):
        return ""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    names = []
    while len(parts) >= 2 and parts[0] == "job":
        names.append(unquote(parts[1]))
        parts = parts[2:]
    if not names or (parts and not (len(parts) == 1 and parts[0].isdigit())):
        return ""
    return "/".join(names)


def _report(*, job, number, phase, status, url, queue_id, params, tests, timestamp=None) -> Report:
    if not isinstance(job, str) or not job.strip() or len(job) > 200:
        raise Malformed("The job name is missing or longer than 200 characters.")
    if not _whole(number, 1, MAX_BUILD_NUMBER):
        raise Malformed(f"The build number must be an integer from 1 to {MAX_BUILD_NUMBER}.")
    if phase not in PHASES:
        raise Malformed(f"The phase must be one of {', '.join(PHASES)}.")
    if status not in (None, "", *STATUSES):
        raise Malformed(f"The status must be one of {', '.join(STATUSES)}.")
    if queue_id is not None and not _whole(queue_id, 1, MAX_QUEUE_ID):
        raise Malformed(f"The queue id must be an integer from 1 to {MAX_QUEUE_ID}.")
    if timestamp is not None and not _whole(timestamp, *TIMESTAMP_RANGE_MS):
        raise Malformed("The build timestamp must be milliseconds since the epoch, between 2000 and 2100.")
    _check_url(url)
    return Report(
        job=job.strip().strip("/"),
        number=number,
        phase=phase,
        status=status or "",
        url=url,
        queue_id=queue_id,
        params=_params(params),
        tests=_tests(tests),
    )


def _whole(value, low: int, high: int) -> bool:
    """An integer (JSON booleans are not numbers here) within [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_url(url) -> None:
    if not isinstance(url, str) or len(url) > 500:
        raise Malformed("The build URL must be a string of at most 500 characters.")
    # It becomes a link on the build and release pages: http(s) only, never javascript: or data:.
    if url and not weblinks.is_http_url(url):
        raise Malformed("The build URL must be an http:// or https:// URL.")


def _params(params) -> dict[str, str]:
    if not isinstance(params, dict) or len(params) > 200:
        raise Malformed("The parameters must be an object of at most 200 names.")
    clean = {}
    for name, value in params.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise Malformed(f"Parameter {name[:50]} must be a string, number or boolean.")
        clean[str(name)[:100]] = "" if value is None else str(value)[:1000]
    return clean


def _tests(tests) -> dict | None:
    if tests is None:
        return None
    if not isinstance(tests, dict):
        raise Malformed("The test summary must be an object.")
    summary = {}
    for key in ("total", "failed", "passed", "skipped"):
        value = tests.get(key, 0)
        if not _whole(value, 0, MAX_BUILD_NUMBER):
            raise Malformed(f"The test summary's {key} must be an integer from 0 to {MAX_BUILD_NUMBER}.")
        summary[key] = value
    return summary


# -- handling ---------------------------------------------------------------------------------


def handle(report: Report) -> str:
    """Record the report once: the build row, its state, and a release when it succeeded."""
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(source="jenkins", delivery_id=report.delivery_id, event=report.phase)
            build = _build_for(report)
            _apply(build, report)
    except IntegrityError:
        return f"{report.delivery_id} was already handled."
    return f"Recorded {report.job} #{report.number} {report.phase}."


def _build_for(report: Report) -> Build:
    names = report.job_names
    build = Build.objects.select_for_update().filter(job_name__in=names, number=report.number).first()
    if build is None and report.queue_id is not None:
        # A build the portal started: it knows the queue item, maybe not yet the number.
        build = (
            Build.objects.select_for_update()
            .filter(job_name__in=names, queue_id=report.queue_id, number__isnull=True)
            .first()
        )
        if build is not None:
            Build.objects.filter(pk=build.pk).update(number=report.number, url=report.url or build.url)
            fragments.touch(fragments.BUILD)  # the service page shows its number
            build.refresh_from_db()
    if build is None:
        build = Build.objects.create(
            service=Service.objects.filter(jenkins_build_job__in=names).order_by("pk").first(),
            job_name=report.job,
            number=report.number,
            queue_id=report.queue_id,
            url=report.url,
            trigger="jenkins",
            state=states.BUILD_RUNNING,
            parameters=report.params,
            version=(report.params.get("VERSION") or str(report.number))[:100],
            started_at=timezone.now(),
        )
        build.log("started", f"Jenkins reported {report.job} #{report.number} (started outside the portal).")
    return build


def _apply(build: Build, report: Report) -> None:
    if build.state == states.BUILD_QUEUED:
        build.append(
            [Entry("started", f"Jenkins started {report.job} #{report.number}.", {"number": report.number})],
            where={"state": states.BUILD_QUEUED},
            state=states.BUILD_RUNNING,
            started_at=timezone.now(),
        )
    if report.phase in FINISHED and report.status:
        builds.finish_build(build, report.status, parameters=report.params, tests=report.tests, url=report.url)
