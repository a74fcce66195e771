"""Jenkins builds and deploy jobs: start them, follow them, turn successful builds into releases.

Following is resumable. The byte offset reached in the console log is stored on the row
(`Build.log_offset`, `Deployment.jenkins_log_offset`) by a compare-and-swap UPDATE in the
same transaction as the log events it appends, so a worker killed at any moment is
replaced by one that continues exactly where the last commit left off: no line is lost or
repeated, and two followers racing on one build cannot both store a chunk.

Jenkins failing transiently (5xx, timeouts, connection refused) is retried in the job with
backoff (settings.JENKINS_RETRY_DELAYS), each retry shown in the timeline; a permanent
error (401/403, no such job) or one that outlasts the retries ends the build or fails the
deployment with the reason.

Result mapping: SUCCESS → succeeded (and a Release); ABORTED → aborted; FAILURE,
NOT_BUILT and UNSTABLE → failed. An UNSTABLE build had failing tests, and an approval
must be of a tested artifact, so it never becomes a release.
"""

import re
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from plumbing import gitrefs, live, queues
from plumbing.integrations import IntegrationError, jenkins
from releases import rules, states
from releases.models import Build, BuildEvent, Deployment, Release, TransitionRefused
from releases.rules import Refused

ACTIVE = (Build.QUEUED, Build.RUNNING)
RESULT_STATES = {jenkins.SUCCESS: Build.SUCCEEDED, jenkins.ABORTED: Build.ABORTED}
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
TAIL_LINES = 10


# -- who may do what --------------------------------------------------------------------------


def may_build(user, service) -> rules.Verdict:
    """Deployers of any environment (or release admins) may start a build of a service with a build job."""
    from clusters.models import Environment

    verdict = rules.Verdict()
    if not service.jenkins_build_job:
        verdict.refuse(f"{service.name} has no Jenkins build job. An admin can set one on the service.")
    deploys = Environment.objects.filter(deployer_group_id__in=rules.group_ids(user)).exists()
    if not (deploys or rules.is_release_admin(user)):
        verdict.refuse("Only deployers of an environment can start builds. Ask an admin to add you.")
    return verdict


def may_abort_build(user, build: Build) -> rules.Verdict:
    verdict = may_build(user, build.service) if build.service else rules.Verdict()
    if build.service is None and not rules.is_release_admin(user):
        verdict.refuse("Only release admins can stop builds that belong to no service.")
    if build.state not in ACTIVE:
        verdict.refuse(f"Build #{build.pk} is {build.get_state_display().lower()}: there is nothing to stop.")
    return verdict


def may_abort_deploy_job(user, deployment: Deployment) -> rules.Verdict:
    verdict = rules.Verdict()
    if not rules.is_deployer(user, deployment.environment):
        verdict.refuse(f"You are not a deployer for {deployment.environment.name}.")
    if deployment.state != states.BUILDING or not deployment.jenkins_queue_id:
        verdict.refuse(f"Deployment #{deployment.pk} has no Jenkins deploy job running.")
    return verdict


# -- build rows: events and transitions -------------------------------------------------------


def group(build_pk: int) -> str:
    return f"build-{build_pk}"


def event_message(event: BuildEvent) -> dict:
    return {
        "type": "event",
        "build": event.build_id,
        "seq": event.seq,
        "kind": event.kind,
        "message": event.message,
        "data": event.data,
        "at": event.created_at.isoformat(),
    }


def append(build: Build, items: list[tuple[str, str, dict]], *, where: dict | None = None, **fields) -> bool:
    """Append events (kind, message, data) and update `fields`, only while `where` still holds.

    One UPDATE claims the seq numbers and checks `where` (a compare-and-swap), the events are
    inserted in the same transaction, and the browser hears of them after commit.
    """
    with transaction.atomic():
        moved = Build.objects.filter(pk=build.pk, **(where or {})).update(last_seq=F("last_seq") + len(items), **fields)
        if moved != 1:
            return False
        build.refresh_from_db()
        first = build.last_seq - len(items) + 1
        events = BuildEvent.objects.bulk_create(
            BuildEvent(build_id=build.pk, seq=first + i, kind=kind, message=message, data=data)
            for i, (kind, message, data) in enumerate(items)
        )
        if events:
            live.send(group(build.pk), {"type": "build.events", "events": [event_message(e) for e in events]})
        if build.service_id and any(kind != "log" for kind, _, _ in items):
            # The service page lists its builds: tell it this one moved (not every log line).
            summary = {"kind": "build", "build": build.pk, "service": build.service.slug, "state": build.state}
            live.send(live.ACTIVITY_GROUP, {"type": "activity.update", "update": summary})
    return True


