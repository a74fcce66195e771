"""What follows a change, rung once it commits (the reconciler rings again whatever a crash lost).

- The cluster watcher observed a workload → advance its deployments (releases.tracking).
- A deployment was approved → run it (releases.jobs.run_deployment).
- A guarded deployment is rolling out → verify it (releases.tracking.verify, see releases.verdicts).
- A deployment was deleted → the gauge of deployments by state counts one fewer (in the same transaction).
- A deployment reached a final state owing the cluster something (`Deployment.followup`: stop a
  cancelled rollout, roll back a failed one) → the job that does it.
"""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from clusters.signals import workload_observed
from plumbing import queues
from releases import jobs, states, tallies, tracking, verdicts
from releases.models import Deployment, deployment_transitioned


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
