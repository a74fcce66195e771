"""Before a deployment is requested: does the cluster have the Deployment it would change?

The portal changes an existing Kubernetes Deployment (its container image); it does not create
one. The first deployment of a service to a new environment would otherwise be approved and then
fail with `deployments.apps "x" not found`. Asked here first, the request is refused before it
starts, with a reason that says exactly what to create.

The cluster is asked with a deadline: when it does not answer in time (or cannot be reached),
nothing is refused here and the deployment itself reports what it finds.
"""

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from clusters.models import Environment, Workload
from plumbing.integrations import IntegrationError, kube
from releases import rules

DEADLINE_SECONDS = 3.0
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="preflight")


def refuse_a_first_deploy(user, release, environment, override_reason: str = "") -> None:
    """Raise rules.Refused (a conflict) when the cluster lacks the Deployment to change. Asked
    after the rules, so someone who may not deploy there learns nothing about the cluster (the
    request itself then refuses with the rules' reasons)."""
    if not rules.can_request(user, release, environment, override_reason=override_reason):
        return
    problem = missing_deployment(release.service, environment)
    if problem:
        raise rules.Refused(problem, conflict=True)


def missing_deployment(service, environment) -> str:
    """Why `service` cannot be deployed to `environment` yet, or "" when it can (or nobody knows)."""
    workload = Workload.objects.filter(environment=environment, name=service.k8s_deployment).first()
    if workload is not None and workload.exists:
        return ""
    future = _pool.submit(_exists, environment.cluster, environment.namespace, service.k8s_deployment)
    try:
        exists = future.result(timeout=DEADLINE_SECONDS)
    except FutureTimeout:
        return ""
    return "" if exists is not False else what_to_create(service, environment)


def _exists(cluster, namespace: str, name: str) -> bool | None:
    """True or False when the cluster said so; None when it could not say."""
    try:
        kube.read_deployment(cluster, namespace, name)
    except IntegrationError as error:
        return False if error.permanent and "(HTTP 404)" in str(error) else None
    return True


def what_to_create(service, environment) -> str:
    template = (
        Environment.objects.in_use()
        .filter(position__lt=environment.position, workloads__name=service.k8s_deployment, workloads__exists=True)
        .order_by("-position")
        .first()
    )
    where = f"namespace {environment.namespace} of cluster {environment.cluster.name}"
    reason = (
        f"{environment.name} has no Kubernetes Deployment “{service.k8s_deployment}” in {where}, so there is "
        f"nothing to roll out. The portal changes the image of an existing Deployment; it does not create one. "
        f"Create a Deployment named “{service.k8s_deployment}” with a container named “{service.k8s_container}” "
        f"in {environment.namespace} first"
    )
    if template is None:
        return reason + ", then deploy again."
    return (
        reason + f", for example from {template.name}'s: kubectl -n {template.namespace} get deployment "
        f"{service.k8s_deployment} -o yaml, change its namespace to {environment.namespace}, drop its status, "
        f"and kubectl apply it. Then deploy again."
    )
