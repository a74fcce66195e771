"""What follows a change, rung once it commits (the reconciler rings again whatever a crash lost).

- The cluster watcher observed a workload → advance its deployments (releases.tracking).
- A deployment was approved → run it (releases.jobs.run_deployment).
- A guarded deployment is rolling out → verify it (releases.tracking.verify, see releases.verdicts).
- A deployment was deleted → the gauge of deployments by state counts one fewer (in the same transaction).
- A deployment reached a final state owing the cluster something (`Deployment.followup`: stop a
  cancelled rollout, roll back a failed one) → the job that does it.
- A row a page shows was saved or deleted outside a transition (the admin, a hook, an import,
  the watcher's upsert) → the rendered fragments that show it are retired (plumbing.fragments).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from clusters.models import Environment, Workload
from clusters.signals import workload_observed
from plumbing import fragments, queues
from releases import jobs, states, tallies, tracking, verdicts
from releases.models import (
    Approval,
    Build,
    Check,
    CheckSample,
    Commit,
    Deployment,
    Release,
    Service,
    deployment_transitioned,
)


@receiver(workload_observed)
def advance_deployments(sender, workload, progress, **kwargs):
    tracking.on_workload_observed(workload, progress)


@receiver(deployment_transitioned)
def ring_the_next_job(sender, deployment, old, new, **kwargs):
    if new == states.APPROVED:
        queues.enqueue(jobs.run_deployment, deployment.pk)
    if new == states.ROLLING_OUT and verdicts.guarded(deployment):
        queues.enqueue(tracking.verify, deployment.pk)
    if deployment.followup:
        queues.enqueue(jobs.FOLLOWUPS[deployment.followup], deployment.pk)


@receiver(post_delete, sender=Deployment)
def untally_deployment(sender, instance, **kwargs):
    """Sent inside the deletion's transaction: the gauge of deployments by state drops with it."""
    tallies.deployment_deleted(instance)


# Rows written outside the transitions that broadcast (the admin, hooks, imports, the watcher's
# upsert): each save or delete retires the fragments of its scope, once it commits.
SCOPES = {
    Service: fragments.CATALOG,
    Environment: fragments.CATALOG,
    Release: fragments.CATALOG,
    Commit: fragments.CATALOG,
    get_user_model(): fragments.CATALOG,
    Group: fragments.CATALOG,  # the deployer and approver groups' names, in refusals
    Check: fragments.CATALOG,  # the checks a rollout is held to, on its page
    CheckSample: fragments.REPORT,  # charted on its page (releases.verdicts bulk-creates: it renews)
    Deployment: fragments.DEPLOYMENT,
    Approval: fragments.DEPLOYMENT,
    Build: fragments.BUILD,
    Workload: fragments.WORKLOAD,
}


def retire_fragments(sender, update_fields=None, **kwargs):
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login: no page shows it
    fragments.touch(SCOPES[sender])


for _model in SCOPES:
    post_save.connect(retire_fragments, sender=_model, dispatch_uid=f"fragments-saved-{_model._meta.label}")
    post_delete.connect(retire_fragments, sender=_model, dispatch_uid=f"fragments-deleted-{_model._meta.label}")
