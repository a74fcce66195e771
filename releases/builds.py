"""Jenkins builds of services: start them, follow them, turn successful ones into releases.

Exactly once: before asking Jenkins, the trigger job writes down that it is about to
(`Build.asked_at`); a re-run after a crash or a retry first looks in Jenkins for a queue item
or build carrying this build's PORTAL_BUILD_ID parameter and adopts it. (Jenkins drops
undeclared parameters: declare PORTAL_BUILD_ID as a string parameter of the build job.)

Following is one idempotent step per job run, re-enqueued after JENKINS_POLL_SECONDS; the
byte offset reached in the console log is stored on the row by a compare-and-swap UPDATE in
the same transaction as the log lines it appends, so a worker killed at any moment is
replaced by one that continues exactly where the last commit left off. Outside failures
follow the one retry policy (plumbing.queues): transient ones are retried with backoff,
permanent ones (or the last attempt) end the build with the reason.

Result mapping: SUCCESS → succeeded (and a Release); ABORTED → aborted; FAILURE, NOT_BUILT
and UNSTABLE → failed. An UNSTABLE build had failing tests, and an approval must be of a
tested artifact, so it never becomes a release.
"""

import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from plumbing import fragments, gitrefs, queues
from plumbing.integrations import IntegrationError, jenkins
from releases import rules, states
from releases.models import Build, Entry, Release

RESULT_STATES = {jenkins.SUCCESS: states.BUILD_SUCCEEDED, jenkins.ABORTED: states.BUILD_ABORTED}
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
ID_PARAMETER = "PORTAL_BUILD_ID"


def build_parameters(service, build_pk: int, ref: str = "", version: str = "") -> dict[str, str]:
    """What the build job gets: the service, the git ref to build, a proposed version, our id."""
    proposed = version or f"{timezone.now():%Y.%m.%d}-{build_pk}"
    return {"SERVICE": service.slug, "GIT_REF": ref or "main", "VERSION": proposed, ID_PARAMETER: str(build_pk)}


def request_build(user, service, *, ref: str = "", version: str = "", commit: str = "") -> Build:
    """A person asks for a build of `service`: check they may, then start it."""
    verdict = rules.can_build(user, service)
    if not verdict:
        raise rules.Refused(verdict)
    return start_build(service, user=user, ref=ref, version=version, commit=commit)


def start_build(
    service, *, user=None, trigger: str = "portal", ref: str = "", version: str = "", commit: str = ""
) -> Build:
    """Record a build of `service` and queue the job that starts it in Jenkins.

    Callers authorize first: `request_build` for people, signed webhooks for GitHub. `commit` is
    the sha `ref` stood for when asked (or `ref` itself when it is a full sha): Jenkins is asked
    to build exactly it, and the release it makes names it even when Jenkins reports no GIT_COMMIT.
    """
    if ref and not gitrefs.is_valid_ref_name(ref):
        # It becomes the job's GIT_REF parameter: only something git itself accepts as a name.
        raise rules.Refused(f"{ref[:100]!r} is not a valid git branch, tag or commit name.")
    commit = commit or (ref if FULL_SHA_RE.match(ref or "") else "")
    if version and Release.objects.filter(service=service, version=version).exists():
        raise rules.Refused(f"{service.name} already has a release {version}: pick another version.")
    who = user.username if user else trigger.title()
    with transaction.atomic():
        build = Build.objects.create(
            service=service, job_name=service.jenkins_build_job, triggered_by=user, trigger=trigger, git_sha=commit
        )
        build.parameters = build_parameters(service, build.pk, commit or ref, version)
        build.version = build.parameters["VERSION"]
        build.save(update_fields=["parameters", "version"])
        asked = f"{ref} at {commit[:7]}" if commit and ref and ref != commit else (commit[:7] or ref or "main")
        build.log("requested", f"{who} asked Jenkins to build {service.name} {asked} ({build.version}).")
        queues.enqueue(trigger_build, build.pk)
    return build


def _on_error(build: Build, error: IntegrationError, what: str) -> None:
    queues.retry_or_give_up(
        error,
        transient=not error.permanent,
        give_up=lambda: build.move(states.BUILD_FAILED, f"{what} failed: {error}", reason=str(error)),
        note=lambda message: build.log("retry", f"{what} failed. {message}"),
    )


def trigger_build(pk: int) -> None:
    """Job: hand the build to Jenkins (once), then follow it."""
    build = (
        Build.objects.select_related("service").filter(pk=pk, state=states.BUILD_QUEUED, queue_id__isnull=True).first()
    )
    if build is None:
        return
    try:
        item = _earlier_run(build) if build.asked_at else None
        if item is None:
            if not Build.objects.filter(pk=pk, state=states.BUILD_QUEUED).update(asked_at=timezone.now()):
                return
            item = jenkins.QueueItem(jenkins.start_job(build.job_name, build.parameters), jenkins.WAITING)
    except IntegrationError as error:
        _on_error(build, error, f"Starting {build.job_name}")
        return
    queued = build.append(
        [Entry("queued", f"Jenkins queued {build.job_name} as queue item {item.id}.", {"queue_id": item.id})],
        where={"state": states.BUILD_QUEUED, "queue_id__isnull": True},
        queue_id=item.id,
    )
    if queued is None:
        jenkins.cancel_quietly(item.id)  # aborted while Jenkins was being asked
        return
    follow_build(pk)


