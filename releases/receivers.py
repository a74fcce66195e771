"""Listens to what the cluster watcher observed and advances deployments (see releases.tracking)."""

from django.dispatch import receiver

from clusters.signals import workload_observed
from releases import tracking


@receiver(workload_observed)
def advance_deployments(sender, workload, progress, **kwargs):
    tracking.on_workload_observed(workload, progress)
