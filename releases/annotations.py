"""Grafana annotations for rollouts: a region from the moment a deployment starts to when it
finishes, tagged so dashboards can show deploys.

The receiver only rings a doorbell (an RQ job); the job is level-triggered: it reads the
deployment and makes Grafana match it (create the annotation once, close it once per final
state). Grafana being down never blocks or fails a deployment; what happened is kept in
`Deployment.reports["grafana"]` and shown on the deployment page.
"""

import logging

from django.dispatch import receiver
from django.utils import timezone

from plumbing import queues
from plumbing.integrations import IntegrationError, grafana
from releases import states
from releases.grafana_panels import epoch_ms
from releases.models import Deployment, deployment_transitioned

log = logging.getLogger(__name__)
STARTS = frozenset({states.BUILDING, states.ROLLING_OUT})


@receiver(deployment_transitioned)
def on_transition(sender, deployment, old, new, **kwargs):
    """Queue a sync when a rollout starts, or when one that started reaches a final state."""
    try:
        starting = new in STARTS and old == states.APPROVED
        finishing = new in states.FINAL and deployment.started_at is not None
        if grafana.configured() and (starting or finishing):
            queues.enqueue(sync_annotation, deployment.pk)
    except Exception:  # a notification problem must never break the transition that sent it
        log.exception("could not queue the Grafana annotation of deployment %s", deployment.pk)


def sync_annotation(pk: int) -> None:
    """Make Grafana's annotation of deployment `pk` match its state; safe to run any number of times."""
    # One job at a time per deployment, so two jobs cannot both create an annotation.
    with queues.exclusive(f"grafana-annotation:{pk}"):
        deployment = Deployment.objects.select_related("service", "environment", "release").filter(pk=pk).first()
        if deployment is None or deployment.started_at is None:
            return
        try:
            _sync(deployment)
        except IntegrationError as error:
            _failed(deployment, error)


def _sync(deployment: Deployment) -> None:
    final = deployment.state in states.FINAL
    report = (deployment.reports or {}).get("grafana") or {}
    if deployment.grafana_annotation_id is None:
        created = grafana.create_annotation(
            text=text(deployment),
            tags=tags(deployment),
            time_ms=epoch_ms(deployment.started_at),
            time_end_ms=epoch_ms(deployment.finished_at) if final and deployment.finished_at else None,
            dashboard_uid=deployment.service.grafana_dashboard_uid,
        )
        Deployment.objects.filter(pk=deployment.pk).update(grafana_annotation_id=created.id)
        _report(deployment, "closed" if final else "open", created.id)
        return
    if final and report.get("closed_as") != deployment.state:
        grafana.update_annotation(
            deployment.grafana_annotation_id,
            text=text(deployment),
            tags=tags(deployment),
            time_end_ms=epoch_ms(deployment.finished_at or timezone.now()),
        )
        _report(deployment, "closed", deployment.grafana_annotation_id)


def text(deployment: Deployment) -> str:
    """Like "Deploy storefront 1.4.2 to prod (#42)", with the outcome once it is known."""
    service, version, env = deployment.service.slug, deployment.release.version, deployment.environment.slug
    if deployment.kind == Deployment.ROLLBACK:
        said = f"Roll back {service} to {version} in {env} (#{deployment.pk})"
    else:
        said = f"Deploy {service} {version} to {env} (#{deployment.pk})"
    if deployment.state not in states.FINAL:
        return said
    outcome = f"{said}: {states.LABELS[deployment.state].lower()}"
    if deployment.state != states.SUCCEEDED and deployment.reason:
        outcome += f" ({deployment.reason[:300]})"
    return outcome


def tags(deployment: Deployment) -> list[str]:
    found = [
        "deploy",
        f"service:{deployment.service.slug}",
        f"env:{deployment.environment.slug}",
        f"version:{deployment.release.version}",
    ]
    if deployment.kind == Deployment.ROLLBACK:
        found.append("rollback")
    if deployment.state in states.FINAL:
        found.append(f"outcome:{deployment.state}")
    return found


def _report(deployment: Deployment, state: str, annotation_id: int) -> None:
    closed = deployment.state if state == "closed" else ""
    report = {"state": state, "annotation_id": annotation_id, "closed_as": closed, "error": ""}
    Deployment.update_report(deployment.pk, "grafana", lambda old: report)


def _failed(deployment: Deployment, error: IntegrationError) -> None:
    retrying = not error.permanent and queues.retries_left()
    state = "retrying" if retrying else "failed"
    Deployment.update_report(deployment.pk, "grafana", lambda old: {**old, "state": state, "error": str(error)})
    if retrying:
        raise error
