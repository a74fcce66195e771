"""Jenkins deploy jobs of deployments: start the environment's deploy job, follow it, stop it.

Exactly once: before asking Jenkins, the job writes down that it is about to (with the
cluster's state before the change); a re-run after a crash or a retry first looks in Jenkins
for a queue item or build carrying this deployment's DEPLOYMENT_ID parameter and adopts it.

Following is one idempotent step per job run: it reads the queue item or tails the console
log from the byte offset stored on the row (stored with the log lines it read, in one
compare-and-swap), then enqueues itself again after JENKINS_POLL_SECONDS. Nothing sleeps in a
worker. The cluster's side (the image reaching the cluster, the rollout) is judged by
releases.tracking, as for direct deployments.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clusters import rollout
from plumbing import queues
from plumbing.integrations import IntegrationError, jenkins, kube
from releases import rules, states, tracking
from releases.builds import follow_log
from releases.models import Deployment, TransitionRefused

ID_PARAMETER = "DEPLOYMENT_ID"


def parameters(deployment: Deployment) -> dict[str, str]:
    service, env, release = deployment.service, deployment.environment, deployment.release
    return {
        "SERVICE": service.slug,
        "VERSION": release.version,
        "IMAGE": release.image,
        "ENVIRONMENT": env.slug,
        "NAMESPACE": env.namespace,
        ID_PARAMETER: str(deployment.pk),
        "PORTAL_URL": settings.PORTAL_URL,
        "DEPLOYMENT": service.k8s_deployment,
        "CONTAINER": service.k8s_container,
    }


def start(deployment: Deployment) -> None:
    """Start the environment's deploy job for an approved deployment (→ building), then follow it."""
    job = deployment.environment.jenkins_deploy_job
    if not job:
        tracking.fail(deployment, f"{deployment.environment.name} deploys through Jenkins but has no deploy job set.")
        return
    try:
        item = _earlier_run(deployment, job) if deployment.jenkins_asked_at else None
        if item is None:
            if not _record_before(deployment, job):
                return  # cancelled meanwhile: Jenkins was never asked
            item = jenkins.QueueItem(jenkins.start_job(job, parameters(deployment)), jenkins.WAITING)
    except IntegrationError as error:
        tracking.retry_or_fail(deployment, error, f"Starting the Jenkins job {job}")
        return
    _building(deployment, job, item)


def _earlier_run(deployment: Deployment, job: str) -> jenkins.QueueItem | None:
    item = jenkins.find_run(job, ID_PARAMETER, str(deployment.pk))
    if item is not None:
        deployment.log("jenkins", f"Found the {job} run asked for earlier; following it instead of starting another.")
    return item


def _record_before(deployment: Deployment, job: str) -> bool:
    """Write down that Jenkins is about to be asked, with what the cluster runs before."""
    env, service = deployment.environment, deployment.service
    before = {}
    try:
        current = kube.read_deployment(env.cluster, env.namespace, service.k8s_deployment)
        before = {
            "image_before": rollout.container_image(current, service.k8s_container),
            "revision_before": (current["metadata"].get("annotations") or {}).get(kube.REVISION, ""),
            "baseline": rollout.progressing_condition((current.get("status") or {}).get("conditions")),
        }
    except IntegrationError as error:
        if not error.permanent:
            raise  # retried: what runs before the change is worth knowing (a cancel restores it)
        # No such Deployment yet: the deploy job may create it; nothing to compare with then.
    asked = Deployment.objects.filter(pk=deployment.pk, state=states.APPROVED).update(
        jenkins_asked_at=timezone.now(), **before
    )
    if asked:
        deployment.log("jenkins", f"Asking Jenkins to run {job}.", data={"parameters": parameters(deployment)})
    return bool(asked)


def _building(deployment: Deployment, job: str, item: jenkins.QueueItem) -> None:
    started = {"jenkins_build_number": item.number, "jenkins_build_url": item.url} if item.number else {}
    try:
        deployment.transition(
            states.BUILDING,
            message=f"Started Jenkins job {job} (queue item {item.id}).",
            data={"queue_id": item.id},
            jenkins_queue_id=item.id,
            jenkins_log_offset=0,
            **started,
        )
    except TransitionRefused:
        jenkins.cancel_quietly(item.id)  # cancelled while Jenkins was being asked
        return
    queues.enqueue(follow, deployment.pk)


def follow(pk: int) -> None:
    """Job: one step of following a deployment's Jenkins job; again later until it ends."""
    if not step(pk):
        queues.enqueue(follow, pk, delay=settings.JENKINS_POLL_SECONDS)


def step(pk: int) -> bool:
    """One idempotent step; True when there is nothing left to follow."""
    deployment = Deployment.objects.select_related("service", "environment", "release").filter(pk=pk).first()
    if deployment is None or deployment.jenkins_queue_id is None:
        return True
    try:
        if deployment.jenkins_build_number is None:
            return _await_executor(deployment)
        if deployment.state == states.CANCELLED:
            jenkins.stop_quietly(deployment.environment.jenkins_deploy_job, deployment.jenkins_build_number)
        return _tail(deployment)
    except IntegrationError as error:
        job = deployment.environment.jenkins_deploy_job
        tracking.retry_or_fail(deployment, error, f"Following the Jenkins job {job}")
        return True