def note(build: Build, kind: str, message: str, **data) -> None:
    append(build, [(kind, message, data)])


def move(build: Build, new: str, message: str, *, data: dict | None = None, **fields) -> bool:
    """Compare-and-swap the build from an active state to `new`, with a "state" event."""
    if new in Build.FINAL:
        fields.setdefault("finished_at", timezone.now())
    payload = {"state": new, "reason": fields.get("reason", ""), **(data or {})}
    return append(build, [("state", message, payload)], where={"state__in": ACTIVE}, state=new, **fields)


def split_lines(text: str) -> list[str]:
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _retrying(what: str, call, on_retry):
    """Call Jenkins; on a transient error wait and try again, telling `on_retry` each time."""
    delays = settings.JENKINS_RETRY_DELAYS
    for attempt, delay in enumerate((*delays, None)):
        try:
            return call()
        except IntegrationError as error:
            if error.permanent or delay is None:
                raise
            on_retry(f"{what} failed, retrying in {delay:g}s (attempt {attempt + 1} of {len(delays)}): {error}")
            time.sleep(delay)


def _follow(step, reschedule) -> None:
    """Run `step` until it says it is done; after a slice of time hand over to a fresh job."""
    deadline = time.monotonic() + settings.JENKINS_FOLLOW_SLICE_SECONDS
    while not step():
        if time.monotonic() >= deadline:
            reschedule()
            return
        time.sleep(settings.JENKINS_POLL_SECONDS)


# -- starting a build -------------------------------------------------------------------------


def build_parameters(service, build_pk: int, ref: str = "", version: str = "") -> dict[str, str]:
    """What the build job gets: the service, the git ref to build and a proposed version."""
    proposed = version or f"{timezone.now():%Y.%m.%d}-{build_pk}"
    return {"SERVICE": service.slug, "GIT_REF": ref or "main", "VERSION": proposed}


def request_build(user, service, *, ref: str = "", version: str = "", commit: str = "") -> Build:
    """A person asks for a build of `service`: check they may, then start it."""
    verdict = may_build(user, service)
    if not verdict:
        raise Refused(verdict)
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
        raise Refused(f"{ref[:100]!r} is not a valid git branch, tag or commit name.")
    commit = commit or (ref if FULL_SHA_RE.match(ref or "") else "")
    if version and Release.objects.filter(service=service, version=version).exists():
        raise Refused(f"{service.name} already has a release {version}: pick another version.")
    who = user.username if user else trigger.title()
    with transaction.atomic():
        build = Build.objects.create(
            service=service, job_name=service.jenkins_build_job, triggered_by=user, trigger=trigger, git_sha=commit
        )
        build.parameters = build_parameters(service, build.pk, commit or ref, version)
        build.version = build.parameters["VERSION"]
        build.save(update_fields=["parameters", "version"])
        asked = f"{ref} at {commit[:7]}" if commit and ref and ref != commit else (commit[:7] or ref or "main")
        note(build, "requested", f"{who} asked Jenkins to build {service.name} {asked} ({build.version}).")
        queues.enqueue(trigger_build, build.pk)
    return build


def trigger_build(pk: int) -> None:
    """Job: hand the build to Jenkins, then follow it."""
    build = Build.objects.select_related("service").filter(pk=pk, state=Build.QUEUED, queue_id__isnull=True).first()
    if build is None:
        return
    try:
        queue_id = _retrying(
            f"Starting {build.job_name}",
            lambda: jenkins.start_job(build.job_name, build.parameters),
            lambda message: note(build, "retry", message),
        )
    except IntegrationError as error:
        move(build, Build.FAILED, f"Jenkins did not start the build: {error}", reason=str(error))
        return
    started = append(
        build,
        [("queued", f"Jenkins queued {build.job_name} as queue item {queue_id}.", {"queue_id": queue_id})],
        where={"state": Build.QUEUED, "queue_id__isnull": True},
        queue_id=queue_id,
    )
    if started:
        follow_build(pk)
    else:
        _cancel_quietly(queue_id)  # aborted while Jenkins was being asked


def _cancel_quietly(queue_id: int) -> None:
    try:
        jenkins.cancel_queue_item(queue_id)
    except IntegrationError:
        pass  # the follower of a live item would see it run; a lost item is harmless


# -- following a build ------------------------------------------------------------------------


def follow_build(pk: int) -> None:
    """Job: follow the queue item to a build, tail its log, settle its result."""
    _follow(lambda: follow_build_step(pk), lambda: queues.enqueue(follow_build, pk))


