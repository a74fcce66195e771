"""Turning what the cluster shows into deployment events and state changes.

Called by the watcher (through the `workload_observed` signal) and by the reconciler with
the same Progress, so both paths advance deployments identically. Level-triggered: each
call looks at the whole picture, so a missed or repeated observation does no harm.

Outcomes are judged only from observations made after the deployment's own change: the
Deployment's observedGeneration must have reached the generation our change produced, and a
Progressing condition left over from before the change (`Deployment.baseline`) says nothing
about this rollout (see clusters.rollout.judged_since).
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clusters import rollout, watcher
from clusters.models import Workload
from plumbing import queues
from plumbing.integrations import IntegrationError, kube
from releases import flows, states, verdicts
from releases.models import Deployment, TransitionRefused

# Fields of Progress whose change is worth a timeline event.
_NOTEWORTHY = (
    "status",
    "desired",
    "updated",
    "ready",
    "available",
    "total",
    "new_ready",
    "new_available",
    "reason",
    "revision",
    "pods",
)


def on_workload_observed(workload, progress: rollout.Progress) -> None:
    if not workload.expected_image:
        _remember_expected_image(workload)
    deployments = Deployment.objects.filter(
        environment_id=workload.environment_id,
        service__k8s_deployment=workload.name,
        state__in=states.OBSERVED,
    ).select_related("service", "environment", "release")
    for deployment in deployments:
        advance(deployment, progress)


def _remember_expected_image(workload) -> None:
    """A workload first seen after its last success (a new watcher, seeded history): take the
    image of that success as what should run, so drift shows from the first observation."""
    last = (
        Deployment.objects.filter(
            environment_id=workload.environment_id, service__k8s_deployment=workload.name, state=states.SUCCEEDED
        )
        .select_related("release")
        .order_by("-id")
        .first()
    )
    if last is not None:
        workload.expected_image = last.release.image
        type(workload).objects.filter(pk=workload.pk, expected_image="").update(expected_image=last.release.image)


def advance(deployment: Deployment, progress: rollout.Progress) -> None:
    image = progress.images.get(deployment.service.k8s_container, progress.image)
    if image != deployment.release.image:
        return  # the cluster runs someone else's template; not (yet) ours
    if deployment.state == states.BUILDING:
        # The Jenkins job changed the cluster: from here on it is a rollout like any other.
        _move(
            deployment,
            states.ROLLING_OUT,
            "The cluster took the new image; rolling out.",
            generation=progress.generation,
        )
        return
    if deployment.generation and progress.observed_generation < deployment.generation:
        return
    if _older_than_recorded(deployment, progress):
        return
    progress = rollout.judged_since(progress, deployment.baseline)
    _record_progress(deployment, progress)
    if progress.status == rollout.COMPLETE:
        if deployment.bake_started_at is not None:
            return  # baking: the verify job decides
        if not verdicts.guarded(deployment):
            _finish(deployment, progress)
        elif verdicts.start_bake(deployment, progress.message):
            queues.enqueue(verify, deployment.pk)
    elif progress.status == rollout.FAILED:
        fail(deployment, progress.message)


def _older_than_recorded(deployment: Deployment, progress: rollout.Progress) -> bool:
    """A picture of the Deployment older than the one already recorded arrived late (the watcher's
    cache and the reconciler's direct read race): recording it would move the bars backwards."""
    recorded = (deployment.progress or {}).get("resource_version", "")
    if not (recorded.isdigit() and progress.resource_version.isdigit()):
        return False
    return int(progress.resource_version) < int(recorded)


def _record_progress(deployment: Deployment, progress: rollout.Progress) -> None:
    data = progress.as_dict()
    before = deployment.progress or {}
    downtime = _downtime(deployment.downtime or {}, progress)
    if all(before.get(k) == data.get(k) for k in _NOTEWORTHY) and downtime == deployment.downtime:
        return
    deployment.log(
        "progress",
        progress.message,
        data={"progress": data, "downtime": downtime},
        progress=data,
        downtime=downtime,
        min_available=downtime["min_available"],
        observed_at=timezone.now(),
        revision_after=progress.revision,
    )


def _downtime(seen: dict, progress: rollout.Progress) -> dict:
    """Zero-downtime evidence: the lowest availability seen and how long it was below the floor."""
    now = timezone.now().timestamp()
    low = progress.available < progress.min_required or progress.available == 0
    result = {
        "checked": True,
        "min_available": min(seen.get("min_available", progress.available), progress.available),
        "min_required": progress.min_required,
        "dropped": seen.get("dropped", False) or low,
        "seconds": seen.get("seconds", 0.0),
        "low_since": seen.get("low_since"),
    }
    if low and result["low_since"] is None:
        result["low_since"] = now
    if not low and result["low_since"] is not None:
        result["seconds"] += now - result["low_since"]
        result["low_since"] = None
    return result


def _finish(deployment: Deployment, progress: rollout.Progress) -> None:
    label = "Rolled back" if deployment.is_rollback else "Rolled out"
    image = progress.images.get(deployment.service.k8s_container, progress.image)
    _succeed(deployment, f"{label}: {progress.message}", image, progress.revision)


def _succeed(deployment: Deployment, message: str, image: str, revision: str) -> None:
    # One transaction: whoever sees the deployment succeeded also sees what the cluster should run.
    with transaction.atomic():
        if _move(deployment, states.SUCCEEDED, message, revision_after=revision):
            Workload.objects.filter(environment=deployment.environment, name=deployment.service.k8s_deployment).update(
                expected_image=image
            )


def verify(pk: int) -> None:
    """One look at a guarded rollout (releases.verdicts): fail it, pass it once baked, or look again
    after VERIFY_INTERVAL_SECONDS (a job enqueuing itself: nothing sleeps in the worker)."""
    deployment = Deployment.objects.select_related("service", "environment", "release").filter(pk=pk).first()
    if deployment is None or deployment.state != states.ROLLING_OUT or not verdicts.guarded(deployment):
        return
    done = verdicts.baked(deployment)
    verdict = verdicts.evaluate(deployment, final=done)
    if verdict.failure:
        fail(deployment, verdict.failure)
    elif done and not verdict.waiting:
        message = f"Rolled out and verified: {verdicts.passed_summary(deployment)}."
        _succeed(deployment, message, deployment.release.image, deployment.revision_after)
    else:
        queues.enqueue(verify, pk, delay=settings.VERIFY_INTERVAL_SECONDS)


def fail(deployment: Deployment, message: str) -> bool:
    """Fail an active deployment with `message`; a failure that reached the cluster in an
    auto-rollback environment owes it a rollback (queued once this commits, see receivers)."""
    return _move(deployment, states.FAILED, message, reason=message, followup=flows.after_failure(deployment))


def retry_or_fail(deployment: Deployment, error: IntegrationError, what: str) -> None:
    """The one way a deployment's job meets an outside failure: a transient one is retried with
    backoff (said once in the timeline), a permanent one or the last attempt fails it."""
    queues.retry_or_give_up(
        error,
        transient=not error.permanent,
        give_up=lambda: fail(deployment, f"{what} failed: {error}"),
        note=lambda message: deployment.log("retry", f"{what} failed. {message}"),
    )


def _move(deployment: Deployment, new: str, message: str, **fields) -> bool:
    try:
        deployment.transition(new, message=message, **fields)
    except TransitionRefused:
        return False  # someone else (the other observer, a cancel) moved it first
    return True


def observe(pk: int) -> None:
    """Read the rollout straight from the cluster and advance the deployment (reconciler path).

    Writes the Workload row exactly as the watcher does, so its signal advances the deployment
    through the same code whichever of the two saw the change first.
    """
    deployment = Deployment.objects.select_related("service", "environment__cluster").filter(pk=pk).first()
    if deployment is None or deployment.state not in states.OBSERVED:
        return
    env, service = deployment.environment, deployment.service
    try:
        snapshot = kube.read_snapshot(env.cluster, env.namespace, service.k8s_deployment)
    except IntegrationError as error:
        if error.permanent:
            fail(deployment, f"Reading the rollout failed: {error}")
        return
    watcher.record(env, service.k8s_deployment, snapshot)