def _await_executor(deployment: Deployment) -> bool:
    job = deployment.environment.jenkins_deploy_job
    if deployment.state == states.CANCELLED:
        jenkins.cancel_quietly(deployment.jenkins_queue_id)
        return True
    # Otherwise follow on, whatever the state: the cluster may have taken the image (rolling out,
    # even succeeded) before this follower saw the build start, and the job's log still belongs
    # in the timeline.
    item = jenkins.queue_item(deployment.jenkins_queue_id)
    if item.state == jenkins.CANCELLED:
        if deployment.state == states.BUILDING:
            tracking.fail(deployment, f"The Jenkins queue item for {job} was cancelled before the job started.")
        return True
    if item.state == jenkins.STARTED:
        with transaction.atomic():
            claimed = Deployment.objects.filter(pk=deployment.pk, jenkins_build_number__isnull=True).update(
                jenkins_build_number=item.number, jenkins_build_url=item.url
            )
            if claimed:
                deployment.log("jenkins", f"Jenkins started {job} #{item.number}.", data={"url": item.url})
    return False


def _tail(deployment: Deployment) -> bool:
    job, number = deployment.environment.jenkins_deploy_job, deployment.jenkins_build_number
    info = follow_log(deployment, job, number, "jenkins_log_offset")
    if info is None:
        return False
    _finished(deployment, info)
    return True


def _finished(deployment: Deployment, info: jenkins.BuildInfo) -> None:
    job = deployment.environment.jenkins_deploy_job
    deployment.refresh_from_db()
    if info.result == jenkins.SUCCESS:
        deployment.log(
            "jenkins",
            f"Jenkins job {job} #{info.number} succeeded; waiting for the cluster to run {deployment.release.image}.",
            data={"result": info.result},
        )
        tracking.observe(deployment.pk)
        return
    tail = deployment.log_tail()
    reason = f"Jenkins job {job} #{info.number} ended {info.result or 'without a result'}."
    if tail:
        reason += f" Last lines of its log:\n{tail}"
    if states.can_move(deployment.state, states.FAILED):
        tracking.fail(deployment, reason)
    else:
        deployment.log("jenkins", reason.split("\n")[0], data={"result": info.result})


def ensure_stopped(deployment: Deployment) -> None:
    """Before a cancelled deployment's rollout is stopped, its Jenkins job must be over: a job
    still queued or running could patch the cluster after the stop. Asks Jenkins to end it and
    raises a transient error (the stop is retried) until Jenkins says it ended."""
    if not deployment.jenkins_queue_id and not deployment.jenkins_asked_at:
        return
    job = deployment.environment.jenkins_deploy_job
    number = deployment.jenkins_build_number
    if number is None:
        item = (
            jenkins.queue_item(deployment.jenkins_queue_id)
            if deployment.jenkins_queue_id
            else jenkins.find_run(job, ID_PARAMETER, str(deployment.pk))
        )
        if item is None or item.state == jenkins.CANCELLED:
            return
        if item.state == jenkins.WAITING:
            jenkins.cancel_quietly(item.id)
            raise IntegrationError(f"The Jenkins job {job} was still queued; it was asked to stop.")
        number = item.number
    if jenkins.build_info(job, number).building:
        jenkins.stop_quietly(job, number)
        raise IntegrationError(f"The Jenkins job {job} #{number} was still running; it was asked to stop.")


def abort(user, deployment: Deployment) -> None:
    """Stop the deployment's Jenkins job; the follower then fails the deployment with its log tail."""
    verdict = rules.can_abort_deploy_job(user, deployment)
    if not verdict:
        raise rules.Refused(verdict)
    job = deployment.environment.jenkins_deploy_job
    try:
        if deployment.jenkins_build_number:
            jenkins.stop_build(job, deployment.jenkins_build_number)
        else:
            jenkins.cancel_queue_item(deployment.jenkins_queue_id)
    except IntegrationError as error:
        raise rules.Refused(f"Jenkins could not stop {job}: {error}") from None
    deployment.log("jenkins", f"{user.username} asked Jenkins to stop {job}.", actor=user)


def overdue(now) -> None:
    """Fail Jenkins deployments stuck in building past their deadline (after one last look)."""
    for deployment in Deployment.objects.filter(state=states.BUILDING).select_related("environment", "release"):
        limit = deployment.environment.progress_deadline_seconds * 2 + 60
        since = deployment.started_at or deployment.created_at
        if (now - since).total_seconds() <= limit:
            continue
        tracking.observe(deployment.pk)  # one last look: the cluster may run it already
        deployment.refresh_from_db()
        if deployment.state != states.BUILDING:
            continue
        succeeded = deployment.events.filter(kind="jenkins", data__result=jenkins.SUCCESS).exists()
        if succeeded:
            reason = f"The Jenkins job succeeded but the cluster never ran {deployment.release.image} within {limit}s."
        else:
            reason = f"The Jenkins deploy job did not finish within {limit}s."
        tracking.fail(deployment, reason)