def _earlier_run(build: Build) -> jenkins.QueueItem | None:
    item = jenkins.find_run(build.job_name, ID_PARAMETER, str(build.pk))
    if item is not None:
        build.log("queued", f"Found the {build.job_name} run asked for earlier; following it instead of another.")
    return item


def follow_build(pk: int) -> None:
    """Job: one step of following a build; again after JENKINS_POLL_SECONDS until it ends."""
    if not follow_build_step(pk):
        queues.enqueue(follow_build, pk, delay=settings.JENKINS_POLL_SECONDS)


def follow_build_step(pk: int) -> bool:
    """One idempotent step of following; True when there is nothing left to follow."""
    build = Build.objects.select_related("service").filter(pk=pk).first()
    if build is None or build.queue_id is None:
        return True
    try:
        if build.number is None:
            return not build.is_active or _await_executor(build)
        return _tail_build(build)
    except IntegrationError as error:
        what = f"#{build.number}" if build.number else f"queue item {build.queue_id}"
        _on_error(build, error, f"Following {build.job_name} {what}")
        return True


def _await_executor(build: Build) -> bool:
    item = jenkins.queue_item(build.queue_id)
    if item.state == jenkins.CANCELLED:
        reason = "The Jenkins queue item was cancelled before the build started."
        build.move(states.BUILD_CANCELLED, reason, reason=reason)
        return True
    if item.state == jenkins.WAITING:
        return False
    try:
        build.append(
            [
                Entry(
                    "started",
                    f"Jenkins started {build.job_name} #{item.number}.",
                    {"number": item.number, "url": item.url},
                )
            ],
            where={"state": states.BUILD_QUEUED, "number__isnull": True},
            state=states.BUILD_RUNNING,
            number=item.number,
            url=item.url,
            started_at=timezone.now(),
        )
    except IntegrityError:
        # The webhook recorded this build number on a row of its own first; that row wins.
        build.move(states.BUILD_CANCELLED, f"Recorded by Jenkins' notification as #{item.number}.", reason="duplicate")
        return True
    return False


def follow_log(timeline, job: str, number: int, offset_field: str) -> jenkins.BuildInfo | None:
    """Add the next chunk of a Jenkins build's console log to `timeline` (one UPDATE claims the
    chunk: compare-and-swap on the offset, and numbers its lines); the build's info once its log
    is complete and Jenkins has closed it, else None (follow again later)."""
    chunk = jenkins.progressive_log(job, number, getattr(timeline, offset_field))
    timeline.append(
        [Entry("log", line) for line in jenkins.lines(chunk.text)],
        where={offset_field: chunk.start},
        **{offset_field: chunk.next_offset},
    )
    if chunk.more:
        return None
    info = jenkins.build_info(job, number)
    return None if info.building else info


def _tail_build(build: Build) -> bool:
    info = follow_log(build, build.job_name, build.number, "log_offset")
    if info is None:
        return False
    finish_build(build, info.result, parameters=info.parameters, tests=info.tests, url=info.url)
    return True


def finish_build(build: Build, result: str | None, *, parameters=None, tests=None, url: str = "") -> bool:
    """Settle a build's result once (whoever comes first: the follower or the webhook)."""
    result = (result or jenkins.NOT_BUILT).upper()
    state = RESULT_STATES.get(result, states.BUILD_FAILED)
    parameters = {**build.parameters, **(parameters or {})}
    reason = "" if state == states.BUILD_SUCCEEDED else result_reason(build, result, tests)
    with transaction.atomic():
        moved = build.move(
            state,
            f"Jenkins {build.job_name} #{build.number} finished: {result}." + (f" {reason}" if reason else ""),
            data={"result": result},
            result=result,
            reason=reason,
            parameters=parameters,
            test_summary=tests or build.test_summary or {},
            url=url or build.url,
            version=(parameters.get("VERSION") or str(build.number or "")).strip()[:100],
            git_sha=_sha(parameters.get("GIT_COMMIT", "")) or build.git_sha,
        )
        if moved and state == states.BUILD_SUCCEEDED:
            make_release(build)
        if moved and build.number and result in TESTED_RESULTS and jenkins.configured():
            queues.enqueue(record_test_report, build.pk)
    return moved