def follow_build_step(pk: int) -> bool:
    """One idempotent step of following; True when there is nothing left to follow."""
    build = Build.objects.select_related("service").filter(pk=pk).first()
    if build is None or build.queue_id is None:
        return True
    try:
        if build.number is None:
            return build.state not in ACTIVE or _await_executor(build)
        return _tail_build(build)
    except IntegrationError as error:
        what = f"#{build.number}" if build.number else f"queue item {build.queue_id}"
        move(build, Build.FAILED, f"Lost track of {build.job_name} {what}: {error}", reason=str(error))
        return True


def _await_executor(build: Build) -> bool:
    item = _retrying(
        "Reading the Jenkins queue", lambda: jenkins.queue_item(build.queue_id), lambda m: note(build, "retry", m)
    )
    if item.state == jenkins.CANCELLED:
        reason = "The Jenkins queue item was cancelled before the build started."
        move(build, Build.CANCELLED, reason, reason=reason)
        return True
    if item.state == jenkins.WAITING:
        return False
    try:
        append(
            build,
            [
                (
                    "started",
                    f"Jenkins started {build.job_name} #{item.number}.",
                    {"number": item.number, "url": item.url},
                )
            ],
            where={"state": Build.QUEUED, "number__isnull": True},
            state=Build.RUNNING,
            number=item.number,
            url=item.url,
            started_at=timezone.now(),
        )
    except IntegrityError:
        # The webhook recorded this build number on a row of its own first; that row wins.
        move(build, Build.CANCELLED, f"Recorded by Jenkins' notification as #{item.number}.", reason="duplicate")
        return True
    return False


def _tail_build(build: Build) -> bool:
    def on_retry(message):
        note(build, "retry", message)

    chunk = _retrying(
        "Reading the log",
        lambda: jenkins.progressive_log(build.job_name, build.number, build.log_offset),
        on_retry,
    )
    lines = split_lines(chunk.text)
    append(
        build,
        [("log", line, {}) for line in lines],
        where={"log_offset": chunk.start},
        log_offset=chunk.next_offset,
    )
    if chunk.more:
        return False
    info = _retrying("Reading the build", lambda: jenkins.build_info(build.job_name, build.number), on_retry)
    if info.building:
        return False  # the log is complete but Jenkins has not closed the build yet
    finish_build(build, info.result, parameters=info.parameters, tests=info.tests, url=info.url)
    return True


