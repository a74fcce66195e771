"""Background jobs (RQ). Each takes a primary key, re-reads, and returns quietly when the
deployment is gone or already past that step, so running one twice is harmless.

Transient failures of outside systems are retried with backoff; permanent ones, or
transient ones that outlast the retries, fail the deployment with the reason in its timeline.
"""

import logging

from django.conf import settings
from django.utils import timezone
from rq import Retry, get_current_job

from clusters import watcher
from plumbing import queues
from plumbing.integrations import IntegrationError, kube
from releases import states
from releases.models import Deployment, TransitionRefused

log = logging.getLogger(__name__)
RETRY = Retry(max=4, interval=[2, 5, 15, 30])


def _load(pk: int, *allowed: str) -> Deployment | None:
    deployment = (
        Deployment.objects.select_related("service", "environment__cluster", "release", "previous_release")
        .filter(pk=pk)
        .first()
    )
    if deployment is None or deployment.state not in allowed:
        return None
    return deployment


def _retries_left() -> bool:
    job = get_current_job()
    return bool(job and job.retries_left)


def _give_up_or_retry(deployment: Deployment, error: IntegrationError, what: str) -> None:
    if not error.permanent and _retries_left():
        deployment.log("retry", f"{what} failed, retrying: {error}")
        raise error
    try:
        deployment.transition(states.FAILED, kind="state", message=f"{what} failed: {error}", reason=str(error))
    except TransitionRefused:
        pass


def run_deployment(pk: int) -> None:
    """Start an approved deployment: a Jenkins deploy job, or a patch of the Deployment."""
    deployment = _load(pk, states.APPROVED)
    if deployment is None:
        return
    if deployment.environment.deploy_via == deployment.environment.JENKINS:
        from releases import builds

        builds.start_deploy_job(deployment)
        return
    apply_image(deployment)


def apply_image(deployment: Deployment) -> None:
    env, service = deployment.environment, deployment.service
    try:
        before = kube.read_deployment(env.cluster, env.namespace, service.k8s_deployment)
        patched = kube.set_image(
            env.cluster,
            env.namespace,
            service.k8s_deployment,
            service.k8s_container,
            deployment.release.image,
            change_cause=f"pampam: {service.slug} {deployment.release.version} (deployment #{deployment.pk})",
            deployment_id=deployment.pk,
        )
    except IntegrationError as error:
        _give_up_or_retry(deployment, error, "Updating the Deployment")
        return
    revision = (before["metadata"].get("annotations") or {}).get(kube.REVISION, "")
    try:
        deployment.transition(
            states.ROLLING_OUT,
            kind="state",
            message=f"Patched {env.namespace}/{service.k8s_deployment} to {deployment.release.image}.",
            data={"revision_before": revision},
            revision_before=revision,
            generation=patched["metadata"].get("generation"),
        )
    except TransitionRefused:
        return
    observe(deployment.pk)


def observe(pk: int) -> None:
    """Read the rollout straight from the cluster and advance the deployment (reconciler path).

    Writes the Workload row exactly as the watcher does, so its signal advances the deployment
    through the same code (releases.tracking) whichever of the two saw the change first.
    """
    deployment = _load(pk, *states.IN_CLUSTER, states.BUILDING)
    if deployment is None:
        return
    env, service = deployment.environment, deployment.service
    try:
        snapshot = kube.read_snapshot(env.cluster, env.namespace, service.k8s_deployment)
    except IntegrationError as error:
        if error.permanent:
            _give_up_or_retry(deployment, error, "Reading the rollout")
        return
    watcher.record(env, service.k8s_deployment, snapshot)


