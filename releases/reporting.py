"""Report each portal deployment back to GitHub: one GitHub Deployment, statuses as it moves.

The receiver only rings a doorbell (an RQ job with rq's Retry backoff). The job is
level-triggered: it re-reads the deployment and reports its *current* state, so a late or
retried job never sends an old state after a newer one. It is idempotent: the GitHub
Deployment id is stored on the row once, and `Deployment.reports["github"]["sent"]` lists the
GitHub states already reported, which are never sent twice. Reporting never changes the
deployment's state: a failure is recorded in `reports["github"]` (shown on the page) and, once
the retries are spent, as a timeline note.

Our states → GitHub deployment statuses (PROTOCOLS.md §3):

| portal state | GitHub | why |
|---|---|---|
| pending_approval, rejected | — | nothing was deployed; no GitHub Deployment is created |
| approved | queued | created at approval: it is going out |
| building, rolling_out | in_progress | Jenkins deploy job, then the rollout |
| succeeded | success | GitHub marks older non-production deployments inactive itself |
| failed | failure | the release did not make it (a rollback is a deployment of its own, reported as such) |
| cancelled | inactive | only when a GitHub Deployment exists (cancelled after approval) |
"""

import logging

from django.conf import settings
from django.dispatch import receiver

from plumbing import queues
from plumbing.integrations import IntegrationError, github
from releases import states
from releases.models import Deployment, deployment_transitioned

log = logging.getLogger(__name__)

GITHUB_STATES = {
    states.PENDING_APPROVAL: None,
    states.APPROVED: "queued",
    states.BUILDING: "in_progress",
    states.ROLLING_OUT: "in_progress",
    states.SUCCEEDED: "success",
    states.FAILED: "failure",
    states.REJECTED: None,
    states.CANCELLED: "inactive",
}
assert set(GITHUB_STATES) == set(states.LABELS), "every state needs a GitHub mapping"


def enabled(service) -> bool:
    return bool(service.github_repo) and github.configured()


@receiver(deployment_transitioned)
def on_transition(sender, deployment, old, new, **kwargs):
    """Queue a report when the deployment reaches a state GitHub hears about."""
    try:
        if GITHUB_STATES.get(new) and enabled(deployment.service):
            queues.enqueue(report_to_github, deployment.pk)
    except Exception:  # a report must never break the transition that sent it
        log.exception("could not queue the GitHub report of deployment %s", deployment.pk)


def report_to_github(pk: int) -> None:
    """Job: make GitHub's Deployment of deployment `pk` show its current state; safe to repeat."""
    # One job at a time per deployment, so two jobs cannot both create a GitHub Deployment.
    with queues.exclusive(f"github-report:{pk}"):
        deployment = Deployment.objects.select_related("service", "environment", "release").filter(pk=pk).first()
        if deployment is None or not enabled(deployment.service):
            return
        wanted = GITHUB_STATES.get(deployment.state)
        if wanted is None or wanted in _report(deployment).get("sent", []):
            return
        if wanted == "inactive" and not deployment.github_deployment_id:
            return
        try:
            _send(deployment, wanted)
        except IntegrationError as error:
            _failed(deployment, wanted, error)
            return
        _update(pk, lambda report: _sent(report, wanted))


def _send(deployment: Deployment, state: str) -> None:
    repo = deployment.service.github_repo
    if not deployment.github_deployment_id:
        made = github.create_deployment(
            repo,
            deployment.release.git_sha or deployment.release.version,
            environment=deployment.environment.slug,
            description=f"{deployment.service.name} {deployment.release.version} (portal deployment #{deployment.pk})",
            production=deployment.environment.is_production,
            payload={
                "pampam_deployment_id": deployment.pk,
                "service": deployment.service.slug,
                "version": deployment.release.version,
                "kind": deployment.kind,
            },
        )
        Deployment.objects.filter(pk=deployment.pk).update(github_deployment_id=made.id)
        deployment.github_deployment_id = made.id
    github.create_deployment_status(
        repo,
        deployment.github_deployment_id,
        state,
        description=f"{deployment.state_label}: {deployment.release.version} in {deployment.environment.name}",
        target_url=settings.PORTAL_URL + deployment.get_absolute_url(),
        environment_url=settings.PORTAL_URL + deployment.service.get_absolute_url(),
    )


def _sent(report: dict, state: str) -> dict:
    return {**report, "state": state, "error": "", "retrying": False, "sent": [*report.get("sent", []), state]}


def _failed(deployment: Deployment, state: str, error: IntegrationError) -> None:
    """Keep the error visible; retry transient ones while rq has retries left, then note it once."""
    retrying = not error.permanent and queues.retries_left()
    _update(deployment.pk, lambda r: {**r, "state": state, "error": str(error), "retrying": retrying})
    if retrying:
        raise error
    deployment.log("report", f"GitHub: could not report {state}: {error}", data={"system": "github", "state": state})


def _report(deployment: Deployment) -> dict:
    return dict((deployment.reports or {}).get("github") or {})


def _update(pk: int, change) -> None:
    Deployment.update_report(pk, "github", change)


def summary(deployment: Deployment) -> dict | None:
    """What the page says about GitHub: None when nothing was reported or attempted."""
    report = _report(deployment)
    if not report.get("state"):
        return None
    return {"state": report["state"], "error": report.get("error", ""), "retrying": report.get("retrying", False)}
