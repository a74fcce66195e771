"""Background jobs that change the cluster: run a deployment, stop a cancelled one, roll back.

Each takes a primary key, re-reads, and returns quietly when the deployment is gone or past
that step, so running one twice is harmless. Each change to the cluster happens exactly once:
the job records what it is about to do before doing it (the image and condition before, on
the row), and a re-run recognises its own earlier change by the deployment id annotation on
the Deployment object instead of repeating it or mistaking it for the state before. A change
and its state transition never disagree: a patch whose transition is refused (the deployment
was cancelled meanwhile) is stopped again.

Outside failures follow the one policy (plumbing.queues.retry_or_give_up): transient ones are
retried with backoff, permanent ones (or the last attempt) fail the deployment once.
"""

from clusters import rollout
from plumbing import queues
from plumbing.integrations import IntegrationError, kube
from releases import deploy_jobs, flows, states, tracking
from releases.models import Deployment, TransitionRefused


def _load(pk: int, *allowed: str) -> Deployment | None:
    deployment = (
        Deployment.objects.select_related("service", "environment__cluster", "release", "previous_release")
        .filter(pk=pk)
        .first()
    )
    if deployment is None or deployment.state not in allowed:
        return None
    return deployment


def run_deployment(pk: int) -> None:
    """Start an approved deployment: a Jenkins deploy job, or a patch of the Deployment."""
    deployment = _load(pk, states.APPROVED)
    if deployment is None:
        return
    if deployment.environment.deploy_via == deployment.environment.JENKINS:
        deploy_jobs.start(deployment)
    else:
        apply_image(deployment)


def apply_image(deployment: Deployment) -> None:
    env, service = deployment.environment, deployment.service
    where = f"{env.namespace}/{service.k8s_deployment}"
    try:
        current = kube.read_deployment(env.cluster, env.namespace, service.k8s_deployment)
    except IntegrationError as error:
        tracking.retry_or_fail(deployment, _explained(error, deployment), f"Reading {where}")
        return
    if kube.changed_by(current) == deployment.pk:
        patched = current  # our PATCH went through before a crash: never twice, never "before"
    else:
        if not _record_before(deployment, current):
            return  # cancelled meanwhile: nothing was changed
        try:
            patched = kube.set_image(
                env.cluster,
                env.namespace,
                service.k8s_deployment,
                service.k8s_container,
                deployment.release.image,
                change_cause=change_cause(deployment),
                deployment_id=deployment.pk,
            )
        except IntegrationError as error:
            tracking.retry_or_fail(deployment, error, f"Updating {where}")
            return
    _rolling_out(deployment, patched)


def _explained(error: IntegrationError, deployment: Deployment) -> IntegrationError:
    """A missing Deployment is a first deploy to a new environment: say what to create."""
    if "(HTTP 404)" not in str(error):
        return error
    env, service = deployment.environment, deployment.service
    return IntegrationError(
        f"There is no Deployment {service.k8s_deployment} in namespace {env.namespace}. The portal updates an "
        f"existing Deployment: create it first (for example from the one in another environment) with a "
        f"container named {service.k8s_container}, then deploy again.",
        permanent=True,
    )


def change_cause(deployment: Deployment) -> str:
    service, release = deployment.service, deployment.release
    if deployment.is_rollback:
        how = ", automatic" if deployment.automatic else ""
        what = f"rollback of #{deployment.rolls_back_id} to {release.version}"
        return f"pampam: {service.slug} {what} (deployment #{deployment.pk}{how})"
    return f"pampam: {service.slug} {release.version} (deployment #{deployment.pk})"


def _record_before(deployment: Deployment, current: dict) -> bool:
    """Write down what runs before changing it (once per change; False when no longer approved)."""
    container = deployment.service.k8s_container
    before = {
        "image_before": rollout.container_image(current, container),
        "revision_before": (current["metadata"].get("annotations") or {}).get(kube.REVISION, ""),
        "baseline": rollout.progressing_condition((current.get("status") or {}).get("conditions")),
    }
    first = not deployment.image_before
    recorded = Deployment.objects.filter(pk=deployment.pk, state=states.APPROVED).update(**before)
    for name, value in before.items():
        setattr(deployment, name, value)
    if recorded and first:
        env, service = deployment.environment, deployment.service
        deployment.log(
            "cluster",
            f"Changing {env.namespace}/{service.k8s_deployment} from {before['image_before']} to "
            f"{deployment.release.image}.",
            data=before,
        )
    return bool(recorded)