def stop_rollout(pk: int) -> None:
    """A rollout was cancelled: pause it or undo it, as the environment says."""
    deployment = Deployment.objects.select_related("service", "environment__cluster").filter(pk=pk).first()
    if deployment is None or deployment.state != states.CANCELLED or not deployment.started_at:
        return
    env, service = deployment.environment, deployment.service
    try:
        if env.cancel_action == env.CANCEL_PAUSE:
            kube.set_paused(env.cluster, env.namespace, service.k8s_deployment, True)
            deployment.log("cluster", f"Paused {env.namespace}/{service.k8s_deployment}.")
        else:
            restored = kube.undo(env.cluster, env.namespace, service.k8s_deployment, deployment.revision_before or None)
            deployment.log(
                "cluster", f"Restored revision {restored.revision} of {env.namespace}/{service.k8s_deployment}."
            )
    except IntegrationError as error:
        deployment.log("cluster", f"Could not stop the rollout: {error}")
        if not error.permanent and _retries_left():
            raise


def auto_rollback(pk: int) -> None:
    """A failed rollout in an environment with auto-rollback: restore the revision it replaced."""
    deployment = _load(pk, states.FAILED)
    if deployment is None or not needs_auto_rollback(deployment):
        return
    env, service = deployment.environment, deployment.service
    try:
        # An explicit revision makes this idempotent: running twice restores the same template.
        restored = kube.undo(env.cluster, env.namespace, service.k8s_deployment, deployment.revision_before or None)
    except IntegrationError as error:
        deployment.log("cluster", f"Automatic rollback failed: {error}")
        if not error.permanent and _retries_left():
            raise
        return
    image = restored.images.get(service.k8s_container) or next(iter(restored.images.values()), "")
    try:
        deployment.transition(
            states.ROLLING_BACK,
            kind="state",
            message=f"Rolling back automatically to revision {restored.revision} ({image}).",
            progress={**deployment.progress, "rollback_image": image},
            generation=restored.generation,
        )
    except TransitionRefused:
        return
    observe(deployment.pk)


def needs_auto_rollback(deployment: Deployment) -> bool:
    """Failed after touching the cluster, in an auto-rollback environment, and not a failed rollback."""
    return bool(
        deployment.environment.auto_rollback
        and deployment.generation is not None
        and deployment.revision_before
        and "rollback_image" not in (deployment.progress or {})
    )


def reconcile() -> dict:
    """Re-ring missed doorbells: restart approved deployments whose job was lost, re-read
    rollouts nobody observed lately, and fail those stuck past their deadline."""
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS)
    counts = {"restarted": 0, "observed": 0}
    for pk in Deployment.objects.filter(state=states.APPROVED, created_at__lt=stale).values_list("pk", flat=True):
        queues.enqueue(run_deployment, pk, retry=RETRY)
        counts["restarted"] += 1
    in_cluster = Deployment.objects.filter(state__in=states.IN_CLUSTER).exclude(observed_at__gt=stale)
    for pk in in_cluster.values_list("pk", flat=True):
        observe(pk)
        counts["observed"] += 1
    counts["rolled_back"] = _ring_auto_rollbacks(now)
    _fail_overdue(now)
    from releases import builds

    counts.update(builds.reconcile(now))  # Jenkins builds and deploy jobs nobody followed lately
    return counts


def _ring_auto_rollbacks(now) -> int:
    """Failed rollouts whose automatic rollback job was lost (a worker died, Redis was down)."""
    recent = Deployment.objects.filter(
        state=states.FAILED,
        environment__auto_rollback=True,
        generation__isnull=False,
        finished_at__gt=now - timezone.timedelta(hours=1),
    ).select_related("environment")
    pks = [d.pk for d in recent if needs_auto_rollback(d)]
    for pk in pks:
        queues.enqueue(auto_rollback, pk, retry=RETRY)
    return len(pks)


def _fail_overdue(now) -> None:
    """No deployment stays active forever: past its deadline plus a margin, it fails."""
    for deployment in Deployment.objects.filter(state__in=states.IN_CLUSTER).select_related("environment"):
        limit = deployment.environment.progress_deadline_seconds * 2 + 60
        since = deployment.observed_at or deployment.started_at or deployment.created_at
        if (now - since).total_seconds() > limit:
            try:
                deployment.transition(
                    states.FAILED,
                    kind="state",
                    message=f"No progress seen for {limit} seconds; giving up.",
                    reason="The rollout was not observed to finish in time.",
                )
            except TransitionRefused:
                pass
