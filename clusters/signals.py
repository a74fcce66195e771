from django.dispatch import Signal

# Sent by the watcher (and the reconciler) after a Workload row changed.
# Arguments: workload (clusters.models.Workload), progress (clusters.rollout.Progress).
workload_observed = Signal()