def finish_build(build: Build, result: str | None, *, parameters=None, tests=None, url: str = "") -> bool:
    """Settle a build's result once (whoever comes first: the follower or the webhook)."""
    result = (result or jenkins.NOT_BUILT).upper()
    state = RESULT_STATES.get(result, Build.FAILED)
    parameters = {**build.parameters, **(parameters or {})}
    reason = "" if state == Build.SUCCEEDED else result_reason(build, result, tests)
    with transaction.atomic():
        moved = move(
            build,
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
        if moved and state == Build.SUCCEEDED:
            make_release(build)
    return moved


def result_reason(build: Build, result: str, tests: dict | None) -> str:
    number = f"#{build.number}"
    if result == jenkins.UNSTABLE:
        failed = f" ({tests['failed']} of {tests['total']} tests failed)" if tests else ""
        return f"Jenkins marked {number} UNSTABLE{failed}: an unstable build does not become a release."
    if result == jenkins.ABORTED:
        return f"{number} was aborted in Jenkins."
    if result == jenkins.NOT_BUILT:
        return f"Jenkins did not build {number} (NOT_BUILT)."
    tail = _log_tail(BuildEvent.objects.filter(build_id=build.pk, kind="log"))
    return f"{number} failed." + (f" Last lines of its log:\n{tail}" if tail else "")


def _sha(value: str) -> str:
    value = (value or "").strip().lower()
    return value if SHA_RE.match(value) else ""


def _log_tail(events) -> str:
    lines = list(events.order_by("-seq").values_list("message", flat=True)[:TAIL_LINES])
    return "\n".join(reversed(lines))


def make_release(build: Build) -> Release | None:
    """Turn a successful build into a Release (once); say in the build's log why not otherwise."""
    service = build.service
    if service is None:
        note(build, "release", f"No service builds with {build.job_name}; no release was made.")
        return None
    version = build.version
    if not VERSION_RE.match(version):
        note(build, "release", f"The build's VERSION {version!r} is not a usable version; no release was made.")
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
        note(build, "release", f"{service.name} already has a release {version}; it was not replaced.")
        return None
    append(build, [("release", f"Made release {service.slug} {version} ({release.image}).", {"release": release.pk})])
    Build.objects.filter(pk=build.pk).update(release=release)
    build.release = release
    return release


def abort_build(user, build: Build) -> None:
    """Stop a running build, or take a waiting one off the Jenkins queue."""
    verdict = may_abort_build(user, build)
    if not verdict:
        raise Refused(verdict)
    try:
        if build.number:
            jenkins.stop_build(build.job_name, build.number)
        elif build.queue_id:
            jenkins.cancel_queue_item(build.queue_id)
    except IntegrationError as error:
        raise Refused(f"Jenkins could not stop {build}: {error}")
    if build.queue_id is None:
        move(build, Build.CANCELLED, f"Cancelled by {user.username} before Jenkins queued it.", reason="cancelled")
        return
    note(build, "abort", f"{user.username} asked Jenkins to stop the build.")


# -- deploy jobs ------------------------------------------------------------------------------


def deploy_parameters(deployment: Deployment) -> dict[str, str]:
    service, env, release = deployment.service, deployment.environment, deployment.release
    return {
        "SERVICE": service.slug,
        "VERSION": release.version,
        "IMAGE": release.image,
        "ENVIRONMENT": env.slug,
        "NAMESPACE": env.namespace,
        "DEPLOYMENT_ID": str(deployment.pk),
        "PORTAL_URL": settings.PORTAL_URL,
        "DEPLOYMENT": service.k8s_deployment,
        "CONTAINER": service.k8s_container,
    }


def _fail(deployment: Deployment, message: str, reason: str) -> None:
    try:
        deployment.transition(states.FAILED, kind="state", message=message, reason=reason)
    except TransitionRefused:
        pass


def start_deploy_job(deployment: Deployment) -> None:
    """Start the environment's deploy job for an approved deployment (→ building), then follow it."""
    job = deployment.environment.jenkins_deploy_job
    if not job:
        reason = f"{deployment.environment.name} deploys through Jenkins but has no deploy job set."
        _fail(deployment, reason, reason)
        return
    try:
        queue_id = _retrying(
            f"Starting the Jenkins job {job}",
            lambda: jenkins.start_job(job, deploy_parameters(deployment)),
            lambda message: deployment.log("retry", message),
        )
    except IntegrationError as error:
        _fail(deployment, f"Starting the Jenkins job {job} failed: {error}", str(error))
        return
    try:
        deployment.transition(
            states.BUILDING,
            kind="state",
            message=f"Started Jenkins job {job} (queue item {queue_id}).",
            data={"queue_id": queue_id},
            jenkins_queue_id=queue_id,
            jenkins_log_offset=0,
        )
    except TransitionRefused:
        _cancel_quietly(queue_id)  # cancelled while Jenkins was being asked
        return
    queues.enqueue(follow_deploy_job, deployment.pk)


def follow_deploy_job(pk: int) -> None:
    """Job: follow a deployment's Jenkins job, tailing its log into the timeline."""
    _follow(lambda: follow_deploy_step(pk), lambda: queues.enqueue(follow_deploy_job, pk))


def follow_deploy_step(pk: int) -> bool:
    deployment = Deployment.objects.select_related("service", "environment", "release").filter(pk=pk).first()
    if deployment is None or deployment.jenkins_queue_id is None:
        return True
    try:
        if deployment.jenkins_build_number is None:
            return _await_deploy_executor(deployment)
        if deployment.state == states.CANCELLED:
            _stop_quietly(deployment)
        return _tail_deploy_job(deployment)
    except IntegrationError as error:
        job = deployment.environment.jenkins_deploy_job
        _fail(deployment, f"Lost track of the Jenkins job {job}: {error}", str(error))
        return True


def _await_deploy_executor(deployment: Deployment) -> bool:
    job = deployment.environment.jenkins_deploy_job
    if deployment.state != states.BUILDING:
        _cancel_quietly(deployment.jenkins_queue_id)
        return True
    item = _retrying(
        "Reading the Jenkins queue",
        lambda: jenkins.queue_item(deployment.jenkins_queue_id),
        lambda message: deployment.log("retry", message),
    )
    if item.state == jenkins.CANCELLED:
        reason = f"The Jenkins queue item for {job} was cancelled before the job started."
        _fail(deployment, reason, reason)
        return True
    if item.state == jenkins.STARTED:
        with transaction.atomic():
            claimed = Deployment.objects.filter(pk=deployment.pk, jenkins_build_number__isnull=True).update(
                jenkins_build_number=item.number, jenkins_build_url=item.url
            )
            if claimed:
                deployment.log("jenkins", f"Jenkins started {job} #{item.number}.", data={"url": item.url})
    return False


def _tail_deploy_job(deployment: Deployment) -> bool:
    job, number = deployment.environment.jenkins_deploy_job, deployment.jenkins_build_number

    def on_retry(message):
        deployment.log("retry", message)

    chunk = _retrying(
        "Reading the deploy log",
        lambda: jenkins.progressive_log(job, number, deployment.jenkins_log_offset),
        on_retry,
    )
    with transaction.atomic():
        stored = Deployment.objects.filter(pk=deployment.pk, jenkins_log_offset=chunk.start).update(
            jenkins_log_offset=chunk.next_offset
        )
        if stored:
            for line in split_lines(chunk.text):
                deployment.log("log", line)
    if chunk.more:
        return False
    info = _retrying("Reading the deploy job", lambda: jenkins.build_info(job, number), on_retry)
    if info.building:
        return False
    _deploy_job_finished(deployment, info)
    return True


def _deploy_job_finished(deployment: Deployment, info: jenkins.BuildInfo) -> None:
    from releases import jobs

    job = deployment.environment.jenkins_deploy_job
    deployment.refresh_from_db()
    if info.result == jenkins.SUCCESS:
        deployment.log(
            "jenkins",
            f"Jenkins job {job} #{info.number} succeeded; waiting for the cluster to run {deployment.release.image}.",
            data={"result": info.result},
        )
        queues.enqueue(jobs.observe, deployment.pk)
        return
    tail = _log_tail(deployment.events.filter(kind="log"))
    reason = f"Jenkins job {job} #{info.number} ended {info.result or 'without a result'}."
    if tail:
        reason += f" Last lines of its log:\n{tail}"
    if states.can_move(deployment.state, states.FAILED):
        _fail(deployment, reason.split("\n")[0], reason)
    else:
        deployment.log("jenkins", reason.split("\n")[0], data={"result": info.result})


def _stop_quietly(deployment: Deployment) -> None:
    try:
        jenkins.stop_build(deployment.environment.jenkins_deploy_job, deployment.jenkins_build_number)
    except IntegrationError:
        pass


def abort_deploy_job(user, deployment: Deployment) -> None:
    """Stop the deployment's Jenkins job; the follower then fails the deployment with its log tail."""
    verdict = may_abort_deploy_job(user, deployment)
    if not verdict:
        raise Refused(verdict)
    job = deployment.environment.jenkins_deploy_job
    try:
        if deployment.jenkins_build_number:
            jenkins.stop_build(job, deployment.jenkins_build_number)
        else:
            jenkins.cancel_queue_item(deployment.jenkins_queue_id)
    except IntegrationError as error:
        raise Refused(f"Jenkins could not stop {job}: {error}")
    deployment.log("jenkins", f"{user.username} asked Jenkins to stop {job}.", actor=user)


# -- reconciling ------------------------------------------------------------------------------


def reconcile(now) -> dict:
    """Re-ring missed doorbells: follow builds and deploy jobs nobody followed lately, and fail
    Jenkins deployments stuck in building past their deadline."""
    stale = now - timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS)
    counts = {"builds": 0, "deploy_jobs": 0}
    quiet = Q(last_event__lt=stale) | Q(last_event__isnull=True, created_at__lt=stale)
    builds = Build.objects.filter(state__in=ACTIVE).annotate(last_event=Max("events__created_at")).filter(quiet)
    for pk, queue_id in builds.values_list("pk", "queue_id"):
        queues.enqueue(follow_build if queue_id else trigger_build, pk)
        counts["builds"] += 1
    building = Deployment.objects.filter(state=states.BUILDING, jenkins_queue_id__isnull=False)
    for pk in building.annotate(last_event=Max("events__created_at")).filter(quiet).values_list("pk", flat=True):
        queues.enqueue(follow_deploy_job, pk)
        counts["deploy_jobs"] += 1
    _fail_overdue_deploy_jobs(now)
    return counts


def _fail_overdue_deploy_jobs(now) -> None:
    from releases import jobs

    for deployment in Deployment.objects.filter(state=states.BUILDING).select_related("environment", "release"):
        limit = deployment.environment.progress_deadline_seconds * 2 + 60
        since = deployment.started_at or deployment.created_at
        if (now - since).total_seconds() <= limit:
            continue
        jobs.observe(deployment.pk)  # one last look: the cluster may run it already
        deployment.refresh_from_db()
        if deployment.state != states.BUILDING:
            continue
        succeeded = deployment.events.filter(kind="jenkins", data__result=jenkins.SUCCESS).exists()
        if succeeded:
            reason = f"The Jenkins job succeeded but the cluster never ran {deployment.release.image} within {limit}s."
        else:
            reason = f"The Jenkins deploy job did not finish within {limit}s."
        _fail(deployment, reason, reason)