# Results of builds that ran their tests (an aborted or not-built one may have none).
TESTED_RESULTS = frozenset({jenkins.SUCCESS, jenkins.UNSTABLE, jenkins.FAILURE})
# Enough to act on; the rest is one click away in Jenkins.
MAX_FAILED_TESTS = 50
MAX_TEST_MESSAGE = 500


def record_test_report(pk: int) -> None:
    """Job: read a finished build's JUnit report from Jenkins; keep it on the build and its release.

    The report describes the very artifact the release names, so recording it on the release
    does not change what an approval approves; the gate `rules.can_request` reads it.
    """
    build = Build.objects.filter(pk=pk, number__isnull=False).first()
    if build is None or (build.test_summary or {}).get("source") == "junit":
        return
    try:
        report = jenkins.test_report(build.job_name, build.number)
    except IntegrationError as error:
        _unread_report(build, error)
        return
    if report is None:
        build.log("tests", f"Jenkins has no test report for #{build.number}.")
        return
    summary = summarize_tests(report, build.number)
    with transaction.atomic():
        build.log("tests", describe_tests(summary), data={"test_summary": summary}, test_summary=summary)
        if build.release_id:
            Release.objects.filter(pk=build.release_id).update(test_summary=summary)


def _unread_report(build: Build, error: IntegrationError) -> None:
    queues.retry_or_give_up(
        error,
        transient=not error.permanent,
        give_up=lambda: build.log("tests", f"The test report of #{build.number} could not be read: {error}"),
    )


def summarize_tests(report: jenkins.TestReport, number: int) -> dict:
    """What the build and its release keep of a JUnit report (failed tests capped, messages cut)."""
    return {
        "total": report.total,
        "passed": report.passed,
        "failed": report.failed,
        "skipped": report.skipped,
        "failed_tests": [
            {"name": test.name[:300], "message": test.message[:MAX_TEST_MESSAGE]}
            for test in report.failed_tests[:MAX_FAILED_TESTS]
        ],
        "build": number,
        "source": "junit",
    }


def describe_tests(summary: dict) -> str:
    counts = f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped"
    names = [test["name"] for test in summary["failed_tests"][:5]]
    more = len(summary["failed_tests"]) - len(names)
    failed = f" Failed: {', '.join(names)}" + (f" and {more} more" if more > 0 else "") + "." if names else ""
    return f"Tests of #{summary['build']}: {counts}.{failed}"


def result_reason(build: Build, result: str, tests: dict | None) -> str:
    number = f"#{build.number}"
    if result == jenkins.UNSTABLE:
        failed = f" ({tests['failed']} of {tests['total']} tests failed)" if tests else ""
        return f"Jenkins marked {number} UNSTABLE{failed}: an unstable build does not become a release."
    if result == jenkins.ABORTED:
        return f"{number} was aborted in Jenkins."
    if result == jenkins.NOT_BUILT:
        return f"Jenkins did not build {number} (NOT_BUILT)."
    tail = build.log_tail()
    return f"{number} failed." + (f" Last lines of its log:\n{tail}" if tail else "")


def _sha(value: str) -> str:
    value = (value or "").strip().lower()
    return value if SHA_RE.match(value) else ""


def make_release(build: Build) -> Release | None:
    """Turn a successful build into a Release (once); say in the build's log why not otherwise."""
    service = build.service
    if service is None:
        build.log("release", f"No service builds with {build.job_name}; no release was made.")
        return None
    version = build.version
    if not VERSION_RE.match(version):
        build.log("release", f"The build's VERSION {version!r} is not a usable version; no release was made.")
        return None
    try:
        with transaction.atomic():
            release = Release.objects.create(
                service=service,
                version=version,
                git_sha=build.git_sha,
                image=f"{service.image_repository}:{version}",
                jenkins_build_url=build.url,
                test_summary=build.test_summary or {},
                source="jenkins",
                created_by=build.triggered_by,
            )
    except IntegrityError:
        build.log("release", f"{service.name} already has a release {version}; it was not replaced.")
        return None
    build.log("release", f"Made release {service.slug} {version} ({release.image}).", data={"release": release.pk})
    Build.objects.filter(pk=build.pk).update(release=release)
    fragments.touch(fragments.BUILD)  # the service page's builds link to their release
    build.release = release
    return release


def abort_build(user, build: Build) -> None:
    """Stop a running build, or take a waiting one off the Jenkins queue."""
    verdict = rules.can_abort_build(user, build)
    if not verdict:
        raise rules.Refused(verdict)
    try:
        if build.number:
            jenkins.stop_build(build.job_name, build.number)
        elif build.queue_id:
            jenkins.cancel_queue_item(build.queue_id)
    except IntegrationError as error:
        raise rules.Refused(f"Jenkins could not stop {build}: {error}") from None
    if build.queue_id is None:
        build.move(
            states.BUILD_CANCELLED, f"Cancelled by {user.username} before Jenkins queued it.", reason="cancelled"
        )
        return
    build.log("abort", f"{user.username} asked Jenkins to stop the build.")
