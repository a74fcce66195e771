"""Turning what the cluster shows into deployment events and state changes.

Called by the watcher (through the `workload_observed` signal) and by the reconciler with
the same Progress, so both paths advance deployments identically. Level-triggered: each
call looks at the whole picture, so a missed or repeated observation does no harm.
"""

from django.db import transaction
from django.utils import timezone

from clusters import rollout
from plumbing import queues
from releases import states
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
        state__in=states.IN_CLUSTER | {states.BUILDING},
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
    if deployment.state == states.BUILDING:
        if image == _target_image(deployment):
            _move(
                deployment,
                states.ROLLING_OUT,
                "The cluster took the new image; rolling out.",
                revision_before=deployment.revision_before or "",
                generation=progress.generation,
            )
        return
    if image != _target_image(deployment):
        return  # the cluster runs someone else's template; not (yet) ours
    if deployment.generation and progress.observed_generation < deployment.generation:
        return
    if _older_than_recorded(deployment, progress):
        return
    _record_progress(deployment, progress)
    if progress.status == rollout.COMPLETE:
        _finish(deployment, progress)
    elif progress.status == rollout.FAILED:
        _fail(deployment, progress)


def _older_than_recorded(deployment: Deployment, progress: rollout.Progress) -> bool:
    """A picture of the Deployment older than the one already recorded arrived late (the watcher's
    cache and the reconciler's direct read race): recording it would move the bars backwards."""
    recorded = (deployment.progress or {}).get("resource_version", "")
    if not (recorded.isdigit() and progress.resource_version.isdigit()):
        return False
    return int(progress.resource_version) < int(recorded)


def _target_image(deployment: Deployment) -> str:
    if deployment.state == states.ROLLING_BACK:
        return deployment.progress.get("rollback_image") or (
            deployment.previous_release.image if deployment.previous_release else ""
        )
    return deployment.release.image


def _record_progress(deployment: Deployment, progress: rollout.Progress) -> None:
    data = progress.as_dict()
    if deployment.state == states.ROLLING_BACK:
        data["rollback_image"] = deployment.progress.get("rollback_image", "")
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
    from clusters.models import Workload

    target = states.ROLLED_BACK if deployment.state == states.ROLLING_BACK else states.SUCCEEDED
    label = "Rolled back" if target == states.ROLLED_BACK else "Rolled out"
    image = progress.images.get(deployment.service.k8s_container, progress.image)
    # One transaction: whoever sees the deployment succeeded also sees what the cluster should run.
    with transaction.atomic():
        if _move(deployment, target, f"{label}: {progress.message}", revision_after=progress.revision):
            Workload.objects.filter(environment=deployment.environment, name=deployment.service.k8s_deployment).update(
                expected_image=image
            )


def _fail(deployment: Deployment, progress: rollout.Progress) -> None:
    from releases import jobs

    if not _move(deployment, states.FAILED, progress.message, reason=progress.message):
        return
    if jobs.needs_auto_rollback(deployment):
        queues.enqueue(jobs.auto_rollback, deployment.pk, retry=jobs.RETRY)


def _move(deployment: Deployment, new: str, message: str, **fields) -> bool:
    try:
        deployment.transition(new, kind="state", message=message, **fields)
    except TransitionRefused:
        return False  # someone else (the other observer, a cancel) moved it first
    return True