def _rolling_out(deployment: Deployment, patched: dict) -> None:
    env, service = deployment.environment, deployment.service
    try:
        deployment.transition(
            states.ROLLING_OUT,
            message=f"Patched {env.namespace}/{service.k8s_deployment} to {deployment.release.image}.",
            data={"revision_before": deployment.revision_before},
            generation=patched["metadata"].get("generation"),
        )
    except TransitionRefused:
        _stop_again(deployment)
        return
    tracking.observe(deployment.pk)


def _stop_again(deployment: Deployment) -> None:
    """The patch landed after the deployment was cancelled: it must not stay behind."""
    stopped = Deployment.objects.filter(pk=deployment.pk, state=states.CANCELLED).update(followup=Deployment.STOP)
    if stopped:
        deployment.log("cluster", "The change reached the cluster after the cancel; stopping it.")
        queues.enqueue(stop_rollout, deployment.pk)


def stop_rollout(pk: int) -> None:
    """A rollout was cancelled after changing the cluster: pause it or undo it, as the environment says."""
    deployment = _load(pk, states.CANCELLED)
    if deployment is None or deployment.followup != Deployment.STOP:
        return
    env, service = deployment.environment, deployment.service
    where = f"{env.namespace}/{service.k8s_deployment}"
    try:
        # A deploy job still running could change the cluster after the stop: end it first.
        deploy_jobs.ensure_stopped(deployment)
        current = kube.read_deployment(env.cluster, env.namespace, service.k8s_deployment)
        if not _carries_change_of(current, deployment):
            done = "The cluster never ran it; nothing to stop."
        elif env.cancel_action == env.CANCEL_PAUSE or not deployment.image_before:
            kube.set_paused(env.cluster, env.namespace, service.k8s_deployment, True)
            done = f"Paused {where}."
        else:
            done = _restore_before(deployment, current, where)
    except IntegrationError as error:
        _stop_failed(deployment, error)
        return
    _settle(deployment, done)


def _carries_change_of(current: dict, deployment: Deployment) -> bool:
    """Whether the cluster's object holds this deployment's change: our id annotation when the
    portal patched it; for a Jenkins deploy job, which changes the image as `kubectl set image`
    does without the annotation, this deployment's image where another one ran before."""
    if kube.changed_by(current) == deployment.pk:
        return True
    image = rollout.container_image(current, deployment.service.k8s_container)
    jenkins = deployment.environment.deploy_via == deployment.environment.JENKINS
    return jenkins and image == deployment.release.image != deployment.image_before


def _stop_failed(deployment: Deployment, error: IntegrationError) -> None:
    """A permanent failure is recorded once; a transient one to the end leaves the follow-up for
    the reconciler, which rings again until the rollout is stopped."""
    queues.retry_or_give_up(
        error,
        transient=not error.permanent,
        give_up=lambda: error.permanent and _settle(deployment, f"Could not stop the rollout: {error}"),
        note=lambda message: deployment.log("retry", f"Stopping the rollout failed. {message}"),
    )


def _restore_before(deployment: Deployment, current: dict, where: str) -> str:
    env, service = deployment.environment, deployment.service
    if rollout.container_image(current, service.k8s_container) != deployment.image_before:
        kube.set_image(
            env.cluster,
            env.namespace,
            service.k8s_deployment,
            service.k8s_container,
            deployment.image_before,
            change_cause=f"pampam: cancel of deployment #{deployment.pk}, restoring {deployment.image_before}",
            deployment_id=deployment.pk,
        )
    return f"Restored {deployment.image_before} on {where}."


def _settle(deployment: Deployment, message: str) -> None:
    """Say what became of a follow-up, once: it is not rung again."""
    if Deployment.objects.filter(pk=deployment.pk, followup=deployment.followup).update(followup=""):
        deployment.log("cluster", message)


def auto_rollback(pk: int) -> None:
    """A failed rollout in an environment that rolls back by itself: deploy the last good release."""
    deployment = _load(pk, states.FAILED)
    if deployment is not None and deployment.followup == Deployment.AUTO_ROLLBACK:
        flows.roll_back_automatically(deployment)


FOLLOWUPS = {Deployment.STOP: stop_rollout, Deployment.AUTO_ROLLBACK: auto_rollback}
